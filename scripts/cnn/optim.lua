-- cnn.optim - optimizers in the manner of torch.optim: SGD, Adam, AdamW and RMSprop, with parameter
-- groups, state dicts and learning-rate schedules (cnn.optim.lr, in cnn/optim/lr.lua).
--
--   local opt = cnn.optim.Adam(model:parameters(), {lr=1e-3})
--   opt:zero_grad(); loss:backward(); opt:step()
--
-- The update of each parameter is one fused loop in the runtime (cnn._sgd_step and friends); this
-- file owns what is clearer in Lua: the groups, the per-parameter state and its (de)serialisation.
--
-- Parameters are given as an array of tensors or as an array of groups
-- { {params = {...}, lr = ...}, {params = {...}} } whose missing options come from the options
-- table and then from the optimizer's defaults. opt.param_groups holds the groups (plain tables:
-- schedules and users may change their options between steps).
--
-- State is kept per parameter, indexed by the parameter's position across all groups (1, 2, ...):
--   SGD      {momentum_buffer}                          (none while momentum is 0)
--   Adam(W)  {step, exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad only)}
--   RMSprop  {step, square_avg, momentum_buffer (momentum > 0), grad_avg (centered)}
-- State tensors are created as zeros of the parameter's shape the first time it has a gradient.
--
-- Saving:
--   opt:state_dict()            -> {state = {[i] = {step=, exp_avg=tensor, ...}},
--                                   param_groups = {{lr=..., params={1, 2}}, ...}}   (copies)
--   opt:load_state_dict(s)      validates the groups and every state tensor's shape, then copies
--   opt:state_tensors(prefix)   -> tensors, meta: the same content flattened for a safetensors file.
--       tensors = {[prefix.."state.3.exp_avg"] = tensor, ...}   (the live tensors, not copies)
--       meta    = {[prefix.."optimizer"] = "Adam", [prefix.."state.3.step"] = "n:2",
--                  [prefix.."param_groups.1.lr"] = "n:0.001", [prefix.."param_groups.1.params"] = "l:1,2",
--                  [prefix.."param_groups.1.amsgrad"] = "b:false", ...}
--       Every meta value is a string tagged with its type: n: number, b: boolean, s: string,
--       l: comma-separated numbers.
--   opt:load_state_tensors(tensors, meta, prefix) reads them back (keys without the prefix are
--       ignored, so one file may also hold the model).
local cnn = require "cnn"

local optim = {}

local common = require "cnn.common"
common.register_source()

local is_tensor, shape_str, same_shape = common.is_tensor, common.shape_str, common.same_shape
local copy_option, fail = common.copy_option, common.fail

-- A fresh contiguous tensor holding t's values (state is always owned by the optimizer).
local function owned_copy(t)
  local c = cnn.zeros(t:shape())
  c:copy(t)
  return c
end

-- ---- the optimizer base -----------------------------------------------------------------------------

local Optimizer = {}
Optimizer.__index = Optimizer
optim.Optimizer = Optimizer

-- Each optimizer is a class table: cnn.optim.SGD(params, options) makes an instance.
--   spec.defaults     the options and their default values
--   spec.state_names  the state tensors it may keep per parameter
--   spec.validate(group)            raises an error for bad option values
--   spec.update(opt, group, first)  updates the group's parameters; first is the global position
--                                   of the group's first parameter
function optim.define(name, spec)
  local class = {name = name, defaults = spec.defaults, state_names = {}, validate = spec.validate,
                 update = spec.update}
  for _, n in ipairs(spec.state_names) do class.state_names[n] = true end
  class.__index = class
  class.__tostring = Optimizer.__tostring
  return setmetatable(class, {
    __index = Optimizer,
    __call = function(cls, params, options) return Optimizer.new(cls, params, options) end,
  })
end

function Optimizer.new(class, params, options)
  local name = class.name
  options = options or {}
  if type(options) ~= "table" then fail("%s: options must be a table", name) end
  local defaults = {}
  for k, v in pairs(class.defaults) do defaults[k] = copy_option(v) end
  for k, v in pairs(options) do
    if class.defaults[k] == nil then fail("%s: unknown option '%s'", name, tostring(k)) end
    defaults[k] = copy_option(v)
  end
  local self = setmetatable({defaults = defaults, param_groups = {}, state = {}}, class)
  if type(params) ~= "table" or is_tensor(params) then
    fail("%s: params must be an array of tensors or of parameter groups", name)
  end
  if #params == 0 then fail("%s: got an empty parameter list", name) end
  if is_tensor(params[1]) then
    self:add_param_group({params = params})
  else
    for _, g in ipairs(params) do self:add_param_group(g) end
  end
  return self
