-- cnn.aug: exact results of deterministic settings, statistics of the random ones, seeding and
-- threads, composition with probabilities, Keras' ImageDataGenerator names, and error messages.
local cnn = require "cnn"
local aug = cnn.aug

local A = require "assertions"
local error_of, assert_contains = A.error_of, A.assert_contains

local function counting(c, h, w)
  return cnn.arange(0, c * h * w):view(1, c, h, w)
end

local function same(a, b)
  assert.are.same(a:shape(), b:shape())
  assert.are.same(a:contiguous():view(-1):totable(), b:contiguous():view(-1):totable())
end

local function max_abs_diff(a, b)
  return (a - b):abs():max():item()
end

describe("cnn.aug geometric transforms", function()
  it("flipping twice gives the image back, and leaves its input alone", function()
    local x = counting(3, 4, 5)
    local copy = x:clone()
    local flip = aug.random_flip{horizontal = true, vertical = true, p = 1}
    local once = flip(x)
    assert.is_true(max_abs_diff(once, x) > 0)
    same(flip(once), x)
    same(x, copy)
    -- row 1 of the flipped image is the last row reversed
    assert.are.same({19, 18, 17, 16, 15}, once[1][1][1]:totable())
  end)

  it("turns a quarter counter-clockwise as transpose + vertical flip", function()
    local x = counting(1, 5, 5)
    local y = aug.random_rotation({90, 90}, {fill_mode = "constant", cval = -1})(x)
    local t = x:transpose(3, 4):contiguous()
    local expected = aug.random_flip{horizontal = false, vertical = true, p = 1}(t)
    same(y, expected)
  end)

  it("shifts by whole pixels with a constant fill", function()
    local x = counting(1, 3, 4)
    local y = aug.random_shift({1, 1}, {2, 2}, {fill_mode = "constant", cval = -1, units = "pixels"})(x)
    assert.are.same({{{{-1, -1, -1, -1}, {-1, -1, -1, -1}, {-1, 0, 1, 2}}}}, y:totable())
    -- the keyed form, as a fraction of the size
    local z = aug.random_shift{width = {0.25, 0.25}, height = 0, fill_mode = "constant", cval = -1}(x)
    assert.are.same({{{{-1, 0, 1, 2}, {-1, 4, 5, 6}, {-1, 8, 9, 10}}}}, z:totable())
  end)

  it("fills each mode like its picture (row 1 2 3 4 moved left by 2.5 pixels)", function()
    local row = cnn.tensor{1, 2, 3, 4}:view(1, 1, 1, 4)
    local expected = {nearest = {3.5, 4, 4, 4}, constant = {3.5, 0, 0, 0}, reflect = {3.5, 4, 3.5, 2.5},
                      wrap = {3.5, 2.5, 1.5, 2.5}}
    for mode, values in pairs(expected) do
      local y = aug.random_shift({-2.5, -2.5}, 0, {fill_mode = mode, units = "pixels"})(row)
      assert.are.same(values, y:view(4):totable(), mode)
    end
  end)

  it("zooms about the centre as Keras does (factor 2 shrinks the content)", function()
    local row = cnn.tensor{10, 11, 12, 13, 14}:view(1, 1, 1, 5)
    local y = aug.random_zoom({2, 2}, {fill_mode = "constant"})(row)
    assert.are.same({0, 10, 12, 14, 0}, y:view(5):totable())
  end)

  it("crops windows of the padded image", function()
    local x = counting(1, 4, 4)
    local batch = cnn.cat({x, x, x, x, x, x, x, x}, 1)
    local y = aug.random_crop(2, {padding = 1, fill = -1})(batch)
    assert.are.same({8, 1, 2, 2}, y:shape())
    for i = 1, 8 do
      local v = y[i][1]:totable()
      -- every crop is the padded image's window at some (top, left)
      local found = false
      for top = 0, 4 do
        for left = 0, 4 do
          local match = true
          for r = 1, 2 do
            for c = 1, 2 do
              local sr, sc = top + r - 2, left + c - 2
              local want = (sr >= 0 and sr < 4 and sc >= 0 and sc < 4) and sr * 4 + sc or -1
              match = match and v[r][c] == want
            end
          end
          found = found or match
        end
      end
      assert.is_true(found)
    end
  end)

  it("makes random resized crops of the requested size", function()
    local y = aug.random_resized_crop({6, 8}, {scale = {0.2, 0.5}})(cnn.rand(3, 3, 16, 16))
    assert.are.same({3, 3, 6, 8}, y:shape())
    -- the whole image at the same size is the image itself
    local x = cnn.rand(1, 1, 5, 5)
    local whole = aug.random_resized_crop(5, {scale = {1, 1}, ratio = {1, 1}})(x)
    assert.is_true(max_abs_diff(whole, x) < 1e-6)
  end)

  it("works on one image (C x H x W) as on a batch", function()
    local img = cnn.rand(1, 6, 6)
    local y = aug.random_affine{rotation = 10, zoom = 0.1, horizontal_flip = true}(img, 3)
    assert.are.same({1, 6, 6}, y:shape())
  end)
end)

