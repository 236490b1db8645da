-- mark.lua: record what became of URLs of runs (a batch: Job.write_on_success
-- hands the worker's whole round trip to one call).
-- Keys: run:{id} (hash, 'bytes'), run:{id}:{done,skipped,failed} (sets), run:{id}:reasons.
-- Invariant: a URL is in at most one of done/skipped/failed, so the three
-- SCARDs add up to the settled part of the run (progress is O(1)); bytes are
-- counted once per URL however often the at-least-once queue runs its job,
-- and a URL once done is never demoted to skipped by a re-run.
-- Invariant: a run that is gone (deleted, expired) is not written again: a
-- late job of it leaves no key behind. The run's expiry follows (run.lua).
-- Invariant (archive): an item is added to its download archive only with a
-- done or skipped mark: once its file is complete (archive.py).
-- What is per run (is it there, its byte count, its expiry) is read and
-- written once per call, after its URLs: the call is atomic, so only the
-- run's state at the end of it counts.
-- ARGV[1]: JSON array of [run key, url, state (done|skipped|failed|pending), bytes, reason,
-- archive key, archive member] (the last two optional).
local function mark(run, url, state, nbytes, reason, totals)
  local was_done
  if state == 'done' then
    was_done = redis.call('SADD', run .. ':done', url) == 0
  else
    was_done = redis.call('SISMEMBER', run .. ':done', url) == 1
    if state == 'skipped' and was_done then return end
  end
  for _, s in ipairs({'done', 'skipped', 'failed'}) do
    if s ~= state then redis.call('SREM', run .. ':' .. s, url) end
  end
  if state == 'skipped' or state == 'failed' then redis.call('SADD', run .. ':' .. state, url) end
  if state == 'failed' then
    redis.call('HSET', run .. ':reasons', url, reason)
  else
    redis.call('HDEL', run .. ':reasons', url)
  end
  if state == 'done' and not was_done and nbytes > 0 then
    totals[run] = totals[run] + nbytes
  end
end

local live, totals, order = {}, {}, {}
local marks = cjson.decode(ARGV[1])
for _, m in ipairs(marks) do
  local run, state, archive, item = m[1], m[3], m[6], m[7]
  if (state == 'done' or state == 'skipped') and archive and archive ~= '' and item and item ~= '' then
    redis.call('SADD', archive, item)
  end
  if live[run] == nil then
    live[run] = redis.call('HEXISTS', run, 'id') == 1  -- gone, or a deleted run's tombstone: false
    if live[run] then totals[run] = 0; order[#order + 1] = run end
  end
  if live[run] then mark(run, m[2], state, tonumber(m[4]) or 0, m[5], totals) end
end
for _, run in ipairs(order) do
  if totals[run] > 0 then redis.call('HINCRBY', run, 'bytes', totals[run]) end
  refresh_expiry(run)
end
return #marks
