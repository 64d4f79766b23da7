-- reclaim: take back work entries idle past the lease (their worker died or
-- hung) and retry or fail their jobs, one XAUTOCLAIM page at a time.
-- KEYS: the common ones only (lib.lua).
-- ARGV[6] lease ms  [7] reclaimer consumer  [8] page size  [9] message as a
-- JSON string  [10] backoff base ms  [11] backoff max ms  [12] jitter
-- [13] XAUTOCLAIM cursor ("0-0" to start)
-- Reply: {jobs reclaimed, next cursor ("0-0" when the scan is complete)}.
local res = rcall('XAUTOCLAIM', WORK, 'workers', ARGV[7], tonum(ARGV[6]), ARGV[13], 'COUNT', tonum(ARGV[8]))
local n = 0
for _, entry in ipairs(res[2]) do
  local wid = entry[1]
  local f = entry[2]
  local id, a = nil, nil
  if f then
    for i = 1, #f, 2 do
      if f[i] == 'id' then id = f[i + 1] elseif f[i] == 'a' then a = tonum(f[i + 1]) end
    end
  end
  if id and jget(id, 'status') == 'running' and jnum(id, 'attempt') == a and jget(id, 'wid') == wid then
    retry_or_fail(id, jget(id, 'tenant'), true, 'lease_expired', ARGV[9],
      tonum(ARGV[10]), tonum(ARGV[11]), tonum(ARGV[12]))
    n = n + 1
  else
    rcall('XACK', WORK, 'workers', wid)
  end
end
dispatch()
return {n, res[1]}
