-- fetch.lua: atomically move up to N jobs from the worker's queues, in
-- priority order, into their started registries, and return their hashes.
-- Keys: queue:{q}, registry:started:{q}, job:{id}, wake:{q}.
-- Invariant (no lost job): an id leaves a queue only in the same atomic
-- step that enters it in a started registry with a deadline; if the worker
-- dies at any later instant, the reaper finds the expired deadline.
-- ARGV[A] worker name, A+1 deadline, A+2 started_at (ISO), A+3 max jobs,
-- A+4 '1' when a wake-up token woke the worker, A+5.. queue names.
-- Returns a flat list: queue, id, hash (flat), ...
local worker, deadline, started_at = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local need = tonumber(ARGV[A + 3])
local woken = ARGV[A + 4] == '1'
local out = {}
for i = A + 5, #ARGV do
  if need <= 0 then break end
  local q = ARGV[i]
  local ids = redis.call('LPOP', P.queue .. q, need)
  if ids then
    local entries = {}
    for _, id in ipairs(ids) do
      local key = P.job .. id
      local h = redis.call('HGETALL', key)
      if #h > 0 then  -- a job whose hash expired (ttl) or was deleted is dropped
        redis.call('HSET', key, 'status', 'started', 'started_at', started_at, 'worker', worker)
        entries[#entries + 1] = deadline
        entries[#entries + 1] = id
        out[#out + 1] = q
        out[#out + 1] = id
        out[#out + 1] = h
      end
    end
    if #entries > 0 then redis.call('ZADD', P.started .. q, unpack(entries)) end
    need = need - #ids
    -- work may be left: a worker that was woken passes the token on, so
    -- idle workers join one after another (a busy one need not pay for it)
    if need == 0 and woken then wake(q) end
  end
end
return out
