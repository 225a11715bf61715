-- wrk script for scenario 6 (issue 14): POST /api/rooms/{room}/token with a logged-in
-- session, empty body, and print ONE JSON line at the end. token.sh sets the environment:
--   TOKEN_PATH   /api/rooms/<room>/token
--   TOKEN_COOKIE the Cookie header (the session cookie)
--   TOKEN_CSRF   the session's CSRF token (the page's <meta name="csrf-token">)
--   TOKEN_CONNECTIONS  wrk's -c, echoed into the JSON line
--   TOKEN_RATE   (optional) tokens/s offered; without it every connection asks again at once
--   TOKEN_THREADS      wrk's -t (the rate is shared among the threads)
-- wrk's own summary.errors.status counts only statuses >= 400, so each thread counts every
-- non-2xx (and 429s apart) itself; done() adds them up through the thread objects.

local path = os.getenv("TOKEN_PATH")
local cookie = os.getenv("TOKEN_COOKIE")
local csrf = os.getenv("TOKEN_CSRF")
if not path or not cookie or not csrf then
  io.stderr:write("token.lua: TOKEN_PATH, TOKEN_COOKIE and TOKEN_CSRF must be set\n")
  os.exit(2)
end

wrk.method = "POST"
wrk.path = path
wrk.body = nil
wrk.headers["Cookie"] = cookie
wrk.headers["X-CSRF-Token"] = csrf
wrk.headers["Content-Length"] = "0"

-- TOKEN_RATE (optional): the tokens/s offered, on a timetable. Each thread sends its share of
-- the rate at slots a random 0.5-1.5x the mean gap apart, so requests do not march in step;
-- after each answer, delay() hands the connection the thread's next free slot. A pause that
-- only followed each answer would offer less than asked (the answer's own time is added);
-- a slot already past is sent at once, and the timetable restarts from now rather than
-- bursting to catch up: behind, the rate reached drops below the rate offered and says so.
local rate = tonumber(os.getenv("TOKEN_RATE") or "")
local thread_count = tonumber(os.getenv("TOKEN_THREADS") or "1")
if rate then
  local ffi = require("ffi")  -- wrk's Lua is LuaJIT; it has no wall clock of its own
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } parley_timespec;
    int clock_gettime(int clock_id, parley_timespec *tp);
  ]]
  local CLOCK_MONOTONIC = 1
  local now_ts = ffi.new("parley_timespec")
  local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
    return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
  end
  local mean_gap_ms = thread_count * 1000 / rate
  local last_slot = nil
  function delay()
    local now = now_ms()
    local slot = (last_slot or now) + mean_gap_ms * (0.5 + math.random())
    if slot < now then slot = now end
    last_slot = slot
    return math.floor(slot - now)
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  math.randomseed(id)  -- each thread its own delays
end

-- Per-thread globals (each wrk thread has its own Lua state).
non_2xx = 0
limited = 0
first_bad = 0

function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
    if status == 429 then limited = limited + 1 end
    if first_bad == 0 then first_bad = status end
  end
end

function done(summary, latency, requests)
  local bad, too_many, example = 0, 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non_2xx")
    too_many = too_many + thread:get("limited")
    if example == 0 then example = thread:get("first_bad") end
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local note = ""
  if too_many > 0 then
    note = "nginx answered 429 (a per-client limit): the setup is wrong, widen or lift the limit"
  elseif bad > 0 then
    note = string.format("non-2xx answers (e.g. %d): the run is not valid", example)
  elseif socket_errors > 0 then
    note = "socket errors: the run is not valid"
  end
  io.write(string.format(
    '{"scenario":"token","requests":%d,"seconds":%.3f,"rps":%.1f,' ..
    '"p50_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"non_2xx":%d,"status_429":%d,' ..
    '"socket_errors":%d,"connections":%s,"ok":%s,"note":"%s"}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    bad, too_many, socket_errors, os.getenv("TOKEN_CONNECTIONS") or "null",
    tostring(note == ""), note))
end
