-- caps: record a worker slot's capabilities for routing, then dispatch (a
-- job waiting for a model may now have a slot); or, when the slot closes,
-- forget them and take back its offer.
-- KEYS: the common ones only (lib.lua), and the capabilities hash last.
-- ARGV[6] slot "<consumer>\t<backend>"  [7] time to live ms, "0" to forget
-- [8] loaded model key  [9] model keys, each followed by "\n"
-- Reply: the number of jobs dispatched.
local m = ARGV[6]
if ARGV[7] == '0' then
  rcall('HDEL', CAPS, m)
  offers_add(-rcall('ZREM', SLOTS, m))
  return 0
end
rcall('HSET', CAPS, m, sformat('%d', NOW + tonum(ARGV[7])) .. '\t' .. ARGV[8] .. '\n' .. ARGV[9])
-- Drop capabilities that ran out (a worker gone without a goodbye); slots
-- are few and this runs once per advertisement.
local all = rcall('HGETALL', CAPS)
local gone = {}
for i = 1, #all, 2 do
  if not parse_caps(all[i + 1]) then gone[#gone + 1] = all[i] end
end
if #gone > 0 then rcall('HDEL', CAPS, unpk(gone)) end
return dispatch()
