-- succeed: end a running attempt with its results.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt  [8] image count  [9] seeds JSON
-- [10] info as a JSON string  [11] offer lifetime ms: offer the caller's
-- slot (ARGV[5]) again at once, or "0" not to (saves the worker a round trip
-- between jobs)
-- Reply: {1, the job dispatched to the caller's slot or {}}, or {0} when stale.
local id, a = ARGV[6], tonumber(ARGV[7])
local jk = KEYS[11]
if redis.call('HGET', jk, 'status') ~= 'running' or num(redis.call('HGET', jk, 'attempt')) ~= a then return {0} end
local t = redis.call('HGET', jk, 'tenant')
release(id, t)
-- Moving average of run time, for queue ETAs.
local ran = NOW - num(redis.call('HGET', jk, 'started_ms'))
local avg = num(redis.call('HGET', G, 'avg_ms'))
if avg == 0 then avg = ran else avg = avg * 0.8 + ran * 0.2 end
redis.call('HSET', G, 'avg_ms', math.floor(avg))
redis.call('HSET', jk, 'images', ARGV[8], 'image_attempt', a, 'seeds', ARGV[9], 'info', ARGV[10], 'step', redis.call('HGET', jk, 'steps') or 0, 'fraction', 1)
finish(id, t, 'succeeded')
emit(id, t, 'succeeded', ',"images":' .. ARGV[8] .. ',"seeds":' .. ARGV[9] .. ',"info":' .. ARGV[10])
if ARGV[11] ~= '0' and SELF ~= '' then
  offer_self(tonumber(ARGV[11]))
  dispatch()
end
return {1, delivered()}
