-- forget.lua: a deleted run's records go, its id stays a tombstone for a
-- while (so a late producer or status learns it was deleted), and the runs
-- index forgets it, all in one step.
-- Invariant: the index never lists a run whose records are gone, and a
-- refused call (an index of another type, run.lua) deletes nothing.
-- ARGV[1] runs index, ARGV[2] run id, ARGV[3] the tombstone's state,
-- ARGV[4] its TTL (s), ARGV[5] the run key, ARGV[6..] the run's other keys.
local refused = index_refused(ARGV[1])
if refused then return refused end
redis.call('DEL', unpack(ARGV, 5))
redis.call('HSET', ARGV[5], 'state', ARGV[3])
redis.call('EXPIRE', ARGV[5], ARGV[4])
redis.call('ZREM', ARGV[1], ARGV[2])
