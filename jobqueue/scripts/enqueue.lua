-- enqueue.lua: store jobs and put them on their queue (or in the scheduled
-- registry when they carry a run-at time), one atomic step per batch.
-- Keys: job:{id}, queue:{q}, registry:scheduled:{q}, queues, wake:{q}.
-- Invariant: a job id is visible in a queue or registry only once its hash
-- is complete, so a worker never dequeues a half-written job.
-- ARGV[A] = JSON list of {id, q, f = [field, value, ...], front, at, replace, ttl}
local jobs = cjson.decode(ARGV[A])
for _, j in ipairs(jobs) do
  local key = P.job .. j.id
  if j.replace == 1 then redis.call('DEL', key) end
  redis.call('HSET', key, unpack(j.f))
  if j.ttl and j.ttl ~= cjson.null then redis.call('EXPIRE', key, j.ttl) end
  if j.at and j.at ~= cjson.null then
    redis.call('ZADD', P.scheduled .. j.q, j.at, j.id)
    redis.call('SADD', P.queues, j.q)
    wake(j.q)  -- blocked workers recompute when the next scheduled job is due
  else
    push(j.q, j.id, j.front == 1)
  end
end
return #jobs
