-- wrk script: every request GETs a random line of the paths file named after `--`
-- (e.g. 100,000 `/v1.0/dataPolicyOperations/<id>` paths, or one list URL), and `done` prints
-- one `JSON {...}` line with the counts and latency percentiles for bench/api_throughput.py.
--
--   wrk -t1 -c64 -d10s -H "Authorization: Bearer $TOKEN" -s bench/paths.lua \
--       http://127.0.0.1:8080 -- paths.txt
--
-- `wrk.format` adds the headers given with -H (the API refuses requests without a token).

local thread_count = 0
local prepared = {}

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

function init(args)
  local file = assert(io.open(args[1], "r"), "cannot open the paths file")
  for line in file:lines() do
    if #line > 0 then
      prepared[#prepared + 1] = wrk.format("GET", line)
    end
  end
  file:close()
  assert(#prepared > 0, "the paths file is empty")
  math.randomseed(os.time() * 100 + (thread_number or 0))
end

function request()
  return prepared[math.random(#prepared)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
