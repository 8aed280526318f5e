-- POST /api/scans/child: each wrk thread spreads new children over its own
-- range of empty parents (BW + 6 digits) so that, like real scanners, the
-- connections work on different parents and every request is a real link.
-- With BATCH_SIZE=N: POST /api/scans/batch, N new children into the next
-- parent of the range per request (N = 30 fills it).
local token = os.getenv("TT_TOKEN")
local per_thread = tonumber(os.getenv("PARENTS_PER_THREAD") or "20000")
local run_id = os.getenv("RUN_ID") or "R"
local batch = tonumber(os.getenv("BATCH_SIZE") or "0")
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
  local path, body = "/api/scans/child", nil
  if batch > 0 then
    local children = {}
    for i = 1, batch do
      children[i] = string.format('"B%s-%d-%d-%d"', run_id, thread_no or 0, counter, i)
    end
    path = "/api/scans/batch"
    body = string.format('{"parent_qr":"BW%06d","child_qrs":[%s]}', parent, table.concat(children, ","))
  else
    body = string.format('{"parent_qr":"BW%06d","child_qr":"W%s-%d-%d"}', parent, run_id, thread_no or 0, counter)
  end
  counter = counter + 1
  return wrk.format("POST", path,
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"non2xx\": %d, \"errors\": %d}\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
