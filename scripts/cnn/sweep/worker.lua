-- One trial: run(cfg, report) under protection, turned into a result record.
--
-- In a sweep each trial is a process of its own: the driver starts the user's script again with
-- CNN_SWEEP_TRIAL and CNN_SWEEP_OUT set, the cnn.sweep{...} call in it sees them and hands over to
-- worker.main, which runs that one trial, writes trial_NNNN/result.json and exits, so the code after
-- the call (the driver's own work) never runs in a trial. worker.execute is the part that runs
-- run(); it also serves trials run in the driver's process (workers = 0) and sweep.rerun.
local cnn = require "cnn"
local json = require "cnn.sweep.json"
local process = require "cnn.sweep.process"
local results = require "cnn.sweep.results"

local worker = {}

-- What report() raises when the scheduler stops a trial: unwinding run() from wherever report was
-- called (a training loop, a cnn.fit callback) needs no cooperation from the code in between.
worker.STOP = setmetatable({}, {__tostring = function() return "trial stopped by the scheduler" end})

-- Exit status of a trial whose driver has gone away: no result is written, so it runs again.
worker.ORPHANED = 75

local MAX_MESSAGE = 600

local function finite(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
end

-- "nan" rather than the C library's "-nan" for a NaN of either sign.
local function show(v)
  if v ~= v then return "nan" end
  return tostring(v)
end

-- Numbers, strings and booleans of a metrics table (what a JSON line can hold).
local function flat_copy(t)
  local out = {}
  for k, v in pairs(t) do
    local kind = type(v)
    if type(k) == "string" and (kind == "number" or kind == "string" or kind == "boolean") then out[k] = v end
  end
  return out
end

local function short(message)
  message = tostring(message)
  if #message > MAX_MESSAGE then message = message:sub(1, MAX_MESSAGE) .. "..." end
  return message
end

-- Runs one trial and returns its record, and the traceback of the error when run() raised one.
--   config: {trial=, params=, seed=, threads=?}   dir: the trial directory (cfg._dir)
--   options.alive: a function telling whether the driver still runs (checked at each report)
function worker.execute(opts, config, dir, options)
  options = options or {}
  local metric, mode = opts.metric, opts.mode
  if config.threads then cnn.set_num_threads(config.threads) end
  cnn.manual_seed(config.seed)
  local cfg = {}
  for k, v in pairs(config.params) do cfg[k] = v end
  cfg._trial, cfg._seed, cfg._dir = config.trial, config.seed, dir

  local metrics_file = io.open(dir .. "/metrics.jsonl", "a")
  local judge = opts.scheduler and opts.scheduler:judge_for(opts.out, config.trial, mode)
  local timer = cnn.timer()
  local state = {epochs = nil, last = {}, stopped = nil}

  local function report(epoch, metrics)
    if state.stopped then error(worker.STOP, 0) end
    if type(epoch) ~= "number" then
      error(string.format("report: the first argument is the epoch (a number), got a %s", type(epoch)), 2)
    end
    if type(metrics) == "number" then metrics = {[metric] = metrics} end
    if metrics ~= nil and type(metrics) ~= "table" then
      error(string.format("report: metrics must be a table like {%s=0.9}, got a %s", metric, type(metrics)), 2)
    end
    local flat = flat_copy(metrics or {})
    state.epochs, state.last = epoch, flat
    if metrics_file then
      local line = flat_copy(flat)
      line.epoch, line.time = epoch, timer:elapsed()
      metrics_file:write(json.encode(line), "\n")
      metrics_file:flush()
    end
    if options.alive and not options.alive() then
      io.stderr:write("sweep: the driver has gone; this trial stops and will run again on resume\n")
      io.stderr:flush()
      os.exit(worker.ORPHANED)
    end
    local value = flat[metric]
    if value ~= nil and not finite(value) then
      error(string.format("report: %s is %s at epoch %s", metric, show(value), tostring(epoch)), 2)
    end
    if judge and value ~= nil then
      local decision, rung, cutoff = judge(epoch, value)
      if decision == "stop" then
        state.stopped = string.format("stopped at epoch %s (rung %g: %s %.4g, needed %s %.4g)", tostring(epoch),
                                      rung, metric, value, mode == "max" and ">=" or "<=", cutoff)
        error(worker.STOP, 0)
      end
    end
    return true
  end

  local function handler(e)
    if e == worker.STOP then return e end
    return {message = tostring(e), traceback = debug.traceback(tostring(e), 2)}
  end
  -- an interrupted cnn.fit inside run() must not pass for a finished trial: it raises instead, and
  -- the interrupt goes on up (the trial then has no result and runs again when the sweep resumes)
  local fit = require "cnn.fit"
  local raising = fit.raise_on_interrupt
  fit.raise_on_interrupt = true
  local ok, ret = xpcall(opts.run, handler, cfg, report)
  fit.raise_on_interrupt = raising
  if metrics_file then metrics_file:close() end
  if not ok and ret ~= worker.STOP and ret.message:find("interrupted", 1, true) then error(ret.message, 0) end

  local record = {trial = config.trial, params = config.params, seed = config.seed, epochs = state.epochs,
                  seconds = timer:elapsed(), mpi_rank = math.tointeger(tonumber(os.getenv("OMPI_COMM_WORLD_RANK") or ""))}
  local result, traceback
  if state.stopped or (not ok and ret == worker.STOP) then
    record.status, record.message = "stopped", state.stopped or "stopped by the scheduler"
    result = state.last
  elseif not ok then
    traceback = ret.traceback
    record.status, record.message = "failed", short(ret.message)
    result = state.last
  else
    if type(ret) == "number" then ret = {[metric] = ret} end
    if ret ~= nil and type(ret) ~= "table" then
      record.status = "failed"
      record.message = string.format("run returned a %s; return a table of metrics like {%s=...}", type(ret), metric)
    end
    result = type(ret) == "table" and flat_copy(ret) or state.last
  end
  record.metrics = result
  local value = result[metric]
  if record.status == nil then
    if value == nil then
      record.status = "failed"
      record.message = string.format("run returned no '%s' (return {%s=...} or report it)", metric, metric)
    elseif not finite(value) then
      record.status, record.message = "failed", string.format("%s is %s", metric, show(value))
    else
      record.status = "ok"
    end
  end
  record.value = finite(value) and value or nil
  return record, traceback
end

-- Runs a trial in the calling process, leaving its generator state and thread count as they were.
function worker.execute_here(opts, config, dir)
  local rng, threads = cnn.get_rng_state(), cnn.get_num_threads()
  local record, traceback = worker.execute(opts, config, dir)
  cnn.set_rng_state(rng)
  cnn.set_num_threads(threads)
  return record, traceback
end

-- The trial process: runs the trial named by the environment and exits.
function worker.main(opts)
  local trial = math.tointeger(tonumber(os.getenv("CNN_SWEEP_TRIAL")))
  local dir = results.trial_dir(opts.out, trial or 0)
  local config = results.read_json(dir .. "/config.json")
  if not trial or type(config) ~= "table" or config.trial ~= trial then
    io.stderr:write(string.format("sweep: no configuration for trial %s in %s\n", tostring(trial), dir))
    os.exit(2)
  end
  local driver = math.tointeger(tonumber(os.getenv("CNN_SWEEP_DRIVER") or ""))
  local record, traceback = worker.execute(opts, config, dir, {alive = function() return process.alive(driver) end})
  if traceback then io.stderr:write(traceback, "\n") end
  results.write_json(dir .. "/result.json", record)
  io.stdout:flush()
  io.stderr:flush()
  os.exit(0, true)
end

return worker
