-- fail: end a live attempt with an error, retrying when allowed.
-- KEYS[10] job record
-- ARGV[5] job id  [6] attempt  [7] retryable 0|1  [8] code
-- [9] message as a JSON string  [10] backoff base ms  [11] backoff max ms
-- [12] jitter factor
-- Reply: "retry", "failed" or "stale".
local id = ARGV[5]
local jk = KEYS[10]
local st = redis.call('HGET', jk, 'status')
if (st ~= 'running' and st ~= 'dispatched') or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[6]) then return 'stale' end
return retry_or_fail(id, redis.call('HGET', jk, 'tenant'), ARGV[7] == '1', ARGV[8], ARGV[9],
  tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]))
