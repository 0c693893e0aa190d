-- queue_place: an account's place in the event's waiting room, joining it first if asked.
-- Joining again keeps the place; a buyer whose pass ran out joins again at the back.
-- KEYS[1] waiting  zset account id -> place (drawn before the sale starts, 2^40 + arrival after)
-- KEYS[2] admitted zset account id -> when its pass runs out (ms)
-- KEYS[3] passes   hash account id -> number of its pass
-- KEYS[4] state    hash field 'arrivals' counts joins after the sale started
-- ARGV[1] account id
-- ARGV[2] '1' to join when not in the room, '0' to only look
-- ARGV[3] the account's drawn place, in [0, 2^40), used when it joins before the sale starts
-- ARGV[4] when the sale starts (ms)
-- ARGV[5] how long the room's keys live after a change (ms)
-- Returns {'waiting', rank (0 first), count waiting} | {'admitted', pass runs out ms, pass
-- number} | {'expired', pass ran out ms} | {'absent'}
local waiting, admitted, passes, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local account, join, drawn = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local sale_starts, keys_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])

local now = redis_now()
local runs_out = redis.call('ZSCORE', admitted, account)
if runs_out and tonumber(runs_out) > now then
  return {'admitted', tonumber(runs_out), tonumber(redis.call('HGET', passes, account))}
end
if not redis.call('ZSCORE', waiting, account) then
  if not join then
    if runs_out then
      return {'expired', tonumber(runs_out)}
    end
    return {'absent'}
  end
  if runs_out then
    redis.call('ZREM', admitted, account)
    redis.call('HDEL', passes, account)
  end
  local place = drawn
  if now >= sale_starts then
    -- 2^40: every later arrival queues behind all the places drawn before the start.
    place = 1099511627776 + redis.call('HINCRBY', state, 'arrivals', 1)
  end
  redis.call('ZADD', waiting, place, account)
  for _, key in ipairs(KEYS) do
    redis.call('PEXPIRE', key, keys_ttl)
  end
end
return {'waiting', redis.call('ZRANK', waiting, account), redis.call('ZCARD', waiting)}
