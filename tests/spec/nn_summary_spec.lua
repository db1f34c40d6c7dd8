-- Specs of model:summary (LeNet-5's 61,706 parameters, the ResNet-18-style network's 17
-- convolutions and 3904 feature maps at 224 x 224, user modules, frozen parameters, memory estimate)
-- and of nn.init.
local cnn = require "cnn"
local nn = cnn.nn
local fixtures = require "nn_fixtures"
local assert_error, lenet = fixtures.assert_error, fixtures.lenet

-- A ResNet-18-style network: a 7x7 stride-2 convolution, then four stages of two basic blocks (two
-- 3x3 convolutions each). The shortcut is the identity, or at a stage change a parameter-free one
-- (stride-2 subsampling and zero channels appended: the paper's option A), so that the network has
-- exactly the 1 + 16 convolutions the course counts.
local BasicBlock = nn.Module:extend("BasicBlock")

function BasicBlock:init(cin, cout, stride)
  self.conv1 = nn.Conv2d(cin, cout, 3, {stride = stride, padding = 1, bias = false})
  self.bn1 = nn.BatchNorm2d(cout)
  self.conv2 = nn.Conv2d(cout, cout, 3, {padding = 1, bias = false})
  self.bn2 = nn.BatchNorm2d(cout)
  self.extra_channels = cout - cin
  self.stride = stride
end

function BasicBlock:forward(x)
  local out = self.bn2(self.conv2(self.bn1(self.conv1(x)):relu()))
  local shortcut = x
  if self.stride ~= 1 then shortcut = cnn.max_pool2d(x, 1, {stride = self.stride}) end
  if self.extra_channels > 0 then
    local s = shortcut:shape()
    shortcut = cnn.cat({shortcut, cnn.zeros(s[1], self.extra_channels, s[3], s[4])}, 2)
  end
  return (out + shortcut):relu()
end

local function resnet18_style()
  local model = nn.Sequential{nn.Conv2d(3, 64, 7, {stride = 2, padding = 3, bias = false}), nn.BatchNorm2d(64),
                              nn.ReLU(), nn.MaxPool2d(3, {stride = 2, padding = 1})}
  local cin = 64
  for stage, width in ipairs {64, 128, 256, 512} do
    for block = 1, 2 do
      model:add(BasicBlock(cin, width, (stage > 1 and block == 1) and 2 or 1))
      cin = width
    end
  end
  return model:add(nn.AdaptiveAvgPool2d{1, 1}):add(nn.Flatten()):add(nn.Linear(512, 1000))
end

describe("model:summary", function()
  it("LeNet-5: 61,706 parameters, per-layer shapes and counts, feature maps", function()
    local model = lenet()
    local text, info = model:summary({1, 28, 28}, {quiet = true})
    assert.are.equal(61706, info.total_params)
    assert.are.equal(61706, info.trainable_params)
    assert.are.equal(0, info.non_trainable_params)
    assert.are.equal(12, #info.rows)
    local expected = {
      {"1", "Conv2d", {6, 28, 28}, 156, 6}, {"2", "ReLU", {6, 28, 28}, 0}, {"3", "MaxPool2d", {6, 14, 14}, 0},
      {"4", "Conv2d", {16, 10, 10}, 2416, 16}, {"5", "ReLU", {16, 10, 10}, 0}, {"6", "MaxPool2d", {16, 5, 5}, 0},
      {"7", "Flatten", {400}, 0}, {"8", "Linear", {120}, 48120}, {"9", "ReLU", {120}, 0},
      {"10", "Linear", {84}, 10164}, {"11", "ReLU", {84}, 0}, {"12", "Linear", {10}, 850},
    }
    for i, e in ipairs(expected) do
      local row = info.rows[i]
      assert.are.equal(e[1], row.name)
      assert.are.equal(e[2], row.type)
      assert.are.same(e[3], row.output_shape)
      assert.are.equal(e[4], row.params)
      assert.are.equal(e[5], row.feature_maps)
    end
    assert.are.equal(2, info.convolutions)
    assert.are.equal(22, info.feature_maps)
    -- output elements per sample: 2*4704 + 1176 + 2*1600 + 400 + 400 + 2*120 + 2*84 + 10 = 15002
    assert.are.equal(15002 * 4, info.activation_bytes)
    assert.truthy(text:find("Total params: 61,706", 1, true))
    assert.truthy(text:find("1 (Conv2d)", 1, true))
    assert.truthy(text:find("(N, 6, 28, 28)", 1, true))
    assert.truthy(text:find("Convolutions: 2, total feature maps: 22", 1, true))
    local _, batch64 = model:summary({1, 28, 28}, {quiet = true, batch_size = 64})
    assert.are.equal(64 * 15002 * 4, batch64.activation_bytes)
  end)

  it("prints the table and returns it", function()
    local printed = {}
    local real_print = print
    _G.print = function(s) printed[#printed + 1] = s end
    local ok, text = pcall(function() return (lenet():summary{1, 28, 28}) end)
    _G.print = real_print
    assert.is_true(ok, tostring(text))
    assert.are.equal(1, #printed)
    assert.are.equal(text, printed[1])
  end)

  it("ResNet-18 style at 224 x 224: 17 convolutions, 3904 feature maps, 224 -> 112 -> 56 -> 28 -> 14 -> 7",
     function()
    local model = resnet18_style()
    model:eval():train() -- summary must leave the mode as it found it
    local _, info = model:summary({3, 224, 224}, {quiet = true})
    assert.are.equal(17, info.convolutions)
    assert.are.equal(3904, info.feature_maps)
    local sizes = {}
    for _, row in ipairs(info.rows) do
      if row.feature_maps and sizes[#sizes] ~= row.output_shape[2] then sizes[#sizes + 1] = row.output_shape[2] end
    end
    assert.are.same({112, 56, 28, 14, 7}, sizes)
    local pool = info.rows[4]
    assert.are.equal("MaxPool2d", pool.type)
    assert.are.same({64, 56, 56}, pool.output_shape)
    assert.are.equal("5.conv1", info.rows[5].name) -- rows of a user module's children carry their path
    assert.are.same({1000}, info.rows[#info.rows].output_shape)
    assert.is_true(model.training and model[5].bn1.training)
    assert.is_nil(rawget(model[1], "forward")) -- the instrumentation is gone
    -- parameters: convolutions without bias, batch norms, the classifier
    local expected = 3 * 64 * 49 + 2 * 64
    local cin = 64
    for _, width in ipairs {64, 128, 256, 512} do
      expected = expected + 9 * cin * width + 9 * width * width + 2 * 9 * width * width + 4 * 2 * width
      cin = width
    end
    expected = expected + 512 * 1000 + 1000
    assert.are.equal(expected, info.total_params)
  end)

  it("counts frozen parameters as non-trainable and reports buffers", function()
    local model = nn.Sequential{nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2)}
    model[1]:freeze()
    local text, info = model:summary({1, 4, 4}, {quiet = true})
    assert.are.equal(40, info.non_trainable_params)
    assert.are.equal(8 + 34, info.trainable_params)
    assert.are.equal(8, info.buffer_values)
    assert.truthy(text:find("Non-trainable params: 40 (frozen)", 1, true))
  end)

  it("builds lazily-sized layers and uses the Keras input_shape when none is given", function()
    local model = nn.Sequential{nn.Conv2d{filters = 6, kernel_size = 5, padding = "same", activation = "relu",
                                          input_shape = {28, 28, 1}},
                                nn.MaxPool2d(2), nn.Flatten(), nn.Dense{units = 10}}
    local _, info = model:summary(nil, {quiet = true})
    assert.are.equal(156 + 6 * 14 * 14 * 10 + 10, info.total_params)
    assert.are.same({6, 28, 28}, info.rows[1].output_shape)
    assert.are.equal(4, #info.rows) -- the activation belongs to its convolution's row
  end)

  it("shows a module's own parameters and every call of a shared layer", function()
    local Scaled = nn.Module:extend("Scaled")
    function Scaled:init()
      self.gain = cnn.ones(1):requires_grad()
      self.lin = nn.Linear(3, 3)
    end
    function Scaled:forward(x) return self.lin(self.lin(x)) * self.gain end
    local _, info = Scaled():summary({3}, {quiet = true})
    assert.are.equal(3, #info.rows)
    assert.are.same({"lin", "lin", ""}, {info.rows[1].name, info.rows[2].name, info.rows[3].name})
    assert.are.same({12, 0, 1}, {info.rows[1].params, info.rows[2].params, info.rows[3].params})
    assert.are.equal(13, info.total_params)
  end)

  it("errors name the model and the failing layer", function()
    assert_error("give the input shape without the batch dimension", function() lenet():summary() end)
    assert_error("layer 1 (Conv2d): Conv2d(1, 6, kernel_size=5, padding=2): expected 1 input channels, got 3",
                 function() lenet():summary({3, 28, 28}, {quiet = true}) end)
    assert_error("batch_size must be a positive integer", function() lenet():summary({1, 28, 28}, {batch_size = 0}) end)
  end)
end)

describe("nn.init", function()
  local function stats(t)
    local mean = t:mean():item()
    local std = ((t - mean) ^ 2):mean():item() ^ 0.5
    return mean, std, t:abs():max():item()
  end

  it("fans follow PyTorch's layout", function()
    assert.are.same({75, 400}, {nn.init.fans(cnn.zeros(16, 3, 5, 5))})
    assert.are.same({100, 64}, {nn.init.fans(cnn.zeros(64, 100))})
    assert_error("at least 2 dimensions", function() nn.init.fans(cnn.zeros(5)) end)
  end)

  it("calculate_gain", function()
    assert.are.equal(1, nn.init.calculate_gain("linear"))
    assert.are.equal(math.sqrt(2), nn.init.calculate_gain("relu"))
    assert.are.equal(5 / 3, nn.init.calculate_gain("tanh"))
    assert.is_true(math.abs(nn.init.calculate_gain("leaky_relu", 0.2) - math.sqrt(2 / 1.04)) < 1e-12)
    assert_error("unknown nonlinearity", function() nn.init.calculate_gain("swirl") end)
  end)

  it("kaiming_uniform and kaiming_normal", function()
    cnn.manual_seed(31)
    local w = cnn.zeros(64, 100):requires_grad() -- parameters are initialised in place
    nn.init.kaiming_uniform(w)
    local bound = math.sqrt(6 / 100)
    local _, _, max = stats(w)
    assert.is_true(max <= bound and max > 0.95 * bound)
    nn.init.kaiming_uniform(w, {a = math.sqrt(5)})
    _, _, max = stats(w)
    assert.is_true(max <= 0.1 + 1e-6 and max > 0.095) -- 1/sqrt(fan_in): the layers' default
    nn.init.kaiming_uniform(w, 0, "fan_out", "relu")
    _, _, max = stats(w)
    assert.is_true(max <= math.sqrt(6 / 64) and max > 0.95 * math.sqrt(6 / 64))
    nn.init.kaiming_normal(w, {nonlinearity = "relu"})
    local mean, std = stats(w)
    assert.is_true(math.abs(mean) < 0.01 and math.abs(std - math.sqrt(2 / 100)) < 0.01, "std " .. std)
    assert_error("mode must be", function() nn.init.kaiming_normal(w, {mode = "fan"}) end)
  end)

  it("xavier_uniform and xavier_normal", function()
    cnn.manual_seed(32)
    local w = cnn.zeros(64, 100)
    nn.init.xavier_uniform(w)
    local _, _, max = stats(w)
    local bound = math.sqrt(6 / 164)
    assert.is_true(max <= bound and max > 0.95 * bound)
    nn.init.xavier_normal(w, 2)
    local _, std = stats(w)
    assert.is_true(math.abs(std - 2 * math.sqrt(2 / 164)) < 0.01, "std " .. std)
  end)

  it("uniform, normal, constant, zeros, ones", function()
    cnn.manual_seed(33)
    local w = cnn.zeros(50, 50)
    assert.are.equal(w, nn.init.uniform(w, -1, 3))
    assert.is_true(w:min():item() >= -1 and w:max():item() <= 3 and w:max():item() > 2.9)
    nn.init.normal(w, 2, 0.5)
    local mean, std = stats(w)
    assert.is_true(math.abs(mean - 2) < 0.05 and math.abs(std - 0.5) < 0.03)
    nn.init.constant(w, 0.25)
    assert.are.equal(0.25, w:min():item())
    assert.are.equal(0.25, w:max():item())
    nn.init.ones(w)
    assert.are.equal(2500, w:sum():item())
    nn.init.zeros(w)
    assert.are.equal(0, w:abs():sum():item())
    assert_error("expected a tensor", function() nn.init.zeros({}) end)
  end)
end)
