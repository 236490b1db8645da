-- delete.lua: remove a job and every reference to it.
-- Keys: queue:{q}, registry:*:{q}, job:{id}.
-- Invariant: no queue or registry keeps an id whose hash is gone; a running
-- attempt loses its started member, so its outcome is dropped.
-- ARGV[A] job id, A+1 queue. Returns 1 when a hash was deleted.
local id, q = ARGV[A], ARGV[A + 1]
local key = P.job .. id
local attempt = redis.call('HGET', key, 'attempt')
redis.call('LREM', P.queue .. q, 0, id)
if attempt then redis.call('ZREM', P.started .. q, member(id, attempt)) end
for _, reg in ipairs({P.finished, P.failed, P.scheduled, P.canceled}) do redis.call('ZREM', reg .. q, id) end
return redis.call('DEL', key)
