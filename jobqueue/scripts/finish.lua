-- finish.lua: record the outcomes of a batch of jobs a worker ran.
-- Keys: registry:started:{q}, job:{id}, registry:{finished,failed,scheduled}:{q},
-- queue:{q}, worker:{name}.
-- Invariant: an outcome is recorded only for a job that is still in its
-- started registry (ZREM returns 1), so a job the reaper already handed to
-- another worker, or that was canceled, is recorded at most once; replaying
-- the same batch after a lost reply changes nothing.
-- ARGV[A] = JSON list of {id, q, s = finished|failed|retry|requeue, f = [fields],
-- exp = expiry (finished/failed), at = run-at (retry)}; ARGV[A+1] worker key,
-- ARGV[A+2..] worker fields to set (counters, heartbeat), flat.
local outcomes = cjson.decode(ARGV[A])
local recorded = 0
for _, o in ipairs(outcomes) do
  if redis.call('ZREM', P.started .. o.q, o.id) == 1 then
    recorded = recorded + 1
    if o.s == 'finished' then
      settle(P.finished, o.q, o.id, o.f, o.exp)
    elseif o.s == 'failed' then
      settle(P.failed, o.q, o.id, o.f, o.exp)
    elseif o.s == 'retry' and o.at and o.at ~= cjson.null then
      redis.call('HSET', P.job .. o.id, unpack(o.f))
      redis.call('ZADD', P.scheduled .. o.q, o.at, o.id)
      wake(o.q)
    else  -- 'retry' without interval, or 'requeue' (cold shutdown)
      redis.call('HSET', P.job .. o.id, unpack(o.f))
      push(o.q, o.id, o.s == 'requeue')
    end
  end
end
if #ARGV > A + 1 then
  redis.call('HSET', ARGV[A + 1], unpack(ARGV, A + 2))
end
return recorded
