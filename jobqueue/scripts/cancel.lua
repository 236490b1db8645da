-- cancel.lua: cancel a job wherever it waits.
-- Keys: queue:{q}, registry:{scheduled,started,canceled}:{q}, job:{id}.
-- Invariant: a canceled job is in no queue and in no registry but canceled,
-- so no worker starts it and a running one's result is not recorded.
-- ARGV[A] job id, A+1 queue, A+2 now (ISO), A+3 expiry score.
-- Returns the status the job had, or false when it does not exist.
local id, q = ARGV[A], ARGV[A + 1]
local key = P.job .. id
local status = redis.call('HGET', key, 'status')
if not status then return false end
if status == 'finished' or status == 'failed' or status == 'canceled' then return status end
redis.call('LREM', P.queue .. q, 0, id)
redis.call('ZREM', P.scheduled .. q, id)
redis.call('ZREM', P.started .. q, id)
settle(P.canceled, q, id, {'status', 'canceled', 'ended_at', ARGV[A + 2], 'expires_at', ARGV[A + 3]}, ARGV[A + 3])
return status
