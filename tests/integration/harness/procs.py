"""Processes and waits: the repository's paths, the timeout scale, free
ports, bounded waits for a port, stopping a process by its PID (never by
name), the sanitizer reports of a postern build, and the base every daemon
started here shares (_Daemon: a process, a temporary directory, a log).

Every process started by the harness is in _live until it is stopped; the
ones a caller forgot are stopped at interpreter exit."""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/integration
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

# Slow builds (the sanitizer build: make integration-asan) stretch the
# harness's waits by this factor; what a test asserts stays the same.
TIMEOUT_SCALE = float(os.environ.get("POSTERN_TIMEOUT_SCALE") or 1.0)

IO_TIMEOUT = 10.0 * TIMEOUT_SCALE  # seconds, for every socket operation in the tests

# Where a sanitizer build of postern writes its reports (ASAN_OPTIONS and
# UBSAN_OPTIONS log_path=DIR/asan, DIR/ubsan: one file per process, named
# by its PID), or None.
SANITIZER_LOGS = os.environ.get("POSTERN_SANITIZER_LOGS") or None


def sanitizer_reports(pid=None):
    """The sanitizer report files, as {path: text}: all of them, or only
    those of process pid.  Empty when no sanitizer log directory is set."""
    if not SANITIZER_LOGS or not os.path.isdir(SANITIZER_LOGS):
        return {}
    out = {}
    for name in sorted(os.listdir(SANITIZER_LOGS)):
        if pid is not None and name.rsplit(".", 1)[-1] != str(pid):
            continue
        path = os.path.join(SANITIZER_LOGS, name)
        out[path] = _read(path)
    return out

# Processes started here and not yet stopped: stopped at interpreter exit if a
# caller forgot (or was interrupted before its own cleanup ran).
_live = set()


def _stop_all_at_exit():
    for obj in list(_live):
        try:
            obj.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all_at_exit)


_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago, and
    never one this process handed out before (the kernel may offer a port
    again once its probe socket is closed)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port after 200 tries")


def wait_port(port, timeout=10.0, host="127.0.0.1", alive=None):
    """Wait until host:port accepts a TCP connection.  alive() (optional)
    returns False when the process that should listen has died, which ends
    the wait early.  Returns True when the port accepts, False otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_pid(proc, term_timeout=10.0):
    """SIGTERM the one process proc (a subprocess.Popen), wait, then SIGKILL.
    Only this PID is signalled, never a name or a group.  SIGTERM lets
    postern return from main(), so a sanitizer build runs its leak check."""
    if proc is None or proc.poll() is not None:
        return
    term_timeout *= TIMEOUT_SCALE
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=term_timeout)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def _read(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


class _Daemon:
    """What the daemons started here share: a process (self.proc) stopped by
    its PID, a temp dir (self.dir) removed at cleanup, and a log file
    (self.log_path) whose text outlives the dir."""

    def stop(self):
        stop_pid(self.proc)
        _live.discard(self)
        if self.dir:
            self.final_log = self.log()

    def cleanup(self):
        self.stop()
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def log(self):
        if self.dir is None:
            return self.final_log or ""
        return _read(self.log_path)

    def log_size(self):
        return len(self.log())

    def wait_log(self, pattern, timeout=5.0, since=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while True:
            m = rx.search(self.log()[since:])
            if m or time.monotonic() >= deadline:
                return m
            time.sleep(0.05)
