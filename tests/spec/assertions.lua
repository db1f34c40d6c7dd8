-- Value and error assertions shared by the specs:
--   local A = require "assertions"
--   A.assert_close(got, expected, tol)   -- got: tensor, number or nested table; expected: number or table
--   A.assert_error(fragment, fn, ...)    -- fn(...) must raise an error whose message contains fragment
--   A.max_diff(got, expected)            -- the largest absolute difference (math.huge on a shape mismatch)
--   A.error_of(fn, ...)                  -- fn(...) must raise; returns the message
--   A.assert_contains(text, part)        -- text must contain part literally
--   A.ramp(d1, d2, ...)                  -- 0, 1, 2, ... in the given shape
local cnn = require "cnn"

local A = {}

function A.max_diff(got, expected)
  if cnn.is_tensor(got) then got = got:dim() == 0 and got:item() or got:totable() end
  if type(expected) == "number" then
    return type(got) == "number" and math.abs(got - expected) or math.huge
  end
  if type(got) ~= "table" or #got ~= #expected then return math.huge end
  local worst = 0
  for i = 1, #expected do worst = math.max(worst, A.max_diff(got[i], expected[i])) end
  return worst
end

function A.assert_close(got, expected, tol)
  tol = tol or 1e-5
  local d = A.max_diff(got, expected)
  assert(d <= tol, string.format("values differ by %g (tolerance %g)", d, tol))
end

function A.assert_error(fragment, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error containing: " .. fragment)
  assert(tostring(err):find(fragment, 1, true), "error message was: " .. tostring(err))
end

function A.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

function A.assert_contains(text, part)
  assert(text:find(part, 1, true), string.format("expected %q to contain %q", text, part))
end

function A.ramp(...)
  local shape, n = {...}, 1
  for _, s in ipairs(shape) do n = n * s end
  return cnn.arange(0, n):view(table.unpack(shape))
end

return A
