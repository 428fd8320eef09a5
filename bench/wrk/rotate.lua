-- wrk script: each request carries the next credential of a file, so the load is spread over
-- many users (per-user caches and rate limits see what many clients would send).
--   wrk ... -s bench/wrk/rotate.lua URL -- <file> [header|body] [METHOD]
-- header mode: each line is one header ("Authorization: Bearer ..." or "Cookie: name=value").
-- body mode: each line is a JSON request body (login storms), sent with METHOD (default POST).
-- done() prints one machine-readable line, "WRK_JSON {...}", that bench/stats.py parses.

local items = {}
local mode = "header"
local method = "GET"
local index = 0

function init(args)
  local path = args[1]
  mode = args[2] or "header"
  method = args[3] or (mode == "body" and "POST" or "GET")
  if path and path ~= "" and path ~= "-" then
    for line in io.lines(path) do
      if line ~= "" then
        items[#items + 1] = line
      end
    end
  end
  -- Threads start at different users.
  index = math.random(0, math.max(#items - 1, 0))
end

function request()
  if #items == 0 then
    return wrk.format(method, nil, nil, nil)
  end
  index = (index % #items) + 1
  local item = items[index]
  if mode == "body" then
    return wrk.format(method, nil, { ["Content-Type"] = "application/json" }, item)
  end
  local name, value = item:match("^([^:]+):%s*(.*)$")
  return wrk.format(method, nil, { [name] = value }, nil)
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
