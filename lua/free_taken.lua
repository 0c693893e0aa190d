-- free_taken: forget seats that PostgreSQL made available again (expired or cancelled
-- bookings) in the cache of its seat states.
-- KEYS[1] taken  hash  seat id -> 'reserved' | 'sold'
-- ARGV[1..] seat ids
-- Returns the number of seats forgotten.
local taken = KEYS[1]

local freed = 0
for i = 1, #ARGV do
  freed = freed + redis.call('HDEL', taken, ARGV[i])
end
redis.call('HINCRBY', taken, '__version__', 1)
return freed
