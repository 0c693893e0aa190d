-- release: free every seat of a hold. Owner only, unless ARGV[3] is 'force' (ops).
-- KEYS[1] held   hash  seat id -> hold id
-- KEYS[2] holds  zset  hold id -> expiry (ms)
-- KEYS[3] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[4] owner  zset  hold id -> expiry (ms) of the owner's holds
-- KEYS[5] hold   hash  the hold
-- KEYS[6] seat_rows hash seat id -> row of the layout (absent until best available loads it)
-- KEYS[7] open   zset  row -> row, rows that may have a free seat
-- KEYS[8] version string the event's availability version
-- KEYS[9] changes stream the event's change log (see lib/seat_changes.lua)
-- KEYS[10] released_by string  '<token>|<seats>' of the call that released the hold, for
--          RELEASED_KEPT_MS
-- ARGV[1] hold id   ARGV[2] owner id   ARGV[3] 'force' or ''   ARGV[4] the call's token
-- Returns {'ok', seat, ...}; the same again when this call was sent twice
--       | {'gone'} | {'not_owner'}
local held, holds, hold_seats, owner, hold = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local seat_rows, open, version, changes = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local released_by = KEYS[10]
local hold_id, owner_id, force, token = ARGV[1], ARGV[2], ARGV[3] == 'force', ARGV[4]
-- Long enough for redis-py to send a call again, short enough to cost nothing.
local RELEASED_KEPT_MS = 60000
if not token or token == '' then
  return redis.error_reply('release: a token of the call is required')
end

local fields = redis.call('HMGET', hold, 'owner', 'seats')
if not fields[1] then
  -- The same call sent again (its first run's answer was lost) finds what it released.
  local before = redis.call('GET', released_by)
  local prefix = token .. '|'
  if before and string.sub(before, 1, #prefix) == prefix then
    local answer = {'ok'}
    for seat in string.gmatch(string.sub(before, #prefix + 1), '[^,]+') do
      table.insert(answer, seat)
    end
    return answer
  end
  return {'gone'}
end
if fields[1] ~= owner_id and not force then
  return {'not_owner'}
end
local released = {'ok'}
local freed = {}
for seat in string.gmatch(fields[2], '[^,]+') do
  -- The seat may already belong to a newer hold if this one had expired in between.
  if redis.call('HGET', held, seat) == hold_id then
    redis.call('HDEL', held, seat)
    table.insert(freed, seat)
  end
  table.insert(released, seat)
  local row = redis.call('HGET', seat_rows, seat)
  if row then
    redis.call('ZADD', open, row, row)
  end
end
redis.call('DEL', hold)
redis.call('SET', released_by, token .. '|' .. fields[2], 'PX', RELEASED_KEPT_MS)
redis.call('ZREM', holds, hold_id)
redis.call('ZREM', owner, hold_id)
redis.call('HDEL', hold_seats, hold_id)
if #freed > 0 then
  record_change(version, changes, 'available', force and 'ops_release' or 'release', freed)
end
return released
