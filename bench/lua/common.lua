-- Shared by the llmcache wrk scripts: loaded with dofile() relative to the
-- calling script. Gives the request template helpers and a done() that prints
-- one machine-readable line for the bench/*.sh drivers:
--   WRKJSON {"requests":N,"rps":X,"p50_ms":X,"p99_ms":X,...}

local M = {}

function M.read_file(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local s = f:read("*a")
  f:close()
  return (s:gsub("%s+$", ""))
end

-- Splits a template at its single @@ID@@ placeholder.
function M.split_template(t)
  local a, b = t:find("@@ID@@", 1, true)
  assert(a, "template has no @@ID@@ placeholder")
  return t:sub(1, a - 1), t:sub(b + 1)
end

function M.done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local function ms(p) return latency:percentile(p) / 1000.0 end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"mean_ms":%.4f,' ..
    '"p50_ms":%.4f,"p90_ms":%.4f,"p99_ms":%.4f,"p999_ms":%.4f,"max_ms":%.4f,' ..
    '"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, secs, summary.requests / secs, latency.mean / 1000.0,
    ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000.0,
    summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
end

return M
