-- submit: admit jobs, each into its tenant's lane, then dispatch if a
-- worker slot is free. One call takes a batch of submits (the Go side
-- gathers the submits that arrive while one is in flight): each job is
-- admitted in turn as if alone, and one dispatch follows them all.
-- Per job i (from 0), the KEYS from 11 + 8i and the ARGV from 6 + 22i:
-- KEYS[11] job record     KEYS[12] job request   KEYS[13] idempotency key
-- KEYS[14] user rate      KEYS[15] tenant rate   KEYS[16] tenant quota
-- KEYS[17] tenant hash    KEYS[18] tenant's live jobs (zset by name)
-- ARGV[6] id  [7] tenant  [8] user  [9] request (payload and origin)
-- [10] cost  [11] images  [12] max attempts  [13] idempotency key or ""
-- [14] idempotency TTL ms  [15] tenant weight  [16] user weight
-- [17] tenant max running  [18] user jobs/min  [19] user burst
-- [20] tenant jobs/min  [21] tenant burst  [22] user daily images
-- [23] tenant daily images  [24] max pending per user
-- [25] overflow ("reject" | "relax") [26] model key, "" for any backend
-- (routing)  [27] policy version: when the policy behind [15] and [17] was
-- loaded (µs; "0" unknown). Zero limits are off.
-- Reply: one element per job, in order: {id, position, duplicate 0|1,
-- lane}, or when refused {"", 0, 0, reason, retry after ms, limit}.
local function submit_one(K, A)
  local id, t, u = A[1], A[2], A[3]
  local images = tonum(A[6])
  local rk, ik = K[2], K[3]
  local urk, trk, tq = K[4], K[5], K[6]
  if A[8] ~= '' then
    local prev = rcall('GET', ik)
    if prev then return {prev, 0, 1, ''} end
  end
  local max_pending = tonum(A[19])
  if max_pending > 0 and rcall('LLEN', ukey(t, u)) + rcall('LLEN', ukey(t .. '~relax', u)) >= max_pending then
    return {'', 0, 0, 'user_pending', 0, A[19]}
  end
  local uwait, unew = gcra(urk, tonum(A[13]), tonum(A[14]))
  if uwait > 0 then return {'', 0, 0, 'user_rate', uwait, A[13]} end
  local twait, tnew = gcra(trk, tonum(A[15]), tonum(A[16]))
  if twait > 0 then return {'', 0, 0, 'tenant_rate', twait, A[15]} end
  local day = floor(NOW / 86400000)
  local ulimit, tlimit = tonum(A[17]), tonum(A[18])
  local lane = t
  local over = nil
  if ulimit > 0 and quota_used(tq, t, day, 'u:' .. u) + images > ulimit then over = {'user_quota', A[17]}
  elseif tlimit > 0 and quota_used(tq, t, day, 'n') + images > tlimit then over = {'tenant_quota', A[18]} end
  if over then
    if A[20] ~= 'relax' then
      return {'', 0, 0, over[1], (day + 1) * 86400000 - NOW, over[2]}
    end
    lane = t .. '~relax'
  end
  -- Admitted: commit the limits' state.
  if unew then rcall('SET', urk, unew, 'PX', ceil(unew - NOW)) end
  if tnew then rcall('SET', trk, tnew, 'PX', ceil(tnew - NOW)) end
  -- The record's values stay short so Redis keeps it in its compact encoding;
  -- the long request and origin live in a string of their own.
  jnew(id)
  jset(id, 'id', id)
  jset(id, 'tenant', t)
  jset(id, 'user', u)
  jset(id, 'status', 'queued')
  jset(id, 'cost', A[5])
  jset(id, 'images_req', A[6])
  jset(id, 'attempt', '0')
  jset(id, 'max_attempts', A[7])
  jset(id, 'created_ms', NOW_S)
  jset(id, 'seq', '0')
  if A[21] ~= '' then jset(id, 'model', A[21]) end
  if lane ~= t then
    jset(id, 'lane', lane)
  else
    quota_add(tq, t, day, u, images)
    jset(id, 'qday', day)
  end
  if A[8] ~= '' then rcall('SET', ik, id, 'PX', A[9]) end
  rcall('SET', rk, A[4])
  -- The tenant's live jobs by name (all scores 0; ids start with their
  -- creation time, so by age): the queue listing pages through it.
  rcall('ZADD', K[8], '0', id)
  -- Weight and cap are the tenant's policy. A submit fills them in for a
  -- tenant seen for the first time; after that it changes them only with a
  -- policy newer than the one that wrote them (pv: when the writing process
  -- loaded the owner's policy, or when an admin changed the cap), so an
  -- owner's new weight reaches the tenant from the processes started with
  -- it, while instances with older policies or stale caches cannot flip
  -- them back and forth.
  -- (Compared as numbers: a cached field may already hold its number.)
  local w, cap = lget(t, 'w'), lget(t, 'cap')
  if w == '' then
    lset(t, 'w', A[10])
    if cap == '' then lset(t, 'cap', A[12]) end
    rcall('HSETNX', tkey(t), 'pv', A[22])
  elseif (tonum(w) ~= tonum(A[10]) or tonum(cap) ~= tonum(A[12])) and tonum(A[22]) > tonum(rcall('HGET', tkey(t), 'pv') or '0') then
    lset(t, 'w', A[10])
    lset(t, 'cap', A[12])
    rcall('HSET', tkey(t), 'pv', A[22])
  end
  if tonum(A[11]) ~= 1 then
    rcall('HSET', tkey(t), 'uw:' .. u, A[11])
    lset(t, 'uws', '1')
  elseif lget(t, 'uws') == '1' then
    rcall('HDEL', tkey(t), 'uw:' .. u)
  end
  local len = enqueue(lane, u, id, false)
  -- The place in line, estimated without a scan: the user's earlier jobs,
  -- each a round of the lanes with work, capped by everything pending.
  local pos = 1
  if len > 1 and gnum('pending') > 1 then
    pos = max(1, min(gnum('pending'), (len - 1) * lanes(ready_key(lane)) + 1))
  end
  jset(id, 'qpos', pos)
  emit(id, t, 'queued', ',"position":' .. istr(pos))
  return {id, pos, 0, lane}
end

local replies = {}
for i = 0, floor((#KEYS - 11) / 8) - 1 do
  replies[#replies + 1] = submit_one({unpk(KEYS, 11 + 8 * i, 18 + 8 * i)}, {unpk(ARGV, 6 + 22 * i, 27 + 22 * i)})
end
dispatch()
for _, r in ipairs(replies) do
  if r[1] ~= '' and r[3] == 0 and jget(r[1], 'status') ~= 'queued' then r[2] = 0 end
end
return replies
