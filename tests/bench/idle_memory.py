"""Memory per idle session: postern's RSS before and after N logged-in IMAP
sessions sit idle through it, in front of a real Dovecot.  Not part of
`make test` (timings and sizes are for humans, not pass/fail).

    ulimit -n 20000; /usr/bin/python3 tests/bench/idle_memory.py 1000
"""

import os
import shutil
import socket
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import Dovecot, Postern  # noqa: E402

PER_USER = 50  # sessions per user, under Dovecot's per-user limit below


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    d = tempfile.mkdtemp(prefix="postern-mem-")
    os.chmod(d, 0o755)
    dv = p = None
    conns = []
    try:
        certs = harness.make_certs(os.path.join(d, "certs"))
        users = {"u%d@bench.test" % i: "pw%d" % i for i in range(n // PER_USER + 1)}
        dv = Dovecot("mx1", users, parent_dir=d, messages=1, extra_conf=(
            "default_process_limit = %d\ndefault_client_limit = %d\n"
            "service imap {\n process_limit = %d\n}\n"
            "protocol imap {\n mail_max_userip_connections = %d\n}\n" % (n + 100, 2 * n + 100,
                                                                         n + 100, PER_USER)))
        dv.start()
        p = Postern(certs, [dv], [{"default": True, "backend": "mx1"}], parent_dir=d,
                    log_level="warn")
        p.start()
        ctx = ssl.create_default_context(cafile=certs["ca"])
        base = rss_kib(p.proc.pid)
        for i in range(n):
            user = "u%d@bench.test" % (i // PER_USER)
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", p.imap_port), timeout=10),
                                server_hostname="localhost")
            s.recv(512)
            s.sendall(b"a LOGIN %s %s\r\n" % (user.encode(), users[user].encode()))
            got = b""
            while b"a OK" not in got and b"a NO" not in got and len(got) < 65536:
                got += s.recv(4096)
            if b"a OK" not in got:
                raise SystemExit("login %d failed: %r" % (i, got))
            conns.append(s)
        time.sleep(2)
        after = rss_kib(p.proc.pid)
        print("postern RSS %d KiB idle, %d KiB with %d idle logged-in TLS sessions: "
              "%.1f KiB per session" % (base, after, n, (after - base) / float(n)))
    finally:
        for s in conns:
            s.close()
        if p:
            p.cleanup()
        if dv:
            dv.cleanup()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
