-- model:summary(input_shape, {batch_size=1, quiet=false}) -> text, info
--
-- A Keras-like table of the layers a forward pass goes through: name (type), per-sample output
-- shape with the batch shown as N (Keras' None), own parameter count and, for convolutions, the
-- number of feature maps (output channels). input_shape leaves out the batch: {1, 28, 28}; without
-- it, the Keras input_shape of the first layer is used. The table is printed unless quiet is set and
-- returned as a string; info holds the same numbers for programs:
--   info.rows = {{name=, type=, output_shape={6, 28, 28} (per sample), params=, feature_maps=}, ...}
--   info.total_params, info.trainable_params, info.non_trainable_params (frozen), info.buffer_values,
--   info.convolutions, info.feature_maps, info.activation_bytes
--
-- How it works: one sample of zeros runs through the model in evaluation mode without recording
-- gradients (lazily-sized layers get built on the way). The forward of every leaf module, and of
-- every module owning parameters directly, is wrapped to record a row when it returns; a module
-- called twice gives two rows, its parameters counted on the first. Totals count every parameter
-- of the model once, whether or not the forward used it.
--
-- Activation memory is an estimate: the sum over the rows of the output elements x 4 bytes
-- (float32) x batch_size, for the forward pass only (training keeps about as much again for the
-- gradients).
-- Installed into nn.Module by module.lua.
local cnn = require "cnn"

local function group_digits(n)
  local s = tostring(math.floor(n))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local function format_bytes(b)
  if b >= 1024 * 1024 then return string.format("%.2f MB", b / (1024 * 1024)) end
  if b >= 1024 then return string.format("%.2f KB", b / 1024) end
  return string.format("%d bytes", b)
end

local function own_param_count(m)
  local n = 0
  local reg = rawget(m, "_parameters")
  for _, name in ipairs(reg.names) do n = n + reg.values[name]:numel() end
  return n
end

-- Per-sample shape text "(N, 6, 28, 28)" and element count of an output (tensor or table of them).
local function describe_output(out)
  if cnn.is_tensor(out) then
    local shape = out:shape()
    local parts, per_sample = {"N"}, 1
    for i = 2, #shape do
      parts[#parts + 1] = tostring(shape[i])
      per_sample = per_sample * shape[i]
    end
    if #shape == 0 then return "()", 1, {} end
    return "(" .. table.concat(parts, ", ") .. ")", per_sample, {table.unpack(shape, 2)}
  end
  if type(out) == "table" then
    local texts, total = {}, 0
    for _, o in ipairs(out) do
      local t, n = describe_output(o)
      texts[#texts + 1] = t
      total = total + n
    end
    return table.concat(texts, "; "), total, nil
  end
  return type(out), 0, nil
end

local function pad_right(s, w) return s .. string.rep(" ", w - #s) end
local function pad_left(s, w) return string.rep(" ", w - #s) .. s end

local function render(model_name, input_shape, rows, info, batch_size)
  local header = {"Layer (type)", "Output shape", "Param #", "Feature maps"}
  local cells = {}
  for i, r in ipairs(rows) do
    local label = r.name == "" and r.type or (r.name .. " (" .. r.type .. ")")
    cells[i] = {label, r.shape_text, group_digits(r.params), r.feature_maps and tostring(r.feature_maps) or ""}
  end
  local widths = {}
  for c = 1, 4 do
    widths[c] = #header[c]
    for _, row in ipairs(cells) do widths[c] = math.max(widths[c], #row[c]) end
  end
  local function line(row)
    return pad_right(row[1], widths[1]) .. "   " .. pad_right(row[2], widths[2]) .. "   " ..
           pad_left(row[3], widths[3]) .. "   " .. pad_left(row[4], widths[4])
  end
  local total_width = widths[1] + widths[2] + widths[3] + widths[4] + 9
  local out = {
    "Model: " .. model_name .. "    input: (N, " .. table.concat(input_shape, ", ") .. ")",
    string.rep("-", total_width), line(header), string.rep("=", total_width),
  }
  for _, row in ipairs(cells) do out[#out + 1] = line(row) end
  out[#out + 1] = string.rep("=", total_width)
  out[#out + 1] = "Total params: " .. group_digits(info.total_params)
  out[#out + 1] = "Trainable params: " .. group_digits(info.trainable_params)
  out[#out + 1] = "Non-trainable params: " .. group_digits(info.non_trainable_params) ..
                  (info.non_trainable_params > 0 and " (frozen)" or "")
  if info.buffer_values > 0 then
    out[#out + 1] = "Buffers (running statistics, not trained): " .. group_digits(info.buffer_values)
  end
  out[#out + 1] = string.format("Convolutions: %d, total feature maps: %s", info.convolutions,
                                group_digits(info.feature_maps))
  out[#out + 1] = string.format("Activation memory (forward, batch of %d): %s", batch_size,
                                format_bytes(info.activation_bytes))
  out[#out + 1] = string.rep("-", total_width)
  return table.concat(out, "\n")
end

return function(Module)

  function Module:summary(input_shape, opts)
    opts = opts or {}
    if type(opts) ~= "table" then error(self.__name .. ":summary: options must be a table, got " .. type(opts), 2) end
    local batch_size = opts.batch_size or 1
    if math.type(batch_size) ~= "integer" or batch_size < 1 then
      error(self.__name .. ":summary: batch_size must be a positive integer, got " .. tostring(batch_size), 2)
    end
    input_shape = input_shape or self:declared_input_shape()
    if input_shape == nil then
      error(self.__name .. ":summary: give the input shape without the batch dimension, e.g. model:summary{1, 28, 28}", 2)
    end

    -- wrap the forward of the modules that get rows
    local names, wrapped, rows, seen_params = {}, {}, {}, {}
    for _, nm in ipairs(self:named_modules()) do
      local m = nm[2]
      names[m] = nm[1]
      if #m:children() == 0 or #rawget(m, "_parameters").names > 0 then
        local own = rawget(m, "forward")
        local forward = own or m.forward
        wrapped[#wrapped + 1] = {m, own}
        rawset(m, "forward", function(mod, ...)
          local result = table.pack(forward(mod, ...))
          local out = result.n > 1 and {table.unpack(result, 1, result.n)} or result[1]
          local text, elements, shape = describe_output(out)
          local params = 0
          if not seen_params[mod] then
            seen_params[mod] = true
            params = own_param_count(mod)
          end
          local fm = nil
          if mod.reports_feature_maps and shape and #shape >= 1 then fm = shape[1] end
          rows[#rows + 1] = {name = names[mod], type = mod.__name, shape_text = text, output_shape = shape,
                             elements = elements, params = params, feature_maps = fm}
          return table.unpack(result, 1, result.n)
        end)
      end
    end
    local ok, err = pcall(self._dry_run, self, input_shape, function(x) return self:forward(x) end)
    for _, w in ipairs(wrapped) do rawset(w[1], "forward", w[2]) end
    if not ok then error(self.__name .. ":summary: " .. tostring(err), 2) end

    local info = {rows = rows, total_params = 0, trainable_params = 0, buffer_values = 0, convolutions = 0,
                  feature_maps = 0, activation_bytes = 0}
    for _, p in ipairs(self:parameters()) do
      info.total_params = info.total_params + p:numel()
      if p:needs_grad() then info.trainable_params = info.trainable_params + p:numel() end
    end
    info.non_trainable_params = info.total_params - info.trainable_params
    for _, b in ipairs(self:buffers()) do info.buffer_values = info.buffer_values + b:numel() end
    for _, r in ipairs(rows) do
      if r.feature_maps then
        info.convolutions = info.convolutions + 1
        info.feature_maps = info.feature_maps + r.feature_maps
      end
      info.activation_bytes = info.activation_bytes + r.elements * 4 * batch_size
    end
    local text = render(self.__name, input_shape, rows, info, batch_size)
    if not opts.quiet then print(text) end
    return text, info
  end
end
