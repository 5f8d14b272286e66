-- wrk script for bench/tracking.py: GET /api/v1/track/<code>?key=<key> over random codes read from a
-- file (one per line); `done` prints the figures as one JSON line.
--   wrk -t2 -c16 -d15s -s bench/track.lua http://127.0.0.1:8000 -- codes.txt 4321
local codes = {}
local key

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then codes[#codes + 1] = line end
  end
  key = args[2]
  -- each wrk thread has its own Lua state: seed each differently
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function request()
  return wrk.format("GET", "/api/v1/track/" .. codes[math.random(#codes)] .. "?key=" .. key)
end

function done(summary, latency, _requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p99": %d, "mean": %.1f, "max": %d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
