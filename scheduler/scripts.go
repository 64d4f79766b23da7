package scheduler

import "github.com/redis/rueidis"

// Every script starts with luaPrelude. Common ARGV for all scripts:
//
//	ARGV[1] key prefix inside the hash tag ("easel:{s}:")
//	ARGV[2] now, unix milliseconds
//	ARGV[3] now, RFC 3339 (event time)
//	ARGV[4] event retention: per-job stream TTL in ms
//	ARGV[5] shared events stream MAXLEN (approximate)
//
// Script-specific ARGV start at 6. KEYS are not used for the scheduler's own
// keys: every key a script touches is built from ARGV[1], so all of them are in
// one hash slot (the tag), which is what Redis Cluster requires.
const luaPrelude = `
local PFX = ARGV[1]
local NOW = tonumber(ARGV[2])
local NOWS = ARGV[3]
local EVTTL = tonumber(ARGV[4])
local EVMAX = tonumber(ARGV[5])
local G = PFX .. 'global'
local READY = PFX .. 'ready'
local BLOCKED = PFX .. 'blocked'
local WORK = PFX .. 'work'
local DELAYED = PFX .. 'delayed'
local DEAD = PFX .. 'dead'
local EVENTS = PFX .. 'events'
local WAKE = PFX .. 'wake'
local function jkey(id) return PFX .. 'job:' .. id end
local function reqkey(id) return PFX .. 'job:' .. id .. ':req' end
local function evkey(id) return PFX .. 'job:' .. id .. ':ev' end
local function tkey(t) return PFX .. 't:' .. t end
local function ukey(t, u) return PFX .. 't:' .. t .. ':u:' .. u .. ':q' end
local function userskey(t) return PFX .. 't:' .. t .. ':users' end
local function activekey(t) return PFX .. 't:' .. t .. ':active' end
local function num(v) if v == false or v == nil or v == '' then return 0 end return tonumber(v) end

-- emit appends one event of job id; body is the JSON members after "seq",
-- starting with a comma or empty. The first event (queued, at submit) goes to
-- the shared stream only: readers of the job's own stream rebuild it from the
-- record, which saves a stream per waiting job.
local function emit(id, tenant, typ, body)
  local seq = redis.call('HINCRBY', jkey(id), 'seq', 1)
  local e = '{"type":"' .. typ .. '","job_id":"' .. id .. '","tenant":"' .. tenant ..
    '","seq":' .. seq .. ',"time":"' .. NOWS .. '"' .. body .. '}'
  if seq > 1 then
    redis.call('XADD', evkey(id), 'MAXLEN', '~', 1000, '*', 'e', e)
    redis.call('PEXPIRE', evkey(id), EVTTL)
  end
  redis.call('XADD', EVENTS, 'MAXLEN', '~', EVMAX, '*', 'e', e)
  return seq
end

local function wake()
  if redis.call('LLEN', WAKE) == 0 then redis.call('LPUSH', WAKE, '1') end
end

-- members of the ready and users sets carry a sequence number before the name,
-- so that among equal virtual times the set is FIFO.
local function member(seq, name) return string.format('%016d', seq) .. '|' .. name end
local function member_name(m) return string.sub(m, 18) end

-- A lane is what fair dispatch orders: a tenant's normal lane is named like
-- the tenant; its relax lane (over-quota jobs in relax mode) is
-- "<tenant>~relax" and is served only when no normal lane has work. Running
-- counts, caps and weights live on the tenant's own hash.
local RELAX = PFX .. 'relax'
local function base_of(lane) return (string.gsub(lane, '~relax$', '')) end
local function is_relax(lane) return string.sub(lane, -6) == '~relax' end
local function ready_key(lane) if is_relax(lane) then return RELAX end return READY end
local function vt_field(lane) if is_relax(lane) then return 'rvt' end return 'vt' end
local function lane_of(jk) local l = redis.call('HGET', jk, 'lane') if l and l ~= '' then return l end return redis.call('HGET', jk, 'tenant') end

local function ready_add(lane, vt)
  local m = member(redis.call('HINCRBY', G, 'rseq', 1), lane)
  redis.call('ZADD', ready_key(lane), vt, m)
  redis.call('HSET', tkey(lane), 'rm', m)
end

-- enqueue puts job id at the back (or front, for a retry) of its user's queue
-- in lane and makes the user and the lane backlogged if they were not.
local function enqueue(lane, u, id, front)
  local tk = tkey(lane)
  if front then redis.call('LPUSH', ukey(lane, u), id) else redis.call('RPUSH', ukey(lane, u), id) end
  redis.call('HINCRBY', tk, 'pending', 1)
  redis.call('HINCRBY', tkey(base_of(lane)), 'up:' .. u, 1)
  redis.call('HINCRBY', G, 'pending', 1)
  if num(redis.call('HGET', tk, 'um:' .. u)) == 0 then
    local s = math.max(num(redis.call('HGET', tk, 'uf:' .. u)), num(redis.call('HGET', tk, 'uvt')))
    local m = member(redis.call('HINCRBY', tk, 'useq', 1), u)
    redis.call('ZADD', userskey(lane), s, m)
    redis.call('HSET', tk, 'um:' .. u, m)
  end
  if num(redis.call('HGET', tk, 'rm')) == 0 and not redis.call('ZSCORE', BLOCKED, lane) then
    ready_add(lane, math.max(num(redis.call('HGET', tk, 'vt')), num(redis.call('HGET', G, vt_field(lane)))))
  end
end

-- unqueued forgets one queued job of user u in lane (dispatched or canceled).
local function unqueued(lane, u)
  redis.call('HINCRBY', tkey(lane), 'pending', -1)
  redis.call('HINCRBY', tkey(base_of(lane)), 'up:' .. u, -1)
  redis.call('HINCRBY', G, 'pending', -1)
end

-- pop_job takes the next live queued job of lane t from its least recently
-- served user; canceled jobs left in the lists are dropped here (cancel is O(1)).
local function pop_job(t)
  local tk = tkey(t)
  local users = userskey(t)
  for _ = 1, 1000 do
    local top = redis.call('ZPOPMIN', users)
    if #top == 0 then return nil end
    local u = member_name(top[1])
    local su = tonumber(top[2])
    redis.call('HSET', tk, 'um:' .. u, '')
    local q = ukey(t, u)
    local id = redis.call('LPOP', q)
    while id do
      if redis.call('HGET', jkey(id), 'status') == 'queued' then break end
      id = redis.call('LPOP', q)
    end
    if id then
      local cost = num(redis.call('HGET', jkey(id), 'cost'))
      local uw = num(redis.call('HGET', tkey(base_of(t)), 'uw:' .. u))
      if uw <= 0 then uw = 1 end
      local f = su + cost / uw
      redis.call('HSET', tk, 'uvt', su, 'uf:' .. u, f)
      if redis.call('LLEN', q) > 0 then
        local m = member(redis.call('HINCRBY', tk, 'useq', 1), u)
        redis.call('ZADD', users, f, m)
        redis.call('HSET', tk, 'um:' .. u, m)
      end
      unqueued(t, u)
      return id, cost
    end
  end
  return nil
end

-- dispatch moves jobs onto the work stream while workers have free slots
-- (credits) and lanes have work, in virtual-time order, normal lanes first.
local function dispatch()
  local n = 0
  for _ = 1, 1000 do
    if num(redis.call('HGET', G, 'credits')) <= 0 then break end
    local top = redis.call('ZPOPMIN', READY)
    if #top == 0 then top = redis.call('ZPOPMIN', RELAX) end
    if #top == 0 then break end
    local t = member_name(top[1])
    local s = tonumber(top[2])
    local tk = tkey(t)
    local bk = tkey(base_of(t))
    redis.call('HSET', tk, 'rm', '')
    local cap = num(redis.call('HGET', bk, 'cap'))
    if cap > 0 and num(redis.call('HGET', bk, 'running')) >= cap then
      redis.call('ZADD', BLOCKED, s, t)
    else
      local id, cost = pop_job(t)
      if id then
        local w = num(redis.call('HGET', bk, 'w'))
        if w <= 0 then w = 1 end
        local f = s + cost / w
        redis.call('HSET', G, vt_field(t), s)
        redis.call('HSET', tk, 'vt', f)
        if redis.call('ZCARD', userskey(t)) > 0 then ready_add(t, f) end
        local jk = jkey(id)
        local attempt = redis.call('HINCRBY', jk, 'attempt', 1)
        local wid = redis.call('XADD', WORK, '*', 'id', id, 'a', attempt)
        redis.call('HSET', jk, 'status', 'dispatched', 'wid', wid, 'dispatched_ms', NOW)
        redis.call('HINCRBY', G, 'credits', -1)
        redis.call('HINCRBY', bk, 'running', 1)
        redis.call('HINCRBY', G, 'running', 1)
        -- Served GPU cost per minute, weight-normalised, for fairness metrics.
        local sk = PFX .. 'served:' .. math.floor(NOW / 60000)
        redis.call('HINCRBYFLOAT', sk, base_of(t), cost / w)
        redis.call('PEXPIRE', sk, 3600000)
        n = n + 1
      end
    end
  end
  return n
end

-- position estimates the place in line of a queued job (1 = next): rounds of
-- round-robin before its turn, capped by everything pending.
local function position(id)
  local jk = jkey(id)
  local t = lane_of(jk)
  local u = redis.call('HGET', jk, 'user')
  local tk = tkey(t)
  local idx = redis.call('LPOS', ukey(t, u), id)
  if not idx then return 0 end
  local urank = 0
  local um = redis.call('HGET', tk, 'um:' .. u)
  if um and um ~= '' then urank = redis.call('ZRANK', userskey(t), um) or 0 end
  local trank = 0
  local rm = redis.call('HGET', tk, 'rm')
  if rm and rm ~= '' then trank = redis.call('ZRANK', ready_key(t), rm) or 0 end
  local nusers = math.max(1, redis.call('ZCARD', userskey(t)))
  local ntenants = math.max(1, redis.call('ZCARD', ready_key(t)))
  local est = (idx * nusers + urank) * ntenants + trank + 1
  if is_relax(t) then
    -- Behind every normal job.
    est = est + num(redis.call('HGET', G, 'pending')) - redis.call('ZCARD', RELAX)
  end
  return math.max(1, math.min(est, num(redis.call('HGET', G, 'pending'))))
end

-- release ends a running or dispatched attempt's hold on its tenant: acks the
-- work entry and lets lanes parked at the tenant's concurrency cap back in.
local function release(id, t)
  local jk = jkey(id)
  local wid = redis.call('HGET', jk, 'wid')
  if wid and wid ~= '' then
    redis.call('XACK', WORK, 'workers', wid)
    redis.call('XDEL', WORK, wid)
    redis.call('HSET', jk, 'wid', '')
  end
  redis.call('HINCRBY', tkey(t), 'running', -1)
  redis.call('HINCRBY', G, 'running', -1)
  for _, lane in ipairs({t, t .. '~relax'}) do
    local bs = redis.call('ZSCORE', BLOCKED, lane)
    if bs then
      redis.call('ZREM', BLOCKED, lane)
      if redis.call('ZCARD', userskey(lane)) > 0 then ready_add(lane, tonumber(bs)) end
    end
  end
end

-- quota counters: images admitted per UTC day, per tenant and per user.
local function qkeys(t, u, day)
  return PFX .. 'q:' .. day .. ':' .. t, PFX .. 'q:' .. day .. ':' .. t .. ':u:' .. u
end

-- refund gives a job's images back to the day's quotas (canceled before it
-- ran, or failed).
local function refund(jk)
  local day = redis.call('HGET', jk, 'qday')
  if not day or day == '' then return end
  local n = num(redis.call('HGET', jk, 'images_req'))
  local tq, uq = qkeys(redis.call('HGET', jk, 'tenant'), redis.call('HGET', jk, 'user'), day)
  redis.call('DECRBY', tq, n)
  redis.call('DECRBY', uq, n)
  redis.call('HSET', jk, 'qday', '')
end

-- gcra checks a generic cell rate limit of per_min jobs a minute with burst;
-- it returns 0 and the new theoretical arrival time when allowed, or the ms
-- to wait.
local function gcra(key, per_min, burst)
  if per_min <= 0 then return 0, nil end
  local interval = 60000 / per_min
  local tat = math.max(num(redis.call('GET', key)), NOW)
  local new = tat + interval
  local allow_at = new - interval * math.max(burst, 1)
  if allow_at > NOW then return math.ceil(allow_at - NOW), nil end
  return 0, new
end

local function finish(id, t, status)
  local jk = jkey(id)
  redis.call('HSET', jk, 'status', status, 'finished_ms', NOW)
  redis.call('SREM', activekey(t), id)
  redis.call('PEXPIRE', jk, EVTTL)
  redis.call('PEXPIRE', reqkey(id), EVTTL)
end

-- retry_or_fail sends a lost or failed attempt back through the delayed set,
-- or ends the job when it is out of attempts. Returns 'retry' or 'failed'.
local function retry_or_fail(id, t, retryable, code, msgjson, backoff_base, backoff_max, jitter)
  local jk = jkey(id)
  local attempt = num(redis.call('HGET', jk, 'attempt'))
  local used = attempt - num(redis.call('HGET', jk, 'handbacks'))
  local maxa = num(redis.call('HGET', jk, 'max_attempts'))
  release(id, t)
  if retryable and used < maxa then
    local delay = math.min(backoff_base * math.pow(2, used - 1), backoff_max) * jitter
    delay = math.floor(delay)
    redis.call('HSET', jk, 'status', 'queued', 'step', 0, 'steps', 0, 'fraction', 0)
    redis.call('ZADD', DELAYED, NOW + delay, id)
    emit(id, t, 'retrying', ',"attempt":' .. attempt .. ',"after_s":' .. (delay / 1000) .. ',"reason":' .. msgjson)
    wake()
    return 'retry'
  end
  redis.call('HSET', jk, 'error_code', code, 'error', msgjson)
  refund(jk)
  finish(id, t, 'failed')
  redis.call('XADD', DEAD, 'MAXLEN', '~', 100000, '*', 'id', id, 'code', code)
  emit(id, t, 'failed', ',"code":"' .. code .. '","message":' .. msgjson)
  return 'failed'
end
`

