-- Datasets read from files other than IDX: CIFAR-10/100 binary batches and folders of images, one
-- sub-folder per class. cnn.data exposes them as cnn.data.cifar10, cnn.data.cifar100 and
-- cnn.data.image_folder; they return ordinary datasets (cnn.data.tensor_dataset) with ds.classes set.
--
--   cnn.data.cifar10{dir=..., split="train"|"test"}
--       dir holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin (the "binary version" of
--       CIFAR-10), or is the folder that contains cifar-10-batches-bin. Images 3 x 32 x 32 in [0, 1],
--       labels 1..10; class names from batches.meta.txt when present.
--   cnn.data.cifar100{dir=..., split=, label="fine"|"coarse"}
--       train.bin / test.bin of cifar-100-binary (2 label bytes: coarse, fine); labels 1..100 (fine)
--       or 1..20 (coarse); names from fine_label_names.txt / coarse_label_names.txt when present.
--   cnn.data.image_folder(dir, {size={64, 64}, channels=3, skip_bad=false, resize="auto"})
--       dir/<class>/<image>: class names sorted byte-wise become labels 1..K (ds.classes); every
--       image is decoded with stb_image (PNG, JPEG, BMP, TGA, GIF, PSD, PNM, HDR by extension; other
--       files are ignored) and resized to size ("auto": area averaging when shrinking, bilinear
--       otherwise). A file that cannot be decoded is an error naming it, or with skip_bad=true a
--       warning on stderr (once per file) and a count in ds.skipped. ds.files lists the images kept.
local cnn = require "cnn"
local common = require "cnn.common"
local args = require "cnn.aug.args"

common.register_source()
local fail = common.fail
local check_options = args.check_options

