-- load_taken: replace the cache of PostgreSQL's seat states with a snapshot, unless the
-- cache changed since the caller read its version (then the snapshot may be stale and the
-- caller must read PostgreSQL again).
-- KEYS[1] taken  hash  seat id -> 'reserved' | 'sold'; __ready__, __version__
-- KEYS[2] layout hash  see load_layout (its rows all reopen: the snapshot may free any seat)
-- KEYS[3] open   zset  row -> row, rows that may have a free seat
-- ARGV[1] version read before the snapshot ('' when there was none)
-- ARGV[2] lifetime of the loaded cache (ms): it is rebuilt from PostgreSQL after that
-- ARGV[3..] seat id, state, seat id, state, ...
-- Returns 1 when loaded (or already ready), 0 when the snapshot is stale.
local taken, layout, open = KEYS[1], KEYS[2], KEYS[3]
local seen_version, lifetime = ARGV[1], tonumber(ARGV[2])

if redis.call('HEXISTS', taken, '__ready__') == 1 then
  return 1
end
local version = redis.call('HGET', taken, '__version__') or ''
if version ~= seen_version then
  return 0
end
redis.call('DEL', taken)
for i = 3, #ARGV, 2 do
  redis.call('HSET', taken, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', taken, '__ready__', 1, '__version__', (tonumber(version) or 0) + 1)
redis.call('PEXPIRE', taken, lifetime)
local rows = tonumber(redis.call('HGET', layout, '__rows__') or '0')
for row = 1, rows do
  redis.call('ZADD', open, row, row)
end
return 1
