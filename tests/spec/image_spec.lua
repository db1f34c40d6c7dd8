-- cnn.image (files, resize, grid, kernels, convolve) and the extra datasets (CIFAR batches, image
-- folders). Every fixture is written by the test into a temporary directory.
local cnn = require "cnn"
local files = require "files"
local read_file, write_file, temp_dir, remove_dir = files.read_file, files.write_file, files.temp_dir, files.remove_dir
local image = cnn.image
local gradcheck = require "gradcheck"
local extra = require "cnn.datasets_extra"

local A = require "assertions"
local error_of, assert_contains = A.error_of, A.assert_contains

-- C x H x W with values k / 255, which 8-bit files keep exactly.
local function byte_image(c, h, w)
  local values = {}
  for i = 0, c * h * w - 1 do values[#values + 1] = ((i * 37) % 256) / 255 end
  return cnn.tensor(values):view(c, h, w)
end

local function max_abs_diff(a, b)
  return (a - b):abs():max():item()
end

describe("cnn.image files", function()
  local dir
  before_each(function() dir = temp_dir() end)
  after_each(function() remove_dir(dir) end)

  it("round-trips PNG and BMP exactly and JPEG closely", function()
    local img = byte_image(3, 6, 5)
    image.save(dir .. "/a.png", img)
    image.save(dir .. "/a.bmp", img)
    assert.are.equal(0, max_abs_diff(image.load(dir .. "/a.png"), img))
    assert.are.equal(0, max_abs_diff(image.load(dir .. "/a.bmp"), img))
    local smooth = cnn.arange(0, 3 * 16 * 16):view(3, 16, 16) / (3 * 256)
    image.save(dir .. "/a.jpg", smooth, {quality = 95})
    local back = image.load(dir .. "/a.jpg")
    assert.are.same({3, 16, 16}, back:shape())
    assert.is_true(max_abs_diff(back, smooth) < 0.06)
    -- nothing but the three images is left in the directory
    local listed = cnn._list_dir(dir)
    assert.are.same({"a.bmp", "a.jpg", "a.png"}, {listed[1].name, listed[2].name, listed[3].name})
    assert.are.equal(3, #listed)
  end)

  it("keeps or converts channel layouts", function()
    local gray = byte_image(1, 3, 4)
    image.save(dir .. "/g.png", gray)
    assert.are.same({1, 3, 4}, image.load(dir .. "/g.png"):shape())
    local rgb = image.load(dir .. "/g.png", {channels = 3})
    assert.are.same({3, 3, 4}, rgb:shape())
    assert.are.equal(0, max_abs_diff(rgb[2], gray[1]))
    image.save(dir .. "/ga.png", byte_image(2, 3, 4))
    assert.are.same({2, 3, 4}, image.load(dir .. "/ga.png"):shape())
    -- H x W tensors are gray images; values are clamped
    image.save(dir .. "/p.png", cnn.tensor{{-1, 2}})
    assert.are.same({{{0, 1}}}, image.load(dir .. "/p.png"):totable())
    assert_contains(error_of(image.load, dir .. "/g.png", {channels = 7}), "channels")
  end)

  it("decodes from memory, GIF included", function()
    image.save(dir .. "/m.png", byte_image(1, 2, 2))
    local t = image.decode(read_file(dir .. "/m.png"))
    assert.are.same({1, 2, 2}, t:shape())
    -- a 1x1 GIF whose one pixel is palette entry 0, red; stb gives GIFs as RGBA
    local gif = "GIF89a\1\0\1\0\128\0\0\255\0\0\0\0\0,\0\0\0\0\1\0\1\0\0\2\2D\1\0;"
    write_file(dir .. "/red.gif", gif)
    assert.are.same({{{1}}, {{0}}, {{0}}, {{1}}}, image.load(dir .. "/red.gif"):totable())
    assert.are.same({3, 1, 1}, image.decode(gif, {channels = 3}):shape())
  end)

  it("reports truncated, corrupt and missing files by name", function()
    image.save(dir .. "/t.png", byte_image(3, 8, 8))
    local bytes = read_file(dir .. "/t.png")
    write_file(dir .. "/half.png", bytes:sub(1, #bytes // 2))
    local err = error_of(image.load, dir .. "/half.png")
    assert_contains(err, "half.png")
    assert_contains(err, "cannot decode")
    write_file(dir .. "/junk.jpg", "this is not an image")
    assert_contains(error_of(image.load, dir .. "/junk.jpg"), "junk.jpg")
    assert_contains(error_of(image.load, dir .. "/none.png"), "No such file")
    -- the error points at the caller, not at the library
    assert_contains(error_of(image.load, 42), "expected a file name")
  end)

  it("refuses what it cannot save", function()
    assert_contains(error_of(image.save, dir .. "/x.webp", cnn.rand(3, 2, 2)), "x.webp")
    assert_contains(error_of(image.save, dir .. "/x.png", cnn.rand(5, 2, 2)), "5x2x2")
    assert_contains(error_of(image.save, dir .. "/x.png", cnn.rand(2, 3, 2, 2)), "grid")
    assert.is_false(pcall(image.save, dir .. "/missing/x.png", cnn.rand(3, 2, 2)))
    assert.are.equal(0, #cnn._list_dir(dir))
  end)
end)

describe("cnn.image.resize and grid", function()
  it("resizes by area, bilinear and nearest", function()
    local x = cnn.arange(0, 16):view(4, 4)
    assert.are.same({{2.5, 4.5}, {10.5, 12.5}}, image.resize(x, 2, 2, {mode = "area"}):totable())
    assert.are.same({1, 8, 8}, image.resize(x:view(1, 4, 4), 8, 8):shape())
    assert.are.same({{0, 2}, {8, 10}}, image.resize(x, 2, 2, {mode = "nearest"}):totable())
    assert_contains(error_of(image.resize, x, 2, 2, {mode = "cubic"}), "mode")
    assert_contains(error_of(image.resize, x, 0, 2), "4x4")
  end)

  it("tiles a batch like torchvision's make_grid", function()
    local batch = cnn.ones(5, 3, 4, 4)
    local g = image.grid(batch, {nrow = 2, padding = 1, pad_value = 0.5})
    assert.are.same({3, 3 * 5 + 1, 2 * 5 + 1}, g:shape())
    assert.are.equal(0.5, g[1][1][1])
    assert.are.equal(1, g[1][2][2])
    local n = image.grid(cnn.arange(0, 8):view(2, 1, 2, 2), {normalize = true, padding = 0})
    assert.are.equal(0, n:min():item())
    assert.are.equal(1, n:max():item())
    assert_contains(error_of(image.grid, batch, {rows = 2}), "unknown option 'rows'")
  end)
end)

describe("cnn.image kernels and convolve", function()
  it("builds normalised Gaussian and Sobel kernels", function()
    local g = image.kernel.gaussian(5, 1.0)
    assert.are.same({5, 5}, g:shape())
    assert.is_true(math.abs(g:sum():item() - 1) < 1e-6)
    assert.are.equal(g:max():item(), g[3][3])
    assert.are.equal(g[1][2], g[2][1])
    assert.is_true(math.abs(g[3][2] / g[3][3] - math.exp(-0.5)) < 1e-5)
    assert.are.same({{-1, 0, 1}, {-2, 0, 2}, {-1, 0, 1}}, image.kernel.sobel("x"):totable())
    assert.are.same({{-1, -2, -1}, {0, 0, 0}, {1, 2, 1}}, image.kernel.sobel("y"):totable())
    assert_contains(error_of(image.kernel.sobel, "z"), "axis")
    assert_contains(error_of(image.kernel.gaussian, 3, -1), "sigma")
  end)

  it("keeps the size, blurs constants to themselves and finds edges", function()
    local flat = cnn.full({2, 7, 9}, 0.25)
    local blurred = image.convolve(flat, image.kernel.gaussian(5, 1.0))
    assert.are.same({2, 7, 9}, blurred:shape())
    assert.is_true(max_abs_diff(blurred, flat) < 1e-6)
    -- a horizontal ramp f(x) = x: Sobel x is 8 inside, 0 for Sobel y
    local ramp = cnn.arange(0, 6):view(1, 6):expand(5, 6):contiguous()
    local sx = image.convolve(ramp, image.kernel.sobel("x"))
    assert.are.same({5, 6}, sx:shape())
    assert.are.equal(8, sx[3][3])
    assert.are.equal(0, sx[3][1]) -- reflect padding mirrors the ramp at the border
    assert.are.equal(0, image.convolve(ramp, image.kernel.sobel("y")):abs():max():item())
    local zeros = image.convolve(ramp, image.kernel.sobel("x"), {padding = "zeros"})
    assert.are.equal(4, zeros[3][1]) -- 2 * 1 + (1 + 1) * 1 from the right neighbours only
    assert.are.same({2, 3, 4, 4}, image.convolve(cnn.rand(2, 3, 4, 4), image.kernel.box(2)):shape())
    assert_contains(error_of(image.convolve, cnn.rand(1, 2, 2), image.kernel.gaussian(7)), "reflect")
  end)

  it("passes a finite-difference gradient check", function()
    cnn.manual_seed(4)
    local x = cnn.randn(2, 5, 6):requires_grad()
    local k = cnn.randn(3, 3):requires_grad()
    gradcheck(function(a, b) return image.convolve(a, b) end, {x, k}, {eps = 1e-2, atol = 2e-2, rtol = 2e-2})
  end)

  it("turns RGB into gray with the luma weights", function()
    local rgb = cnn.tensor{{{1}}, {{0}}, {{0}}}
    assert.is_true(math.abs(image.grayscale(rgb):item() - 0.2989) < 1e-6)
  end)
end)

describe("CIFAR datasets", function()
  local dir
  before_each(function() dir = temp_dir() end)
  after_each(function() remove_dir(dir) end)

  -- n records with labels from the list (one or two bytes each) and images filled with the record index
  local function batch_bytes(labels, label_bytes)
    local parts = {}
    for i, label in ipairs(labels) do
      if label_bytes == 2 then
        parts[#parts + 1] = string.char(label[1], label[2])
      else
        parts[#parts + 1] = string.char(label)
      end
      parts[#parts + 1] = string.rep(string.char(i * 10), 3072)
    end
    return table.concat(parts)
  end

  it("reads CIFAR-10 batches with 1-based labels and class names", function()
    local sub = dir .. "/cifar-10-batches-bin"
    os.execute("mkdir -p '" .. sub .. "'")
    for b = 1, 5 do write_file(sub .. "/data_batch_" .. b .. ".bin", batch_bytes({0, 9}, 1)) end
    write_file(sub .. "/test_batch.bin", batch_bytes({3, 4, 5}, 1))
    local train = extra.cifar10{dir = dir}
    assert.are.equal(10, #train)
    assert.are.same({3, 32, 32}, train[1][1]:shape())
    assert.are.same({1, 10}, {train[1][2], train[2][2]})
    assert.are.equal("airplane", train.classes[1])
    local test = extra.cifar10{dir = sub, split = "test"}
    assert.are.equal(3, #test)
    assert.are.equal(4, test[1][2])
    assert.is_true(math.abs(test[2][1][1][1][1] - 20 / 255) < 1e-7)
    write_file(sub .. "/batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n")
    assert.are.equal("j", extra.cifar10{dir = sub, split = "test"}.classes[10])
  end)

  it("reads CIFAR-100 fine or coarse labels", function()
    write_file(dir .. "/train.bin", batch_bytes({{2, 99}, {19, 0}}, 2))
    local fine = extra.cifar100{dir = dir}
    assert.are.same({100, 1}, {fine[1][2], fine[2][2]})
    assert.are.equal(100, #fine.classes)
    local coarse = extra.cifar100{dir = dir, label = "coarse"}
    assert.are.same({3, 20}, {coarse[1][2], coarse[2][2]})
    assert.are.equal(20, #coarse.classes)
  end)

  it("reports truncated files, bad labels and missing folders", function()
    write_file(dir .. "/test_batch.bin", batch_bytes({1, 2}, 1):sub(1, 5000))
    local err = error_of(extra.cifar10, {dir = dir, split = "test"})
    assert_contains(err, "test_batch.bin")
    assert_contains(err, "truncated")
    write_file(dir .. "/test_batch.bin", batch_bytes({12}, 1))
    assert_contains(error_of(extra.cifar10, {dir = dir, split = "test"}), "label 12")
    assert_contains(error_of(extra.cifar10, {dir = dir .. "/nowhere"}), "data_batch_1.bin")
    assert_contains(error_of(extra.cifar10, {}), "dir=")
    assert_contains(error_of(extra.cifar100, {dir = dir, label = "medium"}), "label")
  end)
end)

describe("image_folder datasets", function()
  local dir
  before_each(function()
    dir = temp_dir()
    os.execute("mkdir -p '" .. dir .. "/dog' '" .. dir .. "/cat' '" .. dir .. "/.hidden'")
    image.save(dir .. "/cat/1.png", cnn.full({3, 8, 8}, 0.2))
    image.save(dir .. "/cat/2.bmp", cnn.full({1, 4, 4}, 0.6))
    image.save(dir .. "/dog/1.jpg", cnn.full({3, 16, 12}, 0.8))
    write_file(dir .. "/dog/notes.txt", "not an image, ignored")
  end)
  after_each(function() remove_dir(dir) end)

  it("labels sub-folders in sorted order and resizes every image", function()
    local ds = extra.image_folder(dir, {size = {6, 6}})
    assert.are.same({"cat", "dog"}, ds.classes)
    assert.are.equal(3, #ds)
    assert.are.same({3, 6, 6}, ds[1][1]:shape())
    assert.are.same({1, 1, 2}, {ds[1][2], ds[2][2], ds[3][2]})
    assert.is_true(math.abs(ds[2][1]:mean():item() - 0.6) < 1 / 255) -- gray became RGB
    assert.are.equal(0, ds.skipped)
    local gray = extra.image_folder(dir, {size = 4, channels = 1})
    assert.are.same({1, 4, 4}, gray[3][1]:shape())
  end)

  it("fails on a corrupt image, naming it, or skips it with a warning", function()
    write_file(dir .. "/dog/broken.png", "\137PNG\r\n\26\n garbage")
    local err = error_of(extra.image_folder, dir, {size = {6, 6}})
    assert_contains(err, "broken.png")
    local warnings = {}
    local stderr = io.stderr
    io.stderr = {write = function(_, text) warnings[#warnings + 1] = text end}
    local ok, ds = pcall(extra.image_folder, dir, {size = {6, 6}, skip_bad = true})
    io.stderr = stderr
    assert.is_true(ok, tostring(ds))
    assert.are.equal(1, ds.skipped)
    assert.are.equal(3, #ds)
    assert.are.equal(1, #warnings)
    assert_contains(warnings[1], "broken.png")
  end)

  it("reports folders without classes or images", function()
    local empty = temp_dir()
    assert_contains(error_of(extra.image_folder, empty), "no class sub-folders")
    os.execute("mkdir -p '" .. empty .. "/a'")
    assert_contains(error_of(extra.image_folder, empty), "no images")
    remove_dir(empty)
    assert_contains(error_of(extra.image_folder, dir .. "/missing"), "cannot open")
    assert_contains(error_of(extra.image_folder, dir, {size = {0, 3}}), "size")
  end)
end)
