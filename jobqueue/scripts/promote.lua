-- promote.lua: move scheduled jobs that are due (on Redis's clock) onto their queues.
-- Keys: registry:scheduled:{q}, job:{id}, queue:{q}, wake:{q}.
-- Invariant: a due job is in exactly one of scheduled registry or queue,
-- never both and never neither (remove and push in one atomic step).
-- ARGV[A].. queue names.
-- Returns the seconds until the earliest job still scheduled on those queues is due, or false.
local earliest = false
for i = A, N do
  local q = ARGV[i]
  local zkey = P.scheduled .. q
  local due = guarded('ZRANGEBYSCORE', zkey, '-inf', now(), 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', zkey, id)
    -- (a hash someone replaced by another type is quarantined, and not pushed)
    local key = P.job .. id
    if redis.call('EXISTS', key) == 1 and on_job('HSET', key, 'status', 'queued', 'enqueued_at', now_iso()) then
      push(q, id, false)
    end
  end
  local nxt = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #nxt > 0 and (not earliest or tonumber(nxt[2]) < earliest) then earliest = tonumber(nxt[2]) end
end
if not earliest then return false end
return string.format('%.6f', math.max(0, earliest - now()))
