-- finish.lua: record the outcomes of a batch of jobs a worker ran.
-- Keys: registry:started:{q}, job:{id}, registry:{finished,failed,scheduled}:{q},
-- queue:{q}, worker:{name}.
-- Invariant: an outcome is recorded only for a job that is still in its
-- started registry, so a canceled job stays canceled and replaying the same
-- batch after a lost reply changes nothing. One ZMSCORE + one ZREM per queue
-- and batch. Not yet kept: a job the reaper handed to another worker is in
-- the started registry again, so a late outcome of its first attempt is still
-- recorded (attempts are not fenced).
-- ARGV[A] = JSON list of {id, q, s = finished|failed|retry|requeue, f = [fields],
-- exp = expiry (finished/failed), at = run-at (retry)}; ARGV[A+1] worker key,
-- ARGV[A+2..] worker fields to set (counters, heartbeat), flat, optional.
local outcomes = cjson.decode(ARGV[A])

-- which of the batch's jobs are still ours, per queue
local by_queue, order = {}, {}
for _, o in ipairs(outcomes) do
  if not by_queue[o.q] then by_queue[o.q] = {}; order[#order + 1] = o.q end
  local ids = by_queue[o.q]
  ids[#ids + 1] = o.id
end
local held = {}
for _, q in ipairs(order) do
  local ids = by_queue[q]
  local scores = redis.call('ZMSCORE', P.started .. q, unpack(ids))
  local mine = {}
  for i, id in ipairs(ids) do
    if scores[i] then held[q .. '\0' .. id] = true; mine[#mine + 1] = id end
  end
  if #mine > 0 then redis.call('ZREM', P.started .. q, unpack(mine)) end
end

local finished, failed = {}, {}
local recorded = 0
for _, o in ipairs(outcomes) do
  if held[o.q .. '\0' .. o.id] then
    recorded = recorded + 1
    if o.s == 'finished' or o.s == 'failed' then
      redis.call('HSET', P.job .. o.id, unpack(o.f))
      local dest = (o.s == 'finished') and finished or failed
      if not dest[o.q] then dest[o.q] = {} end
      local entries = dest[o.q]
      entries[#entries + 1] = o.exp
      entries[#entries + 1] = o.id
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
for q, entries in pairs(finished) do redis.call('ZADD', P.finished .. q, unpack(entries)) end
for q, entries in pairs(failed) do redis.call('ZADD', P.failed .. q, unpack(entries)) end
if #ARGV > A + 1 then
  redis.call('HSET', ARGV[A + 1], unpack(ARGV, A + 2))
end
return recorded
