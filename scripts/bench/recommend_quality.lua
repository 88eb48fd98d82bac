-- GET /api/recommend/{user}?engine=quality for random MovieLens users (ids 1..943).
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/recommend/" .. math.random(1, 943) .. "?n=10&engine=quality")
end
