-- Files from Lua: safetensors round trips, their error messages, an independent reader written in
-- Python (json + numpy), and IDX datasets.
local cnn = require "cnn"
local files = require "files"
local temp_path, read_file, write_file = files.temp_path, files.read_file, files.write_file

local function same_tensor(a, b)
  assert.are.same(a:shape(), b:shape())
  if a:dim() == 0 then
    assert.are.equal(a:item(), b:item())
  else
    assert.are.same(a:totable(), b:totable())
  end
end

-- Runs fn(err) on the message of the error fn raised; fails when it raised none.
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

-- Asserts that message contains text literally.
local function assert_mentions(text, message)
  assert(message:find(text, 1, true), ("expected the error to mention %q, got %q"):format(text, message))
end

-- A safetensors file with the given JSON header and data bytes.
local function raw_safetensors(header, data)
  return string.pack("<I8", #header) .. header .. (data or "")
end

describe("safetensors", function()
  local path
  before_each(function() path = temp_path(".safetensors") end)
  after_each(function() os.remove(path) end)

  it("round-trips tensors, views, a scalar and metadata", function()
    local w = cnn.randn(3, 4)
    local tensors = {
      ["conv1.weight"] = cnn.randn(2, 1, 3, 3),
      ["fc.weight"] = w,
      ["fc.weight_t"] = w:transpose(1, 2),       -- a non-contiguous view
      ["fc.cols"] = w:narrow(2, 2, 2),
      bias = cnn.tensor{1.5, -2.25, 1e-30},
      total = cnn.tensor{1, 2, 3}:sum(),          -- 0-d
    }
    cnn.safetensors_save(path, tensors, {epoch = 3, model = "lenet", note = 'quote " and \\ and \n'})
    local loaded, meta = cnn.safetensors_load(path)
    local count = 0
    for name, t in pairs(tensors) do
      assert.is_not_nil(loaded[name], name)
      same_tensor(loaded[name], t)
      count = count + 1
    end
    for _ in pairs(loaded) do count = count - 1 end
    assert.are.equal(0, count)
    assert.are.equal(0, loaded.total:dim())
    assert.are.equal(6, loaded.total:item())
    assert.are.same({epoch = "3", model = "lenet", note = 'quote " and \\ and \n'}, meta)
  end)

  it("gives an empty metadata table when there is none", function()
    cnn.safetensors_save(path, {x = cnn.ones(2)})
    local loaded, meta = cnn.safetensors_load(path)
    assert.are.same({}, meta)
    assert.are.same({1, 1}, loaded.x:totable())
  end)

  it("saves a name->tensor table in sorted order, so equal inputs give equal files", function()
    local a, b, c = cnn.ones(2), cnn.zeros(3), cnn.full({2, 2}, 7)
    cnn.safetensors_save(path, {c = c, a = a, b = b}, {z = "1", y = "2"})
    local first = read_file(path)
    cnn.safetensors_save(path, {b = b, c = c, a = a}, {y = "2", z = "1"})
    assert.are.equal(first, read_file(path))
    local pa, pb, pc = first:find('"a":'), first:find('"b":'), first:find('"c":')
    assert.is_true(pa < pb and pb < pc)
  end)

  it("keeps the order of a list of {name, tensor} pairs", function()
    cnn.safetensors_save(path, {{"z", cnn.ones(1)}, {"a", cnn.zeros(1)}})
    local bytes = read_file(path)
    assert.is_true(bytes:find('"z":') < bytes:find('"a":'))
    local loaded = cnn.safetensors_load(path)
    assert.are.same({1}, loaded.z:totable())
    assert.are.same({0}, loaded.a:totable())
  end)

  it("refuses bad arguments with messages naming the problem", function()
    local t = cnn.ones(2)
    assert.matches("'w' must be a tensor, not a number", error_of(cnn.safetensors_save, path, {w = 5}))
    assert.matches("names must be strings", error_of(cnn.safetensors_save, path, {[true] = t}))
    assert.matches("entry 2 of the list must be a {name, tensor} pair",
      error_of(cnn.safetensors_save, path, {{"a", t}, {"b", 3}}))
    assert.matches("mixes a list", error_of(cnn.safetensors_save, path, {{"a", t}, b = t}))
    assert.matches("the name 'a' is given twice",
      error_of(cnn.safetensors_save, path, {{"a", t}, {"a", t}}))
    assert.matches("tensor 1 has an empty name", error_of(cnn.safetensors_save, path, {[""] = t}))
    assert.matches("metadata 'epoch' must be a string or a number, not a table",
      error_of(cnn.safetensors_save, path, {a = t}, {epoch = {}}))
    assert.matches("metadata keys must be strings", error_of(cnn.safetensors_save, path, {a = t}, {1}))
    assert.is_nil(io.open(path, "rb"), "no file may be left behind")
  end)

  it("keeps the old file when a save fails", function()
    cnn.safetensors_save(path, {a = cnn.ones(3)})
    local before = read_file(path)
    error_of(cnn.safetensors_save, path, {{"a", cnn.ones(1)}, {"a", cnn.ones(1)}})
    assert.are.equal(before, read_file(path))
    local dir = temp_path("-dir")
    assert.is_true(os.execute("mkdir " .. dir))
    local err = error_of(cnn.safetensors_save, dir, {a = cnn.ones(1)})
    os.execute("rmdir " .. dir)
    assert_mentions("safetensors: cannot replace " .. dir, err)
  end)

  it("raises clear errors for missing and corrupt files", function()
    local function load_error() return error_of(cnn.safetensors_load, path) end
    assert_mentions("safetensors: cannot open " .. path .. ": No such file or directory", load_error())

    write_file(path, "abc")
    assert_mentions(path .. " is truncated: it has 3 bytes", load_error())

    write_file(path, raw_safetensors('{"a": {"dtype": "F32", '))
    assert_mentions("the header of " .. path .. " is not valid JSON", load_error())

    write_file(path, raw_safetensors(
      '{"conv1.weight":{"dtype":"F32","shape":[6,1,5,5],"data_offsets":[0,96]}}', string.rep("\0", 96)))
    assert_mentions("safetensors: tensor 'conv1.weight' in " .. path ..
      " has data_offsets [0, 96] but shape 6x1x5x5 of F32 needs 600 bytes", load_error())

    write_file(path, raw_safetensors('{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}', "\0"))
    assert_mentions("tensor 'a' in " .. path .. " has dtype 'Q4'", load_error())

    write_file(path, raw_safetensors(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', string.rep("\0", 12)))
    assert_mentions("tensors 'a' and 'b' in " .. path .. " overlap", load_error())
  end)

  it("loads all or nothing: one bad entry fails the whole file", function()
    write_file(path, raw_safetensors(
      '{"good":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' ..
      '"bad":{"dtype":"F32","shape":[2],"data_offsets":[4,20]}}',
      string.rep("\0", 12)))
    local ok, loaded = pcall(cnn.safetensors_load, path)
    assert.is_false(ok)
    assert.matches("tensor 'bad'", loaded)
  end)

  it("reads the other dtypes, converted to float32", function()
    -- F16 1 and -2, BF16 -3.5, I64 -5, U8 200, BOOL true
    local data = string.pack("<I2I2I2i8BB", 0x3C00, 0xC000, 0xC060, -5, 200, 1)
    write_file(path, raw_safetensors(
      '{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},' ..
      '"bf":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},' ..
      '"l":{"dtype":"I64","shape":[],"data_offsets":[6,14]},' ..
      '"u":{"dtype":"U8","shape":[1],"data_offsets":[14,15]},' ..
      '"b":{"dtype":"BOOL","shape":[1],"data_offsets":[15,16]}}', data))
    local t = cnn.safetensors_load(path)
    assert.are.same({1, -2}, t.h:totable())
    assert.are.same({-3.5}, t.bf:totable())
    assert.are.equal(-5, t.l:item())
    assert.are.same({200}, t.u:totable())
    assert.are.same({1}, t.b:totable())
  end)

  it("writes files an independent reader (Python json + numpy) agrees with", function()
    if not os.execute('/usr/bin/python3 -c "import numpy" 2>/dev/null') then
      print("\nnote: python3 with numpy is not available; the independent reader check is skipped")
      return
    end
    local w = cnn.randn(4, 3)
    local tensors = {
      weight = w, weight_t = w:transpose(1, 2), scalar = cnn.tensor{0.1, 0.2}:sum(),
      tiny = cnn.tensor{{1e-38, -3.4e38}, {0.3, -0.0}}, empty = cnn.zeros(0, 2),
    }
    cnn.safetensors_save(path, tensors, {epoch = "7"})
    local script = "tests/reference/safetensors_check.py"
    local pipe = assert(io.popen("/usr/bin/python3 " .. script .. " " .. path .. " 2>&1"))
    local output = pipe:read("a")
    local ok = pipe:close()
    assert.is_true(ok, output)
    local seen, meta = {}, {}
    for line in output:gmatch("[^\n]+") do
      local kind, name, rest = line:match("^(%a+)\t([^\t]*)\t(.*)$")
      if kind == "meta" then
        meta[name] = rest
      else
        assert.are.equal("tensor", kind, line)
        local dims, values = rest:match("^([^\t]*)\t(.*)$")
        local t = tensors[name]
        assert.is_not_nil(t, name)
        assert.are.equal(table.concat(t:shape(), ","), dims)
        local flat = t:numel() > 0 and t:reshape(t:numel()):totable() or {}
        local i = 0
        for v in values:gmatch("%S+") do
          i = i + 1
          assert.are.equal(flat[i], tonumber(v), name .. " element " .. i)
        end
        assert.are.equal(t:numel(), i)
        seen[name] = true
      end
    end
    for name in pairs(tensors) do assert.is_true(seen[name], name) end
    assert.are.same({epoch = "7"}, meta)
  end)
end)

describe("idx_load", function()
  local path
  before_each(function() path = temp_path("-idx") end)
  after_each(function()
    os.remove(path)
    os.remove(path .. ".gz")
  end)

  local function idx(type_code, dims, payload)
    local header = string.pack(">BBBB", 0, 0, type_code, #dims)
    for _, d in ipairs(dims) do header = header .. string.pack(">I4", d) end
    return header .. payload
  end

  local images = string.char(0, 255, 51, 102, 1, 2, 3, 4, 250, 251, 252, 253)

  it("loads images as N x 1 x H x W, scaled to [0, 1] on request", function()
    write_file(path, idx(8, {3, 2, 2}, images))
    local x = cnn.idx_load(path, true)
    assert.are.same({3, 1, 2, 2}, x:shape())
    local raw = cnn.idx_load(path)
    assert.are.same({3, 1, 2, 2}, raw:shape())
    local scaled_values, raw_values = x:reshape(12):totable(), raw:reshape(12):totable()
    for i = 1, 12 do
      assert.are.equal(images:byte(i), raw_values[i])
      assert.are.near(images:byte(i) / 255, scaled_values[i], 1e-7)
    end
    assert.are.equal(1, scaled_values[2])
  end)

  it("shifts 0-based labels to Lua's 1-based classes", function()
    write_file(path, idx(8, {5}, string.char(0, 9, 3, 3, 7)))
    local y = cnn.idx_load(path)
    assert.are.same({1, 10, 4, 4, 8}, y:totable())
  end)

  it("reads gzip-compressed files", function()
    write_file(path, idx(8, {3, 2, 2}, images))
    if not os.execute("gzip -c " .. path .. " > " .. path .. ".gz 2>/dev/null") then
      print("\nnote: gzip is not available; the compressed IDX check is skipped")
      return
    end
    same_tensor(cnn.idx_load(path, true), cnn.idx_load(path .. ".gz", true))
  end)

  it("raises clear errors for truncated, foreign and missing files", function()
    write_file(path, idx(8, {3, 2, 2}, images:sub(1, 6)))
    assert_mentions("idx: " .. path .. " is truncated: header says 3x2x2 but data ends after 1 images",
      error_of(cnn.idx_load, path))
    write_file(path, "not an idx file at all")
    assert_mentions("idx: " .. path .. " is not an IDX file", error_of(cnn.idx_load, path))
    os.remove(path)
    assert_mentions("idx: cannot open " .. path .. ": No such file or directory", error_of(cnn.idx_load, path))
  end)

  it("loads the Fashion-MNIST test split when dataset-fashion-mnist is installed", function()
    local dir = "/usr/share/datasets/fashion-mnist/"
    local f = io.open(dir .. "t10k-images-idx3-ubyte.gz", "rb")
    if not f then
      print("\nnote: dataset-fashion-mnist is not installed; the Fashion-MNIST check is skipped")
      return
    end
    f:close()
    local x = cnn.idx_load(dir .. "t10k-images-idx3-ubyte.gz", true)
    local y = cnn.idx_load(dir .. "t10k-labels-idx1-ubyte.gz")
    assert.are.same({10000, 1, 28, 28}, x:shape())
    assert.are.same({10000}, y:shape())
    assert.are.equal(0, x:min():item())
    assert.are.equal(1, x:max():item())
    assert.are.equal(1, y:min():item())
    assert.are.equal(10, y:max():item())
  end)
end)

describe("safetensors metadata", function()
  it("survives large metadata tables intact", function()
    local path = os.tmpname()
    local meta = {}
    for i = 1, 200 do meta["key" .. i] = string.rep("v", i) .. i end
    meta.number = 3.25
    cnn.safetensors_save(path, {w = cnn.ones(2)}, meta)
    local _, back = cnn.safetensors_load(path)
    os.remove(path)
    for i = 1, 200 do assert.are.equal(string.rep("v", i) .. i, back["key" .. i]) end
    assert.are.equal("3.25", back.number)
  end)
end)
