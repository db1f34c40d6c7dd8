-- Convolution layers: Conv2d and ConvTranspose2d, over cnn.conv2d / cnn.conv_transpose2d.
--
--   nn.Conv2d(in_channels, out_channels, kernel_size, {stride=1, padding=0, dilation=1, groups=1, bias=true})
--   nn.Conv2d{filters=8, kernel_size={5,5}, strides=1, padding="same", activation="relu", input_shape={32,32,3}}
--
-- The options table form takes Keras' names (filters, strides, dilation_rate, use_bias, activation,
-- input_shape) as well as PyTorch's (in_channels, out_channels, stride, dilation, bias). input_shape
-- is channels-last as Keras users write it ({H, W, C}); the network runs channels-first. When
-- in_channels is not given (nil as the first positional argument, or left out of the table), it is
-- taken from the first input and the weights are created then: until that first forward, the layer
-- has no parameters (see Module:build).
--
-- Weights: (out, in / groups, kh, kw) for Conv2d, (in, out / groups, kh, kw) for ConvTranspose2d,
-- initialised as PyTorch does: uniform in +-1/sqrt(fan_in), weight first, then bias.
local cnn = require "cnn"
local Module = require "cnn.nn.module"
local activation = require "cnn.nn.activation"
local init = require "cnn.nn.weight_init"

local args = Module.args
local either, pair_str = args.either, args.pair_str
local M = {}

local table_options = {"in_channels", "out_channels", "filters", "kernel_size", "stride", "strides", "padding",
                       "dilation", "dilation_rate", "groups", "bias", "use_bias", "activation", "input_shape"}
local positional_options = {"stride", "strides", "padding", "dilation", "dilation_rate", "groups", "bias",
                            "use_bias", "activation", "input_shape"}

-- padding: a non-negative integer, a pair, "same" or "valid".
local function parse_padding(layer, v)
  if v == "same" or v == "valid" then return v end
  if type(v) == "string" then
    args.fail(layer, "padding must be a number, a pair {h, w}, \"same\" or \"valid\", got string %q", v)
  end
  return args.pair(layer, "padding", v, 0, args.nonneg_int)
end

