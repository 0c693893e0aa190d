-- mark_taken: record seats as reserved or sold in the cache of PostgreSQL's seat states.
-- KEYS[1] taken  hash  seat id -> 'reserved' | 'sold'
-- ARGV[1] 'reserved' | 'sold'   ARGV[2..] seat ids
-- Returns the number of seats recorded.
local taken = KEYS[1]
local state = ARGV[1]

for i = 2, #ARGV do
  redis.call('HSET', taken, ARGV[i], state)
end
redis.call('HINCRBY', taken, '__version__', 1)
return #ARGV - 1
