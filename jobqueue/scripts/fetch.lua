-- fetch.lua: atomically move up to N jobs from the worker's queues, in
-- priority order, into their started registries as new attempts, and return
-- their hashes.
-- Keys: queue:{q}, registry:started:{q}, job:{id}, wake:{q}, worker:{name}:fetch.
-- Invariant (no lost job): an id leaves a queue only in the same atomic
-- step that enters it in a started registry with a deadline; if the worker
-- dies at any later instant, the reaper finds the expired deadline.
-- Invariant (fencing): each take is a new attempt (the job's 'attempt' + 1,
-- named in its started member), so whatever an earlier attempt does later
-- finds no member and changes nothing.
-- Invariant (replay-safe): the call's request id and what it took are kept
-- for one heartbeat TTL; the same call sent again (its reply was lost; a
-- client retried) gets the same attempts back and takes nothing new.
-- ARGV[A] worker name, A+1 deadline TTL (s), A+2 max jobs, A+3 '1' when a
-- wake-up token woke the worker, A+4 fetch-record key, A+5 request id,
-- A+6.. queue names.
-- Returns a flat list: queue, id, attempt, hash (flat), ...
local worker, ttl, need = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local woken = ARGV[A + 3] == '1'
local record_key, request = ARGV[A + 4], ARGV[A + 5]
local out = {}

local last = redis.call('GET', record_key)
if last then
  local rec = cjson.decode(last)
  if rec.r == request then
    for _, e in ipairs(rec.j) do  -- {queue, id, attempt}: those still current
      if redis.call('ZSCORE', P.started .. e[1], member(e[2], e[3])) then
        out[#out + 1] = e[1]; out[#out + 1] = e[2]; out[#out + 1] = e[3]
        out[#out + 1] = redis.call('HGETALL', P.job .. e[2])
      end
    end
    return out
  end
end

local deadline = now() + ttl
local taken = {}
for i = A + 6, #ARGV do
  if need <= 0 then break end
  local q = ARGV[i]
  local ids = redis.call('LPOP', P.queue .. q, need)
  if ids then
    local entries = {}
    for _, id in ipairs(ids) do
      local key = P.job .. id
      local h = redis.call('HGETALL', key)
      if #h > 0 then  -- a job whose hash expired (ttl) or was deleted is dropped
        local attempt = 1
        for f = 1, #h, 2 do
          if h[f] == 'attempt' then attempt = (tonumber(h[f + 1]) or 0) + 1 end
        end
        redis.call('HSET', key, 'status', 'started', 'started_at', now_iso(), 'worker', worker, 'attempt', attempt)
        entries[#entries + 1] = deadline
        entries[#entries + 1] = member(id, attempt)
        out[#out + 1] = q; out[#out + 1] = id; out[#out + 1] = attempt; out[#out + 1] = h
        taken[#taken + 1] = {q, id, attempt}
      end
    end
    if #entries > 0 then redis.call('ZADD', P.started .. q, unpack(entries)) end
    need = need - #ids
    -- work may be left: a worker that was woken passes the token on, so
    -- idle workers join one after another (a busy one need not pay for it)
    if need == 0 and woken then wake(q) end
  end
end
if #taken > 0 then
  redis.call('SET', record_key, cjson.encode({r = request, j = taken}), 'PX', math.max(1, math.ceil(ttl * 1000)))
end
return out