end

-- Adds a group {params = {...}, option = value, ...}; its missing options come from opt.defaults.
function Optimizer:add_param_group(g)
  local name = self.name
  local gi = #self.param_groups + 1
  if type(g) ~= "table" or type(g.params) ~= "table" then
    fail("%s: parameter group %d must be a table with a params array", name, gi)
  end
  local group = {}
  for k, v in pairs(g) do group[k] = copy_option(v) end
  local list = is_tensor(g.params) and {g.params} or g.params
  local seen = {}
  for _, other in ipairs(self.param_groups) do
    for _, p in ipairs(other.params) do seen[p] = true end
  end
  group.params = {}
  for j, p in ipairs(list) do
    if not is_tensor(p) then
      fail("%s: parameter group %d: params[%d] is a %s, not a tensor", name, gi, j, type(p))
    end
    if seen[p] then fail("%s: parameter group %d: params[%d] appears more than once", name, gi, j) end
    seen[p] = true
    group.params[j] = p
  end
  if #group.params == 0 then fail("%s: parameter group %d has no parameters", name, gi) end
  for k, v in pairs(self.defaults) do
    if group[k] == nil then group[k] = copy_option(v) end
  end
  local ok, err = pcall(self.validate, group)
  if not ok then fail("%s: parameter group %d: %s", name, gi, err) end
  self.param_groups[gi] = group
end

