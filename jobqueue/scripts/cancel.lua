-- cancel.lua: cancel a job wherever it waits or runs.
-- Keys: queue:{q}, registry:{scheduled,started,canceled}:{q}, job:{id}.
-- Invariant: a canceled job is in no queue and in no registry but canceled,
-- so no worker starts it; a running attempt loses its started member, so its
-- outcome is dropped and its worker stops it at the next heartbeat.
-- ARGV[A] job id, A+1 queue, A+2 failure TTL (s; negative: for ever).
-- Returns the status the job had, or false when it does not exist.
local id, q = ARGV[A], ARGV[A + 1]
local key = P.job .. id
local h = redis.call('HMGET', key, 'status', 'attempt')
local status = h[1]
if not status then return false end
if status == 'finished' or status == 'failed' or status == 'canceled' then return status end
redis.call('LREM', P.queue .. q, 0, id)
redis.call('ZREM', P.scheduled .. q, id)
if h[2] then redis.call('ZREM', P.started .. q, member(id, h[2])) end
local score, expires = expiry(ARGV[A + 2])
settle(P.canceled, q, id, {'status', 'canceled', 'ended_at', now_iso(), 'expires_at', expires}, score)
return status