local extra = {}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Non-empty lines of a text file, or nil when it is missing.
local function read_lines(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local lines = {}
  for line in f:lines() do
    line = line:gsub("%s+$", "")
    if line ~= "" then lines[#lines + 1] = line end
  end
  f:close()
  return lines
end

-- ---- CIFAR ------------------------------------------------------------------------------------------

local cifar10_classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

local cifar100_coarse = {"aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
  "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
  "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
  "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees", "vehicles_1",
  "vehicles_2"}

local cifar100_fine = {"apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
  "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair",
  "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin",
  "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp",
  "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
  "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain",
  "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
  "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
  "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
  "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"}

-- The folder among dir and dir/sub that holds the first file; nil when neither does.
local function locate(dir, sub, first_file)
  for _, candidate in ipairs{dir, dir .. "/" .. sub} do
    if exists(candidate .. "/" .. first_file) then return candidate end
  end
  return nil
end

-- Reads batch files into one dataset; labels are checked against the class count.
local function read_batches(who, folder, files, label_bytes, label_byte, classes, name)
  local xs, ys = {}, {}
  for i, file in ipairs(files) do
    local path = folder .. "/" .. file
    xs[i], ys[i] = cnn._cifar_load(path, label_bytes, label_byte)
    local top = ys[i]:max():item()
    if top > #classes then
      fail("%s: %s holds label %d but there are only %d classes (labels 0..%d in the file); is it a batch of "
           .. "another CIFAR variant?", who, path, math.tointeger(top - 1) or top - 1, #classes, #classes - 1)
    end
  end
  local x = #xs == 1 and xs[1] or cnn.cat(xs, 1)
  local y = #ys == 1 and ys[1] or cnn.cat(ys, 1)
  return require("cnn.data").tensor_dataset(x, y, {classes = classes, name = name})
end

local function split_of(who, options)
  local split = options.split or "train"
  if split ~= "train" and split ~= "test" then fail("%s: split must be \"train\" or \"test\", got %s", who, tostring(split)) end
  return split
end

function extra.cifar10(options)
  local who = "cifar10"
  local o = check_options(who, options, {dir = true, split = true})
  local split = split_of(who, o)
  if type(o.dir) ~= "string" then fail("%s: pass dir= (the folder holding data_batch_1.bin .. test_batch.bin)", who) end
  local files = {"test_batch.bin"}
  if split == "train" then files = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"} end
  local folder = locate(o.dir, "cifar-10-batches-bin", files[1])
  if not folder then
    fail("%s: cannot find %s in %s or %s/cifar-10-batches-bin (the binary version of CIFAR-10)", who, files[1], o.dir, o.dir)
  end
  for _, file in ipairs(files) do
    if not exists(folder .. "/" .. file) then fail("%s: %s/%s is missing", who, folder, file) end
  end
  local classes = read_lines(folder .. "/batches.meta.txt") or cifar10_classes
  return read_batches(who, folder, files, 1, 1, classes, "cifar10 " .. split)
end

function extra.cifar100(options)
  local who = "cifar100"
  local o = check_options(who, options, {dir = true, split = true, label = true})
  local split = split_of(who, o)
  local label = o.label or "fine"
  if label ~= "fine" and label ~= "coarse" then fail("%s: label must be \"fine\" or \"coarse\", got %s", who, tostring(label)) end
  if type(o.dir) ~= "string" then fail("%s: pass dir= (the folder holding train.bin and test.bin)", who) end
  local file = split .. ".bin"
  local folder = locate(o.dir, "cifar-100-binary", file)
  if not folder then fail("%s: cannot find %s in %s or %s/cifar-100-binary (the binary version of CIFAR-100)", who, file, o.dir, o.dir) end
  local classes = read_lines(folder .. "/" .. label .. "_label_names.txt")
                  or (label == "fine" and cifar100_fine or cifar100_coarse)
  return read_batches(who, folder, {file}, 2, label == "fine" and 2 or 1, classes, "cifar100 " .. split)
end

-- ---- image folders ------------------------------------------------------------------------------------

local image_extensions = {png = true, jpg = true, jpeg = true, bmp = true, tga = true, gif = true, psd = true,
                          pnm = true, ppm = true, pgm = true, hdr = true, pic = true}

local function is_image_name(name)
  if name:sub(1, 1) == "." then return false end
  local ext = name:match("%.([^.]+)$")
  return ext ~= nil and image_extensions[ext:lower()] == true
end

local function resize_to(img, h, w, mode)
  local ih, iw = img:size(2), img:size(3)
  if ih == h and iw == w then return img end
  if mode == "auto" then mode = (ih >= h and iw >= w) and "area" or "bilinear" end
  return cnn._image_resize(img, h, w, mode)
end

function extra.image_folder(dir, options)
  local who = "image_folder"
  if type(dir) ~= "string" then fail("%s: expected the path of a folder, got a %s", who, type(dir)) end
  local o = check_options(who, options, {size = true, channels = true, skip_bad = true, resize = true})
  local hw = args.size_pair(who, o.size or {64, 64})
  local h, w = hw[1], hw[2]
  local channels = o.channels or 3
  if not (math.tointeger(channels) and channels >= 1 and channels <= 4) then
    fail("%s: channels must be 1, 2, 3 or 4, got %s", who, tostring(channels))
  end
  local mode = o.resize or "auto"
  if mode ~= "auto" and mode ~= "area" and mode ~= "bilinear" and mode ~= "nearest" then
    fail("%s: resize must be \"auto\", \"area\", \"bilinear\" or \"nearest\", got %s", who, tostring(mode))
  end
  local ok, entries = pcall(cnn._list_dir, dir)
  if not ok then fail("%s: %s", who, tostring(entries)) end

  local classes, files, labels = {}, {}, {}
  for _, entry in ipairs(entries) do
    if entry.kind == "directory" and entry.name:sub(1, 1) ~= "." then
      classes[#classes + 1] = entry.name
      local class_dir = dir .. "/" .. entry.name
      local listed, inside = pcall(cnn._list_dir, class_dir)
      if not listed then fail("%s: %s", who, tostring(inside)) end
      for _, file in ipairs(inside) do
        if file.kind == "file" and is_image_name(file.name) then
          files[#files + 1] = class_dir .. "/" .. file.name
          labels[#labels + 1] = #classes
        end
      end
    end
  end
  if #classes == 0 then fail("%s: %s has no class sub-folders (expected %s/<class>/<image>)", who, dir, dir) end
  if #files == 0 then fail("%s: no images under %s (looked for .png, .jpg, .bmp, ... in its %d sub-folders)", who, dir, #classes) end

  local x = cnn.empty{#files, channels, h, w}
  local kept_files, kept_labels, skipped = {}, {}, 0
  for i, path in ipairs(files) do
    local loaded, img = pcall(cnn._image_load, path, channels)
    if loaded then
      local n = #kept_files + 1
      x[n] = resize_to(img, h, w, mode)
      kept_files[n], kept_labels[n] = path, labels[i]
    elseif o.skip_bad then
      skipped = skipped + 1
      io.stderr:write(string.format("%s: warning: skipping an unreadable image (%s)\n", who, (tostring(img):gsub("^image%.load: ", ""))))
    else
      fail("%s: %s", who, (tostring(img):gsub("^image%.load: ", "")))
    end
  end
  if #kept_files == 0 then fail("%s: none of the %d images under %s could be decoded", who, #files, dir) end
  if #kept_files < #files then x = x:narrow(1, 1, #kept_files):clone() end
  local ds = require("cnn.data").tensor_dataset(x, cnn.tensor(kept_labels),
                                                 {classes = classes, name = "image_folder " .. dir})
  ds.files, ds.skipped = kept_files, skipped
  return ds
end

return extra
