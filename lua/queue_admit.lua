-- queue_admit: one admission step of the event's waiting room: lets the first waiting
-- buyers in, as many as the rate's credit and the free shopping slots allow, each with a
-- pass. Any number of processes may call it; the step runs at most once per step_ms and
-- the credit grows with the time that really passed, so the rate holds whoever calls.
-- KEYS[1] waiting  zset account id -> place
-- KEYS[2] admitted zset account id -> when its pass runs out (ms)
-- KEYS[3] passes   hash account id -> number of its pass
-- KEYS[4] state    hash stepped_at (ms), credit (buyers), served (passes given so far),
--                  paused ('1' from a pause until its resume: ARGV[6] lags behind it)
-- KEYS[5] recent   zset pass number -> when it was given (ms), over the last minute
-- ARGV[1] buyers let in per minute, 0 for no rate
-- ARGV[2] most buyers shopping at once, 0 for no cap
-- ARGV[3] pass lifetime (ms)
-- ARGV[4] step_ms: the least time between two steps
-- ARGV[5] when the sale starts (ms)
-- ARGV[6] '1' while admission is paused, as PostgreSQL said a moment ago
-- ARGV[7] how long the room's keys live after a change (ms)
-- Returns the number of buyers let in
local waiting, admitted, passes, state, recent = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rate, cap, pass_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local step_ms, sale_starts = tonumber(ARGV[4]), tonumber(ARGV[5])
local keys_ttl = tonumber(ARGV[7])
-- The most credit carried: five seconds of the rate, so that a pause in arrivals does not
-- turn into a burst, while a late step still catches up.
local BURST_MS = 5000
-- Passes that ran out are remembered this long, for their buyers to be told so.
local REMEMBER_MS = 86400000

local now = redis_now()
local last = tonumber(redis.call('HGET', state, 'stepped_at'))
if last and now - last < step_ms then
  return 0
end
local credit = tonumber(redis.call('HGET', state, 'credit')) or 0
local paused = ARGV[6] == '1' or redis.call('HGET', state, 'paused') == '1'
if paused or now < sale_starts then
  -- No credit piles up while nobody may be let in.
  redis.call('HSET', state, 'stepped_at', now, 'credit', math.min(credit, 1))
  return 0
end
if rate > 0 then
  credit = math.min(credit + rate * (now - (last or now - step_ms)) / 60000,
    rate * BURST_MS / 60000 + 1)
end
redis.call('ZREMRANGEBYSCORE', admitted, '-inf', now - REMEMBER_MS)
redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - 60000)
local count = redis.call('ZCARD', waiting)
if rate > 0 then
  count = math.min(count, math.floor(credit))
end
if cap > 0 then
  count = math.min(count, math.max(cap - redis.call('ZCOUNT', admitted, '(' .. now, '+inf'), 0))
end
if count > 0 then
  local let_in = redis.call('ZPOPMIN', waiting, count)
  local served = tonumber(redis.call('HGET', state, 'served')) or 0
  for i = 1, #let_in, 2 do
    served = served + 1
    redis.call('ZADD', admitted, now + pass_ms, let_in[i])
    redis.call('HSET', passes, let_in[i], served)
    redis.call('ZADD', recent, now, served)
  end
  redis.call('HSET', state, 'served', served)
  if rate > 0 then
    credit = credit - count
  end
end
redis.call('HSET', state, 'stepped_at', now, 'credit', credit)
for _, key in ipairs(KEYS) do
  redis.call('PEXPIRE', key, keys_ttl)
end
return count
