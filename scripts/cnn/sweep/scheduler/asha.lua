-- Asynchronous successive halving (ASHA, Li et al. 2018), in its stopping form: trials report
-- their metric after each unit of resource (an epoch); rungs sit at min_resource * eta^k. When a
-- trial reaches a rung, it is compared with the trials that reached the same rung before it, and
-- it goes on only if it is in the top 1/eta of them (at or beyond their (1 - 1/eta) quantile); the
-- others stop there. Nothing waits for a rung to fill, so workers never idle.
--
--   cnn.sweep{..., scheduler = cnn.sweep.asha{min_resource=1, eta=3, max_resource=27}}
--
-- Trials are separate processes, so each one makes its own decisions from the rung records kept
-- in out/asha/rung_<r>.jsonl: one JSON line per trial that reached rung r, appended with a single
-- write. A trial that reaches a rung at the same moment as another may miss it; ASHA tolerates
-- that by design.
local json = require "cnn.sweep.json"
local results = require "cnn.sweep.results"

local asha = {}
asha.__index = asha

local defaults = {min_resource = 1, eta = 3}

function asha.new(options)
  options = options or {}
  if type(options) ~= "table" then error("sweep.asha: options must be a table", 2) end
  for k in pairs(options) do
    if k ~= "min_resource" and k ~= "eta" and k ~= "max_resource" then
      error(string.format("sweep.asha: unknown option '%s' (min_resource, eta, max_resource)", tostring(k)), 2)
    end
  end
  local self = setmetatable({kind = "asha"}, asha)
  self.min_resource = options.min_resource or defaults.min_resource
  self.eta = options.eta or defaults.eta
  self.max_resource = options.max_resource
  if type(self.min_resource) ~= "number" or self.min_resource <= 0 then
    error("sweep.asha: min_resource must be a positive number", 2)
  end
  if type(self.eta) ~= "number" or self.eta <= 1 then error("sweep.asha: eta must be a number above 1", 2) end
  if self.max_resource ~= nil and (type(self.max_resource) ~= "number" or self.max_resource < self.min_resource) then
    error("sweep.asha: max_resource must be a number at least min_resource", 2)
  end
  return self
end

function asha:__tostring()
  return string.format("asha{min_resource=%g, eta=%g%s}", self.min_resource, self.eta,
                       self.max_resource and string.format(", max_resource=%g", self.max_resource) or "")
end

-- The rungs up to a resource, ascending. No rung at or beyond max_resource: a trial that got
-- there has finished anyway.
function asha:milestones(upto)
  local out, r = {}, self.min_resource
  while r <= upto and (self.max_resource == nil or r < self.max_resource) do
    out[#out + 1] = r
    r = r * self.eta
  end
  return out
end

-- Linear-interpolation quantile (q in [0, 1]) of a list of numbers.
function asha.quantile(values, q)
  local v = table.move(values, 1, #values, 1, {})
  table.sort(v)
  local pos = (#v - 1) * q + 1
  local lo = math.floor(pos)
  local frac = pos - lo
  if lo >= #v then return v[#v] end
  return v[lo] + (v[lo + 1] - v[lo]) * frac
end

-- The value a trial must reach at a rung, given the values of the trials there before it; nil
-- when there are none (the first trial at a rung always goes on).
function asha:cutoff(values, mode)
  if #values == 0 then return nil end
  if mode == "max" then return asha.quantile(values, 1 - 1 / self.eta) end
  return asha.quantile(values, 1 / self.eta)
end

local function rung_path(out, milestone)
  return string.format("%s/asha/rung_%g.jsonl", out, milestone)
end

-- The per-trial state of the scheduler: which rungs it has recorded.
function asha:judge_for(out, trial, mode)
  local recorded = {}
  local made_dir = false
  -- Returns "continue" or "stop" and the rung at which the decision was made.
  return function(resource, value)
    for _, m in ipairs(self:milestones(resource)) do
      if not recorded[m] then
        recorded[m] = true
        if not made_dir then results.mkdir(out .. "/asha"); made_dir = true end
        local path = rung_path(out, m)
        local others = {}
        for _, rec in ipairs(results.read_jsonl(path)) do
          if rec.trial ~= trial and type(rec.value) == "number" then others[#others + 1] = rec.value end
        end
        results.append_line(path, json.encode({trial = trial, value = value, resource = resource}))
        local cut = self:cutoff(others, mode)
        if cut and ((mode == "max" and value < cut) or (mode == "min" and value > cut)) then
          return "stop", m, cut
        end
      end
    end
    return "continue"
  end
end

return asha
