-- reap.lua: return the jobs of dead workers to their queues.
-- Keys: registry:started:{q}, job:{id}, queue:{q}, registry:failed:{q}, clock.
-- A started member whose deadline has passed on Redis's clock belongs to a
-- worker that stopped beating (killed, frozen, cut off): the job goes back to
-- the front of its queue (at-least-once), or to failed once it was abandoned
-- more than max_abandoned times.
-- Invariant: an expired attempt leaves the started registry in the same
-- atomic step that puts its job on its queue or in the failed registry; a
-- member that is not the job's current attempt is only removed.
-- Invariant (an outage is nobody's death): after a silence of every
-- heartbeat (Redis down, restarted or stalled; see heartbeat.lua) nothing is
-- reaped for a grace period, so live workers can beat again first.
-- ARGV[A] max abandoned, A+1 failure TTL (s), A+2 clock key, A+3 beat
-- interval (s), A+4 grace (s), A+5.. queue names.
-- Returns {requeued ids..., '|', failed ids..., '|', grace seconds left}.
local max_abandoned, fail_ttl = tonumber(ARGV[A]), ARGV[A + 1]
local clock, interval, grace = ARGV[A + 2], tonumber(ARGV[A + 3]), tonumber(ARGV[A + 4])
local seen = guarded('HMGET', clock, 'beat', 'since')
local last, since = tonumber(seen[1] or ''), tonumber(seen[2] or '')
if not last or now() - last > 2 * interval then
  since = now()  -- no heartbeat for a while: the grace counts from here (and again, until beats resume)
  redis.call('HSET', clock, 'since', since)
end
local left = (since or 0) + grace - now()
if left > 0 then return {'|', '|', string.format('%.3f', left)} end

local requeued, failed = {}, {}
for i = A + 5, N do
  local q = ARGV[i]
  local zkey = P.started .. q
  local expired = guarded('ZRANGEBYSCORE', zkey, '-inf', now(), 'LIMIT', 0, 1000)
  for _, m in ipairs(expired) do
    redis.call('ZREM', zkey, m)
    local id = member_id(m)
    local key = P.job .. id
    local h = on_job('HMGET', key, 'attempt', 'worker')  -- (false: not a hash, now quarantined)
    if h and h[1] and member(id, h[1]) == m then
      local n = redis.call('HINCRBY', key, 'abandoned', 1)
      if n > max_abandoned then
        local reason = 'AbandonedJobError: job was abandoned ' .. n .. ' times by workers that died' ..
          ' (last: ' .. (h[2] or '?') .. '); it may crash or exhaust its worker. Inspect it, then requeue it.'
        local score, expires = expiry(fail_ttl)
        settle(P.failed, q, id, {'status', 'failed', 'ended_at', now_iso(), 'exc_info', reason,
          'expires_at', expires}, score)
        failed[#failed + 1] = id
      else
        redis.call('HSET', key, 'status', 'queued', 'enqueued_at', now_iso())
        push(q, id, true)
        requeued[#requeued + 1] = id
      end
    end
  end
end
requeued[#requeued + 1] = '|'
for _, id in ipairs(failed) do requeued[#requeued + 1] = id end
requeued[#requeued + 1] = '|'
requeued[#requeued + 1] = '0'
return requeued