func script(body string) *rueidis.Lua { return rueidis.NewLuaScript(luaPrelude + body) }

// submitScript admits and enqueues a job, then dispatches if a slot is free.
// ARGV[6] id, [7] tenant, [8] user, [9] request (payload and origin, see
// encodeRequest), [10] unused, [11] cost, [12] images, [13] max attempts,
// [14] idempotency key or "", [15] idempotency TTL ms, [16] tenant weight,
// [17] user weight, [18] tenant max running, [19] user jobs/min, [20] user
// burst, [21] tenant jobs/min, [22] tenant burst, [23] user daily images,
// [24] tenant daily images, [25] max pending jobs per user, [26] overflow
// ("reject" or "relax"). Zero limits are off.
// Returns {id, position, duplicate(0|1), lane} or, when refused,
// {"", 0, 0, reason, retry_after_ms, limit}.
var submitScript = script(`
local id, t, u = ARGV[6], ARGV[7], ARGV[8]
local images = tonumber(ARGV[12])
local ik = PFX .. 'idem:' .. t .. ':' .. ARGV[14]
if ARGV[14] ~= '' then
  local prev = redis.call('GET', ik)
  if prev then return {prev, 0, 1, ''} end
end
local tk = tkey(t)
local max_pending = tonumber(ARGV[25])
if max_pending > 0 and num(redis.call('HGET', tk, 'up:' .. u)) >= max_pending then
  return {'', 0, 0, 'user_pending', 0, ARGV[25]}
end
local urk, trk = PFX .. 'rl:' .. t .. ':u:' .. u, PFX .. 'rl:' .. t
local uwait, unew = gcra(urk, tonumber(ARGV[19]), tonumber(ARGV[20]))
if uwait > 0 then return {'', 0, 0, 'user_rate', uwait, ARGV[19]} end
local twait, tnew = gcra(trk, tonumber(ARGV[21]), tonumber(ARGV[22]))
if twait > 0 then return {'', 0, 0, 'tenant_rate', twait, ARGV[21]} end
local day = math.floor(NOW / 86400000)
local tq, uq = qkeys(t, u, day)
local ulimit, tlimit = tonumber(ARGV[23]), tonumber(ARGV[24])
local lane = t
local over = nil
if ulimit > 0 and num(redis.call('GET', uq)) + images > ulimit then over = {'user_quota', ARGV[23]}
elseif tlimit > 0 and num(redis.call('GET', tq)) + images > tlimit then over = {'tenant_quota', ARGV[24]} end
if over then
  if ARGV[26] ~= 'relax' then
    return {'', 0, 0, over[1], (day + 1) * 86400000 - NOW, over[2]}
  end
  lane = t .. '~relax'
end
-- Admitted: commit the limits' state.
if unew then redis.call('SET', urk, unew, 'PX', math.ceil(unew - NOW)) end
if tnew then redis.call('SET', trk, tnew, 'PX', math.ceil(tnew - NOW)) end
local jk = jkey(id)
-- The record's values stay short so Redis keeps it in its compact encoding;
-- the long request and origin live in a string of their own.
redis.call('HSET', jk, 'id', id, 'tenant', t, 'user', u, 'status', 'queued',
  'cost', ARGV[11], 'images_req', images,
  'attempt', 0, 'max_attempts', ARGV[13], 'created_ms', NOW, 'seq', 0)
if lane ~= t then
  redis.call('HSET', jk, 'lane', lane)
else
  redis.call('INCRBY', tq, images)
  redis.call('PEXPIRE', tq, 172800000)
  redis.call('INCRBY', uq, images)
  redis.call('PEXPIRE', uq, 172800000)
  redis.call('HSET', jk, 'qday', day)
end
if ARGV[14] ~= '' then redis.call('SET', ik, id, 'PX', ARGV[15]) end
redis.call('SET', reqkey(id), ARGV[9])
redis.call('SADD', activekey(t), id)
redis.call('HSET', tk, 'w', ARGV[16], 'cap', ARGV[18])
if tonumber(ARGV[17]) ~= 1 then redis.call('HSET', tk, 'uw:' .. u, ARGV[17]) else redis.call('HDEL', tk, 'uw:' .. u) end
enqueue(lane, u, id, false)
local pos = position(id)
redis.call('HSET', jk, 'qpos', pos)
emit(id, t, 'queued', ',"position":' .. pos)
dispatch()
if redis.call('HGET', jk, 'status') ~= 'queued' then pos = 0 end
return {id, pos, 0, lane}
`)

