"""The HTTP user lookup end to end: a lookup service in Python
(harness.authsvc) that speaks nginx's auth_http protocol and postern's
JSON protocol, real Dovecots mx1 and mx2 (the session's), and postern in
front, compared with nginx's own mail proxy (harness.nginx) asking the same
service, unchanged.

nginx is the reference: for each case the lines nginx sends are written
down below (NGINX_REF, recorded from Debian's nginx 1.22 with
libnginx-mod-mail), and a test checks nginx still sends them.  postern
must route every login the way nginx does, and answer the client as well
or better; where better, the case says how.

How a test learns where a login landed: the first message of the mailbox
names the backend that stored it (harness.dovecot.make_message), and
postern's login.ok line names the backend it chose; the two agree.  Every
socket operation has a timeout; every wait is a bounded poll."""

import base64
import json
import os
import re
import select
import tempfile
import threading
import time
import urllib.request

import pytest

import harness
from harness import (IMAP_AUTH_FAILED, IO_TIMEOUT, PASSWORDS, POP3_AUTH_FAILED, ROUTES,
                     TIMEOUT_SCALE, WRONG_PASSWORDS, ClosedError, Dovecot, Postern, RawImap,
                     RawPop3, RawSieve, sasl_plain)
from harness import authsvc
from harness.authsvc import (AuthService, close_mid, error, garbage, hang, hold, refuse,
                             route, slow, unknown)
from harness.nginx import Nginx
from harness.routing import postern_lines, wait_postern

ALICE = "alice@example.org"          # on mx1 only
ERIN = "erin@other.test"             # on both; the config's routes say mx1, the service mx2
SLACK = 1.5 * TIMEOUT_SCALE          # s: "within the timeout" means within timeout + SLACK
TIMEOUT = 2.0                        # s: nginx's auth_http_timeout and postern's lookup.timeout

IMAP_UNAVAILABLE_PREFIX = b"a1 NO [UNAVAILABLE] "
POP3_UNAVAILABLE_PREFIX = b"-ERR [SYS/TEMP] "


def imap_q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ===========================================================================
# One login, through either proxy, and what the client saw
# ===========================================================================


class Outcome:
    """What a client saw of one login: ok, lines (everything the server sent
    in answer to the credentials, up to the tagged line or the close),
    answer (the tagged line / the PASS answer, or None when the server
    closed first), elapsed (seconds to that answer), backend (the mailbox's
    backend when ok), open (the session answered one more command after a
    refusal), after (the lines between the refusal and the close)."""

    def __repr__(self):
        return ("Outcome(ok=%s answer=%r lines=%r open=%s after=%r backend=%s "
                "elapsed=%.2f)" % (self.ok, self.answer, self.lines, self.open, self.after,
                                   self.backend, self.elapsed))


def _read_lines_until(c, done, timeout):
    """Lines until done(line) or the close; (lines, closed)."""
    lines = []
    try:
        while True:
            line = c.readline(timeout)
            lines.append(line)
            if done(line):
                return lines, False
    except ClosedError:
        return lines, True


def _probe(c, proto, out):
    """After a refusal: is the session still open?  One more command."""
    out.after = []
    try:
        if proto == "imap":
            c.send(b"a2 CAPABILITY\r\n")
            lines, closed = _read_lines_until(c, lambda l: l.startswith(b"a2 "), IO_TIMEOUT)
        else:
            c.send(b"CAPA\r\n")
            lines, closed = _read_lines_until(c, lambda l: l.startswith((b"+OK", b"-ERR")),
                                              IO_TIMEOUT)
    except (BrokenPipeError, ConnectionResetError):
        lines, closed = [], True
    if closed:
        out.open = False
        out.after = lines
    else:
        out.open = True


