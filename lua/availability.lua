-- availability: what a snapshot of the event's seat states is built from, read in one
-- atomic step together with the version it shows. Holds that ran out are expired first,
-- so the held seats answered are exactly the live ones. Costs O(seats taken or held).
-- KEYS[1] held   hash  seat id -> hold id
-- KEYS[2] holds  zset  hold id -> expiry (ms)
-- KEYS[3] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[4] version string the event's availability version
-- KEYS[5] changes stream the event's change log (see lib/seat_changes.lua)
-- KEYS[6] taken  hash  seat id -> 'reserved' | 'sold'; __ready__ while fresh
-- Returns {'ok', version, number of taken seats, seat, state, ..., held seat, ...}
--       | {'rebuild'} when the reserved/sold cache must first be loaded from PostgreSQL
local held, holds, hold_seats, version, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local taken = KEYS[6]

local now = redis_now()
if not taken_ready(taken, now) then
  return {'rebuild'}
end
expire_holds({held = held, holds = holds, hold_seats = hold_seats, version = version,
  changes = changes}, now)
local answer = {'ok', current_version(version), 0}
answer[3] = append_taken(answer, taken)
for _, seat in ipairs(redis.call('HKEYS', held)) do
  table.insert(answer, seat)
end
return answer
