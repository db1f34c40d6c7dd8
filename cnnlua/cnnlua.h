/* cnnlua.h - the pieces of the cnnlua program: a drop-in for the `lua` command line with the cnn
 * module preloaded as the global `cnn`, and an interactive prompt on top.
 *
 *   main.c        command line: options, the `arg` table, LUA_INIT, scripts
 *   run.c         protected calls with a traceback, Ctrl-C turned into a Lua error
 *   paths.c       where the Lua library lives; preloading and requiring `cnn`
 *   repl.c        the read-eval-print loop and `?name` help
 *   lineinput.c   reading lines: GNU readline with history on a terminal, plain stdio otherwise
 *   completion.c  tab completion of globals, fields and methods
 */
#ifndef CNNLUA_H
#define CNNLUA_H

#include <lua.h>

#define CNNLUA_PROGNAME "cnnlua"

/* ---- run.c ---- */

/* Calls the function below narg arguments on the stack, like lua_pcall, with a message handler that
 * appends a traceback and with Ctrl-C raising "interrupted!" (and stopping long runtime operations)
 * while it runs. Leaves nres results or the error message. */
int cnnlua_docall(lua_State *L, int narg, int nres);
/* When status is not LUA_OK, prints the message on top of the stack to stderr as "cnnlua: msg" and
 * pops it. Returns status. */
int cnnlua_report(lua_State *L, int status);
/* Prints "cnnlua: msg" to stderr. */
void cnnlua_message(const char *msg);
/* Installs the SIGINT handler once; L is the state whose hook an interrupt sets. */
void cnnlua_install_sigint(lua_State *L);
/* In prompt mode (the whole interactive session, between calls) Ctrl-C only sets a flag that
 * cnnlua_take_prompt_interrupt() reads and clears; the prompt then abandons its line. Outside
 * prompt mode and calls, Ctrl-C ends the process as an unhandled SIGINT does. */
void cnnlua_set_prompt_mode(int at_prompt);
int cnnlua_take_prompt_interrupt(void);

/* ---- paths.c ---- */

/* Registers package.preload["cnn.core"], puts the scripts directory in front of package.path and
 * sets the global `cnn` to require "cnn". Returns a Lua status; on error the message is on the
 * stack. */
int cnnlua_open_cnn(lua_State *L);

/* ---- repl.c ---- */

/* Runs the interactive loop until end of input. The stack is left as it was found. */
void cnnlua_repl(lua_State *L);

/* ---- lineinput.c ---- */

enum cnnlua_read_result { CNNLUA_LINE, CNNLUA_EOF, CNNLUA_INTERRUPTED };

/* Starts line input: readline with history and completion when stdin is a terminal. */
void cnnlua_input_open(lua_State *L);
void cnnlua_input_close(void);
/* Reads one line (without its newline) into *line (malloc'ed, the caller frees). */
enum cnnlua_read_result cnnlua_read_line(const char *prompt, char **line);
/* Remembers a complete entry (possibly several lines) in the history. */
void cnnlua_history_add(const char *entry);

/* ---- completion.c ---- */

/* Makes readline complete Lua names against the globals of L. */
void cnnlua_completion_install(lua_State *L);

#endif /* CNNLUA_H */
