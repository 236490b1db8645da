-- lease.lua: the producer's lease on a run it enqueues (run:{id}:producer).
-- Invariant: at most one producer enqueues a run at a time; a producer that
-- died lets its lease lapse, and the run then reads as interrupted.
-- ARGV[1] lease key, ARGV[2] token, ARGV[3] 'take' | 'renew' | 'release',
-- ARGV[4] lease length (ms). Returns 1 when the lease is (still) ours.
local key, token, op, ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if op == 'take' then
  return redis.call('SET', key, token, 'NX', 'PX', ms) and 1 or 0
end
if redis.call('GET', key) ~= token then return 0 end
if op == 'renew' then redis.call('PEXPIRE', key, ms) else redis.call('DEL', key) end
return 1
