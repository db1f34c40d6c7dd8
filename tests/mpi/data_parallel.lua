-- Data-parallel training under mpirun: the ranks' averaged gradients and weights match one process
-- training on the whole global batch. Run by tests/mpi/run.sh with 2 and 3 ranks; prints
-- "PASS name" / "FAIL name: why" on rank 0.
local cnn = require "cnn"
local dist = require "cnn.distributed"
local rank, size = dist.init()
assert(size > 1, "run this under mpirun with at least 2 ranks")

local failures, results = 0, {}
local function check(name, ok, why)
  -- a test passes only when it passes on every rank
  local bad = dist.all_sum(ok and 0 or 1)
  name = string.format("%s (%d ranks)", name, size)
  if rank == 0 then results[#results + 1] = bad == 0 and ("PASS " .. name) or ("FAIL " .. name .. ": " .. tostring(why)) end
  if bad ~= 0 then failures = failures + 1 end
end

local function max_diff(a, b)
  return (a - b):abs():max():item()
end

-- A two-layer classifier made of cnn ops: 5 -> 8 -> 3.
local function new_params(seed)
  cnn.manual_seed(seed)
  return {cnn.randn(8, 5) * 0.5, cnn.zeros(8), cnn.randn(3, 8) * 0.5, cnn.zeros(3)}
end
local function leaf(params)
  for i, p in ipairs(params) do params[i] = p:detach():requires_grad() end
  return params
end
local function forward(p, x)
  return cnn.linear(cnn.linear(x, p[1], p[2]):tanh(), p[3], p[4])
end
local function clone_params(params)
  local out = {}
  for i, p in ipairs(params) do out[i] = p:detach():clone():requires_grad() end
  return out
end

-- every rank makes the same data
cnn.manual_seed(7)
local B = 12
local X = cnn.randn(B, 5)
local Y = cnn.tensor{1, 2, 3, 1, 2, 3, 3, 2, 1, 1, 2, 3}

-- 1. broadcast: ranks seeded differently start from rank 0's weights
local params = leaf(new_params(100 + rank))
dist.broadcast_params(params)
local reference0 = leaf(new_params(100))
local worst = 0
for i = 1, #params do worst = math.max(worst, max_diff(params[i], reference0[i])) end
check("broadcast_params gives every rank rank 0's weights", worst == 0, "max difference " .. worst)

-- 2. one step: the averaged gradient of this rank's slice equals the whole batch's gradient
local function full_batch_grads(p, x, y)
  local q = clone_params(p)
  cnn.cross_entropy(forward(q, x), y):backward()
  local g = {}
  for i = 1, #q do g[i] = q[i].grad end
  return g
end
local function sharded_grads(p, x, y, weighted)
  local first, count = dist.slice(x:size(1), rank, size)
  local q = clone_params(p)
  cnn.cross_entropy(forward(q, x:narrow(1, first, count)), y:narrow(1, first, count)):backward()
  dist.allreduce_grads(q, weighted and count or nil)
  local g = {}
  for i = 1, #q do g[i] = q[i].grad end
  return g
end
local function compare(name, a, b)
  local w = 0
  for i = 1, #a do w = math.max(w, max_diff(a[i], b[i])) end
  check(name, w < 1e-5, "max gradient difference " .. w)
end
if B % size == 0 then
  compare("allreduce_grads (mean) matches the global batch", full_batch_grads(params, X, Y),
          sharded_grads(params, X, Y, false))
end
-- an uneven split (10 samples over the ranks) stays exact with the sample-weighted average
local X10, Y10 = X:narrow(1, 1, 10), Y:narrow(1, 1, 10)
compare("allreduce_grads (weighted) matches an uneven global batch", full_batch_grads(params, X10, Y10),
        sharded_grads(params, X10, Y10, true))

-- 3. a few epochs of SGD through a sharded loader end with the single-process weights
local data = require "cnn.data"
local ds = data.tensor_dataset(X, Y)
local function train(p, loader, distributed)
  for _ = 1, 3 do
    for x, y in loader do
      for _, t in ipairs(p) do t.grad = nil end
      cnn.cross_entropy(forward(p, x), y):backward()
      if distributed then dist.allreduce_grads(p, x:size(1)) end
      cnn.no_grad(function()
        for _, t in ipairs(p) do t:copy(t - t.grad * 0.5) end
      end)
    end
  end
  return p
end
local single = train(clone_params(params), data.loader(ds, {batch_size = 6, shuffle = true, seed = 3}), false)
local sharded_loader = dist.shard(data.loader(ds, {batch_size = 6, shuffle = true, seed = 3}))
local parallel = train(clone_params(params), sharded_loader, true)
local w = 0
for i = 1, #single do w = math.max(w, max_diff(single[i], parallel[i])) end
check("3 epochs of sharded SGD match one process", w < 1e-5, "max weight difference " .. w)
check("a sharded loader has the loader's batch count", #sharded_loader == 2, "#loader " .. #sharded_loader)

-- 4. shard of a dataset: every example on exactly one rank
local part = dist.shard(ds)
local total = dist.all_sum(#part)
check("shard(dataset) splits the examples", total == B, "total " .. total)

-- 5. text goes from rank 0 to all (the others pass nothing)
local mpi = dist.mpi()
local text = mpi.broadcast(rank == 0 and "config from rank 0" or nil)
check("broadcast of text", text == "config from rank 0", text)

-- scale weights each rank's values before the sum, for one tensor and for several
local one, pair = cnn.full({3}, rank + 1), {cnn.full({2}, rank + 1), cnn.full({4}, 2 * (rank + 1))}
mpi.allreduce(one, "sum", 0.5)
mpi.allreduce(pair, "sum", 0.5)
local expected = size * (size + 1) / 4 -- 0.5 * (1 + 2 + ... + size)
check("allreduce with scale weights every rank's values",
      one[1] == expected and pair[1][2] == expected and pair[2][4] == 2 * expected,
      string.format("%g %g %g, expected %g", one[1], pair[1][2], pair[2][4], expected))

-- 6. errors name the problem instead of hanging or crashing
local ok, err = pcall(mpi.allreduce, cnn.randn(3, 4):transpose(1, 2))
check("allreduce refuses a non-contiguous tensor", not ok and tostring(err):match("not contiguous"), err)
ok, err = pcall(mpi.allreduce, cnn.zeros(rank + 1))
check("allreduce refuses tensors of different sizes on different ranks",
      not ok and tostring(err):match("different sizes"), err)
ok, err = pcall(mpi.send, size + 5, "x")
check("send names a rank out of range", not ok and tostring(err):match("out of range"), err)

if rank == 0 then
  for _, line in ipairs(results) do print(line) end
end
dist.barrier()
os.exit(failures == 0 and 0 or 1, true)
