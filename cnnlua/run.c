/* run.c - protected calls with a traceback, and Ctrl-C.
 *
 * A signal handler may not touch the Lua state beyond lua_sethook, which Lua documents as safe to
 * call from a signal. So an interrupt during a call sets a hook that raises "interrupted!" at the
 * next call, return, line or instruction count, and also asks the runtime to stop: a long C
 * operation (a convolution over a big batch, a backward pass) never reaches a hook, but it polls
 * the runtime's interrupt flag and fails with an "interrupted" error. While a loop defers
 * interrupts (cnn.defer_interrupts, as cnn.fit does), the first Ctrl-C is only recorded for it. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "cnn.h"
#include "cnnlua.h"

enum sigint_mode { MODE_DEFAULT, MODE_CALL, MODE_PROMPT };

static lua_State *interrupt_state;
static volatile sig_atomic_t sigint_mode = MODE_DEFAULT;
static volatile sig_atomic_t call_interrupt_pending;
static volatile sig_atomic_t prompt_interrupted;

void cnnlua_message(const char *msg) {
    fprintf(stderr, "%s: %s\n", CNNLUA_PROGNAME, msg);
    fflush(stderr);
}

int cnnlua_report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        cnnlua_message(msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

/* Turns the error object into a string (honouring __tostring) and appends a traceback. */
static int message_handler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1; /* an error object that describes itself is shown as it chooses */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Whether the hook fires on entry to the message handler: an error (typically the runtime's own
 * "...: interrupted") is already on its way to the prompt and must keep its message. */
static int entering_message_handler(lua_State *L, lua_Debug *ar) {
    if (ar->event != LUA_HOOKCALL || !lua_getinfo(L, "f", ar)) return 0;
    int is_handler = lua_tocfunction(L, -1) == message_handler;
    lua_pop(L, 1);
    return is_handler;
}

static void raise_interrupted(lua_State *L, lua_Debug *ar) {
    call_interrupt_pending = 0;
    lua_sethook(L, NULL, 0, 0);
    if (entering_message_handler(L, ar)) return;
    luaL_error(L, "interrupted!");
}

static void restore_default_and_reraise(int sig) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

static void on_sigint(int sig) {
    switch (sigint_mode) {
    case MODE_PROMPT:
        prompt_interrupted = 1;
        break;
    case MODE_CALL:
        if (call_interrupt_pending) {
            /* A second Ctrl-C before the first was honoured: something is stuck outside Lua and
             * the runtime (a blocking read, say); give up the way an unhandled SIGINT does. */
            restore_default_and_reraise(sig);
            break;
        }
        cnn_interrupt();
        if (!cnn_interrupt_pending()) {
            /* deferred (cnn.defer_interrupts): the running loop stops at its next clean point */
            static const char note[] = "\nfinishing the current step (Ctrl-C again to stop at once)\n";
            if (write(STDERR_FILENO, note, sizeof note - 1) < 0) { /* nothing to do about it */ }
            break;
        }
        call_interrupt_pending = 1;
        lua_sethook(interrupt_state, raise_interrupted,
                    LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
        break;
    default:
        restore_default_and_reraise(sig);
        break;
    }
}

void cnnlua_install_sigint(lua_State *L) {
    struct sigaction sa;
    interrupt_state = L;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: the prompt's select() must return EINTR so that Ctrl-C clears the line. */
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, NULL);
}

void cnnlua_set_prompt_mode(int at_prompt) {
    prompt_interrupted = 0;
    sigint_mode = at_prompt ? MODE_PROMPT : MODE_DEFAULT;
}

int cnnlua_take_prompt_interrupt(void) {
    int was = prompt_interrupted;
    prompt_interrupted = 0;
    return was;
}

int cnnlua_docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg; /* the function's index */
    lua_pushcfunction(L, message_handler);
    lua_insert(L, base);
    cnn_clear_interrupt();
    call_interrupt_pending = 0;
    sig_atomic_t outer_mode = sigint_mode; /* the REPL stays in prompt mode between calls */
    sigint_mode = MODE_CALL;
    int status = lua_pcall(L, narg, nres, base);
    sigint_mode = outer_mode;
    /* An interrupt that arrived after the last hook point must not fire in the next call; a hook
     * the program set itself (debug.sethook) stays. */
    if (lua_gethook(L) == raise_interrupted) lua_sethook(L, NULL, 0, 0);
    call_interrupt_pending = 0;
    cnn_clear_interrupt();
    lua_remove(L, base);
    return status;
}
