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

-- In inference what a convolution derives from its weight (the kept taps of a large kernel on a tiny
-- map, Winograd's transform, the direct product's packed kernels) is kept from one call to the next
-- (runtime/weight_cache.h): every way of changing the weight in place must be seen.
for _, case in ipairs {
  {name = "compact copy (256 channels on 1x1 maps)", input = {2, 256, 1, 1}, weight = {256, 256, 3, 3}},
  {name = "Winograd transform (16 channels on 8x8 maps)", input = {2, 16, 8, 8}, weight = {24, 16, 3, 3}},
  {name = "packed panels (256 channels on 2x2 maps)", input = {2, 256, 2, 2}, weight = {64, 256, 3, 3}},
  {name = "packed kernels (3 channels, 7x7)", input = {2, 3, 16, 16}, weight = {16, 3, 7, 7}},
} do
  describe("weight copies kept between inference calls: " .. case.name, function()
    cnn.manual_seed(23)
    local x = cnn.randn(table.unpack(case.input))
    local w = cnn.randn(table.unpack(case.weight)) * 0.05
    local function infer(weight)
      local y
      cnn.no_grad(function() y = cnn.conv2d(x, weight, nil, {padding = 1}) end)
      return y
    end
    local function max_difference(a, b) return (a - b):abs():max():item() end
    -- a fresh storage each time: never served from a copy of an earlier state
    local function expected() return infer(w:clone()) end

    it("serves the same values again while the weight is unchanged", function()
      local first = infer(w)
      assert.are.equal(0, max_difference(first, expected()))
      assert.are.equal(0, max_difference(infer(w), first))
    end)

    it("sees fill, copy and element writes", function()
      local before = infer(w)
      w:fill(0.01)
      assert.are.equal(0, max_difference(infer(w), expected()))
      w:copy(cnn.randn(table.unpack(case.weight)) * 0.05)
      assert.are.equal(0, max_difference(infer(w), expected()))
      assert.is_true(max_difference(infer(w), before) > 1e-3)
      w[3] = cnn.zeros(table.unpack(case.weight, 2)) -- one output channel
      local y = infer(w)
      assert.are.equal(0, max_difference(y, expected()))
      assert.are.equal(0, y:narrow(2, 3, 1):abs():max():item())
    end)

    it("sees an optimizer step", function()
      local p = w:clone():requires_grad()
      local before = infer(p)
      local opt = cnn.optim.SGD({p}, {lr = 0.1})
      cnn.conv2d(x, p, nil, {padding = 1}):sum():backward()
      opt:step()
      local after = infer(p)
      assert.is_true(max_difference(after, before) > 1e-3)
      assert.are.equal(0, max_difference(after, infer(p:detach():clone())))
    end)
  end)
end
