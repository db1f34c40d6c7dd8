-- train.lua - trains a convolutional network on Fashion-MNIST and reports its test accuracy.
--
--   cnnlua scripts/train.lua                      (or: make train)
--   cnnlua scripts/train.lua --epochs 10 --optimizer sgd --lr 0.05 --out runs/sgd
--   cnnlua scripts/train.lua --resume             (continues runs/fashion_mnist after Ctrl-C)
--   mpirun -np 2 cnnlua scripts/train.lua --distributed   (data-parallel over MPI ranks)
--
-- The network: two stages of two 3x3 convolutions (batch norm, ReLU) each ending in 2x2 max
-- pooling, then dropout, a dense layer of 128 and the 10 class scores. Inputs are normalised with
-- the training set's mean and standard deviation; training uses the one-cycle schedule, which
-- reaches a good accuracy in few epochs. Writes into --out: last.safetensors (resumable training
-- state), best.safetensors and model.safetensors (the weights), history.csv and curves.png.
local cnn = rawget(_G, "cnn") or require "cnn"
local argparse = require "argparse"

local nn = cnn.nn

-- Pixel statistics of the Fashion-MNIST training images (scaled to [0, 1]).
local MEAN, STD = 0.2860, 0.3530

local parser = argparse("train.lua", "Train a convolutional network on Fashion-MNIST and report its test accuracy.")
parser:option("--epochs", "Number of epochs.", "5"):convert(tonumber)
parser:option("--lr", "Peak learning rate of the one-cycle schedule (default: 0.004 for adam/adamw, 0.1 for sgd, "
              .. "0.002 for rmsprop).")
  :convert(tonumber)
parser:option("--batch-size", "Examples per batch.", "128"):convert(tonumber)
parser:option("--optimizer", "Optimizer: adam, sgd (Nesterov momentum), adamw or rmsprop.", "adam")
  :choices {"adam", "sgd", "adamw", "rmsprop"}
parser:option("--width", "Channels of the first convolution stage (the second has twice as many).", "16")
  :convert(tonumber)
parser:option("--seed", "Seed of the generator (initialisation, dropout) and of the batch order.", "1")
  :convert(tonumber)
parser:option("--out", "Directory for checkpoints, history.csv and curves.png.", "runs/fashion_mnist")
parser:flag("--resume", "Continue the training saved in --out.")
parser:option("--data-dir", "Folder holding the Fashion-MNIST IDX files.", cnn.data.FASHION_MNIST_DIR)
parser:option("--threads", "Threads for the math kernels (default: all cores).")
  :convert(tonumber)
parser:option("--limit", "Train on the first N training images only (for quick trials).")
  :convert(tonumber)
parser:option("--augment", "Augmentation of training batches: none, light (crop with padding 2 and "
  .. "horizontal flips) or keras (small rotations, shifts, zoom and flips).", "none"):choices {"none", "light", "keras"}
parser:option("--workers", "Threads that prepare and augment batches ahead of training.", "0"):convert(tonumber)
parser:flag("--distributed", "Data-parallel training over the ranks of mpirun: each rank takes a slice of "
            .. "every batch and gradients are averaged; rank 0 prints and writes --out.")
parser:option("--progress", "Progress display: bar, line or none (default: a bar on a terminal).")
  :choices {"bar", "line", "none"}
local args = parser:parse()

for _, name in ipairs {"epochs", "batch_size", "width", "seed"} do
  if math.tointeger(args[name]) == nil or args[name] < (name == "epochs" and 0 or 1) then
    parser:error(string.format("--%s must be a positive integer", name:gsub("_", "-")))
  end
  args[name] = math.tointeger(args[name])
end
if args.threads then cnn.set_num_threads(math.tointeger(args.threads) or parser:error("--threads must be an integer")) end

cnn.manual_seed(args.seed)

-- Under mpirun with --distributed only rank 0 prints and writes files.
local rank, ranks = 0, 1
if args.distributed then rank, ranks = require("cnn.distributed").init() end
local function say(...)
  if rank == 0 then print(...) end
end

-- ---- data ----------------------------------------------------------------------------------------

