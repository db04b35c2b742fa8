"""Operating postern: the admin socket and its commands (sessions, kick,
backend drain/maint/ready, reload, health) and the graceful drain on
SIGTERM, through real Dovecot backends and real clients.  Each postern here
is this module's own, so that what `sessions` lists is exactly what the
test opened."""

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import harness
from harness import IO_TIMEOUT, TIMEOUT_SCALE, Dovecot, Postern, RawImap, RawPop3

HOST = "127.0.0.1"

PW = {
    "alice@example.org": "alice-ops-pw",
    "dave@example.org": "dave-ops-pw",
    "carol@example.org": "carol-ops-pw",
    "gina@other.test": "gina-ops-pw",
}
POOL = ["p%02d@example.net" % i for i in range(1, 9)]
IDLERS = ["idle%d@other.test" % i for i in range(1, 6)]
for _u in POOL + IDLERS:
    PW[_u] = "pw-" + _u.split("@")[0]

MX1 = ["alice@example.org", "dave@example.org", "gina@other.test"] + POOL + IDLERS
MX2 = ["carol@example.org"] + POOL

ROUTES = [
    {"user": "carol@example.org", "backend": "mx2"},
    {"domain": "example.org", "backend": "mx1"},
    {"domain": "example.net", "pool": ["mx1", "mx2"]},
    {"default": True, "backend": "mx1"},
]

BIG_SIZE = 4 * 1024 * 1024 + 123  # a message of several MB, odd length
OPS_TIMEOUTS = {"drain": "30s", "drain_quiet": "1s", "drain_spread": "3s"}


def big_message():
    lines = [b"From: big@example.com", b"To: <gina@other.test>", b"Subject: big one",
             b"Message-ID: <big.ops@postern.test>", b"", b"start"]
    n = 0
    body = bytearray(b"\r\n".join(lines) + b"\r\n")
    while len(body) < BIG_SIZE - 80:
        body += b"line %08d %s\r\n" % (n, b"abcdefghijklmnopqrstuvwxyz0123456789" * 1)
        n += 1
    body += b"x" * (BIG_SIZE - 2 - len(body)) + b"\r\n"
    assert len(body) == BIG_SIZE
    return bytes(body)


def deliver(d, user, data, n):
    """Put data into user's maildir on Dovecot d as message n (after the
    harness's own), the way harness.Dovecot._deliver does."""
    import grp
    import pwd
    uid = pwd.getpwnam(harness.MAIL_USER).pw_uid
    gid = grp.getgrnam(harness.MAIL_GROUP).gr_gid
    t = 1700000000 + n
    path = os.path.join(d.maildir(user), "new", "%d.M%dP%d.%s,S=%d" % (t, n, os.getpid(),
                                                                       d.name, len(data)))
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (t, t))
    os.chown(path, uid, gid)


@pytest.fixture(scope="module")
def ops_backends(run_dir):
    started = []
    try:
        a = Dovecot("mx1", {u: PW[u] for u in MX1}, parent_dir=run_dir)
        a.start()
        started.append(a)
        b = Dovecot("mx2", {u: PW[u] for u in MX2}, parent_dir=run_dir)
        b.start()
        started.append(b)
        big = big_message()
        deliver(a, "gina@other.test", big, 4)
        yield a, b, big
    finally:
        for d in started:
            d.cleanup()


@pytest.fixture
def ops(certs, ops_backends, postern_registry, run_dir):
    """A factory: a postern with an admin socket in front of this module's
    backends (Postern() keyword overrides allowed); stopped after the test."""
    made = []

    def make(admin=True, backends=None, routes=None, **kw):
        sockdir = tempfile.mkdtemp(prefix="adm-", dir=run_dir)  # mode 0700
        kw.setdefault("timeouts", dict(OPS_TIMEOUTS))
        extra = kw.pop("extra", "")
        if admin:
            extra += '\nadmin = { socket = "%s"; };' % os.path.join(sockdir, "admin.sock")
        p = Postern(certs, backends or list(ops_backends[:2]), routes or ROUTES,
                    parent_dir=run_dir, extra=extra, **kw)
        p.admin_socket = os.path.join(sockdir, "admin.sock") if admin else None
        postern_registry.append(p)
        made.append(p)
        return p.start()

    yield make
    for p in made:
        p.cleanup()


def admin(p, *args, timeout=30):
    return harness.run_postern("-c", p.conf_path, *args, timeout=timeout)


