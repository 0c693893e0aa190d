-- What the wrk scripts of bench/ share (bench/wrk.py puts this folder on LUA_PATH): a
-- monotonic clock, reading a file's lines, the threads that setup() saw, and the one line
-- done() prints: WRK_JSON {...} with wrk's totals, latency percentiles (µs) and the sum of
-- every thread's `counts` table, which the calling Python reads.

local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local common = { threads = {} }

function common.now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) / 1e9
end

function common.lines(path)
  local found = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(found, line) end
  end
  return found
end

-- wrk's setup(): numbers the threads (global `id` in each) and keeps them for done().
function common.setup(thread)
  thread:set("id", #common.threads)
  table.insert(common.threads, thread)
end

local function encode(value)
  if type(value) == "table" then
    local parts = {}
    for key, item in pairs(value) do
      table.insert(parts, string.format("%q:%s", key, encode(item)))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if value ~= value then return "null" end  -- NaN: no request at all
  return tostring(value)
end

-- The WRK_JSON line; `extra` adds fields of the script's own.
function common.report(summary, latency, extra)
  local total = {}
  for _, thread in ipairs(common.threads) do
    for key, value in pairs(thread:get("counts") or {}) do
      total[key] = (total[key] or 0) + value
    end
  end
  local figures = {
    requests = summary.requests,
    duration_us = summary.duration,
    errors = summary.errors,
    latency_us = {
      p50 = latency:percentile(50),
      p90 = latency:percentile(90),
      p99 = latency:percentile(99),
      max = latency.max,
      mean = latency.mean,
    },
    counts = total,
  }
  for key, value in pairs(extra or {}) do figures[key] = value end
  io.write("WRK_JSON ", encode(figures), "\n")
end

return common
