-- Activation layers: ReLU, LeakyReLU, ELU, Sigmoid, Tanh, GELU, SiLU, Softmax, LogSoftmax, Identity,
-- and the Keras activation names ("relu", "softmax", ...) that Conv2d/Dense accept as activation=.
local cnn = require "cnn"
local Module = require "cnn.nn.module"

local args = Module.args
local M = {}

local function simple(name, fn)
  local cls = Module:extend(name)
  function cls:forward(x)
    self:check_input(x, 0, math.huge, "any shape")
    return fn(x)
  end
  M[name] = cls
  return cls
end

simple("ReLU", function(x) return x:relu() end)
simple("Sigmoid", function(x) return x:sigmoid() end)
simple("Tanh", function(x) return x:tanh() end)
simple("GELU", function(x) return x:gelu() end)
simple("SiLU", function(x) return x:silu() end)
simple("Softplus", function(x) return x:softplus() end)

local Identity = Module:extend("Identity")
function Identity:init() end
function Identity:forward(x) return x end
M.Identity = Identity

-- LeakyReLU(negative_slope=0.01) or LeakyReLU{negative_slope=...} (Keras: alpha=...)
local LeakyReLU = Module:extend("LeakyReLU")
function LeakyReLU:init(slope)
  if type(slope) == "table" then
    local o = args.options("LeakyReLU", slope, {"negative_slope", "alpha"})
    slope = o.negative_slope or o.alpha
  end
  self.negative_slope = args.number("LeakyReLU", "negative_slope", slope, 0.01)
end
function LeakyReLU:forward(x)
  self:check_input(x, 0, math.huge, "any shape")
  return x:leaky_relu(self.negative_slope)
end
function LeakyReLU:extra_repr() return "negative_slope=" .. self.negative_slope end
M.LeakyReLU = LeakyReLU

-- ELU(alpha=1) or ELU{alpha=...}
local ELU = Module:extend("ELU")
function ELU:init(alpha)
  if type(alpha) == "table" then alpha = args.options("ELU", alpha, {"alpha"}).alpha end
  self.alpha = args.number("ELU", "alpha", alpha, 1.0)
end
function ELU:forward(x)
  self:check_input(x, 0, math.huge, "any shape")
  return x:elu(self.alpha)
end
function ELU:extra_repr() return "alpha=" .. self.alpha end
M.ELU = ELU

-- Softmax(dim) / LogSoftmax(dim): dim is 1-based, negative counts from the end; the default is the
-- last dim (the classes of an N x C output).
local function softmax_class(name, fn)
  local cls = Module:extend(name)
  function cls:init(dim)
    if type(dim) == "table" then dim = args.options(name, dim, {"dim", "axis"}).dim or dim.axis end
    if dim ~= nil and math.type(dim) ~= "integer" then
      args.fail(name, "dim must be an integer, got %s", args.describe(dim))
    end
    self.dim = dim or -1
  end
  function cls:forward(x)
    self:check_input(x, 1, math.huge, "any shape")
    local nd = x:dim()
    if self.dim == 0 or self.dim > nd or self.dim < -nd then
      self:input_error(x, "dim %d is out of range for a %d-d input", self.dim, nd)
    end
    return fn(x, self.dim)
  end
  function cls:extra_repr() return "dim=" .. self.dim end
  M[name] = cls
end
softmax_class("Softmax", cnn.softmax)
softmax_class("LogSoftmax", cnn.log_softmax)

-- Keras activation names; nil/"linear" mean none.
local by_name = {
  relu = M.ReLU, sigmoid = M.Sigmoid, tanh = M.Tanh, gelu = M.GELU, silu = M.SiLU, swish = M.SiLU,
  elu = M.ELU, leaky_relu = M.LeakyReLU, softmax = M.Softmax, log_softmax = M.LogSoftmax,
  softplus = M.Softplus,
}

-- The activation module for an activation= option: a name, a module, a function, or nil. Softmax
-- by name runs over channel_dim (2 for N x C x H x W convolution outputs, as Keras' softmax runs
-- over its channels-last axis; the last dim otherwise).
function M.resolve(layer, activation, channel_dim)
  if activation == nil or activation == "linear" or activation == false then return nil end
  if type(activation) == "string" then
    local cls = by_name[activation]
    if cls == nil then
      local names = {}
      for k in pairs(by_name) do names[#names + 1] = k end
      table.sort(names)
      args.fail(layer, "unknown activation %q (known: linear, %s)", activation, table.concat(names, ", "))
    end
    if cls == M.Softmax or cls == M.LogSoftmax then return cls(channel_dim or -1) end
    return cls()
  end
  if Module.is_module(activation) or type(activation) == "function" then return activation end
  args.fail(layer, "activation must be a name like \"relu\", a module or a function, got %s", args.describe(activation))
end

-- How an activation shows in its layer's repr.
function M.describe(activation)
  if activation == nil then return nil end
  if type(activation) == "function" then return "function" end
  return tostring(activation)
end

return M
