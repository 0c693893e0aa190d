-- held_seats: every seat of one event under a live hold, with the hold's id and owner.
-- Holds that ran out are expired first. Costs O(entries), at most the event's seats.
-- KEYS[1] held   hash  seat id -> hold id
-- KEYS[2] holds  zset  hold id -> expiry (ms)
-- KEYS[3] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[4] version string the event's availability version
-- KEYS[5] changes stream the event's change log (see lib/seat_changes.lua)
-- ARGV[1] hold key prefix (the hold id is appended; every hold key shares the event's
--         hash tag, so it lives in the same cluster slot)
-- Returns {seat, hold id, owner, seat, hold id, owner, ...}
local held, holds, hold_seats, version, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix = ARGV[1]

expire_holds({held = held, holds = holds, hold_seats = hold_seats, version = version,
  changes = changes}, redis_now())
local owners = {}
local result = {}
local entries = redis.call('HGETALL', held)
for i = 1, #entries, 2 do
  local seat, id = entries[i], entries[i + 1]
  local owner = owners[id]
  if owner == nil then
    owner = redis.call('HGET', prefix .. id, 'owner') or false
    owners[id] = owner
  end
  if owner then
    table.insert(result, seat)
    table.insert(result, id)
    table.insert(result, owner)
  end
end
return result
