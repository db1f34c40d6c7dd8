-- The sweep directory and the results kept in it, laid out so that no finished trial is ever lost:
--
--   out/sweep.json            what the sweep is (space, strategy, seed, metric, budget)
--   out/results.jsonl         one JSON line per finished trial: the merged view
--   out/trial_0007/           config.json, log (the trial's stdout and stderr), metrics.jsonl (its
--                             report() calls), result.json, and whatever run() saves in cfg._dir
--   out/driver.lock           the pid of the driver working on the directory
--
-- Crash safety: a trial's own result.json is the record of truth. The trial writes it to a temporary
-- name and renames it (rename is atomic), so it is either whole or absent. The driver, the only
-- writer of results.jsonl, then appends the same record as one line with a single write. When the
-- driver dies between the two steps, the next run finds the result.json missing from results.jsonl
-- and appends it; a line torn by a crash is ignored on reading (the record is still in result.json).
-- A trial with no result.json was interrupted and runs again.
local json = require "cnn.sweep.json"
local process = require "cnn.sweep.process"

local results = {}

function results.trial_dir(out, trial)
  return string.format("%s/trial_%04d", out, trial)
end

function results.mkdir(path)
  if not process.execute("mkdir -p " .. process.quote(path)) then error(string.format("sweep: cannot create the directory %s", path), 0) end
end

function results.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

function results.read_json(path)
  local text = results.read_file(path)
  if not text then return nil end
  return json.try_decode(text)
end

-- Writes the whole text or nothing: a temporary file renamed over path.
function results.write_atomic(path, text)
  local tmp = string.format("%s.tmp%d", path, process.pid() or 0)
  local f, err = io.open(tmp, "wb")
  if not f then error("sweep: cannot write " .. tostring(err), 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then
    os.remove(tmp)
    error("sweep: cannot write " .. path .. ": " .. tostring(werr), 0)
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then error("sweep: cannot rename " .. tmp .. ": " .. tostring(rerr), 0) end
end

function results.write_json(path, value)
  results.write_atomic(path, json.encode(value) .. "\n")
end

-- Appends one line with a single write (the buffer holds the whole line), so that concurrent
-- appenders never interleave and a crash tears at most this line.
function results.append_line(path, line)
  local f, err = io.open(path, "ab")
  if not f then error("sweep: cannot append to " .. tostring(err), 0) end
  f:setvbuf("full", #line + 64)
  f:write(line, "\n")
  f:close()
end

-- The records of a JSONL file, skipping lines that are torn or not JSON objects.
function results.read_jsonl(path)
  local text = results.read_file(path)
  local records = {}
  if not text then return records end
  for line in text:gmatch("([^\n]*)\n") do
    local rec = json.try_decode(line)
    if type(rec) == "table" then records[#records + 1] = rec end
  end
  return records
end

-- ---- the lock: one driver per directory ---------------------------------------------------------
function results.lock(out)
  local path = out .. "/driver.lock"
  local pid = math.tointeger(tonumber((results.read_file(path) or ""):match("%d+") or ""))
  local me = process.pid()
  if pid and pid ~= me and process.alive(pid) then
    error(string.format("sweep: another driver (pid %d) is running on %s; wait for it or stop it", pid, out), 0)
  end
  results.write_atomic(path, tostring(me) .. "\n")
end

function results.unlock(out)
  local path = out .. "/driver.lock"
  local pid = math.tointeger(tonumber((results.read_file(path) or ""):match("%d+") or ""))
  if pid == process.pid() then os.remove(path) end
end

-- ---- the sweep's identity --------------------------------------------------------------------
-- Writes sweep.json, or checks that the directory holds the same sweep (same space, strategy and
-- seed; the budget, metric and mode may change between runs).
function results.check_sweep(out, meta)
  local path = out .. "/sweep.json"
  local old = results.read_json(path)
  if old then
    for _, field in ipairs({"space", "strategy", "seed"}) do
      if json.encode(old[field]) ~= json.encode(meta[field]) then
        error(string.format("sweep: %s holds a different sweep (its %s is %s, this one's is %s); " ..
                            "choose another out directory or remove it", out, field,
                            json.encode(old[field]), json.encode(meta[field])), 0)
      end
    end
  end
  results.write_json(path, meta)
end

-- ---- reading results ----------------------------------------------------------------------------
-- The finished trials of a directory, by trial id: results.jsonl (the last line of a trial wins),
-- completed by the result.json of trials 1..planned that it misses. Returns records, missing, where
-- missing lists the records found only in trial directories (oldest trial first).
function results.load(out, planned)
  local by_trial = {}
  for _, rec in ipairs(results.read_jsonl(out .. "/results.jsonl")) do
    if math.tointeger(rec.trial) then by_trial[math.tointeger(rec.trial)] = rec end
  end
  local missing = {}
  for trial = 1, planned or 0 do
    if not by_trial[trial] then
      local rec = results.read_json(results.trial_dir(out, trial) .. "/result.json")
      if type(rec) == "table" and rec.trial == trial then
        by_trial[trial] = rec
        missing[#missing + 1] = rec
      end
    end
  end
  return by_trial, missing
end

-- The driver's view: loads the records, appends those that only trial directories held.
function results.recover(out, planned)
  local by_trial, missing = results.load(out, planned)
  for _, rec in ipairs(missing) do results.append(out, rec) end
  return by_trial, #missing
end

function results.append(out, record)
  results.append_line(out .. "/results.jsonl", json.encode(record))
end

return results
