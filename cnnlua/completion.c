/* completion.c - tab completion of Lua names for readline.
 *
 * The word under the cursor is a path of identifiers: `cnn.ze`, `cnn.nn.Con`, `x:sh`. The part
 * before the last separator is looked up from the globals; the keys of what it names, and of the
 * __index tables of its metatables, are the candidates for the last part (after ':' only
 * functions). Looking up never runs a metamethod, so completion cannot raise an error or run user
 * code, with one exception made on purpose: a field that a table loads on first use (cnn.nn,
 * cnn.optim) is a Lua module on package.path, and completing into it requires that module. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <readline/readline.h>

#include "cnnlua.h"

enum { MAX_INDEX_DEPTH = 8, MAX_PATH = 256, MAX_CANDIDATES = 4096 };

static lua_State *completion_state;

/* The candidates of the current completion: full words, and what to type after a unique one. */
static char *candidates[MAX_CANDIDATES];
static char candidate_suffix[MAX_CANDIDATES];
static int candidate_count;
static size_t shown_prefix_len; /* listings show candidates without the part before the separator */

static const char *const keywords[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while", NULL};

static int is_keyword(const char *s) {
    for (int i = 0; keywords[i]; i++)
        if (strcmp(s, keywords[i]) == 0) return 1;
    return 0;
}

/* Letters, digits and '_', not starting with a digit; empty allowed (nothing typed yet). */
static int is_identifier_prefix(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalpha(c) || c == '_' || (i > 0 && isdigit(c)))) return 0;
    }
    return 1;
}

static int is_identifier(const char *s) {
    size_t len = strlen(s);
    return len > 0 && is_identifier_prefix(s, len) && !is_keyword(s);
}

static void clear_candidates(void) {
    for (int i = 0; i < candidate_count; i++) free(candidates[i]);
    candidate_count = 0;
}

/* What to type after a unique completion: '.' into a table, '(' to call a function. */
static char suffix_for(lua_State *L, int value) {
    switch (lua_type(L, value)) {
    case LUA_TTABLE: return '.';
    case LUA_TFUNCTION: return '(';
    default: return '\0';
    }
}

static void add_candidate(const char *prefix, const char *name, char suffix) {
    size_t plen = strlen(prefix), nlen = strlen(name);
    for (int i = 0; i < candidate_count; i++) /* a field shadows the same name further down */
        if (strcmp(candidates[i] + plen, name) == 0) return;
    if (candidate_count == MAX_CANDIDATES) return;
    char *word = malloc(plen + nlen + 1);
    if (!word) return;
    memcpy(word, prefix, plen);
    memcpy(word + plen, name, nlen + 1);
    candidate_suffix[candidate_count] = suffix;
    candidates[candidate_count++] = word;
}

/* Adds the keys of the table at index t that complete partial; after ':' only functions. */
static void add_table_keys(lua_State *L, int t, const char *prefix, const char *partial,
                           int methods_only) {
    size_t plen = strlen(partial);
    t = lua_absindex(L, t);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -2);
            if (strncmp(key, partial, plen) == 0 && is_identifier(key) &&
                (!methods_only || lua_type(L, -1) == LUA_TFUNCTION))
                add_candidate(prefix, key, suffix_for(L, -1));
        }
        lua_pop(L, 1);
    }
}

/* A C function as __index usually serves fields from tables it closes over (the method table of
 * a userdata type); those tables are its candidates. Lua closures are skipped: their upvalues
 * include _ENV and whatever else they happen to use. */
static void add_upvalue_tables(lua_State *L, int f, const char *prefix, const char *partial,
                               int methods_only) {
    if (!lua_iscfunction(L, f)) return;
    f = lua_absindex(L, f);
    for (int n = 1; lua_getupvalue(L, f, n) != NULL; n++) {
        if (lua_istable(L, -1)) add_table_keys(L, -1, prefix, partial, methods_only);
        lua_pop(L, 1);
    }
}

