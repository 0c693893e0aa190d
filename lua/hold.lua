-- hold: hold every requested seat of one event for one owner, or none of them.
-- KEYS[1] held   hash  seat id -> id of the hold on it
-- KEYS[2] taken  hash  seat id -> 'reserved' | 'sold', from PostgreSQL; __ready__ while fresh
-- KEYS[3] holds  zset  hold id -> expiry (ms) of every hold of the event
-- KEYS[4] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[5] owner  zset  hold id -> expiry (ms) of the owner's holds
-- KEYS[6] version string the event's availability version
-- KEYS[7] changes stream the event's change log (see lib/seat_changes.lua)
-- KEYS[8] hold   hash  the new hold
-- ARGV[1] hold id      ARGV[2] owner id        ARGV[3] ttl (ms)
-- ARGV[4] max extensions  ARGV[5] max lifetime (ms)  ARGV[6] owner's seat cap
-- ARGV[7] the caller's deadline (ms, Redis clock): past it, nothing is done
-- ARGV[8..] seat ids
-- Returns {'ok', expires_ms, extensions_left}; the same again when this call was sent twice
--       | {'conflict', seat, reason, seat, reason, ...} with reason held|reserved|sold|limit
--       | {'rebuild'} when the reserved/sold cache must first be loaded from PostgreSQL
--       | {'late'} when the caller has given up already
local held, taken, holds, hold_seats, owner = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local version, changes, hold = KEYS[6], KEYS[7], KEYS[8]
local hold_id, owner_id = ARGV[1], ARGV[2]
local ttl, max_extensions = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_lifetime, cap, deadline = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local first_seat = 8

-- Before the deadline: a call sent again just past it still gets its first run's answer.
local again = placed_before(hold, owner_id)
if again then
  return {again[1], again[2], again[3]}
end
local now = redis_now()
if now > deadline then
  return {'late'}
end
if not taken_ready(taken, now) then
  return {'rebuild'}
end

-- Holds that have run out free their seats.
local event = {held = held, holds = holds, hold_seats = hold_seats, owner = owner, hold = hold,
  version = version, changes = changes}
expire_holds(event, now)
redis.call('ZREMRANGEBYSCORE', owner, '-inf', now)

local conflicts = {}
for i = first_seat, #ARGV do
  local seat = ARGV[i]
  local state = redis.call('HGET', taken, seat)
  if state then
    table.insert(conflicts, seat)
    table.insert(conflicts, state)
  else
    local holder = redis.call('HGET', held, seat)
    if holder and redis.call('ZSCORE', holds, holder) then
      table.insert(conflicts, seat)
      table.insert(conflicts, 'held')
    end
  end
end
if #conflicts > 0 then
  table.insert(conflicts, 1, 'conflict')
  return conflicts
end

local count = #ARGV - first_seat + 1
local owned = 0
for _, id in ipairs(redis.call('ZRANGE', owner, 0, -1)) do
  owned = owned + seat_count(redis.call('HGET', hold_seats, id) or '')
end
if owned + count > cap then
  local refused = {'conflict'}
  for i = first_seat, #ARGV do
    table.insert(refused, ARGV[i])
    table.insert(refused, 'limit')
  end
  return refused
end

local seats = {}
for i = first_seat, #ARGV do
  table.insert(seats, ARGV[i])
end
local expires = place_hold(event, {hold_id = hold_id, owner_id = owner_id, ttl = ttl,
  max_extensions = max_extensions, max_lifetime = max_lifetime}, seats, now)
return {'ok', expires, max_extensions}
