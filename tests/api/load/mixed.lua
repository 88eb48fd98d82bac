-- wrk script for reco's load tests: a mix of in-memory recommendations, database reads and feedback
-- writes over the demo catalogue, with every response's status counted (and 503s checked for
-- Retry-After). `done` prints machine-readable lines the test parses.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
  missing_retry = 0
  n = math.random(1, 100000)
end

function request()
  n = n + 1
  local user = "user-" .. (n % 1000 + 1)
  local k = n % 4
  if k == 0 then
    return wrk.format("GET", "/api/recommend/" .. user .. "?n=10")
  elseif k == 1 then
    return wrk.format("GET", "/api/users/" .. user)
  elseif k == 2 then
    return wrk.format("GET", "/api/users/" .. user .. "/feedback?limit=20")
  else
    local body = '[{"user_id":"' .. user .. '","item_id":"item-' .. (n % 3000 + 1) .. '","type":"view"}]'
    return wrk.format("POST", "/api/feedback", { ["Content-Type"] = "application/json" }, body)
  end
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  if status == 503 and headers["retry-after"] == nil and headers["Retry-After"] == nil then
    missing_retry = missing_retry + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  local missing = 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do
      total[k] = (total[k] or 0) + v
    end
    missing = missing + t:get("missing_retry")
  end
  for k, v in pairs(total) do
    io.write(string.format("STATUS %d %d\n", k, v))
  end
  io.write(string.format("MISSING_RETRY_AFTER %d\n", missing))
  local e = summary.errors
  io.write(string.format("ERRORS %d %d %d %d\n", e.connect, e.read, e.write, e.timeout))
  io.write(string.format("REQUESTS %d\n", summary.requests))
  io.write(string.format("LATENCY_P99_US %d\n", latency:percentile(99)))
end