def sessions(p, *filters):
    r = admin(p, "sessions", "--json", *filters)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_sessions(p, pred, timeout=10.0, *filters):
    """Poll `sessions` (bounded) until pred(list) holds; returns the list."""
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while True:
        s = sessions(p, *filters)
        if pred(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.2)


def login(p, ca, user, pop3=False):
    """A raw client logged in as user: IMAP (tag a1) or POP3."""
    if pop3:
        c = RawPop3(p.pop3_port, ca)
        assert c.command("USER " + user).startswith(b"+OK"), c.dump()
        assert c.command("PASS " + PW[user]).startswith(b"+OK"), c.dump()
        return c
    c = RawImap(p.imap_port, ca)
    line, _ = c.command("a1", 'LOGIN "%s" "%s"' % (user, PW[user]))
    assert line.startswith(b"a1 OK"), c.dump()
    return c


def imap_works(c, tag="n1"):
    line, _ = c.command(tag, "NOOP")
    return line.startswith(tag.encode() + b" OK")


def read_bye(c, timeout):
    """Lines until '* BYE', then the close; returns the BYE line."""
    deadline = time.monotonic() + timeout
    while True:
        line = c.readline(max(0.1, deadline - time.monotonic()))
        if line.startswith(b"* BYE"):
            rest = c.read_until_closed(max(0.1, deadline - time.monotonic()))
            assert rest == b"", rest
            return line


def closes(c, timeout):
    try:
        rest = c.read_until_closed(timeout)
    except socket.timeout:
        return False
    return rest == b""


def refused_soon(port, timeout=2.0):
    """Does connecting to port get refused within timeout (every worker's
    listener closed)?"""
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------
# sessions
# ---------------------------------------------------------------------------


def test_sessions_lists_exactly_the_open_sessions(ops, ca):
    p = ops()
    assert sessions(p) == []
    a = login(p, ca, "alice@example.org")
    c = login(p, ca, "carol@example.org")
    d = login(p, ca, "dave@example.org", pop3=True)
    try:
        got = sessions(p)
        assert sorted((s["user"], s["proto"], s["backend"], s["state"]) for s in got) == [
            ("alice@example.org", "imap", "mx1", "relay"),
            ("carol@example.org", "imap", "mx2", "relay"),
            ("dave@example.org", "pop3", "mx1", "relay")], got
        assert len({s["cid"] for s in got}) == 3
        assert all(s["client"].startswith("127.0.0.1:") and s["in"] > 0 and s["out"] > 0
                   for s in got), got
        # the same, readable: a header and one line per session
        r = admin(p, "sessions")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split()[:4] == ["CID", "PROTO", "STATE", "USER"], r.stdout
        assert len(lines) == 4, r.stdout
        for s in got:
            assert any(l.startswith(s["cid"]) and s["user"] in l and s["backend"] in l
                       for l in lines[1:]), r.stdout
        # filters
        assert [s["user"] for s in sessions(p, "--user", "CAROL@example.org")] == \
            ["carol@example.org"]
        assert sorted(s["user"] for s in sessions(p, "--backend", "mx1")) == \
            ["alice@example.org", "dave@example.org"]
        assert len(sessions(p, "--client", "127.0.0.0/8")) == 3
        assert sessions(p, "--client", "192.0.2.0/24") == []
        # a session that ends leaves the list
        a.command("z", "LOGOUT")
        left = wait_sessions(p, lambda s: len(s) == 2)
        assert sorted(s["user"] for s in left) == ["carol@example.org", "dave@example.org"]
    finally:
        for x in (a, c, d):
            x.close()


# Names a client may try before it is logged in, as bytes, with what
# `sessions --json` shows (every byte outside well-formed UTF-8 as U+FFFD,
# control characters escaped) and what the plain listing shows (printable
# ASCII, every other byte as \xnn, as the logs do).
BAD_NAMES = [
    (b"\xe0\x80\xafx", "\ufffd\ufffd\ufffdx", r"\xe0\x80\xafx"),  # overlong '/'
    (b"\xed\xa0\x80", "\ufffd" * 3, r"\xed\xa0\x80"),  # a surrogate
    (b"\xf4\x90\x80\x80", "\ufffd" * 4, r"\xf4\x90\x80\x80"),  # above U+10FFFF
    (b"\xff", "\ufffd", r"\xff"),
    (b"\xc0\xaf", "\ufffd\ufffd", r"\xc0\xaf"),
    (b"\x80", "\ufffd", r"\x80"),  # a lone continuation byte
    (b"x\xc3", "x\ufffd", r"x\xc3"),  # cut short
    (b"a\nb\x01c\td", "a\nb\x01c\td", r"a\x0ab\x01c\x09d"),  # would forge a line
    ("jos\u00e9".encode(), "jos\u00e9", r"jos\xc3\xa9"),  # well-formed: kept in JSON
]


