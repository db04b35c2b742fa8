"""The routing tests' stack and how they observe it: the users (a pool
of 24, one per single-backend route) on three Dovecots mx1..mx3, the routes
and fast health-check settings, postern's key=value log lines, Dovecot's
login lines with the ports a backend was told, a login through postern that
learns which backend served it (Login), and raw sockets with PROXY v1/v2
headers and a ClientHello that leave in one segment (BioImap).

Not re-exported by the package: PASSWORDS, ROUTES and POOL_USERS here are
this stack's, not expect's.  The fixtures that start these Dovecots and
posterns are in conftest.py and the test modules."""

import re
import socket
import ssl
import struct
import time

from .certs import client_context
from .clients import ClosedError, RawImap, RawPop3
from .procs import IO_TIMEOUT

HOST = "127.0.0.1"

POOL = ["mx1", "mx2", "mx3"]
POOL_USERS = ["p%02d@example.net" % i for i in range(1, 25)]
SOLO_USER = "solo@solo.test"      # routed to mx3 alone (backend = "mx3")
MUTE_USER = "quiet@mute.test"     # routed to a backend that never speaks
GHOST_USER = "ghost@ghost.test"   # routed to a backend nothing listens on
PASSWORDS = {u: "pw-" + u.split("@")[0] for u in POOL_USERS}
PASSWORDS[SOLO_USER] = "solo-pw-1"
PASSWORDS[MUTE_USER] = "mute-pw-2"
PASSWORDS[GHOST_USER] = "ghost-pw-3"

ROUTES = [
    {"domain": "solo.test", "backend": "mx3"},
    {"domain": "example.net", "pool": POOL},
    {"default": True, "backend": "mx1"},
]

# Fast health checks: a stopped backend is down after 3 failed checks (~3 s),
# a restarted one up after 2 good ones (~2 s).
HEALTH = {"check_interval": "1s", "check_timeout": "1s", "rise": 2, "fall": 3}

# Dovecot's login line with the ports too, so a test can tell what address
# and port a backend was told about (and by whom).
LOGFMT = ("login_log_format_elements = user=<%u> method=%m rip=%r rport=%{rport} "
          "lip=%l lport=%{lport} mpid=%e %c session=<%{session}>")

DOWN_WAIT = 15.0   # s: backend.down with check_interval 1s, fall 3
UP_WAIT = 15.0     # s: backend.up with check_interval 1s, rise 2
AT_ONCE = 2.0      # s: "at once", against backend_connect = 5s (or 10s)


# ---------------------------------------------------------------------------
# backend entries
# ---------------------------------------------------------------------------


def be(d, **opts):
    """A postern backend entry for Dovecot d with more settings."""
    x = {"name": d.name, "imap": d.imap_port, "pop3": d.pop3_port}
    x.update(opts)
    return x


def trio_backends(trio, **opts):
    return [be(trio[n], **opts) for n in POOL]


# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------

_KV = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')


def kv(line):
    """The key=value fields of a postern log line, quotes removed."""
    out = {}
    for k, v in _KV.findall(line):
        out.setdefault(k, v[1:-1] if v.startswith('"') else v)
    return out


def postern_lines(p, event, since=0):
    """Every postern log line of this event after offset since, as kv dicts."""
    rx = re.compile(r"^.*\bevent=%s\b.*$" % re.escape(event), re.M)
    return [kv(m.group(0)) for m in rx.finditer(p.log()[since:])]


def wait_postern(p, pattern, since=0, timeout=5.0):
    """The first whole log line after since matching pattern (a regex), as a
    kv dict, or None after timeout."""
    m = p.wait_log(r"[^\n]*(?:%s)[^\n]*" % pattern, timeout=timeout, since=since)
    return kv(m.group(0)) if m else None


def dovecot_login(d, proto, user, since, timeout=5.0):
    """Dovecot's "Login:" line for user (proto "imap" or "pop3") after log
    offset since, as a dict (user, method, rip, rport, lip, lport, session,
    flags: the bare words like "secured"), or None."""
    m = d.wait_log(r"%s-login: Info: Login: user=<%s>, ([^\n]*)" % (proto, re.escape(user)),
                   timeout=timeout, since=since)
    if not m:
        return None
    out = {"user": user, "flags": []}
    for part in m.group(1).split(", "):
        if "=" in part:
            k, _, v = part.partition("=")
            out[k] = v.strip("<>")
        else:
            out["flags"].append(part.strip())
    return out


def offsets(backends):
    return {n: d.log_size() for n, d in backends.items()}


# ---------------------------------------------------------------------------
# logging in
# ---------------------------------------------------------------------------


def imap_q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Login:
    """One login through postern and what came of it.

    ok, line (the client's answer), elapsed (seconds from sending the
    credentials to the answer), backend (named by the fetched message's
    content; None when not fetched or not logged in), local (the client's
    own (ip, port)), log (postern's login.ok or login.fail line as a kv
    dict), cid, failovers (postern's backend.failover lines for this cid),
    transcript (for failure messages)."""

    def __repr__(self):
        return ("Login(%s %s ok=%s line=%r backend=%s elapsed=%.3f cid=%s failovers=%s)"
                % (self.proto, self.user, self.ok, self.line, self.backend, self.elapsed,
                   self.cid, self.failovers))


