-- nn.init: weight initialisation in place, with the formulas of torch.nn.init. Every function fills
-- its tensor from the seeded generator (cnn.manual_seed makes it reproducible), works on parameters
-- (no gradient is recorded) and returns the tensor.
--
--   nn.init.kaiming_uniform(w, {a=0, mode="fan_in", nonlinearity="leaky_relu"})
--   nn.init.kaiming_normal(w, {...same...})
--   nn.init.xavier_uniform(w, gain=1)        nn.init.xavier_normal(w, gain=1)
--   nn.init.uniform(w, low=0, high=1)        nn.init.normal(w, mean=0, std=1)
--   nn.init.constant(w, value)   nn.init.zeros(w)   nn.init.ones(w)
--   nn.init.calculate_gain(nonlinearity, param)      nn.init.fans(w) -> fan_in, fan_out
--
-- Fans follow PyTorch: for a weight of shape (d1, d2, k...) fan_in = d2 * prod(k) and
-- fan_out = d1 * prod(k). Conv2d and Linear initialise with kaiming_uniform(a=sqrt(5)), whose bound
-- sqrt(6 / ((1 + a^2) fan_in)) is 1/sqrt(fan_in).
local cnn = require "cnn"

local init = {}

local function check_tensor(fname, t)
  if not cnn.is_tensor(t) then error(string.format("nn.init.%s: expected a tensor, got %s", fname, type(t)), 3) end
end

local function overwrite(t, values)
  cnn.no_grad(function() t:copy(values) end)
  return t
end

function init.fans(t)
  check_tensor("fans", t)
  local shape = t:shape()
  if #shape < 2 then
    error(string.format("nn.init: fan in and fan out need a tensor of at least 2 dimensions, got shape %s",
                        table.concat(shape, "x")), 2)
  end
  local receptive = 1
  for i = 3, #shape do receptive = receptive * shape[i] end
  return shape[2] * receptive, shape[1] * receptive
end

-- The recommended gain for a nonlinearity (PyTorch's table).
function init.calculate_gain(nonlinearity, param)
  nonlinearity = nonlinearity or "leaky_relu"
  local linear = {linear = true, identity = true, sigmoid = true, conv1d = true, conv2d = true, conv3d = true,
                  conv_transpose1d = true, conv_transpose2d = true, conv_transpose3d = true}
  if linear[nonlinearity] then return 1 end
  if nonlinearity == "tanh" then return 5 / 3 end
  if nonlinearity == "relu" then return math.sqrt(2) end
  if nonlinearity == "selu" then return 3 / 4 end
  if nonlinearity == "leaky_relu" then
    local slope = param == nil and 0.01 or param
    if type(slope) ~= "number" then error("nn.init.calculate_gain: the negative slope must be a number", 2) end
    return math.sqrt(2 / (1 + slope * slope))
  end
  error(string.format("nn.init.calculate_gain: unknown nonlinearity %q (known: linear, sigmoid, tanh, relu, "
                      .. "leaky_relu, selu, conv2d, ...)", tostring(nonlinearity)), 2)
end

-- Options of the kaiming functions as a table, or positionally as PyTorch's (a, mode, nonlinearity).
local function kaiming_std(fname, t, a, mode, nonlinearity)
  check_tensor(fname, t)
  local opts = type(a) == "table" and a or {a = a, mode = mode, nonlinearity = nonlinearity}
  local slope = opts.a or 0
  mode = opts.mode or "fan_in"
  if mode ~= "fan_in" and mode ~= "fan_out" then
    error(string.format("nn.init.%s: mode must be \"fan_in\" or \"fan_out\", got %q", fname, tostring(mode)), 3)
  end
  local fan_in, fan_out = init.fans(t)
  local fan = mode == "fan_in" and fan_in or fan_out
  return init.calculate_gain(opts.nonlinearity or "leaky_relu", slope) / math.sqrt(fan)
end

function init.kaiming_uniform(t, a, mode, nonlinearity)
  local bound = math.sqrt(3) * kaiming_std("kaiming_uniform", t, a, mode, nonlinearity)
  return overwrite(t, cnn.uniform(t:shape(), -bound, bound))
end

function init.kaiming_normal(t, a, mode, nonlinearity)
  local std = kaiming_std("kaiming_normal", t, a, mode, nonlinearity)
  return overwrite(t, cnn.randn(t:shape()) * std)
end

function init.xavier_uniform(t, gain)
  check_tensor("xavier_uniform", t)
  local fan_in, fan_out = init.fans(t)
  local bound = (gain or 1) * math.sqrt(6 / (fan_in + fan_out))
  return overwrite(t, cnn.uniform(t:shape(), -bound, bound))
end

function init.xavier_normal(t, gain)
  check_tensor("xavier_normal", t)
  local fan_in, fan_out = init.fans(t)
  return overwrite(t, cnn.randn(t:shape()) * ((gain or 1) * math.sqrt(2 / (fan_in + fan_out))))
end

function init.uniform(t, low, high)
  check_tensor("uniform", t)
  return overwrite(t, cnn.uniform(t:shape(), low or 0, high or 1))
end

function init.normal(t, mean, std)
  check_tensor("normal", t)
  return overwrite(t, cnn.randn(t:shape()) * (std or 1) + (mean or 0))
end

function init.constant(t, value)
  check_tensor("constant", t)
  if type(value) ~= "number" then error("nn.init.constant: the value must be a number, got " .. type(value), 2) end
  cnn.no_grad(function() t:fill(value) end)
  return t
end

function init.zeros(t) return init.constant(t, 0) end
function init.ones(t) return init.constant(t, 1) end

-- PyTorch's default for Conv2d/Linear: weight and bias uniform in +-1/sqrt(fan_in), drawn in that
-- order. Used by the layers when they create their parameters.
function init.default_bound(fan_in) return 1 / math.sqrt(fan_in) end

return init
