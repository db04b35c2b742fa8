"""Memory per connection still before login: postern's RSS before and after
N clients connect, read the greeting, ask for the capabilities and then sit
idle, for IMAP and POP3, in plaintext (a STARTTLS port: the dialog's own
state) and over implicit TLS (the same plus OpenSSL's).  Each case gets a
fresh postern.
Not part of `make test` (sizes are for humans, not pass/fail).

    ulimit -n 20000; /usr/bin/python3 tests/bench/preauth_memory.py [N] [binary]
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
from harness import Postern  # noqa: E402
from idle_memory import rss_kib  # noqa: E402

CASES = (("IMAP, plaintext", "imap_starttls_port", False, b"a CAPABILITY\r\n"),
         ("POP3, plaintext", "pop3_starttls_port", False, b"CAPA\r\n"),
         ("IMAP, TLS", "imap_port", True, b"a CAPABILITY\r\n"),
         ("POP3, TLS", "pop3_port", True, b"CAPA\r\n"))


def one(d, certs, binary, n, port_attr, tls, ask):
    # No backend is ever reached: nobody logs in.
    p = Postern(certs, [{"name": "mx1", "imap": 1, "pop3": 2}],
                [{"default": True, "backend": "mx1"}], parent_dir=d, binary=binary,
                workers=1, log_level="info", starttls=True)
    p.start()
    conns = []
    try:
        port = getattr(p, port_attr)
        time.sleep(0.5)
        before = rss_kib(p.proc.pid)
        ctx = ssl.create_default_context(cafile=certs["ca"])
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if tls:
                s = ctx.wrap_socket(s, server_hostname="localhost")
            s.recv(1024)  # the greeting
            s.sendall(ask)
            s.recv(1024)
            conns.append(s)
        time.sleep(0.5)
        return (rss_kib(p.proc.pid) - before) * 1024.0 / n
    finally:
        for s in conns:
            s.close()
        p.stop()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    binary = sys.argv[2] if len(sys.argv) > 2 else None
    d = tempfile.mkdtemp(prefix="postern-preauth-")
    os.chmod(d, 0o755)
    try:
        certs = harness.make_certs(os.path.join(d, "certs"))
        for name, port_attr, tls, ask in CASES:
            per = one(d, certs, binary, n, port_attr, tls, ask)
            print("%-16s %6.1f KiB per connection (%d idle before login)"
                  % (name, per / 1024.0, n))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
