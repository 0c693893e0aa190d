-- list_holds: the live holds of one event, soonest expiry first, for monitoring.
-- Costs O(live holds listed): expired holds are dropped from the index on the way.
-- KEYS[1] holds  zset  hold id -> expiry (ms)
-- KEYS[2] sizes  hash  hold id -> number of seats
-- ARGV[1] hold key prefix (the hold id is appended)   ARGV[2] maximum number to list
-- Returns {now_ms, total_live, hold id, owner, seats, expires_ms, state, ...}
local holds, sizes = KEYS[1], KEYS[2]
local prefix, limit = ARGV[1], tonumber(ARGV[2])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
for _, id in ipairs(expired) do
  redis.call('HDEL', sizes, id)
end
redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)

local result = {now, redis.call('ZCARD', holds)}
for _, id in ipairs(redis.call('ZRANGE', holds, 0, limit - 1)) do
  -- Every hold key shares the event's hash tag, so it lives in the same cluster slot.
  local fields = redis.call('HMGET', prefix .. id, 'owner', 'seats', 'expires', 'state')
  if fields[1] then
    table.insert(result, id)
    table.insert(result, fields[1])
    table.insert(result, fields[2])
    table.insert(result, fields[3])
    table.insert(result, fields[4])
  end
end
return result
