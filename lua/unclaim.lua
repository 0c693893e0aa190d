-- unclaim: undo claim when the booking transaction did not commit, so that the owner
-- keeps the hold (and may retry or release it) until it expires.
-- KEYS[1] hold  hash  the hold
-- ARGV[1] owner id
-- Returns 1 when the hold was put back, 0 when it no longer exists or is not the caller's.
local hold = KEYS[1]
local owner_id = ARGV[1]

if redis.call('HGET', hold, 'owner') ~= owner_id then
  return 0
end
redis.call('HSET', hold, 'state', 'held')
return 1
