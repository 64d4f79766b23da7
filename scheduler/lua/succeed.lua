-- succeed: end a running attempt with its results.
-- KEYS[10] job record
-- ARGV[5] job id  [6] attempt  [7] image count  [8] seeds JSON
-- [9] info as a JSON string  [10] "1" to offer the freed worker slot at once
-- (saves the worker a round trip between jobs)
-- Reply: 1, or 0 when stale.
local id, a = ARGV[5], tonumber(ARGV[6])
local jk = KEYS[10]
if redis.call('HGET', jk, 'status') ~= 'running' or num(redis.call('HGET', jk, 'attempt')) ~= a then return 0 end
local t = redis.call('HGET', jk, 'tenant')
release(id, t)
-- Moving average of run time, for queue ETAs.
local ran = NOW - num(redis.call('HGET', jk, 'started_ms'))
local avg = num(redis.call('HGET', G, 'avg_ms'))
if avg == 0 then avg = ran else avg = avg * 0.8 + ran * 0.2 end
redis.call('HSET', G, 'avg_ms', math.floor(avg))
redis.call('HSET', jk, 'images', ARGV[7], 'image_attempt', a, 'seeds', ARGV[8], 'info', ARGV[9], 'step', redis.call('HGET', jk, 'steps') or 0, 'fraction', 1)
finish(id, t, 'succeeded')
emit(id, t, 'succeeded', ',"images":' .. ARGV[7] .. ',"seeds":' .. ARGV[8] .. ',"info":' .. ARGV[9])
if ARGV[10] == '1' then
  redis.call('HINCRBY', G, 'credits', 1)
  dispatch()
end
return 1
