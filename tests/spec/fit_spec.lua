-- cnn.fit and cnn.evaluate: a short real training run, exact resumption (after a normal stop and
-- after an interruption), checkpoints and history.csv, early stopping, callbacks, progress lines,
-- evaluation modes; and the PNG charts of cnn.plot.
local cnn = require "cnn"
local files = require "files"
local read_file, remove_dir, temp_dir = files.read_file, files.remove_dir, files.temp_path
local A = require "assertions"

local nn = cnn.nn

local exists = require("cnn.data.files").exists

-- A two-class problem: the class is whether the 8 inputs sum to more than 0.
local function synthetic(n, seed)
  cnn.manual_seed(seed or 7)
  local x = cnn.randn(n, 8)
  local y = x:sum(2):gt(0) + 1
  return cnn.data.tensor_dataset(x, y)
end

-- A small network whose training uses the generator (dropout) and keeps buffers (batch norm).
local function small_model()
  return nn.Sequential {nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2)}
end

-- Model, optimizer, one-cycle schedule and loader, all made from the same seed.
local function setup(epochs)
  local ds = synthetic(120)
  cnn.manual_seed(3)
  local model = small_model()
  local opt = cnn.optim.Adam(model:parameters(), {lr = 0.02})
  local loader = cnn.data.loader(ds, {batch_size = 16, shuffle = true, seed = 5})
  local sched = cnn.optim.lr.one_cycle(opt, {max_lr = 0.02, total_steps = epochs * #loader})
  return model, opt, sched, loader
end

-- Every parameter and buffer as exact values.
local function weights(model)
  local out = {}
  for name, t in pairs(model:state_dict()) do out[name] = t:reshape(-1):totable() end
  return out
end

-- An output stream collecting what is written.
local function collector()
  local c = {text = ""}
  function c:write(...) self.text = self.text .. table.concat({...}) end
  function c:flush() end
  return c
end

describe("cnn.fit", function()
  local dir
  before_each(function() dir = temp_dir() end)
  after_each(function() remove_dir(dir) end)

  it("lowers the loss of a real problem", function()
    local ds
    local installed = io.open(cnn.data.FASHION_MNIST_DIR .. "/t10k-images-idx3-ubyte.gz", "rb")
    if installed then
      installed:close()
      local test = cnn.data.fashion_mnist {split = "test"}
      ds = test:subset((function()
        local rows = {}
        for i = 1, 3000 do rows[i] = i end
        return rows
      end)())
    else
      ds = synthetic(3000)
    end
    local train, val = ds:split(0.8, {seed = 1})
    cnn.manual_seed(1)
    local n_in = ds.x[1]:numel()
    local model = nn.Sequential {nn.Flatten(), nn.Linear(n_in, 64), nn.ReLU(), nn.Linear(64, ds.classes and 10 or 2)}
    local history = cnn.fit(model, cnn.data.loader(train, {batch_size = 64, shuffle = true}), {
      epochs = 3, optimizer = cnn.optim.Adam(model:parameters(), {lr = 2e-3}), loss = nn.CrossEntropyLoss(),
      val = cnn.data.loader(val, {batch_size = 200}), metrics = {"accuracy", "top5"}, verbose = false,
    })
    assert.are.equal(3, #history.loss)
    assert.is_true(history.loss[3] < history.loss[1] * 0.8)
    assert.is_true(history.val_loss[3] < history.val_loss[1])
    assert.is_true(history.val_accuracy[3] > 0.6)
    assert.is_true(history.top5[3] >= history.accuracy[3])
    for _, key in ipairs {"loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5", "lr", "epoch_time"} do
      assert.are.equal(3, #history[key], key)
    end
    local result = cnn.evaluate(model, val, {metrics = {"accuracy"}})
    A.assert_close(result.accuracy, history.val_accuracy[3], 1e-6)
    A.assert_close(result.loss, history.val_loss[3], 1e-5)
  end)

  it("resumes exactly: 2 epochs straight equal 1 epoch, resume, 1 epoch (bitwise)", function()
    local m1, o1, s1, l1 = setup(2)
    cnn.fit(m1, l1, {epochs = 2, optimizer = o1, scheduler = s1, checkpoint = dir .. "/a", verbose = false})

    local m2, o2, s2, l2 = setup(2)
    local h2 = cnn.fit(m2, l2, {epochs = 1, optimizer = o2, scheduler = s2, checkpoint = dir .. "/b", verbose = false})
    assert.are.equal(1, #h2.loss)
    cnn.manual_seed(12345) -- a new process would start from another generator state
    local m3, o3, s3, l3 = setup(2)
    cnn.rand(7)
    local h3 = cnn.fit(m3, l3, {epochs = 2, optimizer = o3, scheduler = s3, checkpoint = dir .. "/b", resume = true,
                               verbose = false})
    assert.are.equal(2, #h3.loss)
    assert.are.equal(h2.loss[1], h3.loss[1]) -- the history before the resume comes back too
    assert.are.same(weights(m1), weights(m3))
    assert.are.same(o1.state[1].exp_avg:totable(), o3.state[1].exp_avg:totable())
  end)

  it("trains as usual with distributed=true outside mpirun (bitwise)", function()
    local m1, o1, s1, l1 = setup(2)
    local h1 = cnn.fit(m1, l1, {epochs = 2, optimizer = o1, scheduler = s1, verbose = false})
    local m2, o2, s2, l2 = setup(2)
    local h2 = cnn.fit(m2, l2, {epochs = 2, optimizer = o2, scheduler = s2, verbose = false, distributed = true})
    assert.are.same(h1.loss, h2.loss)
    assert.are.same(weights(m1), weights(m2))
  end)

  it("returns on interruption with the last epoch saved, and resumes from it exactly", function()
    local m1, o1, s1, l1 = setup(3)
    cnn.fit(m1, l1, {epochs = 3, optimizer = o1, scheduler = s1, verbose = false})

    local m2, o2, s2, l2 = setup(3)
    local out = collector()
    local interrupt = {on_batch_end = function(batch, logs)
      if logs.epoch == 2 and batch == 3 then error("interrupted!") end
    end}
    local h = cnn.fit(m2, l2, {epochs = 3, optimizer = o2, scheduler = s2, checkpoint = dir, callbacks = interrupt,
                               progress = "line", output = out})
    assert.is_true(h.interrupted)
    assert.are.equal(1, #h.loss)
    assert.truthy(out.text:find("interrupted in epoch 2", 1, true), out.text)
    local _, meta = cnn.load(dir .. "/last.safetensors")
    assert.are.equal("1", meta["fit.epoch"])

    local m3, o3, s3, l3 = setup(3)
    local h3 = cnn.fit(m3, l3, {epochs = 3, optimizer = o3, scheduler = s3, checkpoint = dir, resume = true,
                               verbose = false})
    assert.is_nil(h3.interrupted)
    assert.are.equal(3, #h3.loss)
    assert.are.same(weights(m1), weights(m3))
  end)

  it("on Ctrl-C finishes the step, saves inside the epoch and resumes from there exactly", function()
    local m1, o1, s1, l1 = setup(3)
    local h1 = cnn.fit(m1, l1, {epochs = 3, optimizer = o1, scheduler = s1, verbose = false})

    local m2, o2, s2, l2 = setup(3)
    local out = collector()
    local ctrl_c = {on_batch_end = function(batch, logs)
      if logs.epoch == 2 and batch == 3 then cnn._interrupt() end
    end}
    local h = cnn.fit(m2, l2, {epochs = 3, optimizer = o2, scheduler = s2, checkpoint = dir, callbacks = ctrl_c,
                               progress = "line", output = out})
    assert.is_true(h.interrupted)
    assert.are.equal(1, #h.loss)
    -- the request is taken in the next step, which completes
    assert.truthy(out.text:find("interrupted in epoch 2 after batch 4; " .. dir .. "/last.safetensors holds that point",
                                1, true), out.text)
    local _, meta = cnn.load(dir .. "/last.safetensors")
    assert.are.equal("1", meta["fit.epoch"])
    assert.are.equal("4", meta["fit.batch"])
    assert.is_false(cnn.defer_interrupts(false)) -- fit put deferral back as it found it
    assert.is_false(cnn.take_interrupt())

    local m3, o3, s3, l3 = setup(3)
    local out3 = collector()
    local h3 = cnn.fit(m3, l3, {epochs = 3, optimizer = o3, scheduler = s3, checkpoint = dir, resume = true,
                               progress = "line", output = out3})
    assert.truthy(out3.text:find("after epoch 1 and batch 4 of epoch 2", 1, true), out3.text)
    assert.is_nil(h3.interrupted)
    assert.are.same(weights(m1), weights(m3))
    assert.are.same(h1.loss, h3.loss)
    assert.are.same(h1.accuracy, h3.accuracy)
  end)

  it("on a second Ctrl-C stops at once and keeps the last complete epoch", function()
    local m, o, sch, l = setup(3)
    local twice = {on_batch_end = function(batch, logs)
      if logs.epoch == 2 and batch == 2 then
        cnn._interrupt()
        cnn._interrupt()
      end
    end}
    local h = cnn.fit(m, l, {epochs = 3, optimizer = o, scheduler = sch, checkpoint = dir, callbacks = twice,
                             verbose = false})
    assert.is_true(h.interrupted)
    local _, meta = cnn.load(dir .. "/last.safetensors")
    assert.are.equal("1", meta["fit.epoch"])
    assert.is_nil(meta["fit.batch"])
  end)

  it("re-raises errors that are not interruptions, with the training flags restored", function()
    local model, opt, _, loader = setup(1)
    model:eval()
    local boom = {on_batch_end = function() error("boom") end}
    A.assert_error("boom", cnn.fit, model, loader, {optimizer = opt, callbacks = boom, verbose = false})
    assert.is_false(model.training)
    assert.is_false(model["4"].training)
  end)

  it("writes history.csv, last and best checkpoints", function()
    local model, opt, _, loader = setup(2)
    cnn.fit(model, loader, {epochs = 2, optimizer = opt, val = loader, checkpoint = dir, verbose = false})
    local csv = read_file(dir .. "/history.csv")
    local lines = {}
    for line in csv:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(3, #lines)
    assert.are.equal("epoch,loss,accuracy,val_loss,val_accuracy,lr,epoch_time", lines[1])
    assert.truthy(lines[3]:match("^2,[%d.e-]+,[%d.e-]+,[%d.e-]+,[%d.e-]+,[%d.e-]+,[%d.e-]+$"), lines[3])
    assert.is_true(exists(dir .. "/last.safetensors"))
    local _, meta = cnn.load(dir .. "/best.safetensors")
    assert.are.equal("val_loss", meta.monitor)
    assert.is_truthy(meta.epoch == "1" or meta.epoch == "2")
    cnn.load(dir .. "/best.safetensors", small_model()) -- a plain model file
  end)

  it("stops early when the monitored value stops improving", function()
    local _, _, _, loader = setup(1)
    local model = nn.Sequential {nn.Linear(8, 2)} -- deterministic, and with lr 0 it never improves
    local opt = cnn.optim.SGD(model:parameters(), {lr = 0})
    local seen = {}
    local h = cnn.fit(model, loader, {epochs = 10, optimizer = opt, verbose = false,
                                      early_stopping = {patience = 2, monitor = "accuracy"},
                                      callbacks = {on_epoch_end = function(epoch) seen[#seen + 1] = epoch end}})
    assert.are.equal("early_stopping", h.stopped)
    assert.are.equal(3, #h.loss)
    assert.are.same({1, 2, 3}, seen)
    assert.are.equal("accuracy", h.best.monitor)
    assert.are.equal(1, h.best.epoch)
  end)

  it("stops when a callback returns false, and calls every callback", function()
    local model, opt, _, loader = setup(1)
    local calls = {}
    local function log(name) return function() calls[name] = (calls[name] or 0) + 1 end end
    local h = cnn.fit(model, loader, {epochs = 5, optimizer = opt, verbose = false, callbacks = {
      on_train_begin = log("train_begin"), on_epoch_begin = log("epoch_begin"), on_batch_end = log("batch_end"),
      on_epoch_end = function(epoch) return epoch < 2 end, on_train_end = log("train_end")}})
    assert.are.equal("callback", h.stopped)
    assert.are.equal(2, #h.loss)
    assert.are.same({train_begin = 1, epoch_begin = 2, batch_end = 2 * #loader, train_end = 1}, calls)
  end)

  it("prints one line per epoch when not on a terminal", function()
    local model, opt, _, loader = setup(1)
    local out = collector()
    cnn.fit(model, loader, {epochs = 2, optimizer = opt, val = loader, progress = "line", output = out})
    local first = out.text:match("[^\n]+")
    assert.truthy(first:match("^epoch 1/2  loss %d%.%d%d%d%d  acc %d%.%d%d%d%d  val_loss %d%.%d%d%d%d  "
                              .. "val_acc %d%.%d%d%d%d  lr [%d.e-]+  %d+%.%ds  %d+ img/s$"), first)
    local bar = collector()
    cnn.fit(model, loader, {epochs = 1, optimizer = opt, progress = "bar", output = bar})
    assert.truthy(bar.text:find("Epoch 1/1 [", 1, true), bar.text)
    assert.truthy(bar.text:find(string.format("%d/%d", #loader, #loader), 1, true), bar.text)
  end)

  it("rejects bad options and explains a nan loss", function()
    local model, opt, _, loader = setup(1)
    A.assert_error("fit: unknown option 'epoch'", cnn.fit, model, loader, {epoch = 2})
    A.assert_error("resume=true needs checkpoint=", cnn.fit, model, loader, {resume = true, verbose = false})
    A.assert_error("fit: metrics: unknown metric 'precision'", cnn.fit, model, loader,
                   {metrics = {"precision"}, verbose = false})
    A.assert_error("the loss is nan at epoch 1, batch 1", cnn.fit, model, loader,
                   {optimizer = opt, verbose = false, loss = function(out, y) return cnn.cross_entropy(out, y) * (0 / 0) end})
  end)

  it("refuses a corrupt checkpoint on resume and leaves the model unchanged", function()
    local model, opt, _, loader = setup(1)
    cnn.fit(model, loader, {epochs = 1, optimizer = opt, checkpoint = dir, verbose = false})
    local bytes = read_file(dir .. "/last.safetensors")
    local f = assert(io.open(dir .. "/last.safetensors", "wb"))
    f:write(bytes:sub(1, #bytes // 2))
    f:close()
    local fresh, opt2, _, loader2 = setup(1)
    local before = weights(fresh)
    local ok, err = pcall(cnn.fit, fresh, loader2, {epochs = 2, optimizer = opt2, checkpoint = dir, resume = true,
                                                    verbose = false})
    assert.is_false(ok)
    assert.truthy(err:find("last.safetensors", 1, true), err)
    assert.are.same(before, weights(fresh))
  end)
end)

describe("cnn.evaluate", function()
  it("runs in eval mode without gradients and restores each module's mode", function()
    local model = small_model()
    local ds = synthetic(50)
    model:train()
    model["4"]:eval() -- a mixed state must come back as it was
    local r1 = cnn.evaluate(model, ds)
    local r2 = cnn.evaluate(model, cnn.data.loader(ds, {batch_size = 7}))
    A.assert_close(r1.loss, r2.loss, 1e-5) -- dropout off: the same whatever the batches
    assert.are.equal(r1.accuracy, r2.accuracy)
    assert.is_true(model.training)
    assert.is_false(model["4"].training)
    assert.is_nil(model["1"].weight.grad)
  end)
end)

describe("cnn.plot", function()
  it("writes compressed PNG files of training curves, pixel for pixel", function()
    local path = os.tmpname() .. ".png"
    local canvas = cnn.plot.history({loss = {0.9, 0.5, 0.4}, val_loss = {0.8, 0.6, 0.55},
                                     accuracy = {0.6, 0.8, 0.85}, val_accuracy = {0.65, 0.75, 0.8}}, path)
    local bytes = read_file(path)
    assert.are.equal("\137PNG\r\n\26\n", bytes:sub(1, 8))
    assert.is_true(#bytes < canvas.width * canvas.height * 3 / 10, "not compressed: " .. #bytes .. " bytes")
    local back = cnn.image.load(path)
    assert.are.same({3, canvas.height, canvas.width}, back:shape())
    assert.are.equal(0, (back - canvas:to_tensor()):abs():max():item())
    -- both colours of the legend are drawn
    local colors = {}
    for i = 1, #canvas.pixels do colors[canvas.pixels[i]] = true end
    assert.is_true(colors[cnn.plot.colors[1]])
    assert.is_true(colors[cnn.plot.colors[2]])
    os.remove(path)
  end)

  it("chooses nice ticks", function()
    local ticks, decimals = cnn.plot.nice_ticks(0.21, 0.99, 5)
    assert.are.same({0.2, 0.4, 0.6, 0.8, 1.0}, (function()
      local r = {}
      for i, t in ipairs(ticks) do r[i] = tonumber(string.format("%.10g", t)) end
      return r
    end)())
    assert.are.equal(1, decimals)
    A.assert_error("the history holds no metric to plot", cnn.plot.history, {})
  end)
end)
