-- renew: extend the lease of a live attempt by resetting the idle time of its
-- work entry (XCLAIM to the same consumer).
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt  [8] consumer
-- Reply: 1, or 0 when the attempt is stale (canceled, reclaimed).
local id = ARGV[6]
local st = jget(id, 'status')
if st ~= 'running' or jnum(id, 'attempt') ~= tonum(ARGV[7]) then return 0 end
local wid = jget(id, 'wid')
if wid == '' then return 0 end
local got = rcall('XCLAIM', WORK, 'workers', ARGV[8], 0, wid, 'JUSTID')
if #got == 0 then return 0 end
return 1
