-- cnn.optim against PyTorch: optimizer trajectories, schedules and gradient clipping recorded by
-- tests/reference/optim_reference.py, plus parameter groups, state dicts and error messages.
local cnn = require "cnn"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local ref = dofile(here .. "/../reference/optim_reference.lua")

-- The absolute floor covers coordinates that cancel to about zero; the options reach the runtime as
-- float32 (e.g. alpha 0.99 as 0.99000001), which moves a step of size 0.2 by about 1e-7.
local RTOL, ATOL = 1e-5, 1e-6

-- Raises an error naming the first element of actual that differs from expected.
local function assert_close(actual, expected, what, rtol, atol)
  rtol, atol = rtol or RTOL, atol or ATOL
  if type(expected) == "table" then
    assert(type(actual) == "table", what .. ": expected a table, got " .. type(actual))
    assert(#actual == #expected, string.format("%s: %d entries, expected %d", what, #actual, #expected))
    for i = 1, #expected do assert_close(actual[i], expected[i], what .. "[" .. i .. "]", rtol, atol) end
    return
  end
  assert(type(actual) == "number", what .. ": expected a number, got " .. type(actual))
  if not (math.abs(actual - expected) <= rtol * math.abs(expected) + atol) then
    error(string.format("%s: %.9g, expected %.9g", what, actual, expected), 2)
  end
end

-- The reference problem: loss = mean((x w + b - t)^2) with w (3, 4) and b (4).
local function problem()
  local P = ref.problem
  local w = cnn.tensor(P.w):requires_grad()
  local b = cnn.tensor(P.b):requires_grad()
  local x, t = cnn.tensor(P.x), cnn.tensor(P.t)
  local function loss_fn() return ((x:matmul(w) + b - t) ^ 2):mean() end
  return w, b, loss_fn
end

-- The optimizer of a reference entry over w and b (groups name their parameters "w" and "b").
local function build(entry, w, b)
  local named = {w = w, b = b}
  local params = {w, b}
  if entry.groups then
    params = {}
    for i, g in ipairs(entry.groups) do
      local group = {}
      for k, v in pairs(g) do group[k] = v end
      group.params = {}
      for j, n in ipairs(g.params) do group.params[j] = named[n] end
      params[i] = group
    end
  end
  return cnn.optim[entry.optimizer](params, entry.options)
end

local function train_step(opt, loss_fn)
  opt:zero_grad()
  local loss = loss_fn()
  loss:backward()
  opt:step()
  return loss:item()
end

-- An error message raised by fn, which must fail.
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

describe("cnn.optim reproduces PyTorch's trajectories", function()
  for _, name in ipairs(sorted_keys(ref.optimizers)) do
    local entry = ref.optimizers[name]
    it(name, function()
      local w, b, loss_fn = problem()
      local opt = build(entry, w, b)
      for step, expected in ipairs(entry.steps) do
        local loss = train_step(opt, loss_fn)
        local where = string.format("%s step %d", name, step)
        assert_close(loss, expected.loss, where .. " loss")
        assert_close(w:totable(), expected.w, where .. " w")
        assert_close(b:totable(), expected.b, where .. " b")
      end
    end)
  end
end)

describe("cnn.optim.lr reproduces PyTorch's schedules", function()
  for _, name in ipairs(sorted_keys(ref.schedules)) do
    local entry = ref.schedules[name]
    it(name, function()
      local groups = {}
      for i, lr in ipairs(entry.group_lrs) do groups[i] = {params = {cnn.zeros(2):requires_grad()}, lr = lr} end
      local opt = cnn.optim[entry.optimizer](groups, entry.options)
      local sched = cnn.optim.lr[entry.schedule](opt, entry.schedule_options)
      local function momentum_of(g) return g.betas and g.betas[1] or g.momentum end
      for e, expected in ipairs(entry.lrs) do
        if e > 1 then sched:step() end
        local where = string.format("%s after %d steps", name, e - 1)
        assert_close(sched:get_lr(), expected, where .. " lr", 1e-9, 1e-15)
        for i, g in ipairs(opt.param_groups) do
          assert_close(g.lr, expected[i], where .. " group lr", 1e-9, 1e-15)
          assert_close(momentum_of(g), entry.momenta[e][i], where .. " momentum", 1e-9, 1e-15)
        end
      end
    end)
  end
end)

describe("cnn.clip_grad_norm", function()
  for k, case in ipairs(ref.clip_grad_norm) do
    it(string.format("matches PyTorch with max_norm %g, norm_type %s", case.max_norm, case.norm_type), function()
      local w, b, loss_fn = problem()
      loss_fn():backward()
      assert_close(w.grad:totable(), ref.problem.grads.w, "gradient of w")
      assert_close(b.grad:totable(), ref.problem.grads.b, "gradient of b")
      local total = cnn.clip_grad_norm({w, b}, case.max_norm, case.norm_type)
      assert_close(total, case.total_norm, "case " .. k .. " total norm")
      assert_close(w.grad:totable(), case.w, "case " .. k .. " clipped gradient of w")
      assert_close(b.grad:totable(), case.b, "case " .. k .. " clipped gradient of b")
    end)
  end

  it("takes a single tensor, math.huge, skips missing gradients and refuses bad norms", function()
    local w, b, loss_fn = problem()
    assert.are.equal(0, cnn.clip_grad_norm({w, b}, 1.0)) -- no gradients yet
    loss_fn():backward()
    b.grad = nil
    local inf_norm = cnn.clip_grad_norm(w, 1e9, math.huge)
    local expected = 0
    for _, row in ipairs(ref.problem.grads.w) do
      for _, v in ipairs(row) do expected = math.max(expected, math.abs(v)) end
    end
    assert_close(inf_norm, expected, "inf norm")
    assert.matches("norm_type must be > 0", error_of(cnn.clip_grad_norm, {w}, 1.0, 0))
    assert.matches("max_norm must be >= 0", error_of(cnn.clip_grad_norm, {w}, -1))
    assert.matches("not a tensor", error_of(cnn.clip_grad_norm, {w, 3}, 1.0))
    w.grad = cnn.tensor{{0 / 0, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}}
    assert.matches("cannot be clipped", error_of(cnn.clip_grad_norm, {w}, 1.0, 2, true))
  end)
end)

describe("parameter groups", function()
  it("take missing options from the options table, then from the defaults", function()
    local w, b = problem()
    local opt = cnn.optim.Adam({{params = {w}, lr = 0.5}, {params = {b}, amsgrad = true}}, {lr = 0.01, eps = 1e-6})
    local g1, g2 = opt.param_groups[1], opt.param_groups[2]
    assert.are.equal(0.5, g1.lr)
    assert.are.equal(0.01, g2.lr)
    assert.are.equal(1e-6, g1.eps)
    assert.are.same({0.9, 0.999}, g2.betas)
    assert.is_false(g1.amsgrad)
    assert.is_true(g2.amsgrad)
    g1.betas[1] = 0.5 -- every group owns its own betas
    assert.are.equal(0.9, g2.betas[1])
    assert.are.equal(0.01, cnn.optim.AdamW({w}).param_groups[1].weight_decay)
  end)

  it("follow lr changes made between steps", function()
    local w, b, loss_fn = problem()
    local opt = cnn.optim.SGD({{params = {w}}, {params = {b}}}, {lr = 0.1})
    opt.param_groups[2].lr = 0 -- b is frozen from now on
    local before = b:totable()
    train_step(opt, loss_fn)
    assert.are.same(before, b:totable())
    assert_close(w:totable(), ref.optimizers.sgd_plain.steps[1].w, "w after one step")
  end)

  it("skip parameters without gradients and keep per-parameter step counts", function()
    local w, b, loss_fn = problem()
    local opt = cnn.optim.Adam({w, b}, {lr = 0.05})
    train_step(opt, loss_fn)
    opt:zero_grad()
    loss_fn():backward()
    b.grad = nil -- only w moves in the second step
    local b_before = b:totable()
    opt:step()
    assert.are.same(b_before, b:totable())
    assert.are.equal(2, opt.state[1].step)
    assert.are.equal(1, opt.state[2].step)
    -- The third step updates both with their own bias corrections.
    train_step(opt, loss_fn)
    assert.are.equal(3, opt.state[1].step)
    assert.are.equal(2, opt.state[2].step)
    local untouched = cnn.optim.SGD({cnn.zeros(2):requires_grad()})
    untouched:step()
    assert.are.same({}, untouched.state)
  end)
end)

describe("optimizer objects", function()
  it("zero_grad clears or zero-fills gradients", function()
    local w, b, loss_fn = problem()
    local opt = cnn.optim.SGD({w, b})
    loss_fn():backward()
    opt:zero_grad(false)
    assert.are.same({0, 0, 0, 0}, b.grad:totable())
    opt:zero_grad()
    assert.is_nil(w.grad)
    assert.is_nil(b.grad)
  end)

  it("step(closure) evaluates the closure first and returns its result", function()
    local w, b, loss_fn = problem()
    local opt = cnn.optim.SGD({w, b}, {lr = 0.1})
    local loss = opt:step(function()
      opt:zero_grad()
      local l = loss_fn()
      l:backward()
      return l:item()
    end)
    assert_close(loss, ref.optimizers.sgd_plain.steps[1].loss, "closure loss")
    assert_close(w:totable(), ref.optimizers.sgd_plain.steps[1].w, "w")
    assert.matches("SGD %(1 parameter group, 2 parameters%)", tostring(opt))
  end)
end)

describe("state dicts", function()
  local configs = {"sgd_momentum_dampening", "adam_amsgrad", "adamw", "rmsprop_centered_momentum", "adam_groups"}

  -- Two steps, save, a fresh optimizer over copies of the parameters, load, three more steps.
  local function resumed(entry, save, load)
    local w, b, loss_fn = problem()
    local opt = build(entry, w, b)
    for _ = 1, 2 do train_step(opt, loss_fn) end
    local saved = save(opt)
    local w2 = cnn.tensor(w:totable()):requires_grad()
    local b2 = cnn.tensor(b:totable()):requires_grad()
    train_step(opt, loss_fn) -- the saved state must not follow the original optimizer
    local P = ref.problem
    local x, t = cnn.tensor(P.x), cnn.tensor(P.t)
    local function loss2() return ((x:matmul(w2) + b2 - t) ^ 2):mean() end
    local opt2 = build(entry, w2, b2)
    load(opt2, saved)
    for _ = 1, 3 do train_step(opt2, loss2) end
    return w2, b2
  end

  for _, name in ipairs(configs) do
    local entry = ref.optimizers[name]
    it("resume " .. name .. " exactly (state_dict)", function()
      local w, b = resumed(entry, function(opt) return opt:state_dict() end,
                           function(opt, s) opt:load_state_dict(s) end)
      assert_close(w:totable(), entry.steps[5].w, name .. " resumed w")
      assert_close(b:totable(), entry.steps[5].b, name .. " resumed b")
    end)
    it("resume " .. name .. " exactly (state_tensors)", function()
      local w, b = resumed(entry, function(opt)
        local tensors, meta = opt:state_tensors("optim.")
        local copies = {}
        for k, v in pairs(tensors) do copies[k] = v:clone() end
        copies["model.weight"] = cnn.zeros(1) -- other entries of the same file are ignored
        for k, v in pairs(meta) do assert.are.equal("string", type(v), k) end
        return {copies, meta}
      end, function(opt, s) opt:load_state_tensors(s[1], s[2], "optim.") end)
      assert_close(w:totable(), entry.steps[5].w, name .. " resumed w")
      assert_close(b:totable(), entry.steps[5].b, name .. " resumed b")
    end)
  end

  it("restores group options and holds plain values", function()
    local w, b, loss_fn = problem()
    local opt = cnn.optim.Adam({w, b}, {lr = 0.05, amsgrad = true})
    train_step(opt, loss_fn)
    opt.param_groups[1].lr = 0.125
    local s = opt:state_dict()
    assert.are.same({1, 2}, s.param_groups[1].params)
    assert.are.equal(0.125, s.param_groups[1].lr)
    assert.are.equal(1, s.state[2].step)
    assert.are.same({4}, s.state[2].exp_avg:shape())
    local opt2 = cnn.optim.Adam({w, b}, {lr = 0.05})
    opt2:load_state_dict(s)
    assert.are.equal(0.125, opt2.param_groups[1].lr)
    assert.is_true(opt2.param_groups[1].amsgrad)
    local tensors, meta = opt:state_tensors()
    assert.are.equal("Adam", meta.optimizer)
    assert.are.equal("n:1", meta["state.1.step"])
    assert.are.equal("b:true", meta["param_groups.1.amsgrad"])
    assert.are.equal("l:1,2", meta["param_groups.1.params"])
    assert.are.same({3, 4}, tensors["state.1.max_exp_avg_sq"]:shape())
  end)

  it("refuses state that does not fit, naming the parameter and the shapes", function()
    local w, b, loss_fn = problem()
    local opt = cnn.optim.Adam({w, b})
    train_step(opt, loss_fn)
    local good = opt:state_dict()
    local function variant(edit)
      local s = opt:state_dict()
      edit(s)
      return s
    end
    local other = cnn.optim.Adam({w, b})
    assert.matches("exp_avg of parameter 2 has shape 3 but the parameter has shape 4",
                   error_of(other.load_state_dict, other, variant(function(s) s.state[2].exp_avg = cnn.zeros(3) end)))
    assert.matches("the state has 2 parameter groups but the optimizer has 1",
                   error_of(other.load_state_dict, other, variant(function(s)
                     s.param_groups[2] = {params = {}}
                   end)))
    assert.matches("parameter group 1 has 1 parameters in the state but 2 in the optimizer",
                   error_of(other.load_state_dict, other, variant(function(s) s.param_groups[1].params = {1} end)))
    assert.matches("names parameter 7 but the optimizer has 2 parameters",
                   error_of(other.load_state_dict, other, variant(function(s) s.state[7] = s.state[1] end)))
    assert.matches("lr must be >= 0",
                   error_of(other.load_state_dict, other, variant(function(s) s.param_groups[1].lr = -1 end)))
    assert.matches("step of parameter 1 must be an integer",
                   error_of(other.load_state_dict, other, variant(function(s) s.state[1].step = 1.5 end)))
    assert.matches("expected a table with fields state and param_groups", error_of(other.load_state_dict, other, 42))
    local sgd = cnn.optim.SGD({w, b}, {momentum = 0.9})
    train_step(sgd, loss_fn)
    assert.matches("parameter 1 has state 'momentum_buffer', which Adam does not keep",
                   error_of(other.load_state_dict, other, sgd:state_dict()))
    local tensors, meta = sgd:state_tensors()
    assert.matches("holds SGD state, not Adam state", error_of(other.load_state_tensors, other, tensors, meta))
    meta.optimizer = nil
    meta["param_groups.1.lr"] = "x:1"
    assert.matches("without a known type tag", error_of(other.load_state_tensors, other, tensors, meta))
    -- A refused load leaves the optimizer as it was.
    assert.is_nil(next(other.state))
    other:load_state_dict(good)
    assert.are.equal(1, other.state[1].step)
  end)

  it("reports state tampered with between steps by parameter position", function()
    local w, b, loss_fn = problem()
    local opt = cnn.optim.Adam({{params = {w}}, {params = {b}}})
    train_step(opt, loss_fn)
    opt.state[2].exp_avg = cnn.zeros(5)
    loss_fn():backward()
    assert.matches("adam: exp_avg of parameter 2 has shape 5 but the parameter has shape 4", error_of(opt.step, opt))
    local rms = cnn.optim.RMSprop({w, b}, {momentum = 0.5})
    train_step(rms, loss_fn)
    rms.state[1].momentum_buffer = cnn.zeros(4, 3)
    assert.matches("momentum_buffer of parameter 1 has shape 4x3 but the parameter has shape 3x4",
                   error_of(rms.step, rms))
  end)
end)

describe("option errors", function()
  local w, b = problem()

  it("name the optimizer, the option and the caller's line", function()
    local msg = error_of(cnn.optim.SGD, {w}, {lr = 0.1, momentun = 0.9})
    assert.matches("SGD: unknown option 'momentun'", msg)
    msg = error_of(function()
      local opt = cnn.optim.SGD({w}, {lr = -1})
      return opt
    end)
    assert.matches("optim_spec.lua:%d+: SGD: parameter group 1: lr must be >= 0 %(got %-1%)", msg)
    assert.matches("nesterov momentum requires momentum > 0 and dampening 0",
                   error_of(cnn.optim.SGD, {w}, {nesterov = true}))
    assert.matches("betas%[1%] must be in %[0, 1%) %(got 1%)", error_of(cnn.optim.Adam, {w}, {betas = {1, 0.9}}))
    assert.matches("betas must be a table of two numbers", error_of(cnn.optim.AdamW, {w}, {betas = 0.9}))
    assert.matches("alpha must be >= 0", error_of(cnn.optim.RMSprop, {w}, {alpha = -0.5}))
    assert.matches("centered must be a boolean", error_of(cnn.optim.RMSprop, {w}, {centered = 1}))
    assert.matches("lr must be a number", error_of(cnn.optim.Adam, {w}, {lr = "fast"}))
  end)

  it("describe bad parameter lists", function()
    assert.matches("got an empty parameter list", error_of(cnn.optim.SGD, {}))
    assert.matches("params must be an array", error_of(cnn.optim.SGD, w))
    assert.matches("params%[2%] is a number, not a tensor", error_of(cnn.optim.SGD, {w, 3}))
    assert.matches("params%[2%] appears more than once", error_of(cnn.optim.SGD, {w, w}))
    assert.matches("parameter group 2: params%[1%] appears more than once",
                   error_of(cnn.optim.SGD, {{params = {w}}, {params = {w, b}}}))
    assert.matches("parameter group 1 must be a table with a params array", error_of(cnn.optim.SGD, {{lr = 1}}))
  end)

  it("are raised by the runtime when options go bad between steps", function()
    local w2, b2, loss_fn = problem()
    local opt = cnn.optim.RMSprop({w2, b2})
    opt.param_groups[1].eps = -1
    loss_fn():backward()
    assert.matches("rmsprop: eps must be >= 0", error_of(opt.step, opt))
  end)
end)

describe("schedules", function()
  local function sgd(lrs)
    local groups = {}
    for i, lr in ipairs(lrs) do groups[i] = {params = {cnn.zeros(1):requires_grad()}, lr = lr} end
    return cnn.optim.SGD(groups, {momentum = 0.9})
  end

  it("resume from a state dict", function()
    local opt = sgd({0.1, 0.01})
    local sched = cnn.optim.lr.cosine(opt, {t_max = 8})
    for _ = 1, 3 do sched:step() end
    local s = sched:state_dict()
    local opt2 = sgd({0.1, 0.01})
    local sched2 = cnn.optim.lr.cosine(opt2, {t_max = 8})
    sched2:load_state_dict(s)
    for _ = 1, 2 do
      sched:step()
      sched2:step()
    end
    assert.are.same(sched:get_lr(), sched2:get_lr())
    assert.are.equal(opt.param_groups[2].lr, opt2.param_groups[2].lr)
    assert.matches("belongs to a lr.cosine schedule",
                   error_of(cnn.optim.lr.step(sgd({1}), {step_size = 2}).load_state_dict,
                            cnn.optim.lr.step(sgd({1}), {step_size = 2}), s))
  end)

  it("keep the first base lr when schedules are stacked and accept a lambda", function()
    local opt = sgd({0.2})
    cnn.optim.lr.exponential(opt, {gamma = 0.5}):step()
    assert.are.equal(0.1, opt.param_groups[1].lr)
    local sched = cnn.optim.lr.lambda(opt, {factor = function(e) return 1 / (e + 1) end})
    assert.are.equal(0.2, opt.param_groups[1].lr)
    sched:step()
    assert.are.equal(0.1, sched:get_lr()[1])
  end)

  it("refuse bad options and steps past the end", function()
    local lr = cnn.optim.lr
    assert.matches("lr.step: option step_size is required", error_of(lr.step, sgd({1}), {}))
    assert.matches("step_size must be a positive integer %(got 1.5%)", error_of(lr.step, sgd({1}), {step_size = 1.5}))
    assert.matches("lr.cosine: unknown option 'tmax'", error_of(lr.cosine, sgd({1}), {tmax = 3}))
    assert.matches("milestones%[2%] must be an integer", error_of(lr.multi_step, sgd({1}), {milestones = {1, "x"}}))
    assert.matches("start_factor must be in %(0, 1%]",
                   error_of(lr.linear_warmup, sgd({1}), {warmup_steps = 3, start_factor = 0}))
    assert.matches("the first argument must be an optimizer", error_of(lr.exponential, {}, {gamma = 0.5}))
    assert.matches("max_lr must be a number or an array of 2 numbers",
                   error_of(lr.one_cycle, sgd({1, 2}), {max_lr = {1}, total_steps = 5}))
    assert.matches("anneal must be", error_of(lr.one_cycle, sgd({1}), {max_lr = 1, total_steps = 5, anneal = "exp"}))
    local opt = sgd({1})
    local sched = lr.one_cycle(opt, {max_lr = 1, total_steps = 2})
    sched:step()
    sched:step()
    local last = opt.param_groups[1].lr
    assert.matches("stepped 3 times but total_steps is 2", error_of(sched.step, sched))
    assert.are.equal(last, opt.param_groups[1].lr)
    assert.matches("no momentum or betas to cycle",
                   error_of(lr.one_cycle, {param_groups = {{lr = 1}}}, {max_lr = 1, total_steps = 5}))
  end)
end)