describe("cnn.aug randomness", function()
  it("flips each image with probability p", function()
    local n = 3000
    local x = cnn.tensor{0, 1}:view(1, 1, 1, 2):expand(n, 1, 1, 2):contiguous()
    local y = aug.random_flip{horizontal = true, p = 0.25}(x, 17)
    local flipped = y:narrow(4, 1, 1):sum():item() / n -- flipped rows start with 1
    assert.is_true(math.abs(flipped - 0.25) < 0.03, "flip rate " .. flipped)
  end)

  it("keeps brightness factors within the range", function()
    local x = cnn.full({2000, 1, 1, 1}, 0.5)
    local y = aug.color_jitter{brightness = 0.4}(x, 5) -- factors in [0.6, 1.4]
    assert.is_true(y:min():item() >= 0.3 - 1e-6 and y:max():item() <= 0.7 + 1e-6)
    assert.is_true(y:min():item() < 0.31 and y:max():item() > 0.69)
  end)

  it("adds noise of the requested standard deviation", function()
    local y = aug.gaussian_noise(0.2)(cnn.zeros(2, 1, 64, 64), 9)
    assert.is_true(math.abs(y:mean():item()) < 0.01)
    assert.is_true(math.abs(y:std():item() - 0.2) < 0.006)
  end)

  it("erases rectangles with the given value", function()
    local y = aug.random_erasing{p = 1, value = 7}(cnn.zeros(50, 1, 16, 16), 4)
    for i = 1, 50 do
      local area = y[i]:eq(7):sum():item()
      assert.is_true(area >= 2 and area <= 0.4 * 256, "erased area " .. area)
    end
  end)

  it("gives the same result for the same seed, whatever the thread count", function()
    local gen = aug.image_data_generator{rotation_range = 20, width_shift_range = 0.2, height_shift_range = 0.2,
                                         shear_range = 0.2, zoom_range = 0.2, horizontal_flip = true}
    cnn.manual_seed(3)
    local x = cnn.rand(96, 3, 32, 32) -- enough work to run on several threads
    local threads = cnn.get_num_threads()
    cnn.set_num_threads(1)
    local one = gen(x, 77)
    cnn.manual_seed(5)
    local drawn_one = gen(x)
    cnn.set_num_threads(2)
    local two = gen(x, 77)
    cnn.manual_seed(5)
    local drawn_two = gen(x)
    cnn.set_num_threads(threads)
    same(one, two)
    same(drawn_one, drawn_two)
    assert.is_true(max_abs_diff(one, gen(x, 78)) > 0)
    -- images differ from one another: each draws its own parameters
    local copies = gen(x[1]:view(1, 3, 32, 32):expand(4, 3, 32, 32):contiguous(), 1)
    assert.is_true(max_abs_diff(copies[1], copies[2]) > 0)
  end)
end)

describe("cnn.aug.compose", function()
  it("runs entries in order, with a probability per image", function()
    local x = cnn.tensor{0, 1}:view(1, 1, 1, 2):expand(2000, 1, 1, 2):contiguous()
    local flip = aug.random_flip{p = 1}
    same(aug.compose{{flip, p = 0}}(x), x)
    local y = aug.compose{{flip, p = 0.5}}(x, 8)
    local rate = y:narrow(4, 1, 1):sum():item() / 2000
    assert.is_true(math.abs(rate - 0.5) < 0.04, "rate " .. rate)
    -- a group of several stages runs together or not at all
    local both = aug.compose{{aug.compose{flip, aug.normalize(0, 0.5)}, p = 0.5}}(x, 9)
    for i = 1, 20 do
      local v = both[i]:view(2):totable()
      assert.is_true((v[1] == 0 and v[2] == 1) or (v[1] == 2 and v[2] == 0))
    end
  end)

  it("accepts Lua functions and normalizes per channel", function()
    local calls = 0
    local t = aug.compose{
      function(b) calls = calls + 1; return b * 2 end,
      aug.normalize({1, 2}, {1, 2}),
      function(b) calls = calls + 1 end, -- returning nothing keeps the batch
    }
    local y = t(cnn.ones(3, 2, 2, 2))
    assert.are.equal(2, calls)
    assert.are.same({1, 0}, {y[1][1][1][1], y[1][2][1][1]})
    assert.is_nil(t:pipeline())
    assert.is_not_nil(aug.compose{aug.random_flip(), aug.random_rotation(5)}:pipeline())
  end)

  it("refuses a probability on a crop, and bad entries", function()
    assert_contains(error_of(aug.compose, {{aug.random_crop(4), p = 0.5}}), "changes the image size")
    assert_contains(error_of(aug.compose, {42}), "entry 1")
    assert_contains(error_of(aug.compose, {{aug.random_flip(), p = 2}}), "probability")
  end)

  it("prints what it does", function()
    local t = aug.compose{aug.random_flip{horizontal = true}, {aug.random_rotation(15), p = 0.5}}
    assert_contains(tostring(t), "random_flip")
    assert_contains(tostring(t), "p=0.5")
  end)
end)

