-- heartbeat.lua: a worker proves it is alive and extends the deadlines of
-- the jobs it is running.
-- Keys: worker:{name}, workers, registry:started:{q}.
-- Invariant: a running job's started-registry deadline stays ahead of now
-- while its worker beats; ZADD XX never resurrects a job that was already
-- settled or reaped.
-- ARGV[A] worker key, A+1 workers set key, A+2 worker name, A+3 ttl seconds,
-- A+4 deadline, A+5 heartbeat time, A+6.. pairs of (queue, job id).
local wkey, deadline = ARGV[A], ARGV[A + 4]
redis.call('HSET', wkey, 'last_heartbeat', ARGV[A + 5])
redis.call('EXPIRE', wkey, ARGV[A + 3])
redis.call('SADD', ARGV[A + 1], ARGV[A + 2])
for i = A + 6, #ARGV, 2 do
  redis.call('ZADD', P.started .. ARGV[i], 'XX', deadline, ARGV[i + 1])
end
return 1
