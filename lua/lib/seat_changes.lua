-- seat_changes: what every script that changes seat states shares. The registry puts this
-- file in front of each script (Redis scripts cannot import), so it defines locals only.
-- Every change of seat states is recorded by the same atomic step that makes it, with the
-- event's next availability version, so that the snapshot and the stream of changes never
-- miss one and never see one twice (DESIGN.md, invariant 9).

-- Entries kept in an event's change log (about: trimming is approximate, which is cheap).
local CHANGES_KEPT = 10000
-- An event's version and log live this long after its last change.
local CHANGES_LIFETIME_MS = 86400000
-- Expired holds freed by one step; the expiry sweep frees the rest.
local EXPIRED_PER_STEP = 500

local function redis_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- The event's current version. Versions are consecutive integers; one that starts over
-- (Redis lost its data, or the event was idle for a day) starts from Redis's clock in
-- microseconds, above any version handed out before, so that a client that kept an old
-- version is told to start afresh rather than sent changes of another history.
local function current_version(version_key)
  local version = redis.call('GET', version_key)
  if not version then
    version = string.format('%d', redis_now() * 1000)
    redis.call('SET', version_key, version, 'PX', CHANGES_LIFETIME_MS)
  end
  return version
end

-- Appends one change (`seats` is a list of seat ids) and answers its version.
local function record_change(version_key, log_key, state, cause, seats)
  current_version(version_key)
  local version = redis.call('INCR', version_key)
  redis.call('XADD', log_key, 'MAXLEN', '~', CHANGES_KEPT, string.format('%d-0', version),
    'state', state, 'cause', cause, 'seats', table.concat(seats, ','))
  redis.call('PEXPIRE', version_key, CHANGES_LIFETIME_MS)
  redis.call('PEXPIRE', log_key, CHANGES_LIFETIME_MS)
  return version
end

-- Frees the seats of holds of the event that ran out by `now` and records them as
-- available. `k` names the keys: held, holds, hold_seats, version, changes. Every step
-- that expires holds counts them in the field __expired__ of hold_seats (no hold id
-- starts with '__'), so that the metrics count each expiry once, whichever step made it.
-- Answers the number of holds expired.
local function expire_holds(k, now)
  local expired = redis.call('ZRANGEBYSCORE', k.holds, '-inf', now, 'LIMIT', 0, EXPIRED_PER_STEP)
  local freed = {}
  for _, id in ipairs(expired) do
    local seats = redis.call('HGET', k.hold_seats, id)
    for seat in string.gmatch(seats or '', '[^,]+') do
      -- A seat of an expired hold may belong to a newer hold already.
      if redis.call('HGET', k.held, seat) == id then
        redis.call('HDEL', k.held, seat)
        table.insert(freed, seat)
      end
    end
    redis.call('HDEL', k.hold_seats, id)
    redis.call('ZREM', k.holds, id)
  end
  if #expired > 0 then
    redis.call('HINCRBY', k.hold_seats, '__expired__', #expired)
  end
  if #freed > 0 then
    record_change(k.version, k.changes, 'available', 'expiry', freed)
  end
  return #expired
end

-- Places a new hold on `seats` (a list of seat ids, free and within the owner's cap) and
-- records them as held; answers when it expires. `k` names the keys of hold.lua and
-- best_available.lua (held, holds, hold_seats, owner, hold, version, changes); `terms`
-- holds their hold_id, owner_id, ttl, max_extensions and max_lifetime.
local function place_hold(k, terms, seats, now)
  local expires = now + math.min(terms.ttl, terms.max_lifetime)
  local listed = table.concat(seats, ',')
  for _, seat in ipairs(seats) do
    redis.call('HSET', k.held, seat, terms.hold_id)
  end
  redis.call('HSET', k.hold,
    'owner', terms.owner_id, 'seats', listed, 'created', now, 'expires', expires,
    'deadline', now + terms.max_lifetime, 'extensions', 0,
    'max_extensions', terms.max_extensions, 'ttl', terms.ttl, 'state', 'held')
  redis.call('PEXPIREAT', k.hold, expires)
  redis.call('ZADD', k.holds, expires, terms.hold_id)
  redis.call('ZADD', k.owner, expires, terms.hold_id)
  -- The owner's set lives as long as its longest hold could, and no longer.
  if redis.call('PTTL', k.owner) < terms.max_lifetime then
    redis.call('PEXPIRE', k.owner, terms.max_lifetime)
  end
  redis.call('HSET', k.hold_seats, terms.hold_id, listed)
  record_change(k.version, k.changes, 'held', 'hold', seats)
  return expires
end

-- The answer a hold placed under `hold`'s id already gave, or nil: {'ok', expires_ms,
-- extensions_left, seat, ...}. Hold ids are new for every call, so the only call that finds
-- its hold there is the same call sent again: redis-py sends a call once more when its
-- connection broke before the answer came (a pipeline's calls all together), and without
-- this the second run would find the seats held (by the first) and refuse them, or pick
-- other seats, while the first run's hold lingered until its TTL.
local function placed_before(hold, owner_id)
  local placed = redis.call('HMGET', hold, 'owner', 'expires', 'extensions', 'max_extensions',
    'seats')
  if placed[1] ~= owner_id then
    return nil
  end
  local answer = {'ok', tonumber(placed[2]), tonumber(placed[4]) - tonumber(placed[3])}
  for seat in string.gmatch(placed[5], '[^,]+') do
    table.insert(answer, seat)
  end
  return answer
end

-- The number of seats in a comma-separated list.
local function seat_count(seats)
  if seats == '' then
    return 0
  end
  local _, commas = string.gsub(seats, ',', '')
  return commas + 1
end

-- Appends the reserved/sold cache's seat, state pairs (not its __ fields) to `answer`;
-- answers how many seats.
local function append_taken(answer, taken)
  local count = 0
  local entries = redis.call('HGETALL', taken)
  for i = 1, #entries, 2 do
    if string.sub(entries[i], 1, 2) ~= '__' then
      table.insert(answer, entries[i])
      table.insert(answer, entries[i + 1])
      count = count + 1
    end
  end
  return count
end

-- Whether the reserved/sold cache is loaded and still fresh. It is reloaded from
-- PostgreSQL after its lifetime, which bounds how long a write lost to an outage can
-- leave it wrong; until then the stale copy stays, so that the reload can tell what
-- changed.
local function taken_ready(taken, now)
  local fresh_until = redis.call('HGET', taken, '__ready__')
  return fresh_until ~= false and tonumber(fresh_until) > now
end
