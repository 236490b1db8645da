-- empty.lua: remove waiting jobs of a queue, hashes included, a bounded
-- number per call (Queue.empty calls it until the queue is empty), so no
-- call holds Redis up for long however long the queue.
-- Keys: queue:{q}, job:{id}.
-- Invariant: ids and their hashes go together, so no queued id is left
-- pointing at nothing and no orphan hash stays behind.
-- ARGV[A] queue, A+1 most ids to remove. Returns the number of jobs removed.
local qkey = P.queue .. ARGV[A]
local ids = redis.call('LRANGE', qkey, 0, tonumber(ARGV[A + 1]) - 1)
for s = 1, #ids, 1000 do
  local keys = {}
  for n = s, math.min(s + 999, #ids) do keys[#keys + 1] = P.job .. ids[n] end
  redis.call('DEL', unpack(keys))
end
redis.call('LTRIM', qkey, #ids, -1)
return #ids
