-- cnn.data.loader with workers: the same batches for every worker count (with and without
-- augmentation), and no thread left behind at the end of an epoch, after break or after an error.
local cnn = require "cnn"
local data = cnn.data

local function thread_count()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("Threads:%s*(%d+)"))
end

local function same(a, b)
  if a == nil or b == nil then return a == b end
  if table.concat(a:shape(), "x") ~= table.concat(b:shape(), "x") then return false end
  return (a - b):abs():max():item() == 0
end

-- Every batch of epochs 1 and 2 as a list of {x, y}.
local function epochs(loader)
  local out = {}
  for e = 1, 2 do
    for x, y in loader:iter(e) do out[#out + 1] = {x, y} end
  end
  return out
end

local function assert_same_batches(a, b)
  assert.are.equal(#a, #b)
  for i = 1, #a do
    assert.is_true(same(a[i][1], b[i][1]), "x of batch " .. i)
    assert.is_true(same(a[i][2], b[i][2]), "y of batch " .. i)
  end
end

local function dataset(n)
  cnn.manual_seed(5)
  local labels = {}
  for i = 1, n do labels[i] = (i % 10) + 1 end
  return data.tensor_dataset(cnn.rand(n, 1, 12, 12), cnn.tensor(labels))
end

describe("loader workers", function()
  local ds = dataset(83)
  local keras = cnn.aug.image_data_generator{rotation_range = 20, width_shift_range = 0.2, height_shift_range = 0.2,
    shear_range = 0.2, zoom_range = 0.2, horizontal_flip = true, fill_mode = "nearest"}
  local full = cnn.aug.compose{keras, cnn.aug.normalize(0.3, 0.3)}

  local function run(options, workers)
    local o = {workers = workers}
    for k, v in pairs(options) do
      if k ~= "dataset" then o[k] = v end
    end
    return epochs(data.loader(options.dataset or ds, o))
  end

  it("serves the same batches for 0, 1 and 2 workers", function()
    for _, options in ipairs{
      {batch_size = 10},
      {batch_size = 10, shuffle = true, seed = 3},
      {batch_size = 16, shuffle = true, seed = 4, drop_last = true},
      {batch_size = 100, shuffle = true},
    } do
      local reference = run(options, 0)
      assert_same_batches(reference, run(options, 1))
      assert_same_batches(reference, run(options, 2))
    end
  end)

  it("serves the same augmented batches for 0, 1 and 2 workers", function()
    for _, transform in ipairs{keras, full, cnn.aug.random_crop(10, {padding = 1})} do
      local options = {batch_size = 12, shuffle = true, seed = 9, transform = transform}
      local reference = run(options, 0)
      assert.is_false(same(reference[1][1], ds.x:narrow(1, 1, 12))) -- something happened
      assert_same_batches(reference, run(options, 1))
      assert_same_batches(reference, run(options, 2))
    end
  end)

  it("draws augmentation from the loader seed, not from cnn.manual_seed", function()
    local options = {batch_size = 12, shuffle = true, seed = 9, transform = keras}
    cnn.manual_seed(1)
    local a = run(options, 0)
    cnn.manual_seed(2)
    local b = run(options, 2)
    assert_same_batches(a, b)
    local c = run({batch_size = 12, shuffle = true, seed = 10, transform = keras}, 0)
    assert.is_false(same(a[1][1], c[1][1]))
    -- epochs differ from each other
    assert.is_false(same(a[1][1], a[#a // 2 + 1][1]))
  end)

  it("runs Lua transforms on the calling thread with the same results", function()
    local lua_transform = cnn.aug.compose{keras, function(x) return x * 2 end}
    assert.is_nil(lua_transform:pipeline())
    local plain = function(x) return x + 1 end
    for _, transform in ipairs{lua_transform, plain} do
      local options = {batch_size = 20, shuffle = true, seed = 2, transform = transform}
      assert_same_batches(run(options, 0), run(options, 2))
    end
  end)

  it("serves subsets, datasets without labels and resumed epochs alike", function()
    local subset = ds:subset({5, 9, 1, 33, 70, 71, 72, 2, 3, 4, 80, 81})
    local options = {batch_size = 5, shuffle = true, seed = 1, dataset = subset, transform = keras}
    assert_same_batches(run(options, 0), run(options, 2))
    local unlabeled = data.tensor_dataset(ds.x)
    assert_same_batches(run({batch_size = 30, dataset = unlabeled}, 0), run({batch_size = 30, dataset = unlabeled}, 2))
    local l0 = data.loader(ds, {batch_size = 10, shuffle = true, transform = keras})
    local l2 = data.loader(ds, {batch_size = 10, shuffle = true, transform = keras, workers = 2})
    local a, b = {}, {}
    for x in l0:iter(3, 4) do a[#a + 1] = {x} end
    for x in l2:iter(3, 4) do b[#b + 1] = {x} end
    assert.are.equal(#l0 - 4, #a)
    assert_same_batches(a, b)
  end)

  it("works with `for x, y in loader`, break included", function()
    local baseline = thread_count()
    local loader = data.loader(ds, {batch_size = 10, shuffle = true, workers = 2, transform = keras})
    local count = 0
    for _ in loader do count = count + 1 end
    assert.are.equal(#loader, count)
    assert.are.equal(0, cnn._prefetch_workers())
    for _ in loader do break end
    assert.are.equal(2, cnn._prefetch_workers()) -- waiting for the next epoch or the collector
    count = 0
    for _ in loader do count = count + 1 end -- a new epoch, from its first batch
    assert.are.equal(#loader, count)
    assert.are.equal(0, cnn._prefetch_workers())
    for _ in loader do break end
    loader:close()
    assert.are.equal(0, cnn._prefetch_workers())
    assert.are.equal(baseline, thread_count())
  end)

  it("stops the threads when a loop over loader:iter() is left by break or an error", function()
    local baseline = thread_count()
    local loader = data.loader(ds, {batch_size = 4, shuffle = true, workers = 2, transform = full})
    for _ in loader:iter() do break end
    assert.are.equal(0, cnn._prefetch_workers())
    assert.are.equal(baseline, thread_count())
    local ok, err = pcall(function()
      for x in loader:iter() do
        if x then error("boom in the loop body") end
      end
    end)
    assert.is_false(ok)
    assert.matches("boom in the loop body", err)
    assert.are.equal(0, cnn._prefetch_workers())
    assert.are.equal(baseline, thread_count())
    local count = 0
    for _ in loader:iter() do count = count + 1 end
    assert.are.equal(#loader, count)
  end)

  it("leaves no thread or memory behind when an abandoned loader is collected", function()
    collectgarbage()
    local baseline, memory = thread_count(), cnn.memory_in_use()
    local ok = pcall(function()
      local loader = data.loader(ds, {batch_size = 4, shuffle = true, workers = 2, transform = keras})
      for _ in loader do error("stop") end
    end)
    assert.is_false(ok)
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, cnn._prefetch_workers())
    assert.are.equal(baseline, thread_count())
    assert.are.equal(memory, cnn.memory_in_use())
  end)

  it("reports augmentation that does not fit the images before starting", function()
    local loader = data.loader(ds, {batch_size = 4, workers = 2, transform = cnn.aug.random_crop(20)})
    local ok, err = pcall(function() for _ in loader:iter() do end end)
    assert.is_false(ok)
    assert.matches("random_crop", err)
    assert.are.equal(0, cnn._prefetch_workers())
  end)
end)
