-- offer: offer the calling worker slot (ARGV[5]) until ARGV[6] ms from now,
-- and dispatch. A slot renews its offer this way while it waits; a slot
-- whose worker died drops out when the offer expires, so no phantom slot
-- keeps taking work.
-- KEYS: the common ones only (lib.lua).
-- ARGV[6] offer lifetime ms  [7] the first work entry id the slot has not
-- seen delivered ("-" for any; "" skips the check below)  [8] [9] with
-- shards: the system's normal and relax virtual times, lanes are served
-- from at least them (scheduler/shards.go), absent otherwise.
-- Reply: the job dispatched to the caller's slot (see delivered() in
-- lib.lua), or {}.
--
-- A slot with an entry it has not seen in its consumer's pending list
-- already has a job: one dispatched to it whose notice is still on its way
-- (or, after a restart under the same name, one the reclaimer takes back
-- within a lease). It is not offered again meanwhile, so a renewal racing a
-- delivery never makes it hold two jobs at once.
if ARGV[7] ~= '' then
  local consumer = ssub(SELF, 1, sfind(SELF, '\t', 1, true) - 1)
  if #rcall('XPENDING', WORK, 'workers', ARGV[7], '+', 1, consumer) > 0 then return {} end
end
if ARGV[8] then FLOOR, RFLOOR = tonum(ARGV[8]), tonum(ARGV[9]) end
offer_self(tonum(ARGV[6]), true)
dispatch()
finish_offer()
return delivered()
