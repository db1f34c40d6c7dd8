-- cnn.plot - line charts drawn in Lua and saved as compressed PNG files through cnn.image:
--
--   cnn.plot.history(history, "runs/lenet/curves.png")   -- loss and accuracy, train vs validation
--   cnn.plot.chart{title="loss", xlabel="epoch", series={{name="train", values={...}}, ...}}
--       :save_png("loss.png")
--
-- A chart has axes with "nice" ticks (steps of 1, 2 or 5 times a power of ten), light grid lines,
-- one line with point markers per series, a legend and a title. Points that are not finite numbers
-- (nil, nan, inf) are skipped and break the line.
local Canvas = require "cnn.plot.canvas"

local plot = {Canvas = Canvas}

plot.colors = {0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD, 0x8C564B}
local AXIS, GRID, TEXT = 0x000000, 0xE6E6E6, 0x202020
local SCALE = 2 -- font pixels per bitmap pixel

local function finite(v)
  return type(v) == "number" and v == v and v > -math.huge and v < math.huge
end

-- Ticks covering [lo, hi]: about `count` of them at a step of 1, 2 or 5 times a power of ten.
function plot.nice_ticks(lo, hi, count)
  count = count or 5
  if hi < lo then lo, hi = hi, lo end
  if hi == lo then
    local pad = lo == 0 and 1 or math.abs(lo) * 0.1
    lo, hi = lo - pad, hi + pad
  end
  local rough = (hi - lo) / count
  local magnitude = 10 ^ math.floor(math.log(rough, 10))
  local norm = rough / magnitude
  local step = (norm < 1.5 and 1 or norm < 3 and 2 or norm < 7 and 5 or 10) * magnitude
  local first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
  local ticks = {}
  for k = first, last do ticks[#ticks + 1] = k * step end
  local decimals = math.max(0, -math.floor(math.log(step, 10) + 1e-9))
  return ticks, decimals
end

local function label(v, decimals)
  local s = string.format("%." .. decimals .. "f", v)
  if s:match("^%-0%.?0*$") then s = s:sub(2) end -- no "-0.00"
  return s
end

-- Draws one chart into the rectangle (x, y, width, height) of a canvas.
--   spec: {title=, xlabel=, ylabel=, series={{name=, values={...}, x={...}?, color=?}, ...}}
-- Without x, the points of a series are at 1, 2, 3, ... (epochs).
function plot.draw(canvas, x, y, width, height, spec)
  local series = spec.series or {}
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  for _, s in ipairs(series) do
    for i, v in pairs(s.values) do
      local px = s.x and s.x[i] or i
      if finite(v) and finite(px) then
        xmin, xmax = math.min(xmin, px), math.max(xmax, px)
        ymin, ymax = math.min(ymin, v), math.max(ymax, v)
      end
    end
  end
  if xmin > xmax then xmin, xmax, ymin, ymax = 1, 2, 0, 1 end -- nothing to show: empty axes
  if xmin == xmax then xmin, xmax = xmin - 1, xmax + 1 end
  local pad = (ymax - ymin) * 0.03
  local yticks, ydec = plot.nice_ticks(ymin - pad, ymax + pad, 5)
  local xticks, xdec = plot.nice_ticks(xmin, xmax, math.min(8, math.max(2, math.floor(xmax - xmin))))
  local y0, y1 = yticks[1], yticks[#yticks]
  local x0, x1 = xticks[1], xticks[#xticks]
  if x0 > xmin then x0 = xmin end

  local gh = Canvas.GLYPH_HEIGHT * SCALE
  local tick_width = 0
  for _, t in ipairs(yticks) do tick_width = math.max(tick_width, Canvas.text_width(label(t, ydec), SCALE)) end
  local left = x + (spec.ylabel and gh + 10 or 0) + tick_width + 20
  local top = y + (spec.title and gh + 14 or 8)
  local right = x + width - 16
  local bottom = y + height - gh - 14 - (spec.xlabel and gh + 8 or 0)
  local function px(v) return left + (v - x0) / (x1 - x0) * (right - left) end
  local function py(v) return bottom - (v - y0) / (y1 - y0) * (bottom - top) end

  -- grid, ticks and their labels
  for _, t in ipairs(yticks) do
    local yy = math.floor(py(t) + 0.5)
    canvas:fill_rect(left, yy, right - left + 1, 1, GRID)
    canvas:fill_rect(left - 5, yy, 5, 1, AXIS)
    local s = label(t, ydec)
    canvas:text(left - 8 - Canvas.text_width(s, SCALE), yy - gh // 2, s, TEXT, SCALE)
  end
  for _, t in ipairs(xticks) do
    local xx = math.floor(px(t) + 0.5)
    if xx >= left and xx <= right then
      canvas:fill_rect(xx, top, 1, bottom - top + 1, GRID)
      canvas:fill_rect(xx, bottom + 1, 1, 5, AXIS)
      local s = label(t, xdec)
      canvas:text(xx - Canvas.text_width(s, SCALE) // 2, bottom + 10, s, TEXT, SCALE)
    end
  end
  canvas:fill_rect(left, top, 1, bottom - top + 1, AXIS)
  canvas:fill_rect(left, bottom, right - left + 1, 1, AXIS)

  if spec.title then
    canvas:text(left + (right - left - Canvas.text_width(spec.title, SCALE)) // 2, y + 6, spec.title, TEXT, SCALE)
  end
  if spec.xlabel then
    canvas:text(left + (right - left - Canvas.text_width(spec.xlabel, SCALE)) // 2, bottom + gh + 20,
                spec.xlabel, TEXT, SCALE)
  end
  if spec.ylabel then
    canvas:text_up(x + 4, top + (bottom - top - Canvas.text_width(spec.ylabel, SCALE)) // 2, spec.ylabel,
                   TEXT, SCALE)
  end

  -- the series, then the legend over them (top right)
  for k, s in ipairs(series) do
    local color = s.color or plot.colors[(k - 1) % #plot.colors + 1]
    local prev_x, prev_y
    local n = 0
    for i in pairs(s.values) do n = math.max(n, i) end
    for i = 1, n do
      local v, xv = s.values[i], s.x and s.x[i] or i
      if finite(v) and finite(xv) then
        local cx, cy = px(xv), py(v)
        if prev_x then canvas:line(prev_x, prev_y, cx, cy, color, 2) end
        canvas:fill_rect(math.floor(cx - 2.5 + 0.5), math.floor(cy - 2.5 + 0.5), 5, 5, color)
        prev_x, prev_y = cx, cy
      else
        prev_x, prev_y = nil, nil
      end
    end
  end
  -- the legend goes where the lines end away from it: top right unless they end high
  local ends, count = 0, 0
  for _, s in ipairs(series) do
    local last = s.values[#s.values]
    if finite(last) then ends, count = ends + (last - y0) / (y1 - y0), count + 1 end
  end
  local named = 0
  for _, s in ipairs(series) do if s.name then named = named + 1 end end
  local ly = top + 8
  if count > 0 and ends / count > 0.5 then ly = bottom - 8 - named * (gh + 8) end
  for k, s in ipairs(series) do
    if s.name then
      local color = s.color or plot.colors[(k - 1) % #plot.colors + 1]
      local tw = Canvas.text_width(s.name, SCALE)
      local lx = right - tw - 34
      canvas:fill_rect(lx - 4, ly - 4, tw + 38, gh + 8, 0xFFFFFF)
      canvas:fill_rect(lx, ly + gh // 2 - 1, 22, 3, color)
      canvas:text(lx + 28, ly, s.name, TEXT, SCALE)
      ly = ly + gh + 8
    end
  end
end

-- One chart on its own canvas (width 640, height 420 unless spec says otherwise).
function plot.chart(spec)
  local canvas = Canvas.new(spec.width or 640, spec.height or 420)
  plot.draw(canvas, 1, 1, canvas.width, canvas.height, spec)
  return canvas
end

-- The training curves of a history from cnn.fit: one chart per metric (loss first, then
-- accuracy, then the others), each with the training and, when present, the validation values.
-- Returns the canvas; writes it as a PNG when path is given.
function plot.history(history, path, options)
  options = options or {}
  local metrics = {}
  local function add(name)
    if type(history[name]) == "table" and #history[name] > 0 then
      for _, m in ipairs(metrics) do if m == name then return end end
      metrics[#metrics + 1] = name
    end
  end
  for _, name in ipairs(options.metrics or {"loss", "accuracy"}) do add(name) end
  if not options.metrics then
    local others = {}
    for name in pairs(history) do
      if type(name) == "string" and not name:match("^val_") and name ~= "lr" and name ~= "epoch_time"
          and name ~= "epoch" then
        others[#others + 1] = name
      end
    end
    table.sort(others)
    for _, name in ipairs(others) do add(name) end
  end
  if #metrics == 0 then error("plot.history: the history holds no metric to plot", 2) end
  local pw, ph = options.panel_width or 560, options.panel_height or 420
  local canvas = Canvas.new(pw * #metrics, ph)
  for k, name in ipairs(metrics) do
    local series = {{name = "train", values = history[name]}}
    if type(history["val_" .. name]) == "table" and #history["val_" .. name] > 0 then
      series[2] = {name = "val", values = history["val_" .. name]}
    end
    plot.draw(canvas, (k - 1) * pw + 1, 1, pw, ph, {title = name:gsub("_", " "), xlabel = "epoch",
                                                    series = series})
  end
  if path then canvas:save_png(path) end
  return canvas
end

return plot
