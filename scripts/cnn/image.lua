-- cnn.image - images in and out, resizing, grids of a batch, and hand-made kernels.
--
--   local img = cnn.image.load("cat.png")               -- C x H x W in [0, 1]
--   local rgb = cnn.image.load("cat.png", {channels=3})  -- forced to RGB (gray is replicated)
--   cnn.image.save("out.png", img)                      -- PNG/JPEG/BMP/TGA by extension; atomic
--   cnn.image.resize(img, 64, 64, {mode="area"})        -- "bilinear" (default), "nearest", "area"
--   cnn.image.save("batch.png", cnn.image.grid(x, {nrow=8, padding=2, normalize=true}))
--   local blurred = cnn.image.convolve(img, cnn.image.kernel.gaussian(5, 1.0))
--   local edges = cnn.image.convolve(gray, cnn.image.kernel.sobel("x"))
--
-- Files hold 8 bits per sample: load divides by 255; save clamps to [0, 1] and rounds. Decoding is
-- stb_image's: PNG, JPEG (baseline and progressive), BMP, TGA, GIF (first frame), PSD, PNM, HDR.
-- Channels as stored are kept unless {channels=n} asks otherwise: 1 gray, 2 gray + alpha, 3 RGB,
-- 4 RGBA. Errors name the file and say why ("cannot open ...: No such file or directory",
-- "cannot decode ...: bad png sig").
local cnn = require "cnn"
local common = require "cnn.common"
local args = require "cnn.aug.args"

common.register_source()
local fail, is_tensor, shape_str = common.fail, common.is_tensor, common.shape_str
local check_options = args.check_options

local image = {}

-- Runs a core function; its error is raised again at the caller's line, without this file's position.
local function checked(fn, ...)
  local ok, result = pcall(fn, ...)
  if not ok then fail("%s", (tostring(result):gsub("^[^\n]-:%d+: ", ""))) end
  return result
end

local function check_channels(who, channels)
  if channels == nil then return 0 end
  local c = math.tointeger(channels)
  if not c or c < 1 or c > 4 then fail("%s: channels must be 1, 2, 3 or 4, got %s", who, tostring(channels)) end
  return c
end

-- cnn.image.load(path, {channels=n}) -> C x H x W in [0, 1]
function image.load(path, options)
  if type(path) ~= "string" then fail("image.load: expected a file name, got a %s", type(path)) end
  local o = check_options("image.load", options, {channels = true})
  return checked(cnn._image_load, path, check_channels("image.load", o.channels))
end

-- cnn.image.decode(bytes, {channels=n, name=...}): the same from a file's contents held in a string.
function image.decode(bytes, options)
  if type(bytes) ~= "string" then fail("image.decode: expected a string of bytes, got a %s", type(bytes)) end
  local o = check_options("image.decode", options, {channels = true, name = true})
  return checked(cnn._image_decode, bytes, check_channels("image.decode", o.channels), o.name or "(memory)")
end

-- cnn.image.save(path, t, {quality=95}): t is C x H x W (C = 1, 2, 3, 4) or H x W.
function image.save(path, t, options)
  if type(path) ~= "string" then fail("image.save: expected a file name, got a %s", type(path)) end
  if not is_tensor(t) then fail("image.save: expected an image tensor, got a %s", type(t)) end
  local o = check_options("image.save", options, {quality = true})
  local quality = o.quality or 95
  if not math.tointeger(quality) then fail("image.save: quality must be an integer 1..100") end
  checked(cnn._image_save, path, t:detach(), quality)
end

-- cnn.image.resize(t, h, w, {mode="bilinear"|"nearest"|"area"}): the last two dims of H x W,
-- C x H x W or N x C x H x W. "area" averages the covered pixels: the choice for shrinking photos.
function image.resize(t, h, w, options)
  if not is_tensor(t) then fail("image.resize: expected an image tensor, got a %s", type(t)) end
  if not math.tointeger(h) or not math.tointeger(w) then
    fail("image.resize: the size must be two integers h, w (input %s)", shape_str(t))
  end
  local o = check_options("image.resize", options, {mode = true})
  local mode = o.mode or "bilinear"
  if mode ~= "bilinear" and mode ~= "nearest" and mode ~= "area" then
    fail("image.resize: mode must be \"bilinear\", \"nearest\" or \"area\", got %s", tostring(mode))
  end
  return checked(cnn._image_resize, t, h, w, mode)
end

-- cnn.image.grid(batch, {nrow=8, padding=2, normalize=false, pad_value=0, scale_each=false,
-- range={low, high}}): torchvision's make_grid, a C x H' x W' image of the batch's N images, nrow per
-- row. normalize maps the batch's [min, max] (each image's with scale_each, or range) to [0, 1].
function image.grid(batch, options)
  if not is_tensor(batch) then fail("image.grid: expected a batch tensor N x C x H x W, got a %s", type(batch)) end
  check_options("image.grid", options, {nrow = true, padding = true, normalize = true, pad_value = true,
                                        scale_each = true, range = true})
  return checked(cnn._image_grid, batch:detach(), options)
end

