-- free_taken: forget seats that PostgreSQL made available again (expired or cancelled
-- bookings) in the cache of its seat states.
-- KEYS[1] taken  hash  seat id -> 'reserved' | 'sold'
-- KEYS[2] seat_rows hash seat id -> row of the layout (absent until best available loads it)
-- KEYS[3] open   zset  row -> row, rows that may have a free seat
-- KEYS[4] version string the event's availability version
-- KEYS[5] changes stream the event's change log (see lib/seat_changes.lua)
-- ARGV[1] why (e.g. cancellation, booking_expiry)   ARGV[2..] seat ids
-- Returns the number of seats forgotten.
local taken, seat_rows, open, version, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local cause = ARGV[1]

local freed = {}
for i = 2, #ARGV do
  if redis.call('HDEL', taken, ARGV[i]) == 1 then
    table.insert(freed, ARGV[i])
  end
  local row = redis.call('HGET', seat_rows, ARGV[i])
  if row then
    redis.call('ZADD', open, row, row)
  end
end
redis.call('HINCRBY', taken, '__version__', 1)
if #freed > 0 then
  record_change(version, changes, 'available', cause, freed)
end
return #freed
