-- worker.lua - the cnnlua side of one benchmark line, driven by bench/run.py over stdin/stdout.
--
--   cnnlua bench/worker.lua model lenet|vgg|resnet18|fashion
--   cnnlua bench/worker.lua op conv N C H W O KH KW STRIDE PAD GROUPS
--   cnnlua bench/worker.lua op maxpool N C H W K STRIDE | op batchnorm N C H W | op linear N IN OUT
--   cnnlua bench/worker.lua op relu N C H W
--
-- It answers "ready" once the workload is built, then reads one command per line:
--   time train STEPS   runs STEPS training steps (forward, loss, backward, optimizer step; for an op:
--                      forward and backward) and answers the seconds they took
--   time infer STEPS   the same with forward passes only, in evaluation mode without a graph
--   rss                answers the process's peak resident set in kB
--   quit
-- The inputs are fixed random tensors: the benchmark measures computation, not data loading.
-- With BENCH_CPU_TIME=1 in the environment, times are the process's CPU seconds instead of wall-clock
-- seconds (steadier on a busy machine when the work runs on one thread).
local cnn = rawget(_G, "cnn") or require "cnn"
local nn = cnn.nn

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local models = dofile(here .. "/models.lua")

local function int_args(first)
  local v = {}
  for i = first, #arg do v[#v + 1] = math.tointeger(tonumber(arg[i])) or error("not an integer: " .. arg[i]) end
  return v
end

-- Each workload provides train(steps) and infer(steps).
local function model_workload(name)
  local spec = assert(models[name], "unknown model " .. name)()
  local model = spec.model
  local c, h, w = table.unpack(spec.input)
  cnn.manual_seed(1)
  local x = cnn.randn(spec.batch, c, h, w)
  local labels = {}
  for i = 1, spec.batch do labels[i] = (i - 1) % spec.classes + 1 end
  local y = cnn.tensor(labels)
  model:build {c, h, w}
  local opt = spec.optimizer(model:parameters())
  local criterion = nn.CrossEntropyLoss()
  local wl = {}
  function wl.train(steps)
    model:train()
    for _ = 1, steps do
      opt:zero_grad()
      local loss = criterion(model(x), y)
      loss:backward()
      opt:step()
    end
  end
  function wl.infer(steps)
    model:eval()
    cnn.no_grad(function()
      for _ = 1, steps do model(x) end
    end)
  end
  return wl
end

-- op: a forward function of one input with parameters; train = forward + backward of sum(output * g)
-- for a fixed random g, which gives the op a dense output gradient as in a network.
local function op_workload(kind)
  local v = int_args(3)
  cnn.manual_seed(1)
  local x, params, forward
  if kind == "conv" then
    local N, C, H, W, O, KH, KW, S, P, G = table.unpack(v)
    x = cnn.randn(N, C, H, W)
    local wt, b = cnn.randn(O, C // G, KH, KW) * 0.1, cnn.randn(O)
    params = {wt, b}
    forward = function(t) return cnn.conv2d(t, wt, b, {stride = S, padding = P, groups = G}) end
  elseif kind == "maxpool" then
    local N, C, H, W, K, S = table.unpack(v)
    x = cnn.randn(N, C, H, W)
    forward = function(t) return cnn.max_pool2d(t, K, {stride = S}) end
  elseif kind == "batchnorm" then
    local N, C, H, W = table.unpack(v)
    x = cnn.randn(N, C, H, W)
    local rm, rv, g, b = cnn.zeros(C), cnn.ones(C), cnn.ones(C), cnn.zeros(C)
    params = {g, b}
    local training = true
    forward = function(t) return cnn.batch_norm(t, rm, rv, g, b, {training = training}) end
  elseif kind == "linear" then
    local N, IN, OUT = table.unpack(v)
    x = cnn.randn(N, IN)
    local wt, b = cnn.randn(OUT, IN) * 0.05, cnn.randn(OUT)
    params = {wt, b}
    forward = function(t) return cnn.linear(t, wt, b) end
  elseif kind == "relu" then
    local N, C, H, W = table.unpack(v)
    x = cnn.randn(N, C, H, W)
    forward = function(t) return t:relu() end
  else
    error("unknown op " .. tostring(kind))
  end
  x:requires_grad()
  for _, p in ipairs(params or {}) do p:requires_grad() end
  local g = cnn.no_grad(function() return cnn.randn(table.unpack(forward(x):shape())) end)
  local wl = {}
  function wl.train(steps)
    for _ = 1, steps do
      x.grad = nil
      for _, p in ipairs(params or {}) do p.grad = nil end
      local out = forward(x)
      out:backward(g)
    end
  end
  function wl.infer(steps)
    cnn.no_grad(function()
      for _ = 1, steps do forward(x) end
    end)
  end
  return wl
end

local function peak_rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")) or 0
end

local cpu_time = os.getenv("BENCH_CPU_TIME") == "1"
local workload = arg[1] == "model" and model_workload(arg[2]) or op_workload(arg[2])
io.write("ready\n")
io.flush()
for line in io.lines() do
  local cmd, a, b = line:match("^(%S+)%s*(%S*)%s*(%S*)")
  if cmd == "time" then
    local steps = math.tointeger(tonumber(b))
    local timer, cpu0 = cnn.timer(), os.clock()
    workload[a](steps)
    io.write(string.format("%.6f\n", cpu_time and os.clock() - cpu0 or timer:elapsed()))
  elseif cmd == "rss" then
    io.write(string.format("%d\n", peak_rss_kb()))
  elseif cmd == "quit" then
    break
  else
    io.write("error: unknown command " .. line .. "\n")
  end
  io.flush()
end
