-- succeed: end a running attempt with its results.
-- KEYS[11] job record
-- ARGV[6] job id  [7] attempt  [8] image count  [9] seeds JSON
-- [10] info as a JSON string  [11] offer lifetime ms: offer the caller's
-- slot (ARGV[5]) again at once, or "0" not to (saves the worker a round trip
-- between jobs)  [12] info as the record keeps it: ARGV[10], or "@" when
-- it is long and kept in the blob store (the record stays compact)
-- Reply: {1, the job dispatched to the caller's slot or {}}, or {0} when stale.
local id, a = ARGV[6], tonumber(ARGV[7])
if jget(id, 'status') ~= 'running' or jnum(id, 'attempt') ~= a then return {0} end
local t = jget(id, 'tenant')
local unblocked = release(id, t)
-- Moving average of run time, for queue ETAs.
local ran = NOW - jnum(id, 'started_ms')
local avg = gnum('avg_ms')
if avg == 0 then avg = ran else avg = avg * 0.8 + ran * 0.2 end
gset('avg_ms', math.floor(avg))
jset(id, 'images', ARGV[8])
jset(id, 'image_attempt', a)
jset(id, 'seeds', ARGV[9])
jset(id, 'info', ARGV[12])
jset(id, 'step', jnum(id, 'steps'))
jset(id, 'fraction', 1)
finish(id, t, 'succeeded')
-- The backend has the job's model loaded now: the next job of that model
-- prefers this slot.
set_loaded(jget(id, 'slot'), jget(id, 'model'))
emit(id, t, 'succeeded', ',"images":' .. ARGV[8] .. ',"seeds":' .. ARGV[9] .. ',"info":' .. ARGV[10], true)
if ARGV[11] ~= '0' and SELF ~= '' then
  offer_self(tonumber(ARGV[11]))
  dispatch(not unblocked)
  finish_offer()
elseif unblocked then
  dispatch()
end
return {1, delivered()}
