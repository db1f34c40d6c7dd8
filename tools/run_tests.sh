#!/bin/sh
# Runs every test suite and ends with one summary line "N passed, M failed".
#   C unit tests, the busted specs under stock lua5.4 and under cnnlua, the LuaJIT FFI test,
#   the cnnlua command-line and REPL tests, and the GC memory test.
# BUILD selects the build directory (default: build).
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
total_pass=0
total_fail=0
failed_suites=""

# record NAME PASSED FAILED STATUS
record() {
    total_pass=$((total_pass + $2))
    failed=$3
    # a suite that crashed or exited non-zero without counting a failure still fails
    if [ "$4" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
    total_fail=$((total_fail + failed))
    [ "$failed" != 0 ] && failed_suites="$failed_suites $1"
    printf '%-28s %5d passed, %d failed\n' "$1" "$2" "$failed"
}

# run_plain NAME COMMAND...: suites that print "... N passed, M failed" as their last counting line
run_plain() {
    name=$1; shift
    "$@" > "$LOG/$name.out" 2>&1
    status=$?
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$LOG/$name.out" | tail -n 1)
    p=$(echo " $line" | sed -E 's/.*[^0-9]([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo " $line" | sed -E 's/.*[^0-9]([0-9]+) passed, ([0-9]+) failed.*/\2/')
    [ -z "$line" ] && p=0 && f=0
    [ "$status" != 0 ] && grep -vE '^(ok|PASS)' "$LOG/$name.out" | tail -n 40
    record "$name" "${p:-0}" "${f:-0}" "$status"
}

# run_busted NAME INTERPRETER...: busted's summary "N successes / N failures / N errors / N pending"
run_busted() {
    name=$1; shift
    LUA_PATH="$ROOT/scripts/?.lua;$ROOT/scripts/?/init.lua;$ROOT/tests/spec/?.lua;;" \
    LUA_CPATH="$ROOT/$BUILD/lua/?.so;;" \
        "$@" /usr/bin/busted -o plainTerminal tests/spec > "$LOG/$name.out" 2>&1
    status=$?
    line=$(grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$LOG/$name.out" | tail -n 1)
    p=$(echo "$line" | sed -E 's/^([0-9]+) success.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failures? \/ ([0-9]+) error.*/\1 \2/' | awk '{print $1 + $2}')
    [ -z "$line" ] && p=0 && f=0
    [ "$status" != 0 ] && tail -n 60 "$LOG/$name.out"
    record "$name" "${p:-0}" "${f:-0}" "$status"
}

echo "== cnnlua tests ($BUILD)"
run_plain "C unit tests" "$BUILD/tests/c/run_tests"
run_busted "specs (lua5.4)" lua5.4
run_busted "specs (cnnlua)" "$BUILD/cnnlua"
run_plain "LuaJIT FFI" luajit tests/ffi/test_ffi.lua "$BUILD" "$ROOT"
run_plain "cnnlua command line" sh tests/repl/test_cli.sh "$BUILD/cnnlua"
run_plain "REPL (pseudo-terminal)" python3 tests/repl/test_repl.py "$BUILD/cnnlua"
run_plain "GC memory" env LUA_PATH="$ROOT/scripts/?.lua;$ROOT/scripts/?/init.lua;;" \
    LUA_CPATH="$ROOT/$BUILD/lua/?.so;;" lua5.4 tests/memory/gc_test.lua
grep -h '^gc:' "$LOG/GC memory.out"
run_plain "MPI" sh tests/mpi/run.sh "$BUILD"

echo
[ -n "$failed_suites" ] && echo "failing suites:$failed_suites"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
