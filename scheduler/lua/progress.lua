-- progress: record progress of a running attempt and emit it.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt  [8] step  [9] steps  [10] fraction
-- [11] event body (JSON members after "time")  [12] preview name or ""
-- Reply: 1, or 0 when stale.
local id = ARGV[6]
if jget(id, 'status') ~= 'running' or jnum(id, 'attempt') ~= tonum(ARGV[7]) then return 0 end
jset(id, 'step', ARGV[8])
jset(id, 'steps', ARGV[9])
jset(id, 'fraction', ARGV[10])
if ARGV[12] ~= '' then jset(id, 'preview', ARGV[12]) end
emit(id, jget(id, 'tenant'), 'progress', ARGV[11])
return 1
