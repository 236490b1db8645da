-- finish.lua: record the outcomes of a batch of attempts a worker ran.
-- Keys: registry:started:{q}, job:{id}, registry:{finished,failed,scheduled}:{q},
-- queue:{q}, worker:{name}.
-- Invariant (fencing, one outcome per attempt): an outcome is recorded only
-- while its attempt is the job's current one, i.e. its started member
-- '<id>:<attempt>' is still there; a canceled, reaped or superseded
-- attempt's outcome changes nothing and is reported back. One ZMSCORE + one
-- ZREM per queue and batch.
-- Invariant (replay-safe): a recorded outcome stamps 'settled' = attempt, so
-- the same batch sent again (lost reply, client retry) counts as recorded
-- and writes nothing twice.
-- ARGV[A] = JSON list of {id, q, a = attempt, s = finished|failed|retry|requeue,
-- f = [fields], ttl = result/failure TTL (finished/failed), delay = seconds
-- (retry)}; ARGV[A+1] worker key, ARGV[A+2..] worker fields (counters), optional.
-- Returns the ids whose outcome was dropped (not current).
local outcomes = cjson.decode(ARGV[A])

-- which of the batch's attempts are still current, per queue (an attempt
-- number turned to text once: Redis would format a number for each use)
local by_queue, order, held = {}, {}, {}
for _, o in ipairs(outcomes) do
  o.a = tostring(o.a)
  o.m = member(o.id, o.a)
  if not by_queue[o.q] then by_queue[o.q] = {}; held[o.q] = {}; order[#order + 1] = o.q end
  local members = by_queue[o.q]
  members[#members + 1] = o.m
end
for _, q in ipairs(order) do
  local members = by_queue[q]
  local scores = guarded('ZMSCORE', P.started .. q, unpack(members))
  local mine = {}
  for i, m in ipairs(members) do
    if scores[i] then held[q][m] = true; mine[#mine + 1] = m end
  end
  if #mine > 0 then redis.call('ZREM', P.started .. q, unpack(mine)) end
end

local finished, failed, dropped = {}, {}, {}
for _, o in ipairs(outcomes) do
  local key = P.job .. o.id
  if held[o.q][o.m] then
    local f = o.f
    f[#f + 1] = 'settled'; f[#f + 1] = o.a
    if o.s == 'finished' or o.s == 'failed' then
      local score, expires = expiry(o.ttl)
      f[#f + 1] = 'ended_at'; f[#f + 1] = now_iso()
      f[#f + 1] = 'expires_at'; f[#f + 1] = expires
      redis.call('HSET', key, unpack(f))
      local dest = (o.s == 'finished') and finished or failed
      if not dest[o.q] then dest[o.q] = {} end
      local entries = dest[o.q]
      entries[#entries + 1] = score
      entries[#entries + 1] = o.id
    else
      f[#f + 1] = 'enqueued_at'; f[#f + 1] = now_iso()
      local delay = tonumber(o.delay) or 0
      if o.s == 'retry' and delay > 0 then
        f[#f + 1] = 'status'; f[#f + 1] = 'scheduled'
        redis.call('HSET', key, unpack(f))
        guarded('ZADD', P.scheduled .. o.q, now() + delay, o.id)
        wake(o.q)
      else  -- 'retry' without a pause, or 'requeue' (cold shutdown: to the front)
        f[#f + 1] = 'status'; f[#f + 1] = 'queued'
        redis.call('HSET', key, unpack(f))
        push(o.q, o.id, o.s == 'requeue')
      end
    end
  elseif redis.call('HGET', key, 'settled') ~= o.a then
    dropped[#dropped + 1] = o.id  -- not a replay of our own recorded outcome
  end
end
for q, entries in pairs(finished) do guarded('ZADD', P.finished .. q, unpack(entries)) end
for q, entries in pairs(failed) do guarded('ZADD', P.failed .. q, unpack(entries)) end
if N > A + 1 and redis.call('EXISTS', ARGV[A + 1]) == 1 then  -- never a partial worker entry
  redis.call('HSET', ARGV[A + 1], unpack(ARGV, A + 2, N))
end
return dropped
