-- POST /api/scans/batch: 30 new children into a new empty parent per request
-- (capacity 30: each request fills its parent). Each wrk thread walks its own
-- range of parents (BW + 6 digits) from PARENT_OFFSET.
local token = os.getenv("TT_TOKEN")
local per_thread = tonumber(os.getenv("PARENTS_PER_THREAD") or "20000")
local run_id = os.getenv("RUN_ID") or "R"
local size = tonumber(os.getenv("BATCH_SIZE") or "30")
local threads = {}
local counter = 0
local first_parent = 0

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

function init(args)
  first_parent = (thread_no or 0) * per_thread + tonumber(os.getenv("PARENT_OFFSET") or "0")
end

function request()
  local parent = first_parent + (counter % per_thread)
  local children = {}
  for i = 1, size do
    children[i] = string.format('"B%s-%d-%d-%d"', run_id, thread_no or 0, counter, i)
  end
  local body = string.format('{"parent_qr":"BW%06d","child_qrs":[%s]}', parent, table.concat(children, ","))
  counter = counter + 1
  return wrk.format("POST", "/api/scans/batch",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"non2xx\": %d, \"errors\": %d}\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
