-- Autograd: finite-difference checks for every core op, accumulation, no_grad, detach, and the
-- lifetime of the graph.
local cnn = require "cnn"
local gradcheck = require "gradcheck"

local function param(...)
  return cnn.randn(...):requires_grad()
end

-- values kept away from kinks and singularities so central differences are exact enough
local function positive(...)
  return (cnn.rand(...) + 0.5):requires_grad()
end

local function away_from_zero(...)
  local x = cnn.randn(...)
  return (x + x:sign() * 0.2):requires_grad()
end

describe("gradients match finite differences", function()
  before_each(function() cnn.manual_seed(11) end)

  it("for broadcasting add, sub, mul, div", function()
    local a, b, c = param(3, 4), param(4), positive(3, 1)
    assert.is_true(gradcheck(function(a, b) return a + b end, {a, b}))
    assert.is_true(gradcheck(function(a, b) return a - b end, {a, b}))
    assert.is_true(gradcheck(function(a, b) return a * b end, {a, b}))
    assert.is_true(gradcheck(function(a, c) return a / c end, {a, c}))
    assert.is_true(gradcheck(function(b, c) return c / b:abs():add(1) end, {b, c}))
  end)

  it("for scalar forms and pow", function()
    local a, p = param(2, 3), positive(2, 3)
    assert.is_true(gradcheck(function(a) return 3 * a - 2 + a / 4 end, {a}))
    assert.is_true(gradcheck(function(a) return 1 - a end, {a}))
    assert.is_true(gradcheck(function(p) return 2 / p end, {p}))
    assert.is_true(gradcheck(function(p) return p ^ 3 end, {p}))
    assert.is_true(gradcheck(function(p) return p ^ 0.5 end, {p}))
    assert.is_true(gradcheck(function(a) return 2 ^ a end, {a}))
    local e = positive(2, 3)
    assert.is_true(gradcheck(function(p, e) return p ^ e end, {p, e}))
  end)

  it("for unary functions", function()
    local a, p, z = param(2, 5), positive(2, 5), away_from_zero(2, 5)
    for _, f in ipairs{"exp", "sigmoid", "tanh", "sin", "cos", "square", "softplus", "silu", "gelu", "neg"} do
      assert.is_true(gradcheck(function(x) return x[f](x) end, {a}), f)
    end
    for _, f in ipairs{"log", "sqrt", "rsqrt", "reciprocal", "log1p"} do
      assert.is_true(gradcheck(function(x) return x[f](x) end, {p}), f)
    end
    for _, f in ipairs{"abs", "relu"} do
      assert.is_true(gradcheck(function(x) return x[f](x) end, {z}), f)
    end
    assert.is_true(gradcheck(function(x) return x:leaky_relu(0.2) end, {z}))
    assert.is_true(gradcheck(function(x) return x:elu(0.7) end, {z}))
    assert.is_true(gradcheck(function(x) return x:clamp(-0.5, 0.5) end, {z * 3}))
    assert.is_true(gradcheck(function(x) return x:expm1() end, {a}))
  end)

  it("for maximum, minimum and where", function()
    local a, b = param(3, 3), param(3, 3)
    assert.is_true(gradcheck(function(a, b) return cnn.maximum(a, b) end, {a, b}))
    assert.is_true(gradcheck(function(a, b) return cnn.minimum(a, b) end, {a, b}))
    local cond = cnn.rand(3, 3):gt(0.5)
    assert.is_true(gradcheck(function(a, b) return cnn.where(cond, a, b) end, {a, b}))
  end)

  it("for reductions", function()
    local a = param(3, 4)
    assert.is_true(gradcheck(function(a) return a:sum() end, {a}))
    assert.is_true(gradcheck(function(a) return a:sum(1) end, {a}))
    assert.is_true(gradcheck(function(a) return a:sum(2, true) end, {a}))
    assert.is_true(gradcheck(function(a) return a:mean() end, {a}))
    assert.is_true(gradcheck(function(a) return a:mean(-1) end, {a}))
    assert.is_true(gradcheck(function(a) return a:std() end, {a}))
    assert.is_true(gradcheck(function(a) return a:std(1) end, {a}))
    assert.is_true(gradcheck(function(a) return a:var(2, true) end, {a}))
    -- distinct values at least 0.1 apart, so no finite-difference step crosses a tie
    local m = cnn.tensor{{0.3, -1.2, 2.5, 0.9}, {1.7, 0.1, -0.6, 2.2}, {-0.4, 1.1, 0.6, -2.0}}:requires_grad()
    assert.is_true(gradcheck(function(m) return m:max() end, {m}))
    assert.is_true(gradcheck(function(m) return m:min() end, {m}))
    assert.is_true(gradcheck(function(m) return (m:max(2)) end, {m}))
    assert.is_true(gradcheck(function(m) return (m:min(1, true)) end, {m}))
  end)

  it("for views", function()
    local a = param(2, 3, 4)
    assert.is_true(gradcheck(function(a) return a:view(6, 4) end, {a}))
    assert.is_true(gradcheck(function(a) return a:transpose(1, 3):reshape(-1) end, {a}))
    assert.is_true(gradcheck(function(a) return a:permute(3, 1, 2) end, {a}))
    assert.is_true(gradcheck(function(a) return a:narrow(3, 2, 2) end, {a}))
    assert.is_true(gradcheck(function(a) return a:select(2, 3) end, {a}))
    assert.is_true(gradcheck(function(a) return a[2] end, {a}))
    assert.is_true(gradcheck(function(a) return a:unsqueeze(2):squeeze(2):flatten() end, {a}))
    assert.is_true(gradcheck(function(a) return a:contiguous():clone() end, {a}))
    local b = param(1, 3, 1)
    assert.is_true(gradcheck(function(b) return b:expand(2, 3, 4) end, {b}))
    local c = param(2, 2, 4)
    assert.is_true(gradcheck(function(a, c) return cnn.cat({a, c}, 2) end, {a, c}))
  end)

  it("for matmul in every form, and linear", function()
    local a, b, v = param(3, 4), param(4, 2), param(4)
    assert.is_true(gradcheck(function(a, b) return a:matmul(b) end, {a, b}))
    assert.is_true(gradcheck(function(a, v) return a:matmul(v) end, {a, v}))
    assert.is_true(gradcheck(function(v, b) return v:matmul(b) end, {v, b}))
    assert.is_true(gradcheck(function(v) return v:matmul(v) end, {v}))
    local batch, shared = param(2, 3, 4), param(4, 5)
    assert.is_true(gradcheck(function(x, w) return x:matmul(w) end, {batch, shared}))
    assert.is_true(gradcheck(function(x, w) return x:transpose(2, 3):matmul(w:narrow(1, 1, 3)) end,
                             {batch, shared}))
    local x, w, bias = param(5, 4), param(3, 4), param(3)
    assert.is_true(gradcheck(function(x, w, bias) return cnn.linear(x, w, bias) end, {x, w, bias}))
    assert.is_true(gradcheck(function(x, w) return cnn.linear(x, w) end, {x, w}))
  end)

  it("through a composite expression that reuses a tensor", function()
    local x = param(3)
    assert.is_true(gradcheck(function(x) return (x * x + x:exp() * x):sum() / x:abs():add(1):sum() end, {x}))
  end)
end)

