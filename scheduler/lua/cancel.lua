-- cancel: cancel a job in any live state. A queued job is left in its list
-- and dropped at dispatch (O(1)); a running one's worker is told on the
-- cancel channel.
-- KEYS[11] job record
-- ARGV[6] job id  [7] canceled by, as a JSON string  [8] cancel channel
-- Reply: the previous status, or "missing".
local id = ARGV[6]
local jk = KEYS[11]
local st = redis.call('HGET', jk, 'status')
if not st then return 'missing' end
if st == 'succeeded' or st == 'failed' or st == 'canceled' then return st end
local t = redis.call('HGET', jk, 'tenant')
if st == 'queued' then
  if redis.call('ZREM', DELAYED, id) == 0 then
    unqueued(lane_of(jk), redis.call('HGET', jk, 'user'))
  end
  refund(jk)
else
  release(id, t)
  if st == 'running' then redis.call('PUBLISH', ARGV[8], id) end
end
redis.call('HSET', jk, 'canceled_by', ARGV[7])
finish(id, t, 'canceled')
emit(id, t, 'canceled', ',"by":' .. ARGV[7])
return st
