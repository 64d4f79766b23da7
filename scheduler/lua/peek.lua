-- peek: what a free worker slot needs to choose the shard to take from
-- (scheduler/shards.go): the shard's pending count, the least virtual time
-- of its ready normal and relax lanes, and its clocks. Reads only.
-- KEYS: the common ones only (lib.lua). ARGV: the common ones only.
-- Reply: {pending, normal head vt or "", relax head vt or "", vt, relax vt}.
local function first(k)
  local r = rcall('ZRANGE', k, 0, 0, 'WITHSCORES')
  if #r == 0 then return '' end
  return r[2]
end
return {tostring(gnum('pending')), first(READY), first(RELAX), tostring(gnum('vt')), tostring(gnum('rvt'))}