describe("autograd semantics", function()
  it("computes the contract's example", function()
    local x = cnn.tensor{{1, 2}, {3, 4}}
    local w = cnn.ones(2, 1):requires_grad()
    local loss = x:matmul(w):relu():sum()
    loss:backward()
    assert.are.same({{4}, {6}}, w.grad:totable())
  end)

  it("accumulates gradients over backward calls until cleared", function()
    local w = cnn.tensor{1, 2}:requires_grad()
    assert.is_nil(w.grad)
    for _ = 1, 2 do (w * 3):sum():backward() end
    assert.are.same({6, 6}, w.grad:totable())
    w.grad = nil
    assert.is_nil(w.grad)
    local sq = (w * w):sum()
    sq:backward()
    assert.are.same({2, 4}, w.grad:totable())
  end)

  it("records nothing under no_grad and restores the mode even after an error", function()
    local w = cnn.ones(2):requires_grad()
    local y = cnn.no_grad(function() return w * 2 end)
    assert.is_false(y:needs_grad())
    assert.is_true(cnn.is_grad_enabled())
    assert.is_false(pcall(cnn.no_grad, function() error("boom") end))
    assert.is_true(cnn.is_grad_enabled())
    local a, b = cnn.no_grad(function(p, q) return p + q, p * q end, 2, 3)
    assert.are.equal(5, a)
    assert.are.equal(6, b)
  end)

  it("detach cuts the graph but shares data", function()
    local w = cnn.ones(2):requires_grad()
    local d = (w * 2):detach()
    assert.is_false(d:needs_grad())
    assert.is_nil(d.grad_fn)
    local y = (w * d):sum()
    y:backward()
    assert.are.same({2, 2}, w.grad:totable())
  end)

  it("frees the graph after backward unless retained", function()
    local w = cnn.ones(2):requires_grad()
    local y = (w:exp() * 2):sum()
    y:backward({retain_graph = true})
    y:backward()
    assert.is_true(math.abs(w.grad[1] - 4 * math.exp(1)) < 1e-5)
    local ok, err = pcall(y.backward, y)
    assert.is_false(ok)
    assert.is_truthy(err:find("second time", 1, true))
  end)

  it("needs an explicit gradient for non-scalar outputs", function()
    local w = cnn.ones(2, 2):requires_grad()
    local y = w * 3
    local ok, err = pcall(y.backward, y)
    assert.is_false(ok)
    assert.is_truthy(err:find("shape 2x2", 1, true))
    y:backward(cnn.ones(2, 2))
    assert.are.same({{3, 3}, {3, 3}}, w.grad:totable())
  end)

  it("refuses backward on tensors that need no grad and in-place changes of parameters", function()
    local ok, err = pcall(function() cnn.ones(2):sum():backward() end)
    assert.is_false(ok)
    assert.is_truthy(err:find("does not require grad", 1, true))
    local w = cnn.ones(2):requires_grad()
    ok, err = pcall(w.fill, w, 0)
    assert.is_false(ok)
    assert.is_truthy(err:find("in place", 1, true))
    cnn.no_grad(function() w:fill(0) end)
    assert.are.same({0, 0}, w:totable())
    ok, err = pcall(function() (w * 2):requires_grad() end)
    assert.is_false(ok)
    assert.is_truthy(err:find("leaf", 1, true))
  end)

  it("names the op that produced a tensor", function()
    local w = cnn.ones(2):requires_grad()
    assert.are.equal("mul", (w * w).grad_fn)
    assert.are.equal("matmul", w:view(1, 2):matmul(w:view(2, 1)).grad_fn)
    assert.is_true(w.is_leaf)
  end)

  it("handles long chains without deep recursion", function()
    local w = cnn.ones(1):requires_grad()
    local y = w
    for _ = 1, 20000 do y = y + 1 end
    y:sum():backward()
    assert.are.same({1}, w.grad:totable())
    y = nil
    collectgarbage()
  end)
end)

describe("edge cases", function()
  it("backpropagates through tensors with no elements", function()
    local w = cnn.zeros(1, 1, 7, 0):requires_grad()
    local y = (w * 2):sum() + (w + 1):sum()
    y:backward()
    assert.are.same({1, 1, 7, 0}, w.grad:shape())
  end)
end)
