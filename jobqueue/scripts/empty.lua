-- empty.lua: remove every waiting job of a queue, hashes included.
-- Keys: queue:{q}, job:{id}.
-- Invariant: ids and their hashes go together, so no queued id is left
-- pointing at nothing and no orphan hash stays behind.
-- ARGV[A] queue. Returns the number of jobs removed.
local qkey = P.queue .. ARGV[A]
local ids = redis.call('LRANGE', qkey, 0, -1)
for s = 1, #ids, 1000 do
  local keys = {}
  for n = s, math.min(s + 999, #ids) do keys[#keys + 1] = P.job .. ids[n] end
  redis.call('DEL', unpack(keys))
end
redis.call('DEL', qkey)
return #ids