def admin_bytes(p, *args, timeout=30):
    """A command's (exit status, stdout bytes, stderr bytes): no decoding."""
    r = subprocess.run([harness.POSTERN_BIN, "-c", p.conf_path, *args], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=timeout * TIMEOUT_SCALE)
    return r.returncode, r.stdout, r.stderr


def try_name(p, ca, name):
    """An IMAP client that tried LOGIN with name (a {n+} literal) and a
    wrong password, and stays connected, not logged in."""
    c = RawImap(p.imap_port, ca)
    c.send(b"a1 LOGIN {%d+}\r\n%s wrong-password\r\n" % (len(name), name))
    return c


def test_sessions_show_any_tried_name_as_valid_json_and_one_escaped_line(ops, ca):
    p = ops()
    clients = []
    try:
        for name, _, _ in BAD_NAMES:
            clients.append(try_name(p, ca, name))
        # until every client's LOGIN has been read (its name is known)
        deadline = time.monotonic() + 10 * TIMEOUT_SCALE
        while True:
            rc, out, err = admin_bytes(p, "sessions")
            assert rc == 0, err
            lines = out.split(b"\n")[1:-1]
            if (len(lines) == len(BAD_NAMES) and all(l.split()[3] != b"-" for l in lines)) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # JSON: strict UTF-8, strict JSON, the documented replacement
        rc, out, err = admin_bytes(p, "sessions", "--json")
        assert rc == 0, err
        got = json.loads(out.decode("utf-8", errors="strict"))
        assert all(s["state"] != "relay" for s in got), got  # none logged in
        assert sorted(s["user"] for s in got) == sorted(j for _, j, _ in BAD_NAMES), out
        # the plain listing: one line per session, the names escaped
        rc, out, err = admin_bytes(p, "sessions")
        assert rc == 0, err
        lines = out.split(b"\n")[1:-1]
        assert out.endswith(b"\n") and len(lines) == len(BAD_NAMES), out
        assert all(0x20 <= b < 0x7f for b in out.replace(b"\n", b"")), out
        assert sorted(l.split()[3].decode() for l in lines) == \
            sorted(text for _, _, text in BAD_NAMES), out
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------------------
# kick
# ---------------------------------------------------------------------------


def test_kick_user_ends_only_that_users_sessions_with_a_bye(ops, ca):
    p = ops()
    a1 = login(p, ca, "alice@example.org")
    a2 = login(p, ca, "alice@example.org")
    c = login(p, ca, "carol@example.org")
    try:
        # one of alice's sessions sits in IDLE, the other is plain idle
        a1.send(b"i IDLE\r\n")
        assert a1.readline().startswith(b"+"), a1.dump()
        since = p.log_size()
        r = admin(p, "kick", "--user", "alice@example.org")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "kicked 2 sessions", r.stdout
        for x in (a1, a2):
            bye = read_bye(x, 10 * TIMEOUT_SCALE)
            assert bye.startswith(b"* BYE [UNAVAILABLE]"), bye
        assert imap_works(c), c.dump()
        assert p.wait_log(r"(?s)(event=session\.end[^\n]*user=\"alice@example\.org\"[^\n]*"
                          r"reason=kicked.*){2}", since=since)
        assert "reason=kicked" not in "".join(
            l for l in p.log()[since:].splitlines() if "carol" in l)
        assert [s["user"] for s in sessions(p)] == ["carol@example.org"]
        # nothing to kick is not an error; no filter at all is a usage error
        r = admin(p, "kick", "--user", "nobody@example.org")
        assert r.returncode == 0 and r.stdout.strip() == "kicked 0 sessions", r
        assert admin(p, "kick").returncode == 2
    finally:
        for x in (a1, a2, c):
            x.close()


# ---------------------------------------------------------------------------
# backend drain / maint / ready
# ---------------------------------------------------------------------------


def backend_table(p):
    r = admin(p, "backend", "list")
    assert r.returncode == 0, r.stderr
    rows = {}
    for l in r.stdout.splitlines()[1:]:
        f = l.split()
        rows[f[0]] = {"state": f[1], "health": f[2], "imap": int(f[3]), "pop3": int(f[4])}
    return rows, r.stdout


