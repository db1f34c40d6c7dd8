-- sweep.lua - a hyperparameter sweep on Fashion-MNIST: learning rate x batch size x dropout for a
-- small convolutional network, with weak trials stopped early (ASHA), every result kept in --out,
-- and at the end the leaderboard and one plot per hyperparameter (--out/plot_<name>.png).
--
--   cnnlua scripts/sweep.lua                     (24 trials, about 10 minutes on 2 cores)
--   cnnlua scripts/sweep.lua --quick             (a one-minute smoke run)
--   mpirun -np 4 --map-by node cnnlua scripts/sweep.lua   (spread over 4 machines, one rank each)
--
-- Stop it at any time (Ctrl-C) and run the same command again: finished trials are kept, the
-- others run again, each continuing from its own checkpoint (cnn.fit's resume). Each trial trains
-- on the first 54,000 training images and is judged on the last 6,000 (the test set stays untouched
-- for the final model); cnn.sweep.show("runs/sweep") prints the leaderboard again.
local cnn = rawget(_G, "cnn") or require "cnn"
local argparse = require "argparse"

local nn = cnn.nn

local parser = argparse("sweep.lua", "Sweep learning rate, batch size and dropout of a Fashion-MNIST network.")
parser:flag("--quick", "A one-minute smoke run: 4 small trials.")
parser:option("--out", "Directory of the sweep (results, trial logs and checkpoints, plots).")
parser:option("--workers", "Trials run at the same time (each gets cores / workers threads).", "2"):convert(tonumber)
parser:option("--data-dir", "Folder holding the Fashion-MNIST IDX files.", cnn.data.FASHION_MNIST_DIR)
local args = parser:parse()

local setting = args.quick
  and {train = 2000, val = 1000, epochs = 2, out = "runs/sweep_quick",
       space = {lr = {1e-3, 4e-3}, batch_size = {64}, dropout = {0.1, 0.5}}}
  or {train = 54000, val = 6000, epochs = 8, out = "runs/sweep",
      space = {lr = {3e-4, 1e-3, 3e-3, 1e-2}, batch_size = {32, 128}, dropout = {0.1, 0.3, 0.5}}}
local out = args.out or setting.out

-- Pixel statistics of the Fashion-MNIST training images (scaled to [0, 1]).
local MEAN, STD = 0.2860, 0.3530
local function normalize(x) return (x - MEAN) / STD end

-- The first `train` training images to learn from and the last `val` ones to judge by.
local function load_data()
  local all = cnn.data.fashion_mnist {split = "train", dir = args.data_dir}
  local first, last = {}, {}
  for i = 1, setting.train do first[i] = i end
  for i = 1, setting.val do last[i] = #all - setting.val + i end
  return all:subset(first), all:subset(last)
end

-- conv 5x5 (12) -> pool -> conv 5x5 (24) -> pool -> dense 128 -> dropout -> 10 classes
local function make_model(dropout)
  return nn.Sequential {
    nn.Conv2d(1, 12, 5, {padding = 2}), nn.ReLU(), nn.MaxPool2d(2),   -- 28x28 -> 14x14
    nn.Conv2d(12, 24, 5, {padding = 2}), nn.ReLU(), nn.MaxPool2d(2),  -- 14x14 -> 7x7
    nn.Flatten(), nn.Linear(24 * 7 * 7, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 10),
  }
end

-- One trial: trains with the trial's hyperparameters, reports validation accuracy after every
-- epoch (ASHA stops the weak trials there), and keeps its checkpoints in the trial's directory.
local function run(cfg, report)
  local train_set, val_set = load_data()
  local loader = cnn.data.loader(train_set, {batch_size = cfg.batch_size, shuffle = true, seed = cfg._seed,
                                             transform = normalize})
  local val_loader = cnn.data.loader(val_set, {batch_size = 500, transform = normalize})
  local model = make_model(cfg.dropout)
  local history = cnn.fit(model, loader, {
    epochs = setting.epochs, optimizer = cnn.optim.Adam(model:parameters(), {lr = cfg.lr}),
    loss = nn.CrossEntropyLoss(), val = val_loader, metrics = {"accuracy"}, progress = "line",
    checkpoint = cfg._dir, resume = true,
    callbacks = {on_epoch_end = function(epoch, logs)
      report(epoch, {val_accuracy = logs.val_accuracy, val_loss = logs.val_loss, loss = logs.loss})
    end},
  })
  local last = #history.val_accuracy
  return {val_accuracy = history.val_accuracy[last], val_loss = history.val_loss[last], loss = history.loss[last]}
end

local summary = cnn.sweep {
  space = setting.space, strategy = "grid", workers = math.tointeger(args.workers) or 2,
  metric = "val_accuracy", mode = "max", out = out, run = run,
  scheduler = cnn.sweep.asha {min_resource = 1, eta = 2, max_resource = setting.epochs},
}

local best = summary.best
if best then
  print(string.format("best: lr %g, batch size %d, dropout %g -> validation accuracy %.2f%% (trial %d; weights in %s)",
                      best.params.lr, best.params.batch_size, best.params.dropout, 100 * best.value, best.trial,
                      best.dir .. "/best.safetensors"))
end
