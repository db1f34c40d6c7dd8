-- Specs of the module system (cnn.nn.Module): classes and user-defined modules, registration,
-- traversal order, modes, freezing, state dicts and their errors, lazily-sized layers and building.
local cnn = require "cnn"
local nn = cnn.nn
local fixtures = require "nn_fixtures"
local assert_error, error_message, lenet = fixtures.assert_error, fixtures.error_message, fixtures.lenet

local function max_abs_diff(a, b) return (a - b):abs():max():item() end

local function names_of(list)
  local out = {}
  for i, entry in ipairs(list) do out[i] = entry[1] end
  return out
end

-- A residual block as users write it.
local Block = nn.Module:extend("Block")
function Block:init(c)
  self.conv = nn.Conv2d(c, c, 3, {padding = 1})
  self.bn = nn.BatchNorm2d(c)
end
function Block:forward(x) return (self.bn(self.conv(x)) + x):relu() end

describe("nn.Module classes", function()
  it("extend makes a class whose instances run init and forward, and model(x) calls forward", function()
    local Scale = nn.Module:extend("Scale")
    function Scale:init(k) self.k = k end
    function Scale:forward(x) return x * self.k end
    local m = Scale(3)
    assert.are.equal(6, m(cnn.tensor{2}):item())
    assert.are.equal(6, m:forward(cnn.tensor{2}):item())
    assert.is_true(m:is_a(Scale))
    assert.is_true(m:is_a(nn.Module))
    assert.is_false(m:is_a(nn.Conv2d))
    assert.is_true(nn.is_module(m))
    assert.is_false(nn.is_module(Scale)) -- the class itself is not an instance
    assert.are.equal("Scale()", tostring(m))
    assert.truthy(tostring(Scale):find("Scale", 1, true))
  end)

  it("subclasses inherit methods and reach the parent through super", function()
    local Base = nn.Module:extend("Base")
    function Base:init(c) self.lin = nn.Linear(c, c) end
    function Base:forward(x) return self.lin(x) end
    local Child = Base:extend("Child")
    function Child:init(c)
      Child.super.init(self, c)
      self.extra = nn.Linear(c, 1)
    end
    function Child:forward(x) return self.extra(Base.forward(self, x)) end
    local m = Child(3)
    assert.are.same({"lin.weight", "lin.bias", "extra.weight", "extra.bias"}, names_of(m:named_parameters()))
    assert.are.same({2, 1}, m(cnn.randn(2, 3)):shape())
    assert.is_true(m:is_a(Base))
  end)

  it("a module without forward says how to define one", function()
    local Empty = nn.Module:extend("Empty")
    assert_error("Empty: forward is not defined", function() Empty()(cnn.zeros(1)) end)
  end)

  it("extend rejects names that are not identifiers", function()
    assert_error("class name must be an identifier", function() nn.Module:extend("a b") end)
    assert_error("class name must be an identifier", function() nn.Module:extend(3) end)
  end)

  it("a user-defined residual block trains through its children", function()
    cnn.manual_seed(1)
    local b = Block(2)
    local x = cnn.randn(2, 2, 4, 4)
    local y = b(x)
    assert.are.same({2, 2, 4, 4}, y:shape())
    assert.is_true(y:min():item() >= 0)
    y:sum():backward()
    for _, p in ipairs(b:parameters()) do assert.is_not_nil(p.grad) end
    assert.are.same({"conv.weight", "conv.bias", "bn.weight", "bn.bias"}, names_of(b:named_parameters()))
    assert.are.same({"bn.running_mean", "bn.running_var"}, names_of(b:named_buffers()))
  end)
end)

