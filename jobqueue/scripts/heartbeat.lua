-- heartbeat.lua: a worker proves it is alive and extends the deadlines of
-- the jobs it is running.
-- Keys: worker:{name}, workers, registry:started:{q}.
-- Invariant: a running job's started-registry deadline stays ahead of now
-- while its worker beats; ZADD XX never resurrects a job that was already
-- settled or reaped.
-- ARGV[A] worker key, A+1 workers set key, A+2 worker name, A+3 ttl seconds,
-- A+4 deadline, A+5 number n of worker field values that follow (name,
-- value, ...: heartbeat time, counters), then pairs of (queue, job id).
local wkey, deadline, n = ARGV[A], ARGV[A + 4], tonumber(ARGV[A + 5])
redis.call('HSET', wkey, unpack(ARGV, A + 6, A + 5 + n))
redis.call('EXPIRE', wkey, ARGV[A + 3])
redis.call('SADD', ARGV[A + 1], ARGV[A + 2])
for i = A + 6 + n, #ARGV, 2 do
  redis.call('ZADD', P.started .. ARGV[i], 'XX', deadline, ARGV[i + 1])
end
return 1
