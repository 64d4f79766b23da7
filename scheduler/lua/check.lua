-- check: is this attempt the job's live running one? Workers ask before they
-- write result images, so a zombie attempt writes none.
-- KEYS[10] job record
-- ARGV[5] job id  [6] attempt
-- Reply: 1 when live, 0 when stale.
local jk = KEYS[10]
if redis.call('HGET', jk, 'status') ~= 'running' or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[6]) then return 0 end
return 1
