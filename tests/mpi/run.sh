#!/bin/sh
# The MPI tests: a sweep spread over ranks (dynamic scheduling, one results file, resume, failing
# trials) and data-parallel training (gradients and weights equal to one process, by hand and through
# cnn.fit{distributed=true}), with 2 and 3
# ranks on this machine over loopback, under both stock lua5.4 and cnnlua.
# Usage: sh tests/mpi/run.sh [BUILD]. Ends with "MPI tests: N passed, M failed".
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
CNNLUA="$ROOT/$BUILD/cnnlua"

if ! command -v mpirun >/dev/null 2>&1 || [ ! -f "$BUILD/lua/cnn/mpi.so" ]; then
    echo "FAIL: no mpirun or no $BUILD/lua/cnn/mpi.so (make test installs openmpi-bin and libopenmpi-dev and builds it)"
    echo "MPI tests: 0 passed, 1 failed"
    exit 1
fi

export LUA_PATH="$ROOT/scripts/?.lua;$ROOT/scripts/?/init.lua;;"
export LUA_CPATH="$ROOT/$BUILD/lua/?.so;;"
# CI runs as root; Open MPI refuses that unless told. Loopback only, whatever the network.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export SWEEP_QUIET=1
mpi() {
    np=$1; shift
    timeout 120 mpirun --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo \
        --mca oob_tcp_if_include lo -np "$np" "$@"
}

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
LOG="$OUT/log"
: > "$LOG"

# run LABEL COMMAND...: the command's PASS/FAIL lines are kept; a failing command without a FAIL
# line counts as one failure.
run() {
    label=$1; shift
    "$@" > "$OUT/run.out" 2>&1
    status=$?
    grep -E '^(PASS|FAIL)' "$OUT/run.out" >> "$LOG"
    if [ "$status" != 0 ] && ! grep -q '^FAIL' "$OUT/run.out"; then
        echo "FAIL $label: exit status $status" >> "$LOG"
        tail -n 20 "$OUT/run.out"
    fi
}

run "data parallel, 2 ranks, lua5.4" mpi 2 lua5.4 tests/mpi/data_parallel.lua
run "data parallel, 3 ranks, cnnlua" mpi 3 "$CNNLUA" tests/mpi/data_parallel.lua
mkdir -p "$OUT/fit2" "$OUT/fit3"
run "fit distributed, 2 ranks, lua5.4" mpi 2 lua5.4 tests/mpi/fit_parallel.lua "$OUT/fit2"
run "fit distributed, 3 ranks, cnnlua" mpi 3 "$CNNLUA" tests/mpi/fit_parallel.lua "$OUT/fit3"

SWEEP=tests/spec/sweep/objective.lua
mkdir -p "$OUT/slow" "$OUT/faults"
# 6 trials of 0.4 s, one at a time per rank: dynamic scheduling spreads them
run "sweep over 3 ranks" mpi 3 lua5.4 "$SWEEP" slow "$OUT/slow" 1
run "sweep over 3 ranks" lua5.4 tests/mpi/check_sweep.lua "sweep over 3 ranks" "$OUT/slow" ok=6 ranks=2 starts=6
# the same sweep again: everything finished, nothing runs
run "resumed sweep" mpi 2 "$CNNLUA" "$SWEEP" slow "$OUT/slow" 1
run "resumed sweep" lua5.4 tests/mpi/check_sweep.lua "resumed sweep" "$OUT/slow" ok=6 starts=6
# crashing, erroring and NaN trials on ranks fail alone
run "failing trials over 2 ranks" mpi 2 "$CNNLUA" "$SWEEP" faults "$OUT/faults" 1
run "failing trials over 2 ranks" lua5.4 tests/mpi/check_sweep.lua "failing trials over 2 ranks" "$OUT/faults" ok=1 failed=6

cat "$LOG"
passed=$(grep -c '^PASS' "$LOG")
failed=$(grep -c '^FAIL' "$LOG")
echo "MPI tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
