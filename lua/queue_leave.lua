-- queue_leave: an account leaves the event's waiting room. A place gives way to the next
-- buyer; a live pass is given up, freeing its shopping slot, and is refused from then on.
-- KEYS[1] waiting  zset account id -> place
-- KEYS[2] admitted zset account id -> when its pass runs out (ms)
-- KEYS[3] passes   hash account id -> number of its pass
-- KEYS[4] given_up zset pass number -> when it would have run out (ms)
-- ARGV[1] account id
-- ARGV[2] how long the room's keys live after a change (ms)
-- Returns 'waiting' | 'admitted' (what the account was) | 'absent'
local waiting, admitted, passes, given_up = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local account, keys_ttl = ARGV[1], tonumber(ARGV[2])

if redis.call('ZREM', waiting, account) == 1 then
  return 'waiting'
end
local now = redis_now()
local runs_out = redis.call('ZSCORE', admitted, account)
local number = redis.call('HGET', passes, account)
redis.call('ZREM', admitted, account)
redis.call('HDEL', passes, account)
if not (runs_out and tonumber(runs_out) > now and number) then
  return 'absent'
end
redis.call('ZADD', given_up, runs_out, number)
-- Passes that ran out are refused anyway.
redis.call('ZREMRANGEBYSCORE', given_up, '-inf', now)
redis.call('PEXPIRE', given_up, keys_ttl)
return 'admitted'
