-- submit: admit a job and enqueue it in its tenant's lane, then dispatch if a
-- worker slot is free.
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
-- (routing). Zero limits are off.
-- Reply: {id, position, duplicate 0|1, lane}, or when refused
-- {"", 0, 0, reason, retry after ms, limit}.
local id, t, u = ARGV[6], ARGV[7], ARGV[8]
local images = tonumber(ARGV[11])
local rk, ik = KEYS[12], KEYS[13]
local urk, trk, tq = KEYS[14], KEYS[15], KEYS[16]
if ARGV[13] ~= '' then
  local prev = redis.call('GET', ik)
  if prev then return {prev, 0, 1, ''} end
end
local max_pending = tonumber(ARGV[24])
if max_pending > 0 and redis.call('LLEN', ukey(t, u)) + redis.call('LLEN', ukey(t .. '~relax', u)) >= max_pending then
  return {'', 0, 0, 'user_pending', 0, ARGV[24]}
end
local uwait, unew = gcra(urk, tonumber(ARGV[18]), tonumber(ARGV[19]))
if uwait > 0 then return {'', 0, 0, 'user_rate', uwait, ARGV[18]} end
local twait, tnew = gcra(trk, tonumber(ARGV[20]), tonumber(ARGV[21]))
if twait > 0 then return {'', 0, 0, 'tenant_rate', twait, ARGV[20]} end
local day = math.floor(NOW / 86400000)
local ulimit, tlimit = tonumber(ARGV[22]), tonumber(ARGV[23])
local lane = t
local over = nil
if ulimit > 0 and quota_used(tq, t, day, 'u:' .. u) + images > ulimit then over = {'user_quota', ARGV[22]}
elseif tlimit > 0 and quota_used(tq, t, day, 'n') + images > tlimit then over = {'tenant_quota', ARGV[23]} end
if over then
  if ARGV[25] ~= 'relax' then
    return {'', 0, 0, over[1], (day + 1) * 86400000 - NOW, over[2]}
  end
  lane = t .. '~relax'
end
-- Admitted: commit the limits' state.
if unew then redis.call('SET', urk, unew, 'PX', math.ceil(unew - NOW)) end
if tnew then redis.call('SET', trk, tnew, 'PX', math.ceil(tnew - NOW)) end
-- The record's values stay short so Redis keeps it in its compact encoding;
-- the long request and origin live in a string of their own.
jnew(id)
for _, kv in ipairs({{'id', id}, {'tenant', t}, {'user', u}, {'status', 'queued'}, {'cost', ARGV[10]},
  {'images_req', images}, {'attempt', 0}, {'max_attempts', ARGV[12]}, {'created_ms', NOW}, {'seq', 0}}) do
  jset(id, kv[1], kv[2])
end
if ARGV[26] ~= '' then jset(id, 'model', ARGV[26]) end
if lane ~= t then
  jset(id, 'lane', lane)
else
  quota_add(tq, t, day, u, images)
  jset(id, 'qday', day)
end
if ARGV[13] ~= '' then redis.call('SET', ik, id, 'PX', ARGV[14]) end
redis.call('SET', rk, ARGV[9])
-- The tenant's live jobs by name (all scores 0; ids start with their
-- creation time, so by age): the queue listing pages through it.
redis.call('ZADD', KEYS[18], 0, id)
-- Weight and cap are the tenant's policy, written by policy changes; a
-- submit only fills them in for a tenant seen for the first time, so
-- instances with different cached policies cannot flip them back and forth.
if lget(t, 'w') == '' then
  lset(t, 'w', ARGV[15])
  if lget(t, 'cap') == '' then lset(t, 'cap', ARGV[17]) end
end
if tonumber(ARGV[16]) ~= 1 then
  redis.call('HSET', tkey(t), 'uw:' .. u, ARGV[16])
  lset(t, 'uws', '1')
elseif lget(t, 'uws') == '1' then
  redis.call('HDEL', tkey(t), 'uw:' .. u)
end
local len = enqueue(lane, u, id, false)
-- The place in line, estimated without a scan: the user's earlier jobs,
-- each a round of the lanes with work, capped by everything pending.
local pos = 1
if gnum('pending') > 1 then
  pos = math.max(1, math.min(gnum('pending'), (len - 1) * redis.call('ZCARD', ready_key(lane)) + 1))
end
jset(id, 'qpos', pos)
emit(id, t, 'queued', ',"position":' .. pos)
dispatch()
if jget(id, 'status') ~= 'queued' then pos = 0 end
return {id, pos, 0, lane}
