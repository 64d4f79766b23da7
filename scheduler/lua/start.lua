-- start: mark a dispatched attempt running and hand the worker its request.
-- KEYS[10] job record  KEYS[11] job request
-- ARGV[5] job id  [6] attempt  [7] backend name as a JSON string  [8] backend name
-- Reply: {1, request, created ms, dispatched ms}, or {0, status} when the
-- attempt is not the job's live dispatched one.
local id, a = ARGV[5], tonumber(ARGV[6])
local jk = KEYS[10]
local st = redis.call('HGET', jk, 'status')
if st ~= 'dispatched' or num(redis.call('HGET', jk, 'attempt')) ~= a then return {0, st or 'missing'} end
redis.call('HSET', jk, 'status', 'running', 'started_ms', NOW, 'backend', ARGV[8])
local t = redis.call('HGET', jk, 'tenant')
emit(id, t, 'started', ',"backend":' .. ARGV[7] .. ',"attempt":' .. a)
return {1, redis.call('GET', KEYS[11]), num(redis.call('HGET', jk, 'created_ms')), num(redis.call('HGET', jk, 'dispatched_ms'))}