local train_set = cnn.data.fashion_mnist {split = "train", dir = args.data_dir}
local test_set = cnn.data.fashion_mnist {split = "test", dir = args.data_dir}
if args.limit then
  local first = {}
  for i = 1, math.min(args.limit, #train_set) do first[i] = i end
  train_set = train_set:subset(first)
end
-- Every transform is built from C stages, so loader workers can run it off the main thread.
local normalize = cnn.aug.normalize(MEAN, STD)
local recipes = {
  none = normalize,
  light = cnn.aug.compose {cnn.aug.random_crop(28, {padding = 2}), cnn.aug.random_flip {horizontal = true}, normalize},
  keras = cnn.aug.compose {cnn.aug.image_data_generator {rotation_range = 10, width_shift_range = 0.1,
                             height_shift_range = 0.1, zoom_range = 0.1, horizontal_flip = true,
                             fill_mode = "nearest"}, normalize},
}
local workers = math.tointeger(args.workers) or parser:error("--workers must be an integer")
local train_loader = cnn.data.loader(train_set, {batch_size = args.batch_size, shuffle = true, seed = args.seed,
                                                 transform = recipes[args.augment], workers = workers})
local test_loader = cnn.data.loader(test_set, {batch_size = 500, transform = normalize})

-- ---- the network -----------------------------------------------------------------------------------

local function conv_bn_relu(layers, cin, cout)
  layers[#layers + 1] = nn.Conv2d(cin, cout, 3, {padding = 1, bias = false})
  layers[#layers + 1] = nn.BatchNorm2d(cout)
  layers[#layers + 1] = nn.ReLU()
end

local function make_model(width)
  local c1, c2 = width, 2 * width
  local layers = {}
  conv_bn_relu(layers, 1, c1)
  conv_bn_relu(layers, c1, c1)
  layers[#layers + 1] = nn.MaxPool2d(2)   -- 28x28 -> 14x14
  conv_bn_relu(layers, c1, c2)
  conv_bn_relu(layers, c2, c2)
  layers[#layers + 1] = nn.MaxPool2d(2)   -- 14x14 -> 7x7
  layers[#layers + 1] = nn.Dropout(0.1)
  layers[#layers + 1] = nn.Flatten()
  layers[#layers + 1] = nn.Linear(c2 * 7 * 7, 128)
  layers[#layers + 1] = nn.ReLU()
  layers[#layers + 1] = nn.Dropout(0.25)
  layers[#layers + 1] = nn.Linear(128, 10)
  return nn.Sequential(layers)
end

local model = make_model(args.width)
if rank == 0 then model:summary {1, 28, 28} end

-- ---- optimizer and schedule --------------------------------------------------------------------------

local default_lr = {adam = 4e-3, adamw = 4e-3, sgd = 0.1, rmsprop = 2e-3}
local lr = args.lr or default_lr[args.optimizer]
local params = model:parameters()
local opt
if args.optimizer == "adam" then
  opt = cnn.optim.Adam(params, {lr = lr})
elseif args.optimizer == "adamw" then
  opt = cnn.optim.AdamW(params, {lr = lr, weight_decay = 1e-2})
elseif args.optimizer == "sgd" then
  opt = cnn.optim.SGD(params, {lr = lr, momentum = 0.9, nesterov = true, weight_decay = 5e-4})
else
  opt = cnn.optim.RMSprop(params, {lr = lr})
end
local schedule = nil
if args.epochs > 0 and #train_loader > 0 then
  schedule = cnn.optim.lr.one_cycle(opt, {max_lr = lr, total_steps = args.epochs * #train_loader,
                                          cycle_momentum = args.optimizer ~= "rmsprop"})
end

-- ---- training ----------------------------------------------------------------------------------------

say(string.format("training on %d images (%d batches of %d), testing on %d; %s, peak lr %g, %d threads, "
                  .. "augmentation %s, %d loader workers%s", #train_set, #train_loader, args.batch_size, #test_set,
                  args.optimizer, lr, cnn.get_num_threads(), args.augment, workers,
                  ranks > 1 and string.format(", %d ranks", ranks) or ""))
local timer = cnn.timer()
local history = cnn.fit(model, train_loader, {
  epochs = args.epochs, optimizer = opt, scheduler = schedule, loss = nn.CrossEntropyLoss(), val = test_loader,
  metrics = {"accuracy"}, checkpoint = args.out, resume = args.resume, progress = args.progress,
  distributed = args.distributed,
})
local seconds = timer:elapsed()
if history.interrupted then os.exit(130) end -- fit has said where the training state is
if rank ~= 0 then return end

local result = cnn.evaluate(model, test_loader)
print(string.format("test accuracy %.2f%%  (loss %.4f)  after %d epochs, %.0fs of training", 100 * result.accuracy,
                    result.loss, #(history.loss or {}), seconds))
cnn.save(args.out .. "/model.safetensors", model, {accuracy = result.accuracy, epochs = #(history.loss or {})})
if history.loss and #history.loss > 0 then
  cnn.plot.history(history, args.out .. "/curves.png")
end
print(string.format("wrote %s/model.safetensors, %s/last.safetensors, %s/history.csv and %s/curves.png", args.out,
                    args.out, args.out, args.out))