// offerScript adds ARGV[6] free worker slots (credits) and dispatches.
// Returns the number of jobs dispatched.
var offerScript = script(`
redis.call('HINCRBY', G, 'credits', tonumber(ARGV[6]))
return dispatch()
`)

// withdrawScript takes back up to ARGV[6] unused credits of a stopping worker.
var withdrawScript = script(`
local c = num(redis.call('HGET', G, 'credits'))
local n = math.min(c, tonumber(ARGV[6]))
if n > 0 then redis.call('HINCRBY', G, 'credits', -n) end
return n
`)

// startScript marks a dispatched attempt running.
// ARGV[6] id, [7] attempt, [8] backend name (JSON string literal), [9] raw backend name.
// Returns {1, request, created ms, dispatched ms} or {0, reason}.
var startScript = script(`
local id, a = ARGV[6], tonumber(ARGV[7])
local jk = jkey(id)
local st = redis.call('HGET', jk, 'status')
if st ~= 'dispatched' or num(redis.call('HGET', jk, 'attempt')) ~= a then return {0, st or 'missing'} end
redis.call('HSET', jk, 'status', 'running', 'started_ms', NOW, 'backend', ARGV[9])
local t = redis.call('HGET', jk, 'tenant')
emit(id, t, 'started', ',"backend":' .. ARGV[8] .. ',"attempt":' .. a)
return {1, redis.call('GET', reqkey(id)), num(redis.call('HGET', jk, 'created_ms')), num(redis.call('HGET', jk, 'dispatched_ms'))}
`)

