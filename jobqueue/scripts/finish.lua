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
-- ARGV[A] = K, the number of outcomes; then each outcome, flat: id, queue,
-- attempt, state (finished|failed|retry|requeue), ttl of the result or
-- failure (finished/failed) or delay in seconds (retry), n, n fields; then
-- the worker key and its fields (counters), optional. (Flat arguments: a
-- JSON text would cost a Lua table per outcome, decoded field by field.)
-- Returns the ids whose outcome was dropped (not current).

-- Where each outcome starts in ARGV, and per queue its started members.
local at, queues, members, slots = {}, {}, {}, {}
local i = A + 1
for k = 1, tonumber(ARGV[A]) do
  at[k] = i
  local q = ARGV[i + 1]
  local m = members[q]
  if not m then m = {}; members[q] = m; slots[q] = {}; queues[#queues + 1] = q end
  m[#m + 1] = member(ARGV[i], ARGV[i + 2])
  slots[q][#m] = k  -- the outcome behind this member
  i = i + 6 + tonumber(ARGV[i + 5])
end
local W = i  -- the worker key, if any

-- which of them are still current: held[k]
local held = {}
for _, q in ipairs(queues) do
  local m, slot = members[q], slots[q]
  local scores = guarded('ZMSCORE', P.started .. q, unpack(m))
  local mine = {}
  for j = 1, #m do
    if scores[j] then held[slot[j]] = true; mine[#mine + 1] = m[j] end
  end
  if #mine > 0 then redis.call('ZREM', P.started .. q, unpack(mine)) end
end

-- An expiry per TTL, formatted once per call (all outcomes share one clock reading).
local scores, expiries = {}, {}
local function expiry_of(ttl)
  if not scores[ttl] then scores[ttl], expiries[ttl] = expiry(ttl) end
  return scores[ttl], expiries[ttl]
end

local settled, dropped = {}, {}  -- settled: registry key -> its ZADD entries

-- An outcome's fields into its job hash. One someone replaced by another type
-- while the job ran is quarantined: the outcome has nowhere to go (dropped,
-- with the note, '\0' first), and the rest of the batch is recorded.
local function record(key, id, ...)
  local written, note = on_job('HSET', key, ...)
  if written then return true end
  dropped[#dropped + 1] = id
  dropped[#dropped + 1] = '\0' .. note
  return false
end

for k, i in ipairs(at) do
  local id, q, a, s, x = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local first, last = i + 6, i + 5 + tonumber(ARGV[i + 5])  -- the outcome's own fields
  local key = P.job .. id
  if held[k] then
    if s == 'finished' or s == 'failed' then
      local score, expires = expiry_of(x)
      if record(key, id, 'settled', a, 'ended_at', now_iso(), 'expires_at', expires, unpack(ARGV, first, last)) then
        local registry = (s == 'finished' and P.finished or P.failed) .. q
        local entries = settled[registry]
        if not entries then entries = {}; settled[registry] = entries end
        entries[#entries + 1] = score
        entries[#entries + 1] = id
      end
    else
      local delay = tonumber(x) or 0
      local later = s == 'retry' and delay > 0
      if record(key, id, 'settled', a, 'enqueued_at', now_iso(), 'status', later and 'scheduled' or 'queued',
          unpack(ARGV, first, last)) then
        if later then
          guarded('ZADD', P.scheduled .. q, now() + delay, id)
          wake(q)
        else  -- 'retry' without a pause, or 'requeue' (cold shutdown: to the front)
          push(q, id, s == 'requeue')
        end
      end
    end
  elseif redis.pcall('HGET', key, 'settled') ~= a then  -- (pcall: a key of another type is simply not ours)
    dropped[#dropped + 1] = id  -- not a replay of our own recorded outcome
  end
end
for registry, entries in pairs(settled) do guarded('ZADD', registry, unpack(entries)) end
if N > W and redis.call('EXISTS', ARGV[W]) == 1 then  -- never a partial worker entry
  redis.call('HSET', ARGV[W], unpack(ARGV, W + 1, N))
end
return dropped
