"""postern's routing at scale, end to end: hashed pools over three real
Dovecot backends, active and passive health checks, failover within a login,
client-address forwarding to the backends (IMAP ID, POP3 XCLIENT, PROXY v1
and v2), and postern behind a real HAProxy that sends it PROXY headers.

How a test learns where a user landed: postern's `event=login.ok` line names
the backend, and the message the test fetches names the backend that stored
it (the harness writes per-backend content); the two must agree.  What a
backend saw (the client address it was told, whether it saw a login at all)
comes from that Dovecot's own log, with rport/lport added to its login line.

Every socket operation has a timeout; every wait is a bounded poll of a log.
"""

import re
import socket
import ssl
import struct
import time

import pytest

import harness
from harness import IO_TIMEOUT, Dovecot, HAProxy, Postern, RawImap, RawPop3

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
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def trio(run_dir):
    """Three real Dovecots, mx1..mx3, each holding every test user (with
    content that names the backend).  Function scope: tests stop them."""
    ds = {}
    try:
        for n in POOL:
            ds[n] = Dovecot(n, PASSWORDS, parent_dir=run_dir, extra_conf=LOGFMT).start()
        yield ds
    finally:
        for d in ds.values():
            d.cleanup()


@pytest.fixture
def start_postern(certs, postern_registry, run_dir):
    """Factory: a postern started with make(backends, routes, **Postern kw);
    stopped after the test.  A test during which one exits fails with its log."""
    made = []

    def make(backends, routes, **kw):
        p = Postern(certs, backends, routes, parent_dir=run_dir, **kw)
        postern_registry.append(p)
        made.append(p)
        return p.start()

    yield make
    dead = [(p, p.proc.returncode) for p in made if p.proc is not None and not p.running()]
    for p in made:
        p.cleanup()
    if dead:
        p, rc = dead[0]
        pytest.fail("postern exited during this test (exit status %s); log tail:\n%s"
                    % (rc, "\n".join(p.log().splitlines()[-40:])))


@pytest.fixture
def make_haproxy(run_dir):
    made = []

    def make(target_port, send_proxy):
        h = HAProxy(target_port, send_proxy=send_proxy, parent_dir=run_dir)
        made.append(h)
        return h.start()

    yield make
    for h in made:
        h.cleanup()


