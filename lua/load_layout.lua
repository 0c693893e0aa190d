-- load_layout: store an event's seat rows, in the order best available prefers them, for
-- the best_available script. Derived from PostgreSQL and rebuilt whenever it is missing.
-- KEYS[1] layout  hash  row -> 'number,seat id,category number;...' in seat order;
--                       section:<row>; range:<section> -> 'first,last'; category:<name>
-- KEYS[2] seat_rows hash seat id -> row
-- KEYS[3] open    zset  row -> row, rows that may have a free seat
-- KEYS[4] reopen  zset  row -> when (ms) a hold on that full row runs out
-- ARGV[1] number of categories, ARGV[2..] their names (category number = position)
-- ARGV[...] then section, row seats, section, row seats, ... (row 1 first)
-- Returns the number of rows stored.
local layout, seat_rows, open, reopen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

redis.call('DEL', layout, seat_rows, open, reopen)
local categories = tonumber(ARGV[1])
for c = 1, categories do
  redis.call('HSET', layout, 'category:' .. ARGV[1 + c], c)
end
local rows = 0
local first_of = {}
for i = 2 + categories, #ARGV, 2 do
  rows = rows + 1
  local section, seats = ARGV[i], ARGV[i + 1]
  redis.call('HSET', layout, rows, seats, 'section:' .. rows, section)
  if not first_of[section] then
    first_of[section] = rows
  end
  redis.call('HSET', layout, 'range:' .. section, first_of[section] .. ',' .. rows)
  for seat in string.gmatch(seats, '%d+,([^,;]+),%d+') do
    redis.call('HSET', seat_rows, seat, rows)
  end
  redis.call('ZADD', open, rows, rows)
end
redis.call('HSET', layout, '__rows__', rows)
return rows
