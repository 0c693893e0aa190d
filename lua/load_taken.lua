-- load_taken: replace the cache of PostgreSQL's seat states with a snapshot, unless the
-- cache changed since the caller read its version (then the snapshot may be stale and the
-- caller must read PostgreSQL again). Seats whose state the snapshot corrects are
-- recorded as changes; a cache that was missing altogether (never loaded, or dropped
-- after an outage) cannot say what changed, so the change log asks clients to resync.
-- KEYS[1] taken  hash  seat id -> 'reserved' | 'sold'; __ready__ (fresh until, ms),
--                      __version__
-- KEYS[2] layout hash  see load_layout (its rows all reopen: the snapshot may free any seat)
-- KEYS[3] open   zset  row -> row, rows that may have a free seat
-- KEYS[4] version string the event's availability version
-- KEYS[5] changes stream the event's change log (see lib/seat_changes.lua)
-- ARGV[1] version read before the snapshot ('' when there was none)
-- ARGV[2] how long the loaded cache stays fresh (ms): it is reloaded from PostgreSQL then
-- ARGV[3..] seat id, state, seat id, state, ...
-- Returns 1 when loaded (or already fresh), 0 when the snapshot is stale.
local taken, layout, open, version, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local seen_version, lifetime = ARGV[1], tonumber(ARGV[2])

local now = redis_now()
if taken_ready(taken, now) then
  return 1
end
local cache_version = redis.call('HGET', taken, '__version__') or ''
if cache_version ~= seen_version then
  return 0
end
local had_cache = redis.call('HEXISTS', taken, '__ready__') == 1
local before = {}
if had_cache then
  local entries = redis.call('HGETALL', taken)
  for i = 1, #entries, 2 do
    before[entries[i]] = entries[i + 1]
  end
end
redis.call('DEL', taken)
local corrected = {reserved = {}, sold = {}, available = {}}
for i = 3, #ARGV, 2 do
  local seat, state = ARGV[i], ARGV[i + 1]
  redis.call('HSET', taken, seat, state)
  if before[seat] ~= state then
    table.insert(corrected[state], seat)
  end
  before[seat] = nil
end
for seat, _ in pairs(before) do
  if string.sub(seat, 1, 2) ~= '__' then
    table.insert(corrected.available, seat)
  end
end
redis.call('HSET', taken, '__ready__', now + lifetime,
  '__version__', (tonumber(cache_version) or 0) + 1)
redis.call('PEXPIRE', taken, CHANGES_LIFETIME_MS)
if not had_cache then
  if redis.call('EXISTS', version) == 1 then
    record_change(version, changes, 'resync', 'refresh', {})
  end
else
  for state, seats in pairs(corrected) do
    if #seats > 0 then
      record_change(version, changes, state, 'refresh', seats)
    end
  end
end
local rows = tonumber(redis.call('HGET', layout, '__rows__') or '0')
for row = 1, rows do
  redis.call('ZADD', open, row, row)
end
return 1
