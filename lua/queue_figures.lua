-- queue_figures: a room's live figures, counted on Redis's clock: a caller's clock read
-- before a late round trip would count passes that ran out meanwhile as live.
-- KEYS[1] waiting  zset account id -> place
-- KEYS[2] admitted zset account id -> when its pass runs out (ms)
-- KEYS[3] state    hash served (passes given so far)
-- KEYS[4] recent   zset pass number -> when it was given (ms)
-- Returns {waiting, shopping (live passes), served, passes given over the last minute}
local now = redis_now()
return {
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf'),
  tonumber(redis.call('HGET', KEYS[3], 'served')) or 0,
  redis.call('ZCOUNT', KEYS[4], '(' .. (now - 60000), '+inf'),
}
