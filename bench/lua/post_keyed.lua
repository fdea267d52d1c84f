-- POST the i-th of N distinct requests; the template's @@ID@@ becomes
-- "key-<i>" (the same i always gives the same body, so the same cache key).
--   wrk -tT ... -s post_keyed.lua URL -- TEMPLATE_FILE MODE N T [SEED]
-- MODE "fill":   thread t sends i = t, t+T, t+2T, ... and wraps around at N
--                (so after one pass it only re-sends, which are hits; the
--                driver stops wrk once the gateway holds N entries).
-- MODE "random": i uniform in [0, N), independent per request (seeded by
--                SEED and the thread number).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")

local next_tid = 0
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

local prefix, suffix, mode, N, T, i
function init(args)
  prefix, suffix = C.split_template(C.read_file(args[1]))
  mode = args[2] or "random"
  N = assert(tonumber(args[3]), "N required")
  T = tonumber(args[4]) or 1
  i = tid or 0
  math.randomseed((tonumber(args[5]) or 12345) * 1000 + (tid or 0))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local k
  if mode == "fill" then
    k = i
    i = i + T
    if i >= N then i = i - N end
  else
    k = math.random(0, N - 1)
  end
  return wrk.format(nil, nil, nil, prefix .. "key-" .. k .. suffix)
end

done = C.done