def test_backend_drain_moves_new_pool_logins_and_keeps_old_sessions(ops, ca):
    p = ops()
    # a pool user whose first choice is mx1
    user = None
    for u in POOL:
        c = login(p, ca, u)
        s = wait_sessions(p, lambda s: len(s) == 1)
        if s[0]["backend"] == "mx1":
            user, old = u, c
            break
        c.command("z", "LOGOUT")
        c.close()
        wait_sessions(p, lambda s: s == [])
    assert user is not None, "no pool user hashes to mx1 first"
    others = []
    try:
        r = admin(p, "backend", "mx1", "drain")
        assert r.returncode == 0, r.stderr
        assert "mx1: drain" in r.stdout, r.stdout
        rows, text = backend_table(p)
        assert rows["mx1"]["state"] == "drain" and rows["mx2"]["state"] == "ready", text
        assert rows["mx1"]["health"] == "up" and rows["mx1"]["imap"] == 1, text
        # a new login of the same user goes to its next choice
        new = login(p, ca, user)
        others.append(new)
        by_backend = sorted(s["backend"] for s in sessions(p, "--user", user))
        assert by_backend == ["mx1", "mx2"], by_backend
        # the old session stays and works
        assert imap_works(old), old.dump()
        # a user that only mx1 serves is refused as when it is down
        x = RawImap(p.imap_port, ca)
        others.append(x)
        line, _ = x.command("a1", 'LOGIN "alice@example.org" "%s"' % PW["alice@example.org"])
        assert line.startswith(b"a1 NO [UNAVAILABLE]"), x.dump()
        x.close()  # (a refused client stays listed, pre-auth, under the name it tried)
        wait_sessions(p, lambda s: len(s) == 2)

        # maint: also ends the sessions there, politely
        r = admin(p, "backend", "mx1", "maint")
        assert r.returncode == 0, r.stderr
        assert "mx1: maint, 1 session ending" in r.stdout, r.stdout
        assert read_bye(old, 10 * TIMEOUT_SCALE).startswith(b"* BYE [UNAVAILABLE]")
        assert imap_works(new), new.dump()
        rows, text = backend_table(p)
        assert rows["mx1"]["state"] == "maint" and rows["mx1"]["imap"] == 0, text
        assert rows["mx2"]["imap"] == 1, text

        # ready: back in rotation
        r = admin(p, "backend", "mx1", "ready")
        assert r.returncode == 0 and "mx1: ready" in r.stdout, r
        a = login(p, ca, "alice@example.org")
        others.append(a)
        assert [s["backend"] for s in sessions(p, "--user", "alice@example.org")] == ["mx1"]
        assert backend_table(p)[0]["mx1"]["state"] == "ready"
        # a name that is no backend
        r = admin(p, "backend", "mx9", "drain")
        assert r.returncode == 1 and 'no backend named "mx9"' in r.stderr, r
    finally:
        old.close()
        for x in others:
            x.close()


# ---------------------------------------------------------------------------
# reload
# ---------------------------------------------------------------------------


def test_reload_reports_success_and_the_error_of_a_broken_config(ops):
    p = ops()
    r = admin(p, "reload")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "reloaded: generation 2", r.stdout
    good = p.extra
    p.extra = good + "\nbogus_setting = 1;"
    p.write_config()
    try:
        r = admin(p, "reload")
        assert r.returncode == 1, r
        assert "reload failed" in r.stderr and "unknown setting 'bogus_setting'" in r.stderr, \
            r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert p.running()
    finally:
        p.extra = good
        p.write_config()
    r = admin(p, "reload")
    assert r.returncode == 0 and r.stdout.strip() == "reloaded: generation 3", r


# ---------------------------------------------------------------------------
# the socket itself
# ---------------------------------------------------------------------------


