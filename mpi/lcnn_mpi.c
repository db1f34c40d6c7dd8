/* lcnn_mpi.c - cnn.mpi, the few MPI calls cnnlua needs to spread work over processes:
 *
 *   local mpi = require "cnn.mpi"
 *   mpi.init()                          -- once per process; finalized at exit
 *   mpi.rank(), mpi.size()              -- MPI's own 0-based rank numbers, as mpirun prints them
 *   mpi.send(dest, "text", tag?)        mpi.recv(source?, tag?) --> text, source, tag
 *   mpi.probe(source?, tag?)            -- non-blocking: source, tag of a waiting message, or nil
 *   mpi.barrier()
 *   mpi.allreduce(t | {t1, t2, ...}, "sum"|"mean"|"max"|"min", scale?)   -- float tensors, in place
 *   mpi.allreduce(number, op)  --> number
 *   mpi.broadcast(t | {t1, ...} | "text", root?)                   -- tensors in place; text returned
 *
 * The module is built apart from cnn.core (only where an MPI compiler exists) and must work on the
 * same tensors as the core that is already loaded. It therefore links no copy of the runtime: the
 * handful of runtime functions it calls (cnn_data, cnn_numel, cnn_is_contiguous, cnn_shape_string)
 * are looked up at load time in whichever loaded object defines them. The cnnlua program exports
 * them (it is linked with -rdynamic); under a stock lua5.4 they live in cnn/core.so, which Lua opened
 * with RTLD_LOCAL, so they are found by walking the loaded objects (dl_iterate_phdr) and asking each
 * with dlsym.
 *
 * Open MPI loads its transports as plugins, and builds whose plugins do not link libmpi themselves
 * expect its symbols to be global; a library opened by Lua's require is local, so libmpi is
 * re-opened with RTLD_GLOBAL before MPI_Init. */
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "lcnn.h"

#define MPI_STATE "cnn.mpi.state"

/* ---- the runtime functions of the loaded core ------------------------------------------------- */
static struct {
    float *(*data)(cnn_tensor *);
    int64_t (*numel)(const cnn_tensor *);
    int (*is_contiguous)(const cnn_tensor *);
    const char *(*shape_string)(const cnn_tensor *, char *, size_t);
} core;

struct symbol_search {
    const char *name;
    void *found;
};

static int search_object(struct dl_phdr_info *info, size_t size, void *data) {
    struct symbol_search *s = data;
    if (!info->dlpi_name || !*info->dlpi_name) return 0;
    void *handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle) return 0;
    s->found = dlsym(handle, s->name);
    dlclose(handle); /* RTLD_NOLOAD took a reference; the object stays loaded */
    return s->found != NULL;
}

static void *find_core_symbol(const char *name) {
    void *p = dlsym(RTLD_DEFAULT, name);
    if (p) return p;
    struct symbol_search s = {name, NULL};
    dl_iterate_phdr(search_object, &s);
    return s.found;
}

static void bind_core(lua_State *L) {
    /* The core first, so that its symbols are loaded before they are looked for. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cnn.core");
    lua_call(L, 1, 0);
    core.data = (float *(*)(cnn_tensor *))find_core_symbol("cnn_data");
    core.numel = (int64_t(*)(const cnn_tensor *))find_core_symbol("cnn_numel");
    core.is_contiguous = (int (*)(const cnn_tensor *))find_core_symbol("cnn_is_contiguous");
    core.shape_string =
        (const char *(*)(const cnn_tensor *, char *, size_t))find_core_symbol("cnn_shape_string");
    if (!core.data || !core.numel || !core.is_contiguous || !core.shape_string)
        luaL_error(L, "cnn.mpi: the loaded cnn.core does not export the runtime functions it needs");
}

/* ---- errors and state ------------------------------------------------------------------------- */
static int mpi_check(lua_State *L, int code, const char *what) {
    if (code == MPI_SUCCESS) return 0;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    return luaL_error(L, "mpi.%s: %s", what, text);
}

static int is_initialized(void) {
    int init = 0, done = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&done);
    return init && !done;
}

static void require_init(lua_State *L, const char *what) {
    if (!is_initialized()) luaL_error(L, "mpi.%s: call mpi.init() first", what);
}

static void finalize_if_running(void) {
    if (is_initialized()) MPI_Finalize();
}

/* Finalizes when the Lua state closes; atexit covers os.exit without closing the state. */
static int state_gc(lua_State *L) {
    finalize_if_running();
    return 0;
}

