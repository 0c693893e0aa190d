-- sweep_expired: free the seats of the event's holds that ran out and record them, so that
-- an expiry reaches the stream of changes without waiting for a buyer to touch the event.
-- Costs O(holds expired): the holds are indexed by expiry.
-- KEYS[1] held   hash  seat id -> hold id
-- KEYS[2] holds  zset  hold id -> expiry (ms)
-- KEYS[3] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[4] version string the event's availability version
-- KEYS[5] changes stream the event's change log (see lib/seat_changes.lua)
-- Returns {holds expired, ms until the next hold expires or -1 when none is left}
local held, holds, hold_seats, version, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local now = redis_now()
local expired = expire_holds({held = held, holds = holds, hold_seats = hold_seats,
  version = version, changes = changes}, now)
local next_hold = redis.call('ZRANGE', holds, 0, 0, 'WITHSCORES')
if #next_hold == 0 then
  return {expired, -1}
end
return {expired, math.max(tonumber(next_hold[2]) - now, 0)}
