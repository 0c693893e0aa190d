-- claim: the first step of turning a hold into a booking. Checks that the hold is alive
-- and the caller's, and marks it as converting so that it can be neither extended nor
-- claimed twice while the PostgreSQL transaction runs. Owner only.
-- The claim is a lease: if the request that claimed the hold dies, the hold is the
-- owner's to book again once the lease is over.
-- KEYS[1] hold  hash  the hold
-- ARGV[1] owner id   ARGV[2] the caller's deadline (ms, Redis clock)   ARGV[3] lease (ms)
-- ARGV[4] the claim's token, new for every call: the same call sent again (redis-py sends
--         a call once more when its connection broke before the answer came) finds its
--         own claim and gets the same answer, instead of 'converting' for the whole lease
-- Returns {'ok', seat, ...} | {'gone'} | {'not_owner'} | {'converting'} | {'late'}
local hold = KEYS[1]
local owner_id, deadline, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local token = ARGV[4]

local fields = redis.call('HMGET', hold, 'owner', 'seats', 'state', 'claimed_until', 'expires',
  'claimed_by')
local seats = {'ok'}
for seat in string.gmatch(fields[2] or '', '[^,]+') do
  table.insert(seats, seat)
end
-- This call's first run claimed the hold: its answer again, past the deadline too.
if fields[1] == owner_id and fields[6] == token then
  return seats
end
local now = redis_now()
if now > deadline then
  return {'late'}
end
if not fields[1] or tonumber(fields[5]) <= now then
  return {'gone'}
end
if fields[1] ~= owner_id then
  return {'not_owner'}
end
if fields[3] ~= 'held' and now < tonumber(fields[4] or '0') then
  return {'converting'}
end
redis.call('HSET', hold, 'state', 'converting', 'claimed_until', now + lease, 'claimed_by', token)
return seats
