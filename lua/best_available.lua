-- best_available: choose and hold `quantity` adjacent free seats of one row, the best row
-- first, in one atomic step (so concurrent buyers never fight over the same window).
-- Seats are adjacent when their numbers follow each other in a row; a window that would
-- strand one free seat beside it is taken only when no row within reach has a better one.
-- Cost: the rows looked at, not the event's size: full rows leave the open set and come
-- back when a seat of theirs is freed (release, free_taken) or a hold on them runs out.
-- KEYS[1] held   hash  seat id -> id of the hold on it
-- KEYS[2] taken  hash  seat id -> 'reserved' | 'sold'; __ready__ while fresh
-- KEYS[3] holds  zset  hold id -> expiry (ms) of every hold of the event
-- KEYS[4] hold_seats hash hold id -> its seats, comma-separated
-- KEYS[5] owner  zset  hold id -> expiry (ms) of the owner's holds
-- KEYS[6] version string the event's availability version
-- KEYS[7] changes stream the event's change log (see lib/seat_changes.lua)
-- KEYS[8] hold   hash  the new hold
-- KEYS[9] layout hash  see load_layout
-- KEYS[10] open  zset  row -> row, rows that may have a free seat
-- KEYS[11] reopen zset row -> when (ms) a hold on that full row runs out
-- ARGV[1] hold id   ARGV[2] owner id   ARGV[3] ttl (ms)   ARGV[4] max extensions
-- ARGV[5] max lifetime (ms)   ARGV[6] owner's seat cap   ARGV[7] quantity
-- ARGV[8] section or ''   ARGV[9] price category or ''
-- ARGV[10] the caller's deadline (ms, Redis clock): past it, nothing is done
-- Returns {'ok', expires_ms, extensions_left, seat, ...}; the same again when this call was
--   sent twice
--       | {'rebuild'} (load the reserved/sold cache first) | {'layout'} (load the layout first)
--       | {'limit'} | {'none'} (no such window within reach) | {'unknown', 'section'|'category'}
--       | {'late'}
local held, taken, holds, hold_seats, owner = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local version, changes, hold = KEYS[6], KEYS[7], KEYS[8]
local layout, open, reopen = KEYS[9], KEYS[10], KEYS[11]
local hold_id, owner_id = ARGV[1], ARGV[2]
local ttl, max_extensions = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_lifetime, cap, quantity = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local section, category, deadline = ARGV[8], ARGV[9], tonumber(ARGV[10])
-- Rows looked at before settling for the best window seen (or none).
local ROWS_IN_REACH = 48

-- Before the deadline: a call sent again just past it still gets its first run's answer.
local again = placed_before(hold, owner_id)
if again then
  return again
end
local now = redis_now()
if now > deadline then
  return {'late'}
end
if not taken_ready(taken, now) then
  return {'rebuild'}
end
local row_count = redis.call('HGET', layout, '__rows__')
if not row_count then
  return {'layout'}
end

local first, last = 1, tonumber(row_count)
if section ~= '' then
  local range = redis.call('HGET', layout, 'range:' .. section)
  if not range then
    return {'unknown', 'section'}
  end
  first, last = string.match(range, '(%d+),(%d+)')
  first, last = tonumber(first), tonumber(last)
end
local wanted_category = nil
if category ~= '' then
  wanted_category = redis.call('HGET', layout, 'category:' .. category)
  if not wanted_category then
    return {'unknown', 'category'}
  end
end

-- Holds that ran out free their seats, and the full rows they were on may reopen.
local event = {held = held, holds = holds, hold_seats = hold_seats, owner = owner, hold = hold,
  version = version, changes = changes}
expire_holds(event, now)
redis.call('ZREMRANGEBYSCORE', owner, '-inf', now)
for _, row in ipairs(redis.call('ZRANGEBYSCORE', reopen, '-inf', now)) do
  redis.call('ZADD', open, row, row)
end
redis.call('ZREMRANGEBYSCORE', reopen, '-inf', now)

local owned = 0
for _, id in ipairs(redis.call('ZRANGE', owner, 0, -1)) do
  owned = owned + seat_count(redis.call('HGET', hold_seats, id) or '')
end
if owned + quantity > cap then
  return {'limit'}
end

-- The seats of a row with, for each, whether it is free and whether it may be offered.
local function look_at(row)
  local numbers, ids, categories = {}, {}, {}
  for number, id, cat in string.gmatch(redis.call('HGET', layout, row), '(%d+),([^,;]+),(%d+)') do
    table.insert(numbers, tonumber(number))
    table.insert(ids, id)
    table.insert(categories, cat)
  end
  local states = redis.call('HMGET', taken, unpack(ids))
  local holders = redis.call('HMGET', held, unpack(ids))
  local free, offered, any_free, next_release = {}, {}, false, nil
  for i = 1, #ids do
    local busy = states[i] ~= false
    if not busy and holders[i] then
      local expires = redis.call('ZSCORE', holds, holders[i])
      if expires then
        busy = true
        expires = tonumber(expires)
        if not next_release or expires < next_release then
          next_release = expires
        end
      end
    end
    free[i] = not busy
    offered[i] = free[i] and (not wanted_category or categories[i] == wanted_category)
    any_free = any_free or free[i]
  end
  return numbers, ids, offered, any_free, next_release
end

-- The first window of each run of offered adjacent seats long enough; perfect unless it
-- strands one seat of the run.
local function window_in(numbers, offered)
  local fallback = nil
  local i = 1
  while i <= #numbers do
    if offered[i] then
      local j = i
      while j < #numbers and offered[j + 1] and numbers[j + 1] == numbers[j] + 1 do
        j = j + 1
      end
      local length = j - i + 1
      if length >= quantity then
        if length - quantity ~= 1 then
          return i, true
        end
        fallback = fallback or i
      end
      i = j + 1
    else
      i = i + 1
    end
  end
  return fallback, false
end

local chosen, looked = nil, 0
local offset = 0
while looked < ROWS_IN_REACH do
  local batch = redis.call('ZRANGEBYSCORE', open, first, last, 'LIMIT', offset, 16)
  if #batch == 0 then
    break
  end
  for _, row in ipairs(batch) do
    looked = looked + 1
    local numbers, ids, offered, any_free, next_release = look_at(row)
    if not any_free then
      -- A full row leaves the open set until a seat of it can be free again.
      redis.call('ZREM', open, row)
      offset = offset - 1
      if next_release then
        local scheduled = redis.call('ZSCORE', reopen, row)
        if not scheduled or tonumber(scheduled) > next_release then
          redis.call('ZADD', reopen, next_release, row)
        end
      end
    else
      local start, perfect = window_in(numbers, offered)
      if start and (perfect or not chosen) then
        chosen = {}
        for k = start, start + quantity - 1 do
          table.insert(chosen, ids[k])
        end
      end
      if start and perfect then
        looked = ROWS_IN_REACH
        break
      end
    end
    if looked >= ROWS_IN_REACH then
      break
    end
  end
  offset = offset + #batch
end
if not chosen then
  return {'none'}
end

local expires = place_hold(event, {hold_id = hold_id, owner_id = owner_id, ttl = ttl,
  max_extensions = max_extensions, max_lifetime = max_lifetime}, chosen, now)
local answer = {'ok', expires, max_extensions}
for _, seat in ipairs(chosen) do
  table.insert(answer, seat)
end
return answer
