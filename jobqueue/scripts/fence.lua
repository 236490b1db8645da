-- fence.lua: put in front of an application's Job.write_on_success script
-- (scripts/__init__.py ``fenced``), after lib.lua. The worker sends it in
-- one MULTI/EXEC with the finish of the same attempts.
-- Invariant (writes once per recorded success): an attempt's writes are
-- applied only while it is the job's current attempt (status 'started' with
-- this attempt number: its started member is there, and the finish that
-- follows records its outcome) or once its outcome is recorded ('settled' =
-- the attempt: Redis had forgotten this script and it runs again after the
-- finish), and only once: 'written' = the attempt marks them done, so a
-- resent transaction (lost reply) writes nothing twice.
-- ARGV[A] = JSON list of {queue, id, attempt, argv}. Leaves ARGV[1] = JSON
-- list of the argv lists that pass, as the application script expects, and
-- returns 0 at once when none does.
local _fence_kept = {}
for _, e in ipairs(cjson.decode(ARGV[A])) do
  local key, a = P.job .. e[2], tostring(e[3])
  local h = redis.call('HMGET', key, 'attempt', 'status', 'settled', 'written')
  if h[4] ~= a and ((h[1] == a and h[2] == 'started') or h[3] == a) then
    redis.call('HSET', key, 'written', a)
    _fence_kept[#_fence_kept + 1] = e[4]
  end
end
if #_fence_kept == 0 then return 0 end
for i = #ARGV, 2, -1 do ARGV[i] = nil end
ARGV[1] = cjson.encode(_fence_kept)
