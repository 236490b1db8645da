-- fence.lua: put in front of an application's Job.write_on_success script
-- (scripts/__init__.py ``fenced``), after lib.lua.
-- Invariant (fencing): a write is applied only for an attempt that is still
-- the job's current one: its started member is there (the outcome is being
-- recorded in the same MULTI), or its outcome was recorded ('settled' = the
-- attempt: a replay after the finish).
-- ARGV[A] = JSON list of {queue, id, attempt, argv}. Leaves ARGV[1] = JSON
-- list of the argv lists that pass, as the application script expects, and
-- returns 0 at once when none does.
local _fence_kept = {}
for _, e in ipairs(cjson.decode(ARGV[A])) do
  if redis.call('ZSCORE', P.started .. e[1], member(e[2], e[3]))
      or redis.call('HGET', P.job .. e[2], 'settled') == tostring(e[3]) then
    _fence_kept[#_fence_kept + 1] = e[4]
  end
end
if #_fence_kept == 0 then return 0 end
for i = #ARGV, 2, -1 do ARGV[i] = nil end
ARGV[1] = cjson.encode(_fence_kept)
