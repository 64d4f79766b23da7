-- offer: add free worker slots (credits) and dispatch onto them.
-- KEYS: the common ones only.
-- ARGV[5] slots to add.
-- Reply: the number of jobs dispatched.
redis.call('HINCRBY', G, 'credits', tonumber(ARGV[5]))
return dispatch()
