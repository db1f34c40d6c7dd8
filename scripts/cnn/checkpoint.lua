-- Checkpoints: safetensors files holding data only (never code), written atomically by the runtime.
--
--   cnn.save(path, model, extra?)   model:state_dict() (parameters and buffers by dotted name), and
--                                   extra: {key = string or number, ...} as metadata
--   cnn.load(path, model, {strict=true}) -> metadata
--                                   checks every name and shape against the model before copying
--                                   anything: on any error the model is left as it was
--   cnn.load(path) -> tensors, metadata     the raw contents
--
-- A model file is a plain safetensors file whose tensor names are the state-dict names, so other
-- safetensors readers see the model as it is. Training checkpoints (written by cnn.fit) hold more in
-- the same file: the model under "model.", the optimizer's state under "optimizer.", and the rest
-- of the training state as metadata (see save_training below); cnn.load reads the model out of them
-- too.
local cnn = require "cnn"
local common = require "cnn.common"

common.register_source()
local fail, is_tensor, shape_str = common.fail, common.is_tensor, common.shape_str

local checkpoint = {}

local MODEL_FORMAT, TRAINING_FORMAT = "cnnlua.model", "cnnlua.training"
local MODEL_PREFIX, OPTIMIZER_PREFIX = "model.", "optimizer."

-- ---- metadata values ------------------------------------------------------------------------------

