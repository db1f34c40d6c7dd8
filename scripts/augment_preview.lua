-- augment_preview.lua - one image under each augmentation, as a PNG grid: row k shows the k-th
-- augmentation listed on the console, applied independently to --samples copies of the image.
--
--   cnnlua scripts/augment_preview.lua                  (a Fashion-MNIST test image)
--   cnnlua scripts/augment_preview.lua photo.jpg --size 96 --samples 6 --out runs/photo_aug.png
--
-- The first row is the image itself; the last rows show one rotation under each fill mode, which is
-- where the modes differ (the corners the rotation uncovers).
local cnn = rawget(_G, "cnn") or require "cnn"
local argparse = require "argparse"
local aug = cnn.aug

local parser = argparse("augment_preview.lua", "Save a PNG grid of one image under each augmentation.")
parser:argument("image", "An image file (PNG, JPEG, BMP, ...); default: a Fashion-MNIST test image."):args("?")
parser:option("--out", "The PNG to write.", "runs/augment_preview.png")
parser:option("--samples", "Augmented copies per row.", "8"):convert(math.tointeger)
parser:option("--size", "Side of the (square) image shown (default: 56 for Fashion-MNIST, 96 otherwise).")
  :convert(math.tointeger)
parser:option("--index", "Which Fashion-MNIST test image (1-based) when no file is given.", "1"):convert(math.tointeger)
parser:option("--seed", "Seed of the augmentations.", "1"):convert(math.tointeger)
parser:option("--data-dir", "Folder holding the Fashion-MNIST IDX files.", cnn.data.FASHION_MNIST_DIR)
local args = parser:parse()
if not args.samples or args.samples < 1 then parser:error("--samples must be a positive integer") end

local function input_image()
  if args.image then
    local ok, img = pcall(cnn.image.load, args.image, {channels = 3})
    if not ok then parser:error(tostring(img)) end
    return img, args.size or 96
  end
  local images = cnn.idx_load(args.data_dir .. "/t10k-images-idx3-ubyte.gz", true)
  if not args.index or args.index < 1 or args.index > images:size(1) then
    parser:error(string.format("--index must be in 1..%d", images:size(1)))
  end
  local img = images[args.index]
  if img:dim() == 2 then img = img:view(1, img:size(1), img:size(2)) end
  return img, args.size or 56
end

local img, size = input_image()
img = cnn.image.resize(img, size, size, {mode = img:size(2) >= size and "area" or "bilinear"})
local rgb = img:size(1) == 3

local rows = {
  {"original", function(x) return x end},
  {"random_flip{horizontal=true, vertical=true}", aug.random_flip{horizontal = true, vertical = true}},
  {"random_rotation(30)", aug.random_rotation(30)},
  {"random_shift(0.2)", aug.random_shift(0.2)},
  {"random_zoom(0.3)", aug.random_zoom(0.3)},
  {"random_shear(30)", aug.random_shear(30)},
  {"random_crop(size, {padding=size/8})", aug.random_crop(size, {padding = size // 8})},
  {"random_resized_crop(size, {scale={0.3, 1}})", aug.random_resized_crop(size, {scale = {0.3, 1}})},
  {rgb and "color_jitter{brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1}"
       or "color_jitter{brightness=0.4, contrast=0.4}",
   rgb and aug.color_jitter{brightness = 0.4, contrast = 0.4, saturation = 0.4, hue = 0.1}
       or aug.color_jitter{brightness = 0.4, contrast = 0.4}},
  {"gaussian_noise(0.1, {clip=true})", aug.gaussian_noise(0.1, {clip = true})},
  {"random_erasing{p=1}", aug.random_erasing{p = 1}},
  {"image_data_generator{rotation_range=20, width/height_shift_range=0.2, shear_range=20, zoom_range=0.2, "
   .. "horizontal_flip=true, fill_mode=nearest}",
   aug.image_data_generator{rotation_range = 20, width_shift_range = 0.2, height_shift_range = 0.2,
                            shear_range = 20, zoom_range = 0.2, horizontal_flip = true, fill_mode = "nearest"}},
}
for _, mode in ipairs{"nearest", "constant", "reflect", "wrap"} do
  rows[#rows + 1] = {string.format("random_rotation({30, 60}, {fill_mode=%q}) with zoom 1.3", mode),
                     aug.random_affine{rotation = {30, 60}, zoom = {1.3, 1.3}, fill_mode = mode, cval = 0.5}}
end

local copies = img:view(1, img:size(1), size, size):expand(args.samples, img:size(1), size, size):contiguous()
local batches = {}
for k, row in ipairs(rows) do
  batches[k] = row[2](copies, args.seed * 1000 + k)
  print(string.format("row %2d: %s", k, row[1]))
end
local dir = args.out:match("^(.*)/[^/]*$")
if dir then os.execute("mkdir -p '" .. dir .. "'") end
cnn.image.save(args.out, cnn.image.grid(cnn.cat(batches, 1), {nrow = args.samples, padding = 2, pad_value = 1}))
print("wrote " .. args.out)
