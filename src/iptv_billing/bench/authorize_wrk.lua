-- bench authorize with wrk: replays the planned mix of nginx-rtmp on_play forms, counts what
-- was sent per category and what came back per (status, X-Deny-Reason), and prints one JSON
-- line. The Python side checks that each category got its expected answer.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
  table.insert(threads, thread)
end

function init(args)
  requests, categories, sent, received = {}, {}, {}, {}
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  for line in io.lines(args[1]) do
    local category, body = line:match("^(%S+)\t(.*)$")
    table.insert(categories, category)
    table.insert(requests, wrk.format("POST", wrk.path, headers, body))
  end
  position = offset % #requests
end

function request()
  position = position % #requests + 1
  local category = categories[position]
  sent[category] = (sent[category] or 0) + 1
  return requests[position]
end

function response(status, headers, body)
  local reason = headers["x-deny-reason"] or headers["X-Deny-Reason"] or ""
  local key = status .. ":" .. reason
  received[key] = (received[key] or 0) + 1
end

local function merge(total, part)
  for key, count in pairs(part) do total[key] = (total[key] or 0) + count end
end

local function encode(map)
  local parts = {}
  for key, count in pairs(map) do table.insert(parts, string.format('"%s":%d', key, count)) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests_)
  local all_sent, all_received = {}, {}
  for _, thread in ipairs(threads) do
    merge(all_sent, thread:get("sent"))
    merge(all_received, thread:get("received"))
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"socket_errors":%d,"sent":%s,"received":%s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max,
    errors.connect + errors.read + errors.write + errors.timeout,
    encode(all_sent), encode(all_received)))
end
