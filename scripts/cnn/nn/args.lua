-- Argument checking shared by the layers' constructors: each check names the layer and the argument
-- and says what was expected and what came, e.g.
--   Conv2d: in_channels must be a positive integer, got string "a"
-- and the error carries the position of the user's line that made the call.
local cnn = require "cnn"

local args = {}

local function is_tensor(v) return cnn.is_tensor(v) end

-- Whether v is a module instance (its class, the metatable, is marked).
local function is_module(v)
  local mt = type(v) == "table" and getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__is_module_class") == true
end
args.is_module = is_module

local function describe(v)
  if type(v) == "string" then return string.format("string %q", v) end
  if type(v) == "number" then return tostring(v) end
  if is_tensor(v) then return "a tensor" end
  return type(v)
end
args.describe = describe

-- The error level of the nearest caller outside the nn library (the user's constructor call), so
-- that an argument error carries the position of the line that made the mistake.
local function user_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, "S")
    if info == nil then return 0 end
    if info.what ~= "C" and not info.source:find("cnn[/\\]nn[/\\.]") then return level - 1 end
    level = level + 1
  end
end
args.user_level = user_level

function args.fail(layer, fmt, ...)
  error(layer .. ": " .. string.format(fmt, ...), user_level())
end

function args.positive_int(layer, what, v, default)
  if v == nil then return default end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v) and v >= 1 and v < 2^53) then
    args.fail(layer, "%s must be a positive integer, got %s", what, describe(v))
  end
  v = math.tointeger(v)
  if v < 1 then args.fail(layer, "%s must be a positive integer, got %s", what, describe(v)) end
  return v
end

function args.nonneg_int(layer, what, v, default)
  if v == nil then return default end
  local iv = math.tointeger(v)
  if iv == nil or iv < 0 then args.fail(layer, "%s must be a non-negative integer, got %s", what, describe(v)) end
  return iv
end

-- A size: an integer or a pair {h, w} of integers; returned as a pair.
function args.pair(layer, what, v, default, check)
  check = check or args.positive_int
  if v == nil then v = default end
  if v == nil then return nil end
  if type(v) == "table" and not is_tensor(v) then
    if #v ~= 2 then args.fail(layer, "%s must be an integer or a pair {h, w}, got a table of %d values", what, #v) end
    return {check(layer, what, v[1]), check(layer, what, v[2])}
  end
  if type(v) ~= "number" then args.fail(layer, "%s must be an integer or a pair {h, w}, got %s", what, describe(v)) end
  local n = check(layer, what, v)
  return {n, n}
end

function args.number(layer, what, v, default, lo, hi)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v then args.fail(layer, "%s must be a number, got %s", what, describe(v)) end
  if (lo and v < lo) or (hi and v > hi) then
    args.fail(layer, "%s must be in [%s, %s], got %s", what, tostring(lo or "-inf"), tostring(hi or "inf"), tostring(v))
  end
  return v
end

function args.boolean(layer, what, v, default)
  if v == nil then return default end
  if type(v) ~= "boolean" then args.fail(layer, "%s must be true or false, got %s", what, describe(v)) end
  return v
end

-- Raises for keys of an options table that are not in known (a list of names).
function args.options(layer, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" or is_tensor(opts) or is_module(opts) then
    args.fail(layer, "options must be a table, got %s", describe(opts))
  end
  local allowed = {}
  for _, k in ipairs(known) do allowed[k] = true end
  for k in pairs(opts) do
    if not allowed[k] then
      args.fail(layer, "unknown option '%s' (known options: %s)", tostring(k), table.concat(known, ", "))
    end
  end
  return opts
end

-- One value given under either of two names (PyTorch's and Keras').
function args.either(layer, opts, a, b)
  if opts[a] ~= nil and opts[b] ~= nil then args.fail(layer, "give '%s' or '%s', not both", a, b) end
  if opts[a] ~= nil then return opts[a] end
  return opts[b]
end

-- "3" for {3, 3}, "(3, 5)" otherwise: sizes as the layers' reprs show them.
function args.pair_str(p) return p[1] == p[2] and tostring(p[1]) or "(" .. p[1] .. ", " .. p[2] .. ")" end

-- The Keras input_shape (channels last, as Keras users write it: {H, W, C} or {features}) checked
-- and converted to the channels-first per-sample shape the network runs on.
function args.keras_input_shape(layer, v)
  if v == nil then return nil end
  if type(v) ~= "table" or #v == 0 then
    args.fail(layer, "input_shape must be a table like {28, 28, 1} (height, width, channels), got %s", describe(v))
  end
  local s = {}
  for i, d in ipairs(v) do s[i] = args.positive_int(layer, "input_shape entry " .. i, d) end
  if #s == 3 then return {s[3], s[1], s[2]} end
  return s
end

-- Records a Keras input_shape given to a layer whose input size lives in self[size_field]: the shape
-- must have rank entries (what says what they are); the size becomes its first channels-first
-- entry, and the model can later build itself from it.
function args.declare_input_shape(self, layer, input_shape, rank, what, size_field)
  local shape = args.keras_input_shape(layer, input_shape)
  if shape == nil then return end
  if #shape ~= rank then args.fail(layer, "input_shape must be %s, got a table of %d values", what, #shape) end
  if self[size_field] and self[size_field] ~= shape[1] then
    args.fail(layer, "%s %d disagrees with input_shape, which gives %d", size_field, self[size_field], shape[1])
  end
  self[size_field] = shape[1]
  rawset(self, "_input_shape", shape)
end

return args
