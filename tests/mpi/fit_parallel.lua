-- cnn.fit{distributed=true} under mpirun: training sharded over the ranks ends with the weights and
-- the history of one process training on the same global batches; resume works across ranks; a NaN
-- on one rank stops every rank. Run by tests/mpi/run.sh with 2 and 3 ranks:
--   mpirun -np N cnnlua tests/mpi/fit_parallel.lua SHARED_DIR
-- Prints "PASS name" / "FAIL name: why" on rank 0.
local cnn = require "cnn"
local nn = require "cnn.nn"
local data = require "cnn.data"
local dist = require "cnn.distributed"
local rank, size = dist.init()
assert(size > 1, "run this under mpirun with at least 2 ranks")
local shared = assert(arg[1], "usage: fit_parallel.lua SHARED_DIR")

local failures, results = 0, {}
local function check(name, ok, why)
  local bad = dist.all_sum(ok and 0 or 1) -- passes only when it passes on every rank
  name = string.format("%s (%d ranks)", name, size)
  if rank == 0 then results[#results + 1] = bad == 0 and ("PASS " .. name) or ("FAIL " .. name .. ": " .. tostring(why)) end
  if bad ~= 0 then failures = failures + 1 end
end

-- 60 images 1x8x8 in 3 classes, the same on every rank
cnn.manual_seed(11)
local X = cnn.randn(60, 1, 8, 8)
local labels = {}
for i = 1, 60 do labels[i] = (i * 7) % 3 + 1 end
local Y = cnn.tensor(labels)
local train_set = data.tensor_dataset(X:narrow(1, 1, 50), Y:narrow(1, 1, 50))
local val_set = data.tensor_dataset(X:narrow(1, 51, 10), Y:narrow(1, 51, 10))

local function new_model(seed)
  cnn.manual_seed(seed)
  return nn.Sequential {
    nn.Conv2d(1, 4, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64, 3),
  }
end

-- 50 samples in batches of 13: 13, 13, 13, 11 -- uneven slices over 2 and 3 ranks
local function run(model, options)
  local loader = data.loader(train_set, {batch_size = 13, shuffle = true, seed = 5})
  local val = data.loader(val_set, {batch_size = 3})
  local opt = cnn.optim.SGD(model:parameters(), {lr = 0.05, momentum = 0.9})
  local o = {epochs = 3, optimizer = opt, val = val, progress = "none"}
  for k, v in pairs(options or {}) do o[k] = v end
  return cnn.fit(model, loader, o)
end

local function max_weight_diff(a, b)
  local pa, pb, w = a:parameters(), b:parameters(), 0
  for i = 1, #pa do w = math.max(w, (pa[i] - pb[i]):abs():max():item()) end
  return w
end

local function max_history_diff(a, b, keys)
  local w = 0
  for _, k in ipairs(keys) do
    for e = 1, #a[k] do w = math.max(w, math.abs(a[k][e] - b[k][e])) end
  end
  return w
end

local keys = {"loss", "accuracy", "val_loss", "val_accuracy"}

-- 1. the same run with and without distribution; ranks start from different seeds
local single_model = new_model(100)
local single = run(single_model)
local parallel_model = new_model(100 + rank)
local parallel = run(parallel_model, {distributed = true})
local w = max_weight_diff(single_model, parallel_model)
check("fit distributed ends with one process's weights", w < 1e-5, "max weight difference " .. w)
local h = max_history_diff(single, parallel, keys)
check("fit distributed reports one process's losses and accuracies", h < 1e-5, "max history difference " .. h)

-- 2. stopped after epoch 1 and resumed to 3 from a shared checkpoint: the same weights again
local dir = shared .. "/resume"
local resumed_model = new_model(100 + rank)
run(resumed_model, {distributed = true, epochs = 1, checkpoint = dir})
local resumed = run(resumed_model, {distributed = true, checkpoint = dir, resume = true})
w = max_weight_diff(single_model, resumed_model)
check("fit distributed resumes from rank 0's checkpoint", w < 1e-5 and #resumed.loss == 3,
      string.format("max weight difference %g, %d epochs of history", w, #resumed.loss))
local f = io.open(dir .. "/last.safetensors", "rb")
check("rank 0 writes the checkpoint", f ~= nil, "no " .. dir .. "/last.safetensors")
if f then f:close() end

-- 3. a NaN loss on one rank stops every rank at the same batch, with the usual message
local function nan_on_last_rank(out, y)
  local l = cnn.cross_entropy(out, y)
  if rank == size - 1 then return l * (0 / 0) end
  return l
end
local ok, err = pcall(run, new_model(300), {distributed = true, loss = nan_on_last_rank})
check("a NaN on one rank stops every rank", not ok and tostring(err):find("loss is nan at epoch 1, batch 1", 1, true),
      tostring(err))

-- 4. a loader that cannot be sharded is refused on every rank
ok, err = pcall(cnn.fit, new_model(400), function() return nil end, {distributed = true, progress = "none"})
check("distributed=true refuses a plain iterator", not ok and tostring(err):find("needs a cnn.data loader", 1, true),
      tostring(err))

if rank == 0 then
  for _, line in ipairs(results) do print(line) end
end
dist.barrier()
os.exit(failures == 0 and 0 or 1, true)