-- Numbers as text that reads back to the same double (Lua's own tostring keeps 14 digits only).
function checkpoint.number_text(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  return string.format("%.17g", v)
end

local special = {nan = 0 / 0, inf = math.huge, ["-inf"] = -math.huge}

function checkpoint.text_number(s)
  if s == nil then return nil end
  local v = special[s]
  if v ~= nil then return v end
  return math.tointeger(tonumber(s)) or tonumber(s)
end

function checkpoint.list_text(list)
  local parts = {}
  for i = 1, #list do parts[i] = checkpoint.number_text(list[i]) end
  return table.concat(parts, ",")
end

function checkpoint.text_list(s)
  local list = {}
  if s == nil or s == "" then return list end
  for part in (s .. ","):gmatch("([^,]*),") do list[#list + 1] = checkpoint.text_number(part) end
  return list
end

-- ---- model files ------------------------------------------------------------------------------------

local function state_of(model, who)
  if type(model) == "table" and type(model.state_dict) == "function" then return model:state_dict() end
  if type(model) == "table" then
    for name, t in pairs(model) do
      if type(name) ~= "string" or not is_tensor(t) then
        fail("%s: expected a model or a table of name = tensor, found %s = %s", who, tostring(name), type(t))
      end
    end
    return model
  end
  fail("%s: expected a model or a table of name = tensor, got a %s", who, type(model))
end

function checkpoint.save(path, model, extra)
  if type(path) ~= "string" then fail("save: the first argument must be a file path, got a %s", type(path)) end
  local meta = {}
  if extra ~= nil then
    if type(extra) ~= "table" then fail("save: extra metadata must be a table, got a %s", type(extra)) end
    for k, v in pairs(extra) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
        fail("save: extra metadata must map strings to strings or numbers (found %s = %s)", tostring(k), type(v))
      end
      meta[k] = type(v) == "number" and checkpoint.number_text(v) or v
    end
  end
  meta.format = MODEL_FORMAT
  cnn.safetensors_save(path, state_of(model, "save"), meta)
end

-- The model's tensors in a file's contents: all of them in a model file, those under "model." in a
-- training checkpoint.
local function model_tensors(tensors, meta)
  if meta.format ~= TRAINING_FORMAT then return tensors end
  local out = {}
  for name, t in pairs(tensors) do
    if name:sub(1, #MODEL_PREFIX) == MODEL_PREFIX then out[name:sub(#MODEL_PREFIX + 1)] = t end
  end
  return out
end

-- Reads a file, with the path in every error message.
local function read(path, who)
  if type(path) ~= "string" then fail("%s: the first argument must be a file path, got a %s", who, type(path)) end
  local ok, tensors, meta = pcall(cnn.safetensors_load, path)
  if not ok then fail("%s: %s", who, (tostring(tensors):gsub("^safetensors_load: ", ""))) end
  return tensors, meta
end

-- Copies a state into a model, or raises naming the first problem; nothing is copied on error.
local function load_into(model, sd, path, who, strict)
  if type(model) ~= "table" or type(model.load_state_dict) ~= "function" then
    fail("%s: expected a model (with load_state_dict), got a %s", who, type(model))
  end
  local ok, err = pcall(model.load_state_dict, model, sd, {strict = strict})
  if not ok then
    local reason = tostring(err):gsub("^[^:]*load_state_dict: ", ""):gsub("the state dict has", "the file has")
    fail("%s %s: %s", who, path, reason)
  end
end

function checkpoint.load(path, model, options)
  local tensors, meta = read(path, "load")
  if model == nil then return model_tensors(tensors, meta), meta end
  local strict = true
  if options ~= nil then
    if type(options) ~= "table" then fail("load: options must be a table, got a %s", type(options)) end
    if options.strict ~= nil then strict = options.strict and true or false end
  end
  load_into(model, model_tensors(tensors, meta), path, "load", strict)
  return meta
end

-- ---- training checkpoints -----------------------------------------------------------------------------

-- Writes model + optimizer + scheduler + the fit state (a table of strings: fit.lua encodes it) in
-- one file. The scheduler's position is kept as metadata under "scheduler.".
function checkpoint.save_training(path, parts)
  local tensors, meta = {}, {}
  for name, t in pairs(parts.model:state_dict()) do tensors[MODEL_PREFIX .. name] = t end
  if parts.optimizer then
    local opt_tensors, opt_meta = parts.optimizer:state_tensors(OPTIMIZER_PREFIX)
    for k, v in pairs(opt_tensors) do tensors[k] = v end
    for k, v in pairs(opt_meta) do meta[k] = v end
  end
  if parts.scheduler then
    local s = parts.scheduler:state_dict()
    meta["scheduler.name"] = s.name
    meta["scheduler.last_epoch"] = checkpoint.number_text(s.last_epoch)
    meta["scheduler.base_lrs"] = checkpoint.list_text(s.base_lrs)
  end
  for k, v in pairs(parts.state or {}) do meta[k] = v end
  meta.format = TRAINING_FORMAT
  cnn.safetensors_save(path, tensors, meta)
end

-- Restores model, optimizer and scheduler from a training checkpoint and returns its metadata.
-- All or nothing: when any part is refused, the parts already restored are put back.
function checkpoint.load_training(path, parts)
  local who = "resume"
  local tensors, meta = read(path, who)
  if meta.format ~= TRAINING_FORMAT then
    fail("%s: %s is not a training checkpoint (format %s)", who, path, tostring(meta.format))
  end
  local model, opt, sched = parts.model, parts.optimizer, parts.scheduler
  local model_before = model:state_dict {copy = true}
  local opt_before = opt and opt:state_dict()
  local sched_before = sched and sched:state_dict()
  local ok, err = pcall(function()
    load_into(model, model_tensors(tensors, meta), path, who, true)
    if opt then
      local ok_opt, e = pcall(opt.load_state_tensors, opt, tensors, meta, OPTIMIZER_PREFIX)
      if not ok_opt then fail("%s %s: the optimizer state does not fit: %s", who, path, tostring(e)) end
    end
    if sched then
      if meta["scheduler.name"] == nil then
        fail("%s %s: the checkpoint has no scheduler state but fit was given a scheduler", who, path)
      end
      local ok_s, e = pcall(sched.load_state_dict, sched, {
        name = meta["scheduler.name"],
        last_epoch = checkpoint.text_number(meta["scheduler.last_epoch"]),
        base_lrs = checkpoint.text_list(meta["scheduler.base_lrs"]),
      })
      if not ok_s then fail("%s %s: the scheduler state does not fit: %s", who, path, tostring(e)) end
    end
  end)
  if not ok then
    model:load_state_dict(model_before)
    if opt then opt:load_state_dict(opt_before) end
    if sched then sched:load_state_dict(sched_before) end
    error(err, 0)
  end
  return meta
end

checkpoint.shape_str = shape_str

return checkpoint
