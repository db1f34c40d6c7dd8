-- cnn.sweep - hyperparameter sweeps: a search space, a trial function, and every result kept.
--
--   local summary = cnn.sweep{
--     space = {lr = cnn.sweep.log_uniform(1e-4, 1e-2), batch_size = {32, 64}, dropout = cnn.sweep.uniform(0, 0.5)},
--     strategy = "random", trials = 20, workers = 2, metric = "val_accuracy", mode = "max",
--     out = "runs/sweep1", scheduler = cnn.sweep.asha{min_resource = 1, eta = 3},
--     run = function(cfg, report)            -- cfg.lr, cfg.batch_size, ...; cfg._dir for checkpoints
--       for epoch = 1, 5 do ... report(epoch, {val_accuracy = acc}) end
--       return {val_accuracy = acc}
--     end,
--   }
--   summary.best.params   --> the winning configuration       cnn.sweep.show("runs/sweep1")
--
-- How trials run: each one is a process of its own - the same interpreter running the same script
-- with the same arguments, told by its environment (CNN_SWEEP_TRIAL, CNN_SWEEP_OUT) to run only
-- that trial's run(cfg, report) when it reaches the cnn.sweep call, write its result and exit. So
-- a crash, an error or a NaN in one trial marks that trial failed and the sweep goes on; code
-- before the call runs in every trial (load data there), code after it only in the driver.
-- workers = 0 runs the trials in this process instead (from a REPL, or to debug run()).
--
-- Results: out/results.jsonl holds one JSON line per finished trial (see cnn/sweep/results.lua for
-- why no result is ever lost); running the same sweep again resumes it: finished trials are
-- skipped, interrupted ones run again, a larger `trials` adds trials. At the end the leaderboard is
-- printed and out/plot_<param>.png shows the metric against each parameter.
--
-- Under mpirun (mpirun -np N cnnlua script.lua) rank 0 schedules and every rank runs trials: see
-- cnn/sweep/mpi_driver.lua.
--
-- Options: space, run, out and metric are needed; mode ("max", but "min" for a metric named like
-- a loss or an error), strategy ("grid" or "random"), trials (the budget; a grid's size by
-- default), workers (1; 0 runs the trials in this process), seed (0; the sampler's own), scheduler
-- (cnn.sweep.asha{...}), threads (per trial; by default the cores divided among the workers),
-- timeout (seconds per trial), retry_failed (false), quiet, plot (true), mpi (false ignores
-- mpirun), and script, interpreter, args (how a trial is started; by default arg[0], arg[-n..-1]
-- and arg[1..]).
-- The result: {best = record, trials = {record, ...}, leaderboard = text, plots = {path, ...}, dir,
-- metric, mode}, where a record is {trial, status = "ok"|"stopped"|"failed", value, metrics, params,
-- seed, epochs, seconds, message}. report(epoch, metrics) inside run() may not return: when the
-- scheduler stops the trial it unwinds run() (cnn.fit callbacks included).
local space = require "cnn.sweep.space"
local asha = require "cnn.sweep.scheduler.asha"
local results = require "cnn.sweep.results"
local leaderboard = require "cnn.sweep.leaderboard"
local process = require "cnn.sweep.process"
local driver = require "cnn.sweep.driver"
local worker = require "cnn.sweep.worker"

local sweep = {}

sweep.choice = space.choice
sweep.uniform = space.uniform
sweep.log_uniform = space.log_uniform
sweep.int = space.int

-- Early stopping of weak trials: successive halving (see cnn/sweep/scheduler/asha.lua).
function sweep.asha(options)
  return asha.new(options)
end

-- ---- options ------------------------------------------------------------------------------------
local known = {
  space = true, run = true, out = true, metric = true, mode = true, strategy = true, trials = true,
  workers = true, seed = true, scheduler = true, threads = true, timeout = true, retry_failed = true,
  quiet = true, plot = true, script = true, interpreter = true, args = true, mpi = true,
}

-- Errors in the options point at the cnn.sweep{...} call (fail <- check_options <- call <- caller).
local function fail(fmt, ...)
  error("sweep: " .. string.format(fmt, ...), 4)
end

local function check_options(o)
  if type(o) ~= "table" then fail("expected a table of options, got a %s", type(o)) end
  for k in pairs(o) do
    if not known[k] then fail("unknown option '%s'", tostring(k)) end
  end
  if type(o.run) ~= "function" then fail("run must be a function(cfg, report) returning the metrics") end
  if type(o.out) ~= "string" or o.out == "" then fail("out must name a directory for the results") end
  if type(o.metric) ~= "string" then fail("metric must name the value to optimize, e.g. \"val_accuracy\"") end
  local space_ok, space_err = pcall(space.check, o.space)
  if not space_ok then fail("%s", space_err) end
  local opts = {}
  for k, v in pairs(o) do opts[k] = v end
  opts.out = o.out:gsub("/+$", "")
  opts.strategy = o.strategy or "grid"
  if opts.strategy ~= "grid" and opts.strategy ~= "random" then
    fail("strategy must be \"grid\" or \"random\", got %s", tostring(o.strategy))
  end
  if opts.strategy == "random" and o.trials == nil then fail("random search needs a trial budget (trials = N)") end
  -- a loss or an error rate is minimized unless said otherwise, anything else maximized
  opts.mode = o.mode or ((o.metric:match("loss") or o.metric:match("err")) and "min" or "max")
  if opts.mode ~= "max" and opts.mode ~= "min" then fail("mode must be \"max\" or \"min\", got %s", tostring(o.mode)) end
  opts.seed = o.seed or 0
  if math.tointeger(opts.seed) == nil then fail("seed must be an integer") end
  opts.workers = o.workers or 1
  if math.tointeger(opts.workers) == nil or opts.workers < 0 then fail("workers must be an integer >= 0") end
  if o.trials ~= nil and (math.tointeger(o.trials) == nil or o.trials < 1) then
    fail("trials must be a positive integer")
  end
  if o.threads ~= nil and (math.tointeger(o.threads) == nil or o.threads < 1) then
    fail("threads must be a positive integer")
  end
  if o.timeout ~= nil and (type(o.timeout) ~= "number" or o.timeout <= 0) then fail("timeout must be seconds > 0") end
  if o.scheduler ~= nil and getmetatable(o.scheduler) ~= asha then
    fail("scheduler must be made by cnn.sweep.asha{...}")
  end
  return opts
end

-- ---- the trial processes ------------------------------------------------------------------------
-- How to start a trial: this interpreter with its options, the script and its arguments.
local function launch_spec(opts)
  local script = opts.script or (type(arg) == "table" and arg[0])
  if type(script) ~= "string" or script == "" or script == "-" then
    error("sweep: each trial runs the script that calls cnn.sweep again, so call it from a script file " ..
          "(or pass workers = 0 to run the trials in this process)", 0)
  end
  local argv = opts.interpreter or process.interpreter_argv()
  if type(argv) == "string" then argv = {argv} end
  if not argv then error("sweep: cannot tell which interpreter runs this script; pass interpreter = \"lua5.4\"", 0) end
  argv = table.move(argv, 1, #argv, 1, {})
  argv[#argv + 1] = script
  local args = opts.args
  if args == nil and not opts.script and type(arg) == "table" then args = table.move(arg, 1, #arg, 1, {}) end
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local threads = tostring(opts.threads)
  return {argv = argv, env = {
    CNN_SWEEP_OUT = opts.out, CNN_SWEEP_DRIVER = tostring(process.pid()),
    OMP_NUM_THREADS = threads, OPENBLAS_NUM_THREADS = threads,
    -- the modules this process found, found again by the trial whatever set the path up
    LUA_PATH = package.path, LUA_CPATH = package.cpath, LUA_PATH_5_4 = package.path, LUA_CPATH_5_4 = package.cpath,
  }}
end

-- Threads per trial so that workers x threads never exceeds the cores. When mpirun did not bind
-- the ranks to cores, the ranks on this machine share them too.
local function threads_per_trial(opts, ranks_here)
  if opts.threads then return opts.threads end
  if opts.workers == 0 then return nil end -- trials in this process keep its setting
  local usable, all = process.cores()
  local sharing = usable < all and 1 or ranks_here
  return math.max(1, usable // (math.max(1, opts.workers) * sharing))
end

-- ---- the end of a sweep -------------------------------------------------------------------------
local function summarize(opts, records, meta, show)
  local list = {}
  for _, rec in pairs(records) do list[#list + 1] = rec end
  table.sort(list, function(a, b) return a.trial < b.trial end)
  local best = leaderboard.best(records, opts.mode)
  local summary = {dir = opts.out, metric = opts.metric, mode = opts.mode, trials = list, best = best,
                   leaderboard = leaderboard.format(records, meta), plots = {}}
  if best then best.dir = results.trial_dir(opts.out, best.trial) end
  if show then
    if opts.plot ~= false then summary.plots = require("cnn.sweep.plot").write(records, meta) end
    if not opts.quiet then
      print(summary.leaderboard)
      for _, path in ipairs(summary.plots) do print("plot: " .. path) end
    end
  end
  return summary
end

local function describe_params(params)
  local parts = {}
  for _, name in ipairs(space.sorted_names(params or {})) do
    parts[#parts + 1] = name .. "=" .. leaderboard.format_value(params[name])
  end
  return table.concat(parts, " ")
end

-- ---- running a sweep ----------------------------------------------------------------------------
-- The trials still to run: those without a record (and the failed ones with retry_failed).
local function pending(plan, records, retry_failed)
  local queue = {}
  for _, config in ipairs(plan) do
    local rec = records[config.trial]
    if rec == nil or (retry_failed and rec.status == "failed") then queue[#queue + 1] = config end
  end
  return queue
end

local function announce(opts, planned, queue, recovered, ranks)
  if opts.quiet then return end
  local where = "this process"
  if opts.workers > 0 then
    where = string.format("%d worker%s x %d thread%s", opts.workers, opts.workers == 1 and "" or "s",
                          opts.threads, opts.threads == 1 and "" or "s")
  end
  print(string.format("sweep %s: %d trials, %d finished before%s, %d to run on %s%s", opts.out, planned,
                      planned - #queue, recovered > 0 and string.format(" (%d recovered)", recovered) or "", #queue,
                      where, ranks and string.format(" on each of %d ranks", ranks) or ""))
end

-- One line per finished trial.
local function progress(opts, total)
  local done = 0
  return function(rec)
    done = done + 1
    if opts.quiet then return end
    local value = rec.value ~= nil and string.format("%s=%s", opts.metric, leaderboard.format_value(rec.value)) or ""
    local note = rec.status ~= "ok" and rec.message and ("  " .. rec.message:gsub("\n", " ")) or ""
    print(string.format("[%d/%d] trial %d %s %s  %s  (%.1fs%s)%s", done, total, rec.trial, rec.status, value,
                        describe_params(rec.params), rec.seconds or 0,
                        rec.mpi_rank and string.format(", rank %d", rec.mpi_rank) or "", note))
    io.stdout:flush()
  end
end

-- The driver's part (rank 0's under MPI): owns the directory, runs or hands out the pending trials
-- and keeps their records. Returns the records of the whole sweep.
local function drive(opts, plan, meta, pool, mpi)
  results.mkdir(opts.out)
  results.lock(opts.out)
  local ok, records = pcall(function()
    results.check_sweep(opts.out, meta)
    local records, recovered = results.recover(opts.out, #plan)
    local queue = pending(plan, records, opts.retry_failed)
    announce(opts, #plan, queue, recovered, mpi and mpi.size())
    local next_index = 1
    local function source()
      local config = queue[next_index]
      if config then next_index = next_index + 1 end
      return config
    end
    local show = progress(opts, #queue)
    local function keep(rec)
      results.append(opts.out, rec)
      records[rec.trial] = rec
      show(rec)
    end
    if mpi then
      require("cnn.sweep.mpi_driver").schedule(mpi, pool, source, keep, records)
    else
      driver.run(pool, source, keep, nil, function() return next_index > #queue end)
    end
    return records
  end)
  results.unlock(opts.out)
  if not ok then
    local err = tostring(records)
    -- Ctrl-C shows up as the shell's signal or as the interpreter's "interrupted!"
    if err:match("interrupted") then err = "sweep: interrupted; run the sweep again to resume" end
    error(err, 0)
  end
  return records
end

local function run_sweep(opts)
  local plan = space.trials(opts.space, opts.strategy, opts.trials, opts.seed)
  local meta = {space = space.describe(opts.space), strategy = opts.strategy, seed = opts.seed,
                metric = opts.metric, mode = opts.mode, trials = #plan, out = opts.out,
                scheduler = opts.scheduler and tostring(opts.scheduler) or nil}
  local distributed = require "cnn.distributed"
  local world = opts.mpi ~= false and distributed.world_size() or 1
  local mpi
  if world > 1 then
    distributed.init()
    mpi = distributed.mpi()
  end
  opts.threads = threads_per_trial(opts, mpi and distributed.local_size() or 1)
  local pool = driver.pool(opts, opts.workers > 0 and launch_spec(opts) or nil)
  if mpi and mpi.rank() ~= 0 then
    local records = {}
    for _, rec in ipairs(require("cnn.sweep.mpi_driver").work(mpi, pool)) do records[rec.trial] = rec end
    return summarize(opts, records, meta, false)
  end
  return summarize(opts, drive(opts, plan, meta, pool, mpi), meta, true)
end

local function call(_, options)
  local opts = check_options(options)
  -- in a trial process: run that one trial (of this sweep; another sweep in the script is skipped)
  if os.getenv("CNN_SWEEP_TRIAL") then
    if os.getenv("CNN_SWEEP_OUT") ~= opts.out then return nil end
    return worker.main(opts)
  end
  return run_sweep(opts)
end

-- ---- looking at a sweep afterwards -------------------------------------------------------------
-- The records of a sweep directory (by trial id) and its description.
function sweep.load(dir)
  dir = dir:gsub("/+$", "")
  local meta = results.read_json(dir .. "/sweep.json")
  if type(meta) ~= "table" then error(string.format("sweep.load: %s holds no sweep (no sweep.json)", dir), 2) end
  meta.out = dir
  local records = results.load(dir, meta.trials)
  return records, meta
end

-- Prints the leaderboard of a sweep directory and returns the summary (as cnn.sweep does).
function sweep.show(dir, options)
  local records, meta = sweep.load(dir)
  local opts = {out = meta.out, metric = meta.metric, mode = meta.mode, quiet = options and options.quiet,
                plot = options and options.plot or false}
  return summarize(opts, records, meta, true)
end

-- The configuration of one trial: its parameters, seed and thread count.
function sweep.config(dir, trial)
  dir = dir:gsub("/+$", "")
  local config = results.read_json(results.trial_dir(dir, trial) .. "/config.json")
  if type(config) ~= "table" then
    error(string.format("sweep.config: no trial %s in %s", tostring(trial), dir), 2)
  end
  return config
end

-- Runs trial `trial` of a sweep again, in this process, exactly as it ran: the same parameters,
-- the same seed (cnn.manual_seed) and thread count. run is the sweep's run function; cfg._dir is
-- trial_NNNN/rerun. Returns the new record (status, value, metrics). The caller's generator state
-- and thread count are restored afterwards.
function sweep.rerun(dir, trial, run)
  if type(run) ~= "function" then error("sweep.rerun: pass the sweep's run function as the third argument", 2) end
  local config = sweep.config(dir, trial)
  local _, meta = sweep.load(dir)
  local rerun_dir = results.trial_dir(meta.out, trial) .. "/rerun"
  results.mkdir(rerun_dir)
  return worker.execute_here({run = run, metric = meta.metric, mode = meta.mode, out = meta.out}, config, rerun_dir)
end

return setmetatable(sweep, {__call = call})