/* Whether modname is a Lua file on package.path (package.searchpath finds it). */
static int is_lua_module(lua_State *L, const char *modname) {
    int top = lua_gettop(L), found = 0;
    lua_getglobal(L, LUA_LOADLIBNAME);
    if (lua_istable(L, -1) && lua_getfield(L, -1, "searchpath") == LUA_TFUNCTION) {
        lua_pushstring(L, modname);
        lua_getfield(L, -3, "path");
        found = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_isstring(L, -1);
    }
    lua_settop(L, top);
    return found;
}

static int push_lua_module(lua_State *L, const char *modname);

/* Fields that a table loads on first use: the names the help index documents under path that are
 * Lua modules (path.name) on package.path. */
static void add_documented_fields(lua_State *L, const char *path, const char *prefix,
                                  const char *partial) {
    if (!push_lua_module(L, "cnn.help")) return;
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    size_t pathlen = strlen(path), plen = strlen(partial);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        if (strncmp(key, path, pathlen) == 0 && key[pathlen] == '.') {
            const char *field = key + pathlen + 1;
            char modname[MAX_PATH * 2];
            snprintf(modname, sizeof modname, "%s.%s", path, field);
            if (strncmp(field, partial, plen) == 0 && is_identifier(field) &&
                is_lua_module(L, modname))
                add_candidate(prefix, field, '.');
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Candidates from the value at index obj and the __index chain of its metatables. */
static void add_fields(lua_State *L, int obj, const char *path, const char *prefix,
                       const char *partial, int methods_only) {
    int top = lua_gettop(L);
    lua_pushvalue(L, obj);
    for (int depth = 0; depth < MAX_INDEX_DEPTH; depth++) {
        if (lua_istable(L, -1)) add_table_keys(L, -1, prefix, partial, methods_only);
        if (!lua_getmetatable(L, -1)) break;
        /* The bindings keep a userdata type's methods in its metatable's __methods table and
         * serve them (and properties such as x.grad) from an __index function. */
        lua_pushliteral(L, "__methods");
        if (lua_rawget(L, -2) == LUA_TTABLE)
            add_table_keys(L, -1, prefix, partial, methods_only);
        lua_pop(L, 1);
        lua_pushliteral(L, "__index");
        lua_rawget(L, -2);
        if (lua_isfunction(L, -1)) {
            add_upvalue_tables(L, -1, prefix, partial, methods_only);
            if (*path && !methods_only && lua_istable(L, -3))
                add_documented_fields(L, path, prefix, partial);
            break;
        }
        if (lua_isnil(L, -1)) break;
        lua_remove(L, -2); /* the metatable: the __index value is the next object */
    }
    lua_settop(L, top);
}

/* Pushes the module modname if it is loaded or is a Lua file on package.path; returns 0 and
 * pushes nothing otherwise. */
static int push_lua_module(lua_State *L, const char *modname) {
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, modname) != LUA_TNIL) {
        lua_remove(L, -2);
        return 1;
    }
    lua_settop(L, top);
    if (!is_lua_module(L, modname)) return 0;
    lua_getglobal(L, "require");
    lua_pushstring(L, modname);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_settop(L, top);
        return 0;
    }
    return 1;
}

/* Pushes obj[key] found through raw reads and __index tables; a table whose __index is a function
 * (fields loaded on demand) yields the module path.key. Returns 0 and pushes nothing if absent. */
static int push_field(lua_State *L, int obj, const char *key, const char *path) {
    int top = lua_gettop(L);
    lua_pushvalue(L, obj);
    for (int depth = 0; depth < MAX_INDEX_DEPTH; depth++) {
        if (lua_istable(L, -1)) {
            lua_pushstring(L, key);
            if (lua_rawget(L, -2) != LUA_TNIL) {
                lua_replace(L, top + 1);
                lua_settop(L, top + 1);
                return 1;
            }
            lua_pop(L, 1);
        }
        if (!lua_getmetatable(L, -1)) break;
        lua_pushliteral(L, "__index");
        lua_rawget(L, -2);
        if (lua_isfunction(L, -1) && *path && lua_istable(L, -3)) {
            char modname[MAX_PATH * 2];
            snprintf(modname, sizeof modname, "%s.%s", path, key);
            lua_settop(L, top);
            return push_lua_module(L, modname);
        }
        if (!lua_istable(L, -1)) break;
        lua_remove(L, -2);
    }
    lua_settop(L, top);
    return 0;
}

