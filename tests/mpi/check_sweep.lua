-- Checks a finished sweep directory; prints "PASS name" / "FAIL name: why" lines.
-- Usage: lua check_sweep.lua <label> <out> key=value...
--   ok=N failed=N stopped=N   trials with that status
--   ranks=N                   at least N distinct MPI ranks ran trials
--   starts=N                  trial processes started in total (lines of out/starts.log)
local sweep = require "cnn.sweep"
local label, out = arg[1], arg[2]

local function report(name, ok, why)
  print((ok and "PASS " or "FAIL ") .. label .. ": " .. name .. (ok and "" or (": " .. tostring(why))))
end

local ok, records = pcall(sweep.load, out)
if not ok then
  report("the sweep directory loads", false, records)
  os.exit(1)
end
local status, ranks, nranks = {ok = 0, failed = 0, stopped = 0}, {}, 0
for _, rec in pairs(records) do
  status[rec.status] = (status[rec.status] or 0) + 1
  if rec.mpi_rank and not ranks[rec.mpi_rank] then
    ranks[rec.mpi_rank] = true
    nranks = nranks + 1
  end
end
local starts = 0
local f = io.open(out .. "/starts.log")
if f then
  for _ in f:lines() do starts = starts + 1 end
  f:close()
end
for i = 3, #arg do
  local key, want = arg[i]:match("^(%w+)=(%d+)$")
  want = tonumber(want)
  if key == "ranks" then
    report(string.format("trials ran on at least %d ranks", want), nranks >= want, nranks .. " ranks")
  elseif key == "starts" then
    report(string.format("%d trial processes started", want), starts == want, starts .. " started")
  else
    report(string.format("%d trials %s", want, key), status[key] == want, tostring(status[key]) .. " " .. key)
  end
end
