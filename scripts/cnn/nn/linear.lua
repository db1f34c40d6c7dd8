-- Fully connected layers and reshaping: Linear (alias Dense) and Flatten.
--
--   nn.Linear(in_features, out_features, {bias=true, activation=nil})
--   nn.Dense{units=120, activation="relu"}                 (Keras; in_features inferred)
--   nn.Dense{units=10, input_shape={784}}                  (Keras; in_features from input_shape)
--   nn.Linear(nil, 10)                                     (in_features inferred on the first forward)
--   nn.Flatten(start_dim=2, end_dim=-1)                    N x C x H x W -> N x (C*H*W)
--
-- y = x W^T + b over the last dimension of x (any leading dimensions); W is (out, in), initialised
-- as PyTorch does: uniform in +-1/sqrt(in), weight first, then bias.
local cnn = require "cnn"
local Module = require "cnn.nn.module"
local activation = require "cnn.nn.activation"
local init = require "cnn.nn.weight_init"

local args = Module.args
local M = {}

local Linear = Module:extend("Linear")

local table_options = {"in_features", "out_features", "units", "bias", "use_bias", "activation", "input_shape",
                       "input_dim"}

function Linear:init(a, b, c)
  local layer = self.__name
  local opts, in_features, out_features
  if type(a) == "table" and b == nil and c == nil then
    opts = args.options(layer, a, table_options)
    out_features = args.either(layer, opts, "units", "out_features")
    in_features = opts.in_features or opts.input_dim
    if out_features == nil then args.fail(layer, "the number of outputs is missing (give units=...)") end
  else
    opts = args.options(layer, c, {"bias", "use_bias", "activation", "input_shape"})
    in_features, out_features = a, b
    args.positive_int(layer, "in_features", in_features)
    if out_features == nil then args.fail(layer, "expected (in_features, out_features, options?), got no out_features") end
  end
  self.in_features = args.positive_int(layer, "in_features", in_features)
  self.out_features = args.positive_int(layer, "out_features", out_features)
  self.has_bias = args.boolean(layer, "bias", args.either(layer, opts, "bias", "use_bias"), true)
  rawset(self, "activation", activation.resolve(layer, opts.activation))
  args.declare_input_shape(self, layer, opts.input_shape, 1, "{features} (flatten images first)", "in_features")
  if self.in_features then self:_create(self.in_features) else rawset(self, "_lazy", true) end
end

-- zero=true: zeros without drawing random numbers (a state dict is about to overwrite them).
function Linear:_create(in_features, zero)
  self.in_features = in_features
  local bound = init.default_bound(in_features)
  local n = self.out_features
  self:register_parameter("weight", zero and cnn.zeros(n, in_features) or cnn.uniform({n, in_features}, -bound, bound))
  if self.has_bias then
    self:register_parameter("bias", zero and cnn.zeros(n) or cnn.uniform({n}, -bound, bound))
  end
  rawset(self, "_lazy", nil)
end

function Linear:_build_from_state(sd, prefix)
  local w = sd[prefix .. "weight"]
  if not cnn.is_tensor(w) or w:dim() ~= 2 then return false end
  self:_create(w:size(2), true)
  return true
end

function Linear:_unbuild()
  self:register_parameter("weight", nil)
  self:register_parameter("bias", nil)
  self.in_features = nil
  rawset(self, "_lazy", true)
end

function Linear:forward(x)
  self:check_input(x, 1, math.huge, "... x in_features")
  local f = x:size(x:dim())
  if rawget(self, "_lazy") then
    self:_create(f)
  elseif f ~= self.in_features then
    if x:dim() > 2 then
      self:input_error(x, "expected %d input features in the last dimension, got %d (flatten images with nn.Flatten() first)",
                       self.in_features, f)
    end
    self:input_error(x, "expected %d input features in the last dimension, got %d", self.in_features, f)
  end
  local y = cnn.linear(x, self.weight, self.bias)
  if self.activation then y = self.activation(y) end
  return y
end

function Linear:extra_repr()
  local s = string.format("in_features=%s, out_features=%d", tostring(self.in_features or "?"), self.out_features)
  if not self.has_bias then s = s .. ", bias=false" end
  if self.activation then s = s .. ", activation=" .. activation.describe(self.activation) end
  return s
end

M.Linear = Linear
M.Dense = Linear

-- Flatten(start_dim=2, end_dim=-1): 1-based dims, the batch dimension kept by default.
local Flatten = Module:extend("Flatten")

function Flatten:init(start_dim, end_dim)
  if type(start_dim) == "table" then
    local o = args.options("Flatten", start_dim, {"start_dim", "end_dim"})
    start_dim, end_dim = o.start_dim, o.end_dim
  end
  for what, v in pairs {start_dim = start_dim, end_dim = end_dim} do
    if v ~= nil and (math.type(v) ~= "integer" or v == 0) then
      args.fail("Flatten", "%s must be a non-zero integer, got %s", what, args.describe(v))
    end
  end
  self.start_dim, self.end_dim = start_dim or 2, end_dim or -1
end

function Flatten:forward(x)
  self:check_input(x, 1, math.huge, "N x ...")
  local nd = x:dim()
  local s = self.start_dim < 0 and nd + 1 + self.start_dim or self.start_dim
  local e = self.end_dim < 0 and nd + 1 + self.end_dim or self.end_dim
  if s < 1 or s > nd or e < s or e > nd then
    self:input_error(x, "cannot flatten dims %d..%d of a %d-d input", self.start_dim, self.end_dim, nd)
  end
  return x:flatten(s, e)
end

function Flatten:extra_repr()
  if self.start_dim == 2 and self.end_dim == -1 then return "" end
  return string.format("start_dim=%d, end_dim=%d", self.start_dim, self.end_dim)
end

M.Flatten = Flatten

return M
