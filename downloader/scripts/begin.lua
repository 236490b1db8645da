-- begin.lua: a new run, its producer's lease and its entry in the runs index,
-- all three or none.
-- Invariant: never a run without its lease (it would read as interrupted) nor
-- one the index does not list (`downloader runs` would never show it, and
-- nothing would ever expire it): an index someone replaced by another type is
-- refused before anything is written (run.lua).
-- ARGV[1] run key, ARGV[2] lease key, ARGV[3] runs index, ARGV[4] run id,
-- ARGV[5] its score in the index (created), ARGV[6] lease token, ARGV[7]
-- lease length (ms), then the run's fields (field, value, ...).
local refused = index_refused(ARGV[3])
if refused then return refused end
redis.call('HSET', ARGV[1], unpack(ARGV, 8))
redis.call('SET', ARGV[2], ARGV[6], 'PX', ARGV[7])
redis.call('ZADD', ARGV[3], ARGV[5], ARGV[4])
