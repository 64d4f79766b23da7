-- withdraw: take back the calling worker slot's offer (ARGV[5]), when its
-- worker stops or its backend is out of rotation.
-- KEYS: the common ones only (lib.lua).
-- Reply: 1 when the slot was offered, else 0.
local n = rcall('ZREM', SLOTS, SELF)
offers_add(-n)
return n
