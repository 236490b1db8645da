-- fetch.lua: atomically move up to N jobs from the worker's queues, in
-- priority order, into their started registries as new attempts, and return
-- their hashes.
-- Keys: queue:{q}, registry:started:{q}, job:{id}, wake:{q}.
-- A job whose ttl ran out while it waited is dropped and not counted as
-- taken (a burst worker must not mistake it for work done); a taken job's
-- ttl is removed (PERSIST): ttl bounds only the wait in the queue.
-- Invariant (no lost job): an id leaves a queue only in the same atomic
-- step that enters it in a started registry with a deadline; if the worker
-- dies at any later instant, the reaper finds the expired deadline.
-- Invariant (fencing): each take is a new attempt (the job's 'attempt' + 1,
-- named in its started member), so whatever an earlier attempt does later
-- finds no member and changes nothing.
-- Invariant (replay-safe): each take stamps the call's request id ('fetch');
-- a call sent again because its reply was lost (ARGV[A+5] = '1') hands back
-- the attempts it took, if it ran, and takes nothing new. (The worker's
-- connection does not retry by itself, so every resend is flagged.)
-- ARGV[A] worker name, A+1 deadline TTL (s), A+2 max jobs, A+3 '1' when a
-- wake-up token woke the worker, A+4 request id, A+5 '1' when sent again,
-- A+6..N queue names.
-- Returns a flat list: queue, id, attempt, hash (flat), ...; a quarantined
-- key comes as '', its note, 0, {} (logged by the next maintenance pass).
-- Shared options come in entries of their own (below): the worker needs no
-- second round trip for them.
local worker, ttl, need = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local woken = ARGV[A + 3] == '1'
local request = ARGV[A + 4]
local out = {}

-- What a take reads of a job's hash, in one pass: its last attempt, whether
-- it waited with a ttl, the digest of its shared options.
local function scan(h)
  local attempt, waits_with_ttl, shared = 0, false, nil
  for f = 1, #h, 2 do
    local name = h[f]
    if name == 'attempt' then attempt = tonumber(h[f + 1]) or 0
    elseif name == 'ttl' then waits_with_ttl = true
    elseif name == 'shared' then shared = h[f + 1] end
  end
  return attempt, waits_with_ttl, shared
end

-- A job's shared options (compact.py) come once per call, in an entry of
-- their own ('\0shared', digest, 0, hash) before the first job naming them.
local shared_sent = {}
local function send_shared(name)
  if name and not shared_sent[name] then
    shared_sent[name] = true
    local key = P.shared .. name
    local s = redis.pcall('HGETALL', key)
    if poisoned(s) then quarantine(key, s.err); s = {} end
    out[#out + 1] = '\0shared'; out[#out + 1] = name; out[#out + 1] = 0; out[#out + 1] = s
  end
end

if ARGV[A + 5] == '1' then  -- rare: scan the started attempts for this request's stamp
  for i = A + 6, N do
    local q = ARGV[i]
    for _, m in ipairs(guarded('ZRANGE', P.started .. q, 0, -1)) do
      local id = member_id(m)
      local h, note = on_job('HMGET', P.job .. id, 'fetch', 'attempt')
      if not h then  -- not a hash: out of the way, and said; the other attempts are handed back
        out[#out + 1] = ''; out[#out + 1] = note; out[#out + 1] = 0; out[#out + 1] = {}
      elseif h[1] == request and member(id, h[2]) == m then
        local hash = redis.call('HGETALL', P.job .. id)
        local _, _, shared = scan(hash)
        send_shared(shared)
        out[#out + 1] = q; out[#out + 1] = id; out[#out + 1] = tonumber(h[2])
        out[#out + 1] = hash
      end
    end
  end
  if #out > 0 then return out end
end

-- Whole seconds, rounded up (never a shorter lease than asked): Redis keeps a
-- small sorted set (up to 128 members) as one list and, inserting, parses the
-- score of every entry it walks past; a fractional score is 17 digits to
-- parse, an integer is kept as an integer. (Not so for the finished registry:
-- big, a skip list, where equal scores cost more than fractions.) Heartbeats
-- move deadlines to the exact fraction (their ZADD CH must see a change).
local deadline = string.format('%d', math.ceil(now() + ttl))
for i = A + 6, N do
  if need <= 0 then break end
  local q = ARGV[i]
  local ids = redis.pcall('LPOP', P.queue .. q, need)
  if poisoned(ids) then  -- not a list: out of the way, the other queues go on
    out[#out + 1] = ''; out[#out + 1] = quarantine(P.queue .. q, ids.err); out[#out + 1] = 0; out[#out + 1] = {}
    ids = false
  end
  while ids do
    local entries = {}
    for _, id in ipairs(ids) do
      local key = P.job .. id
      local h = redis.pcall('HGETALL', key)
      if poisoned(h) then  -- not a hash: out of the way; the other jobs of this fetch go on
        out[#out + 1] = ''; out[#out + 1] = quarantine(key, h.err); out[#out + 1] = 0; out[#out + 1] = {}
        h = {}
      end
      if #h > 0 then  -- a job whose hash expired (ttl) or was deleted is dropped, and not counted as taken
        local last, waits_with_ttl, shared = scan(h)
        local attempt = last + 1
        local a = string.format('%d', attempt)  -- once, as an integer (Lua's tostring goes through printf's float path)
        -- ttl bounds only the wait in the queue: a started job's hash never expires under it
        if waits_with_ttl then redis.call('PERSIST', key) end
        redis.call('HSET', key, 'status', 'started', 'started_at', now_iso(), 'worker', worker, 'attempt', a,
          'fetch', request)
        entries[#entries + 1] = deadline
        entries[#entries + 1] = member(id, a)
        send_shared(shared)
        out[#out + 1] = q; out[#out + 1] = id; out[#out + 1] = attempt; out[#out + 1] = h
        need = need - 1
      end
    end
    if #entries > 0 then guarded('ZADD', P.started .. q, unpack(entries)) end
    ids = need > 0 and redis.call('LPOP', P.queue .. q, need) or false
  end
  -- work may be left: a worker that was woken passes the token on, so
  -- idle workers join one after another (a busy one need not pay for it)
  if need == 0 and woken then wake(q) end
end
return out
