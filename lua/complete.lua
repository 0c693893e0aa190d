-- complete: after PostgreSQL committed a booking, record its seats in the reserved/sold
-- cache and drop the hold it came from.
-- KEYS[1] held   hash  seat id -> hold id
-- KEYS[2] taken  hash  seat id -> 'reserved' | 'sold'
-- KEYS[3] holds  zset  hold id -> expiry (ms)
-- KEYS[4] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[5] owner  zset  hold id -> expiry (ms) of the owner's holds
-- KEYS[6] version string the event's availability version
-- KEYS[7] changes stream the event's change log (see lib/seat_changes.lua)
-- KEYS[8] hold   hash  the hold
-- ARGV[1] hold id   ARGV[2] seat state   ARGV[3..] seat ids
-- Returns the number of seats whose state changed: none when the same call runs again (a
-- pipeline sent again), which records nothing the second time.
local held, taken, holds, hold_seats, owner = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local version, changes, hold = KEYS[6], KEYS[7], KEYS[8]
local hold_id, state = ARGV[1], ARGV[2]
local first_seat = 3

local seats = {}
for i = first_seat, #ARGV do
  if redis.call('HGET', taken, ARGV[i]) ~= state then
    redis.call('HSET', taken, ARGV[i], state)
    table.insert(seats, ARGV[i])
  end
  if redis.call('HGET', held, ARGV[i]) == hold_id then
    redis.call('HDEL', held, ARGV[i])
  end
end
-- Any change bumps the cache's version, so that a concurrent rebuild knows its snapshot
-- is stale.
redis.call('HINCRBY', taken, '__version__', 1)
redis.call('DEL', hold)
redis.call('ZREM', holds, hold_id)
redis.call('ZREM', owner, hold_id)
redis.call('HDEL', hold_seats, hold_id)
if #seats > 0 then
  record_change(version, changes, state, 'booking', seats)
end
return #seats
