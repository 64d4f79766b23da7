-- handback: return a live attempt to the front of its user's queue without
-- using up one of the job's attempts (a worker stopping gracefully); the
-- attempt number still moves on at the next dispatch, for fencing.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt
-- Reply: 1, or 0 when stale.
local id = ARGV[6]
if jget(id, 'status') ~= 'running' or jnum(id, 'attempt') ~= tonum(ARGV[7]) then return 0 end
local t = jget(id, 'tenant')
release(id, t)
jset(id, 'handbacks', jnum(id, 'handbacks') + 1)
jset(id, 'status', 'queued')
jset(id, 'step', 0)
jset(id, 'steps', 0)
jset(id, 'fraction', 0)
enqueue(lane_of(id), jget(id, 'user'), id, true)
emit(id, t, 'queued', ',"position":' .. position(id))
dispatch()
return 1
