-- offer: offer the calling worker slot (ARGV[5]) until ARGV[6] ms from now,
-- and dispatch. A slot renews its offer this way while it waits; a slot
-- whose worker died drops out when the offer expires, so no phantom slot
-- keeps taking work.
-- KEYS: the common ones only (lib.lua).
-- ARGV[6] offer lifetime ms.
-- Reply: the job dispatched to the caller's slot (see delivered() in
-- lib.lua), or {}.
offer_self(tonumber(ARGV[6]))
dispatch()
finish_offer()
return delivered()
