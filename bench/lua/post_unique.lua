-- POST a body that differs on every request (every request is a cache miss).
--   wrk ... -s post_unique.lua URL -- TEMPLATE_FILE RUN_TAG ["Header: value" ...]
-- The template's @@ID@@ becomes "<RUN_TAG>-<thread>-<counter>"; use a fresh
-- RUN_TAG per run so that no run can hit what an earlier one stored.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")

local threads = {}
local next_tid = 0
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local prefix, suffix, tag
local n = 0
function init(args)
  prefix, suffix = C.split_template(C.read_file(args[1]))
  tag = (args[2] or "run") .. "-" .. tostring(tid or 0) .. "-"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  for i = 3, #args do
    local k, v = args[i]:match("^([^:]+):%s*(.*)$")
    if k then wrk.headers[k] = v end
  end
end

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, prefix .. tag .. n .. suffix)
end

done = C.done