-- cnn.image.grayscale(t): C x H x W RGB(A) -> 1 x H x W with the ITU-R 601 luma weights; gray stays.
function image.grayscale(t)
  if not is_tensor(t) or (t:dim() ~= 3 and t:dim() ~= 4) then
    fail("image.grayscale: expected C x H x W or N x C x H x W, got %s", is_tensor(t) and shape_str(t) or type(t))
  end
  local cdim = t:dim() - 2
  local c = t:size(cdim)
  if c == 1 then return t end
  if c < 3 then fail("image.grayscale: expected 1, 3 or 4 channels, got %s", shape_str(t)) end
  local r, g, b = t:narrow(cdim, 1, 1), t:narrow(cdim, 2, 1), t:narrow(cdim, 3, 1)
  return r * 0.2989 + g * 0.587 + b * 0.114
end

-- ---- kernels ----------------------------------------------------------------------------------------

image.kernel = {}

-- cnn.image.kernel.gaussian(size, sigma): a size x size kernel summing to 1. Without sigma, OpenCV's
-- choice for the size: 0.3 * ((size - 1) / 2 - 1) + 0.8.
function image.kernel.gaussian(size, sigma)
  local n = math.tointeger(size)
  if not n or n < 1 then fail("kernel.gaussian: size must be a positive integer, got %s", tostring(size)) end
  sigma = sigma or (0.3 * ((n - 1) * 0.5 - 1) + 0.8)
  if type(sigma) ~= "number" or not (sigma > 0) then fail("kernel.gaussian: sigma must be positive, got %s", tostring(sigma)) end
  local center, rows, total = (n - 1) / 2, {}, 0
  for i = 1, n do
    rows[i] = {}
    for j = 1, n do
      local d2 = (i - 1 - center) ^ 2 + (j - 1 - center) ^ 2
      rows[i][j] = math.exp(-d2 / (2 * sigma * sigma))
      total = total + rows[i][j]
    end
  end
  for i = 1, n do
    for j = 1, n do rows[i][j] = rows[i][j] / total end
  end
  return cnn.tensor(rows)
end

-- cnn.image.kernel.sobel("x"|"y"): 3 x 3 derivative kernels, oriented for convolve (a cross-
-- correlation): "x" is positive where brightness grows to the right, "y" where it grows downwards.
function image.kernel.sobel(axis)
  if axis == "x" then return cnn.tensor{{-1, 0, 1}, {-2, 0, 2}, {-1, 0, 1}} end
  if axis == "y" then return cnn.tensor{{-1, -2, -1}, {0, 0, 0}, {1, 2, 1}} end
  fail("kernel.sobel: axis must be \"x\" or \"y\", got %s", tostring(axis))
end

-- cnn.image.kernel.box(size): the mean over a size x size window.
function image.kernel.box(size)
  local n = math.tointeger(size)
  if not n or n < 1 then fail("kernel.box: size must be a positive integer, got %s", tostring(size)) end
  return cnn.full({n, n}, 1 / (n * n))
end

-- cnn.image.kernel.laplacian(): the 4-neighbour Laplacian.
function image.kernel.laplacian()
  return cnn.tensor{{0, 1, 0}, {1, -4, 1}, {0, 1, 0}}
end

local pad_modes = {reflect = "reflect", zeros = "constant", replicate = "replicate", circular = "circular"}

-- cnn.image.convolve(img, kernel, {padding="reflect"}): each channel of img (H x W, C x H x W or
-- N x C x H x W) filtered by the kh x kw kernel, output the same size as the input. Like cnn.conv2d
-- (which does the work, as a grouped convolution, so gradients flow) it is a cross-correlation: the
-- kernel is not flipped. The border is padded by "reflect" (dcb|abcd|cba; needs sides larger than
-- half the kernel), "replicate", "circular" or "zeros". Even-sized kernels pad one more pixel after
-- than before.
function image.convolve(img, kernel, options)
  local who = "image.convolve"
  if not is_tensor(img) then fail("%s: expected an image tensor, got a %s", who, type(img)) end
  if not is_tensor(kernel) or kernel:dim() ~= 2 then
    fail("%s: the kernel must be a 2-d tensor (kh x kw), got %s", who, is_tensor(kernel) and shape_str(kernel) or type(kernel))
  end
  local o = check_options(who, options, {padding = true})
  local mode = pad_modes[o.padding or "reflect"]
  if not mode then fail("%s: padding must be \"reflect\", \"replicate\", \"circular\" or \"zeros\", got %s", who, tostring(o.padding)) end
  local dims = img:dim()
  if dims < 2 or dims > 4 then fail("%s: expected H x W, C x H x W or N x C x H x W, got %s", who, shape_str(img)) end
  local x = img
  if dims == 2 then x = img:view(1, 1, img:size(1), img:size(2))
  elseif dims == 3 then x = img:view(1, img:size(1), img:size(2), img:size(3)) end
  local channels, kh, kw = x:size(2), kernel:size(1), kernel:size(2)
  local top, left = (kh - 1) // 2, (kw - 1) // 2
  local padded = x
  if kh > 1 or kw > 1 then
    local ok, result = pcall(cnn.pad, x, {left, kw - 1 - left, top, kh - 1 - top}, mode)
    if not ok then
      fail("%s: cannot pad a %s image for a %dx%d kernel with \"%s\" padding: %s", who, shape_str(img), kh, kw,
           o.padding or "reflect", tostring(result))
    end
    padded = result
  end
  local weight = kernel:reshape(1, 1, kh, kw):expand(channels, 1, kh, kw):contiguous()
  local y = cnn.conv2d(padded, weight, nil, {groups = channels})
  if dims == 2 then return y:view(y:size(3), y:size(4)) end
  if dims == 3 then return y:view(channels, y:size(3), y:size(4)) end
  return y
end

return image