def login(p, proto, user, password=None, port=None, source=None, preamble=b"",
          fetch=True, log_timeout=5.0):
    """Log user in through postern p over implicit TLS (port: p's listener
    for proto unless given, e.g. an HAProxy in front), from source (a local
    address) with preamble (e.g. a PROXY header) before TLS.  Reads one
    message's Subject to learn which backend served it, logs out, and finds
    postern's login.ok / login.fail line for this login."""
    password = PASSWORDS[user] if password is None else password
    r = Login()
    r.proto, r.user = proto, user
    since = p.log_size()
    if proto == "imap":
        c = RawImap(port or p.imap_port, p.certs["ca"], source=source, preamble=preamble)
    else:
        c = RawPop3(port or p.pop3_port, p.certs["ca"], source=source, preamble=preamble)
    try:
        r.local = c.sock.getsockname()[:2]
        r.backend = None
        if proto == "imap":
            t0 = time.monotonic()
            r.line, _ = c.command("a1", "LOGIN %s %s" % (imap_q(user), imap_q(password)))
            r.elapsed = time.monotonic() - t0
            r.ok = r.line.startswith(b"a1 OK")
            if r.ok and fetch:
                line, _ = c.command("a2", "SELECT INBOX")
                assert line.startswith(b"a2 OK"), c.dump()
                line, lines = c.command("a3", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                assert line.startswith(b"a3 OK"), c.dump()
                m = re.search(rb"Subject: message 1 for (\S+) on (\w+)", b"".join(lines))
                assert m and m.group(1).decode() == user, c.dump()
                r.backend = m.group(2).decode()
            if r.ok:
                c.command("a9", "LOGOUT")
        else:
            first = c.command("USER " + user)
            assert first.startswith(b"+OK"), c.dump()
            t0 = time.monotonic()
            r.line = c.command("PASS " + password)
            r.elapsed = time.monotonic() - t0
            r.ok = r.line.startswith(b"+OK")
            if r.ok and fetch:
                line = c.command("TOP 1 0")
                assert line.startswith(b"+OK"), c.dump()
                head = b"\n".join(c.read_multiline())
                m = re.search(rb"Subject: message 1 for (\S+) on (\w+)", head)
                assert m and m.group(1).decode() == user, c.dump()
                r.backend = m.group(2).decode()
            if r.ok:
                c.command("QUIT")
        r.transcript = c.dump()
    finally:
        c.close()
    ev = "login\\.ok" if r.ok else "login\\.fail"
    r.log = wait_postern(p, r'event=%s [^\n]*user="%s"' % (ev, re.escape(user)), since=since,
                         timeout=log_timeout)
    assert r.log is not None, ("no %s line for %s in postern's log:\n%s"
                               % (ev, user, p.log()[since:][-3000:]))
    r.cid = r.log.get("cid")
    r.failovers = [x for x in postern_lines(p, "backend.failover", since)
                   if x.get("cid") == r.cid]
    if r.ok and fetch:
        assert r.log.get("backend") == r.backend, (
            "postern logged backend=%s but the message came from %s: %r"
            % (r.log.get("backend"), r.backend, r))
    return r


def homes(p, users, proto="imap"):
    out = {}
    for u in users:
        r = login(p, proto, u)
        assert r.ok, r
        assert not r.failovers, r
        out[u] = r.backend
    return out


def wait_event(p, event, backend, since, timeout):
    return wait_postern(p, r"event=%s backend=%s\b" % (re.escape(event), re.escape(backend)),
                        since=since, timeout=timeout)


# ---------------------------------------------------------------------------
# raw connections and PROXY headers
# ---------------------------------------------------------------------------


def connect(port, source=None):
    return socket.create_connection((HOST, port), timeout=IO_TIMEOUT,
                                    source_address=(source, 0) if source else None)


def wait_closed(sock, timeout=5.0):
    """Read until the peer closes (True) or timeout (False); returns
    (closed, bytes received)."""
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            b = sock.recv(4096)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            return True, got
        if not b:
            return True, got
        got += b
    return False, got


def _addr(ip):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return fam, socket.inet_pton(fam, ip)


PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def pp_v1(src, sport, dst, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def pp_v2(src, sport, dst, dport, tlvs=b"", local=False):
    if local:
        return PP2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    fam, s = _addr(src)
    _, d = _addr(dst)
    body = s + d + struct.pack("!HH", sport, dport) + tlvs
    famb = 0x11 if fam == socket.AF_INET else 0x21
    return PP2_SIG + bytes([0x21, famb]) + struct.pack("!H", len(body)) + body


def client_hello(ca):
    """The first TLS record a client sends (a ClientHello), as bytes."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context(ca).wrap_bio(inc, out, server_hostname=HOST)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class BioImap:
    """IMAP over TLS driven through MemoryBIOs, so that the preamble (a PROXY
    header) and the ClientHello leave in ONE send(): a server that reads the
    header must keep the bytes after it for TLS."""

    def __init__(self, port, ca, preamble, source=None, timeout=IO_TIMEOUT):
        self.timeout = timeout
        self.sock = connect(port, source)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = client_context(ca).wrap_bio(self.inc, self.out,
                                                       server_hostname=HOST)
        self.buf = b""
        deadline = time.monotonic() + timeout
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.sock.sendall(preamble + self.out.read())
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._recv(deadline)
        self._flush()
        self.greeting = self.readline()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("BioImap: timed out")
        self.sock.settimeout(left)
        b = self.sock.recv(65536)
        if not b:
            raise ClosedError("BioImap: connection closed")
        self.inc.write(b)

    def readline(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            try:
                self.buf += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._recv(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def command(self, tag, text):
        self.tls.write(("%s %s\r\n" % (tag, text)).encode())
        self._flush()
        while True:
            line = self.readline()
            if line.startswith(tag.encode() + b" "):
                return line

    def close(self):
        self.sock.close()