/* Makes libmpi's symbols global so that the plugins MPI_Init opens can bind to them. */
static void promote_libmpi(void) {
    Dl_info info;
    if (dladdr((void *)&MPI_Init, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

/* mpi.init() -> rank, size. Later calls return the same. */
static int l_init(lua_State *L) {
    int done = 0;
    MPI_Finalized(&done);
    if (done) return luaL_error(L, "mpi.init: MPI was already finalized in this process");
    if (!is_initialized()) {
        promote_libmpi();
        int argc = 0;
        char **argv = NULL;
        mpi_check(L, MPI_Init(&argc, &argv), "init");
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        atexit(finalize_if_running);
        lua_newuserdatauv(L, 1, 0);
        if (luaL_newmetatable(L, MPI_STATE)) {
            lua_pushcfunction(L, state_gc);
            lua_setfield(L, -2, "__gc");
        }
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, MPI_STATE);
    }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    lua_pushinteger(L, rank);
    lua_pushinteger(L, size);
    return 2;
}

static int l_initialized(lua_State *L) {
    lua_pushboolean(L, is_initialized());
    return 1;
}

static int l_finalize(lua_State *L) {
    finalize_if_running();
    return 0;
}

static int l_rank(lua_State *L) {
    require_init(L, "rank");
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    lua_pushinteger(L, rank);
    return 1;
}

static int l_size(lua_State *L) {
    require_init(L, "size");
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    lua_pushinteger(L, size);
    return 1;
}

static int l_processor_name(lua_State *L) {
    require_init(L, "processor_name");
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    mpi_check(L, MPI_Get_processor_name(name, &len), "processor_name");
    lua_pushlstring(L, name, (size_t)len);
    return 1;
}

static int l_wtime(lua_State *L) {
    lua_pushnumber(L, MPI_Wtime());
    return 1;
}

static int l_barrier(lua_State *L) {
    require_init(L, "barrier");
    mpi_check(L, MPI_Barrier(MPI_COMM_WORLD), "barrier");
    return 0;
}

/* ---- small messages -------------------------------------------------------------------------- */
static int check_rank_arg(lua_State *L, int i, const char *what) {
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    lua_Integer r = luaL_checkinteger(L, i);
    if (r < 0 || r >= size)
        luaL_error(L, "mpi.%s: rank %d is out of range 0..%d", what, (int)r, size - 1);
    return (int)r;
}

static int opt_tag(lua_State *L, int i, int any, const char *what) {
    if (lua_isnoneornil(L, i)) return any;
    lua_Integer tag = luaL_checkinteger(L, i);
    if (tag < 0 || tag > 32767) luaL_error(L, "mpi.%s: tag %d is out of range 0..32767", what, (int)tag);
    return (int)tag;
}

static int opt_source(lua_State *L, int i, const char *what) {
    if (lua_isnoneornil(L, i)) return MPI_ANY_SOURCE;
    return check_rank_arg(L, i, what);
}

/* mpi.send(dest, text, tag=0) */
static int l_send(lua_State *L) {
    require_init(L, "send");
    int dest = check_rank_arg(L, 1, "send");
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    int tag = opt_tag(L, 3, 0, "send");
    luaL_argcheck(L, len <= INT32_MAX, 2, "message longer than 2 GB");
    mpi_check(L, MPI_Send(text, (int)len, MPI_CHAR, dest, tag, MPI_COMM_WORLD), "send");
    return 0;
}

/* mpi.recv(source=any, tag=any) -> text, source, tag (blocks until a message arrives) */
static int l_recv(lua_State *L) {
    require_init(L, "recv");
    int source = opt_source(L, 1, "recv");
    int tag = opt_tag(L, 2, MPI_ANY_TAG, "recv");
    MPI_Status status;
    mpi_check(L, MPI_Probe(source, tag, MPI_COMM_WORLD, &status), "recv");
    int len = 0;
    MPI_Get_count(&status, MPI_CHAR, &len);
    luaL_Buffer b;
    char *buf = luaL_buffinitsize(L, &b, (size_t)len + 1);
    mpi_check(L, MPI_Recv(buf, len, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD,
                          MPI_STATUS_IGNORE), "recv");
    luaL_pushresultsize(&b, (size_t)len);
    lua_pushinteger(L, status.MPI_SOURCE);
    lua_pushinteger(L, status.MPI_TAG);
    return 3;
}

/* mpi.probe(source=any, tag=any) -> source, tag of a waiting message, or nil (never blocks) */
static int l_probe(lua_State *L) {
    require_init(L, "probe");
    int source = opt_source(L, 1, "probe");
    int tag = opt_tag(L, 2, MPI_ANY_TAG, "probe");
    int flag = 0;
    MPI_Status status;
    mpi_check(L, MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, &status), "probe");
    if (!flag) return 0;
    lua_pushinteger(L, status.MPI_SOURCE);
    lua_pushinteger(L, status.MPI_TAG);
    return 2;
}

/* ---- collectives on tensors ------------------------------------------------------------------ */
/* MPI counts are ints: large buffers go in pieces. */
enum { CHUNK = 1 << 28 };

/* Argument i as a list of contiguous tensors (one tensor counts as a list of one). Pushes the list
 * table (kept on the stack so the tensors stay alive) and returns the count. */
static int collect_tensors(lua_State *L, int i, const char *what, cnn_tensor ***out) {
    if (luaL_testudata(L, i, LCNN_TENSOR)) {
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, i);
        lua_rawseti(L, -2, 1);
    } else {
        luaL_checktype(L, i, LUA_TTABLE);
        lua_pushvalue(L, i);
    }
    int list = lua_gettop(L);
    int n = (int)luaL_len(L, list);
    cnn_tensor **ts = lua_newuserdatauv(L, sizeof(cnn_tensor *) * (size_t)(n > 0 ? n : 1), 0);
    lua_insert(L, list); /* the array lives below the list, both anchored on the stack */
    list++;
    for (int k = 1; k <= n; k++) {
        lua_geti(L, list, k);
        lcnn_tensor *u = luaL_testudata(L, -1, LCNN_TENSOR);
        if (!u) luaL_error(L, "mpi.%s: element %d is a %s, expected a tensor", what, k, luaL_typename(L, -1));
        if (!u->t) luaL_error(L, "mpi.%s: tensor %d is closed", what, k);
        if (!core.is_contiguous(u->t)) {
            char shape[64];
            luaL_error(L, "mpi.%s: tensor %d (%s) is not contiguous; pass t:contiguous() and copy back",
                       what, k, core.shape_string(u->t, shape, sizeof shape));
        }
        ts[k - 1] = u->t;
        lua_pop(L, 1);
    }
    *out = ts;
    return n;
}

