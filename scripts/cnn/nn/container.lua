-- Containers: Sequential (runs its layers in order) and ModuleList (holds modules for a forward
-- written by hand, e.g. the blocks of a U-Net).
--
--   local model = nn.Sequential{ nn.Conv2d(1, 6, 5, {padding=2}), nn.ReLU(), nn.MaxPool2d(2) }
--   nn.Sequential(layer1, layer2, ...)      model:add(layer)      model[2]      #model
--
-- Children are named "1", "2", ... in the order they were added: 1-based like everything in Lua,
-- where PyTorch's Sequential counts from 0. Parameter names follow ("1.weight", "features.3.bias").
-- An error inside a layer is re-raised with the layer's position prepended, e.g.
--   layer 2.4 (MaxPool2d): max_pool2d: the output would be 0x0; ...
-- for the 4th layer of the Sequential that is the 2nd layer of the model.
local Module = require "cnn.nn.module"

local M = {}

-- The modules of (table) or (m1, m2, ...), checked.
local function module_list(layer, ...)
  local first = ...
  local list
  if select("#", ...) == 1 and type(first) == "table" and not Module.is_module(first)
     and not rawget(first, "__is_module_class") then
    list = first
    for k in pairs(list) do
      if math.type(k) ~= "integer" or k < 1 or k > #list then
        error(string.format("%s: expected an array of modules, found the key %s (use :add_module(name, m) to name "
                            .. "children)", layer, tostring(k)), Module.args.user_level())
      end
    end
  else
    list = {...}
  end
  for i = 1, select("#", ...) > 1 and select("#", ...) or #list do
    if not Module.is_module(list[i]) then
      local hint = type(list[i]) == "table" and rawget(list[i], "__is_module_class") and
                   " (a class: call it, e.g. nn.ReLU())" or ""
      error(string.format("%s: entry %d is not a module but %s%s", layer, i, type(list[i]), hint),
            Module.args.user_level())
    end
  end
  return list
end

local function len(self) return #rawget(self, "_modules").names end

-- ---- Sequential ------------------------------------------------------------------------------------

local Sequential = Module:extend("Sequential")
Sequential.__len = len

function Sequential:init(...)
  for _, m in ipairs(module_list("Sequential", ...)) do self:add(m) end
end

-- model:add(layer, name?) appends a layer (named by its position unless a name is given); returns
-- the model, so adds can be chained.
function Sequential:add(m, name)
  if not Module.is_module(m) then
    local hint = type(m) == "table" and rawget(m, "__is_module_class") and " (a class: call it, e.g. nn.ReLU())" or ""
    error(string.format("Sequential:add: expected a module, got %s%s", type(m), hint), Module.args.user_level())
  end
  self:add_module(name or tostring(len(self) + 1), m)
  return self
end

-- Positions in error messages: "layer 3 (Linear): ..." and, through nested Sequentials, "layer 2.3".
local function locate(err, name, child)
  if type(err) ~= "string" then return err end
  -- the position inside the nn library says nothing to the user; the layer's position does
  err = err:gsub("^[^\n]-cnn[/\\]nn[/\\][%w_]+%.lua:%d+: ", "", 1)
  local inner = err:match("^layer (%S+ %(.*)$")
  if inner then return "layer " .. name .. "." .. inner end
  return string.format("layer %s (%s): %s", name, child.__name, err)
end

function Sequential:forward(x)
  local reg = rawget(self, "_modules")
  for _, name in ipairs(reg.names) do
    local child = reg.values[name]
    local ok, y = pcall(child, x)
    if not ok then error(locate(y, name, child), 0) end
    x = y
  end
  return x
end

M.Sequential = Sequential

-- ---- ModuleList ------------------------------------------------------------------------------------

local ModuleList = Module:extend("ModuleList")
ModuleList.__len = len

function ModuleList:init(...)
  if select("#", ...) == 0 then return end
  for _, m in ipairs(module_list("ModuleList", ...)) do self:add(m) end
end

function ModuleList:add(m)
  if not Module.is_module(m) then
    error("ModuleList:add: expected a module, got " .. type(m), Module.args.user_level())
  end
  self:add_module(tostring(len(self) + 1), m)
  return self
end

function ModuleList:forward()
  error("ModuleList: a list of modules has no forward of its own; call its entries (list[1](x))", 2)
end

M.ModuleList = ModuleList

return M
