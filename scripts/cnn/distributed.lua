-- cnn.distributed - data-parallel training over MPI ranks (mpirun -np N cnnlua train.lua).
--
-- Every rank holds the whole model. Each global batch of B samples is split across the ranks; each
-- rank computes the gradients of its part, the gradients are averaged over the ranks, and every
-- rank takes the same optimizer step, so the ranks stay identical and the run follows single-process
-- training with batch B (to float rounding: the sums happen in another order).
--
--   local dist = require "cnn.distributed"
--   dist.init()                                  -- rank, size (1 process without mpirun works too)
--   dist.broadcast_params(model:parameters())    -- start from rank 0's weights
--   for x, y in dist.shard(loader) do            -- this rank's slice of every global batch
--     opt:zero_grad()
--     local loss = crit(model(x), y)
--     loss:backward()
--     dist.allreduce_grads(model:parameters(), x:size(1))   -- average, weighted by slice sizes
--     opt:step()
--   end
--
-- Ranks are MPI's own numbers, 0 .. size-1 (what mpirun and its environment say), not 1-based.
-- Without mpirun every function works as the one-process case (rank 0 of 1), so the same script
-- runs on a laptop.
local cnn = require "cnn"

local distributed = {}

-- ---- the MPI module ------------------------------------------------------------------------------
-- cnn.mpi is built only where MPI is installed. Under a stock lua5.4 it is found on LUA_CPATH like
-- cnn.core; the cnnlua program also looks next to itself (build/lua/cnn/mpi.so), since it carries
-- the core inside and needs no LUA_CPATH.
local function exe_dir()
  local pipe = io.popen("readlink /proc/$PPID/exe 2>/dev/null", "r")
  if not pipe then return nil end
  local path = pipe:read("l")
  pipe:close()
  return path and path:match("^(.*)/[^/]*$")
end

local mpi_module, mpi_error
function distributed.mpi()
  if mpi_module then return mpi_module end
  local ok, mod = pcall(require, "cnn.mpi")
  if ok then
    mpi_module = mod
    return mod
  end
  mpi_error = mod
  local dir = exe_dir()
  if dir then
    local open = package.loadlib(dir .. "/lua/cnn/mpi.so", "luaopen_cnn_mpi")
    if open then
      mpi_module = open()
      package.loaded["cnn.mpi"] = mpi_module
      return mpi_module
    end
  end
  return nil, mpi_error
end

-- The number of ranks mpirun started, from the environment it gives every rank (Open MPI, MPICH),
-- or nil outside mpirun. Nothing is initialized.
function distributed.world_size()
  return math.tointeger(tonumber(os.getenv("OMPI_COMM_WORLD_SIZE") or os.getenv("PMI_SIZE") or ""))
end

-- Ranks sharing this machine (to split its cores between them).
function distributed.local_size()
  return math.tointeger(tonumber(os.getenv("OMPI_COMM_WORLD_LOCAL_SIZE") or os.getenv("MPI_LOCALNRANKS") or "")) or 1
end

local active -- the MPI module once initialized with more than one rank

