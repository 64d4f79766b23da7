-- renew: extend the lease of a live attempt by resetting the idle time of its
-- work entry (XCLAIM to the same consumer).
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt  [8] consumer
-- Reply: 1, or 0 when the attempt is stale (canceled, reclaimed).
local jk = KEYS[11]
local st = redis.call('HGET', jk, 'status')
if (st ~= 'running' and st ~= 'dispatched') or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[7]) then return 0 end
local wid = redis.call('HGET', jk, 'wid')
if not wid or wid == '' then return 0 end
local got = redis.call('XCLAIM', WORK, 'workers', ARGV[8], 0, wid, 'JUSTID')
if #got == 0 then return 0 end
return 1