def raw_admin(path, data, timeout=IO_TIMEOUT):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    try:
        if data:
            s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def test_admin_socket_refuses_bad_input_and_serves_others_while_one_hangs(ops):
    p = ops()
    path = p.admin_socket
    assert os.stat(path).st_mode & 0o777 == 0o600
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.settimeout(IO_TIMEOUT)
    hung.connect(path)  # connected, sends nothing
    try:
        t0 = time.monotonic()
        r = admin(p, "health", timeout=10)
        assert r.returncode == 0 and r.stdout == "ok\n", r
        assert time.monotonic() - t0 < 3 * TIMEOUT_SCALE
        for req, want in [(b"frobnicate\n", b'ERR unknown command "frobnicate"\n'),
                          (b"\n", b"ERR empty request"),
                          (b"sessions \x01\x02\n", b"ERR bad request: byte 0x01"),
                          (b"sessions user\n", b"ERR unknown argument"),
                          (b"sessions client=300.1.1.1/8\n", b"ERR client="),
                          (b"backend mx1 explode\n", b"ERR usage: backend"),
                          (b"reload now\n", b"ERR reload takes no arguments"),
                          (b"x" * 5000, b"ERR request too long")]:
            out = raw_admin(path, req)
            assert out.startswith(want), (req[:40], out)
            assert out.count(b"\n") == 1 and out.endswith(b"\n"), out
        # the hung client is let go with one line after its read timeout
        hung.settimeout(15 * TIMEOUT_SCALE)
        assert hung.recv(4096).startswith(b"ERR timed out"), "hung client not let go"
    finally:
        hung.close()
    assert p.running()


ADMIN_CLIENTS_MAX = 16  # proxy/admin_impl.h
EXIT_BUSY = 75  # README, postern(8): the admin socket is busy, try again


def test_a_full_admin_socket_is_reported_as_busy_with_its_own_exit_code(ops):
    p = ops()
    held = []
    try:
        # every place taken, and one more: that one is told busy, so the
        # others are surely accepted and waiting for their request lines
        for _ in range(ADMIN_CLIENTS_MAX + 1):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.append(s)
            s.settimeout(IO_TIMEOUT)
            s.connect(p.admin_socket)
        assert held[-1].recv(4096).startswith(b"ERR busy"), "the extra client was not refused"
        # within the server's 5 s read timeout of the held ones
        for cmd in (["health"], ["sessions", "--json"]):
            r = admin(p, *cmd, timeout=10)
            assert r.returncode == EXIT_BUSY, r
            assert "busy" in r.stderr and r.stdout == "", r
            assert "Broken pipe" not in r.stderr and "reset" not in r.stderr, r
    finally:
        for s in held:
            s.close()
    # the places freed, the same command answers
    deadline = time.monotonic() + 5 * TIMEOUT_SCALE
    while True:
        r = admin(p, "health")
        if r.returncode != EXIT_BUSY or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (r.returncode, r.stdout) == (0, "ok\n"), r


# ---------------------------------------------------------------------------
# health
# ---------------------------------------------------------------------------


def test_health_exit_codes(ops, ops_backends, dead_backend):
    p = ops()
    r = admin(p, "health")
    assert (r.returncode, r.stdout) == (0, "ok\n"), r
    # no admin socket in the file
    q = ops(admin=False)
    r = admin(q, "health")
    assert r.returncode == 1 and "no admin socket" in r.stderr, r
    # every backend down: checked every second, down after one failure
    dead = dict(dead_backend, check_interval="1s", fall=1)
    d = ops(backends=[dead], routes=[{"default": True, "backend": "dead"}])
    deadline = time.monotonic() + 15 * TIMEOUT_SCALE
    while True:
        r = admin(d, "health")
        if r.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.returncode == 1 and "no backend is up" in r.stderr, r
    # the daemon gone: nothing answers
    p.stop()
    r = admin(p, "health")
    assert r.returncode == 1 and "admin socket" in r.stderr, r


def test_admin_socket_in_a_world_writable_directory_is_refused(run_dir):
    d = tempfile.mkdtemp(prefix="ww-", dir=run_dir)
    os.chmod(d, 0o1777)
    conf = os.path.join(d, "check.conf")
    with open(conf, "w") as f:
        f.write('admin = { socket = "%s/admin.sock"; };\n' % d)
    r = harness.run_postern("-t", "-c", conf)
    assert r.returncode == 1
    assert "world-writable" in r.stderr and "admin.socket" in r.stderr, r.stderr


# ---------------------------------------------------------------------------
# SIGTERM: the graceful drain
# ---------------------------------------------------------------------------