// renewScript extends the lease of a running attempt by resetting the idle
// time of its work entry. ARGV[6] id, [7] attempt, [8] consumer.
// Returns 1, or 0 when the attempt is stale (canceled, reclaimed).
var renewScript = script(`
local jk = jkey(ARGV[6])
local st = redis.call('HGET', jk, 'status')
if (st ~= 'running' and st ~= 'dispatched') or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[7]) then return 0 end
local wid = redis.call('HGET', jk, 'wid')
if not wid or wid == '' then return 0 end
local got = redis.call('XCLAIM', WORK, 'workers', ARGV[8], 0, wid, 'JUSTID')
if #got == 0 then return 0 end
return 1
`)

// progressScript records progress of a running attempt and emits it.
// ARGV[6] id, [7] attempt, [8] step, [9] steps, [10] fraction, [11] event
// body, [12] preview name or "" (kept on the record as the latest preview).
// Returns 1, or 0 when stale.
var progressScript = script(`
local id = ARGV[6]
local jk = jkey(id)
if redis.call('HGET', jk, 'status') ~= 'running' or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[7]) then return 0 end
redis.call('HSET', jk, 'step', ARGV[8], 'steps', ARGV[9], 'fraction', ARGV[10])
if ARGV[12] ~= '' then redis.call('HSET', jk, 'preview', ARGV[12]) end
emit(id, redis.call('HGET', jk, 'tenant'), 'progress', ARGV[11])
return 1
`)

