-- cnn.optim.lr - learning-rate schedules, computed in PyTorch's closed forms from each parameter
-- group's base learning rate.
--
--   local sched = cnn.optim.lr.cosine(opt, {t_max = 100})
--   for epoch = 1, 100 do train_one_epoch(); sched:step() end
--
-- Creating a schedule writes the lr of step 0 into every group; sched:step() advances one unit (an
-- epoch or a batch, as the caller decides) and writes the new lr. With e the steps taken so far and
-- base the group's lr when the first schedule was attached (kept in group.initial_lr):
--   step(opt, {step_size, gamma=0.1})            base * gamma^floor(e / step_size)
--   multi_step(opt, {milestones, gamma=0.1})     base * gamma^(number of milestones <= e)
--   exponential(opt, {gamma})                    base * gamma^e
--   cosine(opt, {t_max, eta_min=0})              eta_min + (base - eta_min) * (1 + cos(pi * e / t_max)) / 2
--   linear_warmup(opt, {warmup_steps, start_factor=1/3, end_factor=1})
--                                                base * (start + (end - start) * min(e, warmup_steps) / warmup_steps)
--   lambda(opt, {factor = function(e) ... end})  base * factor(e)
--   one_cycle(opt, {max_lr, total_steps, pct_start=0.3, div_factor=25, final_div_factor=1e4,
--                   anneal="cos"|"linear", three_phase=false, cycle_momentum=true,
--                   base_momentum=0.85, max_momentum=0.95})
--       rises from max_lr / div_factor to max_lr over the first pct_start of total_steps, then
--       anneals to max_lr / div_factor / final_div_factor (Smith's 1cycle policy, as PyTorch's
--       OneCycleLR). max_lr may be one number or one per group. Like PyTorch, it also cycles the
--       momentum (SGD, RMSprop) or beta1 (Adam) inversely between max_momentum and base_momentum
--       unless cycle_momentum is false. Stepping past total_steps is an error.
--
-- sched:get_lr() (alias get_last_lr) returns the current lr of every group as an array;
-- sched:state_dict() / sched:load_state_dict(s) save and restore the position in the schedule.
local common = require "cnn.common"
common.register_source()

local fail = common.fail

local lr = {}

local Scheduler = {}
Scheduler.__index = Scheduler
lr.Scheduler = Scheduler

-- ---- option checks --------------------------------------------------------------------------------

local function check_known(name, options, known)
  if type(options) ~= "table" then fail("%s: options must be a table", name) end
  for k in pairs(options) do
    if not known[k] then fail("%s: unknown option '%s'", name, tostring(k)) end
  end
end

local function number_option(name, options, key, default, check, requirement)
  local v = options[key]
  if v == nil then v = default end
  if v == nil then fail("%s: option %s is required", name, key) end
  if type(v) ~= "number" or (check and not check(v)) then
    fail("%s: %s must be %s (got %s)", name, key, requirement or "a number", tostring(v))
  end
  return v
end

local function positive_integer(v) return math.type(v) == "integer" and v > 0 end
local function positive(v) return v > 0 end
local function finite(v) return v == v and v > -math.huge and v < math.huge end

-- ---- the scheduler ------------------------------------------------------------------------------------

-- formula(self, i, group, e) -> the lr of group i after e steps (and may set its momentum).
local function new_scheduler(name, opt, formula, fields)
  local self = setmetatable(fields or {}, Scheduler)
  self.name, self.optimizer, self.formula, self.last_epoch = name, opt, formula, 0
  self.base_lrs = {}
  for i, group in ipairs(opt.param_groups) do
    if group.initial_lr == nil then group.initial_lr = group.lr end
    self.base_lrs[i] = group.initial_lr
  end
  self:_apply(0)
  return self
end

-- Defines lr[key](opt, options): setup(name, options, opt) checks the options and returns the
-- formula (and optionally extra fields for the scheduler).
local function define(key, known, setup)
  local name = "lr." .. key
  lr[key] = function(opt, options)
    options = options or {}
    check_known(name, options, known)
    if type(opt) ~= "table" or type(opt.param_groups) ~= "table" or #opt.param_groups == 0 then
      fail("%s: the first argument must be an optimizer", name)
    end
    local formula, fields = setup(name, options, opt)
    return new_scheduler(name, opt, formula, fields)
  end
end

