-- Tensors: creation, metadata, views, indexing, printing, arithmetic with NumPy broadcasting,
-- reductions, matmul, and the errors user mistakes produce.
local cnn = require "cnn"

local function same(t, expected, tol)
  local got = cnn.is_tensor(t) and t:totable() or t
  local function cmp(a, b, path)
    if type(b) == "table" then
      assert.are.equal("table", type(a), "at " .. path)
      assert.are.equal(#b, #a, "length at " .. path)
      for i = 1, #b do cmp(a[i], b[i], path .. "[" .. i .. "]") end
    else
      assert.is_true(math.abs(a - b) <= (tol or 1e-5), string.format("at %s: got %s, expected %s", path, a, b))
    end
  end
  cmp(got, expected, "")
end

local function fails(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.is_truthy(tostring(err):find(pattern, 1, true), "error was: " .. tostring(err))
end

describe("creation", function()
  it("builds from nested tables", function()
    local x = cnn.tensor{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}
    assert.are.same({3, 3}, x:shape())
    assert.are.equal(3, x:size(1))
    assert.are.equal(2, x:dim())
    assert.are.equal(9, x:numel())
    assert.are.same({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}, x:totable())
  end)

  it("makes zeros, ones, full, arange", function()
    same(cnn.zeros(2, 3), {{0, 0, 0}, {0, 0, 0}})
    same(cnn.ones{2, 2}, {{1, 1}, {1, 1}})
    same(cnn.full({2, 3}, 7), {{7, 7, 7}, {7, 7, 7}})
    same(cnn.arange(0, 10), {0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
    same(cnn.arange(5), {0, 1, 2, 3, 4})
    same(cnn.arange(1, 2, 0.25), {1, 1.25, 1.5, 1.75})
    same(cnn.arange(3, 0, -1), {3, 2, 1})
    assert.are.equal(0, cnn.arange(2, 2):numel())
  end)

  it("makes scalars and reads them with item", function()
    local s = cnn.tensor(3.5)
    assert.are.equal(0, s:dim())
    assert.are.equal(3.5, s:item())
    assert.are.equal(6, cnn.tensor{{1, 2}, {3, 0}}:sum():item())
  end)

  it("is reproducible under manual_seed", function()
    cnn.manual_seed(42)
    local a, b = cnn.rand(5, 5), cnn.randn(100)
    cnn.manual_seed(42)
    same(cnn.rand(5, 5), a:totable(), 0)
    same(cnn.randn(100), b:totable(), 0)
    cnn.manual_seed(43)
    assert.is_true((cnn.rand(5, 5) - a):abs():sum():item() > 0)
  end)

  it("gives the same stream on every machine for a seed", function()
    -- integer-only generator: these values are fixed for seed 1
    cnn.manual_seed(1)
    local u = cnn.rand(3):totable()
    cnn.manual_seed(1)
    local st = cnn.get_rng_state()
    assert.are.equal(4, #st)
    local again = cnn.rand(3):totable()
    same(again, u, 0)
    cnn.set_rng_state(st)
    same(cnn.rand(3), u, 0)
  end)

  it("draws uniform in [0,1) and normal with the right moments", function()
    cnn.manual_seed(3)
    local u = cnn.rand(100000)
    assert.is_true(u:min():item() >= 0 and u:max():item() < 1)
    assert.is_true(math.abs(u:mean():item() - 0.5) < 0.01)
    local n = cnn.randn(100000)
    assert.is_true(math.abs(n:mean():item()) < 0.02)
    assert.is_true(math.abs(n:std():item() - 1) < 0.02)
  end)

  it("rejects bad input with clear errors", function()
    fails("ragged", cnn.tensor, {{1, 2}, {3}})
    fails("expected a number", cnn.tensor, {{1, "x"}})
    fails("negative", cnn.zeros, 2, -3)
    fails("integers", cnn.zeros, 2.5)
    fails("step", cnn.arange, 0, 1, 0)
  end)
end)

describe("views", function()
  local x
  before_each(function() x = cnn.tensor{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}} end)

  it("share storage with their base", function()
    local v = x:view(9)
    v[1] = 100
    assert.are.equal(100, x[1][1])
    local r = x:narrow(1, 2, 2)
    same(r, {{4, 5, 6}, {7, 8, 9}})
    r:fill(0)
    same(x, {{100, 2, 3}, {0, 0, 0}, {0, 0, 0}})
  end)

  it("view, reshape, transpose, permute, narrow, select, index", function()
    same(x:view(1, 1, 3, 3), {{{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}}})
    same(x:reshape(9), {1, 2, 3, 4, 5, 6, 7, 8, 9})
    same(x:view(-1, 9), {{1, 2, 3, 4, 5, 6, 7, 8, 9}})
    same(x:transpose(1, 2), {{1, 4, 7}, {2, 5, 8}, {3, 6, 9}})
    same(x:permute(2, 1), {{1, 4, 7}, {2, 5, 8}, {3, 6, 9}})
    same(x:narrow(2, 2, 2), {{2, 3}, {5, 6}, {8, 9}})
    same(x:select(1, 2), {4, 5, 6})
    same(x:select(2, -1), {3, 6, 9})
    same(x[2], {4, 5, 6})
    assert.are.equal(6, x[2][3])
    assert.are.equal(9, x[-1][-1])
    assert.are.equal(3, #x)
  end)

  it("reshape copies when a view is impossible, view refuses", function()
    local t = x:transpose(1, 2)
    assert.is_false(t:is_contiguous())
    same(t:reshape(9), {1, 4, 7, 2, 5, 8, 3, 6, 9})
    fails("cannot be viewed", t.view, t, 9)
    assert.is_true(t:contiguous():is_contiguous())
  end)

  it("expand, squeeze, unsqueeze, flatten", function()
    local row = cnn.tensor{1, 2, 3}
    same(row:expand(2, 3), {{1, 2, 3}, {1, 2, 3}})
    same(row:view(3, 1):expand(3, 2), {{1, 1}, {2, 2}, {3, 3}})
    assert.are.same({1, 3}, row:unsqueeze(1):shape())
    assert.are.same({3, 1}, row:unsqueeze(2):shape())
    assert.are.same({3}, cnn.zeros(1, 3, 1):squeeze():shape())
    assert.are.same({3, 1}, cnn.zeros(1, 3, 1):squeeze(1):shape())
    assert.are.same({2, 12}, cnn.zeros(2, 3, 4):flatten(2):shape())
    assert.are.same({24}, cnn.zeros(2, 3, 4):flatten():shape())
    fails("expanded view", function() row:expand(2, 3):fill(1) end)
  end)

  it("clone and copy are independent; copy broadcasts", function()
    local c = x:clone()
    c:fill(0)
    assert.are.equal(1, x[1][1])
    local d = cnn.zeros(2, 3)
    d:copy(cnn.tensor{1, 2, 3})
    same(d, {{1, 2, 3}, {1, 2, 3}})
    x[1] = 5
    same(x[1], {5, 5, 5})
    x[2] = cnn.tensor{9, 8, 7}
    same(x[2], {9, 8, 7})
  end)

  it("cat joins along a dim", function()
    same(cnn.cat({cnn.ones(1, 2), cnn.zeros(2, 2)}, 1), {{1, 1}, {0, 0}, {0, 0}})
    same(cnn.cat({cnn.ones(2, 1), cnn.zeros(2, 2)}, 2), {{1, 0, 0}, {1, 0, 0}})
    fails("all sizes must match", cnn.cat, {cnn.ones(2, 1), cnn.zeros(3, 2)}, 2)
  end)

  it("report out-of-range dims and indices", function()
    fails("out of range", function() return x:select(3, 1) end)
    fails("index 4 is out of range 1..3", function() return x[4] end)
    fails("out of range", function() return x:narrow(1, 3, 2) end)
    fails("invalid for a tensor of shape 3x3", function() return x:view(4, 2) end)
    fails("dims are 1-based", function() return x:sum(0) end)
    fails("appears twice", function() return x:permute(1, 1) end)
  end)
end)

describe("broadcasting follows NumPy", function()
  it("adds a row to every row and a column to every column", function()
    local m = cnn.tensor{{1, 2, 3}, {4, 5, 6}}
    same(m + cnn.tensor{10, 20, 30}, {{11, 22, 33}, {14, 25, 36}})
    same(m + cnn.tensor{{100}, {200}}, {{101, 102, 103}, {204, 205, 206}})
  end)

  it("combines (3,1) and (1,4) into (3,4), and (2,1,3) with (4,1)", function()
    local a, b = cnn.arange(3):view(3, 1), cnn.arange(4):view(1, 4)
    local s = a * 10 + b
    assert.are.same({3, 4}, s:shape())
    same(s, {{0, 1, 2, 3}, {10, 11, 12, 13}, {20, 21, 22, 23}})
    assert.are.same({2, 4, 3}, (cnn.zeros(2, 1, 3) + cnn.zeros(4, 1)):shape())
  end)

  it("treats numbers on either side and scalars as broadcastable", function()
    local v = cnn.tensor{1, 2, 4}
    same(2 - v, {1, 0, -2})
    same(v - 2, {-1, 0, 2})
    same(8 / v, {8, 4, 2})
    same(v / 2, {0.5, 1, 2})
    same(v ^ 2, {1, 4, 16})
    same(2 ^ v, {2, 4, 16})
    same(-v, {-1, -2, -4})
    same(v * cnn.tensor(3), {3, 6, 12})
  end)

  it("refuses shapes that do not broadcast, naming them", function()
    fails("shapes 2x3 and 2 cannot be broadcast", function() return cnn.zeros(2, 3) + cnn.zeros(2) end)
    fails("shapes 3x2 and 4x1x3", function() return cnn.zeros(3, 2) * cnn.zeros(4, 1, 3) end)
  end)

  it("works on non-contiguous operands", function()
    local m = cnn.tensor{{1, 2}, {3, 4}}
    same(m:transpose(1, 2) + m, {{2, 5}, {5, 8}})
  end)
end)

describe("math", function()
  it("unary functions", function()
    local v = cnn.tensor{-1, 0, 1, 4}
    same(v:abs(), {1, 0, 1, 4})
    same(v:relu(), {0, 0, 1, 4})
    same(cnn.tensor{0, 1}:exp(), {1, math.exp(1)})
    same(cnn.tensor{1, math.exp(2)}:log(), {0, 2})
    same(cnn.tensor{4, 9}:sqrt(), {2, 3})
    same(cnn.tensor{0}:sigmoid(), {0.5})
    same(cnn.tensor{0, 100}:tanh(), {0, 1})
    same(v:clamp(0, 2), {0, 0, 1, 2})
    same(v:leaky_relu(0.1), {-0.1, 0, 1, 4})
    same(cnn.tensor{-1}:elu(), {math.exp(-1) - 1})
    same(v:sign(), {-1, 0, 1, 1})
  end)

  it("comparisons and where", function()
    local v = cnn.tensor{1, 2, 3}
    same(v:gt(1.5), {0, 1, 1})
    same(v:eq(cnn.tensor{1, 0, 3}), {1, 0, 1})
    same(cnn.where(v:gt(1.5), v, 0), {0, 2, 3})
    same(cnn.maximum(v, cnn.tensor{2, 2, 2}), {2, 2, 3})
  end)

  it("reductions over all and over one dim, with keepdim", function()
    local x = cnn.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.are.equal(21, x:sum():item())
    assert.are.equal(3.5, x:mean():item())
    same(x:sum(1), {5, 7, 9})
    same(x:sum(2), {6, 15})
    same(x:sum(-1), {6, 15})
    assert.are.same({2, 1}, x:sum(2, true):shape())
    same(x:mean(1), {2.5, 3.5, 4.5})
    assert.is_true(math.abs(x:std():item() - 1.870829) < 1e-5)
    same(x:std(2), {1, 1})
    same(x:var(2, false, false), {2 / 3, 2 / 3})
    assert.are.equal(6, x:max():item())
    assert.are.equal(1, x:min():item())
    local v, i = x:max(2)
    same(v, {3, 6})
    same(i, {3, 3})
    v, i = x:min(1)
    same(v, {1, 2, 3})
    same(i, {1, 1, 1})
    same(x:argmax(2), {3, 3})
    assert.are.equal(6, x:argmax():item()) -- flat 1-based index
  end)

  it("matmul follows NumPy's rules for 1-d, 2-d and batched operands", function()
    local a = cnn.tensor{{1, 2}, {3, 4}}
    local b = cnn.tensor{{5, 6}, {7, 8}}
    same(a:matmul(b), {{19, 22}, {43, 50}})
    same(a:matmul(cnn.tensor{1, 1}), {3, 7})
    same(cnn.tensor{1, 1}:matmul(a), {4, 6})
    assert.are.equal(11, cnn.tensor{1, 2}:matmul(cnn.tensor{3, 4}):item())
    same(a:transpose(1, 2):matmul(b), {{26, 30}, {38, 44}})
    local batch = cnn.cat({a:view(1, 2, 2), b:view(1, 2, 2)}, 1)
    same(batch:matmul(a), {{{7, 10}, {15, 22}}, {{23, 34}, {31, 46}}})
    assert.are.same({3, 2, 5}, cnn.ones(3, 2, 4):matmul(cnn.ones(4, 5)):shape())
    fails("inner dimensions differ (2x3 and 2x3", function() return cnn.ones(2, 3):matmul(cnn.ones(2, 3)) end)
  end)

  it("linear is x W^T + b", function()
    local x = cnn.tensor{{1, 2}}
    local w = cnn.tensor{{1, 0}, {0, 1}, {1, 1}}
    same(cnn.linear(x, w, cnn.tensor{0, 0, 10}), {{1, 2, 13}})
    fails("input has 2 features but weight expects 3", cnn.linear, x, cnn.ones(4, 3))
  end)
end)

describe("printing", function()
  it("shows values and a footer with the shape", function()
    local s = tostring(cnn.tensor{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}})
    assert.is_truthy(s:find("[cnn.Tensor float32 3x3]", 1, true))
    assert.is_truthy(s:find("1 2 3", 1, true))
  end)

  it("abbreviates large tensors", function()
    local s = tostring(cnn.zeros(100, 100))
    assert.is_truthy(s:find("...", 1, true))
    assert.is_true(#s < 400)
    assert.is_truthy(s:find("100x100", 1, true))
  end)

  it("shows fractions and marks parameters", function()
    local s = tostring(cnn.tensor{0.5, 1.25}:requires_grad())
    assert.is_truthy(s:find("0.5000", 1, true))
    assert.is_truthy(s:find("requires_grad", 1, true))
  end)
end)
