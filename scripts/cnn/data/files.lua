-- Small file-system questions plain Lua can answer: whether a file can be read, and making a
-- directory (through the shell, the only way stock Lua has).
local files = {}

function files.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function files.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- mkdir -p; returns true, or false and a message.
function files.make_dir(dir)
  if os.execute("mkdir -p " .. files.shell_quote(dir) .. " 2>/dev/null") == true then return true end
  return false, "cannot create the directory " .. dir
end

return files
