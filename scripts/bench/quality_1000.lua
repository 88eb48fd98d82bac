-- The most expensive request a client can send: GET /api/recommend/{user}?engine=quality&n=1000.
math.randomseed(os.time() + 7)
request = function()
  return wrk.format("GET", "/api/recommend/" .. math.random(1, 943) .. "?engine=quality&n=1000")
end
