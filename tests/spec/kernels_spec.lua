-- The fast paths behind conv2d, conv_transpose2d and max_pool2d (runtime/conv_algo.h), each checked
-- by finite differences: the shapes are chosen so that each path is the one taken. Values against
-- direct loops are in tests/c/test_kernels.c.
local cnn = require "cnn"
local gradcheck = require "gradcheck"

describe("convolution paths", function()
  it("Winograd F(4x4, 3x3): 3x3, stride 1, 8+ channels, 8x8 images", function()
    cnn.manual_seed(11)
    local x, w, b = cnn.randn(1, 8, 8, 9):requires_grad(), (cnn.randn(8, 8, 3, 3) * 0.3):requires_grad(),
                    cnn.randn(8):requires_grad()
    assert.is_true(gradcheck(function(x, w, b) return cnn.conv2d(x, w, b, {padding = 1}) end, {x, w, b},
                             {atol = 2e-2, rtol = 2e-2}))
  end)

  it("direct product, tap by tap: 16 channels, stride 2 on a small map", function()
    cnn.manual_seed(12)
    local x, w = cnn.randn(2, 16, 4, 4):requires_grad(), (cnn.randn(12, 16, 3, 3) * 0.2):requires_grad()
    assert.is_true(gradcheck(function(x, w) return cnn.conv2d(x, w, nil, {stride = 2, padding = 1}) end, {x, w}))
  end)

  it("direct product, dense: few channels and a 5x5 kernel (LeNet's second layer)", function()
    cnn.manual_seed(13)
    local x, w, b = cnn.randn(2, 6, 7, 7):requires_grad(), (cnn.randn(16, 6, 5, 5) * 0.2):requires_grad(),
                    cnn.randn(16):requires_grad()
    assert.is_true(gradcheck(function(x, w, b) return cnn.conv2d(x, w, b) end, {x, w, b}))
  end)

  it("direct product along image rows: fewer than 12 output channels", function()
    cnn.manual_seed(14)
    local x, w = cnn.randn(2, 1, 9, 8):requires_grad(), (cnn.randn(6, 1, 5, 5) * 0.3):requires_grad()
    assert.is_true(gradcheck(function(x, w) return cnn.conv2d(x, w, nil, {padding = 2}) end, {x, w}))
  end)

  it("product and fold: input gradient with few input channels (8 -> 16, 3x3 padded)", function()
    cnn.manual_seed(20)
    local x, w = cnn.randn(2, 8, 6, 7):requires_grad(), (cnn.randn(16, 8, 3, 3) * 0.3):requires_grad()
    assert.is_true(gradcheck(function(x, w) return cnn.conv2d(x, w, nil, {padding = 1}) end, {x, w}))
  end)

  it("weight gradient along image rows: 3 output channels, dilation 2", function()
    cnn.manual_seed(21)
    local x, w, b = cnn.randn(2, 2, 9, 12):requires_grad(), (cnn.randn(3, 2, 3, 3) * 0.3):requires_grad(),
                    cnn.randn(3):requires_grad()
    assert.is_true(gradcheck(function(x, w, b) return cnn.conv2d(x, w, b, {padding = 2, dilation = 2}) end, {x, w, b}))
  end)

  it("depthwise stencils, stride 1 and 2", function()
    cnn.manual_seed(15)
    local x, w = cnn.randn(2, 4, 9, 7):requires_grad(), cnn.randn(4, 1, 3, 3):requires_grad()
    for _, stride in ipairs {1, 2} do
      assert.is_true(gradcheck(function(x, w) return cnn.conv2d(x, w, nil, {groups = 4, stride = stride, padding = 1}) end,
                               {x, w}))
    end
  end)

  it("conv_transpose2d through the same paths", function()
    cnn.manual_seed(16)
    local x, w = cnn.randn(1, 8, 8, 8):requires_grad(), (cnn.randn(8, 8, 3, 3) * 0.3):requires_grad()
    assert.is_true(gradcheck(function(x, w) return cnn.conv_transpose2d(x, w, nil, {padding = 1}) end, {x, w},
                             {atol = 2e-2, rtol = 2e-2}))
  end)
end)

describe("max_pool2d vector paths", function()
  it("3x3 stride 2 with padding (ResNet's stem)", function()
    cnn.manual_seed(18)
    local x = cnn.randn(2, 3, 9, 11):requires_grad()
    assert.is_true(gradcheck(function(x) return cnn.max_pool2d(x, 3, {stride = 2, padding = 1}) end, {x},
                             {eps = 1e-3}))
  end)

  it("2x2 stride 2", function()
    cnn.manual_seed(19)
    local x = cnn.randn(2, 3, 8, 10):requires_grad()
    assert.is_true(gradcheck(function(x) return cnn.max_pool2d(x, 2) end, {x}, {eps = 1e-3}))
  end)
end)
