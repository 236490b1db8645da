-- run.lua: prepended to every script of the downloader. A run's keys, and
-- when it is complete.
-- A run is complete when it was canceled, or when it is fully enqueued
-- ('enqueued') and every URL of it settled (done, skipped or failed).
-- Invariant (expiry): a complete run's keys all carry the run's TTL ('keep'
-- seconds, 0 = kept for ever) from its last change on; an incomplete run's
-- keys never expire, so nothing a run still waits for goes away under it.
local PARTS = {'', ':urls', ':done', ':skipped', ':failed', ':reasons'}

local function settled(run)
  return redis.call('SCARD', run .. ':done') + redis.call('SCARD', run .. ':skipped')
    + redis.call('SCARD', run .. ':failed')
end

local function complete(run, state)
  return state == 'canceled' or (state == 'enqueued' and settled(run) >= redis.call('HLEN', run .. ':urls'))
end

local function refresh_expiry(run)
  local h = redis.call('HMGET', run, 'state', 'keep', 'completed')
  local keep = tonumber(h[2]) or 0
  if complete(run, h[1]) then
    if not h[3] then
      local t = redis.call('TIME')
      redis.call('HSET', run, 'completed', string.format('%d.%06d', t[1], t[2]))
    end
    if keep > 0 then
      for _, part in ipairs(PARTS) do redis.call('EXPIRE', run .. part, math.ceil(keep)) end
    end
  elseif h[3] then
    redis.call('HDEL', run, 'completed')
    for _, part in ipairs(PARTS) do redis.call('PERSIST', run .. part) end
  end
end

-- The runs index, when someone replaced it by another type: a command that
-- fails inside a script keeps what ran before it, so a script that writes the
-- index asks first, and refuses before it writes anything.
local function index_refused(index)
  local kind = redis.call('TYPE', index).ok
  if kind == 'zset' or kind == 'none' then return false end
  return redis.error_reply('WRONGTYPE the runs index ' .. index .. ' holds a ' .. kind .. ', not a sorted set')
end
