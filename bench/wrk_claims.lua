-- wrk script of bench/hold_vs_trivial.py and bench/contended.py: claim a seat, then give
-- it back, over a list of buyers and a list of seats.
--
-- Environment (read at load time: wrk decides before init() whether requests are built
-- by request(), and the trivial route must stay wrk's static request):
--   BENCH_WRK_MODE     trivial | cycle | contend
--     trivial  wrk's own request for the URL given; only done() below
--     cycle    buyer i holds seat i (i going round per thread), then releases the hold
--     contend  a random buyer claims a random seat; a winner lets go after a moment
--   BENCH_WRK_CLAIM    path to POST {"seat_ids": [seat]} to
--   BENCH_WRK_RELEASE  path prefix to DELETE <claim id> at, with the winner's token
--   BENCH_WRK_DELAY_MS contend: how long a winner keeps its seat (default 50)
--   BENCH_WRK_SEED     random seed (default 1)
--   BENCH_WRK_THREADS  cycle: wrk's -t, so that threads share the pairs out
-- Arguments (after --): a file of "token owner-id" lines, a file of seat ids.
-- done() prints the WRK_JSON line of bench/wrk_common.lua, with the answers by kind.

local common = require("wrk_common")

local mode = os.getenv("BENCH_WRK_MODE") or "trivial"
local claim_path = os.getenv("BENCH_WRK_CLAIM")
local release_prefix = os.getenv("BENCH_WRK_RELEASE")
local delay = tonumber(os.getenv("BENCH_WRK_DELAY_MS") or "50") / 1000
local seed = tonumber(os.getenv("BENCH_WRK_SEED") or "1")
local thread_count = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")

setup = common.setup
local now = common.now

-- Per thread: counters that done() collects, buyers, seats, and the claims to let go.
counts = { claims = 0, releases = 0, won = 0, refused = 0, released = 0, other = 0 }
local buyers, token_of, seats = {}, {}, {}
-- Claims to let go, oldest first: a queue between `head` and `tail`.
local due, head, tail = {}, 1, 0
local turn = 0

function init(args)
  if mode == "trivial" then return end
  for _, line in ipairs(common.lines(args[1])) do
    local token, owner = line:match("^(%S+) (%S+)$")
    table.insert(buyers, token)
    token_of[owner] = token
  end
  seats = common.lines(args[2])
  turn = id
  math.randomseed(seed * 1000 + id)
end

local function claim(token, seat)
  counts.claims = counts.claims + 1
  return wrk.format("POST", claim_path, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, '{"seat_ids":["' .. seat .. '"]}')
end

local function release_due()
  local entry = due[head]
  if entry == nil or entry.at > now() then return nil end
  due[head] = nil
  head = head + 1
  counts.releases = counts.releases + 1
  return wrk.format("DELETE", release_prefix .. entry.id,
    { ["Authorization"] = "Bearer " .. entry.token })
end

local function next_claim()
  if mode == "cycle" then
    -- Each thread takes every n-th pair; n = number of threads.
    local i = turn % #buyers + 1
    turn = turn + thread_count
    return claim(buyers[i], seats[(i - 1) % #seats + 1])
  end
  return claim(buyers[math.random(#buyers)], seats[math.random(#seats)])
end

local function on_response(status, body)
  if status == 201 then
    counts.won = counts.won + 1
    local claim_id = body:match('"id":"([^"]+)"')
    local owner = body:match('"owner_id":"([^"]+)"') or body:match('"user_id":"([^"]+)"')
    local token = owner and token_of[owner]
    if claim_id and token then
      tail = tail + 1
      due[tail] = { at = now() + (mode == "contend" and delay or 0), id = claim_id, token = token }
    end
  elseif status == 409 then
    counts.refused = counts.refused + 1
  elseif status == 204 then
    counts.released = counts.released + 1
  else
    counts.other = counts.other + 1
    counts["status_" .. status] = (counts["status_" .. status] or 0) + 1
  end
end

if mode ~= "trivial" then
  function request()
    return release_due() or next_claim()
  end

  function response(status, headers, body)
    on_response(status, body)
  end
end

function done(summary, latency)
  common.report(summary, latency)
end