@pytest.fixture
def make_backend(run_dir):
    """Factory: one more real Dovecot (Dovecot() keyword options) with every
    test user, LOGFMT unless extra_conf is given."""
    made = []

    def make(name, **kw):
        kw.setdefault("extra_conf", LOGFMT)
        d = Dovecot(name, PASSWORDS, parent_dir=run_dir, **kw)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        d.cleanup()


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
    obj = harness.client_context(ca).wrap_bio(inc, out, server_hostname=HOST)
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
        self.tls = harness.client_context(ca).wrap_bio(self.inc, self.out,
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
            raise harness.ClosedError("BioImap: connection closed")
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


# ===========================================================================
# 1. Pools: a fixed per-user order over the pool
# ===========================================================================


def test_pool_spreads_users_over_all_three_backends_and_each_user_always_lands_on_the_same_one(
        trio, start_postern):
    p = start_postern(trio_backends(trio, **HEALTH), ROUTES)
    first = homes(p, POOL_USERS, "imap")
    again = homes(p, POOL_USERS, "pop3")
    assert again == first, "a user moved between logins (imap vs pop3)"
    third = homes(p, POOL_USERS, "imap")
    assert third == first, "a user moved between logins"
    counts = {n: sum(1 for b in first.values() if b == n) for n in POOL}
    assert all(counts[n] > 0 for n in POOL), "a pool member got no user: %s" % counts
    # Nothing was down: no health flip, no failover.
    assert not postern_lines(p, "backend.down"), p.log()[-3000:]
    assert not postern_lines(p, "backend.failover"), p.log()[-3000:]


def test_pool_order_in_the_config_does_not_move_any_user(trio, start_postern):
    """Rendezvous ranking depends on the user and the backend names, not on
    where a name sits in the pool list: two proxies of a fleet whose configs
    list the pool differently send every user to the same backend."""
    a = start_postern(trio_backends(trio, **HEALTH), ROUTES)
    routes_b = [dict(r) for r in ROUTES]
    routes_b[1] = {"domain": "example.net", "pool": ["mx3", "mx1", "mx2"]}
    b = start_postern(trio_backends(trio, **HEALTH), routes_b)
    ha = homes(a, POOL_USERS)
    hb = homes(b, POOL_USERS)
    moved = {u: (ha[u], hb[u]) for u in POOL_USERS if ha[u] != hb[u]}
    assert not moved, "users moved when only the pool's list order changed: %s" % moved


# ===========================================================================
# 2. Three backends, one killed and brought back
# ===========================================================================


def test_kill_one_backend_its_users_log_in_elsewhere_at_once_others_stay_and_all_return_home(
        trio, start_postern):
    p = start_postern(trio_backends(trio, **HEALTH), ROUTES,
                     timeouts={"backend_connect": "5s"})
    home = homes(p, POOL_USERS)
    by_backend = {n: [u for u in POOL_USERS if home[u] == n] for n in POOL}
    victim = max(POOL, key=lambda n: len(by_backend[n]))
    victims = by_backend[victim]
    others = [u for u in POOL_USERS if home[u] != victim]
    assert victims and others, by_backend

    # --- kill it -----------------------------------------------------------
    mark = p.log_size()
    trio[victim].stop()
    assert not trio[victim].running()
    # Dovecot sometimes takes seconds to exit (its login processes wait for
    # their stats handshake), long enough for the checks to mark it down
    # first; only if they have not can the first login be held to a failover.
    already_down = wait_event(p, "backend.down", victim, mark, 0) is not None
    fallback = {}
    for i, u in enumerate(victims):
        r = login(p, "imap", u)
        assert r.ok, "%s (home %s, stopped) could not log in: %r" % (u, victim, r)
        assert r.backend != victim and r.backend in POOL, r
        assert r.elapsed < AT_ONCE, "login of %s took %.2fs (not at once): %r" % (
            u, r.elapsed, r)
        if i == 0 and not already_down:
            # Not marked down yet (fall = 3): postern met the refused
            # connect itself and moved on within this same login.
            assert [(x.get("from"), x.get("to")) for x in r.failovers] == \
                [(victim, r.backend)], "no failover logged for the first login: %r\n%s" % (
                    r, p.log()[mark:][-3000:])
        else:
            # later ones: either tried and failed over, or skipped (down)
            assert all(x.get("from") == victim and x.get("to") == r.backend
                       for x in r.failovers), r
        fallback[u] = r.backend
    for u in others:
        r = login(p, "imap", u)
        assert r.ok and r.backend == home[u], "%s moved off its healthy home %s: %r" % (
            u, home[u], r)
        assert not r.failovers, r
    if len(victims) >= 6:
        # Each user has its own order of the pool: the users of one backend
        # do not all pile onto the same neighbour.
        assert len(set(fallback.values())) == 2, (
            "all %d users of %s fell back to the same backend %s: not a per-user order"
            % (len(victims), victim, set(fallback.values())))

    # --- health checks mark it down --------------------------------------
    down = wait_event(p, "backend.down", victim, mark, DOWN_WAIT)
    assert down is not None, "no backend.down for %s within %ss:\n%s" % (
        victim, DOWN_WAIT, p.log()[mark:][-3000:])
    after_down = p.log_size()
    for u in victims:
        r = login(p, "imap", u)
        assert r.ok and r.backend == fallback[u], (
            "%s: went to %s now that %s is marked down, %s before" % (
                u, r.backend, victim, fallback[u]))
        assert not r.failovers, "a down backend was still tried: %r" % r
        assert r.elapsed < AT_ONCE, r
    for u in victims[:3]:
        r = login(p, "pop3", u)
        assert r.ok and r.backend == fallback[u], r
        assert not r.failovers, r
    for u in others:
        r = login(p, "imap", u)
        assert r.ok and r.backend == home[u], r
    assert not [x for x in postern_lines(p, "backend.failover", after_down)], \
        "failovers although the down backend should be skipped"
    for n in POOL:
        if n != victim:
            assert not [x for x in postern_lines(p, "backend.down") if x.get("backend") == n], \
                "healthy %s was marked down:\n%s" % (n, p.log()[-3000:])

    # --- bring it back: the check sees it and its users return -----------
    mark2 = p.log_size()
    trio[victim].restart()
    up = wait_event(p, "backend.up", victim, mark2, UP_WAIT)
    assert up is not None, "no backend.up for %s within %ss after restart:\n%s" % (
        victim, UP_WAIT, p.log()[mark2:][-3000:])
    for u in victims:
        r = login(p, "imap", u)
        assert r.ok and r.backend == victim, "%s did not return home to %s: %r" % (
            u, victim, r)
        assert not r.failovers, r
    for u in victims[:3]:
        r = login(p, "pop3", u)
        assert r.ok and r.backend == victim, r
    for u in others:
        r = login(p, "imap", u)
        assert r.ok and r.backend == home[u], r


def test_backend_down_needs_fall_failed_checks_and_up_needs_rise_good_ones(trio, start_postern):
    """With check_interval 1s, fall 3 and rise 3 a state flip needs three
    consecutive results, i.e. at least two check intervals after the change;
    the healthy backends never flip."""
    opts = dict(HEALTH, rise=3, fall=3)
    p = start_postern(trio_backends(trio, **opts), ROUTES)
    time.sleep(2.5)  # a few checks pass while all are up
    assert not postern_lines(p, "backend.down"), p.log()[-2000:]
    mark = p.log_size()
    t0 = time.monotonic()
    trio["mx2"].stop()
    down = wait_event(p, "backend.down", "mx2", mark, DOWN_WAIT)
    t_down = time.monotonic() - t0
    assert down is not None, p.log()[mark:][-3000:]
    assert t_down >= 1.5, "mx2 was marked down %.2fs after it stopped: fall=3 at 1s " \
        "intervals needs ~2s or more" % t_down
    mark2 = p.log_size()
    t1 = time.monotonic()
    trio["mx2"].restart()
    up = wait_event(p, "backend.up", "mx2", mark2, UP_WAIT)
    t_up = time.monotonic() - t1
    assert up is not None, p.log()[mark2:][-3000:]
    assert t_up >= 1.5, "mx2 was marked up %.2fs after it restarted: rise=3 at 1s " \
        "intervals needs ~2s or more" % t_up
    downs = [x.get("backend") for x in postern_lines(p, "backend.down")]
    assert downs == ["mx2"], "backend.down lines: %s" % downs


def test_check_interval_zero_turns_active_checks_off(trio, start_postern):
    """check_interval = "0": no check ever connects, so a stopped backend
    nobody logs in to is never marked down."""
    time.sleep(1.0)  # the harness's own port probes reach Dovecot's log first
    before = offsets(trio)
    p = start_postern(trio_backends(trio, check_interval="0", fall=1, rise=1), ROUTES)
    trio["mx3"].stop()
    time.sleep(4)
    assert not postern_lines(p, "backend.down"), p.log()[-2000:]
    # and no check connection reached the running backends either
    for n in ("mx1", "mx2"):
        text = trio[n].log()[before[n]:]
        assert "Connection closed (no auth attempts" not in text, (
            "%s saw connections although checks are off:\n%s" % (n, text[-1500:]))


# ===========================================================================
# 3. A backend unreachable at connect: failover within the same login
# ===========================================================================


def test_connect_failure_fails_over_within_the_login_and_passive_failures_mark_it_down(
        trio, start_postern):
    """A pool with a member nothing listens on and no active checks: its
    users' logins fail over to their next backend inside the same login
    (backend.failover logged, client sees only OK), and `fall` such
    connect failures mark the member down, after which it is skipped."""
    ghost = {"name": "ghost", "imap": harness.free_port(), "pop3": harness.free_port(),
             "check_interval": "0", "fall": 3, "rise": 2}
    backends = [be(trio["mx1"], check_interval="0"), be(trio["mx2"], check_interval="0"),
                ghost]
    routes = [{"domain": "example.net", "pool": ["mx1", "mx2", "ghost"]}]
    p = start_postern(backends, routes, timeouts={"backend_connect": "5s"})
    landed = {}
    ghost_users = []
    n_fail = 0
    for u in POOL_USERS:
        if n_fail >= 2:
            break
        r = login(p, "pop3" if n_fail == 0 else "imap", u)
        assert r.ok and r.backend in ("mx1", "mx2"), r
        assert r.elapsed < AT_ONCE, r
        if r.failovers:
            assert [(x.get("from"), x.get("to")) for x in r.failovers] == \
                [("ghost", r.backend)], r
            n_fail += 1
            ghost_users.append(u)
        landed[u] = r.backend
    assert n_fail == 2, "fewer than two of %d users rank ghost first" % len(POOL_USERS)
    time.sleep(0.5)
    assert not postern_lines(p, "backend.down"), \
        "ghost marked down after 2 connect failures with fall = 3:\n%s" % p.log()[-2000:]
    # the third failure flips it
    mark = p.log_size()
    r = login(p, "imap", ghost_users[0])
    assert r.ok and r.backend == landed[ghost_users[0]], r
    assert [(x.get("from"), x.get("to")) for x in r.failovers] == [("ghost", r.backend)], r
    down = wait_event(p, "backend.down", "ghost", mark, 5.0)
    assert down is not None, "3 connect failures (fall = 3) did not mark ghost down:\n%s" % (
        p.log()[mark:][-2000:])
    # now skipped: same backend for each user, no attempt on ghost
    for u in ghost_users:
        for proto in ("imap", "pop3"):
            r = login(p, proto, u)
            assert r.ok and r.backend == landed[u], r
            assert not r.failovers, "ghost still tried after backend.down: %r" % r


# ===========================================================================
# 4. A single-backend route whose backend is down
# ===========================================================================


def test_user_of_a_stopped_single_backend_gets_unavailable_at_once_and_no_other_backend_sees_it(
        trio, start_postern):
    p = start_postern(trio_backends(trio, **HEALTH), ROUTES,
                     timeouts={"backend_connect": "5s"})
    r = login(p, "imap", SOLO_USER)
    assert r.ok and r.backend == "mx3", r
    mark = p.log_size()
    trio["mx3"].stop()
    before = offsets(trio)

    def check(phase):
        r = login(p, "imap", SOLO_USER)
        assert not r.ok and r.line.startswith(b"a1 NO [UNAVAILABLE]"), (phase, r)
        assert r.elapsed < AT_ONCE, "%s: UNAVAILABLE after %.2fs" % (phase, r.elapsed)
        r = login(p, "pop3", SOLO_USER)
        assert not r.ok and r.line.startswith(b"-ERR [SYS/TEMP]"), (phase, r)
        assert r.elapsed < AT_ONCE, "%s: -ERR after %.2fs" % (phase, r.elapsed)
        assert not r.failovers, r

    check("before backend.down")
    assert wait_event(p, "backend.down", "mx3", mark, DOWN_WAIT) is not None, \
        p.log()[mark:][-3000:]
    check("after backend.down")
    time.sleep(0.5)
    for n in ("mx1", "mx2"):
        text = trio[n].log()[before[n]:]
        assert SOLO_USER not in text, "%s saw %s, routed to mx3 alone:\n%s" % (
            n, SOLO_USER, text[-1500:])
    assert not [x for x in postern_lines(p, "login.ok", mark)
                if x.get("user") == SOLO_USER], "a login of a down single route succeeded"


def test_a_backend_that_accepts_but_never_greets_is_marked_down_and_then_refused_at_once(
        trio, start_postern):
    """A hung backend (the kernel accepts, nothing answers): the check times
    out (check_timeout), `fall` of them mark it down, and from then on its
    user gets NO [UNAVAILABLE] / -ERR [SYS/TEMP] at once instead of waiting
    out backend_connect + backend_login (10s each here)."""
    lsocks = []
    try:
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            s.listen(128)  # never accept()ed: connects succeed, no byte ever comes
            lsocks.append(s)
        mute = {"name": "mute", "imap": lsocks[0].getsockname()[1],
                "pop3": lsocks[1].getsockname()[1],
                "check_interval": "1s", "check_timeout": "1s", "fall": 2, "rise": 2}
        routes = [{"domain": "mute.test", "backend": "mute"}] + ROUTES
        p = start_postern(trio_backends(trio, **HEALTH) + [mute], routes,
                         timeouts={"backend_connect": "10s", "backend_login": "10s"})
        down = wait_event(p, "backend.down", "mute", 0, DOWN_WAIT)
        assert down is not None, "a backend that never greets was not marked down:\n%s" % (
            p.log()[-3000:])
        r = login(p, "imap", MUTE_USER)
        assert not r.ok and r.line.startswith(b"a1 NO [UNAVAILABLE]"), r
        assert r.elapsed < AT_ONCE, "UNAVAILABLE only after %.2fs" % r.elapsed
        r = login(p, "pop3", MUTE_USER)
        assert not r.ok and r.line.startswith(b"-ERR [SYS/TEMP]"), r
        assert r.elapsed < AT_ONCE, "-ERR only after %.2fs" % r.elapsed
        # the others are fine
        r = login(p, "imap", SOLO_USER)
        assert r.ok and r.backend == "mx3", r
        assert [x.get("backend") for x in postern_lines(p, "backend.down")] == ["mute"]
    finally:
        for s in lsocks:
            s.close()


# ===========================================================================
# 5. Authentication failures are never retried elsewhere
# ===========================================================================


def test_wrong_password_on_the_home_backend_fails_there_and_no_other_backend_sees_a_login(
        trio, start_postern):
    p = start_postern(trio_backends(trio, **HEALTH), ROUTES)
    user = POOL_USERS[5]
    home = login(p, "imap", user).backend
    others = [n for n in POOL if n != home]
    before = offsets(trio)
    # fall + 1 failures, each from its own address and connection: an
    # authentication failure is not a backend failure either.
    for i, proto in enumerate(["imap", "pop3", "imap", "pop3"]):
        r = login(p, proto, user, password="wrong-%d" % i, source="127.0.0.%d" % (11 + i))
        want = b"a1 NO [AUTHENTICATIONFAILED]" if proto == "imap" else b"-ERR [AUTH]"
        assert not r.ok and r.line.startswith(want), r
        assert not r.failovers, "an auth failure was retried elsewhere: %r" % r
    m = trio[home].wait_log(r"Password mismatch|auth failed", since=before[home])
    assert m, "the home backend %s saw no failed login:\n%s" % (
        home, trio[home].log()[before[home]:][-2000:])
    time.sleep(1.0)  # let the other Dovecots' log processes catch up
    for n in others:
        text = trio[n].log()[before[n]:]
        assert user not in text, "%s (not %s's home) saw a login attempt:\n%s" % (
            n, user, text[-2000:])
    assert not postern_lines(p, "backend.down"), \
        "authentication failures marked a backend down:\n%s" % p.log()[-2000:]
    r = login(p, "imap", user)
    assert r.ok and r.backend == home, r


# ===========================================================================
# 6. Forwarding the client's address to the backend
# ===========================================================================


@pytest.fixture
def fwd(make_backend, start_postern):
    """Factory: one Dovecot "fx" (Dovecot() options) behind a postern whose
    only route sends everyone there with backend settings bopts."""

    def make(dovecot=None, **bopts):
        d = make_backend("fx", **(dovecot or {}))
        p = start_postern([be(d, **bopts)], [{"default": True, "backend": "fx"}])
        return d, p

    return make


def _check_forwarded(d, p, proto, user, source, flags=()):
    since = d.log_size()
    r = login(p, proto, user, source=source)
    assert r.ok, r
    assert r.log.get("client") == "%s:%d" % r.local, r.log
    got = dovecot_login(d, proto, user, since)
    assert got is not None, d.log()[since:][-2000:]
    assert got["rip"] == source, "%s: the backend saw rip=%s, not the client %s: %s" % (
        proto, got["rip"], source, got)
    assert got["rport"] == str(r.local[1]), got
    for f in flags:
        assert f in got["flags"], got
    return r, got


def test_forward_none_the_backend_sees_the_proxys_address(fwd):
    d, p = fwd()
    for proto in ("imap", "pop3"):
        since = d.log_size()
        r = login(p, proto, POOL_USERS[0], source="127.0.0.3")
        assert r.ok and r.log.get("client", "").startswith("127.0.0.3:"), r
        got = dovecot_login(d, proto, POOL_USERS[0], since)
        assert got is not None and got["rip"] == "127.0.0.1", got


def test_forward_id_tells_dovecot_the_client_address_port_and_session(fwd):
    d, p = fwd(forward="id")
    r, got = _check_forwarded(d, p, "imap", POOL_USERS[0], "127.0.0.3")
    # x-connected-ip/port: the address the client connected to (postern's)
    assert got["lip"] == "127.0.0.1" and got["lport"] == str(p.imap_port), got
    # x-session-id: postern's connection id, so both logs join up
    assert got["session"] == r.cid, (got, r.cid)
    # ID is IMAP only: POP3 still comes from the proxy
    since = d.log_size()
    r = login(p, "pop3", POOL_USERS[0], source="127.0.0.3")
    assert r.ok, r
    got = dovecot_login(d, "pop3", POOL_USERS[0], since)
    assert got is not None and got["rip"] == "127.0.0.1", got


def test_forward_xclient_tells_dovecot_pop3_the_client_address_port_and_session(fwd):
    """Dovecot offers XCLIENT to trusted networks (2.3 says so in its greeting,
    `+OK [XCLIENT] ...`)."""
    d, p = fwd(forward="xclient")
    r, got = _check_forwarded(d, p, "pop3", POOL_USERS[1], "127.0.0.3")
    assert got["session"] == r.cid, (got, r.cid)
    assert not postern_lines(p, "backend.forward"), p.log()[-2000:]


def test_forward_id_and_xclient_together_cover_both_protocols(fwd):
    d, p = fwd(forward=["id", "xclient"])
    _check_forwarded(d, p, "imap", POOL_USERS[2], "127.0.0.3")
    _check_forwarded(d, p, "pop3", POOL_USERS[2], "127.0.0.2")


def test_forwarding_to_a_backend_that_does_not_trust_postern_still_logs_in(fwd):
    """Without login_trusted_networks Dovecot ignores the ID fields and
    offers no XCLIENT: the login must still work (from the proxy's address)."""
    d, p = fwd(dovecot={"trusted_networks": None}, forward=["id", "xclient"])
    for proto in ("imap", "pop3"):
        since = d.log_size()
        r = login(p, proto, POOL_USERS[3], source="127.0.0.3")
        assert r.ok, r
        got = dovecot_login(d, proto, POOL_USERS[3], since)
        assert got is not None and got["rip"] == "127.0.0.1", got


def test_forward_proxy_v1_header_gives_dovecot_the_client_address(fwd):
    d, p = fwd(dovecot={"haproxy": True}, forward="proxy-v1")
    _check_forwarded(d, p, "imap", POOL_USERS[4], "127.0.0.3")
    _check_forwarded(d, p, "pop3", POOL_USERS[4], "127.0.0.2")


def test_forward_proxy_v2_header_carries_the_client_address_and_the_tls_tlv(fwd):
    """The v2 header's SSL TLV tells Dovecot the client used TLS: a Dovecot
    that trusts no network for logins and refuses plaintext auth on
    non-secure connections takes the login and logs it "secured"."""
    d, p = fwd(dovecot={"haproxy": True, "trusted_networks": None,
                        "disable_plaintext_auth": True}, forward="proxy-v2")
    _check_forwarded(d, p, "imap", POOL_USERS[5], "127.0.0.3", flags=("secured",))
    _check_forwarded(d, p, "pop3", POOL_USERS[5], "127.0.0.2", flags=("secured",))


@pytest.mark.parametrize("version", ["proxy-v1", "proxy-v2"])
def test_health_checks_of_a_proxy_protocol_backend_keep_it_up(fwd, version):
    """A Dovecot haproxy listener waits for a PROXY header before its
    greeting: the checker must send one too, or it marks a healthy backend
    down."""
    d, p = fwd(dovecot={"haproxy": True}, forward=version, check_interval="1s",
               check_timeout="1s", fall=2, rise=2)
    time.sleep(5)
    assert not postern_lines(p, "backend.down"), (
        "a healthy %s backend was marked down:\n%s" % (version, p.log()[-2500:]))
    r = login(p, "imap", POOL_USERS[6], source="127.0.0.3")
    assert r.ok, r


# ===========================================================================
# 7. Behind a load balancer: PROXY headers into postern
# ===========================================================================


@pytest.fixture
def lb(make_backend, start_postern):
    """One Dovecot "fx" (forward id + xclient) behind a postern that also
    has PROXY-protocol listeners (IMAP and POP3, implicit TLS) trusting only
    127.0.0.1/32.  Returns (dovecot, postern, imap_pp_port, pop3_pp_port)."""
    d = make_backend("fx")
    ls = [{"protocol": "imap", "tls": "implicit", "proxy_protocol": True,
           "trusted": ["127.0.0.1/32"]},
          {"protocol": "pop3", "tls": "implicit", "proxy_protocol": True,
           "trusted": ["127.0.0.1/32"]}]
    p = start_postern([be(d, forward=["id", "xclient"])], [{"default": True, "backend": "fx"}],
                     extra_listeners=ls)
    # Postern keeps copies of the listener dicts, with the ports it chose
    return d, p, p.extra_listeners[0]["port"], p.extra_listeners[1]["port"]


@pytest.mark.parametrize("send_proxy", ["v2", "v1"])
def test_behind_haproxy_postern_logs_and_forwards_the_real_client_address(
        lb, make_haproxy, send_proxy):
    d, p, imap_pp, pop3_pp = lb
    hi = make_haproxy(imap_pp, send_proxy)
    hp = make_haproxy(pop3_pp, send_proxy)
    user = POOL_USERS[7]

    since = d.log_size()
    r = login(p, "imap", user, port=hi.port, source="127.0.0.4")
    assert r.ok, r
    client = "127.0.0.4:%d" % r.local[1]
    assert r.log.get("client") == client, "login.ok: %s" % r.log
    start = wait_postern(p, r"event=session\.start cid=%s " % r.cid)
    assert start and start.get("client") == client, start
    got = dovecot_login(d, "imap", user, since)
    assert got is not None and got["rip"] == "127.0.0.4", got
    assert got["rport"] == str(r.local[1]), got

    r = login(p, "pop3", user, port=hp.port, source="127.0.0.4")
    assert r.ok, r
    assert r.log.get("client") == "127.0.0.4:%d" % r.local[1], r.log
    assert not postern_lines(p, "proxy.refused") and not postern_lines(p, "proxy.bad"), \
        p.log()[-2000:]


@pytest.mark.parametrize("header", ["v1", "v2", "v2-ipv6"])
def test_a_hand_written_proxy_header_from_a_trusted_peer_sets_the_client_address(lb, header):
    d, p, imap_pp, _ = lb
    user = POOL_USERS[8]
    if header == "v1":
        pre, want, ip = pp_v1("203.0.113.7", 5555, "192.0.2.1", 993), "203.0.113.7:5555", \
            "203.0.113.7"
    elif header == "v2":
        pre, want, ip = pp_v2("198.51.100.9", 6666, "192.0.2.1", 993), "198.51.100.9:6666", \
            "198.51.100.9"
    else:
        pre, want, ip = pp_v2("2001:db8::7", 7777, "2001:db8::1", 993), None, "2001:db8::7"
    since = d.log_size()
    r = login(p, "imap", user, port=imap_pp, preamble=pre)
    assert r.ok, r
    if want:
        assert r.log.get("client") == want, r.log
    else:
        assert "2001:db8::7" in r.log.get("client", "") and "7777" in r.log["client"], r.log
    got = dovecot_login(d, "imap", user, since)
    assert got is not None and got["rip"] == ip, got


def test_a_proxy_header_split_over_several_writes_is_reassembled(lb):
    d, p, imap_pp, _ = lb
    hdr = pp_v2("198.51.100.23", 2323, "192.0.2.1", 993)
    s = connect(imap_pp)
    try:
        for chunk in (hdr[:5], hdr[5:14], hdr[14:20], hdr[20:]):
            s.sendall(chunk)
            time.sleep(0.15)
        tls = harness.client_context(p.certs["ca"]).wrap_socket(s, server_hostname=HOST)
        tls.settimeout(IO_TIMEOUT)
        greeting = tls.recv(4096)
        assert greeting.startswith(b"* OK"), greeting
        tls.close()
    finally:
        s.close()
    start = wait_postern(p, r"event=session\.start [^\n]*client=198\.51\.100\.23:2323")
    assert start is not None, p.log()[-2000:]


def test_a_proxy_header_and_the_client_hello_in_one_segment_both_count(lb):
    """The bytes after the header (the ClientHello) belong to TLS."""
    d, p, imap_pp, _ = lb
    user = POOL_USERS[9]
    c = BioImap(imap_pp, p.certs["ca"], pp_v1("203.0.113.50", 5050, "192.0.2.1", 993))
    try:
        assert c.greeting.startswith(b"* OK"), c.greeting
        line = c.command("a1", "LOGIN %s %s" % (imap_q(user), imap_q(PASSWORDS[user])))
        assert line.startswith(b"a1 OK"), line
        c.command("a2", "LOGOUT")
    finally:
        c.close()
    ok = wait_postern(p, r'event=login\.ok [^\n]*user="%s"' % re.escape(user))
    assert ok and ok.get("client") == "203.0.113.50:5050", ok


def test_a_v2_local_header_keeps_the_balancers_own_address(lb):
    """PROXY v2 LOCAL (a balancer's health check): no client address, the
    connection is served with the socket's own."""
    d, p, imap_pp, _ = lb
    r = login(p, "imap", POOL_USERS[10], port=imap_pp, preamble=pp_v2(None, 0, None, 0,
                                                                       local=True))
    assert r.ok, r
    assert r.log.get("client") == "127.0.0.1:%d" % r.local[1], r.log


@pytest.mark.parametrize("send", ["nothing", "valid-v1", "valid-v2"])
def test_a_peer_outside_trusted_is_refused_whatever_it_sends(lb, send):
    d, p, imap_pp, _ = lb
    since = p.log_size()
    s = connect(imap_pp, source="127.0.0.5")
    local = s.getsockname()[1]
    try:
        if send == "valid-v1":
            s.sendall(pp_v1("203.0.113.99", 9999, "192.0.2.1", 993) + client_hello(p.certs["ca"]))
        elif send == "valid-v2":
            s.sendall(pp_v2("203.0.113.99", 9999, "192.0.2.1", 993) + client_hello(p.certs["ca"]))
        closed, got = wait_closed(s, 5.0)
    finally:
        s.close()
    assert closed, "an untrusted peer's connection stayed open (got %r)" % got[:200]
    assert not got.startswith(b"\x16"), "postern started TLS with an untrusted peer"
    ref = wait_postern(p, r"event=proxy\.refused ", since=since)
    assert ref is not None and ref.get("peer", "").startswith("127.0.0.5"), \
        p.log()[since:][-2000:]
    assert "203.0.113.99" not in p.log()[since:], "postern believed an untrusted header"
    # no session began for this connection (the harness's own port probes
    # of the other listeners may log theirs meanwhile)
    assert not [x for x in postern_lines(p, "session.start", since)
                if x.get("client", "").endswith(":%d" % local)
                or "203.0.113" in x.get("client", "")], p.log()[since:]


@pytest.mark.parametrize("garbage", ["text", "client-hello", "bad-v1-address",
                                     "v1-too-long", "v2-bad-version", "v1-bad-ports"])
def test_a_trusted_peer_that_sends_no_valid_header_is_closed(lb, garbage):
    d, p, imap_pp, _ = lb
    data = {
        "text": b"HELLO I AM NOT A PROXY HEADER\r\n",
        "client-hello": None,
        "bad-v1-address": b"PROXY TCP4 300.1.2.3 192.0.2.1 5555 993\r\n",
        "v1-too-long": b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
        "v2-bad-version": PP2_SIG + bytes([0x31, 0x11]) + struct.pack("!H", 12) + b"\0" * 12,
        "v1-bad-ports": b"PROXY TCP4 203.0.113.1 192.0.2.1 99999 993\r\n",
    }[garbage]
    if data is None:
        data = client_hello(p.certs["ca"])
    since = p.log_size()
    s = connect(imap_pp)
    local = s.getsockname()[1]
    try:
        s.sendall(data)
        closed, got = wait_closed(s, 5.0)
    finally:
        s.close()
    assert closed, "a bad header did not close the connection (got %r)" % got[:200]
    bad = wait_postern(p, r"event=proxy\.bad ", since=since)
    assert bad is not None, p.log()[since:][-2000:]
    # no session began for this connection (the harness's own port probes
    # of the other listeners may log theirs meanwhile)
    assert not [x for x in postern_lines(p, "session.start", since)
                if x.get("client", "").endswith(":%d" % local)
                or "203.0.113" in x.get("client", "")], p.log()[since:]


def test_a_listener_without_proxy_protocol_does_not_read_a_header(lb):
    """A PROXY header sent to an ordinary listener is just bytes that are not
    TLS: nobody gets to claim an address there."""
    d, p, _, _ = lb
    since = p.log_size()
    s = connect(p.imap_port)
    try:
        s.sendall(pp_v1("203.0.113.77", 7777, "192.0.2.1", 993) + client_hello(p.certs["ca"]))
        closed, got = wait_closed(s, 5.0)
    finally:
        s.close()
    assert closed, got[:200]
    time.sleep(0.3)
    assert "203.0.113.77" not in p.log()[since:], p.log()[since:]
