-- handback: return a live attempt to the front of its user's queue without
-- using up one of the job's attempts (a worker stopping gracefully); the
-- attempt number still moves on at the next dispatch, for fencing.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt
-- Reply: 1, or 0 when stale.
local id = ARGV[6]
local jk = KEYS[11]
local st = redis.call('HGET', jk, 'status')
if (st ~= 'running' and st ~= 'dispatched') or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[7]) then return 0 end
local t = redis.call('HGET', jk, 'tenant')
release(id, t)
redis.call('HINCRBY', jk, 'handbacks', 1)
redis.call('HSET', jk, 'status', 'queued', 'step', 0, 'steps', 0, 'fraction', 0)
enqueue(lane_of(jk), redis.call('HGET', jk, 'user'), id, true)
emit(id, t, 'queued', ',"position":' .. position(id))
dispatch()
return 1
