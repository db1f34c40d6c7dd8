-- Temporary paths and whole-file reads and writes, shared by the specs that touch the file system:
--   local files = require "files"
--   files.temp_path(".safetensors")  -- a fresh path that does not exist yet
--   files.temp_dir()                 -- a fresh, empty directory;  files.remove_dir(dir) removes it
--   files.read_file(path) / files.write_file(path, bytes)
local files = {}

function files.temp_path(suffix)
  local base = os.tmpname()
  os.remove(base)
  return base .. (suffix or "")
end

function files.temp_dir()
  local dir = files.temp_path()
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  return dir
end

function files.remove_dir(dir)
  os.execute("rm -rf '" .. dir .. "'")
end

function files.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function files.write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

return files
