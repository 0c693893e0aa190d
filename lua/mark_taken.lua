-- mark_taken: record seats as reserved or sold in the cache of PostgreSQL's seat states.
-- KEYS[1] taken  hash  seat id -> 'reserved' | 'sold'
-- KEYS[2] version string the event's availability version
-- KEYS[3] changes stream the event's change log (see lib/seat_changes.lua)
-- ARGV[1] 'reserved' | 'sold'   ARGV[2] why (e.g. payment, late_payment)   ARGV[3..] seat ids
-- Returns the number of seats whose state changed.
local taken, version, changes = KEYS[1], KEYS[2], KEYS[3]
local state, cause = ARGV[1], ARGV[2]

local changed = {}
for i = 3, #ARGV do
  if redis.call('HGET', taken, ARGV[i]) ~= state then
    redis.call('HSET', taken, ARGV[i], state)
    table.insert(changed, ARGV[i])
  end
end
redis.call('HINCRBY', taken, '__version__', 1)
if #changed > 0 then
  record_change(version, changes, state, cause, changed)
end
return #changed
