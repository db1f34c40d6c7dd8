-- Processes for the sweep, with nothing but the shell: starting a trial in the background, noticing
-- that it ended, stopping it, and the facts a launcher needs (own pid, cores, the interpreter).
--
-- A trial runs as `interpreter [options] script args...` inside a small sh wrapper that records the
-- child's pid in <dir>/pid.<driver> and, when the child ends, its exit status in <dir>/exit.<driver>
-- (written to a temporary name and renamed, so a reader never sees half of it); the driver polls
-- for that file. The driver's pid in the names keeps apart a trial left running by a driver that
-- was killed and the same trial started again by the next one.
local process = {}

function process.quote(s)
  s = tostring(s)
  if s:match("^[%w%./_=:,+-]+$") then return s end
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

local function capture(command)
  local pipe = io.popen(command, "r")
  if not pipe then return nil end
  local out = pipe:read("a")
  pipe:close()
  return out
end

-- The pid of this process: the parent of the shell io.popen starts.
local own_pid
function process.pid()
  if not own_pid then own_pid = math.tointeger(tonumber((capture("echo $PPID") or ""):match("%d+"))) end
  return own_pid
end

local has_proc = io.open("/proc/self/stat", "r")
if has_proc then has_proc:close() end

-- Whether a process is running (true when that cannot be told, i.e. without /proc).
function process.alive(pid)
  if not has_proc or not pid then return true end
  local f = io.open("/proc/" .. math.tointeger(pid) .. "/stat", "r")
  if not f then return false end
  local stat = f:read("l") or ""
  f:close()
  -- a zombie has ended; only its parent has not collected it yet
  return not stat:match("^%d+ %b() Z")
end

-- Sleeps without spinning; Ctrl-C raises "sweep: interrupted".
function process.sleep(seconds)
  process.execute(string.format("sleep %.3f", seconds))
end

-- Cores this process may run on (affinity-aware, so a rank bound to one core by mpirun sees one),
-- and all the cores of the machine.
function process.cores()
  local usable = math.tointeger(tonumber((capture("nproc 2>/dev/null") or ""):match("%d+")))
  local all = math.tointeger(tonumber((capture("nproc --all 2>/dev/null") or ""):match("%d+")))
  usable = usable or all or 1
  return usable, all or usable
end

-- The command that started this Lua: the interpreter and its options (arg[-n] .. arg[-1]).
function process.interpreter_argv()
  if type(arg) ~= "table" then return nil end
  local first = 0
  while arg[first - 1] ~= nil do first = first - 1 end
  if first == 0 then return nil end
  return table.move(arg, first, -1, 1, {})
end

-- Runs a shell command; true when it succeeded. A command killed by Ctrl-C raises
-- "sweep: interrupted". It goes through io.popen rather than os.execute: system() ignores SIGINT
-- in the waiting process, so a Ctrl-C landing just as a quick command ends would be lost, while
-- with popen the interpreter's own handler (lua, cnnlua) sees it and raises "interrupted!".
function process.execute(command)
  local pipe = io.popen(command, "r")
  if not pipe then return false end
  pipe:read("a")
  local ok, how, code = pipe:close()
  if ok then return true end
  if (how == "signal" and code == 2) or (how == "exit" and code == 130) then error("sweep: interrupted", 0) end
  return false
end

-- Trials and their wrapper get a session of their own (setsid, when the system has it), so that
-- Ctrl-C in the driver's terminal reaches the driver alone: it then stops the trials itself, and
-- neither a trial nor its wrapper dies half-way on its own.
local setsid
local function session_prefix()
  if setsid == nil then setsid = process.execute("command -v setsid >/dev/null 2>&1") and "setsid " or "" end
  return setsid
end

local function exit_file(dir) return string.format("%s/exit.%d", dir, process.pid()) end
local function pid_file(dir) return string.format("%s/pid.%d", dir, process.pid()) end

-- Starts `env NAME=value... argv... > log 2>&1` in the background; see the top of the file.
function process.launch(argv, env, dir, log)
  os.remove(exit_file(dir))
  os.remove(pid_file(dir))
  os.remove(log) -- a straggler from an earlier run keeps writing to its own (unlinked) file
  local words = {}
  local names = {}
  for name in pairs(env) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do words[#words + 1] = name .. "=" .. process.quote(env[name]) end
  for _, a in ipairs(argv) do words[#words + 1] = process.quote(a) end
  local exit, tmp = process.quote(exit_file(dir)), process.quote(exit_file(dir) .. ".tmp")
  local script = string.format("env %s </dev/null >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s; mv %s %s",
                               table.concat(words, " "), process.quote(log), process.quote(pid_file(dir)),
                               tmp, tmp, exit)
  if not process.execute(session_prefix() .. "sh -c " .. process.quote(script) .. " >/dev/null 2>&1 &") then
    error("sweep: could not start a shell to run a trial", 0)
  end
end

-- The exit status of a launched command once it has ended, else nil.
function process.exit_status(dir)
  local f = io.open(exit_file(dir), "r")
  if not f then return nil end
  local status = math.tointeger(tonumber(f:read("a"):match("%d+") or ""))
  f:close()
  return status or -1
end

function process.child_pid(dir)
  local f = io.open(pid_file(dir), "r")
  if not f then return nil end
  local pid = math.tointeger(tonumber(f:read("a"):match("%d+") or ""))
  f:close()
  return pid
end

-- Asks a launched command to stop (SIGTERM, then SIGKILL for one that lingers).
function process.kill(dir)
  local pid = process.child_pid(dir)
  if not pid then return end
  os.execute(string.format("kill %d 2>/dev/null; (sleep 2; kill -9 %d 2>/dev/null) >/dev/null 2>&1 &", pid, pid))
end

return process
