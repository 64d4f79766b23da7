-- reclaim: take back work entries idle past the lease (their worker died or
-- hung) and retry or fail their jobs, one XAUTOCLAIM page at a time.
-- KEYS: the common ones only.
-- ARGV[5] lease ms  [6] reclaimer consumer  [7] page size  [8] message as a
-- JSON string  [9] backoff base ms  [10] backoff max ms  [11] jitter
-- [12] XAUTOCLAIM cursor ("0-0" to start)
-- Reply: {jobs reclaimed, next cursor ("0-0" when the scan is complete)}.
local res = redis.call('XAUTOCLAIM', WORK, 'workers', ARGV[6], tonumber(ARGV[5]), ARGV[12], 'COUNT', tonumber(ARGV[7]))
local n = 0
for _, entry in ipairs(res[2]) do
  local wid = entry[1]
  local f = entry[2]
  local id, a = nil, nil
  if f then
    for i = 1, #f, 2 do
      if f[i] == 'id' then id = f[i + 1] elseif f[i] == 'a' then a = tonumber(f[i + 1]) end
    end
  end
  local jk = id and jkey(id)
  local st = jk and redis.call('HGET', jk, 'status')
  if jk and (st == 'running' or st == 'dispatched') and num(redis.call('HGET', jk, 'attempt')) == a and redis.call('HGET', jk, 'wid') == wid then
    retry_or_fail(id, redis.call('HGET', jk, 'tenant'), true, 'lease_expired', ARGV[8],
      tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]))
    n = n + 1
  else
    redis.call('XACK', WORK, 'workers', wid)
    redis.call('XDEL', WORK, wid)
  end
end
dispatch()
return {n, res[1]}