-- Starts MPI when running under mpirun; returns rank, size (0, 1 without mpirun). Ranks sharing a
-- machine get at most their share of its cores as threads.
function distributed.init()
  if active then return active.rank(), active.size() end
  local world = distributed.world_size()
  if not world or world < 2 then return 0, 1 end
  local mpi, err = distributed.mpi()
  if not mpi then
    error("distributed: running under mpirun but the cnn.mpi module is missing (install libopenmpi-dev " ..
          "and rebuild with make): " .. tostring(err), 2)
  end
  mpi.init()
  active = mpi
  -- ranks on one machine share its cores: more threads than cores would stall every barrier
  local usable = require("cnn.sweep.process").cores()
  local fair = math.max(1, usable // distributed.local_size())
  if cnn.get_num_threads() > fair then cnn.set_num_threads(fair) end
  return mpi.rank(), mpi.size()
end

function distributed.rank()
  return active and active.rank() or 0
end

function distributed.size()
  return active and active.size() or 1
end

function distributed.is_main()
  return distributed.rank() == 0
end

function distributed.barrier()
  if active then active.barrier() end
end

-- ---- parameters and gradients ----------------------------------------------------------------
local function tensors_of(params, field)
  local list = {}
  for _, p in ipairs(params) do
    local t = field and p[field] or p
    if t ~= nil then list[#list + 1] = t end
  end
  return list
end

-- Gives every rank rank root's parameter values (call once after building the model, so that
-- differently seeded ranks start from the same weights).
function distributed.broadcast_params(params, root)
  if not active then return end
  active.broadcast(tensors_of(params), root or 0)
end

-- Averages the gradients of params over the ranks, in place, in one message. With count (the
-- number of samples this rank's gradients were computed on), the average is weighted by it, which
-- keeps an uneven last batch exact: the result is the gradient of the mean loss over all samples.
-- Every rank must call it with the same parameters, all holding a gradient (or none of them).
-- Returns the number of samples over all ranks (count alone without mpirun, nil without count).
function distributed.allreduce_grads(params, count)
  if not active then return count end
  local grads = tensors_of(params, "grad")
  if count == nil then
    active.allreduce(grads, "mean")
    return nil
  end
  local total = active.allreduce(count, "sum")
  active.allreduce(grads, "sum", count / total)
  return total
end

-- The sum of a number over the ranks (counts, summed losses), or the mean with op "mean".
function distributed.all_sum(x)
  if not active then return x end
  return active.allreduce(x, "sum")
end

-- Element-wise sums of a list of numbers over the ranks, in one message (float32: for counts and
-- sums of per-batch losses and metrics, not for values needing double precision).
function distributed.all_sum_list(values)
  if not active or #values == 0 then return values end
  local t = cnn.tensor(values)
  active.allreduce(t, "sum")
  local out = {}
  for i = 1, #values do out[i] = t[i] end
  return out
end

function distributed.all_mean(x)
  if not active then return x end
  return active.allreduce(x, "mean")
end

-- ---- data ---------------------------------------------------------------------------------------
-- This rank's share of a dataset (cnn.data datasets: every size-th example starting at rank + 1),
-- or this rank's slice of every batch of a loader.
--
-- A sharded loader serves the same global batches as the loader (same shuffling on every rank)
-- and gives each rank a contiguous slice of each, sizes differing by at most one, so that averaging
-- the gradients with allreduce_grads(params, x:size(1)) reproduces one process training on the
-- whole batch. A batch with fewer samples than ranks is skipped on every rank (a rank with nothing
-- to compute could not take part in the average).
function distributed.shard(source, rank, size)
  rank, size = rank or distributed.rank(), size or distributed.size()
  if type(source) == "table" and source.dataset ~= nil and source.iter ~= nil then
    return distributed.shard_loader(source, rank, size)
  end
  if type(source) == "table" and source.subset then
    local indices = {}
    for i = rank + 1, #source, size do indices[#indices + 1] = i end
    return source:subset(indices)
  end
  error("distributed.shard: expected a cnn.data loader or dataset, got a " .. type(source), 2)
end

-- A class whose objects wrap a loader: what the class lacks (batch_size, dataset, ...) is the
-- wrapped loader's.
local function loader_wrapper()
  local class = {}
  class.__index = function(self, key)
    local own = rawget(class, key)
    if own ~= nil then return own end
    return self.loader[key]
  end
  return class
end

local Sharded = loader_wrapper()

-- The rows of a batch of n that rank takes: first, count.
function distributed.slice(n, rank, size)
  local base, extra = n // size, n % size
  local first = rank * base + math.min(rank, extra) + 1
  return first, base + (rank < extra and 1 or 0)
end

function distributed.shard_loader(loader, rank, size)
  return setmetatable({loader = loader, rank = rank, size = size}, Sharded)
end

function Sharded:__len()
  return #self.loader
end

function Sharded:set_epoch(e)
  self.loader:set_epoch(e)
end

function Sharded:iter(e, skip)
  local batches = self.loader:iter(e, skip)
  local rank, size = self.rank, self.size
  return function()
    while true do
      local x, y = batches()
      if x == nil then return nil end
      local n = x:size(1)
      if n >= size then
        local first, count = distributed.slice(n, rank, size)
        return x:narrow(1, first, count), y ~= nil and y:narrow(1, first, count) or nil
      end
    end
  end
end

-- Whole batches dealt out in turn: rank r takes batches r+1, r+1+size, ... (for evaluation, where
-- no gradient is averaged and every sample counts once, however small the last batch).
local Dealt = loader_wrapper()

function distributed.deal_batches(loader, rank, size)
  rank, size = rank or distributed.rank(), size or distributed.size()
  if type(loader) ~= "table" or type(loader.iter) ~= "function" then
    error("distributed.deal_batches: expected a cnn.data loader, got a " .. type(loader), 2)
  end
  return setmetatable({loader = loader, rank = rank, size = size}, Dealt)
end

function Dealt:iter(e)
  local batches = self.loader:iter(e)
  local rank, size, b = self.rank, self.size, 0
  return function()
    while true do
      local x, y = batches()
      if x == nil then return nil end
      b = b + 1
      if (b - 1) % size == rank then return x, y end
    end
  end
end

function Sharded:__call(_, previous)
  if previous == nil or self.current == nil then self.current = self:iter() end
  local x, y = self.current()
  if x == nil then self.current = nil end
  return x, y
end

return distributed
