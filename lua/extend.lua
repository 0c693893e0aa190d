-- extend: push a live hold's expiry a TTL further, never past its absolute deadline and
-- never more often than its maximum number of extensions. Owner only.
-- KEYS[1] holds  zset  hold id -> expiry (ms)
-- KEYS[2] owner  zset  hold id -> expiry (ms) of the owner's holds
-- KEYS[3] hold   hash  the hold
-- ARGV[1] hold id   ARGV[2] owner id   ARGV[3] the caller's deadline (ms, Redis clock)
-- ARGV[4] the extension's token, new for every call: the same call sent again (redis-py
--         sends a call once more when its connection broke before the answer came) finds
--         its own extension and gets the same answer, instead of using up another one
-- Returns {'ok', expires_ms, extensions_left}
--       | {'gone'} (no such live hold) | {'not_owner'} | {'converting'}
--       | {'limit'} (no extension left, or the deadline is reached) | {'late'}
local holds, owner, hold = KEYS[1], KEYS[2], KEYS[3]
local hold_id, owner_id, caller_deadline = ARGV[1], ARGV[2], tonumber(ARGV[3])
local token = ARGV[4]

local fields = redis.call('HMGET', hold, 'owner', 'expires', 'deadline', 'extensions',
  'max_extensions', 'ttl', 'state', 'claimed_until', 'extended_by')
-- This call's first run extended the hold: its answer again, past the deadline too.
if fields[1] == owner_id and fields[9] == token then
  return {'ok', tonumber(fields[2]), tonumber(fields[5]) - tonumber(fields[4])}
end
local now = redis_now()
if now > caller_deadline then
  return {'late'}
end
-- A hold past its expiry is gone even if its key outlived it by a moment: its seats may
-- have been freed by the expiry sweep already.
if not fields[1] or tonumber(fields[2]) <= now then
  return {'gone'}
end
if fields[1] ~= owner_id then
  return {'not_owner'}
end
-- A claim whose lease ran out belonged to a request that died: the hold is held again.
if fields[7] ~= 'held' and now < tonumber(fields[8] or '0') then
  return {'converting'}
end
local expires, deadline = tonumber(fields[2]), tonumber(fields[3])
local extensions, max_extensions = tonumber(fields[4]), tonumber(fields[5])
if extensions >= max_extensions or expires >= deadline then
  return {'limit'}
end

-- The later of (expiry + TTL) and (now + TTL): extending early does not waste an
-- extension, extending late still gives a whole TTL from now; never past the deadline.
local ttl = tonumber(fields[6])
local new_expires = math.min(math.max(expires, now) + ttl, deadline)
redis.call('HSET', hold, 'expires', new_expires, 'extensions', extensions + 1, 'state', 'held',
  'extended_by', token)
redis.call('PEXPIREAT', hold, new_expires)
redis.call('ZADD', holds, new_expires, hold_id)
redis.call('ZADD', owner, new_expires, hold_id)
return {'ok', new_expires, max_extensions - extensions - 1}
