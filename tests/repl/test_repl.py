#!/usr/bin/env python3
"""Drives the cnnlua prompt through a pseudo-terminal, as a user at a keyboard would.

usage: test_repl.py path/to/cnnlua

Every read has a deadline, so a prompt that never comes fails its check instead of hanging.
Prints `ok - name` / `not ok - name` per check and a summary line; exits 1 on any failure.
"""
import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import sys
import tempfile
import termios
import time

READ_TIMEOUT = 3.0  # seconds to wait for any one expected output
PROMPT = b"> "
CTRL_C, CTRL_D, CTRL_P, CTRL_U = b"\x03", b"\x04", b"\x10", b"\x15"

results = []


def check(name, passed, detail=""):
    results.append(passed)
    print(("ok - " if passed else "not ok - ") + name)
    if not passed and detail:
        for line in detail.splitlines()[-12:]:
            print("#   " + line)


class Session:
    """One cnnlua process on the slave side of a pty; output is scanned from a moving mark."""

    def __init__(self, exe, env):
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(exe, [exe], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.out = b""
        self.mark = 0
        self.status = None

    def send(self, data):
        os.write(self.fd, data)

    def _read_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], remaining)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        self.out += chunk.replace(b"\x07", b"")  # the bell of an ambiguous completion
        return True

    def expect(self, pattern, timeout=READ_TIMEOUT):
        """True when pattern appears after the mark; the mark then moves past it."""
        deadline = time.monotonic() + timeout
        while True:
            at = self.out.find(pattern, self.mark)
            if at >= 0:
                self.mark = at + len(pattern)
                return True
            if not self._read_some(deadline):
                return False

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while self._read_some(deadline):
            pass
        self.mark = len(self.out)

    def recent(self):
        return self.out[-600:].decode("utf-8", "replace")

    def run(self, line, pattern, timeout=READ_TIMEOUT):
        """Sends a line and waits for pattern and then the next prompt."""
        self.send(line + b"\n")
        return self.expect(pattern, timeout) and self.expect(PROMPT, timeout)

    def wait_exit(self, timeout=READ_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read_some(min(deadline, time.monotonic() + 0.05))
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                return True
        return False

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        os.close(self.fd)


def main():
    if len(sys.argv) != 2:
        print("usage: test_repl.py path/to/cnnlua", file=sys.stderr)
        return 2
    exe = os.path.abspath(sys.argv[1])
    home = tempfile.mkdtemp(prefix="cnnlua-repl-")
    history = os.path.join(home, "history")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUA_INIT")}
    env.update(HOME=home, CNNLUA_HISTORY=history, TERM="dumb", INPUTRC=os.devnull)
    try:
        first_session(exe, env, history)
        second_session(exe, env)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    passed = sum(results)
    failed = len(results) - passed
    print(f"REPL tests: {passed} passed, {failed} failed")
    return 1 if failed else 0


def first_session(exe, env, history):
    s = Session(exe, env)
    try:
        check("banner and prompt", s.expect(b"?name for help") and s.expect(b"> "), s.recent())
        check("expression is auto-printed", s.run(b"1+1", b"\r\n2\r\n"), s.recent())
        check("several values are printed with tabs", s.run(b"1, 'a', nil", b"1\ta\tnil"), s.recent())
        check("leading = prints like lua 5.3", s.run(b"= 6*7", b"\r\n42\r\n"), s.recent())

        s.send(b"function f(x)\n")
        ok = s.expect(b">> ")
        s.send(b"return x*2\n")
        ok = ok and s.expect(b">> ")
        s.send(b"end\n")
        ok = ok and s.expect(PROMPT) and s.run(b"f(21)", b"\r\n42\r\n")
        check("multi-line function definition", ok, s.recent())

        s.send(b"cnn.ze\t")
        ok = s.expect(b"cnn.zeros")
        s.send(CTRL_U + b"\n")
        check("tab completes cnn.ze to cnn.zeros", ok and s.expect(PROMPT), s.recent())

        start = len(s.out)
        s.send(b"cnn.\t\t")
        ok = s.expect(b"manual_seed") and s.expect(PROMPT)
        listing = s.out[start:s.mark].decode("utf-8", "replace")
        s.send(CTRL_U + b"\n")
        ok = ok and s.expect(PROMPT)
        check("double tab lists the fields of cnn", ok and "arange" in listing and
              "zeros" in listing and "cnn.arange" not in listing, listing)

        s.send(b"cnn.optim.Ad\t")
        ok = s.expect(b"cnn.optim.Adam")
        s.send(CTRL_U + b"\n")
        check("tab completes into a submodule loaded on first use", ok and s.expect(PROMPT),
              s.recent())

        s.send(b"string.for\t")
        ok = s.expect(b"string.format(")
        s.send(CTRL_U + b"\n")
        check("completion of library functions adds (", ok and s.expect(PROMPT), s.recent())

        ok = s.run(b"x = cnn.zeros(2, 2)", b"x = cnn.zeros(2, 2)")
        s.send(b"x:sh\t")
        ok = ok and s.expect(b"x:shape")
        s.send(CTRL_U + b"\n")
        check("tab completes methods after :", ok and s.expect(PROMPT), s.recent())

        # The message is built at run time so that the echo of this line never contains it.
        ok = s.run(b"t = setmetatable({}, {__index = function() error('bo'..'om') end})", b"end})")
        s.drain(0.3)  # the terminal may still be echoing typed-ahead lines
        start = len(s.out)
        for word in (b"nosuchname.", b"t.a.", b"t.", b"x.y:z.", b"1x.", b"'cnn.ze", b"-- cnn.ze"):
            s.send(word + b"\t\t")
            time.sleep(0.1)
            s.send(CTRL_U + b"\n")
            ok = ok and s.expect(PROMPT)
        quiet = b"boom" not in s.out[start:] and b"zeros" not in s.out[start:]
        check("completion of unknown or invalid names is silent", ok and quiet and
              s.run(b"3+4", b"\r\n7\r\n"), s.recent())

        s.send(b"abc")
        time.sleep(0.2)
        s.send(CTRL_C)
        ok = s.expect(b"^C") and s.expect(b"> ")
        check("Ctrl-C at the prompt clears the line", ok and s.run(b"1+2", b"\r\n3\r\n"), s.recent())

        s.send(b"while true do end\n")
        time.sleep(0.4)
        s.send(CTRL_C)
        ok = s.expect(b"interrupted!") and s.expect(PROMPT)
        check("Ctrl-C interrupts a running loop", ok, s.recent())
        check("the prompt evaluates after an interrupt", s.run(b"2*21", b"\r\n42\r\n"), s.recent())

        s.send(b"function g()\n")
        s.expect(b">> ")
        s.send(CTRL_C)
        check("Ctrl-C abandons a multi-line chunk", s.expect(b"> ") and
              s.run(b"5+5", b"\r\n10\r\n"), s.recent())

        ok = s.run(b"error('boom')", b"boom") or False
        check("an error is printed with a traceback", ok and b"stack traceback" in s.out[-800:],
              s.recent())
        check("the prompt continues after an error", s.run(b"40+2", b"\r\n42\r\n"), s.recent())
        check("a syntax error is reported", s.run(b"1 +* 2", b"unexpected symbol"), s.recent())

        check("?cnn.zeros prints help", s.run(b"?cnn.zeros", b"cnn.zeros("), s.recent())
        check("?name of a table lists its fields", s.run(b"?string", b"format"), s.recent())

        check("a tensor prints its pretty form", s.run(b"cnn.zeros(2,2)", b"2x2"), s.recent())

        s.run(b"100+23", b"123")
        s.send(CTRL_D)
        check("Ctrl-D exits with status 0", s.wait_exit() and os.WIFEXITED(s.status) and
              os.WEXITSTATUS(s.status) == 0, s.recent())
    finally:
        s.close()
    try:
        with open(history, encoding="utf-8", errors="replace") as f:
            saved = f.read()
    except OSError:
        saved = ""
    check("history file written", "1+1" in saved and "100+23" in saved, saved)
    check("history keeps a multi-line chunk", "function f(x)\nreturn x*2\nend" in saved, saved)


def second_session(exe, env):
    s = Session(exe, env)
    try:
        ok = s.expect(b"?name for help") and s.expect(b"> ")
        s.send(CTRL_P + b"\n")
        check("history is read back in a new session", ok and s.expect(b"\r\n123\r\n"), s.recent())
        s.send(CTRL_D)
        s.wait_exit()
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