/* Fills the candidates for word, a partial path like "cnn.nn.Con" or "x:sh". */
static void collect_candidates(lua_State *L, const char *word) {
    clear_candidates();
    size_t len = strlen(word);
    if (len >= MAX_PATH) return;
    size_t sep = strcspn(word, ".:"); /* position of the first separator (or len) */
    const char *last_sep = NULL;
    for (const char *p = word; *p; p++)
        if (*p == '.' || *p == ':') last_sep = p;
    const char *partial = last_sep ? last_sep + 1 : word;
    /* ':' may only come last (x:method), and every part must be an identifier */
    if (strchr(word, ':') && strchr(word, ':') != last_sep) return;
    if (!is_identifier_prefix(partial, strlen(partial))) return;

    int top = lua_gettop(L);
    char prefix[MAX_PATH], path[MAX_PATH] = "";
    memcpy(prefix, word, (size_t)(partial - word));
    prefix[partial - word] = '\0';
    lua_pushglobaltable(L);
    const char *segment = word;
    while (segment < partial) {
        size_t seglen = strcspn(segment, ".:");
        char key[MAX_PATH];
        memcpy(key, segment, seglen);
        key[seglen] = '\0';
        if (!is_identifier(key) || !push_field(L, -1, key, path)) goto done;
        lua_remove(L, -2);
        if (*path) strcat(path, ".");
        strcat(path, key);
        segment += seglen + 1;
    }
    add_fields(L, -1, path, prefix, partial, last_sep && *last_sep == ':');
    if (sep == len) /* a bare word: keywords complete too */
        for (int i = 0; keywords[i]; i++)
            if (strncmp(keywords[i], word, len) == 0) add_candidate("", keywords[i], ' ');
done:
    lua_settop(L, top);
    shown_prefix_len = (size_t)(partial - word);
}

static char *next_candidate(const char *text, int state) {
    static int next;
    (void)text;
    if (state == 0) next = 0;
    return next < candidate_count ? strdup(candidates[next++]) : NULL;
}

/* Whether position end of the line lies inside a string literal or a comment, where words are
 * not names. Long brackets ([[ ]]) are not tracked: they are rare on a prompt line. */
static int in_string_or_comment(const char *line, int end) {
    char quote = 0;
    for (int i = 0; i < end && line[i]; i++) {
        char c = line[i];
        if (quote) {
            if (c == '\\' && i + 1 < end) i++; /* an escaped character */
            else if (c == quote) quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '-' && line[i + 1] == '-' && i + 1 < end) {
            return 1;
        }
    }
    return quote != 0;
}

static char **complete(const char *text, int start, int end) {
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    if (in_string_or_comment(rl_line_buffer, start)) return NULL;
    collect_candidates(completion_state, text);
    if (candidate_count == 0) return NULL;
    rl_completion_append_character = candidate_count == 1 ? candidate_suffix[0] : '\0';
    return rl_completion_matches(text, next_candidate);
}

/* Lists `zeros  ones  ...` rather than `cnn.zeros  cnn.ones  ...`. */
static void display_matches(char **matches, int count, int max_length) {
    char **shown = malloc(sizeof(char *) * (size_t)(count + 2));
    if (!shown) return;
    int longest = 0;
    shown[0] = matches[0];
    for (int i = 1; i <= count; i++) {
        size_t len = strlen(matches[i]);
        shown[i] = matches[i] + (len >= shown_prefix_len ? shown_prefix_len : len);
        if ((int)strlen(shown[i]) > longest) longest = (int)strlen(shown[i]);
    }
    shown[count + 1] = NULL;
    (void)max_length;
    rl_display_match_list(shown, count, longest);
    rl_forced_update_display();
    free(shown);
}

void cnnlua_completion_install(lua_State *L) {
    completion_state = L;
    /* '.' and ':' are not word breaks: the whole path is completed at once. */
    rl_completer_word_break_characters = " \t\n\"\\'><=;+-*/%^~#&|{}()[],?";
    rl_attempted_completion_function = complete;
    rl_completion_display_matches_hook = display_matches;
}
