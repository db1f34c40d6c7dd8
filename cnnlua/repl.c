/* repl.c - the read-eval-print loop.
 *
 * Each turn: read a line; `?name` shows help; otherwise try the line as an expression
 * (`return <line>`) so that its values are printed; failing that, compile it as statements and keep
 * reading continuation lines while the only complaint is an unexpected end of input; run it under
 * the traceback and Ctrl-C machinery of run.c; print whatever it returned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "cnn.h"
#include "cnnlua.h"

#define PROMPT "> "
#define CONTINUATION_PROMPT ">> "
#define CHUNKNAME "=stdin"
#define EOF_MARK "<eof>" /* how the parser names the end of input in its messages */

enum chunk_result {
    CHUNK_READY,   /* a compiled function is on the stack */
    CHUNK_ERROR,   /* a syntax error message is on the stack */
    CHUNK_NOTHING, /* nothing to run: a blank line, help, or input abandoned with Ctrl-C */
    CHUNK_EOF
};

/* The parser reports a chunk cut short with a message that ends in "<eof>". */
static int is_incomplete(lua_State *L, int status) {
    if (status != LUA_ERRSYNTAX) return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    const size_t marklen = sizeof(EOF_MARK) - 1;
    return len >= marklen && strcmp(msg + len - marklen, EOF_MARK) == 0;
}

/* An expression typed alone gets its values printed: compile "return <line>". */
static int compile_as_expression(lua_State *L, const char *line) {
    const char *code = lua_pushfstring(L, "return %s", line);
    int status = luaL_loadbuffer(L, code, strlen(code), CHUNKNAME);
    lua_remove(L, -2); /* the code */
    if (status != LUA_OK) lua_pop(L, 1);
    return status == LUA_OK;
}

/* Compiles the source on top of the stack, reading more lines while it is incomplete. Replaces the
 * source with the function or the error message. */
static enum chunk_result compile_statements(lua_State *L) {
    for (;;) {
        size_t len;
        const char *code = lua_tolstring(L, -1, &len);
        int status = luaL_loadbuffer(L, code, len, CHUNKNAME);
        if (!is_incomplete(L, status)) {
            cnnlua_history_add(code);
            lua_remove(L, -2);
            return status == LUA_OK ? CHUNK_READY : CHUNK_ERROR;
        }
        char *more;
        enum cnnlua_read_result r = cnnlua_read_line(CONTINUATION_PROMPT, &more);
        if (r != CNNLUA_LINE) {
            cnnlua_history_add(code);
            lua_remove(L, -2);
            if (r == CNNLUA_EOF) return CHUNK_ERROR; /* input ended inside the chunk: say so */
            lua_pop(L, 1);
            return CHUNK_NOTHING;
        }
        lua_pop(L, 1); /* the "<eof>" message */
        lua_pushliteral(L, "\n");
        lua_pushstring(L, more);
        lua_concat(L, 3);
        free(more);
    }
}

static void show_help(lua_State *L, const char *name) {
    size_t len = strlen(name);
    while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t')) len--;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cnn.help");
    int status = cnnlua_docall(L, 1, 1);
    if (status == LUA_OK) { /* the help table is callable: help(name) -> text */
        lua_pushlstring(L, name, len);
        status = cnnlua_docall(L, 1, 1);
    }
    if (status == LUA_OK) {
        const char *text = lua_tostring(L, -1);
        if (text) puts(text);
        fflush(stdout);
        lua_pop(L, 1);
    }
    cnnlua_report(L, status);
}

static enum chunk_result read_chunk(lua_State *L) {
    char *line;
    enum cnnlua_read_result r = cnnlua_read_line(PROMPT, &line);
    if (r == CNNLUA_EOF) return CHUNK_EOF;
    if (r == CNNLUA_INTERRUPTED) return CHUNK_NOTHING;
    const char *text = line + strspn(line, " \t");
    enum chunk_result result = CHUNK_NOTHING;
    if (*text == '?') {
        cnnlua_history_add(line);
        show_help(L, text + 1 + strspn(text + 1, " \t"));
    } else if (*text == '=') { /* "=expr", as Lua 5.3's prompt accepted */
        lua_pushfstring(L, "return %s", text + 1);
        result = compile_statements(L);
    } else if (*text != '\0') {
        if (compile_as_expression(L, line)) {
            cnnlua_history_add(line);
            result = CHUNK_READY;
        } else {
            lua_pushstring(L, line);
            result = compile_statements(L);
        }
    }
    free(line);
    return result;
}

/* Prints the values above base with the global print, as lua's prompt does. */
static void print_results(lua_State *L, int base) {
    int n = lua_gettop(L) - base;
    if (n <= 0) return;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, base + 1);
    int status = cnnlua_docall(L, n, 0);
    if (status != LUA_OK) {
        lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1));
        lua_remove(L, -2);
        cnnlua_report(L, status);
    }
}

static void print_banner(void) {
    printf("%s %s (%s) - ?name for help, Ctrl-D to quit\n", CNNLUA_PROGNAME, cnn_version(),
           LUA_VERSION);
    fflush(stdout);
}

void cnnlua_repl(lua_State *L) {
    int base = lua_gettop(L);
    cnnlua_input_open(L);
    print_banner();
    cnnlua_set_prompt_mode(1);
    enum chunk_result result;
    while ((result = read_chunk(L)) != CHUNK_EOF) {
        if (result == CHUNK_READY) {
            int status = cnnlua_docall(L, 0, LUA_MULTRET);
            if (status == LUA_OK)
                print_results(L, base);
            else
                cnnlua_report(L, status);
        } else if (result == CHUNK_ERROR) {
            cnnlua_report(L, LUA_ERRSYNTAX);
        }
        lua_settop(L, base);
    }
    cnnlua_set_prompt_mode(0);
    cnnlua_input_close();
    lua_settop(L, base);
    putchar('\n');
    fflush(stdout);
}
