-- Sweeps over cheap synthetic objectives (no training), for tests/spec/sweep_spec.lua and
-- tests/mpi. Usage: <interpreter> objective.lua <case> <out> [workers]
-- Environment: SWEEP_QUIET (no output), SWEEP_PLOT (write the plots), SWEEP_TIMEOUT (seconds per
-- trial), DRIVER_SEED.
-- Every trial appends "trial <id>" to <out>/starts.log when it starts, so tests can count runs.
local cnn = require "cnn"
local case, out, workers = arg[1], arg[2], tonumber(arg[3] or "2")

-- The driver's own generator must neither steer nor be moved by the sweep's sampling.
cnn.manual_seed(tonumber(os.getenv("DRIVER_SEED") or "1"))

local function started(cfg)
  local f = assert(io.open(out .. "/starts.log", "a"))
  f:write("trial ", cfg._trial, "\n")
  f:close()
end

local cases = {}

-- a 3 x 2 grid; the score says which point ran
cases.grid = {space = {x = {1, 2, 3}, y = {"a", "b"}, fixed = 7}, strategy = "grid",
  run = function(cfg, report)
    started(cfg)
    assert(cfg.fixed == 7)
    return {score = cfg.x + (cfg.y == "b" and 10 or 0), draw = cnn.rand(1):item()}
  end}

-- random search over every kind of distribution; draw shows the trial's seeded generator
cases.random = {strategy = "random", trials = 6,
  space = {lr = cnn.sweep.log_uniform(1e-4, 1e-1), d = cnn.sweep.uniform(0, 0.5), n = cnn.sweep.int(1, 4),
           c = cnn.sweep.choice{"p", "q"}, b = {16, 32}},
  run = function(cfg, report)
    started(cfg)
    return {score = -math.abs(math.log(cfg.lr, 10) + 2) - cfg.d, draw = cnn.rand(1):item(),
            threads = cnn.get_num_threads()}
  end}

-- one way of failing per trial; x = 1 succeeds
cases.faults = {space = {x = {1, 2, 3, 4, 5, 6, 7}}, strategy = "grid",
  run = function(cfg, report)
    started(cfg)
    local x = cfg.x
    if x == 2 then error("boom in trial two") end
    if x == 3 then print("about to exit"); io.stdout:flush(); os.exit(3) end
    if x == 4 then return {score = 0 / 0} end
    if x == 5 then report(1, {score = 0 / 0}) end
    if x == 6 then os.execute("kill -SEGV $PPID"); os.execute("sleep 5") end
    if x == 7 then return {other = 1} end
    return {score = 1}
  end}

-- slow trials reporting as they go (the driver is killed in the middle of this one)
cases.slow = {space = {x = {1, 2, 3, 4, 5, 6}}, strategy = "grid",
  run = function(cfg, report)
    started(cfg)
    for epoch = 1, 4 do
      os.execute("sleep 0.04")
      report(epoch, {score = cfg.x * epoch})
    end
    return {score = cfg.x * 4}
  end}

-- ASHA with rungs at epochs 1 and 3 (eta 3, up to 9 epochs); the quality of a trial is x
cases.asha = {space = {x = {3, 9, 1, 8, 2, 7}}, strategy = "grid",
  scheduler = cnn.sweep.asha{min_resource = 1, eta = 3, max_resource = 9},
  run = function(cfg, report)
    started(cfg)
    local score
    for epoch = 1, 9 do
      score = cfg.x * epoch
      report(epoch, {score = score})
    end
    return {score = score}
  end}

local c = assert(cases[case], "unknown case " .. tostring(case))
local summary = cnn.sweep{space = c.space, strategy = c.strategy, trials = c.trials, scheduler = c.scheduler,
                          run = c.run, out = out, metric = "score", mode = "max", workers = workers, seed = 5,
                          timeout = tonumber(os.getenv("SWEEP_TIMEOUT") or ""), plot = os.getenv("SWEEP_PLOT") ~= nil,
                          quiet = os.getenv("SWEEP_QUIET") ~= nil}
-- only the driver gets here
local f = assert(io.open(out .. "/driver_done", "w"))
f:write(summary.best and summary.best.trial or "none", "\n")
f:close()
