-- lib.lua: state and helpers shared by every scheduler script. It is the
-- head of the Redis Functions library and of each EVALSHA script alike.
--
-- KEYS common to every script (the shard's own keys, one hash tag {s}):
--   KEYS[1] {s}:global   hash: virtual times, sequence counters, counts
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
-- Script-specific KEYS start at 11. Every script also gets, as its LAST key:
--   KEYS[#KEYS] {s}:slotcaps  hash: each worker slot's capabilities for
--                        routing, "<expires ms>\t<loaded model key>\n"
--                        then each model key followed by "\n"
--
-- ARGV common to every script:
--   ARGV[1] the shard's key prefix "easel:{s}:". The keys a caller cannot
--           know are named from it inside the scripts: the lanes, user
--           queues and jobs that dispatch, promote and reclaim discover (a
--           lane popped from the ready set, its user's queue, the job at its
--           head, its request and events), the tenant keys of a job found by
--           id, history and served-share keys. Every such key carries the
--           shard's hash tag, so it hashes to KEYS[1]'s Cluster slot: init
--           refuses a prefix that is not KEYS[1]'s own or has no tag.
--   ARGV[2] now in unix ms, "" for the server's clock (TIME), or "-" for a
--           script that reads no clock
--   ARGV[3] retention of finished records and event streams, ms
--   ARGV[4] shared events stream MAXLEN (approximate)
--   ARGV[5] the calling worker slot "<consumer>\t<backend>", or "": a job
--           dispatched to it comes back in the reply instead of on its channel
-- Script-specific ARGV start at 6.

-- The library's own locals for the globals it calls: a global read goes
-- through the Functions globals table's __index (two table lookups, three
-- for redis.call), an upvalue read through none. They are set by bind on a
-- library's first call (init): at load only redis.register_function and
-- redis.log exist. globals is compiled before the locals, so its names are
-- the globals. The locals' names are not the globals' own: a standalone
-- script (lua/spend.lua), registered in the same chunk without init,
-- still calls the globals.
local function globals()
  return redis.call, tonumber, type, unpack, string.find, string.sub, string.format, string.gsub,
    math.floor, math.max, math.min, math.ceil, math.pow, table.concat, table.remove, cjson.encode
end
local rcall, tonum, vtype, unpk, sfind, ssub, sformat, sgsub, floor, max, min, ceil, pow, tconcat, tremove,
  jencode
local function bind()
  rcall, tonum, vtype, unpk, sfind, ssub, sformat, sgsub, floor, max, min, ceil, pow, tconcat, tremove,
    jencode = globals()
end

-- DELIVERED holds the job dispatched to the caller's own slot, if any;
-- SELF_FREE says the caller's slot is offered in this call and not yet used.
-- GC, LC, JC cache the global hash, lane hashes and job hashes for one call:
-- each is read with one HMGET (a job record with one per group of fields it
-- needs, see JF_START) and written back with one HSET (flush), so a script
-- pays one command per hash, not one per field. GD and LD flag the fields
-- written; a job's cache flags its own (see jnew).
local PFX, NOW, NOWS, NOW_S, EVTTL_S, EVMAX_S, SELF, DELIVERED, SELF_FREE, SELF_TTL, SELF_LISTED
local GC, GD, LC, LD, JC
local G, READY, RELAX, BLOCKED, WORK, DELAYED, DEAD, EVENTS, WAKE, SLOTS, CAPS
-- Routing caches for one call: FREE the free slots known (FREE_MORE: the
-- read was cut short; FREE_PARTIAL: only the caller's own, the offers not
-- read yet), CAPV the capabilities read by slot, LIVE and LIVE_M every live
-- slot's capabilities and whether a model is among them.
local FREE, FREE_MORE, FREE_PARTIAL, CAPV, LIVE, LIVE_M
-- FLOOR and RFLOOR (offer.lua, shards only) are the system's virtual times
-- across shards: a lane is served from at least them (scheduler/shards.go).
local FLOOR, RFLOOR

-- blank is a new table whose array part already has room for index 84
-- (the constructor's nils size it): the caches and their flags are written
-- by index up to there without the table growing (rehash, copy) on the
-- way. A job cache needs 2 * #JF + 3 of them.
local function blank()
  return {
    nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
    nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
    nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
    nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
    nil, nil, nil, nil, nil, nil, nil, nil
  }
end

-- NUMSTR holds the text of small whole numbers (0 to 999), kept between
-- calls like ISO_TXT: a job's sequence numbers, attempts, places in line
-- and counts are formatted by a table read instead of sprintf. istr writes
-- n as Lua's concatenation would (%.14g, the same text for these).
local NUMSTR = {}
local function istr(n)
  local s = NUMSTR[n]
  if s then return s end
  s = n .. ''
  if n >= 0 and n < 1000 and n == floor(n) then NUMSTR[n] = s end
  return s
end

-- iso renders unix ms as RFC 3339 in UTC (days-to-civil, proleptic Gregorian).
-- The text up to the second is kept between calls (a Functions library's
-- locals live as long as the library): most calls in a busy second only
-- append the milliseconds.
local ISO_S, ISO_TXT = nil, ''
local function iso(ms)
  local s = floor(ms / 1000)
  local frac = ms - s * 1000
  if s ~= ISO_S then
    local days = floor(s / 86400)
    local sod = s - days * 86400
    local z = days + 719468
    local era = floor(z / 146097)
    local doe = z - era * 146097
    local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
    local mp = floor((5 * doy + 2) / 153)
    local d = doy - floor((153 * mp + 2) / 5) + 1
    local m = mp + 3
    if mp >= 10 then m = mp - 9 end
    if m <= 2 then y = y + 1 end
    ISO_S = s
    ISO_TXT = sformat('%04d-%02d-%02dT%02d:%02d:%02d.', y, m, d,
      floor(sod / 3600), floor((sod % 3600) / 60), sod % 60)
  end
  if frac < 10 then return ISO_TXT .. '00' .. istr(frac) .. 'Z' end
  if frac < 100 then return ISO_TXT .. '0' .. istr(frac) .. 'Z' end
  return ISO_TXT .. istr(frac) .. 'Z'
end

-- fmtnum formats n as Redis would a number argument (%.17g), an integer
-- with the cheaper %d (the same digits below 1e15). The hot commands get
-- their numbers formatted by it (Redis's own %.17g costs more).
local function fmtnum(n)
  local s = NUMSTR[n]
  if s then return s end
  if n == floor(n) and n > -1e15 and n < 1e15 then
    s = sformat('%d', n)
    if n >= 0 and n < 1000 then NUMSTR[n] = s end
    return s
  end
  return sformat('%.17g', n)
end

local function init(keys, args)
  if not rcall then bind() end
  DELIVERED, SELF_FREE, SELF_TTL, SELF_LISTED = nil, false, 0, false
  GC, GD, LC, LD, JC = nil, blank(), {}, {}, {}
  G, READY, RELAX, BLOCKED, WORK = keys[1], keys[2], keys[3], keys[4], keys[5]
  DELAYED, DEAD, EVENTS, WAKE, SLOTS = keys[6], keys[7], keys[8], keys[9], keys[10]
  CAPS = keys[#keys]
  FREE, FREE_MORE, FREE_PARTIAL, CAPV, LIVE, LIVE_M = nil, false, false, {}, nil, {}
  FLOOR, RFLOOR = 0, 0
  PFX = args[1]
  if ssub(keys[1], 1, #PFX) ~= PFX or not sfind(PFX, '{[^{}]+}') then
    error('scheduler: key prefix ' .. PFX .. ' is not the hash-tagged prefix of ' .. keys[1])
  end
  SELF = args[5]
  if args[2] == '-' then
    NOW = 0 -- a script that needs no clock
  elseif args[2] == '' then
    local t = rcall('TIME')
    NOW = tonum(t[1]) * 1000 + floor(tonum(t[2]) / 1000)
  else
    NOW = tonum(args[2])
  end
  NOWS = nil
  -- Numbers a call passes to many commands, formatted once: Redis formats
  -- each number argument with %.17g, a noticeable part of a script's time.
  NOW_S = fmtnum(NOW)
  EVTTL_S = fmtnum(tonum(args[3]))
  EVMAX_S = fmtnum(tonum(args[4]))
end

local function jkey(id) return PFX .. 'job:' .. id end
local function reqkey(id) return PFX .. 'job:' .. id .. ':req' end
local function evkey(id) return PFX .. 'job:' .. id .. ':ev' end
local function tkey(t) return PFX .. 't:' .. t end
local function ukey(t, u) return PFX .. 't:' .. t .. ':u:' .. u .. ':q' end
local function userskey(t) return PFX .. 't:' .. t .. ':users' end
local function idlekey(t) return PFX .. 't:' .. t .. ':idle' end
local function activekey(t) return PFX .. 't:' .. t .. ':jobs' end
local function num(v) if v == false or v == nil or v == '' then return 0 end return tonum(v) end

-- The cached hashes. Fields not listed are read and written directly.
-- pmodel counts the pending jobs that are routed (name a model, or avoid
-- the slot they stalled on): while it is 0, dispatch takes the fairest lane
-- without looking at its head job.
-- offers counts the members of the slots set, run out or not, so that a
-- dispatch with no offer at all (every slot busy) skips reading the set.
-- nready and nrelax count the members of the ready and relax sets (the
-- lanes with work), which a submit's place-in-line estimate needs.
-- mmin is the minute whose served-cost marks hash got its expiry.
local GF = {'pending', 'pmodel', 'running', 'rseq', 'vt', 'rvt', 'avg_ms', 'mmin', 'acks', 'offers', 'fin',
  'nready', 'nrelax'}
-- sv is the tenant's running total of weight-normalised cost served, sm
-- the minute of its last dispatch (see dispatch).
local LF = {'rm', 'vt', 'uvt', 'w', 'cap', 'running', 'parked', 'uws', 'qd', 'sv', 'sm'}
-- A job record's fields, every one a script reads or writes, in the order
-- a new record is written: Redis finds a field in a small hash by scanning
-- it from the start, so the fields most read and rewritten come first.
local JF = {'status', 'attempt', 'seq', 'tenant', 'user', 'created_ms', 'cost', 'id', 'images_req',
  'max_attempts', 'qday', 'qpos', 'lane', 'model', 'wid', 'started_ms', 'slot', 'ss', 'dispatched_ms',
  'backend', 'counted', 'avoid', 'steps', 'step', 'fraction', 'images', 'image_attempt', 'seeds', 'subseeds',
  'info', 'finished_ms', 'handbacks', 'unroutable', 'error_code', 'error', 'canceled_by', 'ppos', 'pwait',
  'preview'}
-- They are read in groups, each with one HMGET when one of its fields is
-- first needed, and only the fields not known yet: what a dispatch needs of
-- the job it starts (JF_START), what the end of an attempt and most other
-- scripts need (JF_RUN), and the rest (JF_MORE). A field belongs to the
-- first group that lists it (JF_HOME); a field in no group is written
-- only, and reads as '' unless this call set it. Reading 5 or 13 fields
-- instead of 21 matters: each costs Redis about as much as a small command
-- (the listpack scan, the reply and its Lua string).
local JF_START = {'attempt', 'avoid', 'created_ms', 'seq', 'ss'}
local JF_RUN = {'status', 'attempt', 'tenant', 'user', 'lane', 'seq', 'ss', 'wid', 'counted', 'started_ms',
  'steps', 'slot', 'model'}
local JF_MORE = {'cost', 'handbacks', 'max_attempts', 'qday', 'images_req', 'unroutable', 'avoid', 'created_ms'}

-- The global and lane caches are the HMGET replies themselves (false for a
-- missing field), read by the field's index in its list (GI, LI): no table
-- is built per read.
local function index(fields)
  local ix = {}
  for i = 1, #fields do ix[fields[i]] = i end -- (ipairs is not there at load)
  return ix
end
local GI, LI, JI = index(GF), index(LF), index(JF)
local NG, NL, NJ = #GF, #LF, #JF

-- A job's cache is one table (blank: no growing as fields arrive): [i]
-- the value of field JF[i], nil while not read (false when the record
-- lacks it); [NJ + i] true when this call wrote it; [J_NEW] true for a
-- record created in this call (nothing to read: an unset field reads as
-- ''); [J_HI] the last index written (nil for none: flush looks no
-- further); [J_KEY] the record's key, once built. JHOME[i] is the indexes
-- of field i's group (JF_HOME), nil for a field in no group.
local J_NEW, J_HI, J_KEY = 2 * NJ + 1, 2 * NJ + 2, 2 * NJ + 3
local JHOME = {}
do
  local groups = {JF_START, JF_RUN, JF_MORE}
  for g = 1, #groups do -- (ipairs is not there at load)
    local grp, ix = groups[g], {}
    for i = 1, #grp do ix[i] = JI[grp[i]] end
    for i = 1, #grp do JHOME[ix[i]] = JHOME[ix[i]] or ix end
  end
end
-- The fields that may hold a number (formatted by fmtnum when written;
-- any other field's value is text).
local GNUM, LNUM, JNUM = {}, {}, {}
local LTEXT = {[LI.w] = true, [LI.cap] = true}
do
  for i = 1, NG do GNUM[i] = true end
  for i = 1, NL do LNUM[i] = true end
  local nf = {'seq', 'attempt', 'handbacks', 'step', 'steps', 'fraction', 'qday', 'qpos', 'ppos', 'image_attempt'}
  for i = 1, #nf do JNUM[JI[nf[i]]] = true end
end
-- Scratch arrays reused by every read and write (their lengths are passed
-- to unpack): the fields of a group still unknown, and a HSET's arguments.
local NEED, NEEDI, HARGS = {}, {}, {}

local function gget(f)
  if not GC then GC = rcall('HMGET', G, unpk(GF)) end
  return GC[GI[f]] or ''
end
local function gset(f, v)
  if not GC then GC = rcall('HMGET', G, unpk(GF)) end
  local i = GI[f]
  GC[i] = v
  GD[i] = true
end
-- gnum, lnum and jnum keep the number they parse in the cache, in place of
-- the text read (a field read again is not parsed again); a field written
-- in this call keeps what was written, and so do a tenant's w and cap
-- (LTEXT: a submit compares them, as text, with its own policy's). They
-- parse by arithmetic (v + 0, the same conversion as tonumber's, and no
-- call for a number already parsed).
local function gnum(f)
  if not GC then GC = rcall('HMGET', G, unpk(GF)) end
  local i = GI[f]
  local v = GC[i]
  if not v or v == '' then return 0 end
  local n = v + 0
  if n ~= v and not GD[i] then GC[i] = n end
  return n
end
local function gadd(f, d) gset(f, gnum(f) + d) end

-- lane hashes: a lane's own fields, and for a relax lane its tenant's
-- (w, cap, running, parked, uws, qd live on the tenant's hash). lload
-- reads lane t's hash into its cache, on the first access in a call.
local function lload(t)
  local c = rcall('HMGET', tkey(t), unpk(LF))
  LC[t], LD[t] = c, blank()
  return c
end
local function lget(t, f)
  local c = LC[t] or lload(t)
  return c[LI[f]] or ''
end
local function lset(t, f, v)
  local c = LC[t] or lload(t)
  local i = LI[f]
  c[i] = v
  LD[t][i] = true
end
local function lnum(t, f)
  local c = LC[t] or lload(t)
  local i = LI[f]
  local v = c[i]
  if not v or v == '' then return 0 end
  local n = v + 0
  if n ~= v and not LD[t][i] and not LTEXT[i] then c[i] = n end
  return n
end

local function jkey_of(id, c)
  local k = c[J_KEY]
  if not k then
    k = jkey(id)
    c[J_KEY] = k
  end
  return k
end
-- jnew starts the cache of a job written for the first time.
local function jnew(id)
  local c = blank()
  c[J_NEW] = true
  JC[id] = c
end
local function jget(id, f)
  local c = JC[id]
  if not c then
    c = blank()
    JC[id] = c
  end
  local i = JI[f]
  local v = c[i]
  if v == nil then
    local grp = JHOME[i]
    if not grp or c[J_NEW] then return '' end
    local n = 0
    for g = 1, #grp do
      local gi = grp[g]
      if c[gi] == nil then
        n = n + 1
        NEED[n], NEEDI[n] = JF[gi], gi
      end
    end
    local r = rcall('HMGET', jkey_of(id, c), unpk(NEED, 1, n))
    for g = 1, n do c[NEEDI[g]] = r[g] end
    v = c[i]
  end
  if not v then return '' end
  return v
end
-- jset needs no read: the field's value is the one set.
local function jset(id, f, v)
  local c = JC[id]
  if not c then
    c = blank()
    JC[id] = c
  end
  local i = JI[f]
  c[i] = v
  if not c[NJ + i] then
    c[NJ + i] = true
    if i > (c[J_HI] or 0) then c[J_HI] = i end
  end
end
local function jnum(id, f)
  local v = jget(id, f)
  if v == '' then return 0 end
  local n = v + 0
  if n ~= v then
    local c, i = JC[id], JI[f]
    if not c[NJ + i] then c[i] = n end
  end
  return n
end
-- jknow gives a job's cache the value of field f read elsewhere.
local function jknow(id, f, v) JC[id][JI[f]] = v end

-- hset_dirty writes the fields of names (n of them) whose flag is set in
-- dirty at off + their index, from cache (numbers, in the fields isnum
-- flags, formatted by fmtnum), in the order of names.
local function hset_dirty(key, cache, names, n, dirty, off, isnum)
  local k = 0
  for i = 1, n do
    if dirty[off + i] then
      local v = cache[i]
      if isnum[i] and vtype(v) == 'number' then v = fmtnum(v) end
      HARGS[k + 1], HARGS[k + 2] = names[i], v
      k = k + 2
    end
  end
  if k > 0 then rcall('HSET', key, unpk(HARGS, 1, k)) end
end

-- flush writes the cached hashes back; every script ends with it.
local function flush()
  if GC then hset_dirty(G, GC, GF, NG, GD, 0, GNUM) end
  for t, d in pairs(LD) do hset_dirty(tkey(t), LC[t], LF, NL, d, 0, LNUM) end
  for id, c in pairs(JC) do
    local hi = c[J_HI]
    if hi then hset_dirty(jkey_of(id, c), c, JF, hi, c, NJ, JNUM) end
  end
end

-- emit appends one event of job id; body is the JSON members after "time",
-- starting with a comma or empty. Every event goes to the shared stream;
-- the job's own stream holds only those its readers cannot rebuild from
-- the record (scheduler.History):
--   - the first event (queued, at submit), always rebuilt, which saves a
--     stream per waiting job;
--   - the first attempt's started event when it is the job's second event
--     (the record's ss field says so): the record's attempt, started_ms and
--     slot describe it until the next event, which writes it to the stream
--     first (started_event) and clears ss;
--   - the terminal event while the job's stream is still empty (no event
--     but those two came before it): the record holds it, and the job
--     never gets a stream at all.
-- Otherwise the terminal event gives the job's stream EVGRACE ms to live:
-- a client that follows or resumes within it reads the whole history;
-- later readers rebuild the terminal event from the finished record, so a
-- finished job costs Redis its record, not a stream (whose first node
-- alone takes ~4 KB). History rebuilds a kept started event of a finished
-- job for EVGRACE ms after the end too, as if it were in such a stream.
local EVGRACE = '30000'

-- started_event is the started event a record with ss = '1' stands for.
local function started_event(id, tenant)
  local m = jget(id, 'slot')
  local backend = ssub(m, sfind(m, '\t', 1, true) + 1)
  return '{"type":"started","job_id":"' .. id .. '","tenant":"' .. tenant ..
    '","seq":2,"time":"' .. iso(jnum(id, 'started_ms')) .. '","backend":' .. jencode(backend) ..
    ',"attempt":' .. istr(jnum(id, 'attempt')) .. '}'
end

local function emit(id, tenant, typ, body, terminal)
  if not NOWS then NOWS = iso(NOW) end
  local seq = jnum(id, 'seq') + 1
  jset(id, 'seq', seq)
  local e = '{"type":"' .. typ .. '","job_id":"' .. id .. '","tenant":"' .. tenant ..
    '","seq":' .. istr(seq) .. ',"time":"' .. NOWS .. '"' .. body .. '}'
  if seq == 2 and typ == 'started' then
    jset(id, 'ss', '1')
  elseif seq > 1 then
    local kept = jget(id, 'ss') == '1'
    if not (terminal and (seq == 2 or kept)) then
      if kept then
        rcall('XADD', evkey(id), 'MAXLEN', '~', '1000', '*', 'e', started_event(id, tenant))
        jset(id, 'ss', '')
      end
      rcall('XADD', evkey(id), 'MAXLEN', '~', '1000', '*', 'e', e)
      if terminal then rcall('PEXPIRE', evkey(id), EVGRACE) end
    end
  end
  rcall('XADD', EVENTS, 'MAXLEN', '~', EVMAX_S, '*', 'e', e)
  return seq
end

local function wake()
  if rcall('LLEN', WAKE) == 0 then rcall('LPUSH', WAKE, '1') end
end

-- Members of the ready and users sets carry a sequence number before the
-- name, so that among equal virtual times the set is FIFO.
local function member(name)
  local seq = gnum('rseq') + 1
  gset('rseq', seq)
  return sformat('%016d', seq) .. '|' .. name
end
local function member_name(m) return ssub(m, 18) end

-- A lane is what fair dispatch orders: a tenant's normal lane is named like
-- the tenant; its relax lane (over-quota jobs in relax mode) is
-- "<tenant>~relax" and is served only when no normal lane has work. Running
-- counts, caps and weights live on the tenant's own hash.
local function is_relax(lane) return ssub(lane, -6) == '~relax' end
local function base_of(lane)
  if is_relax(lane) then return ssub(lane, 1, -7) end
  return lane
end
local function ready_key(lane) if is_relax(lane) then return RELAX end return READY end

-- lanes_add keeps the count of ready set rk's members (GF nready, nrelax)
-- in step with a write to it that added or removed n of them; lanes is
-- the count. Every write to the ready and relax sets goes through them.
local function lanes_field(rk) if rk == RELAX then return 'nrelax' end return 'nready' end
local function lanes_add(rk, n)
  local f = lanes_field(rk)
  if gget(f) == '' then
    -- Not counted yet (a Redis written by an older version): count once.
    gset(f, rcall('ZCARD', rk))
  else
    gadd(f, n)
  end
end
local function lanes(rk)
  if gget(lanes_field(rk)) == '' then lanes_add(rk, 0) end
  return gnum(lanes_field(rk))
end
local function vt_field(lane) if is_relax(lane) then return 'rvt' end return 'vt' end
local function lane_of(id) local l = jget(id, 'lane') if l ~= '' then return l end return jget(id, 'tenant') end

local function ready_add(lane, vt)
  local m = member(lane)
  lanes_add(ready_key(lane), rcall('ZADD', ready_key(lane), fmtnum(vt), m))
  lset(lane, 'rm', m)
end

-- A user queue's elements are "<job id>|<cost>", or "<job id>|<cost>|<model
-- key>" for a job that names a model, so dispatch needs no read of the job
-- to know its cost and where it may run. A retry that avoids the worker
-- slot its backend stalled on adds "|<slot>" ("<id>|<cost>||<slot>" with
-- no model).
local function qelem(id)
  local e = id .. '|' .. jget(id, 'cost')
  local m, a = jget(id, 'model'), jget(id, 'avoid')
  if m ~= '' or a ~= '' then e = e .. '|' .. m end
  if a ~= '' then e = e .. '|' .. a end
  return e
end

-- routed says whether a job takes part in routing (pmodel counts them).
local function routed(id) return jget(id, 'model') ~= '' or jget(id, 'avoid') ~= '' end

-- parse_elem splits a queue element into job id, cost, model key and the
-- slot to avoid ('' for none).
local function parse_elem(el)
  local b1 = sfind(el, '|', 1, true)
  local b2 = sfind(el, '|', b1 + 1, true)
  if not b2 then return ssub(el, 1, b1 - 1), tonum(ssub(el, b1 + 1)), '', '' end
  local b3 = sfind(el, '|', b2 + 1, true)
  if not b3 then
    return ssub(el, 1, b1 - 1), tonum(ssub(el, b1 + 1, b2 - 1)), ssub(el, b2 + 1), ''
  end
  return ssub(el, 1, b1 - 1), tonum(ssub(el, b1 + 1, b2 - 1)), ssub(el, b2 + 1, b3 - 1),
    ssub(el, b3 + 1)
end

-- enqueue puts job id at the back (or front, for a retry) of its user's queue
-- in lane and makes the user and the lane backlogged if they were not. A
-- user coming back keeps the finish tag of their last job while it is ahead
-- of the lane's virtual time (the lane's idle set), so leaving and coming
-- back does not jump the line. Returns the length of the user's queue.
local function enqueue(lane, u, id, front)
  local q = ukey(lane, u)
  local len
  if front then len = rcall('LPUSH', q, qelem(id)) else len = rcall('RPUSH', q, qelem(id)) end
  gadd('pending', 1)
  if routed(id) then gadd('pmodel', 1) end
  if len == 1 then
    local ik = idlekey(lane)
    local f = rcall('ZSCORE', ik, u)
    if f then rcall('ZREM', ik, u) end
    rcall('ZADD', userskey(lane), fmtnum(max(num(f), lnum(lane, 'uvt'))), member(u))
  end
  if lget(lane, 'rm') == '' and not (lget(base_of(lane), 'parked') == '1' and rcall('ZSCORE', BLOCKED, lane)) then
    ready_add(lane, max(lnum(lane, 'vt'), gnum(vt_field(lane))))
  end
  return len
end

-- pop_job takes the next queued job of lane t from its least recently
-- served user.
local function pop_job(t)
  local users = userskey(t)
  for _ = 1, 100 do
    local top = rcall('ZPOPMIN', users)
    if #top == 0 then return nil end
    local u = member_name(top[1])
    local su = tonum(top[2])
    local q = ukey(t, u)
    local el = rcall('LPOP', q)
    if el then
      local id, cost, model, avoid = parse_elem(el)
      if model ~= '' or avoid ~= '' then gadd('pmodel', -1) end
      local uw = 1
      if lget(base_of(t), 'uws') == '1' then
        uw = num(rcall('HGET', tkey(base_of(t)), 'uw:' .. u))
        if uw <= 0 then uw = 1 end
      end
      local f = su + cost / uw
      lset(t, 'uvt', su)
      local left = true
      if rcall('LLEN', q) > 0 then
        rcall('ZADD', users, fmtnum(f), member(u))
      else
        -- The user's weight is set again by their next submit.
        if uw ~= 1 then rcall('HDEL', tkey(base_of(t)), 'uw:' .. u) end
        local ik = idlekey(t)
        if rcall('ZCARD', users) == 0 then
          -- Nobody waits in the lane: everyone comes back as a newcomer.
          rcall('DEL', ik)
          left = false
        else
          rcall('ZADD', ik, fmtnum(f), u)
          -- Idle users whose finish tag the lane has passed are like newcomers.
          rcall('ZREMRANGEBYSCORE', ik, '-inf', fmtnum(su))
        end
      end
      gadd('pending', -1)
      return id, cost, left
    end
  end
  return nil
end

-- Routing. A job that names a model (its key, as scheduler.ModelKey folds
-- it) runs only on a worker slot whose backend has it, preferring one that
-- has it loaded; a job that names none runs anywhere. Dispatch looks at the
-- head jobs of at most SCAN_LANES lanes in virtual-time order and serves the
-- first one that has a free slot; a lane skipped keeps its place and virtual
-- time, so it is served first when a matching slot frees up.
local SCAN_LANES, SCAN_SLOTS = 32, 64

-- read_free appends to FREE the offers that have not run out (a worker
-- killed without a goodbye stops renewing its offer and drops out here),
-- the one idle longest first.
-- offers_add keeps the global count of the slots set's members (GF offers)
-- in step with a write to the set that added or removed n of them.
local function offers_add(n)
  if gget('offers') == '' then
    -- Not counted yet (a Redis written by an older version): count once.
    gset('offers', rcall('ZCARD', SLOTS))
  else
    gadd('offers', n)
  end
end

local function read_free()
  FREE_MORE, FREE_PARTIAL = false, false
  if gget('offers') == '' then offers_add(0) end
  if gnum('offers') <= 0 then return end
  local r = rcall('ZRANGEBYSCORE', SLOTS, NOW_S, '+inf', 'LIMIT', '0', fmtnum(SCAN_SLOTS))
  if #r == 0 then
    -- Only offers that ran out are left: drop them, the count is 0 again.
    rcall('ZREMRANGEBYSCORE', SLOTS, '-inf', NOW_S)
    gset('offers', 0)
    return
  end
  for _, m in ipairs(r) do
    if not (SELF_FREE and m == SELF) then FREE[#FREE + 1] = m end
  end
  FREE_MORE, FREE_PARTIAL = #r == SCAN_SLOTS, false
end

-- free_slots is the list of free slots this call may use: the caller's own
-- when it offered it (the others are read only when a job needs more than
-- any slot), then the other offers. only_self limits it to the caller's own.
local function free_slots(only_self)
  if only_self then
    if SELF_FREE then return {SELF} end
    return {}
  end
  if not FREE then
    FREE = {}
    if SELF_FREE then
      FREE[1], FREE_PARTIAL = SELF, true
    else
      read_free()
    end
  elseif #FREE == 0 and (FREE_MORE or FREE_PARTIAL) then
    read_free()
  end
  return FREE
end

-- parse_caps reads one slot's capabilities: {loaded key, the value, where
-- its model list starts}, or false when absent or run out.
local function parse_caps(v)
  if not v then return false end
  local tab = sfind(v, '\t', 1, true)
  if not tab then return false end
  local nl = sfind(v, '\n', tab + 1, true)
  if not nl or (tonum(ssub(v, 1, tab - 1)) or 0) < NOW then return false end
  return {loaded = ssub(v, tab + 1, nl - 1), v = v, at = nl}
end

local function has_model(c, model)
  return sfind(c.v, '\n' .. model .. '\n', c.at, true) ~= nil
end

-- other_live says whether a live worker slot other than avoid can run a
-- job of model ('' for any): one whose capabilities have not run out (and,
-- for a model, list it).
local function other_live(avoid, model)
  local all = rcall('HGETALL', CAPS)
  for k = 1, #all, 2 do
    if all[k] ~= avoid then
      local c = parse_caps(all[k + 1])
      if c and (model == '' or has_model(c, model)) then return true end
    end
  end
  return false
end

-- match picks the free slot for a job of model ('' for none): for none, the
-- first of the list (the caller's own, else the one idle longest: a job
-- that names no model runs on whatever the backend has loaded, so no slot
-- is warmer than another); for a model, a slot whose backend has it, one
-- that has it loaded first. A retry whose backend stalled avoids that slot
-- (avoid, '' for none): it takes it only when no other live slot could run
-- the job, and otherwise waits for one. Returns its index in list, or nil.
local function match(list, model, avoid)
  avoid = avoid or ''
  if (model ~= '' or avoid ~= '') and FREE_PARTIAL and list == FREE then read_free() end
  if #list == 0 then return nil end
  if model == '' and avoid == '' then return 1 end
  if model ~= '' then
    local need = {}
    for _, m in ipairs(list) do
      if CAPV[m] == nil then need[#need + 1] = m end
    end
    if #need > 0 then
      local v = rcall('HMGET', CAPS, unpk(need))
      for i, m in ipairs(need) do CAPV[m] = parse_caps(v[i]) end
    end
  end
  local best, avoided
  for i, m in ipairs(list) do
    local c = CAPV[m]
    if model == '' or (c and has_model(c, model)) then
      if m == avoid then
        avoided = i
      elseif model ~= '' and c.loaded == model then
        return i
      else
        best = best or i
      end
    end
  end
  if best then return best end
  if avoided and not other_live(avoid, model) then return avoided end
  return nil
end

-- model_live says whether any worker slot, free or busy, has model by
-- capabilities that have not run out.
local function model_live(model)
  if not LIVE then
    LIVE = {}
    for _, v in ipairs(rcall('HVALS', CAPS)) do
      local c = parse_caps(v)
      if c then LIVE[#LIVE + 1] = c end
    end
  end
  if LIVE_M[model] == nil then
    LIVE_M[model] = false
    for _, c in ipairs(LIVE) do
      if has_model(c, model) then LIVE_M[model] = true break end
    end
  end
  return LIVE_M[model]
end

-- lane_rank is what a place in line in lane t is estimated from: its users
-- (one round of round-robin each), its rank among the lanes with work, and
-- for a relax lane every normal job ahead of it.
local function lane_rank(t)
  local r = {nusers = max(1, rcall('ZCARD', userskey(t))), trank = 0, extra = 0}
  local rm = lget(t, 'rm')
  if rm ~= '' then r.trank = rcall('ZRANK', ready_key(t), rm) or 0 end
  r.ntenants = max(1, rcall('ZCARD', ready_key(t)))
  if is_relax(t) then r.extra = gnum('pending') - rcall('ZCARD', RELAX) end
  return r
end

-- estimate is the place in line (1 = next) of the job at index idx of its
-- user's queue in a lane of rank r: rounds of round-robin before its turn,
-- capped by everything pending.
local function estimate(r, idx)
  local est = idx * r.nusers * r.ntenants + r.trank + 1 + r.extra
  return max(1, min(est, gnum('pending')))
end

-- position estimates the place in line of a queued job (1 = next). Read
-- time only (and the positions pass, scheduler/positions.go).
local function position(id)
  local t = lane_of(id)
  local u = jget(id, 'user')
  local idx = rcall('LPOS', ukey(t, u), qelem(id))
  if not idx then return 0 end
  return estimate(lane_rank(t), idx)
end

-- note_waiting makes a skipped job's wait visible when no live slot has
-- its model at all (every backend with it went away after the submit): one
-- queued event with the reason, once until a slot has the model again.
local function note_waiting(id, model)
  local live = model_live(model)
  local flagged = jget(id, 'unroutable') == '1'
  if live then
    if flagged then jset(id, 'unroutable', '') end
    return
  end
  if flagged then return end
  jset(id, 'unroutable', '1')
  emit(id, jget(id, 'tenant'), 'queued', ',"position":' .. position(id) .. ',"reason":' ..
    jencode('no backend offers the model ' .. model .. ' now; the job waits until one does'))
end

-- head peeks at lane t's next job (its least recently served user's first),
-- dropping users whose queue a cancel emptied, as pop_job would.
local function head(t)
  local users = userskey(t)
  for _ = 1, 100 do
    local top = rcall('ZRANGE', users, 0, 0)
    if #top == 0 then return nil end
    local el = rcall('LINDEX', ukey(t, member_name(top[1])), 0)
    if el then return el end
    rcall('ZREM', users, top[1])
  end
  return nil
end

-- take_lane takes lane member m out of its ready set for dispatch.
local function take_lane(rk, m, t)
  lanes_add(rk, -rcall('ZREM', rk, m))
  lset(t, 'rm', '')
end

-- pick finds the fairest lane whose head job has a free slot in list: the
-- normal lanes first, then (only when every normal lane was looked at) the
-- relax lanes, each in virtual-time order, at most SCAN_LANES of each. A
-- lane at its tenant's concurrency cap is parked on the way. Returns the
-- lane, its virtual time and the slot's index in list, or nil.
local function pick(list)
  local all_seen = true
  for _, rk in ipairs({READY, RELAX}) do
    if not all_seen then return nil end
    if gnum('pmodel') <= 0 then
      -- No pending job names a model: the fairest lane, as it is.
      local top = rcall('ZPOPMIN', rk)
      while #top > 0 do
        lanes_add(rk, -1)
        local t = member_name(top[1])
        local s = tonum(top[2])
        local base = base_of(t)
        lset(t, 'rm', '')
        local cap = lnum(base, 'cap')
        if cap > 0 and lnum(base, 'running') >= cap then
          rcall('ZADD', BLOCKED, s, t)
          lset(base, 'parked', '1')
          top = rcall('ZPOPMIN', rk)
        else
          return t, s, 1
        end
      end
      -- The set is empty: its count is 0 whatever it was (a writer that
      -- did not keep it, such as an older version during an upgrade).
      gset(lanes_field(rk), 0)
    else
      local seen = {}
      for pass = 1, 2 do
        local cands = rcall('ZRANGE', rk, 0, (pass - 1) * (SCAN_LANES - 1), 'WITHSCORES')
        for i = 1, #cands, 2 do
          local m = cands[i]
          if not seen[m] then
            seen[m] = true
            local t, s = member_name(m), tonum(cands[i + 1])
            local base = base_of(t)
            local cap = lnum(base, 'cap')
            if cap > 0 and lnum(base, 'running') >= cap then
              take_lane(rk, m, t)
              rcall('ZADD', BLOCKED, s, t)
              lset(base, 'parked', '1')
            else
              local el = head(t)
              if not el then
                take_lane(rk, m, t)
              else
                local id, _, model, avoid = parse_elem(el)
                local si = match(list, model, avoid)
                if si then
                  take_lane(rk, m, t)
                  return t, s, si
                end
                if model ~= '' then note_waiting(id, model) end
              end
            end
          end
        end
        if #cands < 2 * ((pass - 1) * (SCAN_LANES - 1) + 1) then break end
        if pass == 2 then all_seen = false end
      end
    end
  end
  return nil
end

-- deliver hands one dispatched attempt to worker slot m: the entry goes into
-- the slot's consumer's pending list (its lease), the job is running (the
-- start is part of the dispatch) and the worker hears of it on its channel,
-- or in the reply when it is the caller.
local function deliver(m, id, tenant)
  local tab = sfind(m, '\t', 1, true)
  local consumer, backend = ssub(m, 1, tab - 1), ssub(m, tab + 1)
  local attempt = jnum(id, 'attempt') + 1
  local req = rcall('GET', reqkey(id)) or ''
  local wid = rcall('XADD', WORK, '*', 'id', id, 'a', fmtnum(attempt))
  rcall('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', '1', 'STREAMS', WORK, '>')
  if m == SELF and SELF_FREE then
    SELF_FREE = false
    -- A renewal's slot still holds its earlier offer.
    if SELF_LISTED then offers_add(-rcall('ZREM', SLOTS, m)) end
  else
    offers_add(-rcall('ZREM', SLOTS, m))
  end
  jset(id, 'attempt', attempt)
  jset(id, 'status', 'running')
  jset(id, 'wid', wid)
  jset(id, 'dispatched_ms', NOW_S)
  jset(id, 'started_ms', NOW_S)
  jset(id, 'backend', backend)
  jset(id, 'slot', m)
  -- A stalled attempt's retry avoids that slot for this dispatch only.
  if jget(id, 'avoid') ~= '' then jset(id, 'avoid', '') end
  emit(id, tenant, 'started', ',"backend":' .. jencode(backend) .. ',"attempt":' .. istr(attempt))
  local d = {wid, id, sformat('%d', attempt), jget(id, 'created_ms'), NOW_S, req}
  if m == SELF then
    DELIVERED = d
  else
    rcall('PUBLISH', PFX .. 'c:' .. consumer, tconcat(d, '\n'))
  end
end

-- dispatch moves jobs to free worker slots while lanes have work, in
-- virtual-time order, normal lanes first, each job to a slot that can run
-- it (pick). only_self limits it to the caller's own slot (a worker
-- finishing a job: other free slots took what they could when it was
-- queued).
local function dispatch(only_self)
  local n = 0
  for _ = 1, 1000 do
    if gnum('pending') <= 0 then break end
    if only_self and not SELF_FREE then break end
    local list = free_slots(only_self)
    if #list == 0 then break end
    local t, s, si = pick(list)
    if not t then break end
    if is_relax(t) then s = max(s, RFLOOR) else s = max(s, FLOOR) end
    local slot = tremove(list, si)
    local base = base_of(t)
    local cap = lnum(base, 'cap')
    local id, cost, left = pop_job(t)
    if id then
      local w = lnum(base, 'w')
      if w <= 0 then w = 1 end
      local f = s + cost / w
      gset(vt_field(t), s)
      lset(t, 'vt', f)
      if left then ready_add(t, f) end
      -- A tenant's running jobs are counted only while it has a cap: the
      -- count is what the cap is checked against (a cap set while jobs
      -- run counts from the next dispatch on).
      if cap > 0 then
        lset(base, 'running', lnum(base, 'running') + 1)
        jset(id, 'counted', '1')
      end
      gadd('running', 1)
      -- Served GPU cost, weight-normalised, for fairness metrics
      -- (scheduler.Served): the tenant's hash keeps its running total (sv);
      -- its first dispatch in a minute marks the total before it in that
      -- minute's hash (kept an hour), so the cost served in a window is the
      -- total now less the mark of the tenant's first minute in it. One
      -- write per tenant and minute, not one per job.
      local minute = floor(NOW / 60000)
      local sv = lget(base, 'sv')
      if sv == '' then sv = '0' end
      if lnum(base, 'sm') ~= minute then
        local sk = PFX .. 'smark:' .. minute
        rcall('HSET', sk, base, sv)
        lset(base, 'sm', minute)
        if gnum('mmin') ~= minute then
          gset('mmin', minute)
          rcall('PEXPIRE', sk, 3600000)
        end
      end
      lset(base, 'sv', sformat('%.17g', tonum(sv) + cost / w))
      deliver(slot, id, base)
      n = n + 1
    end
  end
  return n
end

-- set_loaded records that slot m's backend has model loaded now (a job of
-- that model just succeeded on it), so the next job of that model prefers it.
local function set_loaded(m, model)
  if m == '' or model == '' then return end
  local v = rcall('HGET', CAPS, m)
  local c = parse_caps(v)
  if not c or c.loaded == model then return end
  local tab = sfind(v, '\t', 1, true)
  rcall('HSET', CAPS, m, ssub(v, 1, tab) .. model .. ssub(v, c.at))
end

-- as_slot makes slot m ("" for none) the caller's slot for what follows:
-- a batch of succeeds comes from several slots, one per job.
local function as_slot(m)
  SELF, DELIVERED, SELF_FREE, SELF_TTL, SELF_LISTED = m, nil, false, 0, false
  FREE, FREE_MORE, FREE_PARTIAL = nil, false, false
end

-- offer_self offers the caller's slot until ttl ms from now. The offer is
-- written only if this call does not use it at once (see finish_offer).
-- renewal says the slot may already be listed (an offer being renewed).
local function offer_self(ttl, renewal)
  SELF_FREE, SELF_TTL, SELF_LISTED = true, ttl, renewal == true
end

-- finish_offer writes the caller's offer if it is still free, and drops
-- offers that ran out.
local function finish_offer()
  if SELF_FREE then
    offers_add(rcall('ZADD', SLOTS, fmtnum(NOW + SELF_TTL), SELF))
    offers_add(-rcall('ZREMRANGEBYSCORE', SLOTS, '-inf', '(' .. NOW_S))
  end
end

-- delivered is the reply part for the caller's slot: the job dispatched to
-- it {entry, job, attempt, created ms, dispatched ms, request}, or {}.
local function delivered()
  return DELIVERED or {}
end

-- trim drops acknowledged work entries older than the oldest one still
-- pending (XTRIM MINID), every 64th acknowledgement instead of one XDEL per
-- job. Every entry is delivered as it is added, so none waits unread.
local function trim()
  gadd('acks', 1)
  if gnum('acks') % 64 ~= 0 then return end
  local p = rcall('XPENDING', WORK, 'workers')
  if p[2] then
    rcall('XTRIM', WORK, 'MINID', p[2])
  else
    rcall('XTRIM', WORK, 'MAXLEN', 0)
  end
end

-- release ends a running attempt's hold on its tenant: acks the work entry
-- and lets lanes parked at the tenant's concurrency cap back in.
local function release(id, t)
  local wid = jget(id, 'wid')
  if wid ~= '' then
    rcall('XACK', WORK, 'workers', wid)
    jset(id, 'wid', '')
    trim()
  end
  gadd('running', -1)
  if jget(id, 'counted') ~= '1' then return false end
  jset(id, 'counted', '')
  lset(t, 'running', max(0, lnum(t, 'running') - 1))
  if lget(t, 'parked') == '1' then
    lset(t, 'parked', '')
    for _, lane in ipairs({t, t .. '~relax'}) do
      local bs = rcall('ZSCORE', BLOCKED, lane)
      if bs then
        rcall('ZREM', BLOCKED, lane)
        if rcall('ZCARD', userskey(lane)) > 0 then ready_add(lane, tonum(bs)) end
      end
    end
    return true
  end
  return false
end

-- Quota counters: one hash per tenant for the images admitted today,
-- {n = tenant images, u:<user> = user images}; the day it counts is the
-- tenant's qd field, and a new day starts it again, so it holds only
-- today's users.
local function quota_used(k, t, day, field)
  if lnum(t, 'qd') ~= day then return 0 end
  return num(rcall('HGET', k, field))
end

local function quota_add(k, t, day, u, n)
  if lnum(t, 'qd') ~= day then
    rcall('DEL', k)
    lset(t, 'qd', day)
  end
  rcall('HINCRBY', k, 'n', fmtnum(n))
  rcall('HINCRBY', k, 'u:' .. u, fmtnum(n))
end

-- refund gives a job's images back to the day's quotas (canceled before it
-- ran, or failed).
local function refund(id)
  local day = jget(id, 'qday')
  if day == '' then return end
  local n = jnum(id, 'images_req')
  local t = jget(id, 'tenant')
  if n > 0 and lnum(t, 'qd') == tonum(day) then
    local qk = PFX .. 'q:' .. t
    rcall('HINCRBY', qk, 'n', 0 - n)
    rcall('HINCRBY', qk, 'u:' .. jget(id, 'user'), 0 - n)
  end
  jset(id, 'qday', '')
end

-- gcra checks a generic cell rate limit of per_min jobs a minute with burst;
-- it returns 0 and the new theoretical arrival time when allowed, or the ms
-- to wait.
local function gcra(key, per_min, burst)
  if per_min <= 0 then return 0, nil end
  local interval = 60000 / per_min
  local tat = max(num(rcall('GET', key)), NOW)
  local new = tat + interval
  local allow_at = new - interval * max(burst, 1)
  if allow_at > NOW then return ceil(allow_at - NOW), nil end
  return 0, new
end

local function finish(id, t, status)
  jset(id, 'status', status)
  jset(id, 'finished_ms', NOW_S)
  rcall('ZREM', activekey(t), id)
  rcall('PEXPIRE', jkey(id), EVTTL_S)
  rcall('PEXPIRE', reqkey(id), EVTTL_S)
  -- History (scheduler/history.go): the tenant's and the user's last
  -- finished jobs, newest last, capped, kept as long as the records.
  -- They are trimmed on every 16th finish (the global fin count), not
  -- on each: a history may hold a few more than the cap until then.
  local hk = PFX .. 't:' .. t .. ':hist'
  gadd('fin', 1)
  local trim_hist = gnum('fin') % 16 == 0
  for _, k in ipairs({hk, hk .. ':u:' .. (jget(id, 'user') or '')}) do
    rcall('ZADD', k, NOW_S, id)
    if trim_hist then rcall('ZREMRANGEBYRANK', k, 0, -201) end
    rcall('PEXPIRE', k, EVTTL_S)
  end
end

-- retry_or_fail sends a lost or failed attempt back through the delayed set,
-- or ends the job when it is out of attempts. Returns 'retry' or 'failed'.
local function retry_or_fail(id, t, retryable, code, msgjson, backoff_base, backoff_max, jitter)
  local attempt = jnum(id, 'attempt')
  local used = attempt - jnum(id, 'handbacks')
  local maxa = jnum(id, 'max_attempts')
  release(id, t)
  if retryable and used < maxa then
    local delay = min(backoff_base * pow(2, used - 1), backoff_max) * jitter
    delay = floor(delay)
    jset(id, 'status', 'queued')
    jset(id, 'step', 0)
    jset(id, 'steps', 0)
    jset(id, 'fraction', 0)
    rcall('ZADD', DELAYED, NOW + delay, id)
    emit(id, t, 'retrying', ',"attempt":' .. attempt .. ',"after_s":' .. (delay / 1000) .. ',"reason":' .. msgjson)
    wake()
    return 'retry'
  end
  jset(id, 'error_code', code)
  jset(id, 'error', msgjson)
  refund(id)
  finish(id, t, 'failed')
  rcall('XADD', DEAD, 'MAXLEN', '~', 100000, '*', 'id', id, 'code', code)
  emit(id, t, 'failed', ',"code":"' .. code .. '","message":' .. msgjson, true)
  return 'failed'
end
