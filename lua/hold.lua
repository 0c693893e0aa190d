-- hold: hold every requested seat of one event for one owner, or none of them.
-- KEYS[1] held   hash  seat id -> id of the hold on it (stale entries are dropped lazily)
-- KEYS[2] taken  hash  seat id -> 'reserved' | 'sold', from PostgreSQL; field __ready__ once loaded
-- KEYS[3] holds  zset  hold id -> expiry (ms) of every hold of the event
-- KEYS[4] sizes  hash  hold id -> number of seats
-- KEYS[5] owner  zset  hold id -> expiry (ms) of the owner's holds
-- KEYS[6] hold   hash  the new hold
-- ARGV[1] hold id      ARGV[2] owner id        ARGV[3] ttl (ms)
-- ARGV[4] max extensions  ARGV[5] max lifetime (ms)  ARGV[6] owner's seat cap
-- ARGV[7] the caller's deadline (ms, Redis clock): past it, nothing is done
-- ARGV[8..] seat ids
-- Returns {'ok', expires_ms, extensions_left}
--       | {'conflict', seat, reason, seat, reason, ...} with reason held|reserved|sold|limit
--       | {'rebuild'} when the reserved/sold cache must first be loaded from PostgreSQL
--       | {'late'} when the caller has given up already
local held, taken, holds, sizes, owner, hold = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local hold_id, owner_id = ARGV[1], ARGV[2]
local ttl, max_extensions = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_lifetime, cap, deadline = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local first_seat = 8

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if now > deadline then
  return {'late'}
end
if redis.call('HEXISTS', taken, '__ready__') == 0 then
  return {'rebuild'}
end

-- Forget holds that have run out: their seats are free again.
local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
for _, id in ipairs(expired) do
  redis.call('HDEL', sizes, id)
end
redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
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
  owned = owned + tonumber(redis.call('HGET', sizes, id) or '0')
end
if owned + count > cap then
  local refused = {'conflict'}
  for i = first_seat, #ARGV do
    table.insert(refused, ARGV[i])
    table.insert(refused, 'limit')
  end
  return refused
end

local expires = now + math.min(ttl, max_lifetime)
local seats = {}
for i = first_seat, #ARGV do
  redis.call('HSET', held, ARGV[i], hold_id)
  table.insert(seats, ARGV[i])
end
redis.call('HSET', hold,
  'owner', owner_id, 'seats', table.concat(seats, ','), 'created', now, 'expires', expires,
  'deadline', now + max_lifetime, 'extensions', 0, 'max_extensions', max_extensions,
  'ttl', ttl, 'state', 'held')
redis.call('PEXPIREAT', hold, expires)
redis.call('ZADD', holds, expires, hold_id)
redis.call('ZADD', owner, expires, hold_id)
-- The owner's set lives as long as its longest hold could, and no longer.
if redis.call('PTTL', owner) < max_lifetime then
  redis.call('PEXPIRE', owner, max_lifetime)
end
redis.call('HSET', sizes, hold_id, count)
return {'ok', expires, max_extensions}
