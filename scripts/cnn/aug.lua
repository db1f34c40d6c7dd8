-- cnn.aug - data augmentation on the fly, for training batches.
--
--   local aug = cnn.aug.compose{
--     cnn.aug.random_flip{horizontal=true},
--     {cnn.aug.random_rotation(15), p=0.5},          -- an op with its own probability per image
--     cnn.aug.random_crop(28, {padding=2}),
--     cnn.aug.normalize(0.286, 0.353),
--   }
--   local x2 = aug(x)              -- x: N x C x H x W (or one image C x H x W) -> a new tensor
--   local x3 = aug(x, 42)          -- with an explicit seed: the same seed gives the same result
--
--   cnn.aug.image_data_generator{rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
--     shear_range=0.2, zoom_range=0.2, horizontal_flip=true, vertical_flip=true, fill_mode="nearest"}
--     -- Keras' ImageDataGenerator: its parameter names and meanings, one affine warp per image
--
-- Every transform is a callable object. The work happens in C (runtime/augment_*.c) over the whole
-- batch, images in parallel; each image draws its own random parameters from a generator seeded by
-- (seed, its index in the batch), so results never depend on the thread count. Without an explicit
-- seed, one is drawn from the generator cnn.manual_seed sets. Transforms are not differentiable and
-- never change their input. Evaluation stays deterministic by simply not applying them.
--
-- Geometry conventions: a positive rotation turns the content counter-clockwise; a positive shift
-- moves it right/down; zoom follows Keras (a factor above 1 shows more of the image, smaller); fill
-- modes are Keras'/scipy.ndimage's: "nearest" aaaa|abcd|dddd, "constant" kkkk|abcd|kkkk (k = cval),
-- "reflect" dcba|abcd|dcba, "wrap" abcd|abcd|abcd. Colour operations expect images in [0, 1] and
-- clamp to it, as torchvision does.
--
-- t:pipeline() gives the C pipeline behind a transform made only of built-in operations (nil when a
-- Lua function is part of it), for code that runs it on other threads: pipeline:apply(x, seed).
local cnn = require "cnn"
local common = require "cnn.common"
local args = require "cnn.aug.args"

common.register_source()
local fail, is_tensor = common.fail, common.is_tensor

local aug = {}

-- ---- transforms ----------------------------------------------------------------------------------

-- A transform is a list of parts run in order: {stages = {...}} (C stages, run as one pipeline) or
-- {fn = callable, p = probability or nil} (Lua code, given the whole batch).
local Transform = {is_transform = true}
Transform.__index = Transform
aug.Transform = Transform

local GOLDEN = 0x9E3779B97F4A7C15

-- A uniform number in [0, 1) for a Lua part's probability: from the seed when there is one.
local function chance_draw(seed, k)
  if seed == nil then return cnn.rand(1):item() end
  local z = seed + (k + 1) * GOLDEN
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  z = z ~ (z >> 31)
  return (z >> 11) / 9007199254740992.0
end

