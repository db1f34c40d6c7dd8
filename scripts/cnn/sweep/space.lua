-- The search space of a sweep and the trials drawn from it.
--
--   space = {lr = {1e-3, 3e-3}, dropout = sweep.uniform(0, 0.5), batch = sweep.choice{32, 64},
--            width = sweep.int(16, 64), wd = sweep.log_uniform(1e-6, 1e-3), epochs = 5}
--
-- A plain list (or choice{...}) is a set of values: grid search takes their cartesian product, random
-- search picks one at random. uniform, log_uniform and int are distributions, sampled in both
-- strategies (in a grid, once per grid point). Anything else is a constant passed through.
--
-- Trial i (1-based) is a pure function of (seed, i): its values and its training seed come from a
-- generator seeded with both, so re-running a sweep regenerates the same trials, a larger budget
-- only appends trials, and the sampler never touches cnn.manual_seed's generator.
local space = {}

-- ---- a small generator of our own (splitmix64) ------------------------------------------------
local Rng = {}
Rng.__index = Rng

local function splitmix(state)
  state = state + 0x9E3779B97F4A7C15
  local z = state
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return state, z ~ (z >> 31)
end

function space.rng(seed, stream)
  local state = math.tointeger(seed) or 0
  local _, mixed = splitmix(state ~ ((math.tointeger(stream) or 0) * 0x632BE59BD9B4E019))
  return setmetatable({state = mixed}, Rng)
end

-- A 64-bit integer.
function Rng:next()
  local z
  self.state, z = splitmix(self.state)
  return z
end

-- A float in [0, 1) with 53 random bits.
function Rng:uniform()
  return (self:next() >> 11) * (1.0 / 9007199254740992.0)
end

-- An integer in [lo, hi].
function Rng:int(lo, hi)
  return lo + math.floor(self:uniform() * (hi - lo + 1))
end

-- ---- distributions ----------------------------------------------------------------------------
local Dist = {}
Dist.__index = Dist

local function dist(kind, fields)
  fields.kind = kind
  return setmetatable(fields, Dist)
end

function Dist:__tostring()
  if self.kind == "choice" then
    local parts = {}
    for i, v in ipairs(self.values) do parts[i] = tostring(v) end
    return "choice{" .. table.concat(parts, ", ") .. "}"
  end
  return string.format("%s(%s, %s)", self.kind, tostring(self.low), tostring(self.high))
end

local function check_range(name, low, high)
  if type(low) ~= "number" or type(high) ~= "number" then
    error(string.format("sweep.%s: expected two numbers, got %s and %s", name, type(low), type(high)), 3)
  end
  if not (low <= high) then
    error(string.format("sweep.%s: low %s is above high %s", name, tostring(low), tostring(high)), 3)
  end
end

