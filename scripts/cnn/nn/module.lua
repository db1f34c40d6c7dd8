-- nn.Module: the base class of every layer, container and user-defined network.
--
-- Classes. Module:extend("Name") returns a subclass; calling the class makes an instance and runs
-- its init(self, ...). The class is the metatable of its instances, so `model(x)` calls
-- model:forward(x) and tostring(model) prints the structure as PyTorch does.
--
--   local Block = nn.Module:extend("Block")
--   function Block:init(c) self.conv = nn.Conv2d(c, c, 3, {padding=1}) end
--   function Block:forward(x) return (self.conv(x) + x):relu() end
--
-- Registration. Assigning a field registers it by the kind of value:
--   a module                              -> a child (named by the field)
--   a leaf tensor that requires grad      -> a parameter (trained, saved in state_dict)
--   anything else (numbers, plain tensors) -> an ordinary field
-- Buffers (saved in state_dict, never trained: batch-norm running statistics) are declared with
-- self:register_buffer(name, tensor); self:register_parameter(name, tensor) and
-- self:add_module(name, m) are the explicit forms of the first two rules. Once registered, a name
-- keeps its kind: assigning a new tensor to a parameter or buffer name replaces it, assigning nil
-- removes it. Names may not contain dots: dotted paths ("features.1.weight") join the names of
-- the modules on the way down.
--
-- Traversal order is registration order: a module's own parameters, then its buffers, then each
-- child in turn, recursively (the order of PyTorch's named_parameters/state_dict).
--
-- Queries:
--   model:parameters()        {tensor, ...}, each once, frozen ones included (as PyTorch)
--   model:parameters{trainable=true}   only those that require grad (what an optimizer needs
--                             after freezing part of a network)
--   model:named_parameters()  {{"1.weight", tensor}, ...}: ordered pairs for ipairs, which also
--                             answer lookups by name (model:named_parameters()["1.weight"])
--   model:buffers(), model:named_buffers(), model:children(), model:named_children(),
--   model:modules(), model:named_modules() (parents first, "" for the model itself)
--
-- Lazily-sized layers (in_channels/in_features/num_features left out) create their parameters on
-- the first forward, so until then parameters() does not return them and an optimizer made then
-- would miss them. model:build{C, H, W} (or model:summary{C, H, W}) runs that first forward on one
-- sample of zeros; a model whose first layer declares a Keras input_shape builds itself when its
-- parameters, buffers or state dict are first asked for. load_state_dict sizes unbuilt layers from
-- the tensors it loads.
local cnn = require "cnn"

local args = require "cnn.nn.args"

local Module = {}
Module.args = args

-- ---- ordered registries ---------------------------------------------------------------------------

local function new_registry() return {names = {}, values = {}} end

local function registry_set(reg, name, value)
  if reg.values[name] == nil then reg.names[#reg.names + 1] = name end
  reg.values[name] = value
end

local function registry_remove(reg, name)
  if reg.values[name] == nil then return end
  reg.values[name] = nil
  for i, n in ipairs(reg.names) do
    if n == name then
      table.remove(reg.names, i)
      break
    end
  end
end

local is_module = args.is_module

local function is_tensor(v) return cnn.is_tensor(v) end

local function shape_str(t) return table.concat(t:shape(), "x") end

local function check_name(self, name, what)
  if type(name) == "number" and math.type(name) == "integer" then name = tostring(name) end
  if type(name) ~= "string" or name == "" or name:find(".", 1, true) then
    error(string.format("%s: %s name must be a non-empty string without dots, got %s",
                        self.__name, what, type(name) == "string" and string.format("%q", name) or type(name)), 3)
  end
  return name
end

-- Drops name from every registry but keep (a name has one kind at a time; a value replaced within
-- its own registry keeps its position).
local function unregister(self, name, keep)
  for _, kind in ipairs {"_parameters", "_buffers", "_modules"} do
    if kind ~= keep then registry_remove(rawget(self, kind), name) end
  end
end

-- ---- instance metamethods -------------------------------------------------------------------------

local function instance_index(self, key)
  local params, buffers, modules = rawget(self, "_parameters"), rawget(self, "_buffers"), rawget(self, "_modules")
  if params then
    -- numeric keys reach children registered under "1", "2", ... (Sequential: model[2])
    local k = math.type(key) == "integer" and tostring(key) or key
    local v = params.values[k]
    if v ~= nil then return v end
    v = buffers.values[k]
    if v ~= nil then return v end
    v = modules.values[k]
    if v ~= nil then return v end
  end
  return getmetatable(self)[key]
end

local function instance_newindex(self, key, value)
  if math.type(key) == "integer" then key = tostring(key) end
  local params, buffers, modules = rawget(self, "_parameters"), rawget(self, "_buffers"), rawget(self, "_modules")
  if type(key) == "string" then
    if value == nil then
      if params.values[key] ~= nil or buffers.values[key] ~= nil or modules.values[key] ~= nil then
        unregister(self, key)
        return
      end
    elseif is_module(value) then
      return self:add_module(key, value)
    elseif is_tensor(value) then
      if buffers.values[key] ~= nil then return self:register_buffer(key, value) end
      if params.values[key] ~= nil or (value.is_leaf and value:needs_grad()) then
        return self:register_parameter(key, value)
      end
    end
    if params.values[key] ~= nil or buffers.values[key] ~= nil or modules.values[key] ~= nil then
      error(string.format("%s: cannot assign a %s to '%s', which is a registered %s", self.__name,
                          type(value), key, params.values[key] and "parameter" or buffers.values[key] and "buffer"
                          or "submodule"), 2)
    end
  end
  rawset(self, key, value)
end

-- The metamethods every class carries (Lua looks metamethods up with rawget, so extend copies them).
local metamethods = {"__index", "__newindex", "__call", "__tostring", "__len", "__close"}

-- ---- classes ---------------------------------------------------------------------------------------

Module.__name = "Module"
Module.__is_module_class = true
Module.__index = instance_index
Module.__newindex = instance_newindex
Module.__call = function(self, ...) return self:forward(...) end

local class_mt = {}

-- nn.Something(...) constructs: a fresh instance with empty registries, then init(self, ...).
function class_mt.__call(cls, ...)
  local self = {_parameters = new_registry(), _buffers = new_registry(), _modules = new_registry(),
                training = true}
  setmetatable(self, cls)
  self:init(...)
  return self
end

function class_mt.__tostring(cls) return "nn." .. rawget(cls, "__name") .. " (class)" end

-- Module:extend(name) -> a subclass whose methods fall back to the parent's.
function Module:extend(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    error("Module:extend: the class name must be an identifier string, got " ..
          (type(name) == "string" and string.format("%q", name) or type(name)), 2)
  end
  local cls = {__name = name, super = self, __is_module_class = true}
  for _, k in ipairs(metamethods) do cls[k] = self[k] end
  setmetatable(cls, {__index = self, __call = class_mt.__call, __tostring = class_mt.__tostring})
  return cls
end
setmetatable(Module, {__call = class_mt.__call, __tostring = class_mt.__tostring})

function Module:init() end

function Module:forward()
  error(self.__name .. ": forward is not defined (define function " .. self.__name .. ":forward(x))", 2)
end

-- m:is_a(cls): whether m is an instance of cls or of one of its subclasses.
function Module:is_a(cls)
  local c = getmetatable(self)
  while c do
    if c == cls then return true end
    c = rawget(c, "super")
  end
  return false
end

Module.is_module = is_module

-- ---- registration -----------------------------------------------------------------------------------

function Module:add_module(name, m)
  name = check_name(self, name, "submodule")
  if m ~= nil and not is_module(m) then
    error(string.format("%s: add_module('%s') needs a module, got %s", self.__name, name, type(m)), 2)
  end
  if m == self then error(self.__name .. ": a module cannot contain itself", 2) end
  unregister(self, name, m ~= nil and "_modules" or nil)
  rawset(self, name, nil)
  if m ~= nil then registry_set(rawget(self, "_modules"), name, m) end
  return m
end

function Module:register_parameter(name, t)
  name = check_name(self, name, "parameter")
  if t ~= nil and not is_tensor(t) then
    error(string.format("%s: parameter '%s' must be a tensor, got %s", self.__name, name, type(t)), 2)
  end
  if t ~= nil and not t.is_leaf then
    error(string.format("%s: parameter '%s' must be a leaf tensor (made by a constructor or :detach()), "
                        .. "not the result of an operation that records gradients", self.__name, name), 2)
  end
  unregister(self, name, t ~= nil and "_parameters" or nil)
  rawset(self, name, nil)
  if t ~= nil then
    t:requires_grad(not rawget(self, "_frozen"))
    registry_set(rawget(self, "_parameters"), name, t)
  end
  return t
end

function Module:register_buffer(name, t)
  name = check_name(self, name, "buffer")
  if t ~= nil and not is_tensor(t) then
    error(string.format("%s: buffer '%s' must be a tensor, got %s", self.__name, name, type(t)), 2)
  end
  unregister(self, name, t ~= nil and "_buffers" or nil)
  rawset(self, name, nil)
  if t ~= nil then registry_set(rawget(self, "_buffers"), name, t) end
  return t
end

-- ---- traversal --------------------------------------------------------------------------------------

-- The values of an array of {name, value} entries.
local function values_of(entries)
  local out = {}
  for i, entry in ipairs(entries) do out[i] = entry[2] end
  return out
end

-- {{name, child}, ...} for the direct children, in registration order.
function Module:named_children()
  local reg, out = rawget(self, "_modules"), {}
  for _, name in ipairs(reg.names) do out[#out + 1] = {name, reg.values[name]} end
  return out
end

function Module:children() return values_of(self:named_children()) end

-- {{"", self}, {"features", m}, {"features.1", m}, ...}: every module once, parents first.
function Module:named_modules()
  local out, seen = {}, {}
  local function visit(m, prefix)
    if seen[m] then return end
    seen[m] = true
    out[#out + 1] = {prefix, m}
    for _, nc in ipairs(m:named_children()) do
      visit(nc[2], prefix == "" and nc[1] or prefix .. "." .. nc[1])
    end
  end
  visit(self, "")
  return out
end

function Module:modules() return values_of(self:named_modules()) end

-- m:apply(fn) calls fn(module) on every module (children first, as PyTorch does) and returns m.
function Module:apply(fn)
  for _, child in ipairs(self:children()) do child:apply(fn) end
  fn(self)
  return self
end

-- Ordered {name, tensor} entries of the given registry kinds across the tree: per module its own
-- entries of each kind in turn, then its children. With dedup, a shared tensor appears under its
-- first name only.
local function collect(self, kinds, dedup)
  local out, seen_tensor, seen_module = {}, {}, {}
  local function visit(m, prefix)
    if seen_module[m] then return end
    seen_module[m] = true
    for _, kind in ipairs(kinds) do
      local reg = rawget(m, kind)
      for _, name in ipairs(reg.names) do
        local t = reg.values[name]
        if not (dedup and seen_tensor[t]) then
          seen_tensor[t] = true
          out[#out + 1] = {prefix .. name, t}
        end
      end
    end
    for _, nc in ipairs(m:named_children()) do visit(nc[2], prefix .. nc[1] .. ".") end
  end
  visit(self, "")
  return out
end

local PARAMETERS, BUFFERS, STATE = {"_parameters"}, {"_buffers"}, {"_parameters", "_buffers"}

-- {{name, tensor}, ...}: parameters and buffers in state_dict order, every name (a shared tensor
-- under each of its names).
function Module:named_state() return collect(self, STATE, false) end

-- Arrays of {name, tensor} also answer lookups by name: named_parameters()["1.weight"].
local named_list_mt = {
  __index = function(list, name)
    if type(name) ~= "string" then return nil end
    for _, entry in ipairs(list) do
      if entry[1] == name then return entry[2] end
    end
    return nil
  end,
}

-- Lazily-sized layers create their parameters on the first forward. When the network knows its
-- input shape (a Keras-style input_shape on its first layer), the parameter queries below run that
-- first forward themselves, so that an optimizer made right after construction sees every tensor.
function Module:_build_if_possible()
  if not self:has_lazy_parameters() then return end
  local shape = self:declared_input_shape()
  if shape then self:build(shape) end
end

-- model:named_parameters() -> {{"1.weight", tensor}, {"1.bias", tensor}, ...}
-- An ordered array (ipairs gives registration order) that is also indexable by name. Options:
-- {trainable=true} keeps only the parameters that require grad (not frozen).
function Module:named_parameters(opts)
  self:_build_if_possible()
  local all = collect(self, PARAMETERS, true)
  local out = setmetatable({}, named_list_mt)
  for _, entry in ipairs(all) do
    if not (opts and opts.trainable) or entry[2]:needs_grad() then out[#out + 1] = entry end
  end
  return out
end

-- model:parameters() -> {tensor, ...}: every parameter once, in registration order, frozen ones
-- included (as in PyTorch); model:parameters{trainable=true} leaves out frozen ones.
function Module:parameters(opts) return values_of(self:named_parameters(opts)) end

function Module:named_buffers()
  self:_build_if_possible()
  return setmetatable(collect(self, BUFFERS, true), named_list_mt)
end

function Module:buffers() return values_of(self:named_buffers()) end

-- Total number of parameter elements (optionally only trainable ones).
function Module:num_parameters(opts)
  local n = 0
  for _, p in ipairs(self:parameters(opts)) do n = n + p:numel() end
  return n
end

-- ---- modes and gradients ----------------------------------------------------------------------------

-- model:train(mode=true) sets training mode on the module and every descendant; returns model.
function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode and true or false) end
  return self
end

function Module:eval() return self:train(false) end

local function set_frozen(self, frozen)
  for _, m in ipairs(self:modules()) do
    rawset(m, "_frozen", frozen or nil)
    local reg = rawget(m, "_parameters")
    for _, name in ipairs(reg.names) do reg.values[name]:requires_grad(not frozen) end
  end
  return self
end

-- freeze(): requires_grad false on every parameter (their gradients stay nil from then on);
-- unfreeze() undoes it. Parameters a lazy layer creates later follow the frozen state too.
function Module:freeze()
  set_frozen(self, true)
  for _, p in ipairs(collect(self, PARAMETERS, true)) do p[2].grad = nil end
  return self
end

function Module:unfreeze() return set_frozen(self, false) end

function Module:zero_grad()
  for _, entry in ipairs(collect(self, PARAMETERS, true)) do entry[2].grad = nil end
  return self
end

-- ---- lazily-sized layers and dry runs ---------------------------------------------------------------

-- Layers whose sizes are inferred on the first forward set self._lazy = true until then.
function Module:has_lazy_parameters()
  for _, m in ipairs(self:modules()) do
    if rawget(m, "_lazy") then return true end
  end
  return false
end

-- The per-sample input shape the network declares through a Keras-style input_shape on its first
-- layer (converted to channels-first), or nil.
function Module:declared_input_shape()
  for _, m in ipairs(self:modules()) do
    local s = rawget(m, "_input_shape")
    if s then return s end
    if #m:children() == 0 then return nil end -- the first leaf decides
  end
  return nil
end

-- Runs fn(x) on a batch of one zero sample of the given per-sample shape, in evaluation mode and
-- without recording gradients; the training flags are restored afterwards, even on error.
function Module:_dry_run(input_shape, fn)
  if type(input_shape) ~= "table" or #input_shape == 0 then
    error(self.__name .. ": expected the input shape without the batch dimension, e.g. {1, 28, 28}", 3)
  end
  local dims = {1}
  for i, d in ipairs(input_shape) do
    if math.type(d) ~= "integer" or d < 1 then
      error(string.format("%s: input shape entry %d must be a positive integer, got %s", self.__name, i,
                          tostring(d)), 3)
    end
    dims[#dims + 1] = d
  end
  local modes = {}
  for _, m in ipairs(self:modules()) do modes[m] = rawget(m, "training") end
  self:eval()
  local ok, result = pcall(cnn.no_grad, fn, cnn.zeros(dims))
  for m, mode in pairs(modes) do rawset(m, "training", mode) end
  if not ok then error(result, 0) end
  return result
end

-- model:build(input_shape) creates the parameters of lazily-sized layers by running one sample of
-- that shape (without batch: {1, 28, 28}) through the network; returns the model.
function Module:build(input_shape)
  input_shape = input_shape or self:declared_input_shape()
  if input_shape == nil then
    error(self.__name .. ":build: give the input shape without the batch dimension, e.g. {1, 28, 28}", 2)
  end
  self:_dry_run(input_shape, function(x) return self:forward(x) end)
  return self
end

-- ---- printing -----------------------------------------------------------------------------------------

-- The text inside the parentheses of a leaf's repr, e.g. "1, 6, kernel_size=5"; classes override.
function Module:extra_repr() return "" end

function Module.__tostring(self)
  local children = self:named_children()
  local head = self.__name .. "(" .. self:extra_repr()
  if #children == 0 then return head .. ")" end
  local lines = {head}
  for _, nc in ipairs(children) do
    local child = tostring(nc[2]):gsub("\n", "\n  ")
    lines[#lines + 1] = "  (" .. nc[1] .. "): " .. child
  end
  lines[#lines + 1] = ")"
  return table.concat(lines, "\n")
end

-- Error raised during forward: names the layer (its repr) and the input's shape.
function Module:input_error(x, fmt, ...)
  error(string.format("%s: %s (input %s)", tostring(self), string.format(fmt, ...),
                      is_tensor(x) and shape_str(x) or type(x)), 0)
end

function Module:check_input(x, min_dim, max_dim, layout)
  if not is_tensor(x) then
    error(string.format("%s: expected a tensor input, got %s", tostring(self), args.describe(x)), 0)
  end
  local d = x:dim()
  if d < min_dim or d > max_dim then
    self:input_error(x, "expected a %s input (%s)", min_dim == max_dim and (min_dim .. "-d") or
                     (min_dim .. "-d to " .. max_dim .. "-d"), layout)
  end
end

require("cnn.nn.state_dict")(Module)
require("cnn.nn.summary")(Module)

return Module
