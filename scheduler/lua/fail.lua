-- fail: end a live attempt with an error, retrying when allowed.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt  [8] retryable 0|1  [9] code
-- [10] message as a JSON string  [11] backoff base ms  [12] backoff max ms
-- [13] jitter factor  [14] "1": the retry avoids this attempt's worker slot
-- while another live slot can run the job (its backend stalled), else "0"
-- Reply: "retry", "failed" or "stale".
local id = ARGV[6]
if jget(id, 'status') ~= 'running' or jnum(id, 'attempt') ~= tonum(ARGV[7]) then return 'stale' end
local r = retry_or_fail(id, jget(id, 'tenant'), ARGV[8] == '1', ARGV[9], ARGV[10],
  tonum(ARGV[11]), tonum(ARGV[12]), tonum(ARGV[13]))
if r == 'retry' and ARGV[14] == '1' then jset(id, 'avoid', jget(id, 'slot')) end
dispatch()
return r
