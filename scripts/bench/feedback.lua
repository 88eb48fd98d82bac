-- POST /api/feedback with one event per request: random user and item, so rows are new.
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = string.format('[{"user_id":"b%d","item_id":"%d","type":"click"}]',
    math.random(1, 50000), math.random(1, 1682))
  return wrk.format(nil, nil, nil, body)
end
