-- Argument checks shared by cnn.aug, cnn.image and the dataset readers: options tables with known
-- keys, and image sizes. Errors point at the caller's line (cnn.common.fail).
local common = require "cnn.common"

common.register_source()
local fail = common.fail

local args = {}

-- A set of names: args.set("a", "b") --> {a = true, b = true}.
function args.set(...)
  local s = {}
  for _, name in ipairs{...} do s[name] = true end
  return s
end

-- options (nil means {}) after checking that it is a table whose keys are all in known.
function args.check_options(who, options, known)
  if options == nil then return {} end
  if type(options) ~= "table" then fail("%s: options must be a table, got a %s", who, type(options)) end
  for k in pairs(options) do
    if not known[k] then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      fail("%s: unknown option '%s' (known options: %s)", who, tostring(k), table.concat(names, ", "))
    end
  end
  return options
end

-- A pair {low, high} of numbers?
function args.is_pair(v)
  return type(v) == "table" and #v == 2 and type(v[1]) == "number" and type(v[2]) == "number"
end

-- An image size: a positive integer n (n x n) or a pair {h, w}, returned as {h, w}.
function args.size_pair(who, size, what)
  if math.tointeger(size) and size >= 1 then return {math.tointeger(size), math.tointeger(size)} end
  if type(size) == "table" and #size == 2 and math.tointeger(size[1]) and math.tointeger(size[2]) and
     size[1] >= 1 and size[2] >= 1 then
    return {math.tointeger(size[1]), math.tointeger(size[2])}
  end
  fail("%s: %s must be a positive integer or a pair {h, w}, got %s", who, what or "size",
       type(size) == "table" and "a table" or tostring(size))
end

return args
