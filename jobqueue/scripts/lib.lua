-- lib.lua: prepended to every script below (see scripts/__init__.py).
-- ARGV[1..9] are the key prefixes from keys.py (Keys.script_prefixes); a
-- script's own arguments start at ARGV[A]. Keys are derived here only by
-- appending a queue name or a job id to one of those prefixes.
local P = {
  job = ARGV[1], queue = ARGV[2], wake = ARGV[3],
  started = ARGV[4], finished = ARGV[5], failed = ARGV[6],
  scheduled = ARGV[7], canceled = ARGV[8], queues = ARGV[9],
}
local A = 10

-- Leave one wake-up token for workers blocked on this queue (at most one
-- token waits; a woken worker passes the token on if work is left).
local function wake(queue)
  local w = P.wake .. queue
  if redis.call('LLEN', w) == 0 then redis.call('RPUSH', w, '1') end
end

-- Put a job id on its queue. Only the empty -> non-empty transition costs
-- extra commands: registering the queue name and waking a blocked worker.
local function push(queue, id, at_front)
  local n
  if at_front then
    n = redis.call('LPUSH', P.queue .. queue, id)
  else
    n = redis.call('RPUSH', P.queue .. queue, id)
  end
  if n == 1 then
    redis.call('SADD', P.queues, queue)
    wake(queue)
  end
  return n
end

-- Record a terminal state (finished/failed/canceled): fields, then the
-- registry entry whose score is the moment the job hash may be deleted.
local function settle(registry, queue, id, fields, expires_at)
  redis.call('HSET', P.job .. id, unpack(fields))
  redis.call('ZADD', registry .. queue, expires_at, id)
end
