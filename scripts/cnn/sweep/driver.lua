-- The driver side of a sweep: trials started as processes, at most `workers` at a time, their ends
-- noticed by polling their directories, their records collected.
--
-- Pool is the machinery shared by a laptop sweep and every MPI rank; driver.run is the loop:
--   source()  -> the next trial config, or nil when there is none to start now
--   sink(rec) -> takes the record of a finished trial
--   service() -> called once per turn (the MPI scheduler answers its ranks there)
--   finished() -> true when no trial will come from source any more
local cnn = require "cnn"
local process = require "cnn.sweep.process"
local results = require "cnn.sweep.results"
local worker = require "cnn.sweep.worker"

local driver = {}

local Pool = {}
Pool.__index = Pool

-- Turns a wait into polls that start fast (short trials, tests) and slow down to ten a second.
local POLL_MIN, POLL_MAX = 0.02, 0.1

-- opts: the checked sweep options; launch: {argv=, env=} of a trial process (nil runs trials in
-- this process, one at a time).
function driver.pool(opts, launch)
  return setmetatable({opts = opts, launch = launch, running = {}, count = 0, poll = POLL_MIN}, Pool)
end

function Pool:free()
  if not self.launch then return self.done_inline == nil end -- one trial in this process per turn
  return self.count < self.opts.workers
end

function Pool:busy()
  return self.count > 0
end

local signals = {[2] = "interrupted", [6] = "aborted", [9] = "killed", [11] = "segmentation fault",
                 [15] = "terminated", [8] = "floating-point exception", [7] = "bus error"}

-- The last non-empty line of a log, to say why a process died.
local function last_line(path)
  local text = results.read_file(path) or ""
  local last
  for line in text:gmatch("[^\n]+") do
    if line:match("%S") then last = line end
  end
  return last
end

-- The record of a trial that failed without writing one itself (kept in its result.json too).
local function failure(config, dir, seconds, message)
  local rec = {trial = config.trial, params = config.params, seed = config.seed, status = "failed",
               seconds = seconds, metrics = {}, message = message}
  results.write_json(dir .. "/result.json", rec)
  return rec
end

-- The record of a trial whose process ended: its result.json, or a failure built from the exit
-- status and the end of its log.
function Pool:collect(config, dir, status, seconds)
  local rec = results.read_json(dir .. "/result.json")
  if type(rec) == "table" and rec.trial == config.trial then return rec end
  local how
  if status and status > 128 then
    how = string.format("killed by signal %d (%s)", status - 128, signals[status - 128] or "signal")
  elseif status == worker.ORPHANED then
    how = "lost its driver"
  elseif status < 0 then
    how = "ended without an exit status"
  elseif status == 0 and results.read_file(dir .. "/metrics.jsonl") then
    how = "exited with status 0 before run() returned" -- the trial opens its metrics file first
  elseif status == 0 then
    -- the script ran to its end without reaching the cnn.sweep call with this out directory
    how = "the trial process ended without running the trial (does every run of the script call cnn.sweep " ..
          "with the same out?)"
  else
    how = string.format("exited with status %s without a result", tostring(status))
  end
  local tail = last_line(dir .. "/log")
  return failure(config, dir, seconds, tail and string.format("%s; last output: %s", how, tail:sub(1, 300)) or how)
end

function Pool:start(config)
  local opts = self.opts
  local dir = results.trial_dir(opts.out, config.trial)
  results.mkdir(dir)
  os.remove(dir .. "/result.json")
  os.remove(dir .. "/metrics.jsonl")
  config = {trial = config.trial, params = config.params, seed = config.seed, threads = opts.threads}
  results.write_json(dir .. "/config.json", config)
  if not self.launch then
    -- in this process: no isolation, but usable from a REPL and for debugging
    local rec, traceback = worker.execute_here(opts, config, dir)
    if traceback and not opts.quiet then io.stderr:write(traceback, "\n") end
    results.write_json(dir .. "/result.json", rec)
    self.done_inline = self.done_inline or {}
    table.insert(self.done_inline, rec)
    return
  end
  local env = {}
  for k, v in pairs(self.launch.env) do env[k] = v end
  env.CNN_SWEEP_TRIAL = tostring(config.trial)
  process.launch(self.launch.argv, env, dir, dir .. "/log")
  self.running[config.trial] = {config = config, dir = dir, timer = cnn.timer()}
  self.count = self.count + 1
end

-- The trial process has gone but no exit status came (its wrapper was killed, or the directory
-- was removed): after some grace for the wrapper to write its files, the trial counts as ended
-- with an unknown status, so that the sweep never waits forever.
local GRACE_DEAD, GRACE_NO_PID = 1.0, 10.0
function Pool:lost(run)
  local pid = process.child_pid(run.dir)
  if pid and process.alive(pid) then
    run.gone = nil
    return nil
  end
  run.gone = run.gone or cnn.timer()
  if run.gone:elapsed() < (pid and GRACE_DEAD or GRACE_NO_PID) then return nil end
  return -1
end

-- Records of the trials that ended since the last call.
function Pool:reap()
  if self.done_inline then
    local done = self.done_inline
    self.done_inline = nil
    return done
  end
  local done = {}
  for trial, run in pairs(self.running) do
    local status = process.exit_status(run.dir)
    local seconds = run.timer:elapsed()
    if status == nil then status = self:lost(run) end
    if status == nil and self.opts.timeout and seconds > self.opts.timeout then
      process.kill(run.dir)
      status = -1
      run.timed_out = true
    end
    if status ~= nil then
      done[#done + 1] = run.timed_out
        and failure(run.config, run.dir, seconds, string.format("timed out after %g s", self.opts.timeout))
        or self:collect(run.config, run.dir, status, seconds)
      self.running[trial] = nil
      self.count = self.count - 1
    end
  end
  table.sort(done, function(a, b) return a.trial < b.trial end)
  return done
end

-- Waits a little, longer while nothing happens. Raises when the wait was interrupted.
function Pool:wait(active)
  if active then self.poll = POLL_MIN end
  process.sleep(self.poll)
  self.poll = math.min(POLL_MAX, self.poll * 1.5)
end

function Pool:stop_all()
  for _, run in pairs(self.running) do process.kill(run.dir) end
end

-- The loop; see the top of the file. Stops every running trial when it fails or is interrupted.
function driver.run(pool, source, sink, service, finished)
  local ok, err = pcall(function()
    while true do
      local active = service and service() or false
      while pool:free() do
        local config = source()
        if not config then break end
        pool:start(config)
        active = true
      end
      for _, rec in ipairs(pool:reap()) do
        sink(rec)
        active = true
      end
      if not pool:busy() and finished() then break end
      if not active or pool:busy() then pool:wait(active) end
    end
  end)
  if not ok then
    pool:stop_all()
    error(err, 0)
  end
end

return driver
