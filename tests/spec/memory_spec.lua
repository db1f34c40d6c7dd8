-- Tensor memory seen from Lua: how much unreachable tensor memory the collector lets pile up. (What the
-- autograd graph keeps alive is tested in tests/c/test_memory.c.)
local cnn = require "cnn"

local MiB = 2 ^ 20

-- The growth the bindings allow between full collections (bindings/module.c): 16 MiB, an eighth of the
-- memory in use, or 8 bytes per byte of Lua heap, whichever is largest.
local function allowed_slack(in_use)
  return math.max(16 * MiB, in_use / 8, 8 * collectgarbage("count") * 1024)
end

describe("tensor memory", function()
  it("is collected before unreachable tensors add more than the allowed slack", function()
    collectgarbage()
    collectgarbage()
    local base = cnn.memory_in_use()
    local bound = base + allowed_slack(base) + 2 * MiB -- one tensor past the threshold, and margin
    local peak = 0
    for _ = 1, 300 do
      cnn.empty(MiB // 4) -- 1 MiB, unreachable at once
      peak = math.max(peak, cnn.memory_in_use())
    end
    assert.is_true(peak <= bound, string.format("peak %.1f MiB above a bound of %.1f MiB", peak / MiB,
                                                bound / MiB))
  end)
end)
