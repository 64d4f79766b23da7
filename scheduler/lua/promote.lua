-- promote: move due retries back to the front of their users' queues and
-- dispatch.
-- KEYS: the common ones only (lib.lua).
-- ARGV[6] most jobs to move.
-- Reply: the due time in ms of the next delayed job, or -1.
local due = rcall('ZRANGEBYSCORE', DELAYED, '-inf', NOW, 'LIMIT', 0, tonum(ARGV[6]))
for _, id in ipairs(due) do
  rcall('ZREM', DELAYED, id)
  if jget(id, 'status') == 'queued' then
    enqueue(lane_of(id), jget(id, 'user'), id, true)
  end
end
dispatch()
local nxt = rcall('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
if #nxt == 0 then return -1 end
return tonum(nxt[2])
