-- PNG encoding in plain Lua: 8-bit RGB, no interlacing, every row with filter 0, and the zlib
-- stream made of "stored" (uncompressed) deflate blocks. A chart is mostly flat colour, so the
-- file is larger than a compressed one would be, but the encoder needs no library and is short
-- enough to check by eye against the specifications (PNG: W3C REC-PNG; zlib: RFC 1950;
-- deflate stored blocks: RFC 1951 section 3.2.4).
local png = {}

-- CRC-32 as PNG defines it (reflected polynomial 0xEDB88320), one table lookup per byte.
local crc_table = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do
    if c & 1 == 1 then c = 0xEDB88320 ~ (c >> 1) else c = c >> 1 end
  end
  crc_table[n] = c
end

function png.crc32(s, crc)
  crc = (crc or 0) ~ 0xFFFFFFFF
  local byte = string.byte
  for i = 1, #s do
    crc = crc_table[(crc ~ byte(s, i)) & 0xFF] ~ (crc >> 8)
  end
  return crc ~ 0xFFFFFFFF
end

-- Adler-32 of the uncompressed data (the zlib trailer). The sums are reduced every 4096 bytes,
-- well before they could leave Lua's exact integer range.
function png.adler32(s)
  local a, b = 1, 0
  local byte = string.byte
  local n = #s
  local i = 1
  while i <= n do
    local stop = math.min(i + 4095, n)
    for k = i, stop do
      a = a + byte(s, k)
      b = b + a
    end
    a, b = a % 65521, b % 65521
    i = stop + 1
  end
  return (b << 16) | a
end

local function chunk(kind, body)
  return string.pack(">I4", #body) .. kind .. body .. string.pack(">I4", png.crc32(kind .. body))
end

-- The zlib stream of raw bytes with stored blocks of at most 65535 bytes.
function png.zlib_stored(raw)
  local parts = {"\x78\x01"} -- deflate, 32K window, no dictionary, fastest; 0x7801 % 31 == 0
  local n, i = #raw, 1
  repeat
    local len = math.min(65535, n - i + 1)
    local final = (i + len > n) and 1 or 0
    parts[#parts + 1] = string.pack("<BI2I2", final, len, len ~ 0xFFFF)
    parts[#parts + 1] = raw:sub(i, i + len - 1)
    i = i + len
  until i > n
  parts[#parts + 1] = string.pack(">I4", png.adler32(raw))
  return table.concat(parts)
end

-- The PNG file of an RGB image given as a row function: row(y) returns the 3 * width bytes of row
-- y (1-based, top first) as a string.
function png.encode(width, height, row)
  local rows = {}
  for y = 1, height do rows[y] = "\0" .. row(y) end
  local ihdr = string.pack(">I4I4BBBBB", width, height, 8, 2, 0, 0, 0)
  return "\x89PNG\r\n\x1a\n" .. chunk("IHDR", ihdr) .. chunk("IDAT", png.zlib_stored(table.concat(rows)))
      .. chunk("IEND", "")
end

return png