def attempt(port, proto, user, password, ca=None, sasl=False, probe=True):
    """Log user in on port (plaintext when ca is None: nginx; implicit TLS
    verified against ca: postern) with LOGIN / USER+PASS, or SASL PLAIN
    (sasl=True); on success read the first message's Subject to learn the
    backend and log out; on a refusal, probe whether the session is open."""
    out = Outcome()
    out.ok, out.backend, out.open, out.after = False, None, None, []
    cls = RawImap if proto == "imap" else RawPop3
    c = cls(port, ca, plaintext=ca is None)
    try:
        if proto == "imap":
            if sasl:
                c.send(b"a1 AUTHENTICATE PLAIN\r\n")
                c.expect_continuation()
                t0 = time.monotonic()
                c.send(sasl_plain(user, password) + b"\r\n")
            else:
                t0 = time.monotonic()
                c.send("a1 LOGIN %s %s\r\n" % (imap_q(user), imap_q(password)))
            out.lines, closed = _read_lines_until(c, lambda l: l.startswith(b"a1 "),
                                                  3 * IO_TIMEOUT)
        else:
            if sasl:
                c.send(b"AUTH PLAIN\r\n")
                line = c.readline()
                assert line.startswith(b"+"), c.dump()
                t0 = time.monotonic()
                c.send(sasl_plain(user, password) + b"\r\n")
            else:
                line = c.command("USER " + user)
                assert line.startswith(b"+OK"), c.dump()
                t0 = time.monotonic()
                c.send(b"PASS " + password.encode("utf-8") + b"\r\n")
            out.lines, closed = _read_lines_until(c, lambda l: l.startswith((b"+OK", b"-ERR")),
                                                  3 * IO_TIMEOUT)
        out.elapsed = time.monotonic() - t0
        out.answer = None if closed else out.lines[-1]
        if closed:
            out.open = False
        elif proto == "imap" and out.answer.startswith(b"a1 OK"):
            out.ok = True
            line, _ = c.command("a2", "SELECT INBOX")
            assert line.startswith(b"a2 OK"), c.dump()
            line, lines = c.command("a3", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert line.startswith(b"a3 OK"), c.dump()
            m = re.search(rb"Subject: message 1 for (\S+) on (\w+)", b"".join(lines))
            assert m, c.dump()
            out.mailbox, out.backend = m.group(1).decode(), m.group(2).decode()
            c.command("a9", "LOGOUT")
        elif proto == "pop3" and out.answer.startswith(b"+OK"):
            out.ok = True
            line = c.command("TOP 1 0")
            assert line.startswith(b"+OK"), c.dump()
            head = b"\n".join(c.read_multiline())
            m = re.search(rb"Subject: message 1 for (\S+) on (\w+)", head)
            assert m, c.dump()
            out.mailbox, out.backend = m.group(1).decode(), m.group(2).decode()
            c.command("QUIT")
        elif probe:
            _probe(c, proto, out)
        out.transcript = c.dump()
    finally:
        c.close()
    return out


def via_postern(p, proto, user, password, **kw):
    return attempt(p.imap_port if proto == "imap" else p.pop3_port, proto, user, password,
                   ca=p.certs["ca"], **kw)


def via_nginx(n, proto, user, password, **kw):
    return attempt(n.imap_port if proto == "imap" else n.pop3_port, proto, user, password,
                   **kw)


def login_line(p, user, since, ok=True, timeout=5.0):
    ev = r"login\.ok" if ok else r"login\.fail"
    got = wait_postern(p, r'event=%s [^\n]*user="%s"' % (ev, re.escape(user)), since=since,
                       timeout=timeout)
    assert got is not None, "no %s line for %s:\n%s" % (ev, user, p.log()[since:][-3000:])
    return got


# ===========================================================================
# Fixtures: the service, nginx, postern with a lookup section
# ===========================================================================


@pytest.fixture
def make_svc():
    """Factory: an AuthService (authsvc.AuthService arguments), started;
    stopped after the test."""
    made = []

    def make(users=None, **kw):
        s = AuthService(users, **kw).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def lookup_conf(svc, **kw):
    """A `lookup` section for svc: nginx protocol, 2 s timeout, no cache,
    and kw on top."""
    d = {"url": svc.url("auth"), "protocol": "nginx", "timeout": "%gs" % TIMEOUT,
         "cache_ttl": "0", "negative_ttl": "0"}
    d.update(kw)
    return d


@pytest.fixture
def lpostern(certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    """Factory: a postern in front of mx1, mx2 and "dead" with the session's
    routes and lookup section lookup (a dict, see lookup_conf), Postern()
    keyword overrides; stopped after the test.  One that exited during the
    test fails it with its log."""
    made = []

    def make(lookup, backends=None, routes=None, **kw):
        p = Postern(certs, [mx1, mx2, dead_backend] if backends is None else backends,
                    ROUTES if routes is None else routes,
                    parent_dir=run_dir, lookup=lookup, **kw)
        postern_registry.append(p)
        p.start()  # one that does not start raises here (and is cleaned up)
        made.append(p)
        return p

    yield make
    dead = [p for p in made if p.proc is not None and not p.running()]
    for p in made:
        p.cleanup()
    if dead:
        pytest.fail("postern exited during this test (exit status %s); log tail:\n%s"
                    % (dead[0].proc.returncode, harness._tail(dead[0].log(), 40)))


# ===========================================================================
# 1. nginx and postern in front of the same service, unchanged
# ===========================================================================

# The cases: (name, user the client sends, password it sends).  The
# service's table (cmp_svc) answers each of them.
CASES = [
    ("mx1", ALICE, PASSWORDS[ALICE]),
    ("mx2", ERIN, PASSWORDS[ERIN]),
    ("mx2-sasl", ERIN, PASSWORDS[ERIN]),                         # AUTHENTICATE / AUTH PLAIN
    ("wrong-password", ALICE, WRONG_PASSWORDS[0]),               # refused, Auth-Wait: 1
    ("unknown-user", "nobody@lookup.test", WRONG_PASSWORDS[1]),  # refused, no Auth-Wait
    ("rewrite", "erin", WRONG_PASSWORDS[2]),                     # Auth-User + Auth-Pass
    ("http-500", "err500@lookup.test", WRONG_PASSWORDS[0]),
    ("hang", "hang@lookup.test", WRONG_PASSWORDS[0]),
    ("garbage", "garbage@lookup.test", WRONG_PASSWORDS[0]),
    ("close-mid", "closed@lookup.test", WRONG_PASSWORDS[0]),
]
CASE = {c[0]: c for c in CASES}

# What nginx 1.22 (Debian, libnginx-mod-mail; auth_http_timeout 2s) sends
# for each case: (lines in answer to the credentials, session open after,
# backend).  A refusal without Auth-Wait and every failure of the service
# close the connection; nginx's IMAP answer to a broken service is an
# untagged BAD, never the tagged answer the client waits for.
NGINX_REF = {
    ("mx1", "imap"): (None, None, "mx1"),
    ("mx1", "pop3"): ([b"+OK Logged in.\r\n"], None, "mx1"),
    ("mx2", "imap"): (None, None, "mx2"),
    ("mx2", "pop3"): ([b"+OK Logged in.\r\n"], None, "mx2"),
    ("mx2-sasl", "imap"): (None, None, "mx2"),
    ("mx2-sasl", "pop3"): ([b"+OK Logged in.\r\n"], None, "mx2"),
    ("wrong-password", "imap"): ([b"a1 NO Invalid login or password\r\n"], True, None),
    ("wrong-password", "pop3"): ([b"-ERR Invalid login or password\r\n"], True, None),
    ("unknown-user", "imap"): ([b"a1 NO Invalid login or password\r\n"], False, None),
    ("unknown-user", "pop3"): ([b"-ERR Invalid login or password\r\n"], False, None),
    ("rewrite", "imap"): (None, None, "mx2"),
    ("rewrite", "pop3"): ([b"+OK Logged in.\r\n"], None, "mx2"),
    ("http-500", "imap"): ([b"* BAD internal server error\r\n"], False, None),
    ("http-500", "pop3"): ([b"-ERR internal server error\r\n"], False, None),
    ("hang", "imap"): ([b"* BAD internal server error\r\n"], False, None),
    ("hang", "pop3"): ([b"-ERR internal server error\r\n"], False, None),
    ("garbage", "imap"): ([b"* BAD internal server error\r\n"], False, None),
    ("garbage", "pop3"): ([b"-ERR internal server error\r\n"], False, None),
    ("close-mid", "imap"): ([b"* BAD internal server error\r\n"], False, None),
    ("close-mid", "pop3"): ([b"-ERR internal server error\r\n"], False, None),
}


@pytest.fixture(scope="module")
def cmp_svc(mx1, mx2):
    s = AuthService({
        ALICE: route(mx1, check=PASSWORDS[ALICE]),
        ERIN: route(mx2, check=PASSWORDS[ERIN]),
        # the client says "erin" with a password the service replaces
        "erin": route(mx2, user=ERIN, password=PASSWORDS[ERIN]),
        "nobody@lookup.test": unknown(),
        "err500@lookup.test": error(500),
        "hang@lookup.test": hang(),
        "garbage@lookup.test": garbage(),
        "closed@lookup.test": close_mid(),
    }).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def nginx(cmp_svc, run_dir):
    n = Nginx(cmp_svc.url("nginx"), auth_timeout="%ds" % TIMEOUT, parent_dir=run_dir).start()
    yield n
    n.cleanup()


@pytest.fixture(scope="module")
def cmp_postern(cmp_svc, certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    # The cases' failures come in a row (500, hang, garbage, cut, for both
    # protocols): each case is about its own answer, so the breaker (tested
    # on its own below) must not open in between.
    p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir,
                lookup=lookup_conf(cmp_svc, breaker_failures=1000))
    postern_registry.append(p)
    p.start()
    yield p
    p.cleanup()


def _check_nginx(out, name, proto):
    lines, still_open, backend = NGINX_REF[(name, proto)]
    if backend is not None:
        assert out.ok and out.backend == backend, out
        if proto == "pop3":
            assert out.lines == lines, out
        return
    assert out.lines == lines, out
    assert out.open == still_open, out


@pytest.mark.parametrize("proto", ["imap", "pop3"])
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_nginx_reference_lines(nginx, name, proto):
    """nginx still answers each case with the lines written down above."""
    _, user, pw = CASE[name]
    out = via_nginx(nginx, proto, user, pw, sasl=name.endswith("-sasl"))
    _check_nginx(out, name, proto)
    if name == "wrong-password":
        assert out.elapsed >= 0.9, out      # Auth-Wait: 1
    if name == "hang":
        assert out.elapsed >= TIMEOUT - 0.1, out  # nginx waits auth_http_timeout


@pytest.mark.parametrize("proto", ["imap", "pop3"])
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_postern_routes_like_nginx_and_answers_as_well_or_better(nginx, cmp_postern, name,
                                                                    proto):
    _, user, pw = CASE[name]
    sasl = name.endswith("-sasl")
    ref = via_nginx(nginx, proto, user, pw, sasl=sasl)
    _check_nginx(ref, name, proto)
    p = cmp_postern
    since = p.log_size()
    out = via_postern(p, proto, user, pw, sasl=sasl)
    imap = proto == "imap"

    if name in ("mx1", "mx2", "mx2-sasl", "rewrite"):
        # The same route: the same backend's mailbox, of the same user
        # (rewrite: the client said "erin", the backend heard erin@other.test
        # with the password the service gave).
        assert out.ok and out.backend == ref.backend, (out, ref)
        assert out.mailbox == ref.mailbox, (out, ref)
        got = login_line(p, user, since)
        assert got.get("backend") == ref.backend, got
        return

    got = login_line(p, user, since, ok=False)
    if name == "wrong-password":
        # Better: the same text with the RFC 5530 / RFC 3206 code; the same
        # Auth-Wait pause; the session stays open, as nginx's does.
        want = (b"a1 NO [AUTHENTICATIONFAILED] Invalid login or password\r\n" if imap
                else b"-ERR [AUTH] Invalid login or password\r\n")
        assert out.lines == [want], out
        assert out.elapsed >= 0.9, out
        assert out.open, out
        assert got.get("reason") == "lookup_refused", got
    elif name == "unknown-user":
        # Better: the code as above; like nginx the connection closes after
        # a refusal without Auth-Wait, IMAP with a BYE first (RFC 9051 7.1.5)
        # where nginx just hangs up.
        want = (b"a1 NO [AUTHENTICATIONFAILED] Invalid login or password\r\n" if imap
                else b"-ERR [AUTH] Invalid login or password\r\n")
        assert out.lines == [want], out
        assert out.open is False, out
        if imap:
            assert out.after and out.after[0].startswith(b"* BYE "), out
        assert got.get("reason") == "lookup_refused", got
    else:
        # http-500, hang, garbage, close-mid.  Better: nginx sends an untagged
        # "* BAD internal server error" (IMAP: the LOGIN never gets its tagged
        # answer) or "-ERR internal server error" and closes; postern answers
        # the command itself with the RFC 5530 UNAVAILABLE / RFC 3206
        # SYS/TEMP code (a client knows to retry, not to ask for a new
        # password) and keeps the session for another try.  hang: nginx
        # waits its auth_http_timeout and closes; postern answers within its
        # timeout (the same 2 s) and keeps the session.
        prefix = IMAP_UNAVAILABLE_PREFIX if imap else POP3_UNAVAILABLE_PREFIX
        assert len(out.lines) == 1 and out.lines[0].startswith(prefix), out
        assert out.open, out
        assert out.elapsed < TIMEOUT + SLACK, out
        assert got.get("reason") == "lookup_unavailable", got
        fails = postern_lines(p, "lookup.fail", since)
        assert fails and all(f.get("why") for f in fails), p.log()[since:][-3000:]


def test_postern_asks_with_the_header_lines_nginx_sends(nginx, cmp_svc, cmp_postern):
    """The same login through both: every header line nginx sends reaches
    the service from postern too, with the same value (nginx's escaping
    undone: alice's password has spaces, quotes and a backslash), except
    the client's port-dependent ones."""
    for proto in ("imap", "pop3"):
        n0 = len(cmp_svc.requests_of(ALICE))
        assert via_nginx(nginx, proto, ALICE, PASSWORDS[ALICE]).ok
        assert via_postern(cmp_postern, proto, ALICE, PASSWORDS[ALICE]).ok
        reqs = cmp_svc.requests_of(ALICE)[n0:]
        assert len(reqs) == 2, reqs
        ng, pg = reqs
        assert ng["method"] == "GET" and pg["method"] == "GET", reqs
        assert ng["headers"]["auth-pass"] == PASSWORDS[ALICE], ng
        for k, v in ng["headers"].items():
            if k in ("host",):
                continue
            assert pg["headers"].get(k) == v, (k, ng["headers"], pg["headers"])


# ===========================================================================
# 2. What postern sends; JSON; https
# ===========================================================================


def test_configured_headers_arrive_and_send_password_false_keeps_the_password(make_svc,
                                                                             lpostern, mx1):
    svc = make_svc({ALICE: route(mx1)})
    p = lpostern(lookup_conf(svc, headers=["X-Auth-Key: k-123", "X-Site: pit"],
                             send_password=False))
    for proto in ("imap", "pop3"):
        assert via_postern(p, proto, ALICE, PASSWORDS[ALICE]).ok
    reqs = svc.requests_of(ALICE)
    assert len(reqs) == 2, reqs
    for r, proto in zip(reqs, ("imap", "pop3")):
        h = r["headers"]
        assert h.get("x-auth-key") == "k-123" and h.get("x-site") == "pit", h
        assert "auth-pass" not in h, h
        assert h.get("auth-protocol") == proto and h.get("auth-method") == "plain", h
        assert h.get("auth-login-attempt") == "1" and h.get("client-ip") == "127.0.0.1", h


def test_json_protocol_routes_by_name_and_by_address_and_refuses(make_svc, lpostern, mx1,
                                                                 mx2):
    svc = make_svc({
        ERIN: route(mx2, by_name="mx2"),
        ALICE: route(mx1),                        # {"server", "port"}: mx1's address
        "erin": route(mx2, user=ERIN),            # JSON "user" rewrites
        "refused@lookup.test": refuse("go away", status=403),
        "nobody@lookup.test": unknown(),          # 404
        "err500@lookup.test": error(503),
    })
    p = lpostern(lookup_conf(svc, protocol="json", headers=["X-Auth-Key: k"]))
    for proto in ("imap", "pop3"):
        since = p.log_size()
        out = via_postern(p, proto, ERIN, PASSWORDS[ERIN])
        assert out.ok and out.backend == "mx2", out
        assert login_line(p, ERIN, since).get("backend") == "mx2"
        out = via_postern(p, proto, ALICE, PASSWORDS[ALICE])
        assert out.ok and out.backend == "mx1", out
        assert login_line(p, ALICE, since).get("backend") == "mx1"
        out = via_postern(p, proto, "erin", PASSWORDS[ERIN])
        assert out.ok and out.backend == "mx2" and out.mailbox == ERIN, out
        # 401/403 and 404: the answer of any failed login; the session stays
        for user, reason in (("refused@lookup.test", "lookup_refused"),
                             ("nobody@lookup.test", "lookup_unknown_user")):
            since = p.log_size()
            out = via_postern(p, proto, user, WRONG_PASSWORDS[0])
            want = IMAP_AUTH_FAILED if proto == "imap" else POP3_AUTH_FAILED
            assert out.lines == [want.encode() + b"\r\n"], out
            assert out.open, out
            assert login_line(p, user, since, ok=False).get("reason") == reason
        out = via_postern(p, proto, "err500@lookup.test", WRONG_PASSWORDS[0])
        prefix = IMAP_UNAVAILABLE_PREFIX if proto == "imap" else POP3_UNAVAILABLE_PREFIX
        assert out.lines[0].startswith(prefix) and out.open, out
    r = svc.requests_of(ERIN)[0]
    assert r["method"] == "POST" and isinstance(r["json"], dict), r
    doc = r["json"]
    assert doc["user"] == ERIN and doc["protocol"] == "imap", doc
    assert doc["method"] == "plain" and doc["attempt"] == 1, doc
    assert doc["client"]["ip"] == "127.0.0.1" and isinstance(doc["client"]["port"], int), doc
    assert "password" not in doc, doc     # send_password: false by default for json
    assert r["headers"].get("x-auth-key") == "k", r["headers"]
    # JSON carries text only: a user name that is not UTF-8 (Latin-1 here)
    # cannot be asked about; it is refused as an invalid name, unasked
    n0 = len(svc.requests)
    since = p.log_size()
    with RawImap(p.imap_port, p.certs["ca"]) as c:
        name = b"j\xf6rg@lookup.test"
        c.send(b"a1 LOGIN {%d+}\r\n%s pw\r\n" % (len(name), name))
        line, _ = c.read_response("a1")
        assert line == IMAP_AUTH_FAILED.encode() + b"\r\n", c.dump()
    got = wait_postern(p, r"event=login\.fail [^\n]*reason=invalid_user_name", since=since)
    assert got, p.log()[since:]
    assert len(svc.requests) == n0


def test_https_service_with_the_test_ca_works_and_a_wrong_ca_is_a_temporary_failure(
        make_svc, lpostern, certs, run_dir, mx2):
    svc = make_svc({ERIN: route(mx2)}, cert={"cert": certs["rsa_cert"], "key": certs["rsa_key"]})
    assert svc.url().startswith("https://")
    p = lpostern(lookup_conf(svc, ca=certs["ca"]))
    for proto in ("imap", "pop3"):
        out = via_postern(p, proto, ERIN, PASSWORDS[ERIN])
        assert out.ok and out.backend == "mx2", out
    other = harness.make_ca(tempfile.mkdtemp(prefix="pit-otherca-", dir=run_dir), "other",
                            "another test CA")
    q = lpostern(lookup_conf(svc, ca=other["ca"]))
    n0 = len(svc.requests_of(ERIN))
    for proto in ("imap", "pop3"):
        since = q.log_size()
        out = via_postern(q, proto, ERIN, PASSWORDS[ERIN])
        prefix = IMAP_UNAVAILABLE_PREFIX if proto == "imap" else POP3_UNAVAILABLE_PREFIX
        assert out.lines[0].startswith(prefix) and out.open, out
        assert login_line(q, ERIN, since, ok=False).get("reason") == "lookup_unavailable"
    assert len(svc.requests_of(ERIN)) == n0, "a request went to a service the CA did not sign"


# ===========================================================================
# 3. Keep-alive
# ===========================================================================


def test_200_logins_use_at_most_one_service_connection_per_worker(make_svc, lpostern, mx1):
    svc = make_svc({ALICE: route(mx1)})
    p = lpostern(lookup_conf(svc), workers=2)
    c0, r0 = svc.counts()
    for i in range(200):
        proto = "imap" if i % 2 == 0 else "pop3"
        cls = RawImap if proto == "imap" else RawPop3
        with cls(p.imap_port if proto == "imap" else p.pop3_port, p.certs["ca"]) as c:
            if proto == "imap":
                line, _ = c.command("a1", "LOGIN %s %s" % (imap_q(ALICE),
                                                           imap_q(PASSWORDS[ALICE])))
                assert line.startswith(b"a1 OK"), c.dump()
                c.command("a2", "LOGOUT")
            else:
                assert c.command("USER " + ALICE).startswith(b"+OK")
                assert c.command("PASS " + PASSWORDS[ALICE]).startswith(b"+OK"), c.dump()
                c.command("QUIT")
    conns, reqs = svc.counts()
    print("\n200 logins: %d lookups over %d connection(s)" % (reqs - r0, conns - c0))
    assert reqs - r0 == 200, (reqs, r0)
    assert conns - c0 <= 2, "%d connections to the service for 200 logins" % (conns - c0)


# ===========================================================================
# 4. Faults
# ===========================================================================


def test_service_down_answers_unavailable_within_the_timeout(lpostern):
    port = authsvc.nothing_listens_port()
    p = lpostern({"url": "http://127.0.0.1:%d/auth" % port, "timeout": "2s"})
    for proto in ("imap", "pop3"):
        since = p.log_size()
        out = via_postern(p, proto, ALICE, PASSWORDS[ALICE])
        prefix = IMAP_UNAVAILABLE_PREFIX if proto == "imap" else POP3_UNAVAILABLE_PREFIX
        assert out.lines[0].startswith(prefix) and out.open, out
        assert out.elapsed < 2.0 + SLACK, out
        assert login_line(p, ALICE, since, ok=False).get("reason") == "lookup_unavailable"
        assert [x for x in postern_lines(p, "lookup.fail", since) if x.get("why")], \
            p.log()[since:][-2000:]


def test_a_slow_service_is_bounded_by_the_timeout(make_svc, lpostern, mx1):
    svc = make_svc({ALICE: slow(300, route(mx1)), "slow@lookup.test": slow(8000, route(mx1))})
    p = lpostern(lookup_conf(svc, timeout="1s"))
    out = via_postern(p, "imap", ALICE, PASSWORDS[ALICE])   # slow but within the timeout
    assert out.ok and out.backend == "mx1", out
    for proto in ("imap", "pop3"):
        out = via_postern(p, proto, "slow@lookup.test", WRONG_PASSWORDS[0])
        prefix = IMAP_UNAVAILABLE_PREFIX if proto == "imap" else POP3_UNAVAILABLE_PREFIX
        assert out.lines[0].startswith(prefix) and out.open, out
        assert 0.8 <= out.elapsed < 1.0 + SLACK, out


def _metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=IO_TIMEOUT) as r:
        return r.read().decode()


def _metric(text, name, labels=""):
    """The value of sample name{labels} (labels as written, e.g.
    'result="ok"'), or None."""
    rx = r"^%s%s (\S+)$" % (re.escape(name), re.escape("{%s}" % labels) if labels else "")
    m = re.search(rx, text, re.M)
    return float(m.group(1)) if m else None


def test_breaker_opens_after_failures_and_closes_after_a_good_probe(make_svc, lpostern, mx1):
    svc = make_svc({ALICE: error(500)})
    mport = harness.free_port()
    p = lpostern(lookup_conf(svc, breaker_failures=3, breaker_wait="1s"),
                 extra='admin = { http = "127.0.0.1:%d"; };' % mport)
    for i in range(3):
        out = via_postern(p, "imap", ALICE, PASSWORDS[ALICE])
        assert out.lines[0].startswith(IMAP_UNAVAILABLE_PREFIX), out
    assert p.wait_log(r"event=lookup\.breaker_open\b"), p.log()[-3000:]
    assert _metric(_metrics(mport), "postern_lookup_breaker_open") == 1
    # Open: the service is not asked, the answer comes at once.
    n0 = svc.counts()[1]
    out = via_postern(p, "pop3", ALICE, PASSWORDS[ALICE])
    assert out.lines[0].startswith(POP3_UNAVAILABLE_PREFIX) and out.open, out
    assert svc.counts()[1] == n0, "the service was asked while the breaker was open"
    text = _metrics(mport)
    assert (_metric(text, "postern_lookup_requests_total", 'result="breaker"') or 0) >= 1, text
    failed = sum(_metric(text, "postern_lookup_requests_total", 'result="%s"' % r) or 0
                 for r in ("tempfail", "error", "timeout"))
    assert failed >= 3, text
    assert "postern_lookup_duration_seconds_bucket" in text, text
    # The service is back; after breaker_wait one probe goes, and closes it.
    svc.users[ALICE] = route(mx1)
    time.sleep(1.3 * TIMEOUT_SCALE)
    out = via_postern(p, "imap", ALICE, PASSWORDS[ALICE])
    assert out.ok and out.backend == "mx1", out
    assert p.wait_log(r"event=lookup\.breaker_closed\b"), p.log()[-3000:]
    text = _metrics(mport)
    assert _metric(text, "postern_lookup_breaker_open") == 0, text
    assert (_metric(text, "postern_lookup_requests_total", 'result="ok"') or 0) >= 1, text


# ===========================================================================
# 5. The loop never stalls on lookups
# ===========================================================================

BIG = 20 * 1024 * 1024
HELD = 500
BIG_USER = "gina@other.test"   # a password the end-of-run log check knows


def _big_message():
    head = (b"From: big@example.com\r\nTo: <%s>\r\nSubject: message 1 for %s on bigmx\r\n"
            b"Message-ID: <big.lookup@postern.test>\r\n\r\n" % (BIG_USER.encode(),
                                                                BIG_USER.encode()))
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-lookup-stall\r\n"
    body = head + line * ((BIG - len(head)) // len(line))
    return body + b"x" * (BIG - 2 - len(body)) + b"\r\n"


@pytest.fixture(scope="module")
def bigmx(run_dir):
    """A Dovecot with one user whose INBOX holds a 20 MB message."""
    d = Dovecot("bigmx", {BIG_USER: PASSWORDS[BIG_USER]}, messages=0, parent_dir=run_dir)
    d.start()
    import grp
    import pwd
    data = _big_message()
    path = os.path.join(d.maildir(BIG_USER), "new", "1700000001.M1P%d.bigmx,S=%d"
                        % (os.getpid(), len(data)))
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, pwd.getpwnam(harness.MAIL_USER).pw_uid,
             grp.getgrnam(harness.MAIL_GROUP).gr_gid)
    d.big = data
    yield d
    d.cleanup()


def test_500_held_lookups_do_not_stall_a_20mb_fetch(make_svc, lpostern, mx1, mx2, bigmx,
                                                    dead_backend):
    release = threading.Event()
    svc = make_svc({BIG_USER: route(bigmx)},
                   default=hold(release, refuse("released")))
    p = lpostern(lookup_conf(svc, timeout="60s", max_inflight=HELD + 12),
                 backends=[mx1, mx2, dead_backend, bigmx], workers=2)
    held = []
    try:
        for i in range(HELD):
            c = RawImap(p.imap_port, p.certs["ca"])
            held.append(c)
            c.send("a1 LOGIN held%03d@lookup.test %s\r\n" % (i, imap_q(WRONG_PASSWORDS[0])))
        n = svc.wait_held(HELD, timeout=60)
        assert n == HELD, "only %d of %d lookups reached the service" % (n, HELD)

        # One client relays 20 MB while all 500 lookups are held.
        t0 = time.monotonic()
        with RawImap(p.imap_port, p.certs["ca"], timeout=60 * TIMEOUT_SCALE) as c:
            line, _ = c.command("a1", "LOGIN %s %s" % (imap_q(BIG_USER),
                                                       imap_q(PASSWORDS[BIG_USER])))
            assert line.startswith(b"a1 OK"), c.dump()
            line, _ = c.command("a2", "SELECT INBOX")
            assert line.startswith(b"a2 OK"), c.dump()
            body = harness.fetch_body(c, "a3")
            took = time.monotonic() - t0
            c.command("a4", "LOGOUT")
        assert body == bigmx.big
        print("\n20 MB FETCH with %d lookups held: %.2f s, %.1f MB/s"
              % (HELD, took, len(body) / 1e6 / max(took, 1e-6)))
        # Nothing was answered meanwhile: every lookup is still held.
        assert svc.held == HELD, svc.held
        ready, _, _ = select.select([c.sock for c in held], [], [], 0)
        assert not ready, "%d held logins got an answer before the release" % len(ready)
    finally:
        release.set()
    # Released: every one of the 500 gets its answer.
    for c in held:
        line, _ = c.read_response("a1", timeout=60 * TIMEOUT_SCALE)
        assert line == b"a1 NO [AUTHENTICATIONFAILED] released\r\n", c.dump()
        c.close()


# ===========================================================================
# 5b. Policy on top of whatever the service says
# ===========================================================================


def test_the_protocol_lock_holds_whatever_the_service_answers(make_svc, lpostern, run_dir,
                                                               mx2):
    """The service routes erin for both protocols; the sticky lock, taken by
    the first IMAP login, still refuses POP3 (after the backend accepted
    the password, as always) and the lookup's OK does not undo it."""
    state = tempfile.mkdtemp(prefix="pit-state-", dir=run_dir)
    svc = make_svc({ERIN: route(mx2)})
    p = lpostern(lookup_conf(svc), extra='state = "lmdb:%s";' % state,
                 policy=('policy = {\n  protocol_lock = "sticky";\n'
                         '  throttle = { delay_base = "0"; delay_max = "0"; };\n};'))
    out = via_postern(p, "imap", ERIN, PASSWORDS[ERIN])
    assert out.ok and out.backend == "mx2", out
    since = p.log_size()
    out = via_postern(p, "pop3", ERIN, PASSWORDS[ERIN])
    assert out.answer == (harness.POP3_SET_TO_IMAP + "\r\n").encode(), out
    assert svc.requests_of(ERIN)[-1]["headers"]["auth-protocol"] == "pop3"
    got = login_line(p, ERIN, since, ok=False)
    assert got.get("class") == "policy", got


# ===========================================================================
# 6. Precedence
# ===========================================================================


def test_a_route_set_override_beats_the_lookup(make_svc, lpostern, run_dir, mx2):
    state = tempfile.mkdtemp(prefix="pit-state-", dir=run_dir)
    svc = make_svc({ERIN: route(mx2)})
    p = lpostern(lookup_conf(svc), extra='state = "lmdb:%s";' % state)
    since = p.log_size()
    out = via_postern(p, "imap", ERIN, PASSWORDS[ERIN])
    assert out.ok and out.backend == "mx2", out
    rc = harness.run_postern("-c", p.conf_path, "route", "set", ERIN, "mx1")
    assert rc.returncode == 0, rc.stderr
    for proto in ("imap", "pop3"):
        since = p.log_size()
        out = via_postern(p, proto, ERIN, PASSWORDS[ERIN])
        assert out.ok and out.backend == "mx1", out
        assert login_line(p, ERIN, since).get("backend") == "mx1"
    rc = harness.run_postern("-c", p.conf_path, "route", "clear", ERIN)
    assert rc.returncode == 0, rc.stderr
    out = via_postern(p, "imap", ERIN, PASSWORDS[ERIN])
    assert out.ok and out.backend == "mx2", out


def test_on_failure_rules_falls_back_to_the_configs_routes(make_svc, lpostern, mx2):
    svc = make_svc({ERIN: error(500), "carol@example.org": route(mx2)})
    p = lpostern(lookup_conf(svc, on_failure="rules"))
    for proto in ("imap", "pop3"):
        # the service fails: the config's routes send erin to mx1 (default)
        since = p.log_size()
        out = via_postern(p, proto, ERIN, PASSWORDS[ERIN])
        assert out.ok and out.backend == "mx1", out
        assert login_line(p, ERIN, since).get("backend") == "mx1"
        # an answer of the service is obeyed as ever
        out = via_postern(p, proto, "carol@example.org", PASSWORDS["carol@example.org"])
        assert out.ok and out.backend == "mx2", out
    # a refusal is not a failure: no fallback
    svc.users[ERIN] = refuse("no entry", wait=0)
    out = via_postern(p, "pop3", ERIN, PASSWORDS[ERIN])
    assert not out.ok and out.lines == [b"-ERR [AUTH] no entry\r\n"], out


def test_a_listener_with_lookup_false_uses_the_configs_routes(make_svc, lpostern, mx2):
    svc = make_svc({ERIN: route(mx2)})
    extra = [{"protocol": "imap", "tls": "implicit", "lookup": False}]
    p = lpostern(lookup_conf(svc), extra_listeners=extra)
    n0 = len(svc.requests_of(ERIN))
    out = attempt(p.extra_listeners[0]["port"], "imap", ERIN, PASSWORDS[ERIN], ca=p.certs["ca"])
    assert out.ok and out.backend == "mx1", out
    assert len(svc.requests_of(ERIN)) == n0
    out = via_postern(p, "imap", ERIN, PASSWORDS[ERIN])
    assert out.ok and out.backend == "mx2", out


def test_an_address_no_backend_has_becomes_a_dynamic_backend(make_svc, lpostern, run_dir,
                                                             bigmx):
    """bigmx is not among this postern's backends: the login goes to a
    backend named by its address, which `backend list` shows."""
    sockdir = tempfile.mkdtemp(prefix="adm-", dir=run_dir)
    svc = make_svc({BIG_USER: route(bigmx)})
    p = lpostern(lookup_conf(svc, backend_defaults={"tls": "none"}),
                 extra='admin = { socket = "%s"; };' % os.path.join(sockdir, "admin.sock"))
    name = "127.0.0.1:%d" % bigmx.pop3_port
    since = p.log_size()
    c = RawPop3(p.pop3_port, p.certs["ca"])
    try:
        assert c.command("USER " + BIG_USER).startswith(b"+OK")
        assert c.command("PASS " + PASSWORDS[BIG_USER]).startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK 1 "), c.dump()
        c.command("QUIT")
    finally:
        c.close()
    assert login_line(p, BIG_USER, since).get("backend") == name
    rc = harness.run_postern("-c", p.conf_path, "backend", "list")
    assert rc.returncode == 0 and name in rc.stdout, (rc.stdout, rc.stderr)


def test_nginx_mails_drop_in_needs_no_backend_and_no_route(make_svc, lpostern, mx1, mx2):
    """README's "Moving from nginx mail": listeners and a lookup, nothing
    else.  Every backend is one the service names by address."""
    svc = make_svc({ALICE: route(mx1, check=PASSWORDS[ALICE]),
                    ERIN: route(mx2, check=PASSWORDS[ERIN])})
    p = lpostern(lookup_conf(svc), backends=[], routes=[])
    for user, mx in ((ALICE, mx1), (ERIN, mx2)):
        for proto in ("imap", "pop3"):
            since = p.log_size()
            out = via_postern(p, proto, user, PASSWORDS[user])
            assert out.ok and out.backend == mx.name, out
            port = mx.imap_port if proto == "imap" else mx.pop3_port
            assert login_line(p, user, since).get("backend") == "127.0.0.1:%d" % port
    out = via_postern(p, "imap", ALICE, WRONG_PASSWORDS[0])
    assert not out.ok and out.open, out


def test_managesieve_logins_ask_the_service_with_protocol_sieve(make_svc, lpostern, mx1, mx2,
                                                                  certs):
    """A ManageSieve login is routed by the service like IMAP and POP3: it
    hears Auth-Protocol: sieve and names the backend's ManageSieve port; a
    refusal is the client's NO, the session goes on."""
    svc = make_svc({ERIN: route(mx2, check=PASSWORDS[ERIN]),
                    ALICE: refuse("Mailbox moved", wait=1)})
    p = lpostern(lookup_conf(svc), backends=[], routes=[], sieve=True)
    since = p.log_size()
    c = RawSieve(p.sieve_port, certs["ca"])
    try:
        c.stls()
        r = c.authenticate_plain(ALICE, PASSWORDS[ALICE])
        assert r.status == "NO" and b"Mailbox moved" in r.line, r.line
        r = c.authenticate_plain(ERIN, PASSWORDS[ERIN])
        assert r.status == "OK", r.line
        r = c.command("LISTSCRIPTS")  # relayed: Dovecot's own answer
        assert r.status == "OK", r.line
    finally:
        c.close()
    assert login_line(p, ERIN, since).get("backend") == "127.0.0.1:%d" % mx2.sieve_port
    asked = svc.requests_of(ERIN)
    assert asked and asked[-1]["headers"].get("auth-protocol") == "sieve", asked


# ===========================================================================
# 7. The command line
# ===========================================================================


def test_postern_lookup_command_prints_the_answer_and_the_decision(make_svc, lpostern,
                                                                   run_dir, mx2):
    svc = make_svc({ERIN: route(mx2, check=PASSWORDS[ERIN])})
    p = lpostern(lookup_conf(svc))
    fd, pwfile = tempfile.mkstemp(prefix="pit-pw-", dir=run_dir)
    with os.fdopen(fd, "w") as f:
        f.write(PASSWORDS[ERIN] + "\n")
    n0 = len(svc.requests_of(ERIN))
    rc = harness.run_postern("-c", p.conf_path, "lookup", ERIN, "--protocol", "pop3",
                             "--password-file", pwfile)
    assert rc.returncode == 0, (rc.stdout, rc.stderr)
    assert "mx2" in rc.stdout, rc.stdout
    assert PASSWORDS[ERIN] not in rc.stdout + rc.stderr
    reqs = svc.requests_of(ERIN)[n0:]
    assert len(reqs) == 1, reqs
    h = reqs[0]["headers"]
    assert h.get("auth-protocol") == "pop3" and h.get("auth-pass") == PASSWORDS[ERIN], h
    # an unknown user: the refusal is printed, the exit status is not 0
    rc = harness.run_postern("-c", p.conf_path, "lookup", "nobody@lookup.test")
    assert rc.returncode != 0, (rc.stdout, rc.stderr)
    assert "Invalid login or password" in rc.stdout + rc.stderr, (rc.stdout, rc.stderr)


# ===========================================================================
# 8. XOAUTH2 / OAUTHBEARER: the token to the service, its SASL error back
# ===========================================================================


@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_a_token_refusal_relays_auth_error_sasl_as_the_rfc7628_challenge(make_svc, lpostern,
                                                                        mech):
    """nginx PR 1590: Auth-Method xoauth2 / oauthbearer with the token as
    Auth-Pass; a refusal's Auth-Error-SASL is the error challenge the
    client gets, and after its dummy response the refusal."""
    # an access token of 5 KiB, as JWTs of some providers are: Auth-Pass
    # carries it whole
    user, token = "tok@lookup.test", "ya29." + "a1B2-c3_D4" * 500
    err = base64.b64encode(json.dumps({"status": "invalid_token", "scope": "mail"}).encode())
    svc = make_svc({user: refuse("Invalid token", wait=1, sasl=err.decode())})
    extra = [{"protocol": "imap", "tls": "implicit",
              "auth_mechanisms": ["plain", "xoauth2", "oauthbearer"]}]
    p = lpostern(lookup_conf(svc), extra_listeners=extra)
    if mech == "XOAUTH2":
        msg = b"user=%s\x01auth=Bearer %s\x01\x01" % (user.encode(), token.encode())
    else:
        msg = b"n,a=%s,\x01auth=Bearer %s\x01\x01" % (user.encode(), token.encode())
    with RawImap(p.extra_listeners[0]["port"], p.certs["ca"]) as c:
        c.send(b"a AUTHENTICATE %s %s\r\n" % (mech.encode(), base64.b64encode(msg)))
        cont = c.expect_continuation()
        assert cont.strip() == b"+ " + err, c.dump()
        c.send(b"\r\n")  # RFC 7628 3.2.3: the dummy response
        line, _ = c.read_response("a")
        assert line.startswith(b"a NO [AUTHENTICATIONFAILED]"), c.dump()
    req = svc.requests_of(user)[-1]
    assert req["headers"]["auth-method"] == mech.lower(), req
    assert req["headers"]["auth-pass"] == token, req
    assert token not in p.log()