describe("cnn.aug.image_data_generator", function()
  it("accepts Keras' names and keeps the batch shape", function()
    local gen = aug.image_data_generator{rotation_range = 20, width_shift_range = 0.2, height_shift_range = 0.2,
      shear_range = 0.2, zoom_range = 0.2, horizontal_flip = true, vertical_flip = true, fill_mode = "nearest",
      cval = 0, brightness_range = {0.8, 1.2}, channel_shift_range = 0.1}
    local y = gen(cnn.rand(4, 3, 10, 10))
    assert.are.same({4, 3, 10, 10}, y:shape())
    assert.are.same({3, 10, 10}, gen:random_transform(cnn.rand(3, 10, 10)):shape())
  end)

  it("applies preprocessing_function, rescale and samplewise options after the warp", function()
    local gen = aug.image_data_generator{rescale = 2, preprocessing_function = function(b) return b + 1 end}
    local y = gen(cnn.ones(1, 1, 2, 2))
    assert.are.same({4, 4, 4, 4}, y:view(4):totable())
    local s = aug.image_data_generator{samplewise_center = true, samplewise_std_normalization = true}
    local z = s(cnn.rand(2, 1, 8, 8))
    assert.is_true(math.abs(z[1]:mean():item()) < 1e-5)
  end)

  it("flows over tensors as a loader", function()
    local gen = aug.image_data_generator{horizontal_flip = true}
    local n = 0
    for x, y in gen:flow(cnn.rand(10, 1, 4, 4), cnn.ones(10), {batch_size = 4}) do
      n = n + 1
      assert.are.equal(x:size(1), y:size(1))
    end
    assert.are.equal(3, n)
  end)

  it("says what it cannot do", function()
    assert_contains(error_of(aug.image_data_generator, {featurewise_center = true}), "cnn.aug.normalize")
    assert_contains(error_of(aug.image_data_generator, {rotaton_range = 3}), "unknown option 'rotaton_range'")
    assert_contains(error_of(aug.image_data_generator, {data_format = "channels_last"}), "channels_first")
    assert_contains(error_of(aug.image_data_generator, {zoom_range = 1.5}), "zoom_range")
    assert_contains(error_of(aug.image_data_generator, {fill_mode = "mirror"}), "fill_mode")
  end)
end)

describe("cnn.aug errors", function()
  it("names the transform and the shapes", function()
    local rot = aug.random_rotation(10)
    assert_contains(error_of(rot, "x"), "random_rotation: expected a tensor")
    assert_contains(error_of(rot, cnn.rand(4, 4)), "4x4")
    assert_contains(error_of(rot, cnn.rand(1, 4, 4), 1.5), "seed")
    assert_contains(error_of(aug.color_jitter{saturation = 0.5}, cnn.rand(2, 1, 4, 4)), "3 channels")
    assert_contains(error_of(aug.color_jitter{saturation = 0.5}, cnn.rand(2, 1, 4, 4)), "2x1x4x4")
    assert_contains(error_of(aug.normalize({0, 0, 0}, {1, 1, 1}), cnn.rand(1, 2, 3, 3)), "normalize")
    assert_contains(error_of(aug.random_crop(8), cnn.rand(1, 1, 4, 4)), "random_crop")
    assert_contains(error_of(aug.random_rotation, -3), "non-negative")
    assert_contains(error_of(aug.random_rotation, 10, {fill_mode = "mirror"}), "fill_mode")
    assert_contains(error_of(aug.random_flip, {horizontal = true, bogus = 1}), "unknown option 'bogus'")
    assert_contains(error_of(aug.color_jitter, {hue = 0.7}), "hue")
    assert_contains(error_of(aug.gaussian_noise, -1), "std")
    assert_contains(error_of(aug.random_crop, 0), "size")
  end)
end)
