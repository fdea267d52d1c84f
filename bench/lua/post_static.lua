-- POST one fixed body (an exact-hit workload once the answer is cached).
--   wrk ... -s post_static.lua URL -- BODY_FILE ["Header: value" ...]
-- The body is the file's content with @@ID@@ (if any) replaced by "hit-0".
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")

function init(args)
  local body = C.read_file(args[1])
  body = body:gsub("@@ID@@", "hit-0")
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  for i = 2, #args do
    local k, v = args[i]:match("^([^:]+):%s*(.*)$")
    if k then wrk.headers[k] = v end
  end
end

done = C.done
