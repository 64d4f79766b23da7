-- withdraw: take back unused credits of a stopping worker.
-- KEYS: the common ones only.
-- ARGV[5] most slots to take back.
-- Reply: the number taken back.
local c = num(redis.call('HGET', G, 'credits'))
local n = math.min(c, tonumber(ARGV[5]))
if n > 0 then redis.call('HINCRBY', G, 'credits', -n) end
return n
