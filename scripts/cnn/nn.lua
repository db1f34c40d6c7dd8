-- cnn.nn: layers, containers and losses as modules, in the manner of torch.nn, with Keras-style
-- constructors and input-size inference. The pieces live in cnn/nn/*.lua:
--   module.lua      nn.Module: classes, registration, traversal, modes, lazily-sized layers
--   state_dict.lua  model:state_dict(), model:load_state_dict(sd)
--   summary.lua     model:summary(input_shape)
--   args.lua        constructor argument checking
--   conv.lua        Conv2d, ConvTranspose2d
--   pooling.lua     MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, GlobalAvgPool2d, Upsample
--   linear.lua      Linear (Dense), Flatten
--   norm.lua        BatchNorm1d, BatchNorm2d
--   dropout.lua     Dropout, Dropout2d
--   activation.lua  ReLU, LeakyReLU, ELU, Sigmoid, Tanh, GELU, SiLU, Softplus, Softmax, LogSoftmax, Identity
--   container.lua   Sequential, ModuleList
--   loss.lua        CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCELoss, BCEWithLogitsLoss
--   weight_init.lua nn.init (kaiming/xavier/normal/uniform/constant)
local Module = require "cnn.nn.module"

local nn = {Module = Module, init = require "cnn.nn.weight_init", is_module = Module.is_module}

for _, part in ipairs {"conv", "pooling", "linear", "norm", "dropout", "activation", "container", "loss"} do
  for name, value in pairs(require("cnn.nn." .. part)) do
    if type(value) == "table" and rawget(value, "__is_module_class") then nn[name] = value end
  end
end

-- nn.summary(model, input_shape, opts) is model:summary(input_shape, opts).
function nn.summary(model, input_shape, opts) return model:summary(input_shape, opts) end

return nn
