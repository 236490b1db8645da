-- reap.lua: return the jobs of dead workers to their queues.
-- Keys: registry:started:{q}, job:{id}, queue:{q}, registry:failed:{q}.
-- A started entry whose deadline has passed belongs to a worker that
-- stopped beating (killed, frozen, lost its host): the job goes back to the
-- front of its queue (at-least-once), or to failed once it was abandoned
-- more than max_abandoned times.
-- Invariant: an expired job leaves the started registry in the same atomic
-- step that puts it on its queue or in the failed registry.
-- ARGV[A] now, A+1 now (ISO), A+2 max abandoned, A+3 failure expiry,
-- A+4.. queue names. Returns {requeued ids..., '|', failed ids...}.
local now, now_iso, max_abandoned = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2])
local fail_expiry = ARGV[A + 3]
local requeued, failed = {}, {}
for i = A + 4, #ARGV do
  local q = ARGV[i]
  local zkey = P.started .. q
  local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(expired) do
    redis.call('ZREM', zkey, id)
    local key = P.job .. id
    if redis.call('EXISTS', key) == 1 then
      local n = redis.call('HINCRBY', key, 'abandoned', 1)
      local worker = redis.call('HGET', key, 'worker') or '?'
      if n > max_abandoned then
        local reason = 'AbandonedJobError: job was abandoned ' .. n .. ' times by workers that died' ..
          ' (last: ' .. worker .. '); it may crash or exhaust its worker. Inspect it, then requeue it.'
        settle(P.failed, q, id, {'status', 'failed', 'ended_at', now_iso, 'exc_info', reason,
          'expires_at', fail_expiry}, fail_expiry)
        failed[#failed + 1] = id
      else
        redis.call('HSET', key, 'status', 'queued', 'enqueued_at', now_iso)
        push(q, id, true)
        requeued[#requeued + 1] = id
      end
    end
  end
end
requeued[#requeued + 1] = '|'
for _, id in ipairs(failed) do requeued[#requeued + 1] = id end
return requeued
