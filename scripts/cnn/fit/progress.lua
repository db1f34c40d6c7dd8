-- Progress display for cnn.fit.
--   "bar":  on a terminal, one line redrawn with \r as batches finish (at most ten times a second):
--           Epoch 2/5 [=====>         ] 412/938  3120 img/s  ETA 0:17  loss 0.4123  acc 0.851
--           replaced at the end of the epoch by the summary line below.
--   "line": one plain line per epoch (logs, pipes, files):
--           epoch 2/5  loss 0.4123  acc 0.8510  val_loss 0.3801  val_acc 0.8634  lr 0.001  12.3s  4870 img/s
--   "none": nothing.
-- Stock Lua cannot ask whether stdout is a terminal, so `test -t 1` answers once per process.
local short_name = require("cnn.fit.metrics").short_name

local progress = {}

local is_terminal
function progress.stdout_is_terminal()
  if is_terminal == nil then
    local term = os.getenv("TERM")
    is_terminal = term ~= nil and term ~= "dumb" and os.execute("test -t 1") == true
  end
  return is_terminal
end

-- The terminal's width in columns (80 when it cannot be told), asked once.
local columns
function progress.terminal_width()
  if columns == nil then
    local pipe = io.popen("stty size 2>/dev/null </dev/tty")
    local answer = pipe and pipe:read("a") or ""
    if pipe then pipe:close() end
    columns = tonumber(answer:match("%d+%s+(%d+)")) or tonumber(os.getenv("COLUMNS")) or 80
  end
  return columns
end

function progress.mode(option, verbose)
  if verbose == false then return "none" end
  if option == nil or option == "auto" then return progress.stdout_is_terminal() and "bar" or "line" end
  if option ~= "bar" and option ~= "line" and option ~= "none" then
    error(string.format("fit: progress must be \"bar\", \"line\" or \"none\" (got %s)", tostring(option)), 0)
  end
  return option
end

local function duration(seconds)
  seconds = math.max(0, math.floor(seconds + 0.5))
  local h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, s) end
  return string.format("%d:%02d", m, s)
end

-- "loss 0.4123  acc 0.851" from the names listed in order and a values table.
local function values_text(names, values, digits)
  local parts = {}
  for _, name in ipairs(names) do
    local v = values[name]
    if type(v) == "number" then
      parts[#parts + 1] = string.format("%s %." .. digits .. "f", short_name(name), v)
    end
  end
  return table.concat(parts, "  ")
end

local Progress = {}
Progress.__index = Progress

-- out: a file (io.stdout by default); names: the metric names in display order.
function progress.new(mode, epochs, out)
  return setmetatable({mode = mode, epochs = epochs, out = out or io.stdout, last_draw = -1, width = 0},
                      Progress)
end

function Progress:write(s)
  self.out:write(s)
  self.out:flush()
end

-- Called after each batch: done of total batches, images so far, seconds so far, running values.
function Progress:batch(epoch, done, total, images, seconds, names, values)
  if self.mode ~= "bar" then return end
  if (done < total or total == 0) and seconds - self.last_draw < 0.1 then return end
  self.last_draw = seconds
  local width = 24
  local filled = total > 0 and math.floor(width * done / total) or width
  local bar = string.rep("=", filled) .. (filled < width and ">" .. string.rep(" ", width - filled - 1) or "")
  local rate = seconds > 0 and images / seconds or 0
  local eta = done > 0 and seconds / done * (total - done) or 0
  local digits = #tostring(total)
  local line
  if total > 0 then
    line = string.format("Epoch %d/%d [%s] %" .. digits .. "d/%d  %d img/s  ETA %s  %s", epoch, self.epochs, bar,
                         done, total, math.floor(rate + 0.5), duration(eta), values_text(names, values, 4))
  else -- a loader of unknown length: no bar, no ETA
    line = string.format("Epoch %d/%d  %d batches  %d img/s  %s", epoch, self.epochs, done, math.floor(rate + 0.5),
                         values_text(names, values, 4))
  end
  line = line:sub(1, progress.terminal_width() - 1) -- a wrapped line could not be redrawn
  local pad = math.max(0, self.width - #line)
  self.width = #line
  self:write("\r" .. line .. string.rep(" ", pad))
end

-- Called at the end of an epoch with every value of the epoch (train and val), the images trained
-- on and the seconds that took (the epoch's whole time, validation included, is logs.epoch_time).
function Progress:epoch_end(epoch, names, logs, images, train_seconds)
  if self.mode == "none" then return end
  local parts = {string.format("epoch %d/%d", epoch, self.epochs), values_text(names, logs, 4)}
  if logs.lr then parts[#parts + 1] = string.format("lr %.3g", logs.lr) end
  parts[#parts + 1] = string.format("%.1fs", logs.epoch_time or train_seconds)
  parts[#parts + 1] = string.format("%d img/s", train_seconds > 0 and math.floor(images / train_seconds + 0.5) or 0)
  local line = table.concat(parts, "  ")
  if self.mode == "bar" then
    line = "\r" .. line .. string.rep(" ", math.max(0, self.width - #line))
    self.width, self.last_draw = 0, -1
  end
  self:write(line .. "\n")
end

-- A message on a line of its own (ends a bar in progress).
function Progress:message(text)
  if self.mode == "none" then return end
  if self.mode == "bar" and self.width > 0 then
    self:write("\n")
    self.width = 0
  end
  self:write(text .. "\n")
end

return progress