def test_sigterm_ends_50_idle_sessions_politely_and_exits_0(ops, ops_backends, ca):
    big = ops_backends[2]
    p = ops()
    idlers = []
    try:
        for i in range(50):
            c = login(p, ca, IDLERS[i % len(IDLERS)])
            c.send(b"i IDLE\r\n")
            assert c.readline().startswith(b"+"), c.dump()
            idlers.append(c)
        pop = login(p, ca, "dave@example.org", pop3=True)
        pre = RawImap(p.imap_port, ca)  # greeted, not logged in
        g = login(p, ca, "gina@other.test")
        line, _ = g.command("s", "SELECT INBOX")
        assert line.startswith(b"s OK"), g.dump()
        assert len(sessions(p)) == 53

        # a FETCH of several MB in flight when the signal comes
        g.send(b"f FETCH 4 BODY.PEEK[]\r\n")
        head = g.readline()
        m = re.match(rb"\* 4 FETCH \(.*BODY\[\] \{(\d+)\}\r\n$", head)
        assert m and int(m.group(1)) == len(big), head
        t0 = time.monotonic()
        os.kill(p.proc.pid, signal.SIGTERM)

        # who says what, and when, read in parallel
        byes, errors = {}, []

        def wait_bye(i, c):
            try:
                line = read_bye(c, 25 * TIMEOUT_SCALE)
                byes[i] = (time.monotonic() - t0, line)
            except Exception as e:  # noqa: BLE001
                errors.append("%d: %r" % (i, e))

        threads = [threading.Thread(target=wait_bye, args=(i, c)) for i, c in
                   enumerate(idlers)]
        for t in threads:
            t.start()

        # pre-auth: the BYE once quiet (drain_quiet, no spread)
        assert read_bye(pre, 5 * TIMEOUT_SCALE).startswith(b"* BYE [UNAVAILABLE]")
        # the listeners are closed at once
        assert refused_soon(p.imap_port), "a listener still accepts"

        # the FETCH comes whole, read slowly, with a pause in the middle
        # longer than drain_quiet and past every session's moment within
        # drain_spread (3s); only then the BYE
        got = bytearray()
        while len(got) < len(big):
            n = min(256 * 1024, len(big) - len(got))
            got += g.read_exact(n, 10 * TIMEOUT_SCALE)
            time.sleep(4.0 if len(got) == 1024 * 1024 else 0.02)
        assert bytes(got) == big, "FETCH body differs"
        assert g.readline() == b")\r\n", g.dump()
        assert g.readline().startswith(b"f OK"), g.dump()
        assert read_bye(g, 10 * TIMEOUT_SCALE).startswith(b"* BYE [UNAVAILABLE]")

        # POP3: closed when quiet, without a word
        assert closes(pop, 10 * TIMEOUT_SCALE)

        for t in threads:
            t.join(30 * TIMEOUT_SCALE)
        assert not errors, errors[:5]
        assert len(byes) == 50
        assert all(l == b"* BYE [UNAVAILABLE] Server shutting down, please reconnect\r\n"
                   for _, l in byes.values()), set(l for _, l in byes.values())
        times = sorted(t for t, _ in byes.values())
        # quiet for long already: each at its random point within
        # drain_spread (3s), so not all at once
        assert times[-1] - times[0] >= 1.0, (times[0], times[-1])
        assert times[-1] < 3 + 2 * TIMEOUT_SCALE, times[-3:]
        rc = p.proc.wait(timeout=35 * TIMEOUT_SCALE)
        assert rc == 0
        assert time.monotonic() - t0 < 30 * TIMEOUT_SCALE
        log = p.log()
        assert len(re.findall(r"event=session\.end [^\n]*reason=shutdown", log)) == 53, \
            harness._tail(log)
    finally:
        for c in idlers:
            c.close()


def test_a_second_postern_on_the_same_admin_socket_takes_it_over_for_an_upgrade(ops, ca):
    """The upgrade recipe with an admin socket: B starts on A's config (same
    listeners, same socket) while A runs, takes the socket path over
    atomically, and keeps it when A is sent SIGTERM and exits; the socket
    then answers for B (its session is listed)."""
    a = ops()
    sock = a.admin_socket
    extra = '\nadmin = { socket = "%s"; };' % sock
    b = Postern(a.certs, a.backends, ROUTES, parent_dir=a.parent_dir,
                extra=extra, timeouts=dict(OPS_TIMEOUTS), imap_port=a.imap_port,
                pop3_port=a.pop3_port)
    b.admin_socket = sock
    try:
        b.start()
        assert b.wait_log(r"event=admin\.socket_taken_over\b"), b.log()[-2000:]
        os.kill(a.proc.pid, signal.SIGTERM)
        assert a.proc.wait(timeout=30 * TIMEOUT_SCALE) == 0
        assert os.path.exists(sock), "the old postern removed the new one's socket"
        c = login(b, ca, "alice@example.org")
        try:
            listed = sessions(b, "--user", "alice@example.org")
            assert [s["user"] for s in listed] == ["alice@example.org"], listed
        finally:
            c.close()
    finally:
        b.cleanup()
