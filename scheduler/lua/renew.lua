-- renew: extend the lease of a live attempt by resetting the idle time of its
-- work entry (XCLAIM to the same consumer).
-- KEYS[10] job record
-- ARGV[5] job id  [6] attempt  [7] consumer
-- Reply: 1, or 0 when the attempt is stale (canceled, reclaimed).
local jk = KEYS[10]
local st = redis.call('HGET', jk, 'status')
if (st ~= 'running' and st ~= 'dispatched') or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[6]) then return 0 end
local wid = redis.call('HGET', jk, 'wid')
if not wid or wid == '' then return 0 end
local got = redis.call('XCLAIM', WORK, 'workers', ARGV[7], 0, wid, 'JUSTID')
if #got == 0 then return 0 end
return 1
