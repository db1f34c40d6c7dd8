-- Dropout layers: in training mode each element (Dropout) or each whole channel of N x C x H x W
-- (Dropout2d) is zeroed with probability p and the rest scaled by 1/(1-p) ("inverted" dropout, so
-- evaluation needs no rescaling); in evaluation mode they return their input.
--
--   nn.Dropout(p=0.5)   nn.Dropout{rate=0.5}   (Keras' name)   nn.Dropout2d(p=0.5)
local cnn = require "cnn"
local Module = require "cnn.nn.module"

local args = Module.args
local M = {}

local function dropout_class(name, channelwise)
  local cls = Module:extend(name)
  function cls:init(p)
    if type(p) == "table" then
      local o = args.options(name, p, {"p", "rate"})
      p = o.p
      if p == nil then p = o.rate end
    end
    self.p = args.number(name, "p", p, 0.5, 0, 1)
  end
  function cls:forward(x)
    if channelwise then
      self:check_input(x, 3, 4, "N x C x H x W")
    else
      self:check_input(x, 0, math.huge, "any shape")
    end
    if not self.training or self.p == 0 then return x end
    return cnn.dropout(x, self.p, true, channelwise)
  end
  function cls:extra_repr() return "p=" .. self.p end
  M[name] = cls
end

dropout_class("Dropout", false)
dropout_class("Dropout2d", true)

return M
