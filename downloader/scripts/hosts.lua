-- hosts.lua: politeness toward a host, shared by every worker of the fleet.
-- Keys: host:{h} (hash: limit, rate, until, tokens, stamp), host:{h}:held
-- (hash: worker -> permits), host:{h}:leases (zset: worker -> lease expiry),
-- hosts:throttled (zset: host -> throttled until).
-- Invariant (in flight): the permits held by live leases never add up to
-- more than the host's limit, and a worker starts a request only on a
-- permit it holds, so the fleet never has more requests in flight to the
-- host than its limit. A lease not renewed lapses: a dead worker's permits
-- come back within the lease time.
-- Invariant (rate): tokens are taken from one bucket per host (capacity
-- max(1, rate), refilled at rate per second): the fleet starts no more
-- than that many requests a second, after a first burst of the capacity.
-- Invariant (throttle): `until` only moves forward; while it lies ahead no
-- permit or token is handed out (callers wait without asking again).
-- Times come from Redis's clock (TIME), never a worker's.
--
-- lease:    ARGV[1] 'lease', [2] host key, [3] worker, [4] permits wanted in
--           all (absolute: less than held gives some back), [5] lease
--           seconds, [6] default limit, [7] tokens wanted.
--           Returns {permits held, seconds it stays throttled, tokens granted
--           (all asked for when it has no rate), seconds until the next
--           token, its rate (numbers as strings), keys moved away (below)}.
-- throttle: ARGV[1] 'throttle', [2] host key, [3] host, [4] seconds, [5] index key.
--           Returns {until, keys moved away}.
-- Poison data stays put: a key of the host (or the index) that someone replaced
-- by another type is renamed to '<key>:quarantined', kept for inspection, and
-- named back for the worker to log, rather than fail every download from the host.
local op, key = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local moved = {}
local function expect(k, kind)
  local found = redis.call('TYPE', k).ok
  if found ~= kind and found ~= 'none' then
    redis.call('RENAME', k, k .. ':quarantined')
    moved[#moved + 1] = k
  end
end
expect(key, 'hash')

if op == 'throttle' then
  expect(ARGV[5], 'zset')
  local untl = now + tonumber(ARGV[4])
  local was = tonumber(redis.call('HGET', key, 'until')) or 0
  if untl > was then
    redis.call('HSET', key, 'until', string.format('%.3f', untl))
    redis.call('ZADD', ARGV[5], untl, ARGV[3])
  end
  return {string.format('%.3f', math.max(untl, was)), moved}
end

local held_key, leases_key = key .. ':held', key .. ':leases'
expect(held_key, 'hash')
expect(leases_key, 'zset')
local worker, want, ttl = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local h = redis.call('HMGET', key, 'limit', 'rate', 'until', 'tokens', 'stamp')
local limit = tonumber(h[1]) or tonumber(ARGV[6])
if limit <= 0 then limit = math.huge end  -- 0: no limit
local rate, untl = tonumber(h[2]) or 0, tonumber(h[3]) or 0

for _, gone in ipairs(redis.call('ZRANGEBYSCORE', leases_key, '-inf', now)) do
  redis.call('HDEL', held_key, gone)
  redis.call('ZREM', leases_key, gone)
end
local total, mine = 0, 0
local all = redis.call('HGETALL', held_key)
for i = 1, #all, 2 do
  total = total + tonumber(all[i + 1])
  if all[i] == worker then mine = tonumber(all[i + 1]) end
end
if untl > now then want = math.min(want, mine) end  -- throttled: keep what runs, take no more
if want > mine then
  mine = mine + math.max(0, math.min(want - mine, limit - total))
elseif want < mine then
  mine = math.max(0, want)
end
if mine > 0 then
  redis.call('HSET', held_key, worker, mine)
  redis.call('ZADD', leases_key, now + ttl, worker)
  redis.call('PEXPIRE', held_key, math.ceil(ttl * 2000))
  redis.call('PEXPIRE', leases_key, math.ceil(ttl * 2000))
else
  redis.call('HDEL', held_key, worker)
  redis.call('ZREM', leases_key, worker)
end

local granted, wait = tonumber(ARGV[7]) or 0, 0
if rate > 0 and granted > 0 then
  local capacity = math.max(1, rate)
  local tokens = tonumber(h[4]) or capacity
  local stamp = tonumber(h[5]) or now
  tokens = math.min(capacity, tokens + (now - stamp) * rate)
  if untl > now then granted = 0 else granted = math.min(granted, math.floor(tokens)) end
  tokens = tokens - granted
  if granted == 0 then wait = (1 - tokens) / rate end
  redis.call('HSET', key, 'tokens', string.format('%.6f', tokens), 'stamp', string.format('%.6f', now))
end
return {tostring(mine), string.format('%.3f', math.max(0, untl - now)), tostring(granted),
        string.format('%.3f', wait), tostring(rate), moved}
