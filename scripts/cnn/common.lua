-- What the Lua library shares: tensor tests and error reporting that points at the
-- caller's line rather than at this library's.
local cnn = require "cnn"

local common = {}

local library_sources = {}

-- Marks the calling file as part of the library: errors skip its frames.
function common.register_source()
  library_sources[debug.getinfo(2, "S").source] = true
end
common.register_source()

-- Raises a formatted error positioned at the first caller outside the library.
function common.fail(fmt, ...)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if info == nil or not library_sources[info.source] then break end
    level = level + 1
  end
  error(string.format(fmt, ...), level)
end

common.is_tensor = cnn.is_tensor

function common.shape_str(t)
  local shape = t:shape()
  return #shape == 0 and "scalar" or table.concat(shape, "x")
end

function common.same_shape(a, b)
  local sa, sb = a:shape(), b:shape()
  if #sa ~= #sb then return false end
  for d = 1, #sa do
    if sa[d] ~= sb[d] then return false end
  end
  return true
end

-- Option values are numbers, booleans, strings or arrays of them (betas); tables are copied.
function common.copy_option(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = x end
  return c
end

return common
