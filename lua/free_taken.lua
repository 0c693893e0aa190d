-- free_taken: forget seats that PostgreSQL made available again (expired or cancelled
-- bookings) in the cache of its seat states.
-- KEYS[1] taken  hash  seat id -> 'reserved' | 'sold'
-- KEYS[2] seat_rows hash seat id -> row of the layout (absent until best available loads it)
-- KEYS[3] open   zset  row -> row, rows that may have a free seat
-- ARGV[1..] seat ids
-- Returns the number of seats forgotten.
local taken, seat_rows, open = KEYS[1], KEYS[2], KEYS[3]

local freed = 0
for i = 1, #ARGV do
  freed = freed + redis.call('HDEL', taken, ARGV[i])
  local row = redis.call('HGET', seat_rows, ARGV[i])
  if row then
    redis.call('ZADD', open, row, row)
  end
end
redis.call('HINCRBY', taken, '__version__', 1)
return freed