-- Computes every group's lr at step e before writing any, so that a refused step changes nothing.
function Scheduler:_apply(e)
  local groups = self.optimizer.param_groups
  if #groups ~= #self.base_lrs then
    fail("%s: the optimizer has %d parameter groups but the schedule was made for %d", self.name, #groups,
         #self.base_lrs)
  end
  local lrs = {}
  for i, group in ipairs(groups) do lrs[i] = self:formula(i, group, e) end
  for i, group in ipairs(groups) do group.lr = lrs[i] end
  self.last_epoch, self.last_lrs = e, lrs
end

function Scheduler:step()
  self:_apply(self.last_epoch + 1)
  return self
end

function Scheduler:get_lr()
  return table.move(self.last_lrs, 1, #self.last_lrs, 1, {})
end
Scheduler.get_last_lr = Scheduler.get_lr

function Scheduler:state_dict()
  return {name = self.name, last_epoch = self.last_epoch,
          base_lrs = table.move(self.base_lrs, 1, #self.base_lrs, 1, {})}
end

function Scheduler:load_state_dict(s)
  local name = self.name .. ":load_state_dict"
  if type(s) ~= "table" then fail("%s: expected a table", name) end
  if s.name ~= self.name then fail("%s: the state belongs to a %s schedule", name, tostring(s.name)) end
  if math.type(s.last_epoch) ~= "integer" or s.last_epoch < 0 then
    fail("%s: last_epoch must be an integer >= 0 (got %s)", name, tostring(s.last_epoch))
  end
  if type(s.base_lrs) ~= "table" or #s.base_lrs ~= #self.base_lrs then
    fail("%s: the state has %s base lrs but the schedule has %d groups", name,
         type(s.base_lrs) == "table" and tostring(#s.base_lrs) or "no", #self.base_lrs)
  end
  for i, v in ipairs(s.base_lrs) do
    if type(v) ~= "number" then fail("%s: base_lrs[%d] is not a number", name, i) end
  end
  local saved = self.base_lrs
  self.base_lrs = table.move(s.base_lrs, 1, #s.base_lrs, 1, {})
  local ok, err = pcall(self._apply, self, s.last_epoch)
  if not ok then
    self.base_lrs = saved
    error(err, 0)
  end
end

function Scheduler:__tostring()
  return string.format("%s schedule at step %d (lr %s)", self.name, self.last_epoch,
                       table.concat(self.last_lrs, ", "))
end

-- ---- the schedules --------------------------------------------------------------------------------------

define("step", {step_size = true, gamma = true}, function(name, options)
  local step_size = number_option(name, options, "step_size", nil, positive_integer, "a positive integer")
  local gamma = number_option(name, options, "gamma", 0.1, finite)
  return function(self, i, _, e) return self.base_lrs[i] * gamma ^ (e // step_size) end
end)

define("multi_step", {milestones = true, gamma = true}, function(name, options)
  if type(options.milestones) ~= "table" then fail("%s: milestones must be an array of step numbers", name) end
  local milestones = {}
  for i, m in ipairs(options.milestones) do
    if math.type(m) ~= "integer" or m < 0 then
      fail("%s: milestones[%d] must be an integer >= 0 (got %s)", name, i, tostring(m))
    end
    milestones[i] = m
  end
  local gamma = number_option(name, options, "gamma", 0.1, finite)
  return function(self, i, _, e)
    local passed = 0
    for _, m in ipairs(milestones) do
      if m <= e then passed = passed + 1 end
    end
    return self.base_lrs[i] * gamma ^ passed
  end
end)

define("exponential", {gamma = true}, function(name, options)
  local gamma = number_option(name, options, "gamma", nil, finite)
  return function(self, i, _, e) return self.base_lrs[i] * gamma ^ e end
end)

define("cosine", {t_max = true, eta_min = true}, function(name, options)
  local t_max = number_option(name, options, "t_max", nil, positive, "a positive number")
  local eta_min = number_option(name, options, "eta_min", 0, finite)
  return function(self, i, _, e)
    return eta_min + (self.base_lrs[i] - eta_min) * (1 + math.cos(math.pi * e / t_max)) / 2
  end
end)

define("linear_warmup", {warmup_steps = true, start_factor = true, end_factor = true}, function(name, options)
  local steps = number_option(name, options, "warmup_steps", nil, positive_integer, "a positive integer")
  local start_factor = number_option(name, options, "start_factor", 1 / 3,
                                     function(v) return v > 0 and v <= 1 end, "in (0, 1]")
  local end_factor = number_option(name, options, "end_factor", 1,
                                   function(v) return v >= 0 and v <= 1 end, "in [0, 1]")
  return function(self, i, _, e)
    return self.base_lrs[i] * (start_factor + (end_factor - start_factor) * math.min(e, steps) / steps)
  end
end)

define("lambda", {factor = true}, function(name, options)
  local factor = options.factor
  if type(factor) ~= "function" then fail("%s: factor must be a function of the step", name) end
  return function(self, i, _, e)
    local f = factor(e)
    if type(f) ~= "number" then fail("%s: factor(%d) returned a %s, not a number", name, e, type(f)) end
    return self.base_lrs[i] * f
  end
end)

-- A per-group value: one number for all groups or an array with one per group.
local function per_group(name, key, value, n)
  if type(value) == "number" then
    local list = {}
    for i = 1, n do list[i] = value end
    return list
  end
  if type(value) ~= "table" or #value ~= n then
    fail("%s: %s must be a number or an array of %d numbers, one per parameter group", name, key, n)
  end
  for i = 1, n do
    if type(value[i]) ~= "number" then fail("%s: %s[%d] is not a number", name, key, i) end
  end
  return value
end

local function anneal_cos(start, stop, pct) return stop + (start - stop) / 2 * (math.cos(math.pi * pct) + 1) end
local function anneal_linear(start, stop, pct) return (stop - start) * pct + start end

local function one_cycle(name, options, opt)
  local groups = opt.param_groups
  local total
  if options.total_steps ~= nil or options.epochs == nil then
    total = number_option(name, options, "total_steps", nil, positive_integer, "a positive integer")
  else
    local epochs = number_option(name, options, "epochs", nil, positive_integer, "a positive integer")
    total = epochs * number_option(name, options, "steps_per_epoch", nil, positive_integer, "a positive integer")
  end
  local pct_start = number_option(name, options, "pct_start", 0.3, function(v) return v >= 0 and v <= 1 end,
                                  "in [0, 1]")
  local div_factor = number_option(name, options, "div_factor", 25, positive, "a positive number")
  local final_div_factor = number_option(name, options, "final_div_factor", 1e4, positive, "a positive number")
  local anneal = options.anneal or "cos"
  if anneal ~= "cos" and anneal ~= "linear" then
    fail("%s: anneal must be \"cos\" or \"linear\" (got %s)", name, tostring(anneal))
  end
  local anneal_fn = anneal == "cos" and anneal_cos or anneal_linear
  if options.max_lr == nil then fail("%s: option max_lr is required", name) end
  local max_lrs = per_group(name, "max_lr", options.max_lr, #groups)
  local cycle_momentum = options.cycle_momentum ~= false
  local max_m = per_group(name, "max_momentum", options.max_momentum or 0.95, #groups)
  local base_m = per_group(name, "base_momentum", options.base_momentum or 0.85, #groups)
  if cycle_momentum and groups[1].momentum == nil and groups[1].betas == nil then
    fail("%s: the optimizer has no momentum or betas to cycle (set cycle_momentum = false)", name)
  end

  -- Each phase runs from the previous phase's end_step to its own, from one value to another.
  local phases
  if options.three_phase then
    phases = {
      {end_step = pct_start * total - 1, lr = {"initial", "max"}, momentum = {"max", "base"}},
      {end_step = 2 * pct_start * total - 2, lr = {"max", "initial"}, momentum = {"base", "max"}},
      {end_step = total - 1, lr = {"initial", "min"}, momentum = {"max", "max"}},
    }
  else
    phases = {
      {end_step = pct_start * total - 1, lr = {"initial", "max"}, momentum = {"max", "base"}},
      {end_step = total - 1, lr = {"max", "min"}, momentum = {"base", "max"}},
    }
  end

  local levels = {}
  for i, group in ipairs(groups) do
    local initial = max_lrs[i] / div_factor
    levels[i] = {
      lr = {initial = initial, max = max_lrs[i], min = initial / final_div_factor},
      momentum = {max = max_m[i], base = base_m[i]},
    }
    group.initial_lr, group.max_lr, group.min_lr = initial, max_lrs[i], initial / final_div_factor
    if cycle_momentum then
      group.max_momentum, group.base_momentum = max_m[i], base_m[i]
    end
  end

  local function formula(_, i, group, e)
    if e > total then fail("%s: stepped %d times but total_steps is %d", name, e, total) end
    local start_step = 0
    for k, phase in ipairs(phases) do
      if e <= phase.end_step or k == #phases then
        local pct = (e - start_step) / (phase.end_step - start_step)
        local level = levels[i]
        if cycle_momentum then
          local m = anneal_fn(level.momentum[phase.momentum[1]], level.momentum[phase.momentum[2]], pct)
          if group.betas ~= nil then group.betas[1] = m else group.momentum = m end
        end
        return anneal_fn(level.lr[phase.lr[1]], level.lr[phase.lr[2]], pct)
      end
      start_step = phase.end_step
    end
  end
  return formula, {total_steps = total}
end

define("one_cycle", {max_lr = true, total_steps = true, epochs = true, steps_per_epoch = true, pct_start = true,
                     div_factor = true, final_div_factor = true, anneal = true, three_phase = true,
                     cycle_momentum = true, base_momentum = true, max_momentum = true}, one_cycle)

return lr
