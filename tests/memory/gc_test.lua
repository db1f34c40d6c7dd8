-- The collector must see tensor memory: a plain loop creating 100,000 temporary 1 MB tensors, with
-- no collectgarbage() call, has to keep the peak resident set under 300 MB. Run in its own process
-- so the peak (VmHWM) is this loop's alone. Prints the plain summary line the test runner counts.
local cnn = require "cnn"

local function peak_rss_mb()
  local f = assert(io.open("/proc/self/status"))
  local status = f:read("a")
  f:close()
  return tonumber(status:match("VmHWM:%s*(%d+)")) / 1024
end

local count = tonumber(arg and arg[1]) or 100000
local limit_mb = 300
local floats = 1024 * 1024 // 4
local checksum = 0
for i = 1, count do
  local t = cnn.empty(floats)
  if i % 10000 == 0 then checksum = checksum + t:numel() end
end

local peak = peak_rss_mb()
local ok = peak < limit_mb and checksum == (count // 10000) * floats
print(string.format("gc: %d temporary 1 MB tensors, peak RSS %.1f MB (limit %d MB), %.1f MB still allocated",
                    count, peak, limit_mb, cnn.memory_in_use() / 2^20))
print(string.format("gc test: %d passed, %d failed", ok and 1 or 0, ok and 0 or 1))
os.exit(ok and 0 or 1)
