-- Shared by the nn_*_spec files: the shared assertions (tests/spec/assertions.lua), the message of
-- an expected error, and the LeNet-5 network (conv 1->6 5x5 pad 2, pool, conv 6->16 5x5, pool,
-- 400 -> 120 -> 84 -> 10: 61,706 parameters).
local cnn = require "cnn"
local A = require "assertions"

local fixtures = {}

fixtures.max_diff, fixtures.assert_close, fixtures.assert_error = A.max_diff, A.assert_close, A.assert_error

-- The message of the error fn(...) must raise.
function fixtures.error_message(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

function fixtures.lenet()
  local nn = cnn.nn
  return nn.Sequential{
    nn.Conv2d(1, 6, 5, {padding = 2}), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
  }
end

return fixtures
