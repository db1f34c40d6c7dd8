/* main.c - the cnnlua command line: `lua` with the cnn module loaded as the global `cnn`.
 *
 * It takes the same options as `lua` and runs them in the same order: parse the options, build
 * `arg`, open the libraries, LUA_INIT, the -e/-l/-W options from left to right, the script, then the
 * interactive prompt. Everything runs inside one protected call so that even an out-of-memory
 * error during startup is reported rather than aborting. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "cnn.h"
#include "cnnlua.h"

struct options {
    int script; /* argv index of the script ("-" is stdin), 0 when there is none */
    bool execute, interactive, version, help, no_env;
};

enum parse_result { PARSE_OK, PARSE_UNKNOWN, PARSE_MISSING_ARGUMENT };

static void print_usage(FILE *out) {
    fputs("usage: " CNNLUA_PROGNAME " [options] [script [args]]\n"
          "Lua " LUA_VERSION_MAJOR "." LUA_VERSION_MINOR
          " with the cnn module loaded as the global 'cnn'.\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -h        show this help\n"
          "  -E        ignore environment variables (LUA_INIT, LUA_PATH, LUA_CPATH)\n"
          "  -W        turn warnings on\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n"
          "Without a script or -e, an interactive prompt opens when stdin is a terminal.\n"
          "Environment: CNNLUA_PATH (directory of the cnn Lua library), CNNLUA_HISTORY (history\n"
          "file of the prompt, default ~/.cnnlua_history), LUA_INIT, LUA_PATH, LUA_CPATH.\n",
          out);
    fflush(out);
}

static void print_version(void) {
    printf("%s %s  (%s)\n", CNNLUA_PROGNAME, cnn_version(), LUA_COPYRIGHT);
    fflush(stdout);
}

/* An option that takes a value accepts it glued on (-eprint(1)) or as the next argument. */
static int takes_value(const char *opt) { return opt[1] == 'e' || opt[1] == 'l'; }

static enum parse_result parse_options(char **argv, struct options *o, int *bad) {
    for (int i = 1; argv[i] != NULL; i++) {
        const char *a = argv[i];
        *bad = i;
        if (a[0] != '-') {
            o->script = i;
            return PARSE_OK;
        }
        switch (a[1]) {
        case '\0': /* "-": the script is stdin */
            o->script = i;
            return PARSE_OK;
        case '-': /* "--": options end; what follows, if anything, is the script */
            if (a[2] != '\0') return PARSE_UNKNOWN;
            o->script = argv[i + 1] ? i + 1 : 0;
            return PARSE_OK;
        case 'E': case 'W': case 'i': case 'v': case 'h':
            if (a[2] != '\0') return PARSE_UNKNOWN;
            if (a[1] == 'E') o->no_env = true;
            if (a[1] == 'i') o->interactive = true;
            if (a[1] == 'v') o->version = true;
            if (a[1] == 'h') o->help = true;
            break;
        case 'e': case 'l':
            if (a[1] == 'e') o->execute = true;
            if (a[2] == '\0') {
                i++;
                if (argv[i] == NULL || argv[i][0] == '-') return PARSE_MISSING_ARGUMENT;
            }
            break;
        default:
            return PARSE_UNKNOWN;
        }
    }
    return PARSE_OK;
}

/* arg[0] is the script, arg[1..] its arguments, arg[-1..] the interpreter and its options. Without
 * a script arg[0] is the program itself. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
    lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int run_chunk(lua_State *L, int status) {
    if (status == LUA_OK) status = cnnlua_docall(L, 0, 0);
    return cnnlua_report(L, status);
}

static int run_string(lua_State *L, const char *code, const char *chunkname) {
    return run_chunk(L, luaL_loadbuffer(L, code, strlen(code), chunkname));
}

static int run_file(lua_State *L, const char *path) {
    return run_chunk(L, luaL_loadfile(L, path));
}

/* -l mod sets the global mod, -l g=mod the global g, to require "mod". */
static int require_into_global(lua_State *L, const char *spec) {
    const char *eq = strchr(spec, '=');
    const char *modname = eq ? eq + 1 : spec;
    size_t globlen = eq ? (size_t)(eq - spec) : strlen(spec);
    lua_getglobal(L, "require");
    lua_pushstring(L, modname);
    int status = cnnlua_docall(L, 1, 1);
    if (status == LUA_OK) {
        lua_pushlstring(L, spec, globlen);
        lua_insert(L, -2);
        lua_setglobal(L, lua_tostring(L, -2));
        lua_pop(L, 1); /* the name */
    }
    return cnnlua_report(L, status);
}

