-- kernels.lua - classic hand-made filters applied to a real image, to see what a convolution does:
-- a Gaussian blur and the Sobel derivatives in x and y with their magnitude (an edge map).
--
--   cnnlua scripts/kernels.lua                         (a Fashion-MNIST test image, upscaled)
--   cnnlua scripts/kernels.lua photo.jpg --out runs/photo_kernels --size 9 --sigma 2.5
--
-- Writes into --out: input.png, gaussian.png, sobel_x.png, sobel_y.png, sobel_magnitude.png and
-- overview.png (all five side by side). Signed Sobel responses are shown around mid-gray (0.5 = no
-- change, brighter = intensity grows to the right/downwards); the magnitude is scaled to its maximum.
local cnn = rawget(_G, "cnn") or require "cnn"
local argparse = require "argparse"

local parser = argparse("kernels.lua", "Apply Gaussian and Sobel kernels to an image and save the results.")
parser:argument("image", "An image file (PNG, JPEG, BMP, ...); default: a Fashion-MNIST test image."):args("?")
parser:option("--out", "Output directory.", "runs/kernels")
parser:option("--size", "Side of the Gaussian kernel.", "7"):convert(math.tointeger)
parser:option("--sigma", "Standard deviation of the Gaussian, in pixels.", "1.5"):convert(tonumber)
parser:option("--index", "Which Fashion-MNIST test image (1-based) when no file is given.", "1"):convert(math.tointeger)
parser:option("--scale", "Upscaling factor of the Fashion-MNIST image.", "4"):convert(math.tointeger)
parser:option("--data-dir", "Folder holding the Fashion-MNIST IDX files.", cnn.data.FASHION_MNIST_DIR)
local args = parser:parse()

-- The input as C x H x W in [0, 1].
local function input_image()
  if args.image then
    local ok, img = pcall(cnn.image.load, args.image)
    if not ok then parser:error(tostring(img)) end
    return img
  end
  local images = cnn.idx_load(args.data_dir .. "/t10k-images-idx3-ubyte.gz", true)
  if args.index < 1 or args.index > images:size(1) then
    parser:error(string.format("--index must be in 1..%d", images:size(1)))
  end
  local img = images[args.index]
  if img:dim() == 2 then img = img:view(1, img:size(1), img:size(2)) end
  return cnn.image.resize(img, img:size(2) * args.scale, img:size(3) * args.scale, {mode = "bilinear"})
end

local img = input_image()
local gray = cnn.image.grayscale(img:narrow(1, 1, math.min(img:size(1), 3)))
os.execute("mkdir -p '" .. args.out .. "'")

local blurred = cnn.image.convolve(img:narrow(1, 1, math.min(img:size(1), 3)), cnn.image.kernel.gaussian(args.size, args.sigma))
local gx = cnn.image.convolve(gray, cnn.image.kernel.sobel("x"))
local gy = cnn.image.convolve(gray, cnn.image.kernel.sobel("y"))
local magnitude = (gx * gx + gy * gy):sqrt()

-- Signed responses around mid-gray, scaled by the largest absolute response of the pair.
local span = math.max(gx:abs():max():item(), gy:abs():max():item(), 1e-8)
local function signed(t) return t / (2 * span) + 0.5 end
local shown_magnitude = magnitude / math.max(magnitude:max():item(), 1e-8)

local outputs = {
  {"input.png", gray, "the input (gray)"},
  {"gaussian.png", blurred, string.format("Gaussian blur, %dx%d, sigma %.3g", args.size, args.size, args.sigma)},
  {"sobel_x.png", signed(gx), "Sobel x (vertical edges)"},
  {"sobel_y.png", signed(gy), "Sobel y (horizontal edges)"},
  {"sobel_magnitude.png", shown_magnitude, "Sobel magnitude sqrt(gx^2 + gy^2)"},
}
if img:size(1) >= 3 then outputs[1] = {"input.png", img, "the input"} end
local tiles = {}
for _, o in ipairs(outputs) do
  local path = args.out .. "/" .. o[1]
  cnn.image.save(path, o[2])
  print(string.format("%-28s %s", path, o[3]))
  local t = o[2]
  if t:size(1) == 1 then t = t:expand(3, t:size(2), t:size(3)) end
  tiles[#tiles + 1] = t:narrow(1, 1, 3):contiguous():view(1, 3, t:size(2), t:size(3))
end
local overview = args.out .. "/overview.png"
cnn.image.save(overview, cnn.image.grid(cnn.cat(tiles, 1), {nrow = #tiles, padding = 4, pad_value = 1}))
print(string.format("%-28s %s", overview, "all of the above, left to right"))
