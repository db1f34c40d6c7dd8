-- history.csv: one row per epoch, one column per history entry, rewritten whole after every epoch
-- (through a temporary file and a rename, so a reader never sees half a file and a resumed run
-- keeps the rows of the epochs before the interruption, which live in the restored history).
local csvlog = {}

-- The columns: epoch, the training values in the order given, their val_ counterparts, then lr
-- and epoch_time.
function csvlog.columns(names, history)
  local cols = {"epoch"}
  for _, n in ipairs(names) do cols[#cols + 1] = n end
  for _, n in ipairs(names) do
    if history["val_" .. n] then cols[#cols + 1] = "val_" .. n end
  end
  cols[#cols + 1] = "lr"
  cols[#cols + 1] = "epoch_time"
  return cols
end

local function cell(v)
  if type(v) ~= "number" then return "" end
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%.6g", v)
end

function csvlog.write(path, history, names)
  local cols = csvlog.columns(names, history)
  local lines = {table.concat(cols, ",")}
  for e = 1, #(history.loss or {}) do
    local row = {tostring(history.epoch and history.epoch[e] or e)}
    for i = 2, #cols do row[i] = cell(history[cols[i]] and history[cols[i]][e]) end
    lines[#lines + 1] = table.concat(row, ",")
  end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then error(string.format("fit: cannot write %s (%s)", tmp, err), 0) end
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local ok, rename_err = os.rename(tmp, path)
  if not ok then error(string.format("fit: cannot write %s (%s)", path, rename_err), 0) end
end

return csvlog
