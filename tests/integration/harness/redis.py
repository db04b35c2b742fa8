"""redis-server for the fleet tests: the test's own, on a unix socket in a
temporary directory (no TCP port), no configuration file (nothing from the
system's redis.conf), a password (state_password_file), stopped by its PID."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from .procs import TIMEOUT_SCALE, stop_pid

REDIS_BIN = os.environ.get("REDIS_SERVER", "redis-server")


class RedisServer:
    """redis-server on a unix socket, with a password; stop() by PID."""

    def __init__(self, parent_dir, debug_command=False):
        # debug_command: allow DEBUG (Redis 7 refuses it unless told), for
        # sleep_in_background()
        self.debug_command = debug_command
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=parent_dir)
        self.sock = os.path.join(self.dir, "redis.sock")
        self.password = "pit-redis-secret-7"
        self.password_file = os.path.join(self.dir, "password")
        with open(self.password_file, "w") as f:
            f.write(self.password + "\n")
        self.proc = None

    def start(self):
        if shutil.which(REDIS_BIN) is None:
            raise RuntimeError("redis-server is not installed (make deps installs it)")
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--requirepass", self.password, "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log")]
            + (["--enable-debug-command", "local"] if self.debug_command else []),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10 * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            if self.cli("PING").strip() == "PONG":
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-s", self.sock, "--no-auth-warning",
                            "-a", self.password, *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def sleep_in_background(self, secs):
        """DEBUG SLEEP secs from a connection of its own (Redis answers
        nobody meanwhile); the redis-cli process, for wait_sleeper()."""
        return subprocess.Popen(["redis-cli", "-s", self.sock, "--no-auth-warning",
                                 "-a", self.password, "DEBUG", "SLEEP", str(secs)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    @staticmethod
    def wait_sleeper(proc, timeout):
        """Wait (bounded) for a sleep_in_background() redis-cli; killed by its
        PID if it outlives timeout."""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_pid(proc)

    def pause(self):
        """SIGSTOP the redis-server this object started: it answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        """SIGCONT it again (harmless when it was not stopped)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        self.resume()  # a stopped process would not see SIGTERM until then
        stop_pid(self.proc)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
