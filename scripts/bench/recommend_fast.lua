-- GET /api/recommend/{user}?engine=fast for random MovieLens users (ids 1..943).
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/recommend/" .. math.random(1, 943) .. "?engine=fast&n=10")
end
