-- enqueue.lua: store jobs and put them on their queue (or in the scheduled
-- registry when they carry a run-at time), one atomic step per batch.
-- Keys: job:{id}, shared:{digest}, queue:{q}, registry:*:{q}, queues, wake:{q}.
-- Invariant: a job id is visible in a queue or registry only once its hash
-- is complete, so a worker never dequeues a half-written job.
-- Invariant (live ids are unique): an id that is queued, scheduled or
-- started is neither pushed again nor overwritten; a finished, failed or
-- canceled one is replaced (its old registry entry goes with it).
-- Invariant (replay-safe): every job stamps the call's request id; the same
-- call sent again (lost reply, client retry) finds its own stamp and
-- changes nothing.
-- Invariant (a job's shared options exist before it does): the shared
-- hashes the jobs name are written in the same step, before any job; their
-- content is fixed by their digest, so writing one again changes nothing
-- (and mends one someone altered).
-- ARGV[A] request id, A+1 = JSON list of {id, q, f = [field, value, ...],
-- front, at (epoch run-at) or delay (seconds from now, Redis's clock), ttl},
-- A+2 = JSON object {digest: [field, value, ...]} of the shared hashes,
-- A+3 (optional) = JSON object of what a record lacks: q, front, ttl, and
-- base = the fields every record's own 'f' follows (a batch of one call's
-- jobs sends them once, not per job), once = a hash of the caller's;
-- A+4 (with once) = JSON list of one [field, value] per record.
-- Invariant (once, Queue.enqueue_once): a record whose field is in the
-- 'once' hash already is left out (neither enqueued nor refused); the
-- others set theirs, in the same step as they are written.
-- Returns {number enqueued by this call, ids refused as live...}.
local request = ARGV[A]
local jobs = cjson.decode(ARGV[A + 1])
local defaults = N > A + 2 and cjson.decode(ARGV[A + 3]) or {}
local base, lacking = defaults.base, {__index = defaults}
local once = defaults.once and cjson.decode(ARGV[A + 4])
local live = {queued = true, scheduled = true, started = true}
local registry = {finished = P.finished, failed = P.failed, canceled = P.canceled}
local done, refused = 0, {}
local tails, order = {}, {}
for name, f in pairs(cjson.decode(ARGV[A + 2])) do
  if #f > 0 then guarded('HSET', P.shared .. name, unpack(f)) end
end
for i, j in ipairs(jobs) do
  setmetatable(j, lacking)
  local key = P.job .. j.id
  local old = redis.call('HMGET', key, 'status', 'enq', 'origin')
  if old[2] == request then
    done = done + 1  -- ours: a replay of this very call
  elseif once and redis.call('HSETNX', defaults.once, once[i][1], once[i][2]) == 0 then
    -- known already: left out
  elseif live[old[1]] then
    refused[#refused + 1] = j.id
  else
    if old[1] then  -- settled (or a hash without a status): replaced
      if registry[old[1]] then redis.call('ZREM', registry[old[1]] .. (old[3] or j.q), j.id) end
      redis.call('DEL', key)
    end
    local f = j.f
    if base then  -- the batch's common fields first, the job's own after them (and winning)
      f = {unpack(base)}
      for _, x in ipairs(j.f) do f[#f + 1] = x end
    end
    redis.call('HSET', key, 'enq', request, unpack(f))
    if j.ttl and j.ttl ~= cjson.null then redis.call('EXPIRE', key, j.ttl) end
    local at = j.at
    if j.delay and j.delay ~= cjson.null then at = now() + j.delay end
    if at and at ~= cjson.null then
      guarded('ZADD', P.scheduled .. j.q, at, j.id)
      guarded('SADD', P.queues, j.q)
      wake(j.q)  -- blocked workers recompute when the next scheduled job is due
    elseif j.front == 1 then
      push(j.q, j.id, true)
    else  -- pushed with the others of its queue, in order, in one RPUSH below
      if not tails[j.q] then tails[j.q] = {}; order[#order + 1] = j.q end
      local ids = tails[j.q]
      ids[#ids + 1] = j.id
    end
    done = done + 1
  end
end
for _, q in ipairs(order) do push_all(q, tails[q]) end
table.insert(refused, 1, done)
return refused
