-- cnn.fit and cnn.evaluate: the training loop users would otherwise write by hand, Keras style.
--
--   local history = cnn.fit(model, train_loader, {epochs=5, optimizer=opt, loss=nn.CrossEntropyLoss(),
--                           val=test_loader, metrics={"accuracy"}, checkpoint="runs/lenet", resume=true})
--   cnn.evaluate(model, test_loader)   --> {loss=..., accuracy=...}
--
-- Options of fit (all optional):
--   epochs=1            the epoch to stop after (with resume, the total: a run stopped after epoch 3
--                       and resumed with epochs=5 trains epochs 4 and 5)
--   optimizer           default cnn.optim.Adam(model:parameters(), {lr = lr or 1e-3})
--   loss                a loss module, a function(output, target) or a name ("cross_entropy", "nll",
--                       "mse", "l1", "bce", "bce_with_logits"); default cross entropy
--   metrics             {"accuracy", "top5", {name=, fn=}, ...}; default {"accuracy"} for a
--                       classification loss (cross entropy, nll), none otherwise
--   val                 a loader (or dataset) evaluated after every epoch: val_loss, val_<metric>
--   scheduler           an lr schedule (cnn.optim.lr.*), stepped once per epoch, or per batch when
--                       scheduler_interval="batch" (the default for one_cycle)
--   clip_grad_norm      clips the gradient norm of the parameters before every step
--   checkpoint="dir"    writes dir/last.safetensors after every epoch (model, optimizer, scheduler,
--                       generator state, history: everything resume needs), dir/best.safetensors
--                       (a model file) when the monitored value improves, and dir/history.csv
--   monitor, mode       the value best.safetensors follows (default early_stopping's, else val_loss
--                       with val, else loss) and whether "min" or "max" is better (default: max for
--                       names containing "acc", min otherwise)
--   resume=true         continues from dir/last.safetensors when it exists: the next epoch, the same
--                       optimizer and schedule state, generator state and batch order, so that a
--                       resumed run computes exactly what an uninterrupted one does
--   early_stopping={patience=3, monitor=, mode=, min_delta=0, restore_best_weights=false}
--   callbacks={on_train_begin=fn(logs), on_epoch_begin=fn(epoch), on_batch_end=fn(batch, logs),
--              on_epoch_end=fn(epoch, logs), on_train_end=fn(history)}   (or a list of such
--              tables); on_epoch_end returning false stops training
--   verbose=true, progress="bar"|"line"|"none" (default: a bar on a terminal, else one line per epoch),
--   output=io.stdout (where progress goes: anything with write and flush methods)
--   lr, batch_size, seed  used when fit makes the optimizer, or a loader from a dataset
--   distributed=true    data-parallel training under mpirun (cnn.distributed): every rank starts
--                       from rank 0's weights, takes its slice of every global batch of the loader
--                       and averages gradients before each step, so the run follows one process
--                       training with the same global batch (batch norm statistics are per rank, as
--                       in PyTorch's DDP). Validation batches are dealt out over the ranks; losses
--                       and metrics are summed over all ranks. Only rank 0 prints and writes the
--                       checkpoint directory, which every rank reads to resume (a shared directory
--                       across machines). Without mpirun it is ordinary training.
--
-- fit returns the history: {loss={...}, accuracy={...}, val_loss={...}, val_accuracy={...}, lr={...},
-- epoch_time={...}}, one value per epoch (resumed runs include the epochs before the resume), plus
-- history.stopped ("early_stopping" or "callback") and history.best = {monitor=, value=, epoch=}.
--
-- Interruption (Ctrl-C in cnnlua, or cnn_interrupt() from C): the training step in progress
-- finishes, then fit writes dir/last.safetensors at that point (inside the epoch, when the data is a
-- cnn.data loader, which can skip the batches already trained) and returns the history of the
-- completed epochs with history.interrupted = true; resume=true continues from there exactly. A
-- Ctrl-C during validation ends the run after that epoch is saved. A second Ctrl-C (or Ctrl-C under
-- stock lua, whose handler cannot wait) stops at once: the epoch in progress is abandoned, the model
-- in memory keeps the weights of its last step, and dir/last.safetensors still holds the end of the
-- last completed epoch. Other errors are raised as usual (with the model's training flags restored).
local cnn = require "cnn"
local checkpoint = require "cnn.checkpoint"
local metrics_lib = require "cnn.fit.metrics"
local progress_lib = require "cnn.fit.progress"
local csvlog = require "cnn.fit.csvlog"
local files = require "cnn.data.files"

local M = {}

-- Whether an interrupted fit raises "interrupted" after saving instead of returning the history: for
-- callers that must not mistake a partial run for a finished one (a sweep trial).
M.raise_on_interrupt = false

local is_tensor = cnn.is_tensor
local number_text, text_number = checkpoint.number_text, checkpoint.text_number
local list_text, text_list = checkpoint.list_text, checkpoint.text_list

local function fail(fmt, ...) error("fit: " .. string.format(fmt, ...), 0) end

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- ---- options -------------------------------------------------------------------------------------

local known_options = {}
for _, k in ipairs {"epochs", "optimizer", "loss", "metrics", "val", "scheduler", "scheduler_interval",
                    "clip_grad_norm", "checkpoint", "monitor", "mode", "resume", "early_stopping",
                    "callbacks", "verbose", "progress", "lr", "batch_size", "seed", "output",
                    "distributed"} do
  known_options[k] = true
end

local loss_names = {
  cross_entropy = cnn.cross_entropy, nll = cnn.nll_loss, mse = cnn.mse_loss, l1 = cnn.l1_loss,
  bce = cnn.bce_loss, bce_with_logits = cnn.bce_with_logits,
}

-- The loss as a function, and whether it is a classification loss (which decides default metrics).
local function resolve_loss(loss, who)
  if loss == nil then return cnn.cross_entropy, true end
  if type(loss) == "string" then
    local fn = loss_names[loss]
    if not fn then fail("%s: unknown loss '%s'", who, loss) end
    return fn, loss == "cross_entropy" or loss == "nll"
  end
  if not callable(loss) then fail("%s: loss must be a loss module, a function or a name, not a %s", who, type(loss)) end
  local name = type(loss) == "table" and loss.__name or nil
  local fn = type(loss) == "function" and loss or function(output, target) return loss(output, target) end
  return fn, name == "CrossEntropyLoss" or name == "NLLLoss"
end

local function resolve_metrics(list, classification)
  if list == nil then list = classification and {"accuracy"} or {} end
  if type(list) ~= "table" then fail("metrics must be a list such as {\"accuracy\"}") end
  local ok, resolved = pcall(metrics_lib.resolve, list)
  if not ok then fail("%s", resolved) end
  return resolved
end

-- A loader for v: loaders and other callables as they are; datasets and tensors get one.
local function as_loader(v, what, options, shuffle)
  local data = cnn.data
  if data.is_loader(v) then return v end
  if data.is_dataset(v) or is_tensor(v) then
    return data.loader(v, {batch_size = options.batch_size or 32, shuffle = shuffle, seed = options.seed or 1})
  end
  if callable(v) then return v end
  fail("%s must be a loader (cnn.data.loader), a dataset or a tensor, not a %s", what, type(v))
end

local function batch_count(loader)
  local mt = getmetatable(loader)
  if type(mt) == "table" and mt.__len then return #loader end
  return nil
end

-- The batches of an epoch: a loader replays epoch e exactly; anything else is iterated as it is.
-- skip: batches of the epoch already trained before an interruption (loaders only).
local function can_skip_batches(loader)
  return type(loader) == "table" and type(loader.iter) == "function"
end

local function batches(loader, epoch, skip)
  if can_skip_batches(loader) then return loader:iter(epoch, skip) end
  return loader
end

-- ---- training flags -------------------------------------------------------------------------------

local function save_modes(model)
  local modes = {}
  if type(model.modules) == "function" then
    for _, m in ipairs(model:modules()) do modes[m] = rawget(m, "training") end
  end
  return modes
end

local function restore_modes(modes)
  for m, mode in pairs(modes) do rawset(m, "training", mode) end
end

-- ---- evaluation -------------------------------------------------------------------------------------

-- The sums of an epoch as a list (loss first, then the metrics in order, then the sample count),
-- which is what travels between ranks; and the means they give.
local function sums_list(sums, metrics, count)
  local list = {sums.loss}
  for _, m in ipairs(metrics) do list[#list + 1] = sums[m.name] end
  list[#list + 1] = count
  return list
end

local function means_of(list, metrics)
  local count = list[#list]
  local logs = {loss = count > 0 and list[1] / count or 0 / 0}
  for i, m in ipairs(metrics) do logs[m.name] = count > 0 and list[i + 1] / count or 0 / 0 end
  return logs, count
end

-- Mean loss and metrics of model over loader, in eval mode and without gradients. reduce, when
-- given, sums the per-process sums over the ranks of a distributed run.
local function run_evaluation(model, loader, loss_fn, metrics, reduce)
  local modes = save_modes(model)
  model:eval()
  local ok, result = pcall(cnn.no_grad, function()
    local sums, count = {loss = 0}, 0
    for _, m in ipairs(metrics) do sums[m.name] = 0 end
    for x, y in batches(loader) do
      local out = model(x)
      local n = x:size(1)
      sums.loss = sums.loss + loss_fn(out, y):item() * n
      for _, m in ipairs(metrics) do sums[m.name] = sums[m.name] + m.fn(out, y) end
      count = count + n
    end
    local list = sums_list(sums, metrics, count)
    if reduce then list = reduce(list) end
    return (means_of(list, metrics))
  end)
  restore_modes(modes)
  if not ok then error(result, 0) end
  return result
end

function M.evaluate(model, loader, options)
  options = options or {}
  if type(options) ~= "table" then fail("evaluate: options must be a table") end
  if type(model) ~= "table" or not callable(model) then fail("evaluate: expected a model, got a %s", type(model)) end
  local loss_fn, classification = resolve_loss(options.loss, "evaluate")
  local metrics = resolve_metrics(options.metrics, classification)
  loader = as_loader(loader, "evaluate: the data", {batch_size = options.batch_size or 256}, false)
  return run_evaluation(model, loader, loss_fn, metrics)
end

-- ---- monitored values ---------------------------------------------------------------------------------

local function default_mode(name)
  return name:find("acc") and "max" or "min"
end

local function improved(mode, value, best, min_delta)
  if value ~= value then return false end
  if best == nil then return true end
  if mode == "max" then return value > best + min_delta end
  return value < best - min_delta
end

local function check_early_stopping(es, default_monitor)
  if es == nil then return nil end
  if type(es) ~= "table" then fail("early_stopping must be a table such as {patience=3, monitor=\"val_loss\"}") end
  for k in pairs(es) do
    if k ~= "patience" and k ~= "monitor" and k ~= "mode" and k ~= "min_delta" and k ~= "restore_best_weights" then
      fail("early_stopping: unknown option '%s'", tostring(k))
    end
  end
  local r = {patience = es.patience or 3, monitor = es.monitor or default_monitor, min_delta = es.min_delta or 0,
             restore_best_weights = es.restore_best_weights or false}
  if math.tointeger(r.patience) == nil or r.patience < 1 then
    fail("early_stopping: patience must be a positive integer (got %s)", tostring(r.patience))
  end
  r.mode = es.mode or default_mode(r.monitor)
  if r.mode ~= "min" and r.mode ~= "max" then fail("early_stopping: mode must be \"min\" or \"max\"") end
  return r
end

-- ---- files ----------------------------------------------------------------------------------------------

local function make_dir(dir)
  local ok, err = files.make_dir(dir)
  if not ok then fail("%s", err) end
end

local file_exists = files.exists

-- ---- the state kept in training checkpoints ------------------------------------------------------------

local function rng_text() return list_text(cnn.get_rng_state()) end

-- Everything beyond model, optimizer and scheduler, as metadata strings.
local function fit_state(s)
  local meta = {
    ["fit.epoch"] = number_text(s.epoch), ["fit.step"] = number_text(s.step), ["fit.rng"] = rng_text(),
    ["fit.stopped"] = s.history.stopped or "",
  }
  if type(s.loader) == "table" and s.loader.seed then meta["fit.loader_seed"] = number_text(s.loader.seed) end
  local keys = {}
  for k, v in pairs(s.history) do
    if type(v) == "table" and k ~= "best" then
      keys[#keys + 1] = k
      meta["fit.history." .. k] = list_text(v)
    end
  end
  table.sort(keys)
  meta["fit.history"] = table.concat(keys, ",")
  if s.partial then -- stopped inside the epoch after s.epoch
    meta["fit.batch"] = number_text(s.partial.batch)
    meta["fit.partial"] = list_text(s.partial.sums)
    meta["fit.partial_seconds"] = number_text(s.partial.seconds)
    meta["fit.partial_lr"] = number_text(s.partial.lr)
  end
  if s.best.value ~= nil then
    meta["fit.best"] = number_text(s.best.value)
    meta["fit.best_epoch"] = number_text(s.best.epoch)
  end
  if s.es then
    if s.es.best ~= nil then meta["fit.es_best"] = number_text(s.es.best) end
    meta["fit.es_wait"] = number_text(s.es.wait)
  end
  return meta
end

local function restore_fit_state(s, meta, path)
  local epoch = math.tointeger(text_number(meta["fit.epoch"]))
  local rng = text_list(meta["fit.rng"])
  if epoch == nil or #rng ~= 4 or meta["fit.history"] == nil then
    fail("resume: %s lacks the training state (epoch, generator state, history)", path)
  end
  s.epoch, s.step = epoch, math.tointeger(text_number(meta["fit.step"])) or 0
  cnn.set_rng_state(rng)
  local history = {}
  for k in meta["fit.history"]:gmatch("[^,]+") do history[k] = text_list(meta["fit.history." .. k]) end
  if meta["fit.stopped"] ~= nil and meta["fit.stopped"] ~= "" then history.stopped = meta["fit.stopped"] end
  s.history = history
  local batch = math.tointeger(text_number(meta["fit.batch"]))
  if batch and batch > 0 then
    s.partial = {batch = batch, sums = text_list(meta["fit.partial"]),
                 seconds = text_number(meta["fit.partial_seconds"]) or 0, lr = text_number(meta["fit.partial_lr"])}
    if #s.partial.sums ~= #s.metrics + 2 then
      fail("resume: %s was saved inside an epoch with other metrics than this run's", path)
    end
  end
  s.best.value = text_number(meta["fit.best"])
  s.best.epoch = text_number(meta["fit.best_epoch"])
  if s.es then
    s.es.best = text_number(meta["fit.es_best"])
    s.es.wait = math.tointeger(text_number(meta["fit.es_wait"])) or 0
  end
end

-- ---- callbacks ---------------------------------------------------------------------------------------------

local callback_names = {on_train_begin = true, on_epoch_begin = true, on_batch_end = true, on_epoch_end = true,
                        on_train_end = true}

local function check_callbacks(cbs)
  if cbs == nil then return {} end
  if type(cbs) ~= "table" then fail("callbacks must be a table of functions (on_epoch_end=...)") end
  local list = cbs[1] ~= nil and cbs or {cbs}
  for i, cb in ipairs(list) do
    for k, v in pairs(cb) do
      if not callback_names[k] then fail("callbacks: unknown callback '%s'", tostring(k)) end
      if not callable(v) then fail("callbacks: %s must be a function", k) end
    end
    list[i] = cb
  end
  return list
end

-- Calls every callback of a kind; returns false when one of them returned false.
local function notify(list, kind, ...)
  local go_on = true
  for _, cb in ipairs(list) do
    if cb[kind] and cb[kind](...) == false then go_on = false end
  end
  return go_on
end

-- ---- fit ----------------------------------------------------------------------------------------------------

local function is_interrupt(err)
  return type(err) == "string" and err:find("interrupted", 1, true) ~= nil
end

local function interruption_message(s)
  local at = s.stopped_at
  if at and at.batch > 0 then
    local where = string.format("interrupted in epoch %d after batch %d", at.epoch, at.batch)
    if at.saved then
      return string.format("%s; %s/last.safetensors holds that point: run again with resume=true to continue",
                           where, s.dir)
    end
    if s.dir then
      return string.format("%s; %s/last.safetensors holds epoch %d (this data cannot restart mid-epoch)", where,
                           s.dir, s.epoch)
    end
    return where
  end
  if at then
    return string.format("interrupted after epoch %d%s", s.epoch, s.dir and string.format(
      "; %s/last.safetensors holds it: run again with resume=true to continue", s.dir) or "")
  end
  return string.format("interrupted in epoch %d%s", s.epoch + 1, s.dir and string.format(
    "; %s/last.safetensors holds epoch %d: run again with resume=true to continue", s.dir, s.epoch) or "")
end

local function check_number_option(options, key, min)
  local v = options[key]
  if v ~= nil and (type(v) ~= "number" or v < min) then
    fail("%s must be a number >= %s (got %s)", key, tostring(min), tostring(v))
  end
end

-- One epoch of training; returns the epoch's mean loss and metrics, the lr of its last step, the
-- number of images and the seconds spent. partial, when given, is the part of this epoch trained
-- before an interruption ({batch=, sums=, seconds=, lr=}): training goes on after it.
-- A deferred interrupt (Ctrl-C) ends the epoch after the step it arrived in: the return values are
-- then nil and the partial state to save.
local function train_epoch(s, epoch, partial)
  local model, opt, loader = s.model, s.optimizer, s.loader
  model:train()
  local sums, count = {loss = 0}, 0
  for _, m in ipairs(s.metrics) do sums[m.name] = 0 end
  local seconds_before, lr, b = 0, nil, 0
  if partial then
    local list = partial.sums
    sums.loss, count = list[1], list[#list]
    for i, m in ipairs(s.metrics) do sums[m.name] = list[i + 1] end
    seconds_before, lr, b = partial.seconds, partial.lr, partial.batch
  end
  local running = {}
  local total = batch_count(loader) or 0
  local timer = cnn.timer()
  for x, y in batches(loader, epoch, b) do
    b = b + 1
    s.batch = b
    opt:zero_grad()
    local out = model(x)
    local loss = s.loss_fn(out, y)
    loss:backward()
    local n = x:size(1)
    local value = loss:item()
    local metric_sums = {}
    if #s.metrics > 0 then
      cnn.no_grad(function()
        for i, m in ipairs(s.metrics) do metric_sums[i] = m.fn(out, y) end
      end)
    end
    local stop = cnn.take_interrupt()
    if s.dist then
      -- the global batch: its sample count, mean loss and metric sums, the same on every rank (so
      -- a NaN, or Ctrl-C on any rank, stops every rank at the same batch instead of leaving the
      -- others waiting)
      local total = s.dist.allreduce_grads(s.params, n)
      local reduced = s.dist.all_sum_list({stop and 1 or 0, value * n, table.unpack(metric_sums)})
      stop, value, n = reduced[1] > 0, reduced[2] / total, total
      metric_sums = table.move(reduced, 3, #reduced, 1, {})
    end
    if value ~= value then
      fail("the loss is nan at epoch %d, batch %d (a learning rate too high? bad inputs?)", epoch, b)
    end
    if s.clip then cnn.clip_grad_norm(s.params, s.clip) end
    lr = opt.param_groups[1].lr
    opt:step()
    s.step = s.step + 1
    if s.scheduler and s.scheduler_interval == "batch" then s.scheduler:step() end
    sums.loss = sums.loss + value * n
    for i, m in ipairs(s.metrics) do sums[m.name] = sums[m.name] + metric_sums[i] end
    count = count + n
    for k, v in pairs(sums) do running[k] = v / count end
    s.progress:batch(epoch, b, total, count, seconds_before + timer:elapsed(), s.train_names, running)
    notify(s.callbacks, "on_batch_end", b, {loss = value, size = n, epoch = epoch})
    if stop then
      return nil, {batch = b, sums = sums_list(sums, s.metrics, count), seconds = seconds_before + timer:elapsed(),
                   lr = lr}
    end
  end
  local logs = means_of(sums_list(sums, s.metrics, count), s.metrics)
  return logs, lr or opt.param_groups[1].lr, count, seconds_before + timer:elapsed()
end

-- Saves the training state in the middle of epoch (after partial.batch batches) and stops.
local function stop_mid_epoch(s, epoch, partial)
  s.partial = partial
  s.stopped_at = {epoch = epoch, batch = partial.batch}
  -- resuming inside an epoch needs a loader that can skip the batches already trained
  if s.writes and can_skip_batches(s.loader) then
    checkpoint.save_training(s.dir .. "/last.safetensors", {model = s.model, optimizer = s.optimizer,
                             scheduler = s.scheduler, state = fit_state(s)})
    s.stopped_at.saved = true
  end
  error("interrupted", 0)
end

local function append(history, logs)
  for k, v in pairs(logs) do
    history[k] = history[k] or {}
    table.insert(history[k], v)
  end
end

local function copy_history(h)
  local c = {}
  for k, v in pairs(h) do c[k] = type(v) == "table" and table.move(v, 1, #v, 1, {}) or v end
  return c
end

local function run_epochs(s)
  local model = s.model
  for epoch = s.epoch + 1, s.epochs do
    if s.history.stopped then break end
    notify(s.callbacks, "on_epoch_begin", epoch)
    local epoch_timer = cnn.timer()
    local partial = s.partial
    s.partial = nil
    local logs, lr, images, train_seconds = train_epoch(s, epoch, partial)
    if logs == nil then
      local unfinished = lr -- train_epoch's second value is then the part of the epoch done
      stop_mid_epoch(s, epoch, unfinished)
    end
    if s.val then
      local reduce = s.dist and s.dist.all_sum_list
      for k, v in pairs(run_evaluation(model, s.val, s.loss_fn, s.metrics, reduce)) do logs["val_" .. k] = v end
    end
    logs.lr = lr
    if s.scheduler and s.scheduler_interval == "epoch" then s.scheduler:step() end
    logs.epoch_time = epoch_timer:elapsed() + (partial and partial.seconds or 0)

    local history = copy_history(s.history)
    append(history, logs)
    local monitored = logs[s.monitor]
    if monitored == nil then
      fail("cannot monitor '%s': the epoch's values are %s", s.monitor, table.concat(s.log_names, ", "))
    end
    if improved(s.mode, monitored, s.best.value, 0) then
      s.best.value, s.best.epoch = monitored, epoch
      if s.writes then
        checkpoint.save(s.dir .. "/best.safetensors", model, {epoch = epoch, monitor = s.monitor, value = monitored})
      end
      if s.es and s.es.restore_best_weights then s.best_state = model:state_dict {copy = true} end
    end
    if s.es then
      local v = logs[s.es.monitor]
      if v == nil then fail("early_stopping cannot monitor '%s': the epoch's values are %s", s.es.monitor,
                            table.concat(s.log_names, ", ")) end
      if improved(s.es.mode, v, s.es.best, s.es.min_delta) then
        s.es.best, s.es.wait = v, 0
      else
        s.es.wait = s.es.wait + 1
        if s.es.wait >= s.es.patience then history.stopped = "early_stopping" end
      end
    end
    local stop = notify(s.callbacks, "on_epoch_end", epoch, logs) == false
    if s.dist then stop = s.dist.all_sum(stop and 1 or 0) > 0 end -- every rank stops, or none
    if stop then history.stopped = "callback" end

    s.epoch = epoch
    local previous_history = s.history
    s.history = history
    if s.writes then
      local ok, err = pcall(function()
        checkpoint.save_training(s.dir .. "/last.safetensors", {model = model, optimizer = s.optimizer,
                                 scheduler = s.scheduler, state = fit_state(s)})
        csvlog.write(s.dir .. "/history.csv", history, s.train_names)
      end)
      if not ok then
        s.epoch, s.history = epoch - 1, previous_history
        error(err, 0)
      end
    end
    s.progress:epoch_end(epoch, s.log_names, logs, images, train_seconds)
    if history.stopped == "early_stopping" then
      s.progress:message(string.format("early stopping: %s has not improved for %d epochs (best %.4f)",
                                       s.es.monitor, s.es.patience, s.es.best))
    end
    -- Ctrl-C during validation or saving: the epoch is complete and saved, stop here
    local stop = cnn.take_interrupt()
    if s.dist then stop = s.dist.all_sum(stop and 1 or 0) > 0 end
    if stop and epoch < s.epochs and not history.stopped then
      s.stopped_at = {epoch = epoch + 1, batch = 0, saved = s.writes}
      error("interrupted", 0)
    end
  end
end

-- ---- data-parallel training -----------------------------------------------------------------------------

-- Joins the ranks (when run under mpirun) and gives this rank its part of the data.
local function start_distributed(s)
  local dist = require "cnn.distributed"
  dist.init()
  if dist.size() == 1 then return nil end
  if not cnn.data.is_loader(s.loader) then
    fail("distributed=true needs a cnn.data loader or dataset to shard, not a %s", type(s.loader))
  end
  s.loader = dist.shard(s.loader)
  if s.val ~= nil then
    if not cnn.data.is_loader(s.val) then fail("distributed=true needs val as a cnn.data loader or dataset") end
    s.val = dist.deal_batches(s.val)
  end
  return dist
end

-- After building and resuming: every rank must be at the same epoch, with rank 0's weights.
local function align_ranks(s)
  local dist = s.dist
  if dist.all_sum(s.epoch) ~= s.epoch * dist.size() then
    fail("distributed: the ranks resumed from different epochs (rank %d is after epoch %d): the checkpoint "
         .. "directory '%s' must be one directory all ranks can read", dist.rank(), s.epoch, tostring(s.dir))
  end
  dist.broadcast_params(s.params)
end

function M.fit(model, train, options)
  options = options or {}
  if type(options) ~= "table" then fail("options must be a table") end
  for k in pairs(options) do
    if not known_options[k] then fail("unknown option '%s'", tostring(k)) end
  end
  if type(model) ~= "table" or not callable(model) then fail("expected a model, got a %s", type(model)) end
  local loader = as_loader(train, "the training data", options, true)
  local epochs = options.epochs or 1
  if math.tointeger(epochs) == nil or epochs < 0 then fail("epochs must be an integer >= 0 (got %s)", tostring(epochs)) end
  check_number_option(options, "clip_grad_norm", 0)

  -- models with sizes inferred on the first forward get their parameters before the optimizer
  if type(model.has_lazy_parameters) == "function" and model:has_lazy_parameters() then
    local ds = type(loader) == "table" and loader.dataset
    if ds and ds.example_shape then model:build(ds:example_shape()) end
  end

  local loss_fn, classification = resolve_loss(options.loss, "fit")
  local s = {
    model = model, loader = loader, epochs = math.tointeger(epochs), epoch = 0, step = 0, loss_fn = loss_fn,
    metrics = resolve_metrics(options.metrics, classification), clip = options.clip_grad_norm,
    optimizer = options.optimizer, scheduler = options.scheduler, history = {}, best = {},
    callbacks = check_callbacks(options.callbacks),
  }
  s.optimizer = s.optimizer or cnn.optim.Adam(model:parameters(), {lr = options.lr or 1e-3})
  s.params = model:parameters()
  if options.val ~= nil then s.val = as_loader(options.val, "val", {batch_size = options.batch_size or 256}, false) end
  if s.scheduler then
    local interval = options.scheduler_interval or (s.scheduler.name == "lr.one_cycle" and "batch" or "epoch")
    if interval ~= "batch" and interval ~= "epoch" then fail("scheduler_interval must be \"batch\" or \"epoch\"") end
    s.scheduler_interval = interval
  end

  s.train_names = {"loss"}
  for _, m in ipairs(s.metrics) do s.train_names[#s.train_names + 1] = m.name end
  s.log_names = {}
  for _, n in ipairs(s.train_names) do s.log_names[#s.log_names + 1] = n end
  if s.val then
    for _, n in ipairs(s.train_names) do s.log_names[#s.log_names + 1] = "val_" .. n end
  end
  local default_monitor = s.val and "val_loss" or "loss"
  s.es = check_early_stopping(options.early_stopping, default_monitor)
  if s.es then s.es.wait = 0 end
  s.monitor = options.monitor or (s.es and s.es.monitor) or default_monitor
  s.mode = options.mode or default_mode(s.monitor)
  if s.mode ~= "min" and s.mode ~= "max" then fail("mode must be \"min\" or \"max\"") end
  if options.distributed then s.dist = start_distributed(s) end
  local progress_mode = progress_lib.mode(options.progress, options.verbose)
  if s.dist and not s.dist.is_main() then progress_mode = "none" end
  s.progress = progress_lib.new(progress_mode, s.epochs, options.output)

  if options.checkpoint ~= nil then
    if type(options.checkpoint) ~= "string" then fail("checkpoint must be a directory name") end
    s.dir = options.checkpoint
    s.writes = not s.dist or s.dist.is_main()
    if s.writes then make_dir(s.dir) end
  elseif options.resume then
    fail("resume=true needs checkpoint=<directory> to resume from")
  end
  if options.resume then
    local path = s.dir .. "/last.safetensors"
    if file_exists(path) then
      local meta = checkpoint.load_training(path, {model = model, optimizer = s.optimizer, scheduler = s.scheduler})
      restore_fit_state(s, meta, path)
      local seed = text_number(meta["fit.loader_seed"])
      if seed and type(loader) == "table" and loader.seed and seed ~= loader.seed then
        s.progress:message(string.format("warning: the checkpoint was trained with loader seed %d, this loader has "
                                         .. "seed %d: the batches will differ from an uninterrupted run", seed,
                                         loader.seed))
      end
      if s.es and s.es.restore_best_weights and file_exists(s.dir .. "/best.safetensors") then
        s.best_state = checkpoint.load(s.dir .. "/best.safetensors")
      end
      s.progress:message(string.format("resuming from %s after epoch %d%s%s", path, s.epoch,
                                       s.partial and string.format(" and batch %d of epoch %d", s.partial.batch,
                                                                   s.epoch + 1) or "",
                                       s.history.stopped and " (training had stopped: " .. s.history.stopped .. ")" or ""))
    end
  end

  if s.dist then align_ranks(s) end

  local modes = save_modes(model)
  notify(s.callbacks, "on_train_begin", {epochs = s.epochs, start_epoch = s.epoch + 1})
  -- Ctrl-C lets the step in progress finish, then fit saves and returns (a second Ctrl-C stops
  -- at once, abandoning the epoch in progress)
  local deferring = cnn.defer_interrupts(true)
  local ok, err = pcall(run_epochs, s)
  cnn.defer_interrupts(deferring)
  restore_modes(modes)
  local history = s.history
  if not ok then
    if not is_interrupt(err) then error(err, 0) end
    history.interrupted = true
    s.progress:message(interruption_message(s))
    if M.raise_on_interrupt then error("fit: interrupted", 0) end
  end
  if s.best_state and ok then
    model:load_state_dict(s.best_state)
  end
  if s.best.value ~= nil then history.best = {monitor = s.monitor, value = s.best.value, epoch = s.best.epoch} end
  notify(s.callbacks, "on_train_end", history)
  return history
end

return M
