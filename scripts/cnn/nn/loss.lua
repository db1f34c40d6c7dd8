-- Losses as modules, called as loss(prediction, target):
--
--   nn.CrossEntropyLoss{weight=nil, label_smoothing=0, ignore_index=nil, reduction="mean"}
--       logits N x C (or N x C x H x W), labels 1..C of shape N (or N x H x W)
--   nn.NLLLoss{weight=nil, ignore_index=nil, reduction="mean"}          log-probabilities, labels 1..C
--   nn.MSELoss{reduction="mean"}   nn.L1Loss{reduction="mean"}
--   nn.BCELoss{weight=nil, reduction="mean"}                            probabilities, targets in [0, 1]
--   nn.BCEWithLogitsLoss{weight=nil, pos_weight=nil, reduction="mean"}  raw scores, targets in [0, 1]
--
-- reduction is "mean", "sum" or "none". Targets may also be given as Lua tables of numbers. The
-- class weights are plain fields (not buffers): they are not part of a model's state_dict.
local cnn = require "cnn"
local Module = require "cnn.nn.module"

local args = Module.args
local M = {}

local function as_tensor(self, what, v)
  if cnn.is_tensor(v) then return v end
  if type(v) == "table" then return cnn.tensor(v) end
  if type(v) == "number" then return cnn.tensor(v) end
  error(string.format("%s: the %s must be a tensor, got %s", tostring(self), what, args.describe(v)), 0)
end

local function loss_class(name, fn, known)
  local cls = Module:extend(name)
  function cls:init(opts)
    opts = args.options(name, opts, known)
    local o = {}
    for _, k in ipairs(known) do o[k] = opts[k] end
    local r = o.reduction
    if r ~= nil and r ~= "mean" and r ~= "sum" and r ~= "none" then
      args.fail(name, "reduction must be \"mean\", \"sum\" or \"none\", got %s", args.describe(r))
    end
    for _, k in ipairs {"weight", "pos_weight"} do
      if o[k] ~= nil then
        if type(o[k]) == "table" and not cnn.is_tensor(o[k]) then o[k] = cnn.tensor(o[k]) end
        if not cnn.is_tensor(o[k]) then args.fail(name, "%s must be a tensor, got %s", k, args.describe(o[k])) end
      end
    end
    if o.label_smoothing ~= nil then args.number(name, "label_smoothing", o.label_smoothing, 0, 0, 1) end
    if o.ignore_index ~= nil and math.type(o.ignore_index) ~= "integer" then
      args.fail(name, "ignore_index must be an integer class label, got %s", args.describe(o.ignore_index))
    end
    rawset(self, "options", o)
  end
  function cls:forward(input, target)
    input = as_tensor(self, "prediction", input)
    target = as_tensor(self, "target", target)
    return fn(input, target, self.options)
  end
  function cls:extra_repr()
    local parts = {}
    for _, k in ipairs(known) do
      local v = self.options[k]
      if v ~= nil then parts[#parts + 1] = k .. "=" .. (cnn.is_tensor(v) and "tensor" or tostring(v)) end
    end
    return table.concat(parts, ", ")
  end
  M[name] = cls
end

loss_class("CrossEntropyLoss", cnn.cross_entropy, {"weight", "label_smoothing", "ignore_index", "reduction"})
loss_class("NLLLoss", cnn.nll_loss, {"weight", "ignore_index", "reduction"})
loss_class("MSELoss", cnn.mse_loss, {"reduction"})
loss_class("L1Loss", cnn.l1_loss, {"reduction"})
loss_class("BCELoss", cnn.bce_loss, {"weight", "reduction"})
loss_class("BCEWithLogitsLoss", cnn.bce_with_logits, {"weight", "pos_weight", "reduction"})

return M
