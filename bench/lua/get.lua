-- GET the URL as is (the nginx static-file reference). Only adds the report.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")
done = C.done
