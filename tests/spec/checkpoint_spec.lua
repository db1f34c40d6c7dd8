-- cnn.save / cnn.load: round trips of models with parameters and buffers, metadata, and the
-- refusals (mismatched shapes, missing tensors, corrupt or truncated files) that must leave the
-- model untouched.
local cnn = require "cnn"
local files = require "files"
local temp_path, read_file, write_file = files.temp_path, files.read_file, files.write_file
local A = require "assertions"

local nn = cnn.nn

local function make_model(hidden)
  return nn.Sequential {nn.Linear(4, hidden or 3), nn.BatchNorm1d(hidden or 3), nn.ReLU(), nn.Linear(hidden or 3, 2)}
end

-- Every tensor of the state dict as nested tables, for exact comparison.
local function snapshot(model)
  local out = {}
  for name, t in pairs(model:state_dict()) do out[name] = t:totable() end
  return out
end

describe("cnn.save and cnn.load", function()
  local path
  before_each(function() path = temp_path(".safetensors") end)
  after_each(function() os.remove(path) end)

  it("round-trip parameters and buffers exactly, with extra metadata", function()
    cnn.manual_seed(1)
    local model = make_model()
    model(cnn.randn(5, 4)) -- training mode: moves the batch-norm running statistics
    cnn.save(path, model, {epoch = 3, accuracy = 0.1, note = "first"})
    cnn.manual_seed(2)
    local other = make_model()
    assert.are_not.same(snapshot(model), snapshot(other))
    local meta = cnn.load(path, other)
    assert.are.same(snapshot(model), snapshot(other))
    assert.are.equal("3", meta.epoch)
    assert.are.equal(0.1, tonumber(meta.accuracy)) -- numbers are kept to the last bit
    assert.are.equal("first", meta.note)
    assert.are.equal("cnnlua.model", meta.format)
  end)

  it("give the raw tensors without a model, and save plain tables of tensors", function()
    cnn.save(path, {a = cnn.tensor {1, 2}, b = cnn.ones(2, 2)})
    local tensors, meta = cnn.load(path)
    assert.are.same({1, 2}, tensors.a:totable())
    assert.are.same({{1, 1}, {1, 1}}, tensors.b:totable())
    assert.are.equal("cnnlua.model", meta.format)
  end)

  it("name the mismatched tensor and both shapes, and leave the model unchanged", function()
    cnn.save(path, make_model(5))
    local model = make_model(3)
    local before = snapshot(model)
    local ok, err = pcall(cnn.load, path, model)
    assert.is_false(ok)
    assert.truthy(err:find("1.weight", 1, true), err)
    assert.truthy(err:find("3x4", 1, true), err)
    assert.truthy(err:find("5x4", 1, true), err)
    assert.truthy(err:find(path, 1, true), err)
    assert.are.same(before, snapshot(model))
  end)

  it("name a missing tensor, and accept it with strict=false", function()
    local model = make_model()
    local sd = model:state_dict()
    sd["4.bias"] = nil
    cnn.save(path, sd)
    local fresh = make_model()
    local before = snapshot(fresh)
    A.assert_error("missing key '4.bias'", cnn.load, path, fresh)
    assert.are.same(before, snapshot(fresh))
    cnn.load(path, fresh, {strict = false})
    assert.are.same(model["1"].weight:totable(), fresh["1"].weight:totable())
  end)

  it("refuse truncated and corrupt files with a clear error and the model unchanged", function()
    cnn.save(path, make_model())
    local bytes = read_file(path)
    local model = make_model()
    local before = snapshot(model)
    write_file(path, bytes:sub(1, #bytes - 10))
    local ok, err = pcall(cnn.load, path, model)
    assert.is_false(ok)
    assert.truthy(err:find("load: ", 1, true), err)
    assert.truthy(err:find(path, 1, true), err)
    assert.are.same(before, snapshot(model))
    write_file(path, "\200\0\0\0\0\0\0\0{not json")
    assert.is_false(pcall(cnn.load, path, model))
    assert.are.same(before, snapshot(model))
    os.remove(path)
    ok, err = pcall(cnn.load, path, model)
    assert.is_false(ok)
    assert.truthy(err:find(path, 1, true), err)
  end)

  it("check their arguments", function()
    A.assert_error("save: the first argument must be a file path", cnn.save, nil, make_model())
    A.assert_error("save: expected a model or a table of name = tensor", cnn.save, path, 42)
    A.assert_error("save: extra metadata must map strings to strings or numbers", cnn.save, path, make_model(),
                   {epoch = {}})
    cnn.save(path, make_model())
    A.assert_error("load: expected a model", cnn.load, path, 42)
  end)
end)

describe("training checkpoints", function()
  local checkpoint = require "cnn.checkpoint"

  it("hold model and optimizer state, and cnn.load reads the model out of them", function()
    local path = temp_path(".safetensors")
    cnn.manual_seed(3)
    local model = make_model()
    local opt = cnn.optim.Adam(model:parameters(), {lr = 0.01})
    local loss = cnn.cross_entropy(model(cnn.randn(6, 4)), cnn.tensor {1, 2, 1, 2, 2, 1})
    loss:backward()
    opt:step()
    checkpoint.save_training(path, {model = model, optimizer = opt, state = {["fit.epoch"] = "1"}})
    local tensors, meta = cnn.load(path)
    assert.are.equal("cnnlua.training", meta.format)
    assert.are.equal("1", meta["fit.epoch"])
    assert.is_not_nil(tensors["1.weight"])
    local fresh = make_model()
    cnn.load(path, fresh)
    assert.are.same(snapshot(model), snapshot(fresh))

    local opt2 = cnn.optim.Adam(fresh:parameters(), {lr = 0.5})
    checkpoint.load_training(path, {model = fresh, optimizer = opt2})
    assert.are.equal(0.01, opt2.param_groups[1].lr)
    assert.are.same(opt.state[1].exp_avg:totable(), opt2.state[1].exp_avg:totable())
    assert.are.equal(1, opt2.state[1].step)

    -- an optimizer of another kind is refused and nothing changes
    local model3 = make_model()
    local before = snapshot(model3)
    local sgd = cnn.optim.SGD(model3:parameters(), {lr = 0.1})
    A.assert_error("the optimizer state does not fit", checkpoint.load_training, path, {model = model3, optimizer = sgd})
    assert.are.same(before, snapshot(model3))
    os.remove(path)
  end)

  it("encode numbers to the last bit", function()
    for _, v in ipairs {0.1, 1 / 3, -2.5e-300, 42, 0 / 0, math.huge, -math.huge} do
      local back = checkpoint.text_number(checkpoint.number_text(v))
      if v ~= v then assert.is_true(back ~= back) else assert.are.equal(v, back) end
    end
    assert.are.same({1, 0.5, -3}, checkpoint.text_list(checkpoint.list_text {1, 0.5, -3}))
    assert.are.same({}, checkpoint.text_list(""))
  end)
end)
