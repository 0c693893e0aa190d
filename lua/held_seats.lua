-- held_seats: every seat of one event under a live hold, with the hold's id and owner,
-- dropping entries of holds that expired. Costs O(entries), at most the event's seats.
-- KEYS[1] held   hash  seat id -> hold id
-- KEYS[2] holds  zset  hold id -> expiry (ms)
-- ARGV[1] hold key prefix (the hold id is appended; every hold key shares the event's
--         hash tag, so it lives in the same cluster slot)
-- Returns {seat, hold id, owner, seat, hold id, owner, ...}
local held, holds = KEYS[1], KEYS[2]
local prefix = ARGV[1]

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local owners = {}
local result = {}
local entries = redis.call('HGETALL', held)
for i = 1, #entries, 2 do
  local seat, id = entries[i], entries[i + 1]
  local owner = owners[id]
  if owner == nil then
    local expires = redis.call('ZSCORE', holds, id)
    if expires and tonumber(expires) > now then
      owner = redis.call('HGET', prefix .. id, 'owner') or false
    else
      owner = false
    end
    owners[id] = owner
  end
  if owner then
    table.insert(result, seat)
    table.insert(result, id)
    table.insert(result, owner)
  else
    redis.call('HDEL', held, seat)
  end
end
return result
