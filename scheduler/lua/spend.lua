-- spend: take one token of a budget shared by every process using the same
-- key (a generic cell rate algorithm on Redis's clock); the Slack adapter's
-- shared message-update budget (scheduler/slack_kv.go). A standalone
-- script: it runs without lib.lua's state (no init, no shard keys), on its
-- own key's slot, which is outside the scheduler's hash tag.
-- KEYS[1] the budget's theoretical arrival time in ms (a string with TTL)
-- ARGV[1] emission interval ms (60 000 / tokens a minute)  [2] burst (≥ 1)
-- Reply: 1 when a token was taken, 0 when the budget is used up.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + interval
if new - now > burst * interval then return 0 end
redis.call('SET', KEYS[1], new, 'PX', math.ceil(new - now) + 1000)
return 1
