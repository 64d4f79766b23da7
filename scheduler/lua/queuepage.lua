-- queuepage: one page of a tenant's active jobs, oldest first (ids start
-- with their creation time), each with its place in line, and what an ETA
-- needs: the whole page in one round trip, in O(log N + page) for an
-- unfiltered listing.
-- KEYS[11] the tenant's live jobs, a sorted set with all scores 0 (by name =
--          by age); submit adds to it and finish removes from it.
-- ARGV[6] cursor: list jobs with ids above it ("" from the start)
-- ARGV[7] limit: the most jobs to list (the caller keeps it small)
-- ARGV[8] user: only this user's jobs ("" for every user)
-- Reply: {next cursor ("" on the last page), {avg_ms, running, idle worker
-- slots}, then per job: id, position (0 unless queued), the job
-- record as HGETALL's field-value list}.
local Z = KEYS[11]
local cursor, limit, user = ARGV[6], tonum(ARGV[7]), ARGV[8]
local out = {'', {gget('avg_ms'), gget('running'), rcall('ZCOUNT', SLOTS, NOW, '+inf')}}
local n, last = 0, ''
local lo = '-'
if cursor ~= '' then lo = '(' .. cursor end
while true do
  local ids = rcall('ZRANGEBYLEX', Z, lo, '+', 'LIMIT', 0, limit + 1)
  if #ids == 0 then return out end
  for _, id in ipairs(ids) do
    local jk = jkey(id)
    local f = rcall('HMGET', jk, 'status', 'user')
    local st = f[1]
    if st and st ~= 'succeeded' and st ~= 'failed' and st ~= 'canceled' and (user == '' or f[2] == user) then
      if n == limit then
        out[1] = last
        return out
      end
      n = n + 1
      local pos = 0
      if st == 'queued' then pos = position(id) end
      out[#out + 1] = id
      out[#out + 1] = pos
      out[#out + 1] = rcall('HGETALL', jk)
      last = id
    end
  end
  lo = '(' .. ids[#ids]
end
