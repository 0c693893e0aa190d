-- hold_report: what the ops report of one event is built from, read in one atomic step:
-- the reserved/sold cache, the held seats and every live hold with its owner, size, age
-- and expiry. Holds that ran out are expired first, so the counts are exact. Costs
-- O(live holds + seats taken or held); never scans the keyspace.
-- KEYS[1] held   hash  seat id -> hold id
-- KEYS[2] holds  zset  hold id -> expiry (ms)
-- KEYS[3] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[4] version string the event's availability version
-- KEYS[5] changes stream the event's change log (see lib/seat_changes.lua)
-- KEYS[6] taken  hash  seat id -> 'reserved' | 'sold'; __ready__ while fresh
-- ARGV[1] hold key prefix (the hold id is appended; every hold key shares the event's
--         hash tag, so it lives in the same cluster slot)
-- Returns {'ok', now_ms, version, number of taken seats, seat, state, ...,
--          number of held seats, seat, ..., hold id, owner, number of its seats,
--          created_ms, expires_ms, state, ...}
--       | {'rebuild'} when the reserved/sold cache must first be loaded from PostgreSQL
local held, holds, hold_seats, version, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local taken = KEYS[6]
local prefix = ARGV[1]

local now = redis_now()
if not taken_ready(taken, now) then
  return {'rebuild'}
end
expire_holds({held = held, holds = holds, hold_seats = hold_seats, version = version,
  changes = changes}, now)
local answer = {'ok', now, current_version(version), 0}
answer[4] = append_taken(answer, taken)

-- Holds past their expiry that one step could not free yet are not live.
local live = {}
local rows = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', holds, '(' .. now, '+inf')) do
  local fields = redis.call('HMGET', prefix .. id, 'owner', 'seats', 'created', 'expires', 'state')
  if fields[1] then
    live[id] = true
    for _, value in ipairs({id, fields[1], seat_count(fields[2]), fields[3] or fields[4],
        fields[4], fields[5]}) do
      table.insert(rows, value)
    end
  end
end

local held_at = #answer + 1
table.insert(answer, 0)
local count = 0
local entries = redis.call('HGETALL', held)
for i = 1, #entries, 2 do
  if live[entries[i + 1]] then
    table.insert(answer, entries[i])
    count = count + 1
  end
end
answer[held_at] = count
for _, value in ipairs(rows) do
  table.insert(answer, value)
end
return answer
