-- list_holds: the live holds of one event, soonest expiry first, for monitoring.
-- Costs O(live holds listed): holds that ran out are expired on the way.
-- KEYS[1] held   hash  seat id -> hold id
-- KEYS[2] holds  zset  hold id -> expiry (ms)
-- KEYS[3] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[4] version string the event's availability version
-- KEYS[5] changes stream the event's change log (see lib/seat_changes.lua)
-- ARGV[1] hold key prefix (the hold id is appended)   ARGV[2] maximum number to list
-- ARGV[3] the rank to list from (0: the soonest to expire)
-- Returns {now_ms, total_live, hold id, owner, seats, expires_ms, state, ...}
local held, holds, hold_seats, version, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, limit, start = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local now = redis_now()
expire_holds({held = held, holds = holds, hold_seats = hold_seats, version = version,
  changes = changes}, now)

local result = {now, redis.call('ZCARD', holds)}
for _, id in ipairs(redis.call('ZRANGE', holds, start, start + limit - 1)) do
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
