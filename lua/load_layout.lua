-- load_layout: store an event's seat rows, in the order best available prefers them, for
-- the best_available script. Derived from PostgreSQL and rebuilt whenever it is missing.
-- A large map comes in chunks of rows, so that no call blocks Redis for long; the layout
-- counts as loaded only once its last chunk is in, and a loader that another one started
-- over stops at its next chunk.
-- KEYS[1] layout  hash  row -> 'number,seat id,category number;...' in seat order;
--                       section:<row>; range:<section> -> 'first,last'; category:<name>;
--                       __rows__ once loaded; __loading__ the loader under way
-- KEYS[2] seat_rows hash seat id -> row
-- KEYS[3] open    zset  row -> row, rows that may have a free seat
-- KEYS[4] reopen  zset  row -> when (ms) a hold on that full row runs out
-- ARGV[1] loader id   ARGV[2] number of this chunk's first row (1 starts over)
-- ARGV[3] '1' for the last chunk   ARGV[4] number of categories, ARGV[5..] their names
-- ARGV[...] then section, row seats, section, row seats, ...
-- Returns 1 when the chunk was stored, 0 when another loader took over.
local layout, seat_rows, open, reopen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local loader, row, last_chunk = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local categories = tonumber(ARGV[4])

if row == 1 then
  redis.call('DEL', layout, seat_rows, open, reopen)
  redis.call('HSET', layout, '__loading__', loader)
  for c = 1, categories do
    redis.call('HSET', layout, 'category:' .. ARGV[4 + c], c)
  end
elseif redis.call('HGET', layout, '__loading__') ~= loader then
  return 0
end

for i = 5 + categories, #ARGV, 2 do
  local section, seats = ARGV[i], ARGV[i + 1]
  redis.call('HSET', layout, row, seats, 'section:' .. row, section)
  local range = redis.call('HGET', layout, 'range:' .. section)
  local first = range and string.match(range, '(%d+),') or row
  redis.call('HSET', layout, 'range:' .. section, first .. ',' .. row)
  for seat in string.gmatch(seats, '%d+,([^,;]+),%d+') do
    redis.call('HSET', seat_rows, seat, row)
  end
  redis.call('ZADD', open, row, row)
  row = row + 1
end
if last_chunk then
  redis.call('HSET', layout, '__rows__', row - 1)
  redis.call('HDEL', layout, '__loading__')
end
return 1