-- All parameters in order; their positions index opt.state.
function Optimizer:parameters()
  local list = {}
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do list[#list + 1] = p end
  end
  return list
end

-- Clears every parameter's gradient (set_to_none = false fills existing gradients with zeros instead).
function Optimizer:zero_grad(set_to_none)
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do
      if set_to_none == false then
        local g = p.grad
        if g ~= nil then g:fill(0) end
      else
        p.grad = nil
      end
    end
  end
end

-- Updates every parameter that has a gradient. closure, when given, is called first (it typically
-- recomputes the loss and its gradients) and its result is returned.
function Optimizer:step(closure)
  local loss
  if closure ~= nil then loss = closure() end
  local first = 1
  for _, group in ipairs(self.param_groups) do
    self.update(self, group, first)
    first = first + #group.params
  end
  return loss
end

function Optimizer:__tostring()
  local n = 0
  for _, group in ipairs(self.param_groups) do n = n + #group.params end
  return string.format("%s (%d parameter group%s, %d parameter%s)", self.name, #self.param_groups,
                       #self.param_groups == 1 and "" or "s", n, n == 1 and "" or "s")
end

-- ---- state dicts --------------------------------------------------------------------------------------

function Optimizer:state_dict()
  local state = {}
  for id, st in pairs(self.state) do
    local copy = {}
    for k, v in pairs(st) do copy[k] = is_tensor(v) and owned_copy(v) or copy_option(v) end
    state[id] = copy
  end
  local groups, first = {}, 1
  for gi, group in ipairs(self.param_groups) do
    local g = {params = {}}
    for k, v in pairs(group) do
      if k ~= "params" and not is_tensor(v) and type(v) ~= "function" then g[k] = copy_option(v) end
    end
    for j = 1, #group.params do g.params[j] = first + j - 1 end
    first = first + #group.params
    groups[gi] = g
  end
  return {state = state, param_groups = groups}
end

-- Loads a state dict made by state_dict() of an optimizer of the same kind over parameters of the
-- same shapes, group by group. Nothing changes when the state is refused.
function Optimizer:load_state_dict(s)
  local name = self.name .. ":load_state_dict"
  if type(s) ~= "table" or type(s.state) ~= "table" or type(s.param_groups) ~= "table" then
    fail("%s: expected a table with fields state and param_groups", name)
  end
  if #s.param_groups ~= #self.param_groups then
    fail("%s: the state has %d parameter groups but the optimizer has %d", name, #s.param_groups,
         #self.param_groups)
  end
  local new_groups = {}
  for gi, saved in ipairs(s.param_groups) do
    local group = self.param_groups[gi]
    if type(saved) ~= "table" then fail("%s: parameter group %d is not a table", name, gi) end
    local n_saved = type(saved.params) == "table" and #saved.params or 0
    if n_saved ~= #group.params then
      fail("%s: parameter group %d has %d parameters in the state but %d in the optimizer", name, gi,
           n_saved, #group.params)
    end
    local merged = {}
    for k, v in pairs(group) do merged[k] = v end
    for k, v in pairs(saved) do
      if k ~= "params" then merged[k] = copy_option(v) end
    end
    local ok, err = pcall(self.validate, merged)
    if not ok then fail("%s: parameter group %d: %s", name, gi, err) end
    new_groups[gi] = merged
  end
  local params = self:parameters()
  local new_state = {}
  for id, saved in pairs(s.state) do
    if math.type(id) ~= "integer" or id < 1 or id > #params then
      fail("%s: the state names parameter %s but the optimizer has %d parameters", name, tostring(id),
           #params)
    end
    if type(saved) ~= "table" then fail("%s: the state of parameter %d is not a table", name, id) end
    local p, st = params[id], {}
    for k, v in pairs(saved) do
      if is_tensor(v) then
        if not self.state_names[k] then
          fail("%s: parameter %d has state '%s', which %s does not keep", name, id, tostring(k), self.name)
        end
        if not same_shape(v, p) then
          fail("%s: %s of parameter %d has shape %s but the parameter has shape %s", name, k, id,
               shape_str(v), shape_str(p))
        end
        st[k] = owned_copy(v)
      elseif k == "step" then
        if math.type(v) ~= "integer" or v < 0 then
          fail("%s: the step of parameter %d must be an integer >= 0 (got %s)", name, id, tostring(v))
        end
        st.step = v
      else
        fail("%s: parameter %d has state '%s' of type %s, which %s does not keep", name, id, tostring(k),
             type(v), self.name)
      end
    end
    new_state[id] = st
  end
  self.param_groups = new_groups
  self.state = new_state
end

-- Typed strings for safetensors metadata (which holds string values only).
local function encode(v)
  local kind = math.type(v)
  if kind == "integer" then return "n:" .. string.format("%d", v) end
  if kind == "float" then
    if v ~= v then return "n:nan" end
    if v == math.huge then return "n:inf" end
    if v == -math.huge then return "n:-inf" end
    return "n:" .. string.format("%.17g", v)
  end
  if type(v) == "boolean" then return "b:" .. tostring(v) end
  if type(v) == "string" then return "s:" .. v end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do
      if type(x) ~= "number" then return nil end
      parts[i] = encode(x):sub(3)
    end
    return "l:" .. table.concat(parts, ",")
  end
  return nil -- not representable: left out
end

local special_numbers = {inf = math.huge, ["-inf"] = -math.huge, nan = 0 / 0}

local function decode_number(text, key)
  local v = special_numbers[text] or tonumber(text)
  if v == nil then error(string.format("'%s' holds '%s', which is not a number", key, text), 0) end
  return v
end

local function decode(text, key)
  if type(text) ~= "string" then error(string.format("'%s' is not a string", key), 0) end
  local tag, body = text:sub(1, 2), text:sub(3)
  if tag == "n:" then return decode_number(body, key) end
  if tag == "b:" then
    if body ~= "true" and body ~= "false" then error(string.format("'%s' holds a bad boolean", key), 0) end
    return body == "true"
  end
  if tag == "s:" then return body end
  if tag == "l:" then
    local list = {}
    for part in body:gmatch("[^,]+") do list[#list + 1] = decode_number(part, key) end
    return list
  end
  error(string.format("'%s' holds '%s' without a known type tag", key, text), 0)
end

function Optimizer:state_tensors(prefix)
  prefix = prefix or ""
  local tensors, meta = {}, {}
  meta[prefix .. "optimizer"] = self.name
  for id, st in pairs(self.state) do
    for k, v in pairs(st) do
      local key = string.format("%sstate.%d.%s", prefix, id, k)
      if is_tensor(v) then tensors[key] = v else meta[key] = encode(v) end
    end
  end
  for gi, g in ipairs(self:state_dict().param_groups) do
    for k, v in pairs(g) do
      meta[string.format("%sparam_groups.%d.%s", prefix, gi, k)] = encode(v)
    end
  end
  return tensors, meta
end

function Optimizer:load_state_tensors(tensors, meta, prefix)
  local name = self.name .. ":load_state_tensors"
  prefix = prefix or ""
  if type(tensors) ~= "table" or type(meta) ~= "table" then fail("%s: expected two tables", name) end
  local kind = meta[prefix .. "optimizer"]
  if kind ~= nil and kind ~= self.name then
    fail("%s: the checkpoint holds %s state, not %s state", name, tostring(kind), self.name)
  end
  local s = {state = {}, param_groups = {}}
  local function state_of(id)
    id = math.tointeger(tonumber(id))
    s.state[id] = s.state[id] or {}
    return s.state[id]
  end
  for key, t in pairs(tensors) do
    if type(key) == "string" and key:sub(1, #prefix) == prefix then
      local id, field = key:sub(#prefix + 1):match("^state%.(%d+)%.([%w_]+)$")
      if not id then fail("%s: unexpected tensor '%s'", name, key) end
      if not is_tensor(t) then fail("%s: '%s' is not a tensor", name, key) end
      state_of(id)[field] = t
    end
  end
  for key, text in pairs(meta) do
    if type(key) == "string" and key:sub(1, #prefix) == prefix then
      local rest = key:sub(#prefix + 1)
      local id, field = rest:match("^state%.(%d+)%.([%w_]+)$")
      local gi, option = rest:match("^param_groups%.(%d+)%.([%w_]+)$")
      local ok, value = true, nil
      if id or gi then ok, value = pcall(decode, text, key) end
      if not ok then fail("%s: %s", name, value) end
      if id then
        state_of(id)[field] = math.tointeger(value) or value
      elseif gi then
        gi = math.tointeger(tonumber(gi))
        s.param_groups[gi] = s.param_groups[gi] or {}
        s.param_groups[gi][option] = value
      end
    end
  end
  local n = 0
  for _ in pairs(s.param_groups) do n = n + 1 end
  if n ~= #s.param_groups then fail("%s: the parameter groups are not numbered 1..%d", name, n) end
  self:load_state_dict(s)
end

-- ---- update helpers ---------------------------------------------------------------------------------

-- Option checks raise bare messages; the caller adds the optimizer and group.
local function check_number(group, key, low, high, label)
  local v = group[key]
  label = label or key
  if type(v) ~= "number" then error(string.format("%s must be a number (got %s)", label, type(v)), 0) end
  if not (v >= low) or (high and not (v < high)) then
    error(string.format("%s must be %s (got %s)", label,
                        high and string.format("in [%g, %g)", low, high) or string.format(">= %g", low),
                        tostring(v)), 0)
  end
end

local function check_boolean(group, key)
  if type(group[key]) ~= "boolean" then
    error(string.format("%s must be a boolean (got %s)", key, type(group[key])), 0)
  end
end

-- The group's parameters that have a gradient, with their positions and their state tables
-- (created empty when missing, unless keep_state is false).
local function with_grads(opt, group, first, keep_state)
  local params, ids, states = {}, {}, {}
  for j, p in ipairs(group.params) do
    if p.grad ~= nil then
      local id = first + j - 1
      local st = opt.state[id]
      if st == nil and keep_state ~= false then
        st = {}
        opt.state[id] = st
      end
      local n = #params + 1
      params[n], ids[n], states[n] = p, id, st
    end
  end
  return params, ids, states
end

-- The named state tensor of each parameter, created as zeros when missing.
local function state_list(params, states, key)
  local list = {}
  for i, st in ipairs(states) do
    local t = st[key]
    if t == nil then
      t = cnn.zeros(params[i]:shape())
      st[key] = t
    end
    list[i] = t
  end
  return list
end

-- Partitions parallel arrays by key(i): {[key] = {indices}} with keys in first-seen order.
local function partition(n, key)
  local order, parts = {}, {}
  for i = 1, n do
    local k = key(i)
    if parts[k] == nil then
      parts[k] = {}
      order[#order + 1] = k
    end
    table.insert(parts[k], i)
  end
  return order, parts
end

local function pick(list, indices)
  local out = {}
  for i, j in ipairs(indices) do out[i] = list[j] end
  return out
end

-- ---- SGD ----------------------------------------------------------------------------------------------

local function sgd_validate(g)
  check_number(g, "lr", 0)
  check_number(g, "momentum", 0)
  check_number(g, "dampening", -math.huge)
  check_number(g, "weight_decay", 0)
  check_boolean(g, "nesterov")
  check_boolean(g, "maximize")
  if g.nesterov and (g.momentum <= 0 or g.dampening ~= 0) then
    error("nesterov momentum requires momentum > 0 and dampening 0", 0)
  end
end

local function sgd_update(opt, group, first)
  local params, ids, states = with_grads(opt, group, first, group.momentum ~= 0)
  if #params == 0 then return end
  if group.momentum == 0 then
    cnn._sgd_step(params, nil, group, false, ids)
    return
  end
  -- A fresh momentum buffer starts as the gradient itself, so fresh and running buffers are
  -- updated by separate calls; a fresh buffer is kept only once its step has succeeded.
  local order, parts = partition(#params, function(i) return states[i].momentum_buffer == nil end)
  for _, fresh in ipairs(order) do
    local idx = parts[fresh]
    local sub_params, sub_states = pick(params, idx), pick(states, idx)
    local buffers = {}
    for i, st in ipairs(sub_states) do
      buffers[i] = st.momentum_buffer or cnn.zeros(sub_params[i]:shape())
    end
    cnn._sgd_step(sub_params, buffers, group, fresh, pick(ids, idx))
    for i, st in ipairs(sub_states) do st.momentum_buffer = buffers[i] end
  end
end

optim.SGD = optim.define("SGD", {
  defaults = {lr = 0.01, momentum = 0, dampening = 0, nesterov = false, weight_decay = 0, maximize = false},
  state_names = {"momentum_buffer"},
  validate = sgd_validate,
  update = sgd_update,
})

-- ---- Adam and AdamW -------------------------------------------------------------------------------------

local function adam_validate(g)
  check_number(g, "lr", 0)
  check_number(g, "eps", 0)
  check_number(g, "weight_decay", 0)
  if type(g.betas) ~= "table" or type(g.betas[1]) ~= "number" or type(g.betas[2]) ~= "number" then
    error("betas must be a table of two numbers {beta1, beta2}", 0)
  end
  check_number(g.betas, 1, 0, 1, "betas[1]")
  check_number(g.betas, 2, 0, 1, "betas[2]")
  check_boolean(g, "amsgrad")
  check_boolean(g, "maximize")
  check_boolean(g, "decoupled_weight_decay")
end

local function adam_update(opt, group, first)
  local params, ids, states = with_grads(opt, group, first)
  if #params == 0 then return end
  local exp_avg = state_list(params, states, "exp_avg")
  local exp_avg_sq = state_list(params, states, "exp_avg_sq")
  local max_exp_avg_sq = group.amsgrad and state_list(params, states, "max_exp_avg_sq") or nil
  -- Bias correction depends on each parameter's own step count, which differ only for parameters
  -- that went without gradients for a while: one call per distinct count.
  local order, parts = partition(#params, function(i) return (states[i].step or 0) + 1 end)
  for _, step in ipairs(order) do
    local idx = parts[step]
    cnn._adam_step(pick(params, idx), pick(exp_avg, idx), pick(exp_avg_sq, idx),
                   max_exp_avg_sq and pick(max_exp_avg_sq, idx), step, group, pick(ids, idx))
    for _, i in ipairs(idx) do states[i].step = step end
  end
end

local function adam_spec(weight_decay, decoupled)
  return {
    defaults = {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = weight_decay, amsgrad = false,
                maximize = false, decoupled_weight_decay = decoupled},
    state_names = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    validate = adam_validate,
    update = adam_update,
  }
end

optim.Adam = optim.define("Adam", adam_spec(0, false))
-- AdamW is Adam with decoupled weight decay (p = p * (1 - lr * weight_decay) before the update).
optim.AdamW = optim.define("AdamW", adam_spec(1e-2, true))

-- ---- RMSprop --------------------------------------------------------------------------------------------

local function rmsprop_validate(g)
  check_number(g, "lr", 0)
  check_number(g, "alpha", 0)
  check_number(g, "eps", 0)
  check_number(g, "weight_decay", 0)
  check_number(g, "momentum", 0)
  check_boolean(g, "centered")
  check_boolean(g, "maximize")
end

local function rmsprop_update(opt, group, first)
  local params, ids, states = with_grads(opt, group, first)
  if #params == 0 then return end
  local square_avg = state_list(params, states, "square_avg")
  local buffers = group.momentum > 0 and state_list(params, states, "momentum_buffer") or nil
  local grad_avg = group.centered and state_list(params, states, "grad_avg") or nil
  cnn._rmsprop_step(params, square_avg, buffers, grad_avg, group, ids)
  for _, st in ipairs(states) do st.step = (st.step or 0) + 1 end
end

optim.RMSprop = optim.define("RMSprop", {
  defaults = {lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0, centered = false,
              maximize = false},
  state_names = {"square_avg", "momentum_buffer", "grad_avg"},
  validate = rmsprop_validate,
  update = rmsprop_update,
})

optim.lr = require "cnn.optim.lr"

return optim
