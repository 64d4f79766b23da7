-- check: is this attempt the job's live running one? Workers ask before they
-- write result images, so a zombie attempt writes none.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt
-- Reply: 1 when live, 0 when stale.
local id = ARGV[6]
if jget(id, 'status') ~= 'running' or jnum(id, 'attempt') ~= tonumber(ARGV[7]) then return 0 end
return 1
