-- lib.lua: state and helpers shared by every scheduler script. It is the
-- head of the Redis Functions library and of each EVALSHA script alike.
--
-- KEYS common to every script (the shard's own keys, one hash tag {s}):
--   KEYS[1] {s}:global   hash: virtual times, sequence counters, slot credits
--   KEYS[2] {s}:ready    zset: lanes with dispatchable work, by virtual time
--   KEYS[3] {s}:relax    zset: relax lanes (over-quota work), by virtual time
--   KEYS[4] {s}:blocked  zset: lanes parked at their tenant's concurrency cap
--   KEYS[5] {s}:work     stream, group "workers": dispatched attempts
--   KEYS[6] {s}:delayed  zset: retries by due time (ms)
--   KEYS[7] {s}:dead     stream: jobs out of attempts
--   KEYS[8] {s}:events   stream, group "relay": every job event
--   KEYS[9] {s}:wake     list: the maintainer blocks on it
--   KEYS[10] {s}:slots   zset: idle worker slots "<consumer>\t<backend>",
--                        scored by the time (ms) their offer expires
-- Script-specific KEYS start at 11.
--
-- ARGV common to every script:
--   ARGV[1] the shard's key prefix "easel:{s}:" (lane, user and job keys
--           that a script discovers itself — a lane popped from the ready
--           set — are named from it; every such key carries the shard's tag)
--   ARGV[2] now in unix ms, or "" for the server's clock (TIME)
--   ARGV[3] retention of finished records and event streams, ms
--   ARGV[4] shared events stream MAXLEN (approximate)
--   ARGV[5] the calling worker slot "<consumer>\t<backend>", or "": a job
--           dispatched to it comes back in the reply instead of on its channel
-- Script-specific ARGV start at 6.

-- DELIVERED holds the job dispatched to the caller's own slot, if any.
local PFX, NOW, NOWS, EVTTL, EVMAX, SELF, DELIVERED
local G, READY, RELAX, BLOCKED, WORK, DELAYED, DEAD, EVENTS, WAKE, SLOTS

-- iso renders unix ms as RFC 3339 in UTC (days-to-civil, proleptic Gregorian).
local function iso(ms)
  local s = math.floor(ms / 1000)
  local frac = ms - s * 1000
  local days = math.floor(s / 86400)
  local sod = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(sod / 3600), math.floor((sod % 3600) / 60), sod % 60, frac)
end

local function init(keys, args)
  DELIVERED = nil
  G, READY, RELAX, BLOCKED, WORK = keys[1], keys[2], keys[3], keys[4], keys[5]
  DELAYED, DEAD, EVENTS, WAKE, SLOTS = keys[6], keys[7], keys[8], keys[9], keys[10]
  PFX = args[1]
  SELF = args[5]
  if args[2] == '' then
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  else
    NOW = tonumber(args[2])
  end
  NOWS = iso(NOW)
  EVTTL = tonumber(args[3])
  EVMAX = tonumber(args[4])
end

local function jkey(id) return PFX .. 'job:' .. id end
local function reqkey(id) return PFX .. 'job:' .. id .. ':req' end
local function evkey(id) return PFX .. 'job:' .. id .. ':ev' end
local function tkey(t) return PFX .. 't:' .. t end
local function ukey(t, u) return PFX .. 't:' .. t .. ':u:' .. u .. ':q' end
local function userskey(t) return PFX .. 't:' .. t .. ':users' end
local function idlekey(t) return PFX .. 't:' .. t .. ':idle' end
local function activekey(t) return PFX .. 't:' .. t .. ':active' end
local function num(v) if v == false or v == nil or v == '' then return 0 end return tonumber(v) end

-- emit appends one event of job id; body is the JSON members after "time",
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

-- Members of the ready and users sets carry a sequence number before the
-- name, so that among equal virtual times the set is FIFO.
local function member(seq, name) return string.format('%016d', seq) .. '|' .. name end
local function member_name(m) return string.sub(m, 18) end

-- A lane is what fair dispatch orders: a tenant's normal lane is named like
-- the tenant; its relax lane (over-quota jobs in relax mode) is
-- "<tenant>~relax" and is served only when no normal lane has work. Running
-- counts, caps and weights live on the tenant's own hash.
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

-- user_pending adds d to user u's pending count on the tenant hash and drops
-- the user's fields when nothing of theirs is waiting any more, so tenant
-- hashes hold only users with work, not every user ever seen.
local function user_pending(lane, u, d)
  local bk = tkey(base_of(lane))
  if redis.call('HINCRBY', bk, 'up:' .. u, d) <= 0 then
    redis.call('HDEL', bk, 'up:' .. u, 'uw:' .. u)
  end
end

-- enqueue puts job id at the back (or front, for a retry) of its user's queue
-- in lane and makes the user and the lane backlogged if they were not. A
-- user coming back keeps the finish tag of their last job while it is ahead
-- of the lane's virtual time (the lane's idle set), so leaving and coming
-- back does not jump the line.
local function enqueue(lane, u, id, front)
  local tk = tkey(lane)
  if front then redis.call('LPUSH', ukey(lane, u), id) else redis.call('RPUSH', ukey(lane, u), id) end
  redis.call('HINCRBY', tk, 'pending', 1)
  user_pending(lane, u, 1)
  redis.call('HINCRBY', G, 'pending', 1)
  if num(redis.call('HGET', tk, 'um:' .. u)) == 0 then
    local ik = idlekey(lane)
    local s = math.max(num(redis.call('ZSCORE', ik, u)), num(redis.call('HGET', tk, 'uvt')))
    redis.call('ZREM', ik, u)
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
  user_pending(lane, u, -1)
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
    redis.call('HDEL', tk, 'um:' .. u)
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
      redis.call('HSET', tk, 'uvt', su)
      local ik = idlekey(t)
      if redis.call('LLEN', q) > 0 then
        local m = member(redis.call('HINCRBY', tk, 'useq', 1), u)
        redis.call('ZADD', users, f, m)
        redis.call('HSET', tk, 'um:' .. u, m)
      else
        redis.call('ZADD', ik, f, u)
      end
      -- Idle users whose finish tag the lane has passed are like newcomers,
      -- and so is everyone once the lane has nobody waiting.
      if redis.call('ZCARD', users) == 0 then
        redis.call('DEL', ik)
      else
        redis.call('ZREMRANGEBYSCORE', ik, '-inf', su)
      end
      unqueued(t, u)
      return id, cost
    end
  end
  return nil