function space.choice(values)
  if type(values) ~= "table" or #values == 0 then
    error("sweep.choice: expected a non-empty list of values, e.g. choice{32, 64, 128}", 2)
  end
  return dist("choice", {values = table.move(values, 1, #values, 1, {})})
end

function space.uniform(low, high)
  check_range("uniform", low, high)
  return dist("uniform", {low = low, high = high})
end

function space.log_uniform(low, high)
  check_range("log_uniform", low, high)
  if low <= 0 then
    error(string.format("sweep.log_uniform: bounds must be positive, got %s", tostring(low)), 2)
  end
  return dist("log_uniform", {low = low, high = high})
end

function space.int(low, high)
  check_range("int", low, high)
  if math.tointeger(low) == nil or math.tointeger(high) == nil then
    error(string.format("sweep.int: bounds must be integers, got %s and %s", tostring(low), tostring(high)), 2)
  end
  return dist("int", {low = math.tointeger(low), high = math.tointeger(high)})
end

function space.is_distribution(v)
  return getmetatable(v) == Dist
end

-- The values of a list-like entry (a plain list or a choice), or nil for a sampled or constant one.
local function values_of(v)
  if getmetatable(v) == Dist then return v.kind == "choice" and v.values or nil end
  if type(v) == "table" and #v > 0 then return v end
  return nil
end

local function sample(v, rng)
  local values = values_of(v)
  if values then return values[rng:int(1, #values)] end
  if getmetatable(v) ~= Dist then return v end
  if v.kind == "uniform" then return v.low + (v.high - v.low) * rng:uniform() end
  if v.kind == "log_uniform" then
    return math.exp(math.log(v.low) + (math.log(v.high) - math.log(v.low)) * rng:uniform())
  end
  return rng:int(v.low, v.high) -- int
end

-- ---- checking and describing a space ------------------------------------------------------------
local function sorted_names(s)
  local names = {}
  for name in pairs(s) do names[#names + 1] = name end
  table.sort(names)
  return names
end

local function is_plain_value(v)
  local t = type(v)
  return t == "number" or t == "string" or t == "boolean"
end

-- Raises an error naming the offending entry (without a position: cnn.sweep adds the caller's);
-- returns the parameter names, sorted.
function space.check(s)
  if type(s) ~= "table" then error("space must be a table of parameter = values", 0) end
  local names = sorted_names(s)
  if #names == 0 then error("the space is empty", 0) end
  for _, name in ipairs(names) do
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") or name:sub(1, 1) == "_" then
      error(string.format("parameter name %s must be an identifier not starting with '_'",
                          tostring(name)), 0)
    end
    local v = s[name]
    local values = values_of(v)
    if values then
      for i, x in ipairs(values) do
        if not is_plain_value(x) then
          error(string.format("space.%s[%d] is a %s; values must be numbers, strings or booleans",
                              name, i, type(x)), 0)
        end
      end
    elseif getmetatable(v) ~= Dist and not is_plain_value(v) then
      error(string.format("space.%s is a %s; give a list of values, sweep.choice/uniform/" ..
                          "log_uniform/int, or a constant", name, type(v)), 0)
    end
  end
  return names
end

-- A plain-data description of the space (what sweep.json records, and what resuming compares).
function space.describe(s)
  local out = {}
  for name, v in pairs(s) do
    local values = values_of(v)
    if getmetatable(v) == Dist and v.kind ~= "choice" then
      out[name] = {kind = v.kind, low = v.low, high = v.high}
    elseif values then
      out[name] = {kind = "choice", values = table.move(values, 1, #values, 1, {})}
    else
      out[name] = {kind = "constant", value = v}
    end
  end
  return out
end

-- Number of points of the grid over the list-valued parameters.
function space.grid_size(s)
  local n = 1
  for _, v in pairs(s) do
    local values = values_of(v)
    if values then n = n * #values end
  end
  return n
end

-- The trials of a sweep: {{trial = i, params = {...}, seed = n}, ...}.
--   strategy "grid": the cartesian product of the list-valued parameters (the first name in sorted
--     order varies slowest); sampled parameters are drawn per point. A budget below the grid size
--     keeps the first points; above it, the grid repeats with fresh draws and seeds.
--   strategy "random": every parameter is drawn for every trial; the budget is the trial count.
function space.trials(s, strategy, budget, seed)
  local names = space.check(s)
  local size = space.grid_size(s)
  if strategy == "grid" then
    budget = budget or size
  elseif strategy ~= "random" then
    error(string.format("sweep: strategy must be \"grid\" or \"random\", got %s", tostring(strategy)), 0)
  elseif budget == nil then
    error("sweep: random search needs a trial budget (trials=N)", 0)
  end
  local trials = {}
  for i = 1, budget do
    local rng = space.rng(seed, i)
    local params = {}
    -- mixed-radix digits of the grid point, the last name fastest
    local point = (i - 1) % size
    for k = #names, 1, -1 do
      local name = names[k]
      local values = values_of(s[name])
      if strategy == "grid" and values then
        params[name] = values[point % #values + 1]
        point = point // #values
      end
    end
    for _, name in ipairs(names) do
      if params[name] == nil then params[name] = sample(s[name], rng) end
    end
    -- a training seed that fits the 31-bit range every generator accepts
    trials[i] = {trial = i, params = params, seed = rng:next() & 0x7FFFFFFF}
  end
  return trials
end

space.sorted_names = sorted_names

return space
