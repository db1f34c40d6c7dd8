#!/bin/sh
# The cnnlua command line, checked against what `lua` does: options, `arg`, stdin, exit statuses.
# usage: tests/repl/test_cli.sh path/to/cnnlua
# Prints `ok - name` / `not ok - name` per check and a summary line; exits 1 on any failure.

[ $# -eq 1 ] || { echo "usage: $0 path/to/cnnlua" >&2; exit 2; }
case "$1" in /*) CNNLUA=$1 ;; *) CNNLUA=$(pwd)/$1 ;; esac
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cnnlua-cli.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT
unset LUA_INIT LUA_INIT_5_4 CNNLUA_PATH
export HOME="$TMP" CNNLUA_HISTORY="$TMP/history"

passed=0
failed=0
# check NAME EXPECTED-STATUS EXPECTED-TEXT: the last command's status ($status) and its output
# ($out, stdout and stderr together) must match; EXPECTED-TEXT is a substring ("" for any).
check() {
    if [ "$status" = "$2" ] && case "$out" in *"$3"*) true ;; *) false ;; esac; then
        passed=$((passed + 1))
        echo "ok - $1"
    else
        failed=$((failed + 1))
        echo "not ok - $1"
        echo "#   status $status (expected $2), expected text: $3"
        printf '%s\n' "$out" | tail -n 8 | sed 's/^/#   /'
    fi
}
run() { out=$("$@" 2>&1); status=$?; }

# ---- -e, -l, -v, -h ----
run "$CNNLUA" -e 'print(1 + 1)'
check "-e runs a statement" 0 "2"
run "$CNNLUA" -e 'print(type(cnn), type(cnn.zeros), cnn.zeros(2, 3):numel())'
check "the global cnn is loaded" 0 "table	function	6"
run "$CNNLUA" -e 'x = 20' -e 'print(x + 22)'
check "several -e run in order" 0 "42"
run "$CNNLUA" -e 'print(arg[0] ~= nil, arg[1], arg[2])'
check "without a script arg[0] is the program" 0 "true	-e	print(arg[0] ~= nil, arg[1], arg[2])"
run "$CNNLUA" -e 'error("bad")'
check "an error in -e exits 1" 1 "cnnlua: (command line):1: bad"

mkdir -p "$TMP/lib"
echo 'return { answer = 42 }' > "$TMP/lib/mymod.lua"
run env LUA_PATH="$TMP/lib/?.lua;;" "$CNNLUA" -l mymod -e 'print(mymod.answer)'
check "-l mod sets the global mod" 0 "42"
run env LUA_PATH="$TMP/lib/?.lua;;" "$CNNLUA" -l m=mymod -e 'print(m.answer, mymod)'
check "-l g=mod sets the global g" 0 "42	nil"
run "$CNNLUA" -l no_such_module_anywhere
check "-l of a missing module exits 1" 1 "module 'no_such_module_anywhere' not found"

run "$CNNLUA" -v
check "-v prints the versions" 0 "Lua 5.4"
version=$("$CNNLUA" -e 'io.write(cnn.version and (type(cnn.version) == "function" and cnn.version() or cnn.version) or "")' 2>/dev/null)
case "$out" in "cnnlua ${version}"*) status=0 ;; *) status=1 ;; esac
check "-v names the cnnlua version" 0 ""
run "$CNNLUA" -h
check "-h prints the usage" 0 "usage: cnnlua [options] [script [args]]"
run "$CNNLUA" -x
check "an unknown option exits 1 with the usage" 1 "unrecognized option '-x'"
run "$CNNLUA" -e
check "-e without a statement exits 1" 1 "'-e' needs argument"
run "$CNNLUA" -W -e 'warn("careful")'
check "-W turns warnings on" 0 "Lua warning: careful"

# ---- scripts and arg ----
cat > "$TMP/args.lua" <<'EOF'
print("arg0=" .. arg[0], "n=" .. #arg, "a1=" .. tostring(arg[1]), "a2=" .. tostring(arg[2]))
print("dots=" .. table.concat({...}, ","), "neg1=" .. tostring(arg[-1] ~= nil))
EOF
run "$CNNLUA" "$TMP/args.lua" a "b c"
check "a script gets arg" 0 "arg0=$TMP/args.lua	n=2	a1=a	a2=b c"
check "a script gets its arguments as ..." 0 "dots=a,b c	neg1=true"
run "$CNNLUA" -e 'y = 1' "$TMP/args.lua" x
check "options before the script get negative indices" 0 "dots=x"
run "$CNNLUA" -e 'print(arg[-2], arg[-1])' "$TMP/args.lua"
check "arg[-2], arg[-1] are the options" 0 "-e	print(arg[-2], arg[-1])"
run "$CNNLUA" -- "$TMP/args.lua" -v
check "-- ends the options" 0 "a1=-v"

echo 'print("from stdin", ...)' > "$TMP/stdin.lua"
out=$("$CNNLUA" - p q < "$TMP/stdin.lua" 2>&1); status=$?
check "- runs stdin as the script" 0 "from stdin	p	q"
out=$(echo 'print(6 * 7)' | "$CNNLUA" 2>&1); status=$?
check "stdin that is not a terminal runs as a script" 0 "42"
out=$(printf '1 + 1\nerror("oops")\nfunction f(x)\nreturn x * 3\nend\nf(5)\n' | "$CNNLUA" -i 2>&1); status=$?
check "-i reads a piped prompt session" 0 "> 2"
check "the piped prompt continues after an error" 0 "15"

printf 'local t = {}\nerror("boom")\n' > "$TMP/fail.lua"
run "$CNNLUA" "$TMP/fail.lua"
check "a failing script exits 1 with its message" 1 "cnnlua: $TMP/fail.lua:2: boom"
check "the message has a traceback" 1 "stack traceback:"
printf 'x = = 1\n' > "$TMP/syntax.lua"
run "$CNNLUA" "$TMP/syntax.lua"
check "a syntax error exits 1" 1 "unexpected symbol"
run "$CNNLUA" "$TMP/no_such_file.lua"
check "a missing script exits 1" 1 "cannot open"
run "$CNNLUA" -e 'os.exit(3)'
check "os.exit sets the status" 3 ""
run "$CNNLUA" -e 'error(setmetatable({}, {__tostring = function() return "custom" end}))'
check "an error object with __tostring is shown" 1 "cnnlua: custom"
run "$CNNLUA" -e 'error({})'
check "an error table without __tostring is named" 1 "error object is a table value"
run "$CNNLUA" -e 'cnn.zeros(2, 3):view(4)'
check "a runtime error is a Lua error with shapes" 1 "2x3"

# ---- LUA_INIT ----
run env LUA_INIT='init_ran = 5' "$CNNLUA" -e 'print(init_ran)'
check "LUA_INIT runs first" 0 "5"
echo 'init_file = "yes"' > "$TMP/init.lua"
run env LUA_INIT="@$TMP/init.lua" "$CNNLUA" -e 'print(init_file)'
check "LUA_INIT=@file runs the file" 0 "yes"
run env LUA_INIT='print("one")' LUA_INIT_5_4='print("five four")' "$CNNLUA" -e ''
check "LUA_INIT_5_4 takes precedence" 0 "five four"
run env LUA_INIT='init_ran = 5' "$CNNLUA" -E -e 'print(init_ran)'
check "-E ignores LUA_INIT" 0 "nil"
run env LUA_INIT='error("in init")' "$CNNLUA" -e 'print("not reached")'
check "an error in LUA_INIT exits 1" 1 "LUA_INIT:1: in init"

# ---- help texts (scripts/cnn/help.lua, shown by ?name at the prompt) ----
run "$CNNLUA" -e 'x = cnn.zeros(2); print(cnn.help("x:view"))'
check "help for a method of a tensor value" 0 "x:view(d1, d2, ...)"
run "$CNNLUA" -e 'print(cnn.help("cnn.exp"))'
check "help for a function that is also a method" 0 "cnn.exp is cnn.Tensor:exp"
run "$CNNLUA" -e 'print(cnn.help("conv"))'
check "help for an unknown name suggests documented ones" 0 "cnn.conv2d"
run "$CNNLUA" -e 'print(cnn.help("string"))'
check "help for an undocumented table lists its fields" 0 "string: table with fields:"
run "$CNNLUA" -e 'print(cnn.help("cnn"))'
check "help for a namespace lists what it holds" 0 "manual_seed"
# Every function of the core and every tensor method has a text, so that ?name always helps.
run "$CNNLUA" -e '
local help, missing = require "cnn.help", {}
for name, v in pairs(cnn) do
  if type(v) == "function" and not name:match("^_") and not help("cnn." .. name):match("\n") then
    missing[#missing + 1] = "cnn." .. name
  end
end
for name in pairs(cnn.Tensor) do
  if not rawget(help, "cnn.Tensor:" .. name) then missing[#missing + 1] = "cnn.Tensor:" .. name end
end
table.sort(missing)
print(#missing == 0 and "all documented" or "undocumented in scripts/cnn/help.lua: " .. table.concat(missing, " "))'
check "every core function and tensor method has a help text" 0 "all documented"

# ---- finding the Lua library ----
mkdir -p "$TMP/bin"
ln -s "$CNNLUA" "$TMP/bin/cnnlua"
out=$(cd "$TMP" && "$TMP/bin/cnnlua" -e 'print(type(cnn.zeros))' 2>&1); status=$?
check "a symlinked cnnlua finds its scripts from any directory" 0 "function"
mkdir -p "$TMP/scripts/cnn"
echo 'return { replaced = true, core = require "cnn.core" }' > "$TMP/scripts/cnn/init.lua"
run env CNNLUA_PATH="$TMP/scripts" "$CNNLUA" -e 'print(cnn.replaced, type(cnn.core.zeros))'
check "CNNLUA_PATH overrides the scripts directory" 0 "true	function"
run "$CNNLUA" -e 'print(package.loaded["cnn.nn"], package.loaded["cnn.help"])'
check "startup loads no submodule" 0 "nil	nil"

# ---- Ctrl-C ----
# interrupt_when_ready SCRIPT: runs SCRIPT (which creates the file named by its first argument once
# it is busy), sends SIGINT then, and sets $status and $out.
interrupt_when_ready() {
    rm -f "$TMP/ready"
    "$CNNLUA" "$1" "$TMP/ready" > "$TMP/int.out" 2>&1 &
    pid=$!
    tries=0
    while [ ! -e "$TMP/ready" ] && [ $tries -lt 1000 ] && kill -0 $pid 2>/dev/null; do
        sleep 0.01
        tries=$((tries + 1))
    done
    kill -INT $pid 2>/dev/null
    wait $pid
    status=$?
    out=$(cat "$TMP/int.out")
}

cat > "$TMP/loop.lua" <<'EOF'
io.open(arg[1], "w"):close()
while true do end
EOF
interrupt_when_ready "$TMP/loop.lua"
check "SIGINT stops a Lua loop with an error" 1 "interrupted!"

# One long C call (a backward pass over 100000 nodes, about 0.15 s): Lua's hook cannot fire inside
# it, so the message shows that the runtime's own interrupt check stopped it.
cat > "$TMP/backward.lua" <<'EOF'
local x = cnn.ones(4):requires_grad()
local y = x
for _ = 1, 100000 do y = y * 1.0001 end
local loss = y:sum()
io.open(arg[1], "w"):close()
loss:backward()
print("backward finished")
EOF
interrupt_when_ready "$TMP/backward.lua"
check "SIGINT stops a long runtime operation (backward)" 1 "backward: interrupted"

# cnn.fit defers the first Ctrl-C: the step in progress completes, then the state inside the epoch
# is saved and fit returns normally.
cat > "$TMP/fit.lua" <<'EOF'
local ready = arg[1]
local dir = ready:match("^(.*)/") .. "/fitrun"
cnn.manual_seed(1)
local x = cnn.randn(512, 8)
local labels = {}
for i = 1, 512 do labels[i] = i % 2 + 1 end
local ds = cnn.data.tensor_dataset(x, cnn.tensor(labels))
local model = cnn.nn.Sequential {cnn.nn.Linear(8, 64), cnn.nn.ReLU(), cnn.nn.Linear(64, 2)}
local signalled = false
local h = cnn.fit(model, cnn.data.loader(ds, {batch_size = 4}), {epochs = 1000, checkpoint = dir, progress = "line",
  callbacks = {on_batch_end = function(b)
    if not signalled and b == 2 then
      signalled = true
      io.open(ready, "w"):close()
    end
  end}})
local _, meta = cnn.load(dir .. "/last.safetensors")
print("returned: interrupted " .. tostring(h.interrupted) .. ", saved after batch " .. tostring(meta["fit.batch"]))
EOF
interrupt_when_ready "$TMP/fit.lua"
check "SIGINT in cnn.fit finishes the step" 0 "finishing the current step (Ctrl-C again to stop at once)"
check "SIGINT in cnn.fit saves inside the epoch and returns" 0 "returned: interrupted true, saved after batch"

# Two threads pin themselves to a core each; a cnnlua started from the pinned main thread gets the
# CPUs back (on a single core nothing is pinned, and the check holds trivially).
cat > "$TMP/pin.lua" <<'EOF'
local function cpus() return io.open("/proc/self/status"):read("a"):match("Cpus_allowed_list:%s*(%S+)") end
local before = cpus()
cnn.set_num_threads(2)
cnn.conv2d(cnn.randn(32, 64, 8, 8), cnn.randn(64, 64, 3, 3), nil, {padding = 1})
local child = io.popen(string.format("%q -e %q", arg[-1],
  'print(io.open("/proc/self/status"):read("a"):match("Cpus_allowed_list:%s*(%S+)"))')):read("l")
print(string.format("pinned %s, child %s", tostring(before ~= cpus() or not before:find("[-,]")),
                    tostring(child == before)))
EOF
run env -u OMP_PROC_BIND -u GOMP_CPU_AFFINITY -u CNN_PIN_THREADS "$CNNLUA" "$TMP/pin.lua"
check "two threads are pinned and a child process gets the CPUs back" 0 "pinned true, child true"

echo "CLI tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
