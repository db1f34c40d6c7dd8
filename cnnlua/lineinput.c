/* lineinput.c - reading the prompt's lines.
 *
 * On a terminal, GNU readline edits the line, completes names and keeps a history that persists in
 * a file. Readline is driven through its callback interface from a pselect() loop because Ctrl-C
 * must clear the line at once: a blocking readline() would only notice the signal at the next key.
 * Elsewhere (a pipe, a file) lines are read with plain stdio, the prompt still written to stdout. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "cnnlua.h"

enum { HISTORY_MAX_ENTRIES = 1000 };

static int use_readline;
static char history_path[PATH_MAX];

/* ---- history ---- */

static void history_open(void) {
    const char *path = getenv("CNNLUA_HISTORY");
    const char *home = getenv("HOME");
    if (path && *path)
        snprintf(history_path, sizeof history_path, "%s", path);
    else if (home && *home)
        snprintf(history_path, sizeof history_path, "%s/.cnnlua_history", home);
    else
        return; /* nowhere to keep it: history lives for this session only */
    /* Timestamps separate entries in the file, which lets a multi-line function come back as one
     * entry instead of one per line. */
    history_comment_char = '#'; /* timestamps are written as comment lines: "#1700000000" */
    history_write_timestamps = 1;
    history_multiline_entries = 1;
    stifle_history(HISTORY_MAX_ENTRIES);
    if (read_history(history_path) == ENOENT)
        write_history(history_path); /* appending needs the file to exist */
}

void cnnlua_history_add(const char *entry) {
    if (!use_readline || entry[strspn(entry, " \t")] == '\0') return;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, entry) == 0) return; /* the same line again adds nothing */
    add_history(entry);
    /* Appending each entry keeps it even if the session is killed, and merges with other sessions
     * instead of overwriting them. */
    if (history_path[0]) append_history(1, history_path);
}

/* ---- reading with readline ---- */

static char *finished_line;
static int line_finished;

static void on_line(char *line) {
    finished_line = line; /* NULL at end of input */
    line_finished = 1;
    rl_callback_handler_remove();
}

/* Leaves the typed text on screen, followed by ^C; the next prompt starts an empty line. */
static void abandon_line(void) {
    rl_free_undo_list();
    rl_callback_sigcleanup();
    rl_callback_handler_remove();
    fputs("^C\n", stdout);
    fflush(stdout);
}

static enum cnnlua_read_result read_with_readline(const char *prompt, char **line) {
    /* SIGINT stays blocked except inside pselect, so it cannot slip in between the check of the
     * flag and the wait, nor interrupt readline halfway through a key. */
    sigset_t block, original, waiting;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &original);
    waiting = original;
    sigdelset(&waiting, SIGINT);

    cnnlua_take_prompt_interrupt(); /* a Ctrl-C pressed before the prompt appeared is stale */
    line_finished = 0;
    finished_line = NULL;
    rl_callback_handler_install(prompt, on_line);
    enum cnnlua_read_result result = CNNLUA_LINE;
    while (!line_finished) {
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(STDIN_FILENO, &readable);
        int n = pselect(STDIN_FILENO + 1, &readable, NULL, NULL, NULL, &waiting);
        if (cnnlua_take_prompt_interrupt()) {
            abandon_line();
            result = CNNLUA_INTERRUPTED;
            break;
        }
        if (n < 0) {
            if (errno == EINTR) continue; /* another signal, e.g. a resized window */
            rl_callback_handler_remove();
            result = CNNLUA_EOF;
            break;
        }
        rl_callback_read_char();
    }
    sigprocmask(SIG_SETMASK, &original, NULL);
    if (result == CNNLUA_LINE) {
        if (finished_line == NULL) return CNNLUA_EOF;
        *line = finished_line;
    }
    return result;
}

/* ---- reading without a terminal ---- */

static enum cnnlua_read_result read_with_stdio(const char *prompt, char **line) {
    fputs(prompt, stdout);
    fflush(stdout);
    cnnlua_take_prompt_interrupt();
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, stdin);
    if (n < 0) {
        free(buf);
        if (cnnlua_take_prompt_interrupt()) {
            clearerr(stdin);
            fputc('\n', stdout);
            return CNNLUA_INTERRUPTED;
        }
        return CNNLUA_EOF;
    }
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
    *line = buf;
    return CNNLUA_LINE;
}

/* ---- the interface ---- */

void cnnlua_input_open(lua_State *L) {
    use_readline = isatty(STDIN_FILENO);
    if (!use_readline) return;
    rl_readline_name = "cnnlua"; /* for $if cnnlua in ~/.inputrc */
    rl_catch_signals = 0;        /* SIGINT is handled in run.c */
    cnnlua_completion_install(L);
    history_open();
}

void cnnlua_input_close(void) {
    if (use_readline && history_path[0]) history_truncate_file(history_path, HISTORY_MAX_ENTRIES);
}

enum cnnlua_read_result cnnlua_read_line(const char *prompt, char **line) {
    return use_readline ? read_with_readline(prompt, line) : read_with_stdio(prompt, line);
}
