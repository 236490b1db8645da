-- lib.lua: prepended to every script below (see scripts/__init__.py).
-- ARGV[1..11] are the key prefixes from keys.py (Keys.script_prefixes); a
-- script's own arguments are ARGV[A..N]. Keys are derived here only by
-- appending a queue name or a job id to one of those prefixes.
local P = {
  job = ARGV[1], queue = ARGV[2], wake = ARGV[3],
  started = ARGV[4], finished = ARGV[5], failed = ARGV[6],
  scheduled = ARGV[7], canceled = ARGV[8], queues = ARGV[9], quarantine = ARGV[10],
  shared = ARGV[11],
}
local A = 12
local N = #ARGV  -- the last argument (scripts composed of two take their ranges from their caller)

-- Redis's clock is the one clock: every deadline, expiry, run-at and stamp
-- a script writes comes from TIME, read at most once per call, never from a
-- worker's clock (which may be minutes off).
local _now, _now_iso
local function now()
  if not _now then
    local t = redis.call('TIME')
    local s, us = tonumber(t[1]), tonumber(t[2])
    _now = s + us / 1000000
    -- days since 1970-01-01 -> civil date (H. Hinnant's days_from_civil, inverted)
    local z = math.floor(s / 86400) + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    local y = yoe + era * 400 + (m <= 2 and 1 or 0)
    local sod = s % 86400
    _now_iso = string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06dZ', y, m, d,
      math.floor(sod / 3600), math.floor(sod % 3600 / 60), sod % 60, us)
  end
  return _now
end
local function now_iso() now(); return _now_iso end

-- A started-registry member names one attempt of a job: '<id>:<attempt>'.
-- Fencing rides on it: an outcome or a heartbeat of an attempt that is no
-- longer the job's current one finds no member, and changes nothing.
local function member(id, attempt) return id .. ':' .. attempt end
local function member_id(m) return (string.match(m, '^(.*):%d+$')) or m end

-- Poison data never spreads: a key of the wrong type (found by a redis.pcall
-- that failed) is renamed out of the way, to quarantine:<key>, and noted in
-- the quarantine list, in the same atomic step that found it, so the rest of
-- the call (the other jobs of a fetch, the other queues) goes on. Returns
-- the note, for the worker to log.
local function quarantine(key, reason)
  local dest = P.quarantine .. ':' .. key
  redis.call('RENAME', key, dest)
  local note = cjson.encode({key = key, moved_to = dest, reason = reason, at = now_iso()})
  redis.call('RPUSH', P.quarantine, note)
  redis.call('LTRIM', P.quarantine, -1000, -1)
  return note
end

-- A call on a key that may be poisoned (a registry, a queue): on a key of the
-- wrong type, the key is quarantined and the call made again on a fresh key
-- (a read then finds it empty).
-- Only a WRONGTYPE error means poison; any other error (OOM, READONLY) is raised as it is.
local function poisoned(result)
  if type(result) ~= 'table' or not result.err then return false end
  if string.sub(result.err, 1, 9) ~= 'WRONGTYPE' then error(result.err) end  -- (as a string: Redis's error handler appends it)
  return true
end

local function guarded(cmd, key, ...)
  local result = redis.pcall(cmd, key, ...)
  if poisoned(result) then
    quarantine(key, result.err)
    return redis.call(cmd, key, ...)
  end
  return result
end

-- A call on one job's hash: a key someone replaced by another type is
-- quarantined, so that one bad job never stops a batch or a housekeeping
-- pass for all the others. Returns the result, or false and the note.
local function on_job(cmd, key, ...)
  local result = redis.pcall(cmd, key, ...)
  if not poisoned(result) then return result end
  return false, quarantine(key, result.err)
end

-- Leave one wake-up token for workers blocked on this queue (at most one
-- token waits; a woken worker passes the token on if work is left).
local function wake(queue)
  local w = P.wake .. queue
  if guarded('LLEN', w) == 0 then redis.call('RPUSH', w, '1') end
end

-- Put job ids on their queue (at the back, in order, or at the front), in
-- one command: a batch is at most a few hundred ids, as a Lua call takes a
-- bounded number of arguments. Only the empty -> non-empty transition costs
-- extra commands: registering the queue name and waking a blocked worker.
local function push_all(queue, ids, at_front)
  local n = guarded(at_front and 'LPUSH' or 'RPUSH', P.queue .. queue, unpack(ids))
  if n == #ids then
    guarded('SADD', P.queues, queue)
    wake(queue)
  end
  return n
end

local function push(queue, id, at_front) return push_all(queue, {id}, at_front) end

-- Record a terminal state (finished/failed/canceled): fields, then the
-- registry entry whose score is the moment the job hash may be deleted.
local function settle(registry, queue, id, fields, expires_at)
  redis.call('HSET', P.job .. id, unpack(fields))
  guarded('ZADD', registry .. queue, expires_at, id)
end

-- An expiry score from a TTL: negative keeps the job for ever.
local function expiry(ttl)
  ttl = tonumber(ttl) or 0
  if ttl < 0 then return '+inf', '-1' end
  local t = string.format('%.6f', now() + ttl)
  return t, t
end
