-- cnn.sweep: search spaces, the trial processes, results that survive a killed driver, failing
-- trials, ASHA, the leaderboard and plots. The sweeps run tests/spec/sweep/objective.lua (cheap
-- synthetic objectives) as separate driver processes with the interpreter running these specs.
local cnn = require "cnn"
local sweep = require "cnn.sweep"
local space = require "cnn.sweep.space"
local json = require "cnn.sweep.json"
local asha = require "cnn.sweep.scheduler.asha"
local leaderboard = require "cnn.sweep.leaderboard"
local process = require "cnn.sweep.process"
local results = require "cnn.sweep.results"

local OBJECTIVE = "tests/spec/sweep/objective.lua"
local INTERPRETER = process.interpreter_argv()

local function tmpdir()
  local pipe = io.popen("mktemp -d")
  local dir = pipe:read("l")
  pipe:close()
  return dir
end

local function shell_words(list)
  local out = {}
  for i, w in ipairs(list) do out[i] = process.quote(w) end
  return table.concat(out, " ")
end

-- Runs the objective's driver: returns its output and whether it exited with status 0.
local function drive(case, out, workers, env)
  local prefix = ""
  for k, v in pairs(env or {}) do prefix = prefix .. k .. "=" .. process.quote(v) .. " " end
  local cmd = string.format("%senv %s %s %s %s %d 2>&1", prefix, shell_words(INTERPRETER), OBJECTIVE, case,
                            process.quote(out), workers or 2)
  local pipe = io.popen(cmd)
  local text = pipe:read("a")
  local ok = pipe:close()
  return text, ok
end

local function by_trial(dir)
  local records = sweep.load(dir)
  return records
end

