-- submit: admit a job and enqueue it in its tenant's lane, then dispatch if a
-- worker slot is free.
-- KEYS[10] job record     KEYS[11] job request   KEYS[12] idempotency key
-- KEYS[13] user rate      KEYS[14] tenant rate   KEYS[15] tenant quota
-- KEYS[16] tenant hash    KEYS[17] tenant active set
-- ARGV[5] id  [6] tenant  [7] user  [8] request (payload and origin)
-- [9] cost  [10] images  [11] max attempts  [12] idempotency key or ""
-- [13] idempotency TTL ms  [14] tenant weight  [15] user weight
-- [16] tenant max running  [17] user jobs/min  [18] user burst
-- [19] tenant jobs/min  [20] tenant burst  [21] user daily images
-- [22] tenant daily images  [23] max pending per user
-- [24] overflow ("reject" | "relax"). Zero limits are off.
-- Reply: {id, position, duplicate 0|1, lane}, or when refused
-- {"", 0, 0, reason, retry after ms, limit}.
local id, t, u = ARGV[5], ARGV[6], ARGV[7]
local images = tonumber(ARGV[10])
local jk, rk, ik = KEYS[10], KEYS[11], KEYS[12]
local urk, trk, tq, tk = KEYS[13], KEYS[14], KEYS[15], KEYS[16]
if ARGV[12] ~= '' then
  local prev = redis.call('GET', ik)
  if prev then return {prev, 0, 1, ''} end
end
local max_pending = tonumber(ARGV[23])
if max_pending > 0 and num(redis.call('HGET', tk, 'up:' .. u)) >= max_pending then
  return {'', 0, 0, 'user_pending', 0, ARGV[23]}
end
local uwait, unew = gcra(urk, tonumber(ARGV[17]), tonumber(ARGV[18]))
if uwait > 0 then return {'', 0, 0, 'user_rate', uwait, ARGV[17]} end
local twait, tnew = gcra(trk, tonumber(ARGV[19]), tonumber(ARGV[20]))
if twait > 0 then return {'', 0, 0, 'tenant_rate', twait, ARGV[19]} end
local day = math.floor(NOW / 86400000)
local ulimit, tlimit = tonumber(ARGV[21]), tonumber(ARGV[22])
local lane = t
local over = nil
if ulimit > 0 and quota_used(tq, day, 'u:' .. u) + images > ulimit then over = {'user_quota', ARGV[21]}
elseif tlimit > 0 and quota_used(tq, day, 'n') + images > tlimit then over = {'tenant_quota', ARGV[22]} end
if over then
  if ARGV[24] ~= 'relax' then
    return {'', 0, 0, over[1], (day + 1) * 86400000 - NOW, over[2]}
  end
  lane = t .. '~relax'
end
-- Admitted: commit the limits' state.
if unew then redis.call('SET', urk, unew, 'PX', math.ceil(unew - NOW)) end
if tnew then redis.call('SET', trk, tnew, 'PX', math.ceil(tnew - NOW)) end
-- The record's values stay short so Redis keeps it in its compact encoding;
-- the long request and origin live in a string of their own.
redis.call('HSET', jk, 'id', id, 'tenant', t, 'user', u, 'status', 'queued',
  'cost', ARGV[9], 'images_req', images,
  'attempt', 0, 'max_attempts', ARGV[11], 'created_ms', NOW, 'seq', 0)
if lane ~= t then
  redis.call('HSET', jk, 'lane', lane)
else
  quota_add(tq, day, u, images)
  redis.call('HSET', jk, 'qday', day)
end
if ARGV[12] ~= '' then redis.call('SET', ik, id, 'PX', ARGV[13]) end
redis.call('SET', rk, ARGV[8])
redis.call('SADD', KEYS[17], id)
-- Weight and cap are the tenant's policy, written by policy changes; a
-- submit only fills them in for a tenant seen for the first time, so
-- instances with different cached policies cannot flip them back and forth.
redis.call('HSETNX', tk, 'w', ARGV[14])
redis.call('HSETNX', tk, 'cap', ARGV[16])
enqueue(lane, u, id, false)
if tonumber(ARGV[15]) ~= 1 then redis.call('HSET', tk, 'uw:' .. u, ARGV[15]) else redis.call('HDEL', tk, 'uw:' .. u) end
local pos = position(id)
redis.call('HSET', jk, 'qpos', pos)
emit(id, t, 'queued', ',"position":' .. pos)
dispatch()
if redis.call('HGET', jk, 'status') ~= 'queued' then pos = 0 end
return {id, pos, 0, lane}
