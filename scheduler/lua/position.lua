-- position: the estimated place in line of a queued job.
-- KEYS[11] job record
-- ARGV[6] job id
-- Reply: the position (1 = next), or 0 when the job is not waiting in a queue.
if jget(ARGV[6], 'status') ~= 'queued' then return 0 end
return position(ARGV[6])
