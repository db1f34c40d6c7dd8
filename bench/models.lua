-- models.lua - the networks of the benchmark, built with cnn.nn exactly as bench/models.py builds
-- them with torch.nn (same layers, same order, same optimizer settings), so that the two sides of
-- every line of the table do the same arithmetic.
--
--   local models = dofile("bench/models.lua")
--   local spec = models.lenet()   --> {model=, optimizer=function(params) ... end, input={C, H, W},
--                                      batch=, classes=}
local cnn = rawget(_G, "cnn") or require "cnn"
local nn = cnn.nn

local M = {}

-- LeNet-5 on 1x28x28 (padding 2 in the first convolution, as for MNIST), SGD with momentum.
function M.lenet()
  local model = nn.Sequential {
    nn.Conv2d(1, 6, 5, {padding = 2}), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
  }
  return {model = model, input = {1, 28, 28}, batch = 64, classes = 10,
          optimizer = function(p) return cnn.optim.SGD(p, {lr = 0.01, momentum = 0.9}) end}
end

local function conv_bn_relu(layers, cin, cout)
  layers[#layers + 1] = nn.Conv2d(cin, cout, 3, {padding = 1, bias = false})
  layers[#layers + 1] = nn.BatchNorm2d(cout)
  layers[#layers + 1] = nn.ReLU()
end

-- VGG-style on 3x32x32: three pairs of 3x3 convolutions (32, 64, 128 channels) with batch norm and
-- ReLU, max pooling after each pair, dropout 0.5, a linear layer to 10 classes; Adam.
function M.vgg()
  local layers, cin = {}, 3
  for _, c in ipairs {32, 64, 128} do
    conv_bn_relu(layers, cin, c)
    conv_bn_relu(layers, c, c)
    layers[#layers + 1] = nn.MaxPool2d(2)
    cin = c
  end
  layers[#layers + 1] = nn.Flatten()
  layers[#layers + 1] = nn.Dropout(0.5)
  layers[#layers + 1] = nn.Linear(128 * 4 * 4, 10)
  return {model = nn.Sequential(layers), input = {3, 32, 32}, batch = 128, classes = 10,
          optimizer = function(p) return cnn.optim.Adam(p, {lr = 1e-3}) end}
end

-- ResNet-18 in torchvision's layout (7x7 stem with stride 2, 3x3 max pool, four stages of two basic
-- blocks, global average pool, 10 classes) on 3x32x32; SGD with momentum.
local BasicBlock = nn.Module:extend("BasicBlock")

function BasicBlock:init(cin, cout, stride)
  self.conv1 = nn.Conv2d(cin, cout, 3, {stride = stride, padding = 1, bias = false})
  self.bn1 = nn.BatchNorm2d(cout)
  self.conv2 = nn.Conv2d(cout, cout, 3, {padding = 1, bias = false})
  self.bn2 = nn.BatchNorm2d(cout)
  if stride ~= 1 or cin ~= cout then
    self.downsample = nn.Sequential {nn.Conv2d(cin, cout, 1, {stride = stride, bias = false}), nn.BatchNorm2d(cout)}
  end
end

function BasicBlock:forward(x)
  local y = self.bn1(self.conv1(x)):relu()
  y = self.bn2(self.conv2(y))
  local shortcut = self.downsample and self.downsample(x) or x
  return (y + shortcut):relu()
end

function M.resnet18()
  local layers = {nn.Conv2d(3, 64, 7, {stride = 2, padding = 3, bias = false}), nn.BatchNorm2d(64), nn.ReLU(),
                  nn.MaxPool2d(3, {stride = 2, padding = 1})}
  local cin = 64
  for stage, c in ipairs {64, 128, 256, 512} do
    layers[#layers + 1] = BasicBlock(cin, c, stage == 1 and 1 or 2)
    layers[#layers + 1] = BasicBlock(c, c, 1)
    cin = c
  end
  layers[#layers + 1] = nn.AdaptiveAvgPool2d {1, 1}
  layers[#layers + 1] = nn.Flatten()
  layers[#layers + 1] = nn.Linear(512, 10)
  return {model = nn.Sequential(layers), input = {3, 32, 32}, batch = 32, classes = 10,
          optimizer = function(p) return cnn.optim.SGD(p, {lr = 0.01, momentum = 0.9}) end}
end

-- The default network of scripts/train.lua (width 16) on Fashion-MNIST's 1x28x28, batch 128, Adam.
function M.fashion()
  local layers = {}
  conv_bn_relu(layers, 1, 16)
  conv_bn_relu(layers, 16, 16)
  layers[#layers + 1] = nn.MaxPool2d(2)
  conv_bn_relu(layers, 16, 32)
  conv_bn_relu(layers, 32, 32)
  layers[#layers + 1] = nn.MaxPool2d(2)
  for _, l in ipairs {nn.Dropout(0.1), nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
                      nn.Linear(128, 10)} do
    layers[#layers + 1] = l
  end
  return {model = nn.Sequential(layers), input = {1, 28, 28}, batch = 128, classes = 10,
          optimizer = function(p) return cnn.optim.Adam(p, {lr = 4e-3}) end}
end

return M
