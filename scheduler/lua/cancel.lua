-- cancel: cancel a job in any live state. A queued job leaves its user's
-- queue; a running one's worker is told on the cancel channel.
-- KEYS[11] job record
-- ARGV[6] job id  [7] canceled by, as a JSON string  [8] cancel channel
-- Reply: the previous status, or "missing".
local id = ARGV[6]
local st = jget(id, 'status')
if st == '' then return 'missing' end
if st == 'succeeded' or st == 'failed' or st == 'canceled' then return st end
local t = jget(id, 'tenant')
if st == 'queued' then
  if rcall('ZREM', DELAYED, id) == 0 then
    -- Out of its user's queue (a few jobs long: the pending cap bounds it).
    local lane, u = lane_of(id), jget(id, 'user')
    -- A user left with an empty queue is skipped when dispatch reaches them.
    if rcall('LREM', ukey(lane, u), 1, qelem(id)) > 0 then
      gadd('pending', -1)
      if routed(id) then gadd('pmodel', -1) end
    end
  end
  refund(id)
else
  release(id, t)
  if st == 'running' then rcall('PUBLISH', ARGV[8], id) end
  dispatch()
end
jset(id, 'canceled_by', ARGV[7])
finish(id, t, 'canceled')
emit(id, t, 'canceled', ',"by":' .. ARGV[7], true)
return st
