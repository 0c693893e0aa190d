-- claim: the first step of turning a hold into a booking. Checks that the hold is alive
-- and the caller's, and marks it as converting so that it can be neither extended nor
-- claimed twice while the PostgreSQL transaction runs. Owner only.
-- KEYS[1] hold  hash  the hold
-- ARGV[1] owner id
-- Returns {'ok', seat, ...} | {'gone'} | {'not_owner'} | {'converting'}
local hold = KEYS[1]
local owner_id = ARGV[1]

local fields = redis.call('HMGET', hold, 'owner', 'seats', 'state')
if not fields[1] then
  return {'gone'}
end
if fields[1] ~= owner_id then
  return {'not_owner'}
end
if fields[3] ~= 'held' then
  return {'converting'}
end
redis.call('HSET', hold, 'state', 'converting')
local seats = {'ok'}
for seat in string.gmatch(fields[2], '[^,]+') do
  table.insert(seats, seat)
end
return seats
