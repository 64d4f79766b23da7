-- check: is this attempt the job's live running one? Workers ask before they
-- write result images, so a zombie attempt writes none.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt
-- Reply: 1 when live, 0 when stale.
local jk = KEYS[11]
if redis.call('HGET', jk, 'status') ~= 'running' or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[7]) then return 0 end
return 1
