-- progress: record progress of a running attempt and emit it.
-- KEYS[10] job record
-- ARGV[5] job id  [6] attempt  [7] step  [8] steps  [9] fraction
-- [10] event body (JSON members after "time")  [11] preview name or ""
-- Reply: 1, or 0 when stale.
local id = ARGV[5]
local jk = KEYS[10]
if redis.call('HGET', jk, 'status') ~= 'running' or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[6]) then return 0 end
redis.call('HSET', jk, 'step', ARGV[7], 'steps', ARGV[8], 'fraction', ARGV[9])
if ARGV[11] ~= '' then redis.call('HSET', jk, 'preview', ARGV[11]) end
emit(id, redis.call('HGET', jk, 'tenant'), 'progress', ARGV[10])
return 1
