-- One PNG per hyperparameter: the sweep's metric against the parameter's value, one point per
-- trial (completed trials in blue, the ones ASHA stopped in orange, at their last reported value).
-- Drawn with cnn.plot's axes; a positive parameter whose values span a decade or more (learning
-- rates) is shown on a log10 axis, and text values (an optimizer's name) are numbered 1, 2, ...
local plot = require "cnn.plot"

local sweep_plot = {}

local COLORS = {ok = plot.colors[1], stopped = plot.colors[2]}
local BACKGROUND = 0xFFFFFF

-- The x coordinates of a parameter's values and the axis label, or nil for a constant.
local function axis(name, values)
  local numeric, distinct, count = true, {}, 0
  for _, v in ipairs(values) do
    if type(v) ~= "number" then numeric = false end
    if distinct[v] == nil then
      count = count + 1
      distinct[v] = true
    end
  end
  if count < 2 then return nil end
  if numeric then
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(values) do lo, hi = math.min(lo, v), math.max(hi, v) end
    if lo > 0 and hi / lo >= 10 then
      return function(v) return math.log(v, 10) end, "log10 " .. name
    end
    return function(v) return v end, name
  end
  local labels = {}
  for v in pairs(distinct) do labels[#labels + 1] = tostring(v) end
  table.sort(labels)
  local index = {}
  for i, s in ipairs(labels) do index[s] = i end
  local parts = {}
  for i, s in ipairs(labels) do parts[i] = i .. " " .. s end
  return function(v) return index[tostring(v)] end, name .. ": " .. table.concat(parts, ", ")
end

-- Writes out/plot_<param>.png for every parameter that varies; returns the paths written.
function sweep_plot.write(records, meta)
  local points = {}
  for _, rec in pairs(records) do
    if rec.value ~= nil and (rec.status == "ok" or rec.status == "stopped") then points[#points + 1] = rec end
  end
  table.sort(points, function(a, b) return a.trial < b.trial end)
  if #points == 0 then return {} end
  local names = {}
  for name in pairs(points[1].params or {}) do names[#names + 1] = name end
  table.sort(names)
  local written = {}
  for _, name in ipairs(names) do
    local values = {}
    for i, rec in ipairs(points) do values[i] = rec.params[name] end
    local x_of, xlabel = axis(name, values)
    if x_of then
      local series, named = {}, {}
      local lo, hi = math.huge, -math.huge
      for _, rec in ipairs(points) do
        local v = rec.params[name]
        local x = v ~= nil and x_of(v) or nil
        if x then lo, hi = math.min(lo, x), math.max(hi, x) end
        local s = {values = {rec.value}, x = {x}, color = COLORS[rec.status]}
        if not named[rec.status] then
          named[rec.status] = true
          s.name = rec.status == "ok" and "completed" or "stopped"
        end
        series[#series + 1] = s
      end
      -- points in the background colour widen the x axis so that no marker sits on its ends
      local pad = (hi - lo) * 0.05
      for _, x in ipairs({lo - pad, hi + pad}) do
        series[#series + 1] = {values = {points[1].value}, x = {x}, color = BACKGROUND}
      end
      local path = string.format("%s/plot_%s.png", meta.out, name)
      plot.chart({title = string.format("%s vs %s", meta.metric, name), xlabel = xlabel, ylabel = meta.metric,
                  series = series}):save_png(path)
      written[#written + 1] = path
    end
  end
  return written
end

return sweep_plot
