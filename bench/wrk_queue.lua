-- wrk script of bench/waiting_room.py: buyers in an event's waiting room.
--
-- Environment:
--   BENCH_WRK_MODE     join | leave | me
--     join   each thread goes once through its share of the buyers, each buyer joining the
--            room (POST <room>/join), then stops
--     leave  the same with DELETE <room>/me: each buyer leaves the room
--     me     a random buyer reads its place (GET <room>/me), until wrk's duration ends
--   BENCH_WRK_ROOM     the room's path, /api/events/{id}/queue
--   BENCH_WRK_SEED     random seed (default 1)
--   BENCH_WRK_THREADS  wrk's -t, so that the threads share the buyers out
-- Arguments (after --): a file of "token owner-id" lines.
-- A thread whose share is answered prints a WRK_THREAD_DONE line: wrk itself would wait out
-- its duration, so the caller interrupts it once every thread did. done() prints the
-- WRK_JSON line of bench/wrk_common.lua: `answered` counts the answers the mode expects
-- (200, or 204 for leave), `status_<code>` the others, and join and leave add `span_us`,
-- from the first request to the last answer.

local common = require("wrk_common")

local mode = os.getenv("BENCH_WRK_MODE") or "me"
local room = os.getenv("BENCH_WRK_ROOM")
local seed = tonumber(os.getenv("BENCH_WRK_SEED") or "1")
local thread_count = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
local EXPECTED = { join = 200, leave = 204, me = 200 }

setup = common.setup

-- Per thread: counters and the span that done() collects.
counts = { answered = 0, other = 0 }
first_at, last_at = nil, nil
local tokens = {}
-- join and leave: the thread's share, built up front; `sent` of them so far.
local share, sent, in_flight, finished = {}, 0, 0, false
-- wrk parses thread 0's first request before the run and never sends it: that call must
-- neither use up a buyer nor start the span.
local checked = true

function init(args)
  for _, line in ipairs(common.lines(args[1])) do
    table.insert(tokens, (line:match("^(%S+)")))
  end
  math.randomseed(seed * 1000 + id)
  checked = id ~= 0
  if mode == "me" then return end
  local method, path = "POST", room .. "/join"
  if mode == "leave" then method, path = "DELETE", room .. "/me" end
  for i = id + 1, #tokens, thread_count do
    table.insert(share, wrk.format(method, path, { Authorization = "Bearer " .. tokens[i] }, ""))
  end
end

local function finish()
  finished = true
  wrk.thread:stop()
  io.write("WRK_THREAD_DONE\n")
  io.flush()
end

local function share_answered()
  return sent == #share and in_flight == 0 and not finished
end

function request()
  if not checked then
    checked = true
    return share[1] or wrk.format("GET", room .. "/me")
  end
  first_at = first_at or common.now()
  if mode == "me" then
    local token = tokens[math.random(#tokens)]
    return wrk.format("GET", room .. "/me", { Authorization = "Bearer " .. token })
  end
  if sent == #share then
    -- An empty request writes nothing: the connection stays quiet while the others'
    -- answers come in.
    if share_answered() then finish() end
    return ""
  end
  sent = sent + 1
  in_flight = in_flight + 1
  return share[sent]
end

function response(status)
  last_at = common.now()
  in_flight = in_flight - 1
  if status == EXPECTED[mode] then
    counts.answered = counts.answered + 1
  else
    counts.other = counts.other + 1
    counts["status_" .. status] = (counts["status_" .. status] or 0) + 1
  end
  if mode ~= "me" and share_answered() then finish() end
end

function done(summary, latency)
  local first, last
  for _, thread in ipairs(common.threads) do
    local began, ended = thread:get("first_at"), thread:get("last_at")
    if began and (first == nil or began < first) then first = began end
    if ended and (last == nil or ended > last) then last = ended end
  end
  local extra = {}
  if mode ~= "me" and first and last then extra.span_us = (last - first) * 1e6 end
  common.report(summary, latency, extra)
end
