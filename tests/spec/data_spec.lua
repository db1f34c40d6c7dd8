-- cnn.data: datasets (indexing, labels, split, subset), IDX/MNIST files, and the batch loader
-- (shapes, drop_last, seeded shuffling, epochs, transforms).
local cnn = require "cnn"
local files = require "files"
local write_file, temp_dir = files.write_file, files.temp_dir
local A = require "assertions"

local data = cnn.data

-- IDX files as the MNIST family stores them: big-endian magic (type 0x08 = unsigned byte, then the
-- number of dimensions) and sizes, then the bytes.
local function idx_images(images) -- images: {{bytes of image 1}, ...} of h*w bytes each, h = w = 2
  local parts = {string.pack(">I4I4I4I4", 0x00000803, #images, 2, 2)}
  for _, img in ipairs(images) do parts[#parts + 1] = string.char(table.unpack(img)) end
  return table.concat(parts)
end

local function idx_labels(labels)
  return string.pack(">I4I4", 0x00000801, #labels) .. string.char(table.unpack(labels))
end

-- x: n examples of shape 1x2x2 whose every value is the example's number; y: labels 1..3 cycling.
local function numbered(n)
  local x, y = {}, {}
  for i = 1, n do
    x[i] = {{{i, i}, {i, i}}}
    y[i] = (i - 1) % 3 + 1
  end
  return data.tensor_dataset(cnn.tensor(x), cnn.tensor(y))
end

-- The example numbers in a batch made from numbered().
local function ids(x)
  local out = {}
  for i = 1, x:size(1) do out[i] = x[i][1][1][1] end
  return out
end

local function all_batches(loader)
  local xs, ys = {}, {}
  for x, y in loader do
    xs[#xs + 1] = x
    ys[#ys + 1] = y
  end
  return xs, ys
end

describe("datasets", function()
  it("have a length and give {image, label} pairs by index", function()
    local ds = numbered(5)
    assert.are.equal(5, #ds)
    local pair = ds[4]
    assert.are.same({1, 2, 2}, pair[1]:shape())
    assert.are.equal(4, pair[1][1][2][2])
    assert.are.equal(1, pair[2])
    local image, label = ds:get(2)
    assert.are.equal(2, image[1][1][1])
    assert.are.equal(2, label)
    assert.are.same({1, 2, 2}, ds:example_shape())
  end)

  it("refuse indices out of range and mismatched tensors", function()
    local ds = numbered(3)
    A.assert_error("index 4 is out of range 1..3", function() return ds[4] end)
    A.assert_error("index 0 is out of range 1..3", ds.get, ds, 0)
    A.assert_error("x has 3 examples but y has 2 (x 3x2, y 2)", data.tensor_dataset, cnn.zeros(3, 2), cnn.zeros(2))
  end)

  it("may be unlabelled", function()
    local ds = data.tensor_dataset(cnn.zeros(4, 3))
    local x, y = ds:get(1)
    assert.are.same({3}, x:shape())
    assert.is_nil(y)
    local loader = data.loader(ds, {batch_size = 3})
    local xs, ys = all_batches(loader)
    assert.are.equal(2, #xs)
    assert.are.equal(0, #ys)
  end)

  it("split into two disjoint parts covering every example, reproducibly", function()
    local ds = numbered(10)
    local a, b = ds:split(0.7, {seed = 5})
    assert.are.equal(7, #a)
    assert.are.equal(3, #b)
    local seen = {}
    for _, part in ipairs {a, b} do
      for i = 1, #part do
        local n = part[i][1][1][1][1]
        assert.is_nil(seen[n])
        seen[n] = true
      end
    end
    for n = 1, 10 do assert.is_true(seen[n]) end
    local a2 = ds:split(0.7, {seed = 5})
    local a3 = ds:split(0.7, {seed = 6})
    assert.are.same(a.rows, a2.rows)
    assert.are_not.same(a.rows, a3.rows)
    local c, d = ds:split(4)
    assert.are.equal(4, #c)
    assert.are.equal(6, #d)
    A.assert_error("split: expected a fraction in (0, 1) or a count in 0..10, got 1.5", ds.split, ds, 1.5)
  end)

  it("subset in the given order, also of subsets, keeping the class names", function()
    local ds = numbered(6)
    ds.classes = {"a", "b", "c"}
    local s = ds:subset {5, 2, 6}
    assert.are.equal(3, #s)
    assert.are.equal(5, s[1][1][1][1][1])
    assert.are.equal(2, s[1][2])
    local ss = s:subset {3, 1}
    assert.are.equal(6, ss[1][1][1][1][1])
    assert.are.equal(5, ss[2][1][1][1][1])
    assert.are.same({"a", "b", "c"}, ss.classes)
    local x, y = ss:tensors()
    assert.are.same({2, 1, 2, 2}, x:shape())
    assert.are.same({3, 2}, y:totable())
    A.assert_error("subset: indices[2] = 7 is out of range 1..3", s.subset, s, {1, 7})
  end)
end)

describe("IDX and MNIST files", function()
  local dir
  setup(function()
    dir = temp_dir()
    local images = {{0, 255, 0, 255}, {255, 255, 255, 255}, {0, 0, 0, 51}}
    write_file(dir .. "/t10k-images-idx3-ubyte", idx_images(images))
    write_file(dir .. "/t10k-labels-idx1-ubyte", idx_labels {0, 9, 3})
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("load images scaled to [0, 1] as N x 1 x H x W and shift labels to 1..C", function()
    local ds = data.idx(dir .. "/t10k-images-idx3-ubyte", dir .. "/t10k-labels-idx1-ubyte")
    assert.are.equal(3, #ds)
    assert.are.same({3, 1, 2, 2}, ds.x:shape())
    A.assert_close(ds[1][1], {{{0, 1}, {0, 1}}})
    A.assert_close(ds[3][1], {{{0, 0}, {0, 0.2}}})
    assert.are.same({1, 10, 4}, ds.y:totable())
  end)

  it("find the MNIST file names in dir= and name the classes", function()
    local ds = data.mnist {dir = dir, split = "test"}
    assert.are.equal(3, #ds)
    assert.are.same({"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, ds.classes)
    A.assert_error("cannot find train-images-idx3-ubyte[.gz]", data.mnist, {dir = dir})
    A.assert_error("split must be \"train\" or \"test\"", data.mnist, {dir = dir, split = "val"})
    A.assert_error("unknown option 'path'", data.mnist, {path = dir})
  end)

  it("say how to install Fashion-MNIST when its default folder is missing", function()
    local saved = data.FASHION_MNIST_DIR
    data.FASHION_MNIST_DIR = dir .. "/nowhere"
    local ok, err = pcall(data.fashion_mnist, {split = "test"})
    data.FASHION_MNIST_DIR = saved
    assert.is_false(ok)
    assert.truthy(tostring(err):find("apt-get install dataset-fashion-mnist", 1, true))
    assert.truthy(tostring(err):find("dir=", 1, true))
  end)

  local installed = io.open(data.FASHION_MNIST_DIR .. "/t10k-labels-idx1-ubyte.gz", "rb")
  if installed then installed:close() end
  local it_installed = installed and it or pending

  it_installed("read the installed Fashion-MNIST test split with labels 1..10", function()
    local ds = data.fashion_mnist {split = "test"}
    assert.are.equal(10000, #ds)
    assert.are.same({1, 28, 28}, ds:example_shape())
    assert.are.equal("T-shirt/top", ds.classes[1])
    assert.are.equal("Ankle boot", ds.classes[10])
    assert.are.equal(1, ds.y:min():item())
    assert.are.equal(10, ds.y:max():item())
    assert.are.equal(10, ds[1][2]) -- the first test image is an ankle boot (label 9 in the file)
  end)
end)

describe("the loader", function()
  it("makes batches of the requested size with a smaller last one, or drops it", function()
    local ds = numbered(10)
    local loader = data.loader(ds, {batch_size = 4})
    assert.are.equal(3, #loader)
    local xs, ys = all_batches(loader)
    assert.are.equal(3, #xs)
    assert.are.same({4, 1, 2, 2}, xs[1]:shape())
    assert.are.same({2, 1, 2, 2}, xs[3]:shape())
    assert.are.same({1, 2, 3, 4}, ids(xs[1]))
    assert.are.same({1, 2, 3, 1}, ys[1]:totable())
    local dropping = data.loader(ds, {batch_size = 4, drop_last = true})
    assert.are.equal(2, #dropping)
    assert.are.equal(2, #all_batches(dropping))
  end)

  it("shuffles every example exactly once per epoch, the same for the same seed", function()
    local ds = numbered(20)
    local function epoch_ids(loader)
      local out = {}
      for x in loader do
        for _, i in ipairs(ids(x)) do out[#out + 1] = i end
      end
      return out
    end
    local a = data.loader(ds, {batch_size = 6, shuffle = true, seed = 3})
    local b = data.loader(ds, {batch_size = 6, shuffle = true, seed = 3})
    local c = data.loader(ds, {batch_size = 6, shuffle = true, seed = 4})
    local a1, a2 = epoch_ids(a), epoch_ids(a)
    local sorted = table.move(a1, 1, #a1, 1, {})
    table.sort(sorted)
    for i = 1, 20 do assert.are.equal(i, sorted[i]) end
    assert.are_not.same(a1, a2)               -- a new order each epoch
    assert.are.same(a1, epoch_ids(b))         -- same seed, same batches
    assert.are.same(a2, epoch_ids(b))
    assert.are_not.same(a1, epoch_ids(c))
    a:set_epoch(2)                            -- epochs can be replayed
    assert.are.same(a2, epoch_ids(a))
  end)

  it("does not move the generator of cnn.manual_seed", function()
    cnn.manual_seed(11)
    local expected = cnn.rand(3):totable()
    cnn.manual_seed(11)
    for _ in data.loader(numbered(50), {batch_size = 7, shuffle = true}) do end
    assert.are.same(expected, cnn.rand(3):totable())
  end)

  it("starts a new epoch with every for loop, even after a break", function()
    local loader = data.loader(numbered(9), {batch_size = 3})
    for x in loader do
      assert.are.same({1, 2, 3}, ids(x))
      break
    end
    local first
    for x in loader do
      first = first or ids(x)
    end
    assert.are.same({1, 2, 3}, first)
    local it = loader:iter(1, 2) -- epoch 1 without its first two batches
    assert.are.same({7, 8, 9}, ids(it()))
    assert.is_nil(it())
  end)

  it("serves subsets and applies the transform to each batch", function()
    local train = numbered(10):subset {10, 9, 8}
    local loader = data.loader(train, {batch_size = 2, transform = function(x) return x * 10 end})
    local xs, ys = all_batches(loader)
    assert.are.same({100, 90}, ids(xs[1]))
    assert.are.same({80}, ids(xs[2]))
    assert.are.same({1, 3}, ys[1]:totable())
  end)

  it("gives fresh batches that do not alias the dataset", function()
    local ds = numbered(4)
    for x in data.loader(ds, {batch_size = 4}) do x:fill(0) end
    assert.are.equal(3, ds[3][1][1][1][1])
  end)

  it("accepts a tensor and rejects bad options", function()
    local loader = data.loader(cnn.zeros(5, 2), {batch_size = 2, workers = 2})
    assert.are.equal(3, #loader)
    A.assert_error("loader: unknown option 'batchsize'", data.loader, numbered(3), {batchsize = 2})
    A.assert_error("loader: batch_size must be a positive integer (got 0)", data.loader, numbered(3), {batch_size = 0})
    A.assert_error("loader: expected a dataset", data.loader, {1, 2, 3})
  end)
end)
