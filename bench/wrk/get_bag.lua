-- GET /api/bags/{qr} over a list of real QR codes (one per line in QR_FILE).
local qrs = {}
local token = os.getenv("TT_TOKEN")

function init(args)
  for line in io.lines(os.getenv("QR_FILE")) do qrs[#qrs + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local qr = qrs[math.random(#qrs)]
  return wrk.format("GET", "/api/bags/" .. qr, {["Authorization"] = "Bearer " .. token})
end

function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"non2xx\": %d, \"errors\": %d}\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
