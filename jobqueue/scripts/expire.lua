-- expire.lua: delete jobs whose result_ttl / failure_ttl has run out.
-- Keys: registry:{finished,failed,canceled}:{q}, job:{id}. Expiry is judged on Redis's clock.
-- Invariant: a job hash is deleted together with its registry entry, so a
-- registry never lists a job that cannot be fetched (after this pass).
-- ARGV[A].. queue names. Returns the number of jobs deleted.
local deleted = 0
for i = A, N do
  for _, reg in ipairs({P.finished, P.failed, P.canceled}) do
    local zkey = reg .. ARGV[i]
    local ids = guarded('ZRANGEBYSCORE', zkey, '-inf', now(), 'LIMIT', 0, 1000)
    if #ids > 0 then
      local keys = {}
      for n, id in ipairs(ids) do keys[n] = P.job .. id end
      redis.call('DEL', unpack(keys))
      redis.call('ZREM', zkey, unpack(ids))
      deleted = deleted + #ids
    end
  end
end
return deleted
