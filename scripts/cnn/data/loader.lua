-- cnn.data.loader(ds, options) - batches of a dataset, for a generic for:
--
--   local loader = cnn.data.loader(train, {batch_size=64, shuffle=true, seed=1})
--   for epoch = 1, 5 do
--     for x, y in loader do ... end     -- x: batch_size x C x H x W, y: batch_size labels (1..C)
--   end
--   #loader                             -- batches per epoch
--
-- Options: batch_size=64, shuffle=false, drop_last=false (leave out a last, smaller batch),
-- seed=1, transform=fn (called on each batch x, N x C x H x W - a cnn.aug transform also gets the
-- batch's seed; its result, if any, replaces x), workers=0 (threads that make batches ahead of the loop; 0: the calling thread).
--
-- Batch b of epoch e has a seed of its own, drawn from (seed, e, b) like the order: a cnn.aug
-- transform given it makes the same batch whichever thread runs it, so the same seed gives the same
-- batches for any worker count. With workers > 0 the batches of an epoch are gathered by C threads
-- (cnn._prefetch) and, when the transform is made of built-in stages only (transform:pipeline()),
-- augmented there too, one thread per batch; other transforms run on the calling thread.
-- The threads of an epoch stop at its end, when the loop is left by break or an error (the
-- iterator of loader:iter() carries a to-be-closed value; with `for x, y in loader` the threads stop
-- when the next epoch starts or the loader is collected) or when the loader is closed: loader:close().
--
-- Each `for` over the loader is one epoch. The loader is its own iterator function: Lua calls it with
-- the previous batch as the control value, so a call with none starts a new epoch (an abandoned
-- loop is simply dropped). Epochs are numbered 1, 2, ...; the order of epoch e is a permutation
-- drawn from (seed, e) alone by a generator of its own, so the same seed gives the same batches,
-- shuffling never moves cnn.manual_seed's stream, and a resumed run can replay epoch e exactly:
-- loader:set_epoch(e) makes the next loop epoch e, loader:iter(e) returns an iterator over it.
--
-- Batches are fresh tensors (never reused), so they may be kept or changed in place by a transform.
local cnn = require "cnn"
local common = require "cnn.common"
local random = require "cnn.data.random"

common.register_source()
local fail, is_tensor = common.fail, common.is_tensor

local M = {}

local Loader = {}
Loader.__index = Loader
M.Loader = Loader

-- Copies the listed rows of t (N x ...) into a new tensor (#rows x ...). One-dimensional tensors
-- (labels) go through a Lua table, which is faster than a copy per element.
function M.gather(t, rows)
  if t:dim() == 1 then
    local values = {}
    for i, r in ipairs(rows) do values[i] = t[r] end
    return cnn.tensor(values)
  end
  local shape = t:shape()
  shape[1] = #rows
  local out = cnn.empty(shape)
  for i, r in ipairs(rows) do out[i] = t[r] end
  return out
end

-- Rows first..first+count-1 of t as a new tensor: one copy.
local function copy_range(t, first, count)
  return t:narrow(1, first, count):clone()
end

local GOLDEN, mix = random.GOLDEN, random.mix

-- The seed of batch b (1-based) of epoch e: SplitMix64 over (seed, e, b), apart from every other
-- generator, so it depends on neither the worker count nor cnn.manual_seed's stream.
function M.batch_seed(seed, epoch, b)
  return mix(mix(seed * GOLDEN + mix(epoch + 1)) + b * GOLDEN)
end

local defaults = {batch_size = 64, shuffle = false, drop_last = false, seed = 1, workers = 0}

local function check_options(options)
  if type(options) ~= "table" then fail("loader: options must be a table") end
  for k in pairs(options) do
    if defaults[k] == nil and k ~= "transform" then fail("loader: unknown option '%s'", tostring(k)) end
  end
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for k, v in pairs(options) do o[k] = v end
  if math.tointeger(o.batch_size) == nil or o.batch_size < 1 then
    fail("loader: batch_size must be a positive integer (got %s)", tostring(o.batch_size))
  end
  if type(o.shuffle) ~= "boolean" then fail("loader: shuffle must be true or false") end
  if type(o.drop_last) ~= "boolean" then fail("loader: drop_last must be true or false") end
  if math.tointeger(o.seed) == nil then fail("loader: seed must be an integer (got %s)", tostring(o.seed)) end
  if math.tointeger(o.workers) == nil or o.workers < 0 then
    fail("loader: workers must be an integer >= 0 (got %s)", tostring(o.workers))
  end
  local tf = o.transform
  if tf ~= nil and type(tf) ~= "function" and not (getmetatable(tf) or {}).__call then
    fail("loader: transform must be a function or a callable table, not a %s", type(tf))
  end
  o.batch_size, o.seed, o.workers = math.tointeger(o.batch_size), math.tointeger(o.seed), math.tointeger(o.workers)
  return o
end

-- Datasets and loaders are recognised by their fields rather than by metatable identity, so that
-- two loaded copies of this library (test runners unload modules between files) still agree.
function M.is_dataset(v)
  return type(v) == "table" and is_tensor(rawget(v, "x")) and math.type(rawget(v, "n")) == "integer"
end

function M.is_loader(v)
  return type(v) == "table" and M.is_dataset(rawget(v, "dataset")) and type(v.iter) == "function"
end

function M.new(ds, options)
  if is_tensor(ds) then ds = require("cnn.data").tensor_dataset(ds) end
  if not M.is_dataset(ds) then
    fail("loader: expected a dataset (cnn.data.tensor_dataset, fashion_mnist, ...) or a tensor, got a %s",
         type(ds))
  end
  local o = check_options(options or {})
  local self = setmetatable(o, Loader)
  self.dataset = ds
  self.next_epoch, self.epoch = 1, 0
  return self
end

function Loader:__len()
  local n, bs = #self.dataset, self.batch_size
  return self.drop_last and n // bs or (n + bs - 1) // bs
end

function Loader:__tostring()
  return string.format("Loader: %d batches of %d from %s%s", #self, self.batch_size, tostring(self.dataset),
                       self.shuffle and string.format(", shuffled (seed %d)", self.seed) or "")
end

-- The dataset rows of epoch e, in the order they are served; nil means 1..n in order.
function Loader:order(epoch)
  local ds = self.dataset
  if not self.shuffle then return ds.rows end
  local perm = random.permutation(#ds, self.seed, epoch)
  if ds.rows then
    for k, i in ipairs(perm) do perm[k] = ds.rows[i] end
  end
  return perm
end

-- Batch b (1-based) of epoch e served in the given order.
function Loader:batch(order, b, epoch)
  local ds, bs = self.dataset, self.batch_size
  local first = (b - 1) * bs + 1
  local count = math.min(bs, #ds - first + 1)
  local x, y
  if order == nil then
    x = copy_range(ds.x, first, count)
    if ds.y ~= nil then y = copy_range(ds.y, first, count) end
  else
    local rows = table.move(order, first, first + count - 1, 1, {})
    x = M.gather(ds.x, rows)
    if ds.y ~= nil then y = M.gather(ds.y, rows) end
  end
  return self:apply_transform(x, epoch or self.epoch, b), y
end

-- A cnn.aug transform (or generator) draws from the batch's seed; other callables get the batch only.
local function is_aug_transform(tf)
  return type(tf) == "table" and rawget(getmetatable(tf) or {}, "__call") ~= nil and tf.is_transform == true
end

-- x through the transform, as batch b of epoch e.
function Loader:apply_transform(x, epoch, b)
  local tf = self.transform
  if tf == nil then return x end
  local changed
  if is_aug_transform(tf) then
    changed = tf(x, M.batch_seed(self.seed, epoch, b))
  else
    changed = tf(x)
  end
  if changed ~= nil then x = changed end
  return x
end

-- The C pipeline that worker threads may run for the transform (nil: none or a Lua one).
function Loader:worker_pipeline()
  local tf = self.transform
  if not is_aug_transform(tf) or type(tf.pipeline) ~= "function" then return nil end
  if self.pipeline_of == tf then return self.pipeline end
  -- cnn.aug passes a transform made of one C pipeline the seed plus one GOLDEN step (its first
  -- part's offset): workers do the same so that their batches equal the calling thread's
  local parts = rawget(tf, "parts")
  local p = type(parts) == "table" and #parts == 1 and tf:pipeline() or nil
  self.pipeline_of, self.pipeline = tf, p
  return p
end

-- Threads making the batches of epoch e after the first skip ones (see the top of the file).
function Loader:prefetcher(order, epoch, skip)
  local ds = self.dataset
  local pipeline = self:worker_pipeline()
  local seeds
  if pipeline then
    seeds = {}
    for b = 1, #self do seeds[b] = M.batch_seed(self.seed, epoch, b) + GOLDEN end
  end
  return cnn._prefetch(ds.x, ds.y, {order = order, batch_size = self.batch_size, drop_last = self.drop_last,
                                    skip = skip, pipeline = pipeline, seeds = seeds, workers = self.workers})
end

function Loader:set_epoch(e)
  if math.tointeger(e) == nil or e < 1 then fail("loader: epochs are numbered from 1 (got %s)", tostring(e)) end
  self.next_epoch = math.tointeger(e)
end

-- An iterator over the batches of epoch e (by default the next one): for x, y in loader:iter() do.
-- skip leaves out the first batches (used to resume in the middle of an epoch).
function Loader:iter(e, skip)
  if e ~= nil then self:set_epoch(e) end
  local epoch = self.next_epoch
  self.epoch, self.next_epoch = epoch, epoch + 1
  local order = self:order(epoch)
  local b, last = skip or 0, #self
  if self.workers == 0 then
    return function()
      if b >= last then return nil end
      b = b + 1
      return self:batch(order, b, epoch)
    end
  end
  local threads = self:prefetcher(order, epoch, b)
  local lua_transform = self.transform ~= nil and self:worker_pipeline() == nil
  local function next_batch()
    if b >= last then
      threads:close()
      return nil
    end
    local x, y = threads:next()
    if x == nil then return nil end
    b = b + 1
    if lua_transform then x = self:apply_transform(x, epoch, b) end
    return x, y
  end
  -- the fourth value is closed when a generic for ends, however it ends
  return next_batch, nil, nil, threads
end

-- The loader as the iterator function of a generic for (see the top of the file).
function Loader:__call(_, previous)
  if previous == nil or self.current == nil then
    self:close()
    self.current, _, _, self.current_threads = self:iter()
  end
  local x, y = self.current()
  if x == nil then self:close() end
  return x, y
end

-- Stops the threads of an epoch left unfinished by `for x, y in loader` (they also stop when the
-- loader is collected).
function Loader:close()
  if self.current_threads then self.current_threads:close() end
  self.current, self.current_threads = nil, nil
end

return M
