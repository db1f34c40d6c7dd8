-- loader_bench.lua - what augmentation costs on Fashion-MNIST (28x28 gray, batches of 128):
--   1. the augmentation alone: Keras' full ImageDataGenerator recipe over the 60000 training images,
--      on one thread and on all of them;
--   2. the loader (shuffled batches) without augmentation, with normalisation only, and with the full
--      recipe plus normalisation, for 0, 1 and 2 worker threads (--workers);
--   3. training steps (the network of scripts/train.lua, Adam) fed by those loaders, for each worker
--      count: the target is that augmentation costs at most 10% of training throughput.
-- Rates are images per second; each line shows the ratio to the line it is compared with.
--
--   cnnlua bench/loader_bench.lua [--steps 60] [--workers 0,1,2] [--data-dir DIR]
local cnn = rawget(_G, "cnn") or require "cnn"
local argparse = require "argparse"

local parser = argparse("loader_bench.lua", "Measure the cost of augmentation on Fashion-MNIST.")
parser:option("--steps", "Training steps measured per configuration.", "60"):convert(math.tointeger)
parser:option("--workers", "Worker counts to compare, comma separated.", "0,1,2")
parser:option("--data-dir", "Folder holding the Fashion-MNIST IDX files.", cnn.data.FASHION_MNIST_DIR)
local args = parser:parse()
local worker_counts = {}
for w in args.workers:gmatch("%d+") do worker_counts[#worker_counts + 1] = math.tointeger(w) end

local MEAN, STD, BATCH = 0.2860, 0.3530, 128
local train = cnn.data.fashion_mnist{split = "train", dir = args.data_dir}
local x = train.x
local keras = cnn.aug.image_data_generator{rotation_range = 20, width_shift_range = 0.2, height_shift_range = 0.2,
  shear_range = 0.2, zoom_range = 0.2, horizontal_flip = true, vertical_flip = true, fill_mode = "nearest"}
local normalize = cnn.aug.normalize(MEAN, STD)
local full = cnn.aug.compose{keras, normalize}

local function line(name, rate, reference)
  print(string.format("  %-46s %9.0f images/s%s", name, rate,
                      reference and string.format("   (%.3f x %s)", rate / reference[2], reference[1]) or ""))
  return {name, rate}
end

-- 1. the augmentation alone ------------------------------------------------------------------------------
print(string.format("augmentation of %d images of %s in batches of %d:", x:size(1), table.concat(train:example_shape(), "x"), BATCH))
local threads = cnn.get_num_threads()
local function augment_all(t)
  local timer = cnn.timer()
  for first = 1, x:size(1), BATCH do
    t(x:narrow(1, first, math.min(BATCH, x:size(1) - first + 1)))
  end
  return x:size(1) / timer:elapsed()
end
local single
for _, n in ipairs(threads > 1 and {1, threads} or {1}) do
  cnn.set_num_threads(n)
  augment_all(keras) -- warm up
  local rate = augment_all(keras)
  local entry = line(string.format("image_data_generator, %d thread%s", n, n > 1 and "s" or ""), rate, single)
  single = single or entry
end
cnn.set_num_threads(threads)

-- 2. the loader --------------------------------------------------------------------------------------------
print("loader alone, shuffled batches of " .. BATCH .. ":")
local function loader_rate(transform, workers)
  local loader = cnn.data.loader(train, {batch_size = BATCH, shuffle = true, seed = 1, transform = transform,
                                         workers = workers})
  local timer, n = cnn.timer(), 0
  for xb in loader:iter() do n = n + xb:size(1) end
  return n / timer:elapsed()
end
for _, workers in ipairs(worker_counts) do
  local w = string.format(", %d worker%s", workers, workers == 1 and "" or "s")
  local plain = line("no transform" .. w, loader_rate(nil, workers))
  line("normalize" .. w, loader_rate(normalize, workers), plain)
  line("image_data_generator + normalize" .. w, loader_rate(full, workers), plain)
end

-- 3. training steps ------------------------------------------------------------------------------------------
-- the network of scripts/train.lua, as bench/models.lua defines it for the PyTorch comparison
local models = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/models.lua")
local function make_model() return models.fashion().model end

local function training_rate(transform, workers)
  cnn.manual_seed(1)
  local model = make_model()
  model:train()
  local opt = cnn.optim.Adam(model:parameters(), {lr = 1e-3})
  local loss_fn = cnn.nn.CrossEntropyLoss()
  local loader = cnn.data.loader(train, {batch_size = BATCH, shuffle = true, seed = 1, transform = transform,
                                         workers = workers})
  local steps, n, timer = 0, 0, nil
  for xb, yb in loader:iter() do
    if steps == 3 then timer, n = cnn.timer(), 0 end -- the first steps warm up
    opt:zero_grad()
    local loss = loss_fn(model(xb), yb)
    loss:backward()
    opt:step()
    steps, n = steps + 1, n + xb:size(1)
    if steps >= args.steps + 3 then break end
  end
  return n / timer:elapsed()
end
-- the best of two runs: other processes on a small machine only ever slow a run down
local function best_training_rate(transform, workers)
  return math.max(training_rate(transform, workers), training_rate(transform, workers))
end
training_rate(normalize, 0) -- the first run picks convolution algorithms
print(string.format("training steps (%d per configuration, best of 2, %d threads):", args.steps,
                    cnn.get_num_threads()))
local base
for _, workers in ipairs(worker_counts) do
  local w = string.format(", %d worker%s", workers, workers == 1 and "" or "s")
  local plain = line("normalize only" .. w, best_training_rate(normalize, workers), base)
  base = base or plain
  local augmented = line("image_data_generator + normalize" .. w, best_training_rate(full, workers), plain)
  print(string.format("    augmentation costs %.1f%% of training throughput with %d worker%s (target: at most 10%%)",
                      100 * (1 - augmented[2] / plain[2]), workers, workers == 1 and "" or "s"))
end