-- Reads the arguments of Conv2d and ConvTranspose2d into self.
local function parse(self, layer, a, b, c, d, extra_options)
  local opts
  local in_channels, out_channels, kernel_size
  if type(a) == "table" and b == nil and c == nil then
    local known = {table.unpack(table_options)}
    for _, k in ipairs(extra_options) do known[#known + 1] = k end
    opts = args.options(layer, a, known)
    in_channels, kernel_size = opts.in_channels, opts.kernel_size
    out_channels = either(layer, opts, "out_channels", "filters")
    if out_channels == nil then args.fail(layer, "the number of output channels is missing (give filters=...)") end
    if kernel_size == nil then args.fail(layer, "kernel_size is missing") end
  else
    local known = {table.unpack(positional_options)}
    for _, k in ipairs(extra_options) do known[#known + 1] = k end
    opts = args.options(layer, d, known)
    in_channels, out_channels, kernel_size = a, b, c
    args.positive_int(layer, "in_channels", in_channels)
    if out_channels == nil then args.fail(layer, "expected (in_channels, out_channels, kernel_size, options?), "
                                          .. "got no out_channels") end
    if kernel_size == nil then args.fail(layer, "kernel_size is missing") end
  end
  self.in_channels = args.positive_int(layer, "in_channels", in_channels)
  self.out_channels = args.positive_int(layer, "out_channels", out_channels)
  self.kernel_size = args.pair(layer, "kernel_size", kernel_size)
  self.stride = args.pair(layer, "stride", either(layer, opts, "stride", "strides"), 1)
  self.padding = parse_padding(layer, opts.padding)
  self.dilation = args.pair(layer, "dilation", either(layer, opts, "dilation", "dilation_rate"), 1)
  self.groups = args.positive_int(layer, "groups", opts.groups, 1)
  self.has_bias = args.boolean(layer, "bias", either(layer, opts, "bias", "use_bias"), true)
  if self.out_channels % self.groups ~= 0 then
    args.fail(layer, "out_channels (%d) must be divisible by groups (%d)", self.out_channels, self.groups)
  end
  if self.in_channels and self.in_channels % self.groups ~= 0 then
    args.fail(layer, "in_channels (%d) must be divisible by groups (%d)", self.in_channels, self.groups)
  end
  rawset(self, "activation", activation.resolve(layer, opts.activation, 2))
  args.declare_input_shape(self, layer, opts.input_shape, 3, "{height, width, channels}", "in_channels")
  return opts
end


local function conv_repr(self, extra)
  local parts = {tostring(self.in_channels or "?"), tostring(self.out_channels), "kernel_size=" .. pair_str(self.kernel_size)}
  if self.stride[1] ~= 1 or self.stride[2] ~= 1 then parts[#parts + 1] = "stride=" .. pair_str(self.stride) end
  if type(self.padding) == "string" then
    parts[#parts + 1] = "padding=" .. self.padding
  elseif self.padding[1] ~= 0 or self.padding[2] ~= 0 then
    parts[#parts + 1] = "padding=" .. pair_str(self.padding)
  end
  for _, e in ipairs(extra or {}) do parts[#parts + 1] = e end
  if self.dilation[1] ~= 1 or self.dilation[2] ~= 1 then parts[#parts + 1] = "dilation=" .. pair_str(self.dilation) end
  if self.groups ~= 1 then parts[#parts + 1] = "groups=" .. self.groups end
  if not self.has_bias then parts[#parts + 1] = "bias=false" end
  if self.activation then parts[#parts + 1] = "activation=" .. activation.describe(self.activation) end
  return table.concat(parts, ", ")
end

-- Creates weight and bias for a known in_channels. zero=true creates them as zeros without drawing
-- random numbers (a state dict is about to overwrite them).
local function create_parameters(self, in_channels, weight_shape, fan_in, zero)
  if in_channels % self.groups ~= 0 then
    error(string.format("%s: the input has %d channels, not divisible by groups (%d)", tostring(self), in_channels,
                        self.groups), 0)
  end
  self.in_channels = in_channels
  local bound = init.default_bound(fan_in)
  local weight = zero and cnn.zeros(weight_shape) or cnn.uniform(weight_shape, -bound, bound)
  self:register_parameter("weight", weight)
  if self.has_bias then
    local n = self.out_channels
    self:register_parameter("bias", zero and cnn.zeros(n) or cnn.uniform({n}, -bound, bound))
  end
  rawset(self, "_lazy", nil)
end

-- Lazily-sized layers take in_channels from a state dict's weight when loading into an unbuilt model.
local function build_from_state(self, sd, prefix, in_channels_of)
  local w = sd[prefix .. "weight"]
  if not cnn.is_tensor(w) or w:dim() ~= 4 then return false end
  self:_create(in_channels_of(w), true)
  return true
end

local function unbuild(self)
  self:register_parameter("weight", nil)
  self:register_parameter("bias", nil)
  self.in_channels = nil
  rawset(self, "_lazy", true)
end

-- Checks the input and creates the parameters of a lazy layer from it.
local function prepare_input(self, x)
  self:check_input(x, 4, 4, "N x C x H x W")
  local c = x:size(2)
  if rawget(self, "_lazy") then
    self:_create(c)
  elseif c ~= self.in_channels then
    self:input_error(x, "expected %d input channels, got %d", self.in_channels, c)
  end
end

-- ---- Conv2d ----------------------------------------------------------------------------------------

local Conv2d = Module:extend("Conv2d")

function Conv2d:init(a, b, c, d)
  parse(self, "Conv2d", a, b, c, d, {})
  local strided_same = self.padding == "same" and (self.stride[1] ~= 1 or self.stride[2] ~= 1)
  rawset(self, "_strided_same", strided_same or nil)
  rawset(self, "_options", {stride = self.stride, padding = strided_same and 0 or self.padding,
                            dilation = self.dilation, groups = self.groups})
  if self.in_channels then self:_create(self.in_channels) else rawset(self, "_lazy", true) end
end

function Conv2d:_create(in_channels, zero)
  local kh, kw = self.kernel_size[1], self.kernel_size[2]
  local per_group = in_channels // self.groups
  create_parameters(self, in_channels, {self.out_channels, per_group, kh, kw}, per_group * kh * kw, zero)
end

function Conv2d:_build_from_state(sd, prefix)
  return build_from_state(self, sd, prefix, function(w) return w:size(2) * self.groups end)
end
Conv2d._unbuild = unbuild

-- Keras' "same" with a stride: the output is ceil(in / stride) and the padding that needs, when
-- odd, puts the extra pixel at the bottom/right.
local function pad_same_strided(self, x)
  local pads = {}
  for i = 1, 2 do
    local size, s = x:size(2 + i), self.stride[i]
    local extent = self.dilation[i] * (self.kernel_size[i] - 1) + 1
    local total = math.max((math.ceil(size / s) - 1) * s + extent - size, 0)
    pads[i] = {total // 2, total - total // 2}
  end
  return cnn.pad(x, {pads[2][1], pads[2][2], pads[1][1], pads[1][2]})
end

function Conv2d:forward(x)
  prepare_input(self, x)
  if rawget(self, "_strided_same") then x = pad_same_strided(self, x) end
  local y = cnn.conv2d(x, self.weight, self.bias, self._options)
  if self.activation then y = self.activation(y) end
  return y
end

function Conv2d:extra_repr() return conv_repr(self) end

-- summary counts the output channels of convolutions as feature maps
Conv2d.reports_feature_maps = true
M.Conv2d = Conv2d

-- ---- ConvTranspose2d -----------------------------------------------------------------------------

local ConvTranspose2d = Module:extend("ConvTranspose2d")

-- padding "same" makes the output exactly stride times the input (Keras' Conv2DTranspose):
-- out = (in - 1) s - 2p + d (k - 1) + op + 1 = in s  <=>  2p - op = d (k - 1) + 1 - s.
local function same_transposed_padding(k, s, d)
  local need = d * (k - 1) + 1 - s
  local p = need > 0 and (need + 1) // 2 or 0
  return p, 2 * p - need
end

function ConvTranspose2d:init(a, b, c, d)
  local opts = parse(self, "ConvTranspose2d", a, b, c, d, {"output_padding"})
  self.output_padding = args.pair("ConvTranspose2d", "output_padding", opts.output_padding, 0, args.nonneg_int)
  local padding, output_padding = self.padding, self.output_padding
  if padding == "valid" then
    padding = {0, 0}
  elseif padding == "same" then
    if opts.output_padding ~= nil then
      args.fail("ConvTranspose2d", "padding \"same\" chooses output_padding itself; do not give both")
    end
    padding, output_padding = {0, 0}, {0, 0}
    for i = 1, 2 do
      padding[i], output_padding[i] = same_transposed_padding(self.kernel_size[i], self.stride[i], self.dilation[i])
    end
  end
  rawset(self, "_options", {stride = self.stride, padding = padding, output_padding = output_padding,
                            dilation = self.dilation, groups = self.groups})
  if self.in_channels then self:_create(self.in_channels) else rawset(self, "_lazy", true) end
end

function ConvTranspose2d:_create(in_channels, zero)
  local kh, kw = self.kernel_size[1], self.kernel_size[2]
  local out_per_group = self.out_channels // self.groups
  -- PyTorch computes the fan from the weight's second dimension, out / groups here
  create_parameters(self, in_channels, {in_channels, out_per_group, kh, kw}, out_per_group * kh * kw, zero)
end

function ConvTranspose2d:_build_from_state(sd, prefix)
  return build_from_state(self, sd, prefix, function(w) return w:size(1) end)
end
ConvTranspose2d._unbuild = unbuild

function ConvTranspose2d:forward(x)
  prepare_input(self, x)
  local y = cnn.conv_transpose2d(x, self.weight, self.bias, self._options)
  if self.activation then y = self.activation(y) end
  return y
end

function ConvTranspose2d:extra_repr()
  local extra = {}
  if self.output_padding[1] ~= 0 or self.output_padding[2] ~= 0 then
    extra[1] = "output_padding=" .. pair_str(self.output_padding)
  end
  return conv_repr(self, extra)
end

ConvTranspose2d.reports_feature_maps = true
M.ConvTranspose2d = ConvTranspose2d

return M
