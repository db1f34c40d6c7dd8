-- The cnn module: the C core (tensors, autograd, ops) plus the Lua library on top of it.
-- Submodules (cnn.nn, cnn.optim, cnn.data, ...) load on first use so that startup stays fast.
local cnn = require "cnn.core"

local submodules = {
  nn = "cnn.nn", optim = "cnn.optim", data = "cnn.data", aug = "cnn.aug", image = "cnn.image",
  sweep = "cnn.sweep", help = "cnn.help", plot = "cnn.plot",
}

-- Functions of the Lua library, loaded with their module on first use: name -> {module, field}.
local functions = {
  fit = {"cnn.fit", "fit"}, evaluate = {"cnn.fit", "evaluate"},
  save = {"cnn.checkpoint", "save"}, load = {"cnn.checkpoint", "load"},
}

setmetatable(cnn, {
  __index = function(t, key)
    local fn = functions[key]
    if fn ~= nil then
      local value = require(fn[1])[fn[2]]
      rawset(t, key, value)
      return value
    end
    local name = submodules[key]
    if name == nil then return nil end
    local mod = require(name)
    rawset(t, key, mod)
    return mod
  end,
})

return cnn