local function run(self, x, seed)
  if not is_tensor(x) then
    fail("%s: expected a tensor (N x C x H x W or C x H x W), got a %s", self.name, type(x))
  end
  if seed ~= nil and math.tointeger(seed) == nil then
    fail("%s: the seed must be an integer, got %s", self.name, tostring(seed))
  end
  seed = math.tointeger(seed)
  for k, part in ipairs(self.parts) do
    if part.pipeline then
      local ok, result = pcall(part.pipeline.apply, part.pipeline, x, seed and seed + k * GOLDEN)
      if not ok then
        local message = tostring(result):gsub("^[^\n]-:%d+: ", ""):gsub("^augment: ", "")
        if message:sub(1, #self.name + 1) ~= self.name .. ":" then message = self.name .. ": " .. message end
        fail("%s", message)
      end
      x = result
    elseif part.p == nil or chance_draw(seed, k) < part.p then
      local result = part.fn(x)
      if result ~= nil then x = result end
    end
  end
  return x
end

Transform.__call = run
Transform.apply = run

function Transform:__tostring()
  return "cnn.aug." .. self.description
end

-- The C pipeline of a transform made of built-in operations only, or nil.
function Transform:pipeline()
  if #self.parts == 1 and self.parts[1].pipeline then return self.parts[1].pipeline end
  if #self.parts == 0 then return cnn._aug_pipeline{} end
  return nil
end

-- Parts with adjacent C stages merged, each merged list built into one pipeline.
local function build(parts)
  local merged = {}
  for _, part in ipairs(parts) do
    local last = merged[#merged]
    if part.stages and last and last.stages then
      for _, s in ipairs(part.stages) do last.stages[#last.stages + 1] = s end
    elseif part.stages then
      merged[#merged + 1] = {stages = table.move(part.stages, 1, #part.stages, 1, {})}
    else
      merged[#merged + 1] = {fn = part.fn, p = part.p}
    end
  end
  for _, part in ipairs(merged) do
    if part.stages then part.pipeline = cnn._aug_pipeline(part.stages) end
  end
  return merged
end

local function new_transform(name, description, parts, class)
  local t = setmetatable({name = name, description = description}, class or Transform)
  t.parts = build(parts)
  return t
end

local function from_stages(name, description, stages)
  return new_transform(name, description, {{stages = stages}})
end

local function is_transform(v)
  return type(v) == "table" and getmetatable(v) ~= nil and v.is_transform == true
end
aug.is_transform = is_transform

-- ---- argument helpers ------------------------------------------------------------------------------

local check_options, set, is_pair = args.check_options, args.set, args.is_pair

local function fmt(v)
  return string.format("%.4g", v)
end

-- A range from a number r (-> {-r, r}, or {center - r, center + r}) or a pair {low, high}.
local function range(who, name, v, center)
  center = center or 0
  if type(v) == "number" then
    if v < 0 or v ~= v then fail("%s: %s must be a non-negative number or a pair {low, high}, got %s", who, name, fmt(v)) end
    return {center - v, center + v}
  end
  if is_pair(v) then
    if not (v[1] <= v[2]) then fail("%s: %s must be a pair {low, high} with low <= high, got {%s, %s}", who, name, fmt(v[1]), fmt(v[2])) end
    return {v[1], v[2]}
  end
  fail("%s: %s must be a number or a pair {low, high}, got %s", who, name, type(v) == "table" and "a table" or tostring(v))
end

local function probability(who, name, p)
  if type(p) ~= "number" or not (p >= 0 and p <= 1) then
    fail("%s: %s must be a probability in [0, 1], got %s", who, name, tostring(p))
  end
  return p
end

-- A flip option: true/false (probability 0.5 or 0) or a probability.
local function flip_probability(who, name, v, default_p)
  if v == nil or v == false then return 0 end
  if v == true then return default_p end
  return probability(who, name, v)
end

local fill_modes = set("nearest", "constant", "reflect", "wrap")
local samplings = {bilinear = "bilinear", nearest = "nearest"}

-- fill_mode, cval, interpolation of the geometric transforms, into stage s.
local function fill_options(who, o, s)
  local mode = o.fill_mode or "nearest"
  if not fill_modes[mode] then
    fail("%s: fill_mode must be \"nearest\", \"constant\", \"reflect\" or \"wrap\", got %s", who, tostring(mode))
  end
  s.fill_mode = mode
  s.cval = o.cval or 0
  if type(s.cval) ~= "number" then fail("%s: cval must be a number, got %s", who, type(s.cval)) end
  local interpolation = o.interpolation or "bilinear"
  s.sampling = samplings[interpolation]
  if not s.sampling then fail("%s: interpolation must be \"bilinear\" or \"nearest\", got %s", who, tostring(interpolation)) end
  return s
end

-- A shift range and its units: |values| < 1 are fractions of the size, otherwise pixels (as Keras).
local function shift_range(who, name, v, units)
  local r = range(who, name, v)
  if units == nil then
    units = (math.abs(r[1]) < 1 and math.abs(r[2]) < 1) and "fraction" or "pixels"
  elseif units ~= "fraction" and units ~= "pixels" then
    fail("%s: units must be \"fraction\" or \"pixels\", got %s", who, tostring(units))
  end
  return r, units
end

local function describe_range(r, unit)
  return fmt(r[1]) .. ".." .. fmt(r[2]) .. (unit or "")
end

local geometric_options = {"fill_mode", "cval", "interpolation", "p"}

local function known_with(...)
  local s = set(...)
  for _, name in ipairs(geometric_options) do s[name] = true end
  return s
end

local function stage_probability(who, o)
  if o.p == nil then return 1 end
  return probability(who, "p", o.p)
end

-- ---- geometric ---------------------------------------------------------------------------------------

-- cnn.aug.random_flip{horizontal=true, vertical=false, p=0.5}: exact mirror images.
function aug.random_flip(options)
  local who = "random_flip"
  local o = check_options(who, options, set("horizontal", "vertical", "p"))
  local p = o.p == nil and 0.5 or probability(who, "p", o.p)
  local h = o.horizontal == nil and true or o.horizontal
  local v = o.vertical or false
  if type(h) ~= "boolean" or type(v) ~= "boolean" then fail("%s: horizontal and vertical must be true or false", who) end
  local stage = {kind = "flip", horizontal = h and p or 0, vertical = v and p or 0}
  local axes = {}
  if h then axes[#axes + 1] = "horizontal=true" end
  if v then axes[#axes + 1] = "vertical=true" end
  return from_stages(who, string.format("random_flip{%s, p=%s}", table.concat(axes, ", "), fmt(p)), {stage})
end

-- A warp drawing one angle (field "rotation" or "shear") from [-degrees, degrees] or a pair.
local function angle_warp(who, field, degrees, options)
  local o = check_options(who, options, known_with())
  local s = fill_options(who, o, {kind = "affine", [field] = range(who, "degrees", degrees)})
  s.p = stage_probability(who, o)
  return from_stages(who, string.format("%s(%s, fill_mode=%s)", who, describe_range(s[field], " degrees"), s.fill_mode),
                     {s})
end

-- cnn.aug.random_rotation(degrees, {fill_mode="nearest", cval=0, interpolation="bilinear", p=1}):
-- an angle from [-degrees, degrees] (or a pair {low, high}); positive is counter-clockwise.
function aug.random_rotation(degrees, options)
  return angle_warp("random_rotation", "rotation", degrees, options)
end

-- cnn.aug.random_shift(width, height?, options) or cnn.aug.random_shift{width=, height=, ...}: shifts
-- from [-width, width] and [-height, height] (or pairs); values below 1 are fractions of the image
-- size, larger ones pixels (units="fraction"|"pixels" forces one). height defaults to width.
function aug.random_shift(width, height, options)
  local who = "random_shift"
  if type(width) == "table" and width[1] == nil then
    options = width
    width, height = options.width, options.height
    options = check_options(who, options, known_with("width", "height", "units"))
  else
    options = check_options(who, options, known_with("units"))
  end
  if width == nil then fail("%s: give the width shift range (a number or a pair)", who) end
  if height == nil then height = width end
  local s = fill_options(who, options, {kind = "affine"})
  s.shift_x, s.shift_x_units = shift_range(who, "width", width, options.units)
  s.shift_y, s.shift_y_units = shift_range(who, "height", height, options.units)
  s.p = stage_probability(who, options)
  return from_stages(who, string.format("random_shift(%s, %s %s, fill_mode=%s)", describe_range(s.shift_x),
                                        describe_range(s.shift_y), s.shift_x_units, s.fill_mode), {s})
end

-- cnn.aug.random_zoom(range, {keep_aspect=false, ...}): Keras' zoom: a number z draws from
-- [1 - z, 1 + z] (a pair gives the interval); x and y independently unless keep_aspect.
function aug.random_zoom(zoom, options)
  local who = "random_zoom"
  local o = check_options(who, options, known_with("keep_aspect"))
  local r = range(who, "zoom", zoom, 1)
  if r[1] <= 0 then fail("%s: zoom factors must stay positive, got %s", who, describe_range(r)) end
  local s = fill_options(who, o, {kind = "affine", zoom_x = r, zoom_y = r, zoom_same = o.keep_aspect == true})
  s.p = stage_probability(who, o)
  return from_stages(who, string.format("random_zoom(%s, fill_mode=%s)", describe_range(r), s.fill_mode), {s})
end

-- cnn.aug.random_shear(degrees, options): Keras' shear angle from [-degrees, degrees].
function aug.random_shear(degrees, options)
  return angle_warp("random_shear", "shear", degrees, options)
end

-- cnn.aug.random_affine{rotation=, width_shift=, height_shift=, zoom=, shear=, horizontal_flip=,
-- vertical_flip=, keep_aspect=, units=, fill_mode=, cval=, interpolation=, p=}: all of the above in
-- one warp per image (one resampling, so one blur instead of several).
function aug.random_affine(options)
  local who = "random_affine"
  local o = check_options(who, options, known_with("rotation", "width_shift", "height_shift", "zoom", "shear",
                                                   "horizontal_flip", "vertical_flip", "keep_aspect", "units"))
  local s = fill_options(who, o, {kind = "affine"})
  local parts = {}
  if o.rotation then
    s.rotation = range(who, "rotation", o.rotation)
    parts[#parts + 1] = "rotation=" .. describe_range(s.rotation)
  end
  if o.width_shift then
    s.shift_x, s.shift_x_units = shift_range(who, "width_shift", o.width_shift, o.units)
    parts[#parts + 1] = "width_shift=" .. describe_range(s.shift_x)
  end
  if o.height_shift then
    s.shift_y, s.shift_y_units = shift_range(who, "height_shift", o.height_shift, o.units)
    parts[#parts + 1] = "height_shift=" .. describe_range(s.shift_y)
  end
  if o.zoom then
    s.zoom_x = range(who, "zoom", o.zoom, 1)
    if s.zoom_x[1] <= 0 then fail("%s: zoom factors must stay positive, got %s", who, describe_range(s.zoom_x)) end
    s.zoom_y, s.zoom_same = s.zoom_x, o.keep_aspect == true
    parts[#parts + 1] = "zoom=" .. describe_range(s.zoom_x)
  end
  if o.shear then
    s.shear = range(who, "shear", o.shear)
    parts[#parts + 1] = "shear=" .. describe_range(s.shear)
  end
  s.flip_horizontal = flip_probability(who, "horizontal_flip", o.horizontal_flip, 0.5)
  s.flip_vertical = flip_probability(who, "vertical_flip", o.vertical_flip, 0.5)
  if s.flip_horizontal > 0 then parts[#parts + 1] = "horizontal_flip=" .. fmt(s.flip_horizontal) end
  if s.flip_vertical > 0 then parts[#parts + 1] = "vertical_flip=" .. fmt(s.flip_vertical) end
  parts[#parts + 1] = "fill_mode=" .. s.fill_mode
  s.p = stage_probability(who, o)
  return from_stages(who, "random_affine{" .. table.concat(parts, ", ") .. "}", {s})
end

-- ---- crops ---------------------------------------------------------------------------------------------

local function size_pair(who, size)
  return args.size_pair(who, size)
end

local pad_modes = {constant = "constant", edge = "replicate", replicate = "replicate", reflect = "reflect",
                   circular = "circular", wrap = "circular"}

-- cnn.aug.random_crop(size, {padding=0, padding_mode="constant", fill=0, pad_if_needed=false}):
-- torchvision's RandomCrop. padding is a number (all sides), {left/right, top/bottom} or
-- {left, top, right, bottom}; padding_mode "constant" | "edge" | "reflect" (dcb|abcd|cba) | "circular".
function aug.random_crop(size, options)
  local who = "random_crop"
  local o = check_options(who, options, set("padding", "padding_mode", "fill", "pad_if_needed"))
  local hw = size_pair(who, size)
  local pad = o.padding or 0
  local lrtb
  if math.tointeger(pad) then
    lrtb = {pad, pad, pad, pad}
  elseif type(pad) == "table" and #pad == 2 then
    lrtb = {pad[1], pad[1], pad[2], pad[2]}
  elseif type(pad) == "table" and #pad == 4 then
    lrtb = {pad[1], pad[3], pad[2], pad[4]}
  else
    fail("%s: padding must be an integer, {left/right, top/bottom} or {left, top, right, bottom}", who)
  end
  for _, v in ipairs(lrtb) do
    if not math.tointeger(v) or v < 0 then fail("%s: padding must hold non-negative integers", who) end
  end
  local mode = pad_modes[o.padding_mode or "constant"]
  if not mode then
    fail("%s: padding_mode must be \"constant\", \"edge\", \"reflect\" or \"circular\", got %s", who, tostring(o.padding_mode))
  end
  if o.fill ~= nil and type(o.fill) ~= "number" then fail("%s: fill must be a number", who) end
  local s = {kind = "crop", size = hw, padding = lrtb, pad_mode = mode, pad_value = o.fill or 0,
             pad_if_needed = o.pad_if_needed == true}
  return from_stages(who, string.format("random_crop(%dx%d, padding={%d, %d, %d, %d})", hw[1], hw[2], lrtb[1], lrtb[3],
                                        lrtb[2], lrtb[4]), {s})
end

-- cnn.aug.random_resized_crop(size, {scale={0.08, 1}, ratio={3/4, 4/3}, interpolation="bilinear"}):
-- torchvision's RandomResizedCrop (without its antialiasing when shrinking).
function aug.random_resized_crop(size, options)
  local who = "random_resized_crop"
  local o = check_options(who, options, set("scale", "ratio", "interpolation"))
  local hw = size_pair(who, size)
  local scale = o.scale and range(who, "scale", o.scale) or {0.08, 1}
  local ratio = o.ratio and range(who, "ratio", o.ratio) or {3 / 4, 4 / 3}
  if scale[1] <= 0 or ratio[1] <= 0 then fail("%s: scale and ratio must be positive", who) end
  local sampling = samplings[o.interpolation or "bilinear"]
  if not sampling then fail("%s: interpolation must be \"bilinear\" or \"nearest\"", who) end
  local s = {kind = "resized_crop", size = hw, scale = scale, ratio = ratio, sampling = sampling}
  return from_stages(who, string.format("random_resized_crop(%dx%d, scale=%s, ratio=%s)", hw[1], hw[2],
                                        describe_range(scale), describe_range(ratio)), {s})
end

-- ---- colour and noise ------------------------------------------------------------------------------------

-- torchvision's factor ranges: b -> [max(0, 1 - b), 1 + b], or a pair.
local function factor_range(who, name, v)
  if v == nil then return nil end
  local r = range(who, name, v, 1)
  if r[1] < 0 then
    if type(v) == "number" then r[1] = 0 else fail("%s: %s factors must be >= 0", who, name) end
  end
  return r
end

-- cnn.aug.color_jitter{brightness=, contrast=, saturation=, hue=, p=1}: torchvision's ColorJitter;
-- saturation and hue need RGB images. hue h draws from [-h, h], h <= 0.5.
function aug.color_jitter(options)
  local who = "color_jitter"
  local o = check_options(who, options, set("brightness", "contrast", "saturation", "hue", "p"))
  local s = {kind = "color", p = stage_probability(who, o)}
  local parts = {}
  for _, name in ipairs{"brightness", "contrast", "saturation"} do
    s[name] = factor_range(who, name, o[name])
    if s[name] then parts[#parts + 1] = name .. "=" .. describe_range(s[name]) end
  end
  if o.hue ~= nil then
    s.hue = range(who, "hue", o.hue)
    if s.hue[1] < -0.5 or s.hue[2] > 0.5 then fail("%s: hue must lie within [-0.5, 0.5], got %s", who, describe_range(s.hue)) end
    parts[#parts + 1] = "hue=" .. describe_range(s.hue)
  end
  return from_stages(who, "color_jitter{" .. table.concat(parts, ", ") .. "}", {s})
end

-- cnn.aug.random_brightness(b) and random_contrast(c): one part of color_jitter.
function aug.random_brightness(b, options)
  local o = check_options("random_brightness", options, set("p"))
  return aug.color_jitter{brightness = b, p = o.p}
end

function aug.random_contrast(c, options)
  local o = check_options("random_contrast", options, set("p"))
  return aug.color_jitter{contrast = c, p = o.p}
end

-- cnn.aug.gaussian_noise(std, {mean=0, clip=false, p=1}): adds mean + std * N(0, 1) to each value.
function aug.gaussian_noise(std, options)
  local who = "gaussian_noise"
  local o = check_options(who, options, set("mean", "clip", "p"))
  if type(std) ~= "number" or not (std >= 0) then fail("%s: std must be a number >= 0, got %s", who, tostring(std)) end
  local s = {kind = "noise", std = std, mean = o.mean or 0, clip = o.clip == true, p = stage_probability(who, o)}
  return from_stages(who, string.format("gaussian_noise(%s)", fmt(std)), {s})
end

-- cnn.aug.random_erasing{p=0.5, scale={0.02, 0.33}, ratio={0.3, 3.3}, value=0}: torchvision's
-- RandomErasing (cutout); value is a number, one per channel, or "random" (normal noise).
function aug.random_erasing(options)
  local who = "random_erasing"
  local o = check_options(who, options, set("p", "scale", "ratio", "value"))
  local s = {kind = "erasing", p = o.p == nil and 0.5 or probability(who, "p", o.p)}
  s.scale = o.scale and range(who, "scale", o.scale) or {0.02, 0.33}
  s.ratio = o.ratio and range(who, "ratio", o.ratio) or {0.3, 3.3}
  local v = o.value or 0
  if not (type(v) == "number" or v == "random" or (type(v) == "table" and #v >= 1)) then
    fail("%s: value must be a number, a list of numbers (one per channel) or \"random\"", who)
  end
  s.value = v
  return from_stages(who, string.format("random_erasing{p=%s, scale=%s}", fmt(s.p), describe_range(s.scale)), {s})
end

-- cnn.aug.normalize(mean, std): (x - mean) / std per channel; numbers or tables of one per channel.
function aug.normalize(mean, std)
  local who = "normalize"
  local function list(v, name)
    if type(v) == "number" then return {v} end
    if type(v) == "table" and #v >= 1 then
      for i, x in ipairs(v) do
        if type(x) ~= "number" then fail("%s: %s[%d] must be a number", who, name, i) end
      end
      return v
    end
    fail("%s: %s must be a number or a table of numbers (one per channel)", who, name)
  end
  local m, s = list(mean, "mean"), list(std, "std")
  if #m ~= #s and #m ~= 1 and #s ~= 1 then fail("%s: %d means but %d standard deviations", who, #m, #s) end
  local function show(v)
    local t = {}
    for i, x in ipairs(v) do t[i] = fmt(x) end
    return #t == 1 and t[1] or "{" .. table.concat(t, ", ") .. "}"
  end
  return from_stages(who, string.format("normalize(%s, %s)", show(m), show(s)), {{kind = "normalize", mean = m, std = s}})
end

-- cnn.aug.random_channel_shift(range): Keras' channel_shift_range.
function aug.random_channel_shift(r, options)
  local who = "random_channel_shift"
  local o = check_options(who, options, set("p"))
  if type(r) ~= "number" or not (r >= 0) then fail("%s: range must be a number >= 0", who) end
  return from_stages(who, string.format("random_channel_shift(%s)", fmt(r)),
                     {{kind = "channel_shift", range = r, p = stage_probability(who, o)}})
end

-- ---- composition -------------------------------------------------------------------------------------------

local size_changing = {crop = true, resized_crop = true}
local stage_probability_kinds = {affine = true, color = true, noise = true, erasing = true, channel_shift = true}

-- The parts of transform t applied with probability p per image (C stages) or per batch (Lua code).
local function with_probability(t, p, index)
  local stages = {}
  for _, part in ipairs(t.parts) do
    if not part.stages then return {{fn = t, p = p}} end
    for _, s in ipairs(part.stages) do stages[#stages + 1] = s end
  end
  for _, s in ipairs(stages) do
    if size_changing[s.kind] then
      fail("compose: entry %d (%s) changes the image size, so it cannot be given a probability", index, t.description)
    end
  end
  if #stages == 1 and stage_probability_kinds[stages[1].kind] then
    local copy = {}
    for k, v in pairs(stages[1]) do copy[k] = v end
    copy.p = (copy.p or 1) * p
    return {{stages = {copy}}}
  end
  local grouped = {{kind = "gate", p = p, count = #stages}}
  for _, s in ipairs(stages) do grouped[#grouped + 1] = s end
  return {{stages = grouped}}
end

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- cnn.aug.compose{t1, {t2, p=0.5}, fn, ...}: runs the entries in order. An entry is a transform, a
-- Lua function of the batch (its result, if any, replaces it), or {entry, p=probability}: built-in
-- transforms then run on each image with that probability; Lua functions on the whole batch.
function aug.compose(list)
  local who = "compose"
  if type(list) ~= "table" then fail("%s: expected a list of transforms, got a %s", who, type(list)) end
  local parts, names = {}, {}
  for i, entry in ipairs(list) do
    local t, p = entry, nil
    if type(entry) == "table" and getmetatable(entry) == nil then
      for k in pairs(entry) do
        if k ~= 1 and k ~= "p" then fail("%s: entry %d may hold a transform and p only (found '%s')", who, i, tostring(k)) end
      end
      t, p = entry[1], entry.p
      if p ~= nil then probability(who, string.format("entry %d's p", i), p) end
    end
    if is_transform(t) then
      names[#names + 1] = t.description .. (p and (" p=" .. fmt(p)) or "")
      if p == nil or p == 1 then
        for _, part in ipairs(t.parts) do
          parts[#parts + 1] = part.stages and {stages = part.stages} or {fn = part.fn, p = part.p}
        end
      else
        for _, part in ipairs(with_probability(t, p, i)) do parts[#parts + 1] = part end
      end
    elseif callable(t) then
      names[#names + 1] = "function" .. (p and (" p=" .. fmt(p)) or "")
      parts[#parts + 1] = {fn = t, p = p}
    else
      fail("%s: entry %d must be a transform, a function or {transform, p=...}, got a %s", who, i, type(t))
    end
  end
  return new_transform(who, "compose{" .. table.concat(names, ", ") .. "}", parts)
end

-- ---- Keras' ImageDataGenerator ----------------------------------------------------------------------------

local Generator = setmetatable({}, {__index = Transform})
Generator.__index = Generator
Generator.__call = run
Generator.__tostring = Transform.__tostring
aug.ImageDataGenerator = Generator

-- Keras' random_transform(x, seed): one image (or a batch).
function Generator:random_transform(x, seed)
  return run(self, x, seed)
end

-- Keras' flow(x, y): a cnn.data.loader over (x, y) with this generator as its transform.
function Generator:flow(x, y, options)
  local o = check_options("flow", options, set("batch_size", "shuffle", "seed"))
  local data = require "cnn.data"
  local ds = data.tensor_dataset(x, y)
  return data.loader(ds, {batch_size = o.batch_size or 32, shuffle = o.shuffle == nil and true or o.shuffle,
                          seed = o.seed or 1, transform = self})
end

local keras_options = set("rotation_range", "width_shift_range", "height_shift_range", "brightness_range",
  "shear_range", "zoom_range", "channel_shift_range", "fill_mode", "cval", "horizontal_flip", "vertical_flip",
  "rescale", "preprocessing_function", "samplewise_center", "samplewise_std_normalization", "featurewise_center",
  "featurewise_std_normalization", "zca_whitening", "zca_epsilon", "data_format", "validation_split",
  "interpolation_order", "dtype")

-- Keras' shift range for one axis: a float below 1 is a fraction of the size, from 1 up pixels
-- (uniform in [-r, r]); an integer r gives whole pixels from the open interval (-r, r).
local function keras_shift(who, name, r)
  if r == nil or r == 0 then return {0, 0}, "pixels" end
  if type(r) ~= "number" then
    fail("%s: %s must be a number (a fraction of the size below 1, pixels from 1 up), got a %s", who, name, type(r))
  end
  r = math.abs(r)
  if math.type(r) == "integer" then return {-(r - 1), r - 1}, "whole_pixels" end
  return {-r, r}, r < 1 and "fraction" or "pixels"
end

local function keras_symmetric(who, name, v)
  if v == nil then return {0, 0} end
  if type(v) ~= "number" then fail("%s: %s must be a number of degrees, got a %s", who, name, type(v)) end
  return {-math.abs(v), math.abs(v)}
end

-- cnn.aug.image_data_generator{...}: Keras' ImageDataGenerator with its names and meanings. Per image:
-- one affine warp (rotation_range, width/height_shift_range, shear_range in degrees, zoom_range z ->
-- [1 - z, 1 + z] drawn independently for x and y, flips), then channel_shift_range, brightness_range
-- {low, high} (a factor), then preprocessing_function (on the batch), rescale and the samplewise
-- options. featurewise statistics and ZCA need a pass over the data: use cnn.aug.normalize instead.
function aug.image_data_generator(options)
  local who = "image_data_generator"
  local o = check_options(who, options or {}, keras_options)
  for _, name in ipairs{"featurewise_center", "featurewise_std_normalization", "zca_whitening"} do
    if o[name] then
      fail("%s: %s needs statistics of the whole training set; compute the per-channel mean and std once "
           .. "and add cnn.aug.normalize(mean, std) instead", who, name)
    end
  end
  if o.validation_split and o.validation_split ~= 0 then
    fail("%s: validation_split is not supported; split the dataset with ds:split(fraction)", who)
  end
  if o.data_format ~= nil and o.data_format ~= "channels_first" then
    fail("%s: tensors here are N x C x H x W, so data_format can only be \"channels_first\" (got %s)", who,
         tostring(o.data_format))
  end
  if o.dtype ~= nil and o.dtype ~= "float32" then fail("%s: dtype can only be \"float32\"", who) end

  local parts, described = {}, {}
  local function note(name)
    local v = o[name]
    if v == nil then return end
    local text = type(v) == "table" and string.format("{%s, %s}", tostring(v[1]), tostring(v[2])) or tostring(v)
    described[#described + 1] = name .. "=" .. text
  end
  local affine = {kind = "affine"}
  fill_options(who, {fill_mode = o.fill_mode, cval = o.cval}, affine)
  local order = o.interpolation_order
  if order ~= nil then
    if order == 0 then affine.sampling = "nearest"
    elseif order ~= 1 then fail("%s: interpolation_order must be 0 (nearest) or 1 (bilinear), got %s", who, tostring(order)) end
  end
  affine.rotation = keras_symmetric(who, "rotation_range", o.rotation_range)
  affine.shift_x, affine.shift_x_units = keras_shift(who, "width_shift_range", o.width_shift_range)
  affine.shift_y, affine.shift_y_units = keras_shift(who, "height_shift_range", o.height_shift_range)
  affine.shear = keras_symmetric(who, "shear_range", o.shear_range)
  if o.zoom_range ~= nil then
    local z = o.zoom_range
    if type(z) == "number" then z = {1 - z, 1 + z}
    elseif not is_pair(z) then fail("%s: zoom_range must be a number or a pair {low, high}", who) end
    if not (z[1] > 0 and z[1] <= z[2]) then
      fail("%s: zoom_range gives factors {%s, %s}; they must be positive with low <= high", who, fmt(z[1]), fmt(z[2]))
    end
    affine.zoom_x, affine.zoom_y = {z[1], z[2]}, {z[1], z[2]}
  end
  affine.flip_horizontal = flip_probability(who, "horizontal_flip", o.horizontal_flip, 0.5)
  affine.flip_vertical = flip_probability(who, "vertical_flip", o.vertical_flip, 0.5)
  for _, name in ipairs{"rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range",
                        "horizontal_flip", "vertical_flip", "fill_mode"} do note(name) end
  local stages = {affine}
  if o.channel_shift_range and o.channel_shift_range ~= 0 then
    if type(o.channel_shift_range) ~= "number" then fail("%s: channel_shift_range must be a number", who) end
    stages[#stages + 1] = {kind = "channel_shift", range = math.abs(o.channel_shift_range)}
    note("channel_shift_range")
  end
  if o.brightness_range ~= nil then
    local b = o.brightness_range
    if not is_pair(b) or b[1] < 0 or b[1] > b[2] then
      fail("%s: brightness_range must be a pair {low, high} of factors with 0 <= low <= high", who)
    end
    stages[#stages + 1] = {kind = "color", brightness = {b[1], b[2]}}
    described[#described + 1] = string.format("brightness_range={%s, %s}", fmt(b[1]), fmt(b[2]))
  end
  parts[1] = {stages = stages}
  if o.preprocessing_function ~= nil then
    if not callable(o.preprocessing_function) then fail("%s: preprocessing_function must be a function", who) end
    parts[#parts + 1] = {fn = o.preprocessing_function}
    described[#described + 1] = "preprocessing_function"
  end
  local after = {}
  if o.rescale ~= nil and o.rescale ~= 0 then
    if type(o.rescale) ~= "number" then fail("%s: rescale must be a number", who) end
    after[#after + 1] = {kind = "normalize", mean = {0}, std = {1 / o.rescale}}
    note("rescale")
  end
  if o.samplewise_center or o.samplewise_std_normalization then
    after[#after + 1] = {kind = "standardize", center = o.samplewise_center == true,
                         scale = o.samplewise_std_normalization == true}
    note("samplewise_center")
    note("samplewise_std_normalization")
  end
  if #after > 0 then parts[#parts + 1] = {stages = after} end
  return new_transform(who, "image_data_generator{" .. table.concat(described, ", ") .. "}", parts, Generator)
end

return aug
