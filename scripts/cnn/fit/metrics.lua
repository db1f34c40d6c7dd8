-- Metrics for cnn.fit and cnn.evaluate, each a function of a batch's output and target returning
-- the sum of the metric over the batch (so that epoch values are exact means over examples,
-- whatever the batch sizes).
--
--   "accuracy"         class scores N x C against labels 1..C (the arg max is the prediction)
--   "top5", "top3"...  whether the label is among the k highest scores (ties count against)
--   "binary_accuracy"  probabilities N or N x 1 against 0/1 targets, threshold 0.5
--   {name = "...", fn = function(output, target) return batch_sum end}   a metric of your own
local cnn = require "cnn"

local metrics = {}

local function shape_str(t) return table.concat(t:shape(), "x") end

local function class_scores(name, output, target)
  if output:dim() ~= 2 or target:dim() ~= 1 or output:size(1) ~= target:size(1) then
    error(string.format("%s: expects class scores N x C and labels N (got output %s, target %s)", name,
                        shape_str(output), shape_str(target)), 0)
  end
end

function metrics.accuracy(output, target)
  class_scores("accuracy", output, target)
  return output:argmax(2):eq(target):sum():item()
end

-- Top-k: the label's score is beaten by fewer than k others.
function metrics.top_k(k)
  local name = "top" .. k
  return function(output, target)
    class_scores(name, output, target)
    local n, c = output:size(1), output:size(2)
    local is_label = cnn.arange(1, c + 1):view(1, c):eq(target:view(n, 1)) -- (N, C) one-hot
    local label_score = (output * is_label):sum(2, true)                   -- (N, 1)
    return output:gt(label_score):sum(2):lt(k):sum():item()
  end
end

function metrics.binary_accuracy(output, target)
  if output:numel() ~= target:numel() then
    error(string.format("binary_accuracy: output %s and target %s differ in size", shape_str(output),
                        shape_str(target)), 0)
  end
  return output:reshape(-1):gt(0.5):eq(target:reshape(-1)):sum():item()
end

-- Short names for progress lines.
local short = {accuracy = "acc", binary_accuracy = "acc"}

function metrics.short_name(name)
  local val, base = name:match("^(val_)(.*)$")
  base = base or name
  return (val or "") .. (short[base] or base)
end

-- The metric list of fit/evaluate options as {{name=, fn=}, ...}.
function metrics.resolve(list)
  local out = {}
  for i, m in ipairs(list or {}) do
    if type(m) == "string" then
      local k = tonumber(m:match("^top(%d+)$"))
      if m == "accuracy" or m == "binary_accuracy" then
        out[i] = {name = m, fn = metrics[m]}
      elseif k and k >= 1 then
        out[i] = {name = m, fn = metrics.top_k(k)}
      else
        error(string.format("metrics: unknown metric '%s' (known: accuracy, binary_accuracy, top5, ..., or "
                            .. "{name=, fn=})", m), 0)
      end
    elseif type(m) == "table" and type(m.name) == "string" and type(m.fn) == "function" then
      out[i] = {name = m.name, fn = m.fn}
    else
      error(string.format("metrics: entry %d must be a metric name or {name=, fn=}", i), 0)
    end
    if out[i].name == "loss" or out[i].name:match("^val_") then
      error(string.format("metrics: '%s' is a reserved name", out[i].name), 0)
    end
  end
  return out
end

return metrics
