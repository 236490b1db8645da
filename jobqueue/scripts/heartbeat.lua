-- heartbeat.lua: a worker proves it is alive and extends the deadlines of
-- the attempts it is running; it learns which of them are no longer current.
-- Keys: worker:{name}, workers, clock, registry:started:{q}.
-- Invariant: a running attempt's deadline stays ahead of Redis's clock while
-- its worker beats; ZADD XX never resurrects an attempt that was settled,
-- reaped, canceled or superseded: those are returned, and the worker stops them.
-- Invariant (rejoin): a worker whose entry expired (cut off past its TTL)
-- comes back whole: the registration fields are written again with the beat
-- (and 'birth', the moment of this registration).
-- Outage watch: the clock key keeps when anyone last beat; a silence longer
-- than two beat intervals means Redis (or everyone's link) was down, and the
-- reaper grants a grace period from then (reap.lua).
-- ARGV[A] worker key, A+1 workers set key, A+2 worker name, A+3 worker-key
-- TTL (s), A+4 deadline TTL (s), A+5 clock key, A+6 beat interval (s),
-- A+7 n, then n registration values (field, value, ...), then m, then m
-- counter values (field, value, ...), then pairs of (queue, started member).
-- Returns the members that are no longer current.
local wkey, wset, name = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local deadline = now() + tonumber(ARGV[A + 4])
local clock, interval = ARGV[A + 5], tonumber(ARGV[A + 6])
local i = A + 7
local n = tonumber(ARGV[i])
-- (the worker's own keys and the clock, guarded: one of another type is quarantined, never a stopped beat)
if guarded('HLEN', wkey) == 0 then  -- a first beat, or a rejoin: the registration again
  if n > 0 then redis.call('HSET', wkey, 'birth', now_iso(), unpack(ARGV, i + 1, i + n)) end
end
guarded('SADD', wset, name)  -- at every beat: a set someone emptied or replaced holds us again
i = i + n + 1
local m = tonumber(ARGV[i])
redis.call('HSET', wkey, 'last_seen', string.format('%.6f', now()), 'last_heartbeat', now_iso(),
  unpack(ARGV, i + 1, i + m))
redis.call('EXPIRE', wkey, ARGV[A + 3])
-- a fleet's beats write the clock a few times an interval, not once each
local last = tonumber(guarded('HGET', clock, 'beat') or '')
if not last or now() - last > 2 * interval then
  redis.call('HSET', clock, 'beat', now(), 'since', now())
elseif now() - last > interval / 4 then
  redis.call('HSET', clock, 'beat', now())
end
-- ZADD XX CH answers 0 for a member that is gone and for one whose deadline
-- did not move (a take's whole-second deadline may equal this one): ZSCORE
-- tells them apart, in the rare case.
local gone = {}
for j = i + m + 1, N, 2 do
  local key = P.started .. ARGV[j]
  if redis.call('ZADD', key, 'XX', 'CH', deadline, ARGV[j + 1]) == 0 and not redis.call('ZSCORE', key, ARGV[j + 1]) then
    gone[#gone + 1] = ARGV[j + 1]
  end
end
return gone