// succeedScript ends a running attempt with its results.
// ARGV[6] id, [7] attempt, [8] image count, [9] seeds JSON, [10] info JSON
// string literal, [11] "1" to offer the freed worker slot at once (saves the
// worker a round trip between jobs).
// Returns 1, or 0 when stale.
var succeedScript = script(`
local id, a = ARGV[6], tonumber(ARGV[7])
local jk = jkey(id)
if redis.call('HGET', jk, 'status') ~= 'running' or num(redis.call('HGET', jk, 'attempt')) ~= a then return 0 end
local t = redis.call('HGET', jk, 'tenant')
release(id, t)
-- Moving average of run time, for queue ETAs.
local ran = NOW - num(redis.call('HGET', jk, 'started_ms'))
local avg = num(redis.call('HGET', G, 'avg_ms'))
if avg == 0 then avg = ran else avg = avg * 0.8 + ran * 0.2 end
redis.call('HSET', G, 'avg_ms', math.floor(avg))
redis.call('HSET', jk, 'images', ARGV[8], 'image_attempt', a, 'seeds', ARGV[9], 'info', ARGV[10], 'step', redis.call('HGET', jk, 'steps') or 0, 'fraction', 1)
finish(id, t, 'succeeded')
emit(id, t, 'succeeded', ',"images":' .. ARGV[8] .. ',"seeds":' .. ARGV[9] .. ',"info":' .. ARGV[10])
if ARGV[11] == '1' then
  redis.call('HINCRBY', G, 'credits', 1)
  dispatch()
end
return 1
`)

