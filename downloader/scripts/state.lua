-- state.lua: move a run along its lifecycle.
--   enqueuing -> enqueued   the producer has enqueued every link it read
--   enqueuing | enqueued -> canceled
-- Keys: run:{id} (hash: state, expected, canceled), run:{id}:producer (lease).
-- Invariant: a canceled run never goes back, so a producer that checks the
-- state after writing a batch learns of a cancel that missed the batch.
-- Invariant: a producer whose lease another one took does not seal the run
-- (the other one does); sealing releases the lease. The expiry of a run
-- that became complete follows (run.lua).
-- ARGV[1] run key, ARGV[2] 'enqueued' | 'canceled', ARGV[3] links read
-- (enqueued) or the time (canceled), ARGV[4] the producer's lease token.
-- Returns the state the run had, or false when there is no such run.
local run, to, arg, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', run, 'id') == 0 then return false end  -- gone, or deleted
local state = redis.call('HGET', run, 'state') or 'enqueued'
if to == 'enqueued' and state == 'enqueuing' then
  local holder = redis.call('GET', run .. ':producer')
  if holder and holder ~= token then return 'lost' end  -- another producer took over
  redis.call('HSET', run, 'state', 'enqueued', 'expected', arg)
  redis.call('DEL', run .. ':producer')
elseif to == 'canceled' and state ~= 'canceled' then
  redis.call('HSET', run, 'state', 'canceled', 'canceled', arg)
end
refresh_expiry(run)
return state
