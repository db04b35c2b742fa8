"""The service manager's end of sd_notify(3), for tests: an AF_UNIX datagram
socket that $NOTIFY_SOCKET names, read by a thread, with each sender's PID
(SO_PASSCRED), as systemd reads it for Type=notify services."""

import os
import socket
import struct
import threading
import time

from .procs import TIMEOUT_SCALE

HOST = "127.0.0.1"


class NotifySocket:
    """The service manager's end: a bound SOCK_DGRAM socket with SO_PASSCRED,
    read by a thread.  Each message is kept as (monotonic time, sender PID,
    {key: value}, and whether every listener port accepted a TCP connection
    right when READY=1 arrived)."""

    def __init__(self, dirpath, ports=()):
        self.path = os.path.join(dirpath, "notify.sock")
        self.ports = list(ports)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.cond = threading.Condition()
        self.done = False
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _accepts(self):
        for port in self.ports:
            try:
                with socket.create_connection((HOST, port), timeout=1.0):
                    pass
            except OSError:
                return False
        return True

    def _reader(self):
        ancsize = socket.CMSG_SPACE(struct.calcsize("iII"))
        while not self.done:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(4096, ancsize)
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:12])[0]
            fields = dict(l.split("=", 1) for l in data.decode().split("\n") if "=" in l)
            accepted = self._accepts() if fields.get("READY") == "1" else None
            with self.cond:
                self.messages.append((time.monotonic(), pid, fields, accepted))
                self.cond.notify_all()

    def wait_for(self, key, value="1", count=1, timeout=10.0, pid=None):
        """Wait until count messages (from pid, if given) carry key=value;
        returns them all."""
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        with self.cond:
            while True:
                got = [m for m in self.messages if m[2].get(key) == value and
                       (pid is None or m[1] == pid)]
                if len(got) >= count or time.monotonic() >= deadline:
                    return got
                self.cond.wait(0.1)

    def states(self):
        """The READY/RELOADING/STOPPING keys, in the order they came."""
        with self.cond:
            return [k for m in self.messages for k in ("READY", "RELOADING", "STOPPING")
                    if m[2].get(k) == "1"]

    def close(self):
        self.done = True
        self.thread.join(5)
        self.sock.close()
