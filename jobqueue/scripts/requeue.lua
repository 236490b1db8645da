-- requeue.lua: put failed (or canceled) jobs back on their queue.
-- Keys: registry:{failed,canceled}:{q}, job:{id}, queue:{q}.
-- Invariant: a job leaves the failed/canceled registry in the same atomic
-- step that puts it back on its queue; ids not in either are left alone.
-- ARGV[A] queue, A+1.. job ids. Returns the ids requeued.
local q = ARGV[A]
local done = {}
for i = A + 1, N do
  local id = ARGV[i]
  local was = redis.call('ZREM', P.failed .. q, id) + redis.call('ZREM', P.canceled .. q, id)
  if was > 0 and redis.call('EXISTS', P.job .. id) == 1 then
    redis.call('HSET', P.job .. id, 'status', 'queued', 'enqueued_at', now_iso(), 'abandoned', 0)
    redis.call('HDEL', P.job .. id, 'exc_info', 'ended_at', 'expires_at')
    push(q, id, false)
    done[#done + 1] = id
  end
end
return done
