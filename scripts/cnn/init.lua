-- The cnn module: the C core (tensors, autograd, ops) plus the Lua library on top of it.
-- Submodules (cnn.nn, cnn.optim, cnn.data, ...) load on first use so that startup stays fast.
local cnn = require "cnn.core"

local submodules = {
  nn = "cnn.nn", optim = "cnn.optim", data = "cnn.data", aug = "cnn.aug", image = "cnn.image",
  sweep = "cnn.sweep", help = "cnn.help",
}

setmetatable(cnn, {
  __index = function(t, key)
    local name = submodules[key]
    if name == nil then return nil end
    local mod = require(name)
    rawset(t, key, mod)
    return mod
  end,
})

return cnn