// failScript ends a running attempt with an error, retrying when allowed.
// ARGV[6] id, [7] attempt, [8] retryable (0|1), [9] code, [10] message JSON
// string literal, [11] backoff base ms, [12] backoff max ms, [13] jitter factor.
// Returns 'retry', 'failed', or 'stale'.
var failScript = script(`
local id = ARGV[6]
local jk = jkey(id)
local st = redis.call('HGET', jk, 'status')
if (st ~= 'running' and st ~= 'dispatched') or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[7]) then return 'stale' end
return retry_or_fail(id, redis.call('HGET', jk, 'tenant'), ARGV[8] == '1', ARGV[9], ARGV[10],
  tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]))
`)

// handBackScript returns a running attempt to the front of its user's queue
// without using up one of the job's attempts (graceful worker stop); the
// attempt number itself still moves on at the next dispatch, for fencing.
// ARGV[6] id, [7] attempt. Returns 1, or 0 when stale.
var handBackScript = script(`
local id = ARGV[6]
local jk = jkey(id)
local st = redis.call('HGET', jk, 'status')
if (st ~= 'running' and st ~= 'dispatched') or num(redis.call('HGET', jk, 'attempt')) ~= tonumber(ARGV[7]) then return 0 end
local t = redis.call('HGET', jk, 'tenant')
release(id, t)
redis.call('HINCRBY', jk, 'handbacks', 1)
redis.call('HSET', jk, 'status', 'queued', 'step', 0, 'steps', 0, 'fraction', 0)
enqueue(lane_of(jk), redis.call('HGET', jk, 'user'), id, true)
emit(id, t, 'queued', ',"position":' .. position(id))
dispatch()
return 1
`)

