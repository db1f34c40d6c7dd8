-- The leaderboard: finished trials ranked by the sweep's metric, as a table for the terminal.
--
--   sweep runs/sweep1: 12 trials: 9 ok, 2 stopped, 1 failed; best val_accuracy 0.8912 (trial 7)
--    rank  trial  status   val_accuracy  dropout  lr      epochs  time   note
--       1      7  ok             0.8912   0.2310  0.003        5  61.2s
--       ...
--
-- Completed trials come first (best first), then the trials ASHA stopped (their last reported
-- value, which is not comparable with a full run's), then the failed ones with their message.
local space = require "cnn.sweep.space"

local leaderboard = {}

local order = {ok = 1, stopped = 2, failed = 3}

-- The records sorted as the table shows them.
function leaderboard.rank(records, mode)
  local rows = {}
  for _, rec in pairs(records) do rows[#rows + 1] = rec end
  table.sort(rows, function(a, b)
    local ga, gb = order[a.status] or 4, order[b.status] or 4
    if ga ~= gb then return ga < gb end
    local va, vb = a.value, b.value
    if va ~= nil and vb ~= nil and va ~= vb then
      if mode == "min" then return va < vb end
      return va > vb
    end
    if (va == nil) ~= (vb == nil) then return va ~= nil end
    return a.trial < b.trial
  end)
  return rows
end

-- The best completed trial, or nil.
function leaderboard.best(records, mode)
  local rows = leaderboard.rank(records, mode)
  if rows[1] and rows[1].status == "ok" then return rows[1] end
  return nil
end

function leaderboard.format_value(v)
  if v == nil then return "-" end
  if math.type(v) == "integer" then return tostring(v) end
  if type(v) == "number" then
    if v ~= v then return "nan" end
    return string.format("%.4g", v)
  end
  return tostring(v)
end

local function counts(records)
  local c, total = {ok = 0, stopped = 0, failed = 0}, 0
  for _, rec in pairs(records) do
    c[rec.status] = (c[rec.status] or 0) + 1
    total = total + 1
  end
  return c, total
end

-- The table as text. meta: {out=, metric=, mode=, trials=?}
function leaderboard.format(records, meta)
  local metric, mode = meta.metric, meta.mode or "max"
  local rows = leaderboard.rank(records, mode)
  local c, total = counts(records)
  local lines = {}
  local head = string.format("sweep %s: %d trial%s finished", meta.out or "", total, total == 1 and "" or "s")
  if meta.trials and meta.trials > total then head = head .. string.format(" of %d", meta.trials) end
  head = head .. string.format(": %d ok, %d stopped, %d failed", c.ok, c.stopped, c.failed)
  local best = leaderboard.best(records, mode)
  if best then
    head = head .. string.format("; best %s %s (trial %d, %s)", metric, leaderboard.format_value(best.value),
                                 best.trial, mode)
  end
  lines[1] = head
  if #rows == 0 then return table.concat(lines, "\n") end

  -- the parameters that vary (constants would only widen the table)
  local first_value, varies = {}, {}
  for _, rec in ipairs(rows) do
    for k, v in pairs(rec.params or {}) do
      if first_value[k] == nil then first_value[k] = v elseif first_value[k] ~= v then varies[k] = true end
    end
  end
  local names = space.sorted_names(#rows > 1 and varies or first_value)
  local header = {"rank", "trial", "status", metric}
  for _, n in ipairs(names) do header[#header + 1] = n end
  header[#header + 1] = "epochs"
  header[#header + 1] = "time"
  header[#header + 1] = "note"
  local cells = {header}
  for i, rec in ipairs(rows) do
    local row = {rec.status == "failed" and "-" or tostring(i), tostring(rec.trial), rec.status,
                 leaderboard.format_value(rec.value)}
    for _, n in ipairs(names) do row[#row + 1] = leaderboard.format_value((rec.params or {})[n]) end
    row[#row + 1] = leaderboard.format_value(rec.epochs)
    row[#row + 1] = rec.seconds and string.format("%.1fs", rec.seconds) or "-"
    local note = rec.message or ""
    if #note > 70 then note = note:sub(1, 67) .. "..." end
    row[#row + 1] = note:gsub("\n", " ")
    cells[#cells + 1] = row
  end
  local widths = {}
  for _, row in ipairs(cells) do
    for j, cell in ipairs(row) do widths[j] = math.max(widths[j] or 0, utf8.len(cell) or #cell) end
  end
  for _, row in ipairs(cells) do
    local parts = {}
    for j, cell in ipairs(row) do
      local pad = string.rep(" ", widths[j] - (utf8.len(cell) or #cell))
      -- text columns (status, note) left-aligned, numbers right-aligned
      if j == 3 or j == #row then parts[j] = cell .. pad else parts[j] = pad .. cell end
    end
    lines[#lines + 1] = " " .. table.concat(parts, "  "):gsub("%s+$", "")
  end
  return table.concat(lines, "\n")
end

return leaderboard
