-- LuaJIT FFI: the public header is read by ffi.cdef exactly as it is on disk, libcnn.so is loaded,
-- and a convolution run through it gives the same numbers as the Lua 5.4 module (run in a child
-- process on the same seeded inputs).
-- usage: luajit tests/ffi/test_ffi.lua <build dir> <repo root>
local ffi = require "ffi"
local build, root = arg[1] or "build", arg[2] or "."

local passed, failed = 0, 0
local function check(name, cond, detail)
  if cond then passed = passed + 1; print("ok - " .. name)
  else failed = failed + 1; print("not ok - " .. name .. (detail and (": " .. detail) or "")) end
end

local header = assert(io.open(root .. "/runtime/cnn_api.h")):read("*a")
check("header has no preprocessor lines", not header:find("\n%s*#"))
local ok, err = pcall(ffi.cdef, header)
check("ffi.cdef accepts runtime/cnn_api.h as-is", ok, err)
local lib = ffi.load(build .. "/libcnn.so")

local function tensor(shape, values)
  local dims = ffi.new("int64_t[?]", #shape, shape)
  local t = values and lib.cnn_from_data(#shape, dims, ffi.new("float[?]", #values, values))
                   or lib.cnn_randn(#shape, dims)
  assert(t ~= nil, ffi.string(lib.cnn_last_error()))
  return ffi.gc(t, lib.cnn_release)
end

local function values(t)
  local n = tonumber(lib.cnn_numel(t))
  local buf = ffi.new("float[?]", n)
  assert(lib.cnn_read(t, buf) == lib.CNN_OK)
  local out = {}
  for i = 0, n - 1 do out[#out + 1] = buf[i] end
  return out
end

-- the worked example: cross-correlation of a 3x3 image with [[1,0],[0,-1]]
local x = tensor({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})
local w = tensor({1, 1, 2, 2}, {1, 0, 0, -1})
local opt = lib.cnn_conv2d_defaults()
local y = lib.cnn_conv2d(x, w, nil, opt)
check("conv2d through the FFI", y ~= nil, y == nil and ffi.string(lib.cnn_last_error()) or nil)
local v = values(ffi.gc(y, lib.cnn_release))
check("worked example gives -4 everywhere", #v == 4 and v[1] == -4 and v[2] == -4 and v[3] == -4 and v[4] == -4)

-- errors come back as NULL plus a message naming the shapes
local bad = lib.cnn_conv2d(tensor({1, 3, 5, 5}, nil), w, nil, opt)
check("shape errors are reported", bad == nil and ffi.string(lib.cnn_last_error()):find("1x3x5x5", 1, true) ~= nil,
      ffi.string(lib.cnn_last_error()))

-- a strided, padded, grouped convolution on seeded random data, compared with the Lua module
lib.cnn_manual_seed(5)
local xi = tensor({2, 4, 7, 6}, nil)
local wi = tensor({6, 2, 3, 3}, nil)
local bi = tensor({6}, nil)
opt.stride[0], opt.stride[1] = 2, 1
opt.padding[0], opt.padding[1] = 1, 2
opt.groups = 2
local yi = lib.cnn_conv2d(xi, wi, bi, opt)
assert(yi ~= nil, ffi.string(lib.cnn_last_error()))
local ffi_values = values(ffi.gc(yi, lib.cnn_release))

local script = [[
local cnn = require "cnn"
cnn.manual_seed(5)
local x, w, b = cnn.randn(2, 4, 7, 6), cnn.randn(6, 2, 3, 3), cnn.randn(6)
local y = cnn.conv2d(x, w, b, {stride = {2, 1}, padding = {1, 2}, groups = 2})
for _, v in ipairs(y:reshape(-1):totable()) do io.write(string.format("%.9g\n", v)) end
]]
local cmd = string.format("LUA_PATH='%s/scripts/?.lua;%s/scripts/?/init.lua;;' LUA_CPATH='%s/lua/?.so;;' lua5.4 -e '%s'",
                          root, root, build, script:gsub("'", "'\\''"))
local p = io.popen(cmd)
local lua_values = {}
-- parse, then round to float32 exactly as the FFI values are
for line in p:lines() do lua_values[#lua_values + 1] = tonumber(ffi.new("float", tonumber(line))) end
p:close()
local worst = #lua_values == #ffi_values and 0 or math.huge
for i = 1, math.min(#lua_values, #ffi_values) do
  worst = math.max(worst, math.abs(lua_values[i] - ffi_values[i]))
end
check(string.format("same numbers as the Lua module (%d values)", #ffi_values), worst == 0,
      string.format("%d vs %d values, worst difference %g", #ffi_values, #lua_values, worst))

print(string.format("FFI tests: %d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