describe("registration", function()
  it("modules, leaf tensors that require grad and buffers are registered; other values are fields", function()
    local M = nn.Module:extend("M")
    function M:init()
      self.w = cnn.randn(3):requires_grad() -- a parameter
      self.plain = cnn.zeros(2)              -- an ordinary field
      self.count = 5
      self:register_buffer("stat", cnn.ones(2))
      self.child = nn.Linear(2, 2)
    end
    local m = M()
    assert.are.same({"w", "child.weight", "child.bias"}, names_of(m:named_parameters()))
    assert.are.same({"stat"}, names_of(m:named_buffers()))
    assert.are.same({"w", "stat", "child.weight", "child.bias"}, m:state_dict_names())
    assert.are.equal(5, m.count)
    assert.is_true(cnn.is_tensor(m.plain))
    assert.are.equal(1, #m:children())
  end)

  it("assigning a tensor to a registered name replaces it; nil removes it", function()
    local lin = nn.Linear(2, 3)
    local w = cnn.zeros(3, 2)
    lin.weight = w
    assert.are.equal(w, lin.weight)
    assert.is_true(w:needs_grad()) -- made a parameter
    assert.are.same({"weight", "bias"}, names_of(lin:named_parameters()))
    lin.bias = nil
    assert.are.same({"weight"}, names_of(lin:named_parameters()))
    assert.is_nil(lin.bias)
  end)

  it("refuses to overwrite a parameter with a non-tensor and names with dots", function()
    local lin = nn.Linear(2, 3)
    assert_error("cannot assign a number to 'weight', which is a registered parameter",
                 function() lin.weight = 3 end)
    assert_error("name must be a non-empty string without dots", function() lin:add_module("a.b", nn.ReLU()) end)
    assert_error("must be a leaf tensor", function()
      lin:register_parameter("p", cnn.randn(2):requires_grad() * 2)
    end)
  end)

  it("submodules can be replaced (transfer learning: a new head)", function()
    local m = lenet()
    m[12] = nn.Linear(84, 3)
    assert.are.same({2, 3}, m(cnn.randn(2, 1, 28, 28)):shape())
    assert.are.equal(3, m:named_parameters()["12.weight"]:size(1))
  end)
end)

describe("traversal", function()
  it("parameters come in registration order, are deduplicated and the call is idempotent", function()
    local m = lenet()
    local a, b = m:parameters(), m:parameters()
    assert.are.equal(10, #a)
    for i = 1, #a do assert.are.equal(a[i], b[i]) end
    assert.are.same({"1.weight", "1.bias", "4.weight", "4.bias", "8.weight", "8.bias", "10.weight", "10.bias",
                     "12.weight", "12.bias"}, names_of(m:named_parameters()))
    assert.are.equal(a[3], m[4].weight)
    assert.are.equal(m[8].bias, m:named_parameters()["8.bias"]) -- lookup by name
  end)

  it("a module used twice contributes its parameters once", function()
    local shared = nn.Linear(4, 4)
    local m = nn.Sequential{shared, nn.ReLU(), shared}
    assert.are.equal(2, #m:parameters())
    assert.are.same({"1.weight", "1.bias"}, names_of(m:named_parameters()))
    assert.are.equal(3, #m:children())
    assert.are.equal(3, #m:modules()) -- the Sequential, the Linear once, the ReLU
  end)

  it("a tensor tied into two layers is one parameter, saved under both names", function()
    local a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    local m = nn.Sequential{a, b}
    assert.are.same({"1.weight", "1.bias", "2.bias"}, names_of(m:named_parameters()))
    assert.are.equal(3, #m:parameters())
    assert.are.same({"1.weight", "1.bias", "2.weight", "2.bias"}, m:state_dict_names())
    m:load_state_dict(m:state_dict{copy = true})
  end)

  it("named_modules lists parents first with dotted paths", function()
    local m = nn.Sequential{nn.Sequential{nn.Linear(2, 2), nn.ReLU()}, Block(1)}
    assert.are.same({"", "1", "1.1", "1.2", "2", "2.conv", "2.bn"}, names_of(m:named_modules()))
    assert.are.same({"1", "2"}, names_of(m:named_children()))
    assert.are.same({"1.1.weight", "1.1.bias", "2.conv.weight", "2.conv.bias", "2.bn.weight", "2.bn.bias"},
                    names_of(m:named_parameters()))
  end)

  it("Sequential names children 1, 2, ... and supports add, indexing and #", function()
    local m = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    assert.are.equal(2, #m)
    assert.are.equal(m, m:add(nn.Linear(4, 1)))
    assert.are.equal(3, #m)
    assert.is_true(m[3]:is_a(nn.Linear))
    assert.are.equal(m[3], m["3"])
    assert.are.same({5, 1}, m(cnn.randn(5, 3)):shape())
    local seen = 0
    for i, layer in ipairs(m) do
      seen = i
      assert.is_true(nn.is_module(layer))
    end
    assert.are.equal(3, seen)
  end)

  it("ModuleList holds modules for a hand-written forward", function()
    local list = nn.ModuleList{nn.Linear(2, 2), nn.Linear(2, 2)}
    assert.are.equal(2, #list)
    assert.are.equal(4, #list:parameters())
    assert_error("has no forward", function() list(cnn.zeros(1, 2)) end)
  end)

  it("apply visits every module", function()
    local m = lenet()
    local count = 0
    m:apply(function() count = count + 1 end)
    assert.are.equal(13, count)
  end)

  it("tostring prints the structure like PyTorch", function()
    local m = nn.Sequential{nn.Conv2d(1, 6, 5, {padding = 2}), nn.ReLU(), Block(2)}
    local expected = table.concat({
      "Sequential(",
      "  (1): Conv2d(1, 6, kernel_size=5, padding=2)",
      "  (2): ReLU()",
      "  (3): Block(",
      "    (conv): Conv2d(2, 2, kernel_size=3, padding=1)",
      "    (bn): BatchNorm2d(2, eps=1e-05, momentum=0.1)",
      "  )",
      ")"}, "\n")
    assert.are.equal(expected, tostring(m))
  end)
end)

describe("modes", function()
  it("train/eval switch every module and change Dropout and BatchNorm", function()
    cnn.manual_seed(2)
    local m = nn.Sequential{nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.5)}
    assert.is_true(m.training and m[2].training and m[3].training)
    local x = cnn.randn(16, 8)
    assert.are.equal(m, m:eval())
    assert.is_false(m.training or m[1].training or m[2].training or m[3].training)
    local a, b = m(x), m(x)
    assert.are.equal(0, max_abs_diff(a, b)) -- deterministic in eval
    local rm = m[2].running_mean:clone()
    m(x)
    assert.are.equal(0, max_abs_diff(rm, m[2].running_mean)) -- running stats untouched in eval
    m:train()
    assert.is_true(m[3].training)
    local y = m(x)
    assert.is_true(max_abs_diff(rm, m[2].running_mean) > 0) -- running stats move in training
    local zeros = (y:eq(0)):sum():item()
    assert.is_true(zeros > 16 and zeros < 112, "dropout zeroed " .. zeros .. " of 128")
    m:train(false)
    assert.is_false(m[3].training)
  end)
end)

describe("freeze and gradients", function()
  it("freeze stops gradients; parameters{trainable=true} leaves frozen ones out", function()
    cnn.manual_seed(3)
    local m = lenet()
    local x = cnn.randn(2, 1, 28, 28)
    m(x):sum():backward()
    assert.is_not_nil(m[1].weight.grad)
    m[1]:freeze()
    assert.is_nil(m[1].weight.grad)  -- cleared
    assert.is_false(m[1].weight:needs_grad())
    assert.are.equal(10, #m:parameters())
    assert.are.equal(8, #m:parameters{trainable = true})
    assert.are.equal(8, #m:named_parameters{trainable = true})
    m:zero_grad()
    m(x):sum():backward()
    assert.is_nil(m[1].weight.grad)
    assert.is_not_nil(m[4].weight.grad)
    m:unfreeze()
    assert.are.equal(10, #m:parameters{trainable = true})
    assert.is_true(m[1].weight:needs_grad())
  end)

  it("a lazily-sized layer created after freeze() is frozen too", function()
    local m = nn.Sequential{nn.Flatten(), nn.Dense{units = 3}}
    m:freeze()
    m(cnn.randn(2, 5))
    assert.are.equal(2, #m:parameters())
    assert.are.equal(0, #m:parameters{trainable = true})
  end)

  it("zero_grad clears every gradient", function()
    local m = nn.Linear(3, 2)
    m(cnn.randn(4, 3)):sum():backward()
    assert.is_not_nil(m.weight.grad)
    m:zero_grad()
    assert.is_nil(m.weight.grad)
    assert.is_nil(m.bias.grad)
  end)

  it("an optimizer over model:parameters() lowers the loss", function()
    cnn.manual_seed(4)
    local m = nn.Sequential{nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)}
    local x = cnn.randn(16, 2)
    local target = x:sum(2, true) * 0.5
    local loss_fn = nn.MSELoss()
    local opt = cnn.optim.SGD(m:parameters(), {lr = 0.1})
    local first
    for _ = 1, 30 do
      opt:zero_grad()
      local loss = loss_fn(m(x), target)
      first = first or loss:item()
      loss:backward()
      opt:step()
    end
    assert.is_true(loss_fn(m(x), target):item() < 0.5 * first)
  end)
end)

describe("state_dict", function()
  it("holds parameters and buffers by dotted name and round-trips into a fresh model", function()
    cnn.manual_seed(5)
    local function make() return nn.Sequential{nn.Conv2d(1, 2, 3), Block(2), nn.Flatten(), nn.Linear(8, 2)} end
    local a, b = make(), make()
    a(cnn.randn(4, 1, 4, 4)) -- move the running statistics away from their start
    local sd = a:state_dict()
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({"1.bias", "1.weight", "2.bn.bias", "2.bn.running_mean", "2.bn.running_var", "2.bn.weight",
                     "2.conv.bias", "2.conv.weight", "4.bias", "4.weight"}, keys)
    assert.are.equal(a[1].weight, sd["1.weight"]) -- live tensors
    local result = b:load_state_dict(sd)
    assert.are.same({}, result.missing_keys)
    assert.are.same({}, result.unexpected_keys)
    a:eval(); b:eval()
    local x = cnn.randn(3, 1, 4, 4)
    assert.are.equal(0, max_abs_diff(a(x), b(x)))
    assert.are.equal(0, max_abs_diff(a[2].bn.running_var, b[2].bn.running_var))
    assert.are_not.equal(a[1].weight, b[1].weight) -- copied, not shared
  end)

  it("state_dict{copy=true} is a snapshot that later training does not change", function()
    local m = nn.Linear(2, 2)
    local snap = m:state_dict{copy = true}
    local before = snap.weight:clone()
    cnn.no_grad(function() m.weight:fill(7) end)
    assert.are.equal(0, max_abs_diff(before, snap.weight))
    m:load_state_dict(snap)
    assert.are.equal(0, max_abs_diff(before, m.weight))
  end)

  it("a missing key is an error naming the key and its shape; the model is left unchanged", function()
    local m = lenet()
    local sd = lenet():state_dict()
    sd["4.bias"] = nil
    local w_before = m[1].weight:clone()
    assert_error("missing key '4.bias' (the model expects shape 16)", m.load_state_dict, m, sd)
    assert.are.equal(0, max_abs_diff(w_before, m[1].weight)) -- nothing copied
  end)

  it("a shape mismatch names the key and both shapes, and nothing is loaded", function()
    local m = lenet()
    local sd = lenet():state_dict()
    sd["8.weight"] = cnn.zeros(120, 256)
    local before = m[1].weight:clone()
    assert_error("shape mismatch for '8.weight': the model has 120x400, the state dict has 120x256",
                 m.load_state_dict, m, sd)
    assert.are.equal(0, max_abs_diff(before, m[1].weight))
  end)

  it("unexpected keys are errors in strict mode and reported otherwise", function()
    local m = nn.Linear(2, 2)
    local sd = nn.Linear(2, 2):state_dict()
    sd["head.weight"] = cnn.zeros(3)
    assert_error("unexpected key 'head.weight' (shape 3)", m.load_state_dict, m, sd)
    local result = m:load_state_dict(sd, {strict = false})
    assert.are.same({"head.weight"}, result.unexpected_keys)
    sd["head.weight"], sd.bias = nil, nil
    result = m:load_state_dict(sd, {strict = false})
    assert.are.same({"bias"}, result.missing_keys)
    assert_error("'weight' is a string, expected a tensor of shape 2x2", m.load_state_dict, m, {weight = "x", bias = sd.weight})
  end)

  it("several problems are all listed", function()
    local m = nn.Linear(2, 2)
    local err = error_message(m.load_state_dict, m, {bias = cnn.zeros(3)})
    assert.truthy(err:find("missing key 'weight'", 1, true), err)
    assert.truthy(err:find("shape mismatch for 'bias': the model has 2, the state dict has 3", 1, true))
  end)
end)

describe("lazily-sized layers", function()
  it("create their parameters on the first forward; build() does it explicitly", function()
    local m = nn.Sequential{nn.Conv2d{filters = 4, kernel_size = 3}, nn.ReLU(), nn.Flatten(), nn.Dense{units = 2}}
    assert.is_true(m:has_lazy_parameters())
    assert.are.equal(0, #m:parameters()) -- nothing known before the first forward
    assert.are.equal(m, m:build{3, 6, 6})
    assert.is_false(m:has_lazy_parameters())
    assert.are.same({4, 3, 3, 3}, m[1].weight:shape())
    assert.are.same({2, 64}, m[4].weight:shape())
    assert.are.equal(4, #m:parameters())
    assert.is_true(m.training) -- build runs in eval mode and restores the mode
  end)

  it("a Keras input_shape on the first layer lets parameters() build the model itself", function()
    local m = nn.Sequential{
      nn.Conv2d{filters = 8, kernel_size = {5, 5}, padding = "same", activation = "relu", input_shape = {12, 12, 3}},
      nn.Flatten(), nn.Dense{units = 10, activation = "softmax"},
    }
    local params = m:parameters()
    assert.are.equal(4, #params)
    assert.are.same({10, 8 * 12 * 12}, m[3].weight:shape())
    local y = m(cnn.randn(2, 3, 12, 12))
    assert.is_true(max_abs_diff(y:sum(2), cnn.ones(2)) < 1e-5)
  end)

  it("load_state_dict sizes an unbuilt model from the tensors, and undoes that when the load fails", function()
    local trained = nn.Sequential{nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2)}
    local function fresh() return nn.Sequential{nn.Conv2d{filters = 3, kernel_size = 3}, nn.BatchNorm2d(), nn.Flatten(),
                                                nn.Dense{units = 2}} end
    local m = fresh()
    m:load_state_dict(trained:state_dict())
    assert.is_false(m:has_lazy_parameters())
    trained:eval(); m:eval()
    local x = cnn.randn(2, 2, 4, 4)
    assert.are.equal(0, max_abs_diff(trained(x), m(x)))

    local bad = trained:state_dict()
    bad["4.bias"] = cnn.zeros(5)
    local m2 = fresh()
    assert_error("shape mismatch for '4.bias'", m2.load_state_dict, m2, bad)
    assert.is_true(m2:has_lazy_parameters())
    assert.are.equal(0, #m2:parameters())
  end)

  it("build without an input shape says what to give", function()
    local m = nn.Sequential{nn.Dense{units = 2}}
    assert_error("give the input shape without the batch dimension", function() m:build() end)
    assert_error("input shape entry 2 must be a positive integer", function() m:build{3, 0} end)
  end)
end)

describe("forward errors", function()
  it("name the layer and the input shape", function()
    local conv = nn.Conv2d(1, 6, 5)
    assert_error("Conv2d(1, 6, kernel_size=5): expected a 4-d input (N x C x H x W) (input 1x28x28)",
                 conv, cnn.randn(1, 28, 28))
    assert_error("Conv2d(1, 6, kernel_size=5): expected 1 input channels, got 3 (input 8x3x28x28)",
                 conv, cnn.randn(8, 3, 28, 28))
    local lin = nn.Linear(400, 120)
    assert_error("Linear(in_features=400, out_features=120): expected 400 input features in the last dimension, "
                 .. "got 256", lin, cnn.randn(8, 256))
    assert_error("flatten images with nn.Flatten() first", lin, cnn.randn(8, 16, 4, 4))
    assert_error("BatchNorm2d(3, eps=1e-05, momentum=0.1): expected 3 channels in dimension 2, got 4",
                 nn.BatchNorm2d(3), cnn.randn(2, 4, 3, 3))
    assert_error("expected a tensor input, got string", nn.ReLU(), "x")
  end)

  it("inside a Sequential carry the layer's position, through nested Sequentials", function()
    local m = lenet()
    assert_error("layer 8 (Linear): Linear(in_features=400, out_features=120): expected 400 input features",
                 m, cnn.randn(2, 1, 32, 32))
    local outer = nn.Sequential{nn.Identity(), nn.Sequential{nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3)}}
    local err = error_message(outer, cnn.randn(1, 1, 6, 6))
    assert.truthy(err:find("layer 2.3 (Conv2d): conv2d: the 3x3 kernel", 1, true), err)
    assert.is_nil(err:find("conv.lua", 1, true)) -- no library positions in the message
  end)
end)