// cancelScript cancels a job in any live state. ARGV[6] id, [7] by (JSON
// string literal), [8] cancel channel. Returns the previous status, or
// 'missing'. A queued job is left in its list and dropped at dispatch (O(1)).
var cancelScript = script(`
local id = ARGV[6]
local jk = jkey(id)
local st = redis.call('HGET', jk, 'status')
if not st then return 'missing' end
if st == 'succeeded' or st == 'failed' or st == 'canceled' then return st end
local t = redis.call('HGET', jk, 'tenant')
if st == 'queued' then
  if redis.call('ZREM', DELAYED, id) == 0 then
    unqueued(lane_of(jk), redis.call('HGET', jk, 'user'))
  end
  refund(jk)
else
  release(id, t)
  if st == 'running' then redis.call('PUBLISH', ARGV[8], id) end
end
redis.call('HSET', jk, 'canceled_by', ARGV[7])
finish(id, t, 'canceled')
emit(id, t, 'canceled', ',"by":' .. ARGV[7])
return st
`)

// promoteScript moves due retries back into their users' queues (at the
// front) and dispatches. ARGV[6] max jobs to move.
// Returns the due time in ms of the next delayed job, or -1.
var promoteScript = script(`
local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[6]))
for _, id in ipairs(due) do
  redis.call('ZREM', DELAYED, id)
  local jk = jkey(id)
  if redis.call('HGET', jk, 'status') == 'queued' then
    enqueue(lane_of(jk), redis.call('HGET', jk, 'user'), id, true)
  end
end
dispatch()
local nxt = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
if #nxt == 0 then return -1 end
return tonumber(nxt[2])
`)

// reclaimScript takes back work entries idle past the lease (their worker
// died or hung) and retries or fails their jobs. ARGV[6] lease ms, [7]
// reclaimer consumer name, [8] count, [9] message JSON literal, [10] backoff
// base ms, [11] backoff max ms, [12] jitter. Returns the number reclaimed.
var reclaimScript = script(`
local res = redis.call('XAUTOCLAIM', WORK, 'workers', ARGV[7], tonumber(ARGV[6]), '0-0', 'COUNT', tonumber(ARGV[8]))
local n = 0
for _, entry in ipairs(res[2]) do
  local wid = entry[1]
  local f = entry[2]
  local id, a = nil, nil
  if f then
    for i = 1, #f, 2 do
      if f[i] == 'id' then id = f[i + 1] elseif f[i] == 'a' then a = tonumber(f[i + 1]) end
    end
  end
  local jk = id and jkey(id)
  local st = jk and redis.call('HGET', jk, 'status')
  if jk and (st == 'running' or st == 'dispatched') and num(redis.call('HGET', jk, 'attempt')) == a and redis.call('HGET', jk, 'wid') == wid then
    retry_or_fail(id, redis.call('HGET', jk, 'tenant'), true, 'lease_expired', ARGV[9],
      tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]))
    n = n + 1
  else
    redis.call('XACK', WORK, 'workers', wid)
    redis.call('XDEL', WORK, wid)
  end
end
dispatch()
return n
`)

// positionScript answers the estimated place in line of a queued job.
// ARGV[6] id. Returns 0 when the job is not waiting in a queue.
var positionScript = script(`
local jk = jkey(ARGV[6])
if redis.call('HGET', jk, 'status') ~= 'queued' then return 0 end
return position(ARGV[6])
`)