local function starts(dir)
  local counts = {}
  local f = io.open(dir .. "/starts.log")
  if not f then return counts end
  for line in f:lines() do
    local t = tonumber(line:match("%d+"))
    counts[t] = (counts[t] or 0) + 1
  end
  f:close()
  return counts
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local scratch = {}
local function new_dir()
  local d = tmpdir()
  scratch[#scratch + 1] = d
  return d
end
teardown(function()
  for _, d in ipairs(scratch) do os.execute("rm -rf " .. process.quote(d)) end
end)

describe("sweep.space", function()
  it("enumerates a grid as a cartesian product, the first name varying slowest", function()
    local trials = space.trials({b = {1, 2}, a = {"x", "y", "z"}, c = 5}, "grid", nil, 0)
    assert.are.equal(6, #trials)
    local seen = {}
    for i, t in ipairs(trials) do
      assert.are.equal(i, t.trial)
      assert.are.equal(5, t.params.c)
      seen[#seen + 1] = t.params.a .. t.params.b
    end
    assert.are.same({"x1", "x2", "y1", "y2", "z1", "z2"}, seen)
  end)

  it("keeps the first grid points for a smaller budget and repeats the grid for a larger one", function()
    assert.are.equal(2, #space.trials({a = {1, 2, 3}}, "grid", 2, 0))
    local more = space.trials({a = {1, 2}, d = space.uniform(0, 1)}, "grid", 4, 0)
    assert.are.same({1, 2, 1, 2}, {more[1].params.a, more[2].params.a, more[3].params.a, more[4].params.a})
    assert.are_not.equal(more[1].params.d, more[3].params.d) -- fresh draws on the repeat
    assert.are_not.equal(more[1].seed, more[3].seed)
  end)

  it("draws every distribution within its bounds", function()
    local s = {u = space.uniform(-1, 2), l = space.log_uniform(1e-4, 1e-1), n = space.int(3, 5),
               c = space.choice{"p", "q"}, list = {10, 20}}
    local seen_int, seen_choice, below = {}, {}, 0
    for _, t in ipairs(space.trials(s, "random", 400, 11)) do
      local p = t.params
      assert.is_true(p.u >= -1 and p.u < 2)
      assert.is_true(p.l >= 1e-4 and p.l <= 1e-1)
      assert.are.equal("integer", math.type(p.n))
      seen_int[p.n] = true
      seen_choice[p.c] = true
      assert.is_true(p.list == 10 or p.list == 20)
      if p.l < 10 ^ -2.5 then below = below + 1 end
    end
    assert.are.same({[3] = true, [4] = true, [5] = true}, seen_int)
    assert.are.same({p = true, q = true}, seen_choice)
    -- log-uniform: half of the draws below the geometric middle of the range
    assert.is_true(below > 150 and below < 250, "below = " .. below)
  end)

  it("makes trial i a function of (seed, i) alone, apart from cnn.manual_seed", function()
    local s = {lr = space.log_uniform(1e-4, 1), b = {1, 2, 3}}
    cnn.manual_seed(1)
    local expected = cnn.rand(3):totable()
    cnn.manual_seed(1)
    local short = space.trials(s, "random", 3, 42)
    assert.are.same(expected, cnn.rand(3):totable()) -- the sampler left the generator alone
    cnn.manual_seed(999)
    local long = space.trials(s, "random", 10, 42)
    for i = 1, 3 do assert.are.same(short[i], long[i]) end
    assert.are_not.same(short[1].params, space.trials(s, "random", 1, 43)[1].params)
  end)

  it("rejects bad spaces and distributions with messages that say why", function()
    assert.has_error(function() space.uniform(1, 0) end, "sweep.uniform: low 1 is above high 0")
    assert.has_error(function() space.log_uniform(0, 1) end, "sweep.log_uniform: bounds must be positive, got 0")
    assert.has_error(function() space.int(1.5, 3) end, "sweep.int: bounds must be integers, got 1.5 and 3")
    assert.has_error(function() space.choice{} end,
                     "sweep.choice: expected a non-empty list of values, e.g. choice{32, 64, 128}")
    assert.has_error(function() space.check({x = {1, {}}}) end,
                     "space.x[2] is a table; values must be numbers, strings or booleans")
    assert.has_error(function() space.check({_x = {1}}) end,
                     "parameter name _x must be an identifier not starting with '_'")
  end)
end)

describe("sweep options", function()
  local function run() return 1 end
  it("are checked before anything runs", function()
    local base = {space = {x = {1}}, run = run, out = "unused", metric = "m"}
    local function with(k, v)
      local o = {}
      for kk, vv in pairs(base) do o[kk] = vv end
      o[k] = v
      return o
    end
    assert.has_error(function() sweep(with("typo", 1)) end, "sweep: unknown option 'typo'")
    assert.has_error(function() sweep(with("run", nil)) end,
                     "sweep: run must be a function(cfg, report) returning the metrics")
    assert.has_error(function() sweep(with("strategy", "bayes")) end,
                     "sweep: strategy must be \"grid\" or \"random\", got bayes")
    assert.has_error(function() sweep(with("strategy", "random")) end,
                     "sweep: random search needs a trial budget (trials = N)")
    assert.has_error(function() sweep(with("mode", "up")) end, "sweep: mode must be \"max\" or \"min\", got up")
    assert.has_error(function() sweep(with("space", {x = print})) end,
                     "sweep: space.x is a function; give a list of values, sweep.choice/uniform/log_uniform/int, or a constant")
    assert.has_error(function() sweep(with("scheduler", {})) end,
                     "sweep: scheduler must be made by cnn.sweep.asha{...}")
  end)

  it("point at the caller's line", function()
    local ok, err = pcall(function() sweep({}) end)
    assert.is_false(ok)
    assert.matches("sweep_spec.lua:%d+: sweep: run must be", err)
  end)
end)

describe("sweep.json", function()
  it("round-trips floats exactly and keeps integers integers", function()
    local v = {lr = 1 / 3, tiny = 1.2345678901234567e-300, n = 64, f = 2.0, s = "a\"b\n\1", t = true, l = {1, 2.5}}
    local back = json.decode(json.encode(v))
    assert.are.same(v, back)
    assert.are.equal("integer", math.type(back.n))
    assert.are.equal("float", math.type(back.f))
    assert.are.equal('{"a":1,"b":[true,false]}', json.encode({b = {true, false}, a = 1}))
    assert.are.equal("null", json.encode(0 / 0))
    assert.is_nil(json.try_decode('{"a":1'))
  end)
end)

describe("sweep.asha", function()
  it("places rungs at min_resource * eta^k below max_resource", function()
    assert.are.same({1, 3, 9}, asha.new{min_resource = 1, eta = 3}:milestones(20))
    assert.are.same({2, 4}, asha.new{min_resource = 2, eta = 2, max_resource = 8}:milestones(100))
  end)

  it("keeps the top 1/eta at a rung", function()
    local a = asha.new{eta = 3}
    assert.is_nil(a:cutoff({}, "max"))
    assert.is_true(math.abs(a:cutoff({1, 3, 9}, "max") - 5) < 1e-12) -- the 2/3 quantile
    assert.is_true(math.abs(a:cutoff({1, 3, 9}, "min") - (1 + 4 / 3)) < 1e-12) -- the 1/3 quantile
  end)

  it("rejects bad options", function()
    assert.has_error(function() asha.new{eta = 1} end, "sweep.asha: eta must be a number above 1")
    assert.has_error(function() asha.new{grace = 1} end,
                     "sweep.asha: unknown option 'grace' (min_resource, eta, max_resource)")
  end)
end)

describe("sweep.leaderboard", function()
  it("ranks completed trials by the metric, then stopped, then failed ones", function()
    local recs = {{trial = 1, status = "failed", message = "boom"}, {trial = 2, status = "ok", value = 0.5},
                  {trial = 3, status = "stopped", value = 0.9}, {trial = 4, status = "ok", value = 0.7}}
    local order = {}
    for i, r in ipairs(leaderboard.rank(recs, "max")) do order[i] = r.trial end
    assert.are.same({4, 2, 3, 1}, order)
    assert.are.equal(2, leaderboard.best(recs, "min").trial)
    local text = leaderboard.format(recs, {out = "d", metric = "acc", mode = "max"})
    assert.matches("4 trials finished: 2 ok, 1 stopped, 1 failed; best acc 0.7 %(trial 4, max%)", text)
    assert.matches("boom", text)
  end)
end)

describe("a sweep in this process (workers = 0)", function()
  it("runs every trial, catches errors and leaves the generator and threads alone", function()
    local out = new_dir() .. "/s"
    cnn.manual_seed(5)
    local expected = cnn.rand(2):totable()
    cnn.manual_seed(5)
    local threads = cnn.get_num_threads()
    local summary = sweep{space = {x = {1, 2, 3}}, workers = 0, out = out, metric = "loss", quiet = true,
                          plot = false, run = function(cfg, report)
                            report(1, {loss = cfg.x})
                            if cfg.x == 2 then error("two is bad") end
                            return {loss = cfg.x * 10}
                          end}
    assert.are.same(expected, cnn.rand(2):totable())
    assert.are.equal(threads, cnn.get_num_threads())
    assert.are.equal("min", summary.mode) -- a loss is minimized by default
    assert.are.equal(1, summary.best.trial)
    assert.are.equal(10, summary.best.value)
    assert.are.equal("failed", summary.trials[2].status)
    assert.matches("two is bad", summary.trials[2].message)
    assert.are.equal(3, #results.read_jsonl(out .. "/results.jsonl"))

    -- resuming runs nothing; retry_failed runs the failed trial again
    local calls = 0
    local function run(cfg)
      calls = calls + 1
      return {loss = cfg.x}
    end
    summary = sweep{space = {x = {1, 2, 3}}, workers = 0, out = out, metric = "loss", quiet = true, plot = false,
                    run = run}
    assert.are.equal(0, calls)
    summary = sweep{space = {x = {1, 2, 3}}, workers = 0, out = out, metric = "loss", quiet = true, plot = false,
                    run = run, retry_failed = true}
    assert.are.equal(1, calls)
    assert.are.equal("ok", summary.trials[2].status)
    assert.are.equal(2, summary.best.trial)
  end)
end)

describe("an interrupted cnn.fit inside a trial", function()
  it("is not recorded as a finished trial: the sweep stops and the trial runs again on resume", function()
    local out = new_dir()
    local nn = require "cnn.nn"
    local function run(cfg)
      cnn.manual_seed(1)
      local data = cnn.data.tensor_dataset(cnn.randn(64, 4), cnn.ones(64))
      local model = nn.Sequential {nn.Linear(4, 2)}
      local ctrl_c = {on_batch_end = function(b, logs)
        if cfg.x == 2 and logs.epoch == 2 and b == 1 then cnn._interrupt() end
      end}
      -- the module itself rather than the global cnn.fit: busted unloads the modules a spec file loaded,
      -- and under cnnlua the global cnn keeps the fit of an earlier file
      local fit = require("cnn.fit").fit
      local h = fit(model, cnn.data.loader(data, {batch_size = 16}), {epochs = 3, verbose = false, callbacks = ctrl_c})
      return {loss = h.loss[#h.loss]}
    end
    local ok, err = pcall(sweep, {space = {x = {1, 2, 3}}, workers = 0, out = out, metric = "loss", quiet = true,
                                  plot = false, run = run})
    assert.is_false(ok)
    assert.matches("interrupted", tostring(err))
    local recs = results.read_jsonl(out .. "/results.jsonl")
    assert.are.equal(1, #recs) -- trial 1 finished; trial 2 was interrupted, trial 3 never started
    assert.is_false(require("cnn.fit").raise_on_interrupt) -- put back
  end)
end)

describe("cnn.distributed without mpirun", function()
  local dist = require "cnn.distributed"
  local data = require "cnn.data"

  it("is one rank of one, and its collectives do nothing", function()
    assert.are.same({0, 1}, {dist.init()})
    assert.is_true(dist.is_main())
    local p = cnn.ones(2):requires_grad()
    p:sum():backward()
    dist.allreduce_grads({p})
    assert.are.same({1, 1}, p.grad:totable())
    assert.are.equal(5, dist.all_sum(5))
  end)

  it("gives each rank a contiguous slice of every batch, together the whole batch", function()
    for _, case in ipairs({{10, 3}, {12, 2}, {3, 3}}) do
      local n, size = case[1], case[2]
      local next_row = 1
      for r = 0, size - 1 do
        local first, count = dist.slice(n, r, size)
        assert.are.equal(next_row, first)
        assert.is_true(count == n // size or count == n // size + 1)
        next_row = first + count
      end
      assert.are.equal(n + 1, next_row)
    end
    local x = cnn.arange(0, 10):view(10, 1)
    local loader = data.loader(data.tensor_dataset(x, cnn.arange(1, 11)), {batch_size = 4, shuffle = true, seed = 2})
    local whole = {}
    for bx in loader:iter(1) do whole[#whole + 1] = bx:view(-1):totable() end
    local pieces = {}
    for r = 0, 2 do
      local shard = dist.shard(loader, r, 3)
      assert.are.equal(#loader, #shard)
      local b = 0
      for bx, by in shard:iter(1) do
        b = b + 1
        assert.are.equal(bx:size(1), by:size(1))
        pieces[b] = pieces[b] or {}
        for _, v in ipairs(bx:view(-1):totable()) do table.insert(pieces[b], v) end
      end
    end
    -- the last batch (2 samples) is smaller than the 3 ranks: skipped on all of them
    assert.are.same({whole[1], whole[2]}, pieces)
  end)

  it("deals whole batches out in turn for evaluation, every sample once", function()
    local x = cnn.arange(0, 10):view(10, 1)
    local loader = data.loader(data.tensor_dataset(x, cnn.arange(1, 11)), {batch_size = 3})
    local seen = {}
    for r = 0, 2 do
      local firsts = {}
      for bx in dist.deal_batches(loader, r, 3):iter() do
        firsts[#firsts + 1] = bx[1][1]
        for _, v in ipairs(bx:view(-1):totable()) do seen[#seen + 1] = v end
      end
      -- batches start at 0, 3, 6, 9: rank 0 takes the 1st and 4th, rank 1 the 2nd, rank 2 the 3rd
      assert.are.same(({{0, 9}, {3}, {6}})[r + 1], firsts)
    end
    table.sort(seen)
    assert.are.same(cnn.arange(0, 10):totable(), seen)
    assert.has_error(function() dist.deal_batches(7, 0, 2) end, "distributed.deal_batches: expected a cnn.data loader, got a number")
  end)

  it("sums lists and returns the sample count as one process", function()
    assert.are.same({1.5, 2}, dist.all_sum_list({1.5, 2}))
    local p = cnn.ones(2):requires_grad()
    p:sum():backward()
    assert.are.equal(7, dist.allreduce_grads({p}, 7))
  end)

  it("splits a dataset into every size-th example", function()
    local ds = data.tensor_dataset(cnn.arange(0, 7):view(7, 1))
    assert.are.same({3, 2, 2}, {#dist.shard(ds, 0, 3), #dist.shard(ds, 1, 3), #dist.shard(ds, 2, 3)})
    assert.has_error(function() dist.shard(42) end, "distributed.shard: expected a cnn.data loader or dataset, got a number")
  end)

  it("has an MPI module that refuses to work before init", function()
    local mpi = dist.mpi()
    if not mpi then return end -- built only where MPI is installed; tests/mpi covers it under mpirun
    assert.is_false(mpi.initialized())
    assert.has_error(function() mpi.rank() end, "mpi.rank: call mpi.init() first")
    assert.has_error(function() mpi.allreduce(cnn.ones(2)) end, "mpi.allreduce: call mpi.init() first")
  end)
end)

describe("a sweep of trial processes", function()
  it("runs a grid with 2 workers, one process per trial, and reports the best", function()
    local out = new_dir()
    local text, ok = drive("grid", out, 2, {SWEEP_PLOT = "1"})
    assert.is_true(ok, text)
    local recs = by_trial(out)
    for t = 1, 6 do
      assert.are.equal("ok", recs[t].status)
      assert.are.equal(1, starts(out)[t])
      local dir = results.trial_dir(out, t)
      for _, f in ipairs({"config.json", "log", "result.json"}) do assert.is_true(exists(dir .. "/" .. f), f) end
    end
    assert.are.equal(13, recs[6].value)
    assert.are.equal("6\n", results.read_file(out .. "/driver_done"))
    assert.matches("best score 13 %(trial 6, max%)", text)
    -- the leaderboard is printed by the driver only, never in a trial's log
    assert.is_nil(results.read_file(results.trial_dir(out, 1) .. "/log"):find("best score"))
    for _, param in ipairs({"x", "y"}) do
      assert.are.equal("\137PNG", results.read_file(out .. "/plot_" .. param .. ".png"):sub(1, 4))
    end
    assert.is_false(exists(out .. "/plot_fixed.png")) -- constants are not plotted
  end)

  it("records each trial's seed so that sweep.rerun reproduces it exactly", function()
    local out1, out2 = new_dir(), new_dir()
    local text, ok = drive("random", out1, 2, {DRIVER_SEED = "1"})
    assert.is_true(ok, text)
    text, ok = drive("random", out2, 1, {DRIVER_SEED = "2"})
    assert.is_true(ok, text)
    local a, b = by_trial(out1), by_trial(out2)
    local _, all_cores = process.cores()
    for t = 1, 6 do
      -- same configurations and training seeds whatever the driver's own seed and worker count
      assert.are.same(a[t].params, b[t].params)
      assert.are.equal(a[t].seed, b[t].seed)
      assert.are.equal(a[t].metrics.draw, b[t].metrics.draw)
      assert.is_true(a[t].metrics.threads * 2 <= math.max(2, all_cores))
    end
    local threads = cnn.get_num_threads()
    local rec = sweep.rerun(out1, 3, function(cfg)
      return {score = -math.abs(math.log(cfg.lr, 10) + 2) - cfg.d, draw = cnn.rand(1):item()}
    end)
    assert.are.equal(threads, cnn.get_num_threads())
    assert.are.equal("ok", rec.status)
    assert.are.equal(a[3].metrics.draw, rec.metrics.draw)
    assert.are.equal(a[3].value, rec.value)
    assert.are.same(a[3].params, sweep.config(out1, 3).params)
  end)

  it("marks crashing, erroring and NaN trials failed with a message and goes on", function()
    local out = new_dir()
    local text, ok = drive("faults", out, 2)
    assert.is_true(ok, text)
    local recs = by_trial(out)
    assert.are.equal("ok", recs[1].status)
    local expected = {
      [2] = "boom in trial two",
      [3] = "exited with status 3 without a result; last output: about to exit",
      [4] = "^score is nan$",
      [5] = "report: score is nan at epoch 1",
      [6] = "killed by signal 11 %(segmentation fault%)",
      [7] = "run returned no 'score'",
    }
    for t, message in pairs(expected) do
      assert.are.equal("failed", recs[t].status)
      assert.matches(message, recs[t].message)
    end
    assert.matches("1 ok, 0 stopped, 6 failed", text)
    -- a sweep that is complete runs nothing more, and failed trials count as finished
    text, ok = drive("faults", out, 2)
    assert.is_true(ok, text)
    assert.matches("7 finished before, 0 to run", text)
  end)

  it("resumes after the driver is killed: finished trials are skipped, interrupted ones re-run", function()
    local out = new_dir()
    local cmd = string.format("env SWEEP_QUIET=1 %s %s slow %s 2 >/dev/null 2>&1 & echo $!", shell_words(INTERPRETER),
                              OBJECTIVE, process.quote(out))
    local pipe = io.popen(cmd)
    local pid = tonumber(pipe:read("l"))
    pipe:close()
    local finished = 0
    for _ = 1, 200 do
      finished = #results.read_jsonl(out .. "/results.jsonl")
      if finished >= 2 then break end
      process.sleep(0.02)
    end
    os.execute("kill -9 " .. pid)
    assert.is_true(finished >= 2 and finished < 6, "finished " .. finished)
    local done_before = by_trial(out)

    local text, ok = drive("slow", out, 2)
    assert.is_true(ok, text)
    local recs, counts = by_trial(out), starts(out)
    for t = 1, 6 do
      assert.are.equal("ok", recs[t].status)
      assert.are.equal(t * 4, recs[t].value)
      if done_before[t] then assert.are.equal(1, counts[t], "trial " .. t .. " ran again") end
    end
    assert.are.equal(6, #results.read_jsonl(out .. "/results.jsonl"))
  end)

  it("on Ctrl-C stops its trials, unlocks the directory and says how to resume", function()
    if not os.execute("command -v setsid >/dev/null 2>&1") then return end
    local out = new_dir()
    -- the driver in a process group of its own, so that the SIGINT a terminal would send reaches
    -- exactly what Ctrl-C reaches
    local cmd = string.format("setsid env %s %s slow %s 2 >%s/driver.out 2>&1 & echo $!", shell_words(INTERPRETER),
                              OBJECTIVE, process.quote(out), process.quote(out))
    local pipe = io.popen(cmd)
    local pid = math.tointeger(tonumber(pipe:read("l")))
    pipe:close()
    for _ = 1, 200 do
      if #results.read_jsonl(out .. "/results.jsonl") >= 1 then break end
      process.sleep(0.02)
    end
    os.execute("kill -INT -" .. pid) -- the whole process group, as a terminal does
    for _ = 1, 100 do
      if not process.alive(pid) then break end
      process.sleep(0.02)
    end
    assert.is_false(process.alive(pid))
    assert.matches("sweep: interrupted; run the sweep again to resume", results.read_file(out .. "/driver.out"))
    assert.is_false(exists(out .. "/driver.lock"))
    process.sleep(0.3)
    for t = 1, 6 do
      local f = io.open(string.format("%s/pid.%d", results.trial_dir(out, t), pid))
      if f then
        local trial_pid = math.tointeger(tonumber(f:read("a")))
        f:close()
        assert.is_false(process.alive(trial_pid), "trial " .. t .. " still runs")
      end
    end
    local before = by_trial(out)
    local text, ok = drive("slow", out, 2)
    assert.is_true(ok, text)
    local counts = starts(out)
    for t = 1, 6 do
      assert.are.equal("ok", by_trial(out)[t].status)
      if before[t] then assert.are.equal(1, counts[t]) end
    end
  end)

  it("stops weak trials with ASHA and says so on the leaderboard", function()
    local out = new_dir()
    local text, ok = drive("asha", out, 1)
    assert.is_true(ok, text)
    local recs = by_trial(out)
    -- x = 3, 9, 1, 8, 2, 7 in this order: 1 and 2 fall below the first rung, 7 below the second
    local expected = {"ok", "ok", "stopped", "ok", "stopped", "stopped"}
    local epochs = {9, 9, 1, 9, 1, 3}
    for t = 1, 6 do
      assert.are.equal(expected[t], recs[t].status, "trial " .. t)
      assert.are.equal(epochs[t], recs[t].epochs, "trial " .. t)
    end
    assert.matches("stopped at epoch 3 %(rung 3: score 21, needed >= 25%)", recs[6].message)
    local shown = sweep.show(out, {quiet = true})
    assert.matches("3 ok, 3 stopped, 0 failed", shown.leaderboard)
    assert.matches("stopped at epoch 1", shown.leaderboard)
    assert.are.equal(2, shown.best.trial)
  end)

  it("fails a trial that runs past the timeout", function()
    local out = new_dir()
    local text, ok = drive("slow", out, 2, {SWEEP_TIMEOUT = "0.08", SWEEP_QUIET = "1"})
    assert.is_true(ok, text)
    local recs = by_trial(out)
    assert.are.equal("failed", recs[1].status)
    assert.matches("timed out after 0.08 s", recs[1].message)
  end)

  it("refuses a directory that holds a different sweep", function()
    local out = new_dir()
    assert.is_true(select(2, drive("grid", out, 2, {SWEEP_QUIET = "1"})))
    local text, ok = drive("asha", out, 1)
    assert.is_falsy(ok)
    assert.matches("holds a different sweep", text)
  end)
end)