/* The -e, -l and -W options, left to right, up to the script. */
static int run_options(lua_State *L, char **argv, int end) {
    for (int i = 1; i < end; i++) {
        const char *a = argv[i];
        if (a[1] == 'W') {
            lua_warning(L, "@on", 0);
            continue;
        }
        if (!takes_value(a)) continue;
        const char *value = a[2] ? a + 2 : argv[++i];
        int status = a[1] == 'e' ? run_string(L, value, "=(command line)")
                                 : require_into_global(L, value);
        if (status != LUA_OK) return status;
    }
    return LUA_OK;
}

static int run_lua_init(lua_State *L) {
    const char *name = "=LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR;
    const char *init = getenv(name + 1);
    if (init == NULL) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (init == NULL) return LUA_OK;
    if (init[0] == '@') return run_file(L, init + 1);
    return run_string(L, init, name);
}

/* Runs the script with its arguments both in `arg` and as `...`. */
static int run_script(lua_State *L, char **argv, int script) {
    const char *path = argv[script];
    /* "-" is stdin, unless it came after "--": then it is a file called "-". */
    if (strcmp(path, "-") == 0 && strcmp(argv[script - 1], "--") != 0) path = NULL;
    int base = lua_gettop(L);
    int status = luaL_loadfile(L, path);
    if (status == LUA_OK) {
        if (lua_getglobal(L, "arg") != LUA_TTABLE) {
            lua_pop(L, 2);
            lua_pushliteral(L, "'arg' is not a table");
            return cnnlua_report(L, LUA_ERRRUN);
        }
        int n = (int)luaL_len(L, -1);
        luaL_checkstack(L, n + 3, "too many arguments to script");
        for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
        lua_remove(L, -n - 1); /* arg */
        status = cnnlua_docall(L, n, LUA_MULTRET);
    }
    cnnlua_report(L, status);
    lua_settop(L, base); /* the script's return values are not used */
    return status;
}

/* Everything, in a protected call: returns true when the program should exit successfully. */
static int protected_main(lua_State *L) {
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    struct options o = {0};
    int bad = 0;
    enum parse_result parsed = parse_options(argv, &o, &bad);
    if (parsed != PARSE_OK) {
        if (parsed == PARSE_MISSING_ARGUMENT)
            fprintf(stderr, "%s: '%s' needs argument\n", CNNLUA_PROGNAME, argv[bad]);
        else
            fprintf(stderr, "%s: unrecognized option '%s'\n", CNNLUA_PROGNAME, argv[bad]);
        print_usage(stderr);
        return 0;
    }
    if (o.help) {
        print_usage(stdout);
        lua_pushboolean(L, 1);
        return 1;
    }
    luaL_checkversion(L);
    if (o.no_env) { /* the package library reads this when it opens */
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    create_arg_table(L, argv, argc, o.script);
    lua_gc(L, LUA_GCRESTART);
    if (o.version) print_version();
    cnnlua_install_sigint(L);
    if (cnnlua_report(L, cnnlua_open_cnn(L)) != LUA_OK) return 0;
    if (!o.no_env && run_lua_init(L) != LUA_OK) return 0;
    if (run_options(L, argv, o.script ? o.script : argc) != LUA_OK) return 0;
    if (o.script && run_script(L, argv, o.script) != LUA_OK) return 0;
    if (o.interactive) {
        cnnlua_repl(L);
    } else if (!o.script && !o.execute && !o.version) {
        if (isatty(STDIN_FILENO))
            cnnlua_repl(L);
        else if (run_file(L, NULL) != LUA_OK) /* like `lua -`: stdin is the script */
            return 0;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv) {
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        cnnlua_message("cannot create state: not enough memory");
        return EXIT_FAILURE;
    }
    lua_gc(L, LUA_GCSTOP); /* no collections while the libraries open */
    lua_pushcfunction(L, protected_main);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = status == LUA_OK && lua_toboolean(L, -1);
    cnnlua_report(L, status);
    lua_close(L);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
