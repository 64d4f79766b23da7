-- succeed: end running attempts with their results. One call takes a batch
-- of succeeds (the Go side gathers those that arrive while one is in
-- flight), each handled in turn as if alone, each from its own slot.
-- Per job i (from 0): KEYS[11 + i] job record; the ARGV from 6 + 9i:
-- ARGV[6] job id  [7] attempt  [8] image count  [9] seeds JSON
-- [10] info as a JSON string  [11] offer lifetime ms: offer the job's
-- slot ([13]) again at once, or "0" not to (saves the worker a round trip
-- between jobs)  [12] info as the record keeps it: ARGV[10], or "@" when
-- it is long and kept in the blob store (the record stays compact)
-- [13] the slot "<consumer>\t<backend>" the job ran on, or ""
-- [14] subseeds JSON, "" when the job was no variation
-- Reply: one element per job, in order: {1, the job dispatched to its
-- slot or {}}, or {0} when stale.
local function succeed_one(A)
  local id, a = A[1], tonum(A[2])
  as_slot(A[8])
  if jget(id, 'status') ~= 'running' or jnum(id, 'attempt') ~= a then return {0} end
  local t = jget(id, 'tenant')
  local unblocked = release(id, t)
  -- Moving average of run time, for queue ETAs.
  local ran = NOW - jnum(id, 'started_ms')
  local avg = gnum('avg_ms')
  if avg == 0 then avg = ran else avg = avg * 0.8 + ran * 0.2 end
  gset('avg_ms', floor(avg))
  jset(id, 'images', A[3])
  jset(id, 'image_attempt', a)
  jset(id, 'seeds', A[4])
  jset(id, 'info', A[7])
  local sub = ''
  if A[9] ~= '' then
    jset(id, 'subseeds', A[9])
    sub = ',"subseeds":' .. A[9]
  end
  jset(id, 'step', jnum(id, 'steps'))
  jset(id, 'fraction', 1)
  finish(id, t, 'succeeded')
  -- The backend has the job's model loaded now: the next job of that model
  -- prefers this slot.
  set_loaded(jget(id, 'slot'), jget(id, 'model'))
  emit(id, t, 'succeeded', ',"images":' .. A[3] .. ',"seeds":' .. A[4] .. sub .. ',"info":' .. A[5], true)
  if A[6] ~= '0' and SELF ~= '' then
    offer_self(tonum(A[6]))
    dispatch(not unblocked)
    finish_offer()
  elseif unblocked then
    dispatch()
  end
  return {1, delivered()}
end

local replies = {}
for i = 0, #KEYS - 12 do
  replies[#replies + 1] = succeed_one({unpk(ARGV, 6 + 9 * i, 14 + 9 * i)})
end
return replies
