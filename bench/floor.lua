-- floor.lua: a SYNTHETIC bare fair-queue job lifecycle, the lower bound of
-- what a durable fair queue with events costs Redis per job (easel bench's
-- "floor" row). It is not Easel's scheduler and nothing but the bench runs
-- it. One call takes a batch of jobs (the bench sends 8) through the whole
-- lifecycle:
--
--   submit, per job:  HSET record, SET request, RPUSH into the tenant's
--                     queue (ZADD the tenant into ready when the queue was
--                     empty), XADD queued
--   dispatch, 8×:     ZPOPMIN ready, LPOP the tenant's queue, LLEN it (ZADD
--                     the tenant back when it still has work), HSET
--                     running, GET request, ZADD lease, XADD started
--   succeed, per job: HSET succeeded, ZREM lease, XADD succeeded, PEXPIRE
--                     record and request
--
-- Each call drains what it queued (Redis runs the script whole), so a
-- dispatch only meets tenants of its own batch. Scores stand in for virtual
-- time: a tenant joins at ARGV[2] and goes back one later; their values do
-- not change the cost. Events go to one shared stream, untrimmed (the bench
-- deletes it).
--
-- KEYS[1] = ready zset (tenant → virtual time)
-- KEYS[2] = leases zset (job id → lease deadline, ms)
-- KEYS[3] = events stream
-- KEYS[3+3i-2], KEYS[3+3i-1], KEYS[3+3i] = job i's record hash, request
--           string and tenant queue list (i = 1 … batch)
-- ARGV[1] = request payload (the same for every job)
-- ARGV[2] = now, ms (also the virtual time a tenant joins at)
-- ARGV[3+2i-1], ARGV[3+2i] = job i's id and tenant
-- Reply: the number of jobs that went through.
local ready, leases, events = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[2])
local n = (#ARGV - 2) / 2
-- Keys come from KEYS only: a dispatch finds a popped tenant's queue and a
-- popped job's keys through these maps.
local queueOf, jobAt = {}, {}
for i = 1, n do
  local id, tenant = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local record, request, queue = KEYS[1 + 3 * i], KEYS[2 + 3 * i], KEYS[3 + 3 * i]
  queueOf[tenant], jobAt[id] = queue, i
  redis.call('HSET', record, 'state', 'queued', 'tenant', tenant, 'user', 'u', 'created', now)
  redis.call('SET', request, ARGV[1])
  if redis.call('RPUSH', queue, id) == 1 then
    redis.call('ZADD', ready, now, tenant)
  end
  redis.call('XADD', events, '*', 'job', id, 'kind', 'queued')
end
local running = {}
for _ = 1, n do
  local head = redis.call('ZPOPMIN', ready)
  local tenant, vt = head[1], tonumber(head[2])
  local queue = queueOf[tenant]
  if queue == nil then
    return redis.error_reply('floor: tenant ' .. tostring(tenant) .. ' is not in this batch')
  end
  local id = redis.call('LPOP', queue)
  if redis.call('LLEN', queue) > 0 then
    redis.call('ZADD', ready, vt + 1, tenant)
  end
  local i = jobAt[id]
  redis.call('HSET', KEYS[1 + 3 * i], 'state', 'running', 'worker', 'w', 'started', now)
  redis.call('GET', KEYS[2 + 3 * i])
  redis.call('ZADD', leases, now + 60000, id)
  redis.call('XADD', events, '*', 'job', id, 'kind', 'started')
  running[#running + 1] = id
end
for _, id in ipairs(running) do
  local i = jobAt[id]
  redis.call('HSET', KEYS[1 + 3 * i], 'state', 'succeeded', 'finished', now)
  redis.call('ZREM', leases, id)
  redis.call('XADD', events, '*', 'job', id, 'kind', 'succeeded')
  redis.call('PEXPIRE', KEYS[1 + 3 * i], 86400000)
  redis.call('PEXPIRE', KEYS[2 + 3 * i], 86400000)
end
return #running
