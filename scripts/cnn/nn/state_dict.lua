-- State dicts of modules: model:state_dict(), model:state_dict_names(), model:load_state_dict(sd).
-- Installed into nn.Module by module.lua.
local cnn = require "cnn"

local function is_tensor(v) return cnn.is_tensor(v) end
local function shape_str(t) return table.concat(t:shape(), "x") end

return function(Module)

  -- model:state_dict() -> {["1.weight"] = tensor, ...}: parameters and buffers by dotted name. The
  -- tensors are the live ones (training changes them); state_dict{copy=true} gives detached copies,
  -- a snapshot to restore later. model:state_dict_names() lists the keys in traversal order.
  function Module:state_dict(opts)
    self:_build_if_possible()
    local sd = {}
    for _, entry in ipairs(self:named_state()) do
      local t = entry[2]
      if opts and opts.copy then t = cnn.no_grad(function() return t:detach():clone() end) end
      sd[entry[1]] = t
    end
    return sd
  end

  function Module:state_dict_names()
    self:_build_if_possible()
    local names = {}
    for _, entry in ipairs(self:named_state()) do names[#names + 1] = entry[1] end
    return names
  end

  local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    return keys
  end

  -- Lazily-sized layers still unbuilt can take their sizes from the tensors of a state dict
  -- (m:_build_from_state(sd, prefix) returns true when it did); returns the modules built so that a
  -- failed load can undo it.
  local function build_from_state(self, sd)
    local built = {}
    for _, nm in ipairs(self:named_modules()) do
      local m = nm[2]
      if rawget(m, "_lazy") and m._build_from_state then
        local prefix = nm[1] == "" and "" or nm[1] .. "."
        if m:_build_from_state(sd, prefix) then built[#built + 1] = m end
      end
    end
    return built
  end

  -- model:load_state_dict(sd, {strict=true}) copies the tensors of sd into the model's parameters and
  -- buffers (in place, so optimizers keep working). Everything is checked before anything is copied:
  -- a failed load leaves the model as it was. strict=true: keys missing from sd and keys of sd the
  -- model does not have are errors; with strict=false they are skipped and returned as
  -- {missing_keys={...}, unexpected_keys={...}}. Shape mismatches are always errors.
  function Module:load_state_dict(sd, opts)
    local fname = self.__name .. ":load_state_dict"
    if type(sd) ~= "table" then error(fname .. ": expected a table name -> tensor, got " .. type(sd), 2) end
    local strict = true
    if opts ~= nil then
      if type(opts) ~= "table" then error(fname .. ": options must be a table, got " .. type(opts), 2) end
      if opts.strict ~= nil then strict = opts.strict and true or false end
    end
    local built = build_from_state(self, sd)
    local problems, missing, unexpected, copies, expected = {}, {}, {}, {}, {}
    for _, entry in ipairs(self:named_state()) do
      local name, target = entry[1], entry[2]
      expected[name] = true
      local src = sd[name]
      if src == nil then
        missing[#missing + 1] = name
        if strict then
          problems[#problems + 1] = string.format("missing key '%s' (the model expects shape %s)", name, shape_str(target))
        end
      elseif not is_tensor(src) then
        problems[#problems + 1] = string.format("'%s' is a %s, expected a tensor of shape %s", name, type(src),
                                                shape_str(target))
      elseif shape_str(src) ~= shape_str(target) then
        problems[#problems + 1] = string.format("shape mismatch for '%s': the model has %s, the state dict has %s",
                                                name, shape_str(target), shape_str(src))
      else
        copies[#copies + 1] = {target, src}
      end
    end
    for _, name in ipairs(sorted_keys(sd)) do
      if not expected[name] then
        unexpected[#unexpected + 1] = tostring(name)
        if strict then
          local v = sd[name]
          problems[#problems + 1] = string.format("unexpected key '%s'%s: the model has no such parameter or buffer",
                                                  tostring(name), is_tensor(v) and " (shape " .. shape_str(v) .. ")" or "")
        end
      end
    end
    if #problems > 0 then
      for _, m in ipairs(built) do m:_unbuild() end
      local msg = fname .. ": " .. problems[1]
      if #problems > 1 then
        msg = msg .. string.format(" (and %d more problem%s:\n  %s)", #problems - 1, #problems > 2 and "s" or "",
                                   table.concat(problems, "\n  ", 2))
      end
      error(msg, 2)
    end
    cnn.no_grad(function()
      for _, c in ipairs(copies) do
        if c[1] ~= c[2] then c[1]:copy(c[2]) end
      end
    end)
    return {missing_keys = missing, unexpected_keys = unexpected}
  end
end
