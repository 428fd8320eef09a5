-- wrk script: each request carries the next Bearer token of a file (one access token a line),
-- so the load is spread over many users, as per-user caches and rate limits would see it.
--   wrk -t1 -c32 -d10s -s bench/wrk/rotate_tokens.lua http://127.0.0.1:8080/v1/auth/me -- tokens.txt
-- done() prints one machine-readable line, "WRK_JSON {...}" (latencies in microseconds).

local tokens = {}
local index = 0

function init(args)
  local path = args[1]
  if not path then
    error("usage: ... -s rotate_tokens.lua URL -- <tokens file>")
  end
  for line in io.lines(path) do
    if line ~= "" then
      tokens[#tokens + 1] = line
    end
  end
  if #tokens == 0 then
    error("no token in " .. path)
  end
  -- Threads (-t > 1) start at different users.
  index = math.random(0, #tokens - 1)
end

function request()
  index = (index % #tokens) + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[index] }, nil)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
