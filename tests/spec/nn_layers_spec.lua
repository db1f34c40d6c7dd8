-- Specs of the layers of cnn.nn: forward values on small known inputs (the worked numbers of the
-- course material among them), Keras constructor forms and input inference, PyTorch's
-- initialisation, finite-difference gradient checks through modules, and constructor errors.
local cnn = require "cnn"
local nn = cnn.nn
local gradcheck = require "gradcheck"
local fixtures = require "nn_fixtures"
local assert_close, assert_error, error_message = fixtures.assert_close, fixtures.assert_error, fixtures.error_message

local function set(t, values) cnn.no_grad(function() t:copy(cnn.tensor(values)) end) end

describe("Conv2d", function()
  it("computes the cross-correlation of the worked example", function()
    local conv = nn.Conv2d(1, 1, 2, {bias = false})
    assert.is_nil(conv.bias)
    set(conv.weight, {{{{1, 0}, {0, -1}}}})
    local y = conv(cnn.tensor{{{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}}})
    assert_close(y, {{{{-4, -4}, {-4, -4}}}})
  end)

  it("adds the bias per output channel", function()
    local conv = nn.Conv2d(1, 2, 1)
    set(conv.weight, {{{{1}}}, {{{2}}}})
    set(conv.bias, {10, -1})
    assert_close(conv(cnn.tensor{{{{1, 2}}}}), {{{{11, 12}}, {{1, 3}}}})
  end)

  it("follows the output size arithmetic (W - F + 2P) / S + 1", function()
    assert.are.same({1, 2, 3, 3}, nn.Conv2d(1, 2, 3, {stride = 2})(cnn.randn(1, 1, 7, 7)):shape())
    assert.are.same({1, 2, 4, 4}, nn.Conv2d(1, 2, 3, {stride = 2, padding = 1})(cnn.randn(1, 1, 7, 7)):shape())
    -- P = (S (H - 1) - H + F) / 2 = 1 keeps the size for F = 3, and so does "same"
    assert.are.same({1, 2, 9, 9}, nn.Conv2d(1, 2, 3, {padding = 1})(cnn.randn(1, 1, 9, 9)):shape())
    assert.are.same({1, 2, 9, 9}, nn.Conv2d(1, 2, 3, {padding = "same"})(cnn.randn(1, 1, 9, 9)):shape())
    assert.are.same({1, 2, 7, 7}, nn.Conv2d(1, 2, 3, {padding = "valid"})(cnn.randn(1, 1, 9, 9)):shape())
    assert.are.same({1, 2, 5, 9}, nn.Conv2d(1, 2, {5, 1}, {padding = {0, 0}})(cnn.randn(1, 1, 9, 9)):shape())
    assert.are.same({1, 2, 5, 5}, nn.Conv2d(1, 2, 3, {dilation = 2})(cnn.randn(1, 1, 9, 9)):shape())
  end)

  it("a 5x5x3 kernel sums 75 products: one channel of 28x28; depthwise gives 28x28x3", function()
    local full = nn.Conv2d(3, 1, 5)
    assert.are.same({1, 3, 5, 5}, full.weight:shape())
    assert.are.equal(76, full:num_parameters())
    assert.are.same({1, 1, 28, 28}, full(cnn.randn(1, 3, 32, 32)):shape())
    local depthwise = nn.Conv2d(3, 3, 5, {groups = 3})
    assert.are.same({3, 1, 5, 5}, depthwise.weight:shape())
    assert.are.same({1, 3, 28, 28}, depthwise(cnn.randn(1, 3, 32, 32)):shape())
  end)

  it("initialises as PyTorch: uniform in +-1/sqrt(fan_in), reproducible from the seed", function()
    cnn.manual_seed(7)
    local a = nn.Conv2d(3, 16, 5)
    cnn.manual_seed(7)
    local b = nn.Conv2d(3, 16, 5)
    assert.are.equal(0, (a.weight - b.weight):abs():max():item())
    local bound = 1 / math.sqrt(75)
    local wmax = a.weight:abs():max():item()
    assert.is_true(wmax <= bound and wmax > 0.95 * bound, "weight bound " .. wmax)
    assert.is_true(math.abs(a.weight:mean():item()) < 0.1 * bound)
    assert.is_true(a.bias:abs():max():item() <= bound)
    assert.is_true(a.weight:needs_grad() and a.bias:needs_grad())
  end)

  it("Keras form: filters, kernel_size, strides, padding, activation, input_shape (HWC)", function()
    local conv = nn.Conv2d{filters = 8, kernel_size = {5, 5}, input_shape = {32, 32, 3}}
    assert.are.equal(3, conv.in_channels)
    assert.are.same({8, 3, 5, 5}, conv.weight:shape())
    assert.are.same({3, 32, 32}, conv:declared_input_shape())
    assert.are.same({2, 8, 28, 28}, conv(cnn.randn(2, 3, 32, 32)):shape())
    local relu = nn.Conv2d{filters = 4, kernel_size = 3, strides = 2, padding = "same", activation = "relu",
                           use_bias = false}
    local y = relu(cnn.randn(2, 5, 8, 8))
    assert.are.same({2, 4, 4, 4}, y:shape())
    assert.is_true(y:min():item() >= 0)
    assert.is_nil(relu.bias)
    assert.are.same({4, 5, 3, 3}, relu.weight:shape()) -- in_channels inferred
    local probs = nn.Conv2d{filters = 3, kernel_size = 1, activation = "softmax"}(cnn.randn(2, 4, 3, 3))
    assert_close(probs:sum(2), cnn.ones(2, 3, 3):totable(), 1e-5) -- over the channels
  end)

  it("Keras \"same\" with a stride gives ceil(size / stride), the odd pixel of padding at the bottom/right", function()
    local conv = nn.Conv2d{filters = 1, kernel_size = 3, strides = 2, padding = "same", use_bias = false}
    assert.are.same({1, 1, 3, 3}, conv(cnn.randn(1, 1, 5, 5)):shape())
    assert.are.same({1, 1, 4, 4}, conv(cnn.randn(1, 1, 8, 8)):shape())
    cnn.no_grad(function() conv.weight:fill(1) end)
    assert_close(conv(cnn.arange(0, 16):view(1, 1, 4, 4)), {{{{45, 39}, {66, 50}}}})
  end)

  it("infers in_channels on the first forward and then insists on it", function()
    local conv = nn.Conv2d(nil, 4, 3)
    assert.are.equal(0, #conv:parameters())
    conv(cnn.randn(1, 6, 5, 5))
    assert.are.same({4, 6, 3, 3}, conv.weight:shape())
    assert_error("expected 6 input channels, got 2", conv, cnn.randn(1, 2, 5, 5))
  end)
end)

describe("ConvTranspose2d", function()
  it("spreads each input pixel over the kernel", function()
    local up = nn.ConvTranspose2d(1, 1, 2, {stride = 2, bias = false})
    assert.are.same({1, 1, 2, 2}, up.weight:shape())
    set(up.weight, {{{{1, 1}, {1, 1}}}})
    local x = cnn.tensor{{{{1, 2}, {3, 4}}}}
    assert_close(up(x), {{{{1, 1, 2, 2}, {1, 1, 2, 2}, {3, 3, 4, 4}, {3, 3, 4, 4}}}})
    local overlap = nn.ConvTranspose2d(1, 1, 2, {bias = false})
    set(overlap.weight, {{{{1, 1}, {1, 1}}}})
    assert_close(overlap(x), {{{{1, 3, 2}, {4, 10, 6}, {3, 7, 4}}}})
  end)

  it("grows the image: stride 2, kernel 4, padding 1 doubles it; padding \"same\" gives exactly stride x input",
     function()
    assert.are.same({1, 3, 10, 10}, nn.ConvTranspose2d(4, 3, 4, {stride = 2, padding = 1})(cnn.randn(1, 4, 5, 5)):shape())
    for _, k in ipairs {1, 2, 3, 4, 5} do
      local layer = nn.ConvTranspose2d{filters = 2, kernel_size = k, strides = 2, padding = "same"}
      assert.are.same({1, 2, 10, 14}, layer(cnn.randn(1, 3, 5, 7)):shape())
    end
    assert.are.same({1, 2, 6, 6}, nn.ConvTranspose2d(3, 2, 3, {stride = 2, output_padding = 1})(cnn.randn(1, 3, 2, 2)):shape())
  end)

  it("has the weight layout (in, out / groups, kh, kw)", function()
    local layer = nn.ConvTranspose2d(4, 6, 3, {groups = 2})
    assert.are.same({4, 3, 3, 3}, layer.weight:shape())
    assert.are.same({6}, layer.bias:shape())
  end)
end)

describe("pooling and resampling", function()
  local x = cnn.tensor{{{{2, 3, 1, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}, {13, 14, 15, 16}}}}

  it("max and average pooling give the worked example's values", function()
    assert_close(nn.MaxPool2d(2)(x), {{{{6, 8}, {14, 16}}}})
    assert_close(nn.AvgPool2d(2)(x), {{{{4, 5}, {11.5, 13.5}}}})
    assert_close(nn.MaxPool2d{pool_size = 2, strides = 2}(x), {{{{6, 8}, {14, 16}}}})
  end)

  it("follows (W - F) / S + 1 with overlapping windows", function()
    assert_close(nn.MaxPool2d(2, {stride = 1})(x), {{{{6, 7, 8}, {10, 11, 12}, {14, 15, 16}}}})
    assert.are.same({1, 1, 2, 2}, nn.MaxPool2d(3, {stride = 1})(x):shape())
    assert.are.same({1, 1, 3, 3}, nn.MaxPool2d(3, {stride = 2, padding = 1})(cnn.randn(1, 1, 5, 5)):shape())
  end)

  it("adaptive and global average pooling", function()
    assert_close(nn.AdaptiveAvgPool2d{1, 1}(x), {{{{8.5}}}})
    assert_close(nn.AdaptiveAvgPool2d(2)(x), {{{{4, 5}, {11.5, 13.5}}}})
    assert_close(nn.GlobalAvgPool2d()(x), {{8.5}})
  end)

  it("upsampling by nearest neighbour and bilinear interpolation", function()
    local small = cnn.tensor{{{{1, 2}, {3, 4}}}}
    assert_close(nn.Upsample{scale = 2}(small), {{{{1, 1, 2, 2}, {1, 1, 2, 2}, {3, 3, 4, 4}, {3, 3, 4, 4}}}})
    assert.are.same({1, 1, 3, 5}, nn.Upsample{size = {3, 5}, mode = "bilinear"}(small):shape())
    local b = nn.Upsample(2, "bilinear")(small)
    assert.is_true(b:min():item() >= 1 and b:max():item() <= 4)
  end)

  it("Flatten keeps the batch dimension", function()
    assert.are.same({2, 60}, nn.Flatten()(cnn.randn(2, 3, 4, 5)):shape())
    assert.are.same({2, 3, 20}, nn.Flatten(3)(cnn.randn(2, 3, 4, 5)):shape())
    assert.are.same({6, 4, 5}, nn.Flatten(1, 2)(cnn.randn(2, 3, 4, 5)):shape())
  end)
end)

describe("Linear", function()
  it("computes x W^T + b over the last dimension", function()
    local lin = nn.Linear(2, 3)
    set(lin.weight, {{1, 2}, {3, 4}, {5, 6}})
    set(lin.bias, {1, 0, -1})
    assert_close(lin(cnn.tensor{{1, 1}}), {{4, 7, 10}})
    assert.are.same({4, 5, 3}, lin(cnn.randn(4, 5, 2)):shape())
  end)

  it("initialises weight and bias in +-1/sqrt(in_features)", function()
    local lin = nn.Linear(400, 120)
    local bound = 1 / math.sqrt(400)
    assert.is_true(lin.weight:abs():max():item() <= bound)
    assert.is_true(lin.weight:abs():max():item() > 0.95 * bound)
    assert.is_true(lin.bias:abs():max():item() <= bound)
    assert.are.equal(48120, lin:num_parameters())
  end)

  it("Keras Dense: units and activation, in_features inferred or from input_shape", function()
    local dense = nn.Dense{units = 120, activation = "relu"}
    assert.is_true(dense:has_lazy_parameters())
    local y = dense(cnn.randn(3, 400))
    assert.are.same({120, 400}, dense.weight:shape())
    assert.is_true(y:min():item() >= 0)
    local first = nn.Dense{units = 10, input_shape = {784}}
    assert.are.same({10, 784}, first.weight:shape())
    assert.are.same({784}, first:declared_input_shape())
    assert.is_nil(nn.Linear(3, 2, {bias = false}).bias)
    assert.are.equal(nn.Linear, nn.Dense)
  end)
end)

describe("BatchNorm", function()
  it("normalises each channel with the batch statistics in training and updates the running ones", function()
    cnn.manual_seed(11)
    local bn = nn.BatchNorm2d(3)
    local x = cnn.randn(4, 3, 5, 5) * 3 + 2
    local y = bn(x)
    local per_channel_mean = y:mean(4):mean(3):mean(1)
    assert_close(per_channel_mean:view(3), {0, 0, 0}, 1e-4)
    local var = (y * y):mean(4):mean(3):mean(1):view(3)
    assert_close(var, {1, 1, 1}, 1e-3)
    local batch_mean = x:mean(4):mean(3):mean(1):view(3)
    assert_close(bn.running_mean, (batch_mean * 0.1):totable(), 1e-5)
    local n = 4 * 5 * 5
    local centered = x - x:mean(4, true):mean(3, true):mean(1, true)
    local unbiased = ((centered * centered):sum(4):sum(3):sum(1) / (n - 1)):view(3)
    assert_close(bn.running_var, (unbiased * 0.1 + 0.9):totable(), 1e-3)
  end)

  it("uses the running statistics in evaluation mode", function()
    local bn = nn.BatchNorm2d(2, {eps = 0})
    bn:eval()
    cnn.no_grad(function()
      bn.running_mean:copy(cnn.tensor{1, -1})
      bn.running_var:copy(cnn.tensor{4, 1})
      bn.weight:copy(cnn.tensor{2, 1})
      bn.bias:copy(cnn.tensor{0, 0.5})
    end)
    local x = cnn.tensor{{{{3}}, {{0}}}}
    assert_close(bn(x), {{{{2}}, {{1.5}}}}) -- 2 * (3 - 1) / 2 and (0 + 1) / 1 + 0.5
  end)

  it("BatchNorm1d works on N x C; affine=false and track_running_stats=false drop parameters and buffers", function()
    local bn = nn.BatchNorm1d(3)
    assert.are.same({8, 3}, bn(cnn.randn(8, 3)):shape())
    assert.are.same({8, 3, 4}, bn(cnn.randn(8, 3, 4)):shape())
    local bare = nn.BatchNorm1d(3, {affine = false, track_running_stats = false})
    assert.are.equal(0, #bare:parameters())
    assert.are.equal(0, #bare:buffers())
    bare:eval() -- still batch statistics
    local y = bare(cnn.randn(16, 3) + 5)
    assert_close(y:mean(1), {0, 0, 0}, 1e-4)
  end)

  it("infers num_features", function()
    local bn = nn.BatchNorm2d()
    bn(cnn.randn(2, 5, 3, 3))
    assert.are.same({5}, bn.weight:shape())
    assert.are.same({5}, bn.running_var:shape())
  end)
end)

describe("Dropout", function()
  it("zeroes about p of the elements in training and scales the rest by 1/(1-p); identity in eval", function()
    cnn.manual_seed(12)
    local d = nn.Dropout(0.5)
    local y = d(cnn.ones(4000))
    local kept = y:gt(0):sum():item()
    assert.is_true(kept > 1800 and kept < 2200, "kept " .. kept)
    assert.are.equal(2, y:max():item())
    d:eval()
    assert.are.equal(4000, d(cnn.ones(4000)):sum():item())
    assert.are.equal(0.3, nn.Dropout{rate = 0.3}.p)
    assert.are.equal(10, nn.Dropout(0)(cnn.ones(10)):sum():item())
  end)

  it("Dropout2d drops whole channels", function()
    cnn.manual_seed(13)
    local y = nn.Dropout2d(0.5)(cnn.ones(4, 16, 3, 3))
    local per_channel = y:sum(4):sum(3):view(64):totable()
    for _, s in ipairs(per_channel) do assert.is_true(s == 0 or math.abs(s - 18) < 1e-4) end
  end)
end)

describe("activations", function()
  local x = cnn.tensor{-1, 0, 2}
  local cases = {
    {"ReLU", nn.ReLU(), {0, 0, 2}},
    {"LeakyReLU", nn.LeakyReLU(0.1), {-0.1, 0, 2}},
    {"LeakyReLU default", nn.LeakyReLU(), {-0.01, 0, 2}},
    {"ELU", nn.ELU(), {math.exp(-1) - 1, 0, 2}},
    {"ELU alpha", nn.ELU(2), {2 * (math.exp(-1) - 1), 0, 2}},
    {"Sigmoid", nn.Sigmoid(), {0.26894142, 0.5, 0.88079708}},
    {"Tanh", nn.Tanh(), {-0.76159416, 0, 0.96402758}},
    {"GELU", nn.GELU(), {-0.15865525, 0, 1.95449974}},
    {"SiLU", nn.SiLU(), {-0.26894142, 0, 1.76159416}},
    {"Identity", nn.Identity(), {-1, 0, 2}},
  }
  for _, c in ipairs(cases) do
    it(c[1], function() assert_close(c[2](x), c[3], 2e-3) end)
  end

  it("Softmax and LogSoftmax along a dim (default: the last)", function()
    local s = cnn.tensor{{1, 2}, {3, 3}}
    assert_close(nn.Softmax()(s), {{0.26894142, 0.73105858}, {0.5, 0.5}})
    assert_close(nn.Softmax(1)(s), {{0.11920292, 0.26894142}, {0.88079708, 0.73105858}})
    assert_close(nn.LogSoftmax(2)(s), {{-1.31326169, -0.31326169}, {-0.69314718, -0.69314718}})
    assert_error("dim 3 is out of range for a 2-d input", nn.Softmax(3), s)
  end)
end)

describe("losses", function()
  local logits = cnn.tensor{{1, 2}, {3, 3}}
  local labels = cnn.tensor{2, 1}

  it("CrossEntropyLoss with its options", function()
    assert_close(nn.CrossEntropyLoss()(logits, labels), 0.50320446)
    assert_close(nn.CrossEntropyLoss()(logits, {2, 1}), 0.50320446) -- labels as a table
    assert_close(nn.CrossEntropyLoss{reduction = "sum"}(logits, labels), 1.00640892)
    assert_close(nn.CrossEntropyLoss{reduction = "none"}(logits, labels), {0.31326169, 0.69314718})
    assert_close(nn.CrossEntropyLoss{ignore_index = 1}(logits, labels), 0.31326169)
    assert_close(nn.CrossEntropyLoss{label_smoothing = 0.1}(logits, labels), 0.52820445)
    assert_close(nn.CrossEntropyLoss{weight = {1, 3}}(logits, labels), 0.40823308)
  end)

  it("NLLLoss, MSELoss, L1Loss, BCELoss, BCEWithLogitsLoss", function()
    assert_close(nn.NLLLoss()(cnn.tensor{{-1, -2}, {-3, -0.5}}, cnn.tensor{1, 2}), 0.75)
    local pred, target = cnn.tensor{1, 2, 3}, cnn.tensor{1, 0, 0}
    assert_close(nn.MSELoss()(pred, target), 13 / 3)
    assert_close(nn.MSELoss{reduction = "sum"}(pred, target), 13)
    assert_close(nn.L1Loss()(pred, target), 5 / 3)
    assert_close(nn.BCELoss()(cnn.tensor{0.5, 0.8}, cnn.tensor{1, 0}), 1.15129255)
    assert_close(nn.BCEWithLogitsLoss()(cnn.tensor{0, 0}, cnn.tensor{1, 0}), 0.69314718)
  end)

  it("report bad labels with the runtime's message", function()
    assert_error("out of range 1..2", nn.CrossEntropyLoss(), logits, cnn.tensor{3, 1})
  end)
end)

describe("gradients through modules (finite differences)", function()
  local opts = {eps = 1e-2, atol = 2e-2, rtol = 2e-2}

  it("Conv2d: input, weight and bias", function()
    cnn.manual_seed(21)
    local conv = nn.Conv2d(2, 3, 3, {padding = 1, stride = 2})
    local x = cnn.randn(1, 2, 5, 5):requires_grad()
    assert.is_true(gradcheck(function(input) return conv(input) end, {x, conv.weight, conv.bias}, opts))
  end)

  it("Conv2d with groups and dilation", function()
    cnn.manual_seed(22)
    local conv = nn.Conv2d(4, 2, 3, {groups = 2, dilation = 2, padding = 2})
    local x = cnn.randn(1, 4, 4, 4):requires_grad()
    assert.is_true(gradcheck(function(input) return conv(input) end, {x, conv.weight, conv.bias}, opts))
  end)

  it("ConvTranspose2d", function()
    cnn.manual_seed(23)
    local up = nn.ConvTranspose2d(2, 2, 3, {stride = 2, padding = 1, output_padding = 1})
    local x = cnn.randn(1, 2, 3, 3):requires_grad()
    assert.is_true(gradcheck(function(input) return up(input) end, {x, up.weight, up.bias}, opts))
  end)

  it("Linear", function()
    cnn.manual_seed(24)
    local lin = nn.Linear(4, 3)
    local x = cnn.randn(2, 4):requires_grad()
    assert.is_true(gradcheck(function(input) return lin(input) end, {x, lin.weight, lin.bias}, opts))
  end)

  it("BatchNorm2d and BatchNorm1d in training mode", function()
    cnn.manual_seed(25)
    local bn = nn.BatchNorm2d(2)
    cnn.no_grad(function() bn.weight:copy(cnn.tensor{1.5, -0.7}); bn.bias:copy(cnn.tensor{0.1, 0.3}) end)
    local x = cnn.randn(3, 2, 2, 2):requires_grad()
    assert.is_true(gradcheck(function(input) return bn(input) end, {x, bn.weight, bn.bias}, opts))
    local bn1 = nn.BatchNorm1d(3)
    local x1 = cnn.randn(5, 3):requires_grad()
    assert.is_true(gradcheck(function(input) return bn1(input) end, {x1, bn1.weight, bn1.bias}, opts))
  end)

  it("a small Sequential CNN, every parameter", function()
    cnn.manual_seed(26)
    local model = nn.Sequential{nn.Conv2d(1, 2, 3, {padding = 1}), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(2, 2, 1),
                                nn.ReLU(), nn.Flatten(), nn.Linear(8, 3), nn.LogSoftmax()}
    local x = cnn.randn(2, 1, 4, 4):requires_grad()
    local inputs = {x}
    for _, p in ipairs(model:parameters()) do inputs[#inputs + 1] = p end
    assert.is_true(gradcheck(function(input) return model(input) end, inputs, opts))
  end)

  it("a user-defined residual block with batch norm", function()
    cnn.manual_seed(27)
    local Block = nn.Module:extend("Residual")
    function Block:init(c)
      self.conv = nn.Conv2d(c, c, 3, {padding = 1})
      self.bn = nn.BatchNorm2d(c)
    end
    function Block:forward(x) return (self.bn(self.conv(x)) + x):tanh() end
    local block = Block(2)
    local x = cnn.randn(2, 2, 3, 3):requires_grad()
    local inputs = {x}
    for _, p in ipairs(block:parameters()) do inputs[#inputs + 1] = p end
    assert.is_true(gradcheck(function(input) return block(input) end, inputs, opts))
  end)

  it("pooling, upsampling and a loss module", function()
    cnn.manual_seed(28)
    local x = cnn.randn(1, 2, 4, 4):requires_grad()
    local model = nn.Sequential{nn.Upsample{scale = 2, mode = "bilinear"}, nn.MaxPool2d(3, {stride = 2, padding = 1}),
                                nn.AdaptiveAvgPool2d{2, 2}}
    assert.is_true(gradcheck(function(input) return model(input) end, {x}, opts))
    local logits = cnn.randn(3, 4):requires_grad()
    local loss = nn.CrossEntropyLoss{label_smoothing = 0.1}
    assert.is_true(gradcheck(function(input) return loss(input, cnn.tensor{1, 4, 2}) end, {logits}, opts))
  end)
end)

describe("constructor errors", function()
  local cases = {
    {"Conv2d: in_channels must be a positive integer, got string \"a\"", function() return nn.Conv2d("a") end},
    {"Conv2d: kernel_size is missing", function() return nn.Conv2d(1, 6) end},
    {"Conv2d: kernel_size must be a positive integer, got 0", function() return nn.Conv2d(1, 6, 0) end},
    {"Conv2d: out_channels must be a positive integer, got 2.5", function() return nn.Conv2d(1, 2.5, 3) end},
    {"Conv2d: unknown option 'strid'", function() return nn.Conv2d(1, 6, 3, {strid = 2}) end},
    {"Conv2d: in_channels (3) must be divisible by groups (2)", function() return nn.Conv2d(3, 6, 3, {groups = 2}) end},
    {"Conv2d: padding must be a number, a pair {h, w}, \"same\" or \"valid\"",
     function() return nn.Conv2d(1, 6, 3, {padding = "full"}) end},
    {"Conv2d: padding must be a non-negative integer, got -1", function() return nn.Conv2d(1, 6, 3, {padding = -1}) end},
    {"Conv2d: the number of output channels is missing (give filters=...)",
     function() return nn.Conv2d{kernel_size = 3} end},
    {"Conv2d: input_shape must be {height, width, channels}",
     function() return nn.Conv2d{filters = 8, kernel_size = 3, input_shape = {28, 28}} end},
    {"Conv2d: unknown activation \"relux\"", function() return nn.Conv2d{filters = 8, kernel_size = 3, activation = "relux"} end},
    {"Conv2d: give 'stride' or 'strides', not both", function() return nn.Conv2d(1, 2, 3, {stride = 1, strides = 1}) end},
    {"ConvTranspose2d: kernel_size must be an integer or a pair {h, w}, got a table of 3 values",
     function() return nn.ConvTranspose2d(1, 2, {1, 2, 3}) end},
    {"Linear: in_features must be a positive integer, got 0", function() return nn.Linear(0, 3) end},
    {"Linear: expected (in_features, out_features, options?), got no out_features", function() return nn.Linear(3) end},
    {"Linear: the number of outputs is missing (give units=...)", function() return nn.Dense{activation = "relu"} end},
    {"BatchNorm2d: num_features must be a positive integer, got string \"x\"", function() return nn.BatchNorm2d("x") end},
    {"BatchNorm2d: momentum must be in [0, 1], got 2", function() return nn.BatchNorm2d(3, {momentum = 2}) end},
    {"Dropout: p must be in [0, 1], got 1.5", function() return nn.Dropout(1.5) end},
    {"MaxPool2d: expected (kernel_size, options?), got no kernel_size", function() return nn.MaxPool2d() end},
    {"MaxPool2d: padding \"same\" is not supported for pooling", function() return nn.MaxPool2d(2, {padding = "same"}) end},
    {"AvgPool2d: unknown option 'dilation'", function() return nn.AvgPool2d(2, {dilation = 2}) end},
    {"Upsample: mode must be \"nearest\" or \"bilinear\", got string \"cubic\"", function() return nn.Upsample{mode = "cubic"} end},
    {"AdaptiveAvgPool2d: the output size {oh, ow} is missing", function() return nn.AdaptiveAvgPool2d() end},
    {"Softmax: dim must be an integer, got 1.5", function() return nn.Softmax(1.5) end},
    {"MSELoss: reduction must be \"mean\", \"sum\" or \"none\", got string \"avg\"",
     function() return nn.MSELoss{reduction = "avg"} end},
    {"Sequential: entry 2 is not a module but table (a class: call it, e.g. nn.ReLU())",
     function() return nn.Sequential{nn.Linear(2, 2), nn.ReLU} end},
    {"Sequential:add: expected a module, got number", function() return nn.Sequential():add(3) end},
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local err = error_message(c[2])
      assert.truthy(err:find(c[1], 1, true), err)
      -- the position is the caller's line, not a line inside the library
      local position = err:match("^(.-%.lua):%d+: ")
      assert.truthy(position and not position:find("cnn/nn", 1, true), "error position: " .. err)
    end)
  end
end)
