-- positions: one page of the positions pass (scheduler/positions.go). Each
-- queued job among the first ARGV[8] of its lane whose estimated place in
-- line, or the reason it waits, changed since its last announcement gets one
-- position event {position, eta_s | waiting}. Jobs further back are not
-- looked at: their place is announced once they come within the cap. The
-- pass is coalesced by its caller (at most one a second by default), never
-- run per dispatch.
-- KEYS[11] backends reported down: hash name -> "<since ms>\t<reported ms>"
-- ARGV[6] lanes done this pass ("0" to start)  [7] lanes per page
-- [8] jobs per lane (the cap)  [9] a down report older than this (ms) is stale
-- Reply: {the cursor for the next page, "" after the last; events emitted}.
local cursor, page, cap, stale = tonum(ARGV[6]), tonum(ARGV[7]), tonum(ARGV[8]), tonum(ARGV[9])
local idle = rcall('ZCOUNT', SLOTS, NOW, '+inf')
local slots = max(1, gnum('running') + idle)
local avg = gnum('avg_ms')
-- Why every queued job waits, when no worker slot is offered, none runs a
-- job and backends are reported down: {message, backends[{name, since}]}.
local waiting, wsig = '', ''
if idle == 0 and gnum('running') <= 0 then
  local down = rcall('HGETALL', KEYS[11])
  local list = {}
  for i = 1, #down, 2 do
    local v = down[i + 1]
    local tab = sfind(v, '\t', 1, true)
    if tab then
      local since, seen = tonum(ssub(v, 1, tab - 1)), tonum(ssub(v, tab + 1))
      if since and seen and seen >= NOW - stale then list[#list + 1] = {name = down[i], since = since} end
    end
  end
  if #list > 0 then
    table.sort(list, function(a, b) return a.name < b.name end)
    local parts, bs = {}, {}
    for _, b in ipairs(list) do
      parts[#parts + 1] = b.name .. ' unreachable since ' .. ssub(iso(b.since), 12, 19) .. ' UTC'
      bs[#bs + 1] = '{"name":' .. jencode(b.name) .. ',"since":"' .. iso(b.since) .. '"}'
    end
    waiting = '{"message":' .. jencode('waiting for a GPU backend (' .. tconcat(parts, ', ') .. ')') ..
      ',"backends":[' .. tconcat(bs, ',') .. ']}'
    -- The record keeps a short signature, not the text.
    wsig = ssub(redis.sha1hex(waiting), 1, 12)
  end
end

local emitted = 0
local function lane_positions(t)
  local users = rcall('ZRANGE', userskey(t), 0, cap - 1)
  if #users == 0 then return end
  local r = lane_rank(t)
  local per = max(1, floor(cap / #users))
  local tenant = base_of(t)
  for _, um in ipairs(users) do
    local els = rcall('LRANGE', ukey(t, member_name(um)), 0, per - 1)
    for i, el in ipairs(els) do
      local id = parse_elem(el)
      local pos = estimate(r, i - 1)
      local f = rcall('HMGET', jkey(id), 'ppos', 'pwait', 'qpos', 'status', 'seq')
      local prev = f[1] or f[3]
      if f[4] == 'queued' and (tostring(pos) ~= prev or wsig ~= (f[2] or '')) then
        -- The job's cache holds what emit needs (its sequence number), so
        -- the new values and the sequence are one HSET at the end.
        if not JC[id] then
          jnew(id)
          jknow(id, 'seq', f[5] or '')
        end
        jset(id, 'ppos', pos)
        jset(id, 'pwait', wsig)
        local body = ',"position":' .. pos
        if waiting ~= '' then
          body = body .. ',"waiting":' .. waiting
        elseif avg > 0 then
          -- Rounds of every worker slot (busy or idle) before its turn,
          -- each the moving average run time.
          body = body .. ',"eta_s":' .. sformat('%.1f', ceil(pos / slots) * avg / 1000)
        end
        emit(id, tenant, 'position', body)
        emitted = emitted + 1
      end
    end
  end
end

-- The lanes with work: ready, relax, then those parked at their cap.
local done, skip = 0, cursor
for _, zk in ipairs({READY, RELAX, BLOCKED}) do
  local n = rcall('ZCARD', zk)
  if skip >= n then
    skip = skip - n
  else
    local members = rcall('ZRANGE', zk, skip, skip + page - done - 1)
    skip = 0
    for _, m in ipairs(members) do
      if zk == BLOCKED then lane_positions(m) else lane_positions(member_name(m)) end
      done = done + 1
    end
    if done >= page then return {tostring(cursor + done), emitted} end
  end
end
return {'', emitted}
