-- Pooling and resampling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, GlobalAvgPool2d, Upsample.
--
--   nn.MaxPool2d(kernel, {stride=kernel, padding=0, dilation=1, ceil_mode=false})
--   nn.MaxPool2d{pool_size=2, strides=2}          (Keras names; kernel_size/stride work too)
--   nn.AvgPool2d(kernel, {stride=kernel, padding=0, ceil_mode=false, count_include_pad=true})
--   nn.AdaptiveAvgPool2d{oh, ow}  or  nn.AdaptiveAvgPool2d(n)  (output n x n)
--   nn.GlobalAvgPool2d()          N x C x H x W -> N x C (Keras' GlobalAveragePooling2D)
--   nn.Upsample{scale=2, mode="nearest"|"bilinear"}  or  nn.Upsample{size={h, w}}  or  nn.Upsample(2)
-- Pooling layers have no parameters.
local cnn = require "cnn"
local Module = require "cnn.nn.module"

local args = Module.args
local M = {}

local either, pair_str = args.either, args.pair_str

-- Reads (kernel, options) or one options table; returns the options for the functional op.
local function parse_pool(self, layer, kernel, opts, is_max)
  local extra = is_max and {"dilation"} or {"count_include_pad"}
  local known = {"stride", "strides", "padding", "ceil_mode", extra[1]}
  if type(kernel) == "table" and opts == nil then
    local all = {"kernel_size", "pool_size", table.unpack(known)}
    opts = args.options(layer, kernel, all)
    kernel = either(layer, opts, "kernel_size", "pool_size")
    if kernel == nil then args.fail(layer, "kernel_size (pool_size) is missing") end
  else
    opts = args.options(layer, opts, known)
    if kernel == nil then args.fail(layer, "expected (kernel_size, options?), got no kernel_size") end
  end
  self.kernel_size = args.pair(layer, "kernel_size", kernel)
  self.stride = args.pair(layer, "stride", either(layer, opts, "stride", "strides"), self.kernel_size)
  local padding = opts.padding
  if padding == "valid" then padding = 0 end
  if padding == "same" then
    args.fail(layer, "padding \"same\" is not supported for pooling; give a number of pixels (e.g. padding=1)")
  end
  self.padding = args.pair(layer, "padding", padding, 0, args.nonneg_int)
  self.ceil_mode = args.boolean(layer, "ceil_mode", opts.ceil_mode, false)
  local o = {stride = self.stride, padding = self.padding, ceil_mode = self.ceil_mode}
  if is_max then
    self.dilation = args.pair(layer, "dilation", opts.dilation, 1)
    o.dilation = self.dilation
  else
    self.count_include_pad = args.boolean(layer, "count_include_pad", opts.count_include_pad, true)
    o.count_include_pad = self.count_include_pad
  end
  rawset(self, "_options", o)
end

local function pool_repr(self)
  local parts = {"kernel_size=" .. pair_str(self.kernel_size)}
  if self.stride[1] ~= self.kernel_size[1] or self.stride[2] ~= self.kernel_size[2] then
    parts[#parts + 1] = "stride=" .. pair_str(self.stride)
  end
  if self.padding[1] ~= 0 or self.padding[2] ~= 0 then parts[#parts + 1] = "padding=" .. pair_str(self.padding) end
  if self.dilation and (self.dilation[1] ~= 1 or self.dilation[2] ~= 1) then
    parts[#parts + 1] = "dilation=" .. pair_str(self.dilation)
  end
  if self.ceil_mode then parts[#parts + 1] = "ceil_mode=true" end
  if self.count_include_pad == false then parts[#parts + 1] = "count_include_pad=false" end
  return table.concat(parts, ", ")
end

local function check_4d(self, x) self:check_input(x, 4, 4, "N x C x H x W") end

local function pool_class(name, fn, is_max)
  local cls = Module:extend(name)
  function cls:init(kernel, opts) parse_pool(self, name, kernel, opts, is_max) end
  function cls:forward(x)
    check_4d(self, x)
    return fn(x, self.kernel_size, self._options)
  end
  cls.extra_repr = pool_repr
  M[name] = cls
end
pool_class("MaxPool2d", cnn.max_pool2d, true)
pool_class("AvgPool2d", cnn.avg_pool2d, false)

-- AdaptiveAvgPool2d{oh, ow}, AdaptiveAvgPool2d(n) or AdaptiveAvgPool2d(oh, ow)
local AdaptiveAvgPool2d = Module:extend("AdaptiveAvgPool2d")
function AdaptiveAvgPool2d:init(size, w)
  if size == nil then args.fail("AdaptiveAvgPool2d", "the output size {oh, ow} is missing") end
  if w ~= nil then size = {size, w} end
  self.output_size = args.pair("AdaptiveAvgPool2d", "output size", size)
end
function AdaptiveAvgPool2d:forward(x)
  check_4d(self, x)
  return cnn.adaptive_avg_pool2d(x, self.output_size)
end
function AdaptiveAvgPool2d:extra_repr() return "output_size=" .. pair_str(self.output_size) end
M.AdaptiveAvgPool2d = AdaptiveAvgPool2d

-- Average of each channel: N x C x H x W -> N x C.
local GlobalAvgPool2d = Module:extend("GlobalAvgPool2d")
function GlobalAvgPool2d:forward(x)
  check_4d(self, x)
  return cnn.adaptive_avg_pool2d(x, {1, 1}):flatten(2)
end
M.GlobalAvgPool2d = GlobalAvgPool2d

-- Upsample{scale=2, mode="nearest"}, Upsample{size={h, w}, mode=...} or Upsample(scale, mode?)
local Upsample = Module:extend("Upsample")
function Upsample:init(opts, mode)
  local layer = "Upsample"
  if type(opts) ~= "table" then opts = {scale = opts, mode = mode} end
  opts = args.options(layer, opts, {"scale", "scale_factor", "size", "mode"})
  local scale = either(layer, opts, "scale", "scale_factor")
  if scale ~= nil and opts.size ~= nil then args.fail(layer, "give either scale or size, not both") end
  if opts.size ~= nil then
    self.size = args.pair(layer, "size", opts.size)
  else
    scale = scale or 2
    local s = type(scale) == "table" and scale or {scale, scale}
    if #s ~= 2 then args.fail(layer, "scale must be a number or a pair {h, w}") end
    for i = 1, 2 do args.number(layer, "scale", s[i]) end
    if not (s[1] > 0 and s[2] > 0) then args.fail(layer, "scale must be positive, got %s", tostring(s[1] > 0 and s[2] or s[1])) end
    self.scale = {s[1], s[2]}
  end
  self.mode = opts.mode or "nearest"
  if self.mode ~= "nearest" and self.mode ~= "bilinear" then
    args.fail(layer, "mode must be \"nearest\" or \"bilinear\", got %s", args.describe(self.mode))
  end
  rawset(self, "_options", {scale = self.scale, size = self.size, mode = self.mode})
end
function Upsample:forward(x)
  self:check_input(x, 3, 4, "N x C x H x W")
  return cnn.upsample(x, self._options)
end
function Upsample:extra_repr()
  local what = self.size and "size=" .. pair_str(self.size) or "scale=" .. pair_str(self.scale)
  return what .. ", mode=" .. self.mode
end
M.Upsample = Upsample

return M
