-- progress: record progress of a running attempt and emit it.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt  [8] step  [9] steps  [10] fraction
-- [11] event body (JSON members after "time")  [12] preview name or ""
-- Reply: 1, or 0 when stale.
local id = ARGV[6]
local jk = KEYS[11]
if redis.call('HGET', jk, 'status') ~= 'running' or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[7]) then return 0 end
redis.call('HSET', jk, 'step', ARGV[8], 'steps', ARGV[9], 'fraction', ARGV[10])
if ARGV[12] ~= '' then redis.call('HSET', jk, 'preview', ARGV[12]) end
emit(id, redis.call('HGET', jk, 'tenant'), 'progress', ARGV[11])
return 1
