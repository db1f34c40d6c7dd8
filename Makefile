# cnnlua build. `make` builds everything; `make test` and `make train` first install the Debian
# packages that are missing (see tools/deps.sh).

CC      ?= cc
OPT     ?= -O3 -march=native
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -fPIC -fopenmp -Wall -Wextra -Wno-unused-parameter -Iruntime -Ibindings \
           $(shell pkg-config --cflags lua5.4 openblas libcjson 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs openblas libcjson 2>/dev/null) -lstb -lz -lm -lpthread -ldl -fopenmp
LUA_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null)

BUILD   := build
RUNTIME_SRC  := $(wildcard runtime/*.c)
BINDINGS_SRC := $(wildcard bindings/*.c)
CNNLUA_SRC   := $(wildcard cnnlua/*.c)
TEST_C_SRC   := $(wildcard tests/c/*.c)

RUNTIME_OBJ  := $(RUNTIME_SRC:%.c=$(BUILD)/obj/%.o)
BINDINGS_OBJ := $(BINDINGS_SRC:%.c=$(BUILD)/obj/%.o)
CNNLUA_OBJ   := $(CNNLUA_SRC:%.c=$(BUILD)/obj/%.o)

LIB_A     := $(BUILD)/libcnn.a
LIB_SO    := $(BUILD)/libcnn.so
LUA_MOD   := $(BUILD)/lua/cnn/core.so
CNNLUA    := $(BUILD)/cnnlua
C_TESTS   := $(BUILD)/tests/c/run_tests

.PHONY: all deps deps-bench test test-c test-lua test-ffi test-repl train bench bench-quick clean
all: $(LIB_A) $(LIB_SO) $(LUA_MOD) $(CNNLUA)

deps:
	@sh tools/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB_A): $(RUNTIME_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(RUNTIME_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

$(LUA_MOD): $(BINDINGS_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(BINDINGS_OBJ) $(LIB_A) $(LDLIBS)

$(CNNLUA): $(CNNLUA_OBJ) $(BINDINGS_OBJ) $(LIB_A)
	$(CC) -rdynamic -o $@ $(CNNLUA_OBJ) $(BINDINGS_OBJ) $(LIB_A) $(LUA_LIBS) -lreadline $(LDLIBS) -ldl

# ---- cnn.mpi: the optional MPI module, built only where an MPI compiler (mpicc) exists ----------
# It links no copy of the runtime: it works on the tensors of the cnn.core already loaded in the
# process (see mpi/lcnn_mpi.c), so it needs the headers only.
MPICC   ?= mpicc
MPI_MOD := $(BUILD)/lua/cnn/mpi.so
ifneq ($(shell command -v $(MPICC) 2>/dev/null),)
all: $(MPI_MOD)
endif

$(MPI_MOD): mpi/lcnn_mpi.c bindings/lcnn.h runtime/cnn_api.h
	@mkdir -p $(dir $@)
	$(MPICC) $(OPT) -g -std=c11 -D_GNU_SOURCE -fPIC -Wall -Wextra -Wno-unused-parameter -Iruntime -Ibindings \
	    $(shell pkg-config --cflags lua5.4 2>/dev/null) -shared -o $@ $< -ldl
# ---- end of cnn.mpi --------------------------------------------------------------------------------

$(C_TESTS): $(TEST_C_SRC) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(TEST_C_SRC) $(LIB_A) $(LDLIBS)

# The tests: C unit tests, busted specs (under both cnnlua and stock lua5.4), LuaJIT FFI, the REPL.
test: deps
	@$(MAKE) --no-print-directory -j2 all $(C_TESTS)
	@BUILD=$(BUILD) sh tools/run_tests.sh

test-c: $(C_TESTS)
	$(C_TESTS)

train: deps
	@$(MAKE) --no-print-directory -j2 all
	$(CNNLUA) scripts/train.lua

# ---- the benchmark against PyTorch (bench/run.py, bench/README.md): about 7 minutes; bench-quick ~1 ----
SGEMM_PEAK := $(BUILD)/bench/sgemm_peak

CORE_LATENCY := $(BUILD)/bench/core_latency

$(SGEMM_PEAK): bench/sgemm_peak.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

$(CORE_LATENCY): bench/core_latency.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -lpthread

bench: deps-bench
	@$(MAKE) --no-print-directory -j2 all $(SGEMM_PEAK) $(CORE_LATENCY)
	/usr/bin/python3 bench/run.py --build $(BUILD)

bench-quick: deps-bench
	@$(MAKE) --no-print-directory -j2 all $(SGEMM_PEAK) $(CORE_LATENCY)
	/usr/bin/python3 bench/run.py --build $(BUILD) --quick

deps-bench:
	@sh tools/deps.sh bench

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
