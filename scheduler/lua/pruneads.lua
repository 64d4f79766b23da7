-- pruneads: delete backends' advertisements that BackendAds read expired
-- (scheduler/catalog.go), each only while its field still holds the value
-- read (compare and delete): a worker that advertised the backend again
-- between the read and this call keeps its fresh advertisement. A
-- standalone script: it runs without lib.lua's state (no init, no shard
-- keys), on its own key's slot, which is outside the scheduler's hash tag.
-- KEYS[1] the backends hash: field "<backend>\t<worker>", value
--         "<expiry unix ms>:<catalog>" (storage.Keys.Backends)
-- ARGV in pairs: [2i-1] a field  [2i] the expired value read from it
-- Reply: the number of fields deleted.
local n = 0
for i = 1, #ARGV - 1, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return n