end

-- take_slot picks an idle worker slot whose offer has not expired: the
-- caller's own when it offered one, else the longest idle. A worker killed
-- without a goodbye stops renewing its offer, and its slot drops out here.
local function take_slot()
  redis.call('ZREMRANGEBYSCORE', SLOTS, '-inf', NOW)
  if SELF ~= '' and redis.call('ZSCORE', SLOTS, SELF) then return SELF end
  local top = redis.call('ZRANGE', SLOTS, 0, 0)
  return top[1]
end

-- deliver hands one dispatched attempt to worker slot m: the entry goes into
-- the slot's consumer's pending list (its lease), the job is running (the
-- start is part of the dispatch) and the worker hears of it on its channel,
-- or in the reply when it is the caller.
local function deliver(m, id, attempt, tenant)
  local tab = string.find(m, '\t', 1, true)
  local consumer, backend = string.sub(m, 1, tab - 1), string.sub(m, tab + 1)
  local jk = jkey(id)
  local req = redis.call('GET', reqkey(id)) or ''
  local created = redis.call('HGET', jk, 'created_ms')
  local wid = redis.call('XADD', WORK, '*', 'id', id, 'a', attempt)
  redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', 1, 'STREAMS', WORK, '>')
  redis.call('ZREM', SLOTS, m)
  redis.call('HSET', jk, 'status', 'running', 'wid', wid, 'dispatched_ms', NOW, 'started_ms', NOW, 'backend', backend)
  emit(id, tenant, 'started', ',"backend":' .. cjson.encode(backend) .. ',"attempt":' .. attempt)
  local d = {wid, id, string.format('%d', attempt), created, string.format('%d', NOW), req}
  if m == SELF then
    DELIVERED = d
  else
    redis.call('PUBLISH', PFX .. 'c:' .. consumer, table.concat(d, '\n'))
  end
end

-- dispatch moves jobs to idle worker slots while lanes have work, in
-- virtual-time order, normal lanes first.
local function dispatch()
  local n = 0
  for _ = 1, 1000 do
    local slot = take_slot()
    if not slot then break end
    local top = redis.call('ZPOPMIN', READY)
    if #top == 0 then top = redis.call('ZPOPMIN', RELAX) end
    if #top == 0 then break end
    local t = member_name(top[1])
    local s = tonumber(top[2])
    local tk = tkey(t)
    local base = base_of(t)
    local bk = tkey(base)
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
        local attempt = redis.call('HINCRBY', jkey(id), 'attempt', 1)
        redis.call('HINCRBY', bk, 'running', 1)
        redis.call('HINCRBY', G, 'running', 1)
        -- Served GPU cost per minute, weight-normalised, for fairness metrics.
        local sk = PFX .. 'served:' .. math.floor(NOW / 60000)
        redis.call('HINCRBYFLOAT', sk, base, cost / w)
        redis.call('PEXPIRE', sk, 3600000)
        deliver(slot, id, attempt, base)
        n = n + 1
      end
    end
  end
  return n
end

-- offer_self offers the caller's slot until ttl ms from now.
local function offer_self(ttl)
  redis.call('ZADD', SLOTS, NOW + ttl, SELF)
end

-- delivered is the reply part for the caller's slot: the job dispatched to
-- it {entry, job, attempt, created ms, dispatched ms, request}, or {}.
local function delivered()
  return DELIVERED or {}
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

-- Quota counters: one hash per tenant for the images admitted today,
-- {d = UTC day, n = tenant images, u:<user> = user images}; a new day starts
-- it again, so it holds only today's users.
local function quota_used(k, day, field)
  local v = redis.call('HMGET', k, 'd', field)
  if num(v[1]) ~= day then return 0 end
  return num(v[2])
end

local function quota_add(k, day, u, n)
  if num(redis.call('HGET', k, 'd')) ~= day then
    redis.call('DEL', k)
    redis.call('HSET', k, 'd', day)
  end
  redis.call('HINCRBY', k, 'n', n)
  redis.call('HINCRBY', k, 'u:' .. u, n)
  redis.call('PEXPIRE', k, 172800000)
end

-- refund gives a job's images back to the day's quotas (canceled before it
-- ran, or failed).
local function refund(jk)
  local day = redis.call('HGET', jk, 'qday')
  if not day or day == '' then return end
  day = tonumber(day)
  local n = num(redis.call('HGET', jk, 'images_req'))
  local qk = PFX .. 'q:' .. redis.call('HGET', jk, 'tenant')
  if n > 0 and num(redis.call('HGET', qk, 'd')) == day then
    redis.call('HINCRBY', qk, 'n', 0 - n)
    redis.call('HINCRBY', qk, 'u:' .. redis.call('HGET', jk, 'user'), 0 - n)
  end
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
  redis.call('ZREM', activekey(t) .. ':lex', id)
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