/* Every rank must pass the same number of elements, or the collective would read past a buffer or
 * wait forever: one tiny reduction checks it first. */
static void check_same_count(lua_State *L, int64_t count, const char *what) {
    int64_t local[2] = {count, -count}, global[2];
    mpi_check(L, MPI_Allreduce(local, global, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), what);
    if (global[0] != -global[1])
        luaL_error(L, "mpi.%s: the ranks pass different sizes (%I to %I elements; this rank %I)", what,
                   (lua_Integer)-global[1], (lua_Integer)global[0], (lua_Integer)count);
}

static MPI_Op check_op(lua_State *L, int i, int *mean) {
    static const char *const names[] = {"sum", "mean", "max", "min", NULL};
    int k = luaL_checkoption(L, i, "sum", names);
    *mean = k == 1;
    return k == 2 ? MPI_MAX : k == 3 ? MPI_MIN : MPI_SUM;
}

/* mpi.allreduce(tensor | {tensors} | number, op="sum", scale=1) -- tensors in place; a number is
 * returned. Several tensors travel in one message (packed), which costs one latency instead of one
 * each. scale multiplies this rank's tensor values on their way in (a weighted sum of gradients
 * without a scaled copy of each). */
static int l_allreduce(lua_State *L) {
    require_init(L, "allreduce");
    int mean;
    MPI_Op op = check_op(L, 2, &mean);
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (lua_type(L, 1) == LUA_TNUMBER) {
        double v = lua_tonumber(L, 1), r;
        mpi_check(L, MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, op, MPI_COMM_WORLD), "allreduce");
        lua_pushnumber(L, mean ? r / size : r);
        return 1;
    }
    const float scale = (float)luaL_optnumber(L, 3, 1.0);
    cnn_tensor **ts;
    int n = collect_tensors(L, 1, "allreduce", &ts);
    int64_t total = 0;
    for (int k = 0; k < n; k++) total += core.numel(ts[k]);
    check_same_count(L, total, "allreduce");
    if (total == 0) return 0;
    float *packed;
    if (n == 1) {
        packed = core.data(ts[0]);
        if (scale != 1.0f)
            for (int64_t j = 0; j < total; j++) packed[j] *= scale;
    } else {
        packed = malloc(sizeof(float) * (size_t)total); /* (total,) */
        if (!packed) return luaL_error(L, "mpi.allreduce: out of memory packing %I floats", (lua_Integer)total);
        int64_t at = 0;
        for (int k = 0; k < n; k++) {
            int64_t m = core.numel(ts[k]);
            const float *src = core.data(ts[k]);
            for (int64_t j = 0; j < m; j++) packed[at + j] = src[j] * scale;
            at += m;
        }
    }
    /* an MPI error raises; the packed buffer must not leak, so the error is raised after freeing */
    int code = MPI_SUCCESS;
    for (int64_t at = 0; at < total && code == MPI_SUCCESS; at += CHUNK) {
        int m = (int)(total - at < CHUNK ? total - at : CHUNK);
        code = MPI_Allreduce(MPI_IN_PLACE, packed + at, m, MPI_FLOAT, op, MPI_COMM_WORLD);
    }
    if (code == MPI_SUCCESS) {
        if (mean)
            for (int64_t j = 0; j < total; j++) packed[j] /= (float)size;
        if (n > 1) {
            int64_t at = 0;
            for (int k = 0; k < n; k++) {
                int64_t m = core.numel(ts[k]);
                memcpy(core.data(ts[k]), packed + at, sizeof(float) * (size_t)m);
                at += m;
            }
        }
    }
    if (n > 1) free(packed);
    mpi_check(L, code, "allreduce");
    return 0;
}

