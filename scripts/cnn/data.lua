-- cnn.data - datasets and the batch loader.
--
--   local train = cnn.data.fashion_mnist{split="train"}
--   local fit_set, val_set = train:split(0.9, {seed=1})
--   for x, y in cnn.data.loader(fit_set, {batch_size=128, shuffle=true}) do ... end
--
-- A dataset holds whole tensors, x (N x C x H x W, or N x ... for any examples) and optionally y
-- (N class labels 1..C as floats, or N x ... targets), so that a batch is gathered with one copy per
-- example. Subsets and splits share those tensors and keep a list of row numbers (ds.rows) instead
-- of copying: a 90% split of Fashion-MNIST costs a table of 54000 integers, not 170 MB.
--
--   #ds                    the number of examples
--   ds[i]                  the pair {image, label}: Lua's indexing yields one value, so the pair is a
--                          table; ds:get(i) returns image, label as two values. The image is a view
--                          (C x H x W) into the dataset; a 1-d y gives the label as a number.
--   ds.classes             the class names, in label order ({"T-shirt/top", ...}, {"0", ..., "9"})
--   ds:split(f, {seed=1})  two datasets: a seeded random f of the examples (f in (0, 1), or a count)
--                          and the rest
--   ds:subset(indices)     the examples at the given positions (1..#ds), in that order
--   ds:tensors()           x, y holding exactly this dataset's examples (copies for a subset)
--
-- The loader is in cnn/data/loader.lua; the file formats are described in datasets/README.md.
local cnn = require "cnn"
local common = require "cnn.common"
local random = require "cnn.data.random"
local loader = require "cnn.data.loader"
local files = require "cnn.data.files"

common.register_source()
local fail, is_tensor, shape_str = common.fail, common.is_tensor, common.shape_str

local data = {}

-- ---- datasets ------------------------------------------------------------------------------------

local Dataset = {}
data.Dataset = Dataset

local function is_index(key)
  return type(key) == "number" and math.tointeger(key) ~= nil
end

Dataset.__index = function(self, key)
  if is_index(key) then return {self:get(key)} end
  return Dataset[key]
end

Dataset.__len = function(self) return self.n end

Dataset.__tostring = function(self)
  local parts = {string.format("%s: %d examples of %s", self.name or "Dataset", self.n,
                               table.concat(self:example_shape(), "x"))}
  if self.classes then parts[#parts + 1] = string.format(", %d classes", #self.classes) end
  return table.concat(parts)
end

local function new_dataset(x, y, rows, fields)
  local n = rows and #rows or x:size(1)
  local ds = setmetatable({x = x, y = y, rows = rows, n = n}, Dataset)
  for k, v in pairs(fields or {}) do rawset(ds, k, v) end
  return ds
end

-- The shape of one example, e.g. {1, 28, 28}.
function Dataset:example_shape()
  local shape = self.x:shape()
  table.remove(shape, 1)
  return shape
end

-- The row of the underlying tensors that holds example i.
function Dataset:row(i)
  if not is_index(i) or i < 1 or i > self.n then
    fail("dataset: index %s is out of range 1..%d", tostring(i), self.n)
  end
  i = math.tointeger(i)
  return self.rows and self.rows[i] or i
end

function Dataset:get(i)
  local r = self:row(i)
  local label
  if self.y ~= nil then label = self.y[r] end
  return self.x[r], label
end

-- What subsets inherit from their parent.
local function inherited(ds)
  return {classes = ds.classes, name = ds.name}
end

function Dataset:subset(indices)
  if type(indices) ~= "table" then fail("subset: expected a table of indices, got a %s", type(indices)) end
  local rows = {}
  for j, i in ipairs(indices) do
    if not is_index(i) or i < 1 or i > self.n then
      fail("subset: indices[%d] = %s is out of range 1..%d", j, tostring(i), self.n)
    end
    rows[j] = self.rows and self.rows[math.tointeger(i)] or math.tointeger(i)
  end
  return new_dataset(self.x, self.y, rows, inherited(self))
end

function Dataset:split(fraction, options)
  options = options or {}
  if type(options) ~= "table" then fail("split: options must be a table") end
  for k in pairs(options) do
    if k ~= "seed" then fail("split: unknown option '%s'", tostring(k)) end
  end
  local first
  if type(fraction) == "number" and fraction > 0 and fraction < 1 then
    first = math.floor(fraction * self.n + 0.5)
  elseif is_index(fraction) and fraction >= 0 and fraction <= self.n then
    first = math.tointeger(fraction)
  else
    fail("split: expected a fraction in (0, 1) or a count in 0..%d, got %s", self.n, tostring(fraction))
  end
  local seed = random.check_seed(options.seed or 1, "split")
  local order = random.permutation(self.n, seed, 0)
  local a, b = {}, {}
  for k = 1, first do a[k] = order[k] end
  for k = first + 1, self.n do b[k - first] = order[k] end
  return self:subset(a), self:subset(b)
end

function Dataset:tensors()
  if not self.rows then return self.x, self.y end
  return loader.gather(self.x, self.rows), self.y and loader.gather(self.y, self.rows)
end

-- ---- constructors --------------------------------------------------------------------------------

local function as_tensor(v, what)
  if is_tensor(v) then return v end
  if type(v) == "table" then return cnn.tensor(v) end
  fail("tensor_dataset: %s must be a tensor or a table of numbers, not a %s", what, type(v))
end

-- cnn.data.tensor_dataset(x, y?, {classes=?, name=?}): y may be omitted for unlabelled data.
function data.tensor_dataset(x, y, options)
  options = options or {}
  x = as_tensor(x, "x")
  if x:dim() < 1 then fail("tensor_dataset: x must have a first dimension of examples (got a scalar)") end
  if y ~= nil then
    y = as_tensor(y, "y")
    if y:dim() < 1 or y:size(1) ~= x:size(1) then
      fail("tensor_dataset: x has %d examples but y has %s (x %s, y %s)", x:size(1),
           y:dim() < 1 and "none" or tostring(y:size(1)), shape_str(x), shape_str(y))
    end
  end
  return new_dataset(x, y, nil, {classes = options.classes, name = options.name})
end

-- path itself, or path .. ".gz", whichever exists.
local function find_file(path)
  if files.exists(path) then return path end
  if files.exists(path .. ".gz") then return path .. ".gz" end
  return nil
end

-- cnn.data.idx(images_file, labels_file, {classes=?, name=?}): images are scaled to [0, 1].
function data.idx(images_file, labels_file, options)
  if type(images_file) ~= "string" or type(labels_file) ~= "string" then
    fail("idx: expected the paths of an images file and a labels file")
  end
  local x = cnn.idx_load(images_file, true)
  local y = cnn.idx_load(labels_file)
  if y:dim() ~= 1 then
    fail("idx: %s holds a %s tensor, not a 1-d array of labels", labels_file, shape_str(y))
  end
  if x:dim() == 3 then x = x:view(x:size(1), 1, x:size(2), x:size(3)) end
  if x:size(1) ~= y:size(1) then
    fail("idx: %s holds %d images but %s holds %d labels", images_file, x:size(1), labels_file, y:size(1))
  end
  options = options or {}
  return new_dataset(x, y, nil, {classes = options.classes, name = options.name})
end

local split_prefix = {train = "train", test = "t10k"}

-- The MNIST family: the same four IDX files, in dir, plain or gzipped.
local function mnist_like(who, options, default_dir, classes, missing_hint)
  options = options or {}
  if type(options) ~= "table" then fail("%s: expected an options table {dir=, split=}", who) end
  for k in pairs(options) do
    if k ~= "dir" and k ~= "split" then fail("%s: unknown option '%s'", who, tostring(k)) end
  end
  local split = options.split or "train"
  local prefix = split_prefix[split]
  if not prefix then fail("%s: split must be \"train\" or \"test\", got %s", who, tostring(split)) end
  local dir = options.dir or default_dir
  if dir == nil then fail("%s: pass dir= (the folder holding %s-images-idx3-ubyte[.gz])", who, prefix) end
  local images = find_file(dir .. "/" .. prefix .. "-images-idx3-ubyte")
  local labels = find_file(dir .. "/" .. prefix .. "-labels-idx1-ubyte")
  if not images or not labels then
    fail("%s: cannot find %s-images-idx3-ubyte[.gz] and %s-labels-idx1-ubyte[.gz] in %s%s", who, prefix,
         prefix, dir, missing_hint and options.dir == nil and ("; " .. missing_hint) or "")
  end
  return data.idx(images, labels, {classes = classes, name = who .. " " .. split})
end

data.FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

data.fashion_mnist_classes = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                              "Sneaker", "Bag", "Ankle boot"}

function data.fashion_mnist(options)
  return mnist_like("fashion_mnist", options, data.FASHION_MNIST_DIR, data.fashion_mnist_classes,
                    "install it with `apt-get install dataset-fashion-mnist` or pass dir=")
end

data.mnist_classes = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

function data.mnist(options)
  return mnist_like("mnist", options, nil, data.mnist_classes)
end

-- CIFAR-10/100 and folders of images are read by cnn/datasets_extra.lua, loaded on first use.
for _, name in ipairs {"cifar10", "cifar100", "image_folder"} do
  data[name] = function(...) return require("cnn.datasets_extra")[name](...) end
end

-- ---- the loader ------------------------------------------------------------------------------------

data.loader = loader.new
data.Loader = loader.Loader
data.is_dataset, data.is_loader = loader.is_dataset, loader.is_loader

return data
