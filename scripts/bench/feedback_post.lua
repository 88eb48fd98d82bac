-- POST /api/feedback with one event per request (as scripts/bench/feedback.lua), path set here.
math.randomseed(os.time())
request = function()
  local body = string.format('[{"user_id":"b%d","item_id":"%d","type":"click"}]',
    math.random(1, 50000), math.random(1, 1682))
  return wrk.format("POST", "/api/feedback", {["Content-Type"] = "application/json"}, body)
end