/* mpi.broadcast(tensor | {tensors} | text, root=0) -- tensors are overwritten with root's values;
 * text is returned (root's text on every rank; the others may pass nil). */
static int l_broadcast(lua_State *L) {
    require_init(L, "broadcast");
    int root = lua_isnoneornil(L, 2) ? 0 : check_rank_arg(L, 2, "broadcast");
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (lua_type(L, 1) == LUA_TSTRING || (rank != root && lua_isnil(L, 1))) {
        size_t len = 0;
        const char *text = lua_tolstring(L, 1, &len);
        int64_t n = (int64_t)len;
        mpi_check(L, MPI_Bcast(&n, 1, MPI_INT64_T, root, MPI_COMM_WORLD), "broadcast");
        luaL_argcheck(L, n <= INT32_MAX, 1, "text longer than 2 GB");
        luaL_Buffer b;
        char *buf = luaL_buffinitsize(L, &b, (size_t)n + 1);
        if (rank == root) memcpy(buf, text, (size_t)n);
        mpi_check(L, MPI_Bcast(buf, (int)n, MPI_CHAR, root, MPI_COMM_WORLD), "broadcast");
        luaL_pushresultsize(&b, (size_t)n);
        return 1;
    }
    cnn_tensor **ts;
    int n = collect_tensors(L, 1, "broadcast", &ts);
    int64_t total = 0;
    for (int k = 0; k < n; k++) total += core.numel(ts[k]);
    check_same_count(L, total, "broadcast");
    for (int k = 0; k < n; k++) {
        float *data = core.data(ts[k]);
        int64_t m = core.numel(ts[k]);
        for (int64_t at = 0; at < m; at += CHUNK) {
            int c = (int)(m - at < CHUNK ? m - at : CHUNK);
            mpi_check(L, MPI_Bcast(data + at, c, MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast");
        }
    }
    return 0;
}

static const luaL_Reg functions[] = {
    {"init", l_init},         {"initialized", l_initialized}, {"finalize", l_finalize},
    {"rank", l_rank},         {"size", l_size},               {"processor_name", l_processor_name},
    {"wtime", l_wtime},       {"barrier", l_barrier},         {"send", l_send},
    {"recv", l_recv},         {"probe", l_probe},             {"allreduce", l_allreduce},
    {"broadcast", l_broadcast}, {NULL, NULL}};

int luaopen_cnn_mpi(lua_State *L) {
    bind_core(L);
    luaL_newlib(L, functions);
    int major = 0, minor = 0;
    MPI_Get_version(&major, &minor);
    lua_pushfstring(L, "MPI %d.%d", major, minor);
    lua_setfield(L, -2, "version");
    return 1;
}
