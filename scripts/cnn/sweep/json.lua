-- JSON for the sweep's records: configs, results, metrics and messages between processes.
--
-- Numbers survive a round trip exactly (a sampled learning rate must re-run bit for bit), integers
-- stay integers and floats stay floats (64 stays 64, 1.0 is written "1.0"); object keys are written
-- in sorted order so that equal tables give equal text. NaN and infinities, which JSON cannot hold,
-- are written as null. Tables are objects unless they are non-empty sequences (arrays).
-- Written here because the Lua JSON libraries Debian has do not round-trip doubles: dkjson writes
-- 0.1 + 0.2 as 0.3 (tostring's 14 digits) and lua-cjson allows at most 14 significant digits.
local json = {}

local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n',
                 ['\r'] = '\\r', ['\t'] = '\\t'}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- The shortest of %.15g, %.16g, %.17g that reads back as the same float.
local function encode_number(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  local s
  for digits = 15, 17 do
    s = string.format("%." .. digits .. "g", v)
    if tonumber(s) == v then break end
  end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function is_array(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function encode(v, out, seen)
  local kind = type(v)
  if kind == "nil" then
    out[#out + 1] = "null"
  elseif kind == "boolean" then
    out[#out + 1] = tostring(v)
  elseif kind == "number" then
    out[#out + 1] = encode_number(v)
  elseif kind == "string" then
    out[#out + 1] = encode_string(v)
  elseif kind == "table" then
    if seen[v] then error("json: a table refers to itself", 0) end
    seen[v] = true
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out, seen)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("json: object keys must be strings, got " .. type(k), 0) end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode(v[k], out, seen)
      end
      out[#out + 1] = "}"
    end
    seen[v] = nil
  else
    error("json: cannot encode a " .. kind, 0)
  end
end

function json.encode(v)
  local out = {}
  encode(v, out, {})
  return table.concat(out)
end

-- ---- decoding ----------------------------------------------------------------------------------
local Decoder = {}
Decoder.__index = Decoder

function Decoder:fail(what)
  error(string.format("json: %s at character %d", what, self.pos), 0)
end

function Decoder:skip()
  self.pos = self.text:find("[^ \t\r\n]", self.pos) or #self.text + 1
end

function Decoder:peek()
  self:skip()
  return self.text:sub(self.pos, self.pos)
end

function Decoder:string()
  local text, pos, parts = self.text, self.pos + 1, {}
  while true do
    local stop = text:find('["\\]', pos)
    if not stop then self:fail("unterminated string") end
    parts[#parts + 1] = text:sub(pos, stop - 1)
    if text:sub(stop, stop) == '"' then
      self.pos = stop + 1
      return table.concat(parts)
    end
    local c = text:sub(stop + 1, stop + 1)
    if c == "u" then
      local code = tonumber(text:sub(stop + 2, stop + 5), 16)
      if not code then self.pos = stop; self:fail("bad \\u escape") end
      parts[#parts + 1] = utf8.char(code)
      pos = stop + 6
    else
      local plain = ({b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/"})[c]
      if not plain then self.pos = stop; self:fail("bad escape") end
      parts[#parts + 1] = plain
      pos = stop + 2
    end
  end
end

function Decoder:value()
  local c = self:peek()
  local text = self.text
  if c == "{" then
    local obj = {}
    self.pos = self.pos + 1
    if self:peek() == "}" then self.pos = self.pos + 1; return obj end
    while true do
      if self:peek() ~= '"' then self:fail("expected a string key") end
      local key = self:string()
      if self:peek() ~= ":" then self:fail("expected ':'") end
      self.pos = self.pos + 1
      local v = self:value()
      if v ~= json.null then obj[key] = v end
      local sep = self:peek()
      self.pos = self.pos + 1
      if sep == "}" then return obj end
      if sep ~= "," then self.pos = self.pos - 1; self:fail("expected ',' or '}'") end
    end
  elseif c == "[" then
    local arr = {}
    self.pos = self.pos + 1
    if self:peek() == "]" then self.pos = self.pos + 1; return arr end
    while true do
      arr[#arr + 1] = self:value()
      local sep = self:peek()
      self.pos = self.pos + 1
      if sep == "]" then return arr end
      if sep ~= "," then self.pos = self.pos - 1; self:fail("expected ',' or ']'") end
    end
  elseif c == '"' then
    return self:string()
  end
  for word, v in pairs({["true"] = true, ["false"] = false, null = json.null}) do
    if text:sub(self.pos, self.pos + #word - 1) == word then
      self.pos = self.pos + #word
      return v
    end
  end
  local number = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", self.pos)
  local v = number and tonumber(number)
  if v == nil then self:fail(c == "" and "unexpected end" or "unexpected '" .. c .. "'") end
  self.pos = self.pos + #number
  return v
end

-- A unique value standing for null inside arrays; object fields that are null are simply absent.
json.null = setmetatable({}, {__tostring = function() return "null" end})

-- Decodes text; raises an error naming the position on malformed input.
function json.decode(text)
  local d = setmetatable({text = text, pos = 1}, Decoder)
  local v = d:value()
  if d:peek() ~= "" then d:fail("trailing characters") end
  if v == json.null then return nil end
  return v
end

-- Decodes text, or returns nil and the message. Errors other than malformed JSON (an interrupt
-- raised while decoding) go on up.
function json.try_decode(text)
  local ok, v = pcall(json.decode, text)
  if ok then return v end
  if type(v) ~= "string" or v:sub(1, 6) ~= "json: " then error(v, 0) end
  return nil, v
end

return json
