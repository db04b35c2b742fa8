"""postern's TLS features end to end: STARTTLS/STLS listeners and what they
refuse before TLS, pipelining across STARTTLS, certificates chosen by SNI
(and by key type), session resumption and shared ticket keys, SIGHUP
certificate rotation, verified TLS to real Dovecot backends, and an sslscan
of every listener.  Real clients: imaplib, poplib, curl, openssl s_client,
sslscan and hand-written IMAP/POP3.  Each test states one behaviour."""

import imaplib
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import harness
from harness import (IO_TIMEOUT, PASSWORDS, ROUTES, Dovecot, Postern, RawImap, RawPop3,
                     pem_to_der, s_client, s_client_cert, sasl_plain)

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def ctx_for(ca):
    return ssl.create_default_context(cafile=ca)


def imap_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tagged(line, tag):
    """The status word of a tagged response line: OK, NO or BAD."""
    assert line.startswith(tag.encode() + b" "), line
    return line.split(b" ", 2)[1]


def fetch_body(c, tag, seq=1):
    """FETCH seq (RFC822) on a raw connection; returns the literal's bytes."""
    line, lines = c.command(tag, "FETCH %d (RFC822)" % seq)
    assert tagged(line, tag) == b"OK", c.dump()
    for l in lines:
        m = re.match(rb"\* %d FETCH \(.*RFC822 \{(\d+)\}\r\n" % seq, l)
        if m:
            start = m.end()
            return l[start:start + int(m.group(1))]
    raise AssertionError("no FETCH literal in %r" % lines)


def caps_of(line):
    """The capability words of '* CAPABILITY ...' or '* OK [CAPABILITY ...]'."""
    m = re.search(rb"CAPABILITY ([^\]\r\n]*)", line)
    assert m, line
    return set(x.upper() for x in m.group(1).split())


def shutdown(m):
    try:
        m.shutdown()
    except OSError:
        pass


def login_line(dovecot, proto, user, since, timeout=5.0):
    """Dovecot's 'Login: user=<user>' line for proto after offset since, or None."""
    m = dovecot.wait_log(r"%s-login: Info: Login: user=<%s>[^\n]*" % (proto, re.escape(user)),
                         timeout=timeout, since=since)
    return m.group(0) if m else None


def assert_no_login(dovecot, user, since, settle=0.5):
    time.sleep(settle)  # Dovecot's log process writes a moment after the fact
    text = dovecot.log()[since:]
    assert not re.search(r"Login: user=<%s>" % re.escape(user), text), \
        "%s logged a login for %s:\n%s" % (dovecot.name, user, text)


def proxy_log_since(p, since, settle=0.3):
    time.sleep(settle)
    return p.log()[since:]


def sc_cert(port, ca, servername=None, args=(), wait_for=rb"\* OK", send=b"", verify=True):
    """openssl s_client to port: (subject line, certificate DER, output).
    servername None sends no SNI; verify checks the chain against ca and
    (with a servername) the name."""
    a = list(args)
    if servername is None:
        a.append("-noservername")
    else:
        a += ["-servername", servername]
    if verify:
        a += ["-CAfile", ca, "-verify_return_error"]
        if servername is not None:
            a += ["-verify_hostname", servername]
    rc, out = s_client(port, a, wait_for=wait_for, send=send)
    try:
        subject, der = s_client_cert(out)
    except ValueError:
        raise AssertionError("s_client (exit %s) showed no certificate:\n%s" % (rc, out))
    return subject, der, out


def der_of(cert):
    return pem_to_der(cert["cert"])


def session_kind(out):
    """'New' or 'Reused' and the protocol, from s_client's summary line."""
    m = re.search(r"^(New|Reused), (TLSv[\d.]+), Cipher is (\S+)", out, re.M)
    assert m, "no session summary in s_client output:\n" + out
    return m.group(1), m.group(2)


# A module-scoped postern that is started again (same ports) if a test made it
# exit, so one crash does not fail every later test; the test during which it
# exits fails at teardown with its log.


def _copy_ports(new, old):
    new.imap_port, new.pop3_port = old.imap_port, old.pop3_port
    new.imap_starttls_port = old.imap_starttls_port
    new.pop3_starttls_port = old.pop3_starttls_port
    new.extra_listeners = [dict(x) for x in old.extra_listeners]


class _Holder:
    def __init__(self, build, registry):
        self.build, self.registry = build, registry
        self.made = []
        self.current = self._start(None)

    def _start(self, old):
        p = self.build()
        if old is not None:
            _copy_ports(p, old)
        self.registry.append(p)
        self.made.append(p)
        return p.start()

    def get(self):
        if not self.current.running():
            self.current.stop()
            self.current = self._start(self.current)
        return self.current

    def close(self):
        for p in self.made:
            p.cleanup()


def _checked(holder):
    p = holder.get()
    yield p
    if not p.running():
        rc = p.proc.returncode
        p.stop()
        pytest.fail("postern exited during this test (exit status %s); log tail:\n%s"
                    % (rc, "\n".join(p.log().splitlines()[-40:])))


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_dir(run_dir):
    d = os.path.join(run_dir, "tls")
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def sni_certs(certs, tls_dir):
    """Server certificates signed by the test CA, for SNI:
    a_rsa, a_ecdsa: CN mail.a.test, SAN DNS:mail.a.test (the default set)
    b_rsa, b_ecdsa: CN star.b.test, SAN DNS:*.b.test, DNS:pop.b-mail.test
    c: CN listener.c.test, SAN DNS:listener.c.test (a listener's own set)."""
    d = os.path.join(tls_dir, "sni")
    mk = harness.make_server_cert
    return {
        "a_rsa": mk(d, "a-rsa", certs, "mail.a.test", dns=["mail.a.test"], kind="rsa"),
        "a_ecdsa": mk(d, "a-ecdsa", certs, "mail.a.test", dns=["mail.a.test"], kind="ecdsa"),
        "b_rsa": mk(d, "b-rsa", certs, "star.b.test", dns=["*.b.test", "pop.b-mail.test"],
                    kind="rsa"),
        "b_ecdsa": mk(d, "b-ecdsa", certs, "star.b.test",
                      dns=["*.b.test", "pop.b-mail.test"], kind="ecdsa"),
        "c": mk(d, "c", certs, "listener.c.test", dns=["listener.c.test"], kind="rsa"),
    }


@pytest.fixture(scope="module")
def _stls_holder(certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    """implicit IMAP/POP3 + STARTTLS IMAP/POP3, plaintext auth refused."""
    h = _Holder(lambda: Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir,
                                starttls=True), postern_registry)
    yield h
    h.close()


@pytest.fixture
def stls_proxy(_stls_holder):
    yield from _checked(_stls_holder)


@pytest.fixture(scope="module")
def _plain_ok_holder(certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    """STARTTLS listeners with allow_plaintext_auth = true."""
    h = _Holder(lambda: Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir,
                                starttls=True, allow_plaintext_auth=True), postern_registry)
    yield h
    h.close()


@pytest.fixture
def plain_ok_proxy(_plain_ok_holder):
    yield from _checked(_plain_ok_holder)


@pytest.fixture(scope="module")
def _sni_holder(certs, sni_certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    s = sni_certs
    h = _Holder(lambda: Postern(
        certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir, starttls=True,
        certificates=[s["a_rsa"], s["a_ecdsa"], s["b_rsa"], s["b_ecdsa"]],
        extra_listeners=[{"protocol": "imap", "tls": "implicit", "name": "own-certs",
                          "certificates": [s["c"]]}]), postern_registry)
    yield h
    h.close()


@pytest.fixture
def sni_proxy(_sni_holder):
    yield from _checked(_sni_holder)


# ---------------------------------------------------------------------------
# 1. STARTTLS / STLS with real clients
# ---------------------------------------------------------------------------


def test_imaplib_starttls_then_login_select_and_fetch_return_the_backend_message(
        stls_proxy, ca, mx1):
    user = "alice@example.org"
    m = imaplib.IMAP4(HOST, stls_proxy.imap_starttls_port, timeout=IO_TIMEOUT)
    try:
        assert "STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities, \
            m.capabilities
        typ, _ = m.starttls(ssl_context=ctx_for(ca))
        assert typ == "OK"
        assert m.sock.version() in ("TLSv1.2", "TLSv1.3")
        # imaplib asked CAPABILITY again, now over TLS
        assert "AUTH=PLAIN" in m.capabilities, m.capabilities
        assert "STARTTLS" not in m.capabilities and "LOGINDISABLED" not in m.capabilities, \
            m.capabilities
        typ, _ = m.login(user, PASSWORDS[user])
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK" and data[0] == b"3"
        typ, data = m.fetch("2", "(RFC822)")
        assert typ == "OK"
        assert data[0][1] == mx1.messages[user][1]
        typ, _ = m.logout()
        assert typ == "BYE"
    finally:
        shutdown(m)


def test_poplib_stls_then_user_pass_and_retr_return_the_backend_message(
        stls_proxy, ca, mx2):
    user = "carol@example.org"  # routed to mx2
    p = poplib.POP3(HOST, stls_proxy.pop3_starttls_port, timeout=IO_TIMEOUT)
    try:
        caps = p.capa()
        assert "STLS" in caps, caps
        assert "USER" not in caps and "SASL" not in caps, caps
        assert p.stls(context=ctx_for(ca)).startswith(b"+OK")
        assert p.sock.version() in ("TLSv1.2", "TLSv1.3")
        caps = p.capa()
        assert "STLS" not in caps, caps
        assert "USER" in caps and "PLAIN" in [x.upper() for x in caps.get("SASL", [])], caps
        p.user(user)
        assert p.pass_(PASSWORDS[user]).startswith(b"+OK")
        count, _ = p.stat()
        assert count == 3
        _, lines, _ = p.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == mx2.messages[user][0]
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()


def curl(ca, url, user, password):
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--ssl-reqd", "--cacert", ca,
                        "--url", url, "-u", "%s:%s" % (user, password)],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, "curl exit %d: %s" % (r.returncode,
                                                    r.stderr.decode(errors="replace"))
    return r.stdout


def test_curl_with_ssl_reqd_fetches_a_message_over_imap_starttls(stls_proxy, ca, mx1):
    user = "erin@other.test"
    since = stls_proxy.log_size()
    out = curl(ca, "imap://127.0.0.1:%d/INBOX;UID=1" % stls_proxy.imap_starttls_port,
               user, PASSWORDS[user])
    assert out == mx1.messages[user][0]
    log = proxy_log_since(stls_proxy, since)
    assert re.search(r"event=session\.start [^\n]*tls=starttls", log), log


def test_curl_with_ssl_reqd_retrieves_a_message_over_pop3_stls(stls_proxy, ca, mx2):
    user = "carol@example.org"
    out = curl(ca, "pop3://127.0.0.1:%d/2" % stls_proxy.pop3_starttls_port,
               user, PASSWORDS[user])
    assert out == mx2.messages[user][1]


# ---------------------------------------------------------------------------
# 2. Plaintext authentication before TLS
# ---------------------------------------------------------------------------


def raw_imap_plain(port, ca):
    return RawImap(port, ca, plaintext=True)


def raw_pop3_plain(port, ca):
    return RawPop3(port, ca, plaintext=True)


def test_starttls_imap_greeting_and_capability_offer_starttls_and_logindisabled_only(
        stls_proxy, ca):
    with raw_imap_plain(stls_proxy.imap_starttls_port, ca) as c:
        caps = caps_of(c.greeting)
        assert {b"STARTTLS", b"LOGINDISABLED", b"IMAP4REV1"} <= caps, c.greeting
        assert not [x for x in caps if x.startswith(b"AUTH=")], c.greeting
        line, lines = c.command("a1", "CAPABILITY")
        assert tagged(line, "a1") == b"OK", c.dump()
        caps = caps_of(lines[0])
        assert {b"STARTTLS", b"LOGINDISABLED"} <= caps, c.dump()
        assert not [x for x in caps if x.startswith(b"AUTH=")], c.dump()


PLAINTEXT_IMAP_ATTEMPTS = {
    "login": lambda u, p: ("LOGIN %s %s" % (u, imap_quote(p))).encode(),
    "authenticate_ir": lambda u, p: b"AUTHENTICATE PLAIN " + sasl_plain(u, p),
    "authenticate": lambda u, p: b"AUTHENTICATE PLAIN",
}


@pytest.mark.parametrize("how", sorted(PLAINTEXT_IMAP_ATTEMPTS))
def test_imap_login_before_starttls_gets_privacyrequired_and_reaches_no_backend(
        stls_proxy, ca, mx1, how):
    user = "alice@example.org"
    dsince, psince = mx1.log_size(), stls_proxy.log_size()
    with raw_imap_plain(stls_proxy.imap_starttls_port, ca) as c:
        line, lines = c.command("a1", PLAINTEXT_IMAP_ATTEMPTS[how](user, PASSWORDS[user]))
        assert not any(l.startswith(b"+") for l in lines), c.dump()
        assert line.startswith(b"a1 NO [PRIVACYREQUIRED]"), c.dump()
        # The connection goes on: STARTTLS, then the same login works.
        line, _ = c.command("a2", "STARTTLS")
        assert tagged(line, "a2") == b"OK", c.dump()
        assert c.starttls() == b"", c.dump()
        line, _ = c.command("a3", "LOGIN %s %s" % (user, imap_quote(PASSWORDS[user])))
        assert tagged(line, "a3") == b"OK", c.dump()
        c.command("a4", "SELECT INBOX")
        assert fetch_body(c, "a5") == mx1.messages[user][0]
    # exactly one backend login: the one after TLS
    time.sleep(0.3)
    assert len(re.findall(r"imap-login: Info: Login: user=<%s>" % re.escape(user),
                          mx1.log()[dsince:])) == 1, mx1.log()[dsince:]
    log = stls_proxy.log()[psince:]
    assert len(re.findall(r'event=login\.ok [^\n]*user="%s"' % re.escape(user), log)) == 1, log


PLAINTEXT_POP3_ATTEMPTS = {
    "user": lambda u, p: [b"USER " + u.encode()],
    "pass": lambda u, p: [b"PASS " + p.encode()],
    "auth_plain_ir": lambda u, p: [b"AUTH PLAIN " + sasl_plain(u, p)],
    "auth_plain": lambda u, p: [b"AUTH PLAIN"],
}


@pytest.mark.parametrize("how", sorted(PLAINTEXT_POP3_ATTEMPTS))
def test_pop3_user_pass_auth_before_stls_get_err_auth_and_reach_no_backend(
        stls_proxy, ca, mx1, how):
    user = "alice@example.org"
    dsince = mx1.log_size()
    with raw_pop3_plain(stls_proxy.pop3_starttls_port, ca) as c:
        assert c.greeting.startswith(b"+OK"), c.greeting
        for cmd in PLAINTEXT_POP3_ATTEMPTS[how](user, PASSWORDS[user]):
            r = c.command(cmd)
            assert r.startswith(b"-ERR [AUTH]"), c.dump()
        assert c.command("STLS").startswith(b"+OK"), c.dump()
        assert c.starttls() == b"", c.dump()
        assert c.command("USER " + user).startswith(b"+OK"), c.dump()
        assert c.command(b"PASS " + PASSWORDS[user].encode()).startswith(b"+OK"), c.dump()
        assert c.command("RETR 1").startswith(b"+OK"), c.dump()
        assert b"\r\n".join(c.read_multiline()) + b"\r\n" == mx1.messages[user][0]
        c.command("QUIT")
    time.sleep(0.3)
    assert len(re.findall(r"pop3-login: Info: Login: user=<%s>" % re.escape(user),
                          mx1.log()[dsince:])) == 1, mx1.log()[dsince:]


def test_allow_plaintext_auth_lets_imap_login_and_authenticate_work_without_tls(
        plain_ok_proxy, ca, mx1):
    user = "alice@example.org"
    with raw_imap_plain(plain_ok_proxy.imap_starttls_port, ca) as c:
        caps = caps_of(c.greeting)
        assert b"AUTH=PLAIN" in caps and b"STARTTLS" in caps, c.greeting
        assert b"LOGINDISABLED" not in caps, c.greeting
        line, _ = c.command("a1", "LOGIN %s %s" % (user, imap_quote(PASSWORDS[user])))
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert fetch_body(c, "a3", 3) == mx1.messages[user][2]
        c.command("a4", "LOGOUT")
    with raw_imap_plain(plain_ok_proxy.imap_starttls_port, ca) as c:
        line, _ = c.command("a1", b"AUTHENTICATE PLAIN " + sasl_plain(user, PASSWORDS[user]))
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert fetch_body(c, "a3") == mx1.messages[user][0]
    m = imaplib.IMAP4(HOST, plain_ok_proxy.imap_starttls_port, timeout=IO_TIMEOUT)
    try:
        raw = b"\0" + user.encode() + b"\0" + PASSWORDS[user].encode()
        typ, _ = m.authenticate("PLAIN", lambda _challenge: raw)
        assert typ == "OK"
        m.select("INBOX")
        typ, data = m.fetch("2", "(RFC822)")
        assert data[0][1] == mx1.messages[user][1]
        m.logout()
    finally:
        shutdown(m)


def test_allow_plaintext_auth_lets_pop3_user_pass_and_auth_work_without_tls(
        plain_ok_proxy, ca, mx1):
    user = "alice@example.org"
    p = poplib.POP3(HOST, plain_ok_proxy.pop3_starttls_port, timeout=IO_TIMEOUT)
    try:
        caps = p.capa()
        assert "USER" in caps and "STLS" in caps, caps
        p.user(user)
        assert p.pass_(PASSWORDS[user]).startswith(b"+OK")
        _, lines, _ = p.retr(2)
        assert b"\r\n".join(lines) + b"\r\n" == mx1.messages[user][1]
        p.quit()
    finally:
        p.close()
    with raw_pop3_plain(plain_ok_proxy.pop3_starttls_port, ca) as c:
        r = c.command(b"AUTH PLAIN " + sasl_plain(user, PASSWORDS[user]))
        assert r.startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK 3 "), c.dump()


def test_allow_plaintext_auth_listener_still_offers_and_does_starttls(plain_ok_proxy, ca, mx1):
    user = "alice@example.org"
    m = imaplib.IMAP4(HOST, plain_ok_proxy.imap_starttls_port, timeout=IO_TIMEOUT)
    try:
        typ, _ = m.starttls(ssl_context=ctx_for(ca))
        assert typ == "OK"
        m.login(user, PASSWORDS[user])
        m.select("INBOX")
        typ, data = m.fetch("1", "(RFC822)")
        assert data[0][1] == mx1.messages[user][0]
        m.logout()
    finally:
        shutdown(m)


# ---------------------------------------------------------------------------
# 3. Nothing pipelined behind STARTTLS / STLS survives the handshake
# ---------------------------------------------------------------------------


def test_imap_login_pipelined_behind_starttls_is_dropped_never_executed(
        stls_proxy, ca, mx1, mx2):
    user = "erin@other.test"  # simple password: one atom
    dsince = {b.name: b.log_size() for b in (mx1, mx2)}
    psince = stls_proxy.log_size()
    with raw_imap_plain(stls_proxy.imap_starttls_port, ca) as c:
        c.send(b"a STARTTLS\r\na2 LOGIN %s %s\r\n" % (user.encode(), PASSWORDS[user].encode()))
        line, lines = c.read_response("a")
        assert tagged(line, "a") == b"OK", c.dump()
        assert len(lines) == 1, c.dump()
        leftover = c.starttls()
        assert leftover == b"", "bytes after the STARTTLS OK, before TLS: %r" % leftover
        line, lines = c.command("a3", "NOOP")
        assert tagged(line, "a3") == b"OK", c.dump()
        # Still not logged in: CAPABILITY is postern's pre-login list, not
        # the backend's.
        line, lines = c.command("a4", "CAPABILITY")
        assert tagged(line, "a4") == b"OK", c.dump()
        caps = caps_of(lines[0])
        assert b"AUTH=PLAIN" in caps and b"STARTTLS" not in caps, c.dump()
        # SELECT needs a login: refused, not run on a backend.
        line, _ = c.command("a5", "SELECT INBOX")
        assert tagged(line, "a5") in (b"BAD", b"NO"), c.dump()
        time.sleep(0.5)
        c.sock.settimeout(0.2)
        try:
            late = c.sock.recv(4096)
        except (socket.timeout, ssl.SSLError, OSError):
            late = b""
        everything = b"".join(d for who, d in c.transcript if who == "S") + late
        assert not re.search(rb"(^|\n)a2 ", everything), c.dump()
    for b in (mx1, mx2):
        assert_no_login(b, user, dsince[b.name], settle=0.2)
    log = proxy_log_since(stls_proxy, psince)
    assert "event=starttls.pipelined_dropped" in log, log
    assert not re.search(r'event=login\.(ok|fail) [^\n]*user="%s"' % re.escape(user), log), log


def test_pop3_user_pipelined_behind_stls_is_dropped_never_executed(
        stls_proxy, ca, mx1, mx2):
    user = "erin@other.test"
    dsince = {b.name: b.log_size() for b in (mx1, mx2)}
    psince = stls_proxy.log_size()
    with raw_pop3_plain(stls_proxy.pop3_starttls_port, ca) as c:
        c.send(b"STLS\r\nUSER %s\r\n" % user.encode())
        assert c.readline().startswith(b"+OK"), c.dump()
        leftover = c.starttls()
        assert leftover == b"", "bytes after the STLS +OK, before TLS: %r" % leftover
        # Had USER survived, this PASS would log erin in (and the first line
        # would be USER's +OK).
        r = c.command(b"PASS " + PASSWORDS[user].encode())
        assert r.startswith(b"-ERR"), c.dump()
        assert c.command("CAPA").startswith(b"+OK"), c.dump()
        caps = c.read_multiline()
        assert b"USER" in caps and b"STLS" not in caps, c.dump()
        r = c.command("STAT")
        assert r.startswith(b"-ERR"), c.dump()  # not logged in
    for b in (mx1, mx2):
        assert_no_login(b, user, dsince[b.name], settle=0.2)
    log = proxy_log_since(stls_proxy, psince)
    assert "event=starttls.pipelined_dropped" in log, log
    assert not re.search(r'event=login\.(ok|fail) [^\n]*user="%s"' % re.escape(user), log), log


# ---------------------------------------------------------------------------
# 4. STARTTLS where TLS is already on
# ---------------------------------------------------------------------------


def test_starttls_on_an_implicit_tls_imap_connection_gets_bad_and_the_session_goes_on(
        stls_proxy, ca, mx1):
    user = "alice@example.org"
    with RawImap(stls_proxy.imap_port, ca) as c:
        assert b"STARTTLS" not in caps_of(c.greeting), c.greeting
        line, _ = c.command("a1", "STARTTLS")
        assert tagged(line, "a1") == b"BAD", c.dump()
        line, _ = c.command("a2", "LOGIN %s %s" % (user, imap_quote(PASSWORDS[user])))
        assert tagged(line, "a2") == b"OK", c.dump()
        c.command("a3", "SELECT INBOX")
        assert fetch_body(c, "a4") == mx1.messages[user][0]


def test_a_second_starttls_after_the_upgrade_gets_bad(stls_proxy, ca):
    with raw_imap_plain(stls_proxy.imap_starttls_port, ca) as c:
        line, _ = c.command("a1", "STARTTLS")
        assert tagged(line, "a1") == b"OK", c.dump()
        c.starttls()
        line, _ = c.command("a2", "STARTTLS")
        assert tagged(line, "a2") == b"BAD", c.dump()
        line, _ = c.command("a3", "NOOP")
        assert tagged(line, "a3") == b"OK", c.dump()


def test_stls_on_a_pop3s_connection_gets_err_and_the_session_goes_on(stls_proxy, ca, mx1):
    user = "alice@example.org"
    with RawPop3(stls_proxy.pop3_port, ca) as c:
        assert c.command("STLS").startswith(b"-ERR"), c.dump()
        assert c.command("CAPA").startswith(b"+OK"), c.dump()
        assert b"STLS" not in c.read_multiline(), c.dump()
        assert c.command("USER " + user).startswith(b"+OK"), c.dump()
        assert c.command(b"PASS " + PASSWORDS[user].encode()).startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK 3 "), c.dump()


def test_a_second_stls_after_the_upgrade_gets_err(stls_proxy, ca):
    with raw_pop3_plain(stls_proxy.pop3_starttls_port, ca) as c:
        assert c.command("STLS").startswith(b"+OK"), c.dump()
        c.starttls()
        assert c.command("STLS").startswith(b"-ERR"), c.dump()
        assert c.command("CAPA").startswith(b"+OK"), c.dump()
        c.read_multiline()


# ---------------------------------------------------------------------------
# 5. Certificates chosen by SNI
# ---------------------------------------------------------------------------

# servername -> (which certificates may come back, the subject's CN)
SNI_CASES = {
    "mail.a.test": (("a_rsa", "a_ecdsa"), "mail.a.test"),
    "MAIL.A.TEST": (("a_rsa", "a_ecdsa"), "mail.a.test"),
    "x.b.test": (("b_rsa", "b_ecdsa"), "star.b.test"),
    "imap.b.test": (("b_rsa", "b_ecdsa"), "star.b.test"),
    "pop.b-mail.test": (("b_rsa", "b_ecdsa"), "star.b.test"),
}


@pytest.mark.parametrize("servername", sorted(SNI_CASES))
def test_sni_selects_the_certificate_whose_san_names_the_server(
        sni_proxy, ca, sni_certs, servername):
    kinds, cn = SNI_CASES[servername]
    subject, der, out = sc_cert(sni_proxy.imap_port, ca, servername=servername)
    assert "CN = %s" % cn in subject, out
    assert der in [der_of(sni_certs[k]) for k in kinds], out
    assert re.search(r"Verify return code: 0 \(ok\)", out), out


@pytest.mark.parametrize("servername", [None, "nosuch.test", "a.x.b.test", "b.test"],
                         ids=["no-sni", "unknown", "two-labels-under-wildcard", "wildcard-base"])
def test_no_sni_or_an_unknown_name_gets_the_first_certificate(
        sni_proxy, ca, sni_certs, servername):
    subject, der, out = sc_cert(sni_proxy.imap_port, ca, servername=servername,
                                verify=servername is None)
    assert "CN = mail.a.test" in subject, out
    assert der in (der_of(sni_certs["a_rsa"]), der_of(sni_certs["a_ecdsa"])), out


def test_sni_works_on_pop3s_and_after_imap_starttls_and_pop3_stls(sni_proxy, ca, sni_certs):
    b = (der_of(sni_certs["b_rsa"]), der_of(sni_certs["b_ecdsa"]))
    subject, der, out = sc_cert(sni_proxy.pop3_port, ca, servername="x.b.test",
                                wait_for=rb"\+OK")
    assert "CN = star.b.test" in subject and der in b, out
    subject, der, out = sc_cert(sni_proxy.imap_starttls_port, ca, servername="x.b.test",
                                args=["-starttls", "imap", "-crlf"],
                                wait_for=rb"Verify return code", send=b"z LOGOUT\r\n")
    assert "CN = star.b.test" in subject and der in b, out
    subject, der, out = sc_cert(sni_proxy.pop3_starttls_port, ca, servername="x.b.test",
                                args=["-starttls", "pop3", "-crlf"],
                                wait_for=rb"Verify return code", send=b"QUIT\r\n")
    assert "CN = star.b.test" in subject and der in b, out


@pytest.mark.parametrize("servername", [None, "mail.a.test", "listener.c.test"])
def test_a_listener_with_its_own_certificates_serves_only_those(
        sni_proxy, ca, sni_certs, servername):
    port = sni_proxy.extra_listeners[0]["port"]
    subject, der, out = sc_cert(port, ca, servername=servername, verify=False)
    assert "CN = listener.c.test" in subject, out
    assert der == der_of(sni_certs["c"]), out
    # and it verifies for its own name
    subject, der, out = sc_cert(port, ca, servername="listener.c.test")
    assert re.search(r"Verify return code: 0 \(ok\)", out), out


def test_the_listener_certificates_serve_a_real_login(sni_proxy, ca, mx1):
    user = "alice@example.org"
    port = sni_proxy.extra_listeners[0]["port"]
    with RawImap(port, ca, server_hostname="listener.c.test") as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (user, imap_quote(PASSWORDS[user])))
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert fetch_body(c, "a3") == mx1.messages[user][0]


KEY_TYPE_CASES = [
    # (id, s_client arguments, expected certificate)
    ("tls12-ecdhe-rsa", ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "rsa"),
    ("tls12-ecdhe-ecdsa", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], "ecdsa"),
    ("tls13-rsa-pss", ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "rsa"),
    ("tls13-ecdsa", ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"], "ecdsa"),
]


@pytest.mark.parametrize("args,kind", [(a, k) for _, a, k in KEY_TYPE_CASES],
                         ids=[i for i, _, _ in KEY_TYPE_CASES])
@pytest.mark.parametrize("name,group", [("x.b.test", "b"), ("mail.a.test", "a")])
def test_an_rsa_and_an_ecdsa_certificate_for_one_sni_name_go_to_the_matching_client(
        sni_proxy, ca, sni_certs, args, kind, name, group):
    subject, der, out = sc_cert(sni_proxy.imap_port, ca, servername=name, args=args)
    assert der == der_of(sni_certs["%s_%s" % (group, kind)]), \
        "expected the %s %s certificate:\n%s" % (group, kind, out)


# ---------------------------------------------------------------------------
# TLS certificates
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,cipher", [("rsa", "ECDHE-RSA-AES128-GCM-SHA256"),
                                         ("ecdsa", "ECDHE-ECDSA-AES128-GCM-SHA256")])
def test_the_certificate_matching_the_clients_tls12_cipher_is_served(proxy, ca, certs, kind,
                                                                     cipher):
    ctx = ctx_for(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher)
    with socket.create_connection((HOST, proxy.imap_port), timeout=IO_TIMEOUT) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            der = t.getpeercert(binary_form=True)
            t.settimeout(IO_TIMEOUT)
            assert t.recv(100).startswith(b"* OK")
    with open(certs[kind + "_cert"]) as f:
        assert der == ssl.PEM_cert_to_DER_cert(f.read())


def test_min_version_tls13_refuses_a_tls12_only_client(make_postern, ca):
    p = make_postern(tls_min_version="TLSv1.3")
    ctx = ctx_for(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((HOST, p.imap_port), timeout=IO_TIMEOUT) as s:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(s, server_hostname="localhost")
    # A TLS 1.3 client is still served.
    with RawImap(p.imap_port, ca) as c:
        assert c.sock.version() == "TLSv1.3"
        assert c.greeting.startswith(b"* OK")


# ---------------------------------------------------------------------------
# 6. Session resumption
# ---------------------------------------------------------------------------

RESUME_VERSIONS = {
    "tls12-ticket": ["-tls1_2"],
    "tls12-session-id": ["-tls1_2", "-no_ticket"],
    "tls13": ["-tls1_3"],
}


def _resume(port_a, port_b, ca, args, tmp_path, wait_for=rb"\* OK"):
    """A full handshake on port_a saving the session, then one on port_b
    offering it.  Returns (first kind, second kind, second output)."""
    sess = str(tmp_path / ("sess-%d-%d" % (port_a, time.monotonic_ns())))
    common = list(args) + ["-CAfile", ca, "-verify_return_error", "-noservername"]
    rc, out1 = s_client(port_a, common + ["-sess_out", sess], wait_for=wait_for)
    k1, v1 = session_kind(out1)
    assert os.path.exists(sess) and os.path.getsize(sess) > 0, \
        "s_client saved no session:\n" + out1
    rc, out2 = s_client(port_b, common + ["-sess_in", sess], wait_for=wait_for)
    k2, v2 = session_kind(out2)
    assert v1 == v2, (out1, out2)
    return k1, k2, out2


@pytest.mark.parametrize("version", sorted(RESUME_VERSIONS))
def test_a_session_is_resumed_on_the_same_postern(stls_proxy, ca, tmp_path, version):
    k1, k2, out = _resume(stls_proxy.imap_port, stls_proxy.imap_port, ca,
                          RESUME_VERSIONS[version], tmp_path)
    assert k1 == "New"
    assert k2 == "Reused", out


def test_a_pop3s_session_is_resumed_too(stls_proxy, ca, tmp_path):
    k1, k2, out = _resume(stls_proxy.pop3_port, stls_proxy.pop3_port, ca, ["-tls1_3"],
                          tmp_path, wait_for=rb"\+OK")
    assert (k1, k2) == ("New", "Reused"), out


def _key_file(path, keys):
    with open(path, "wb") as f:
        for k in keys:
            assert len(k) == 80
            f.write(k)
    os.chmod(path, 0o600)
    return str(path)


@pytest.fixture
def ticket_keys(tmp_path):
    k1, k2 = os.urandom(80), os.urandom(80)
    return {
        "k1": _key_file(tmp_path / "k1.key", [k1]),
        "k1_copy": _key_file(tmp_path / "k1-copy.key", [k1]),
        "k2_then_k1": _key_file(tmp_path / "k2k1.key", [k2, k1]),
        "k2": _key_file(tmp_path / "k2.key", [k2]),
    }


TICKET_VERSIONS = {"tls12": ["-tls1_2"], "tls13": ["-tls1_3"]}


@pytest.mark.parametrize("version", sorted(TICKET_VERSIONS))
def test_posterns_sharing_a_ticket_key_file_resume_each_others_sessions(
        make_postern, ca, ticket_keys, tmp_path, version):
    a = make_postern(tls_options={"ticket_key_file": ticket_keys["k1"]})
    b = make_postern(tls_options={"ticket_key_file": ticket_keys["k1_copy"]})
    k1, k2, out = _resume(a.imap_port, b.imap_port, ca, TICKET_VERSIONS[version], tmp_path)
    assert (k1, k2) == ("New", "Reused"), out
    # and the other way round
    k1, k2, out = _resume(b.imap_port, a.imap_port, ca, TICKET_VERSIONS[version], tmp_path)
    assert (k1, k2) == ("New", "Reused"), out


@pytest.mark.parametrize("version", sorted(TICKET_VERSIONS))
def test_a_ticket_under_the_second_key_of_the_file_is_still_accepted(
        make_postern, ca, ticket_keys, tmp_path, version):
    old = make_postern(tls_options={"ticket_key_file": ticket_keys["k1"]})
    new = make_postern(tls_options={"ticket_key_file": ticket_keys["k2_then_k1"]})
    k1, k2, out = _resume(old.imap_port, new.imap_port, ca, TICKET_VERSIONS[version],
                          tmp_path)
    assert (k1, k2) == ("New", "Reused"), out


@pytest.mark.parametrize("version", sorted(TICKET_VERSIONS))
def test_posterns_with_different_ticket_keys_do_not_resume_each_others_sessions(
        make_postern, ca, ticket_keys, tmp_path, version):
    a = make_postern(tls_options={"ticket_key_file": ticket_keys["k1"]})
    b = make_postern(tls_options={"ticket_key_file": ticket_keys["k2"]})
    c = make_postern()  # keys of its own
    for x, y in ((a, b), (a, c), (c, a)):
        k1, k2, out = _resume(x.imap_port, y.imap_port, ca, TICKET_VERSIONS[version],
                              tmp_path)
        assert (k1, k2) == ("New", "New"), out
    # each still resumes its own sessions
    for x in (a, b, c):
        k1, k2, out = _resume(x.imap_port, x.imap_port, ca, TICKET_VERSIONS[version],
                              tmp_path)
        assert (k1, k2) == ("New", "Reused"), out


def _epoll_watching(pid, port, client_port):
    """The epoll instance (one per worker loop) that watches postern's end of
    the connection from 127.0.0.1:client_port to port: its fd number in
    postern, or None.  Found through /proc: the socket's inode, the fd that
    holds it, and the epoll fdinfo that lists that fd."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            x = line.split()
            if (int(x[1].split(":")[1], 16) == port
                    and int(x[2].split(":")[1], 16) == client_port):
                inode = x[9]
    if inode is None:
        return None
    fds, epolls = {}, []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        fds[link] = int(fd)
        if link == "anon_inode:[eventpoll]":
            epolls.append(int(fd))
    sock = fds.get("socket:[%s]" % inode)
    for ep in epolls:
        with open("/proc/%d/fdinfo/%d" % (pid, ep)) as f:
            if re.search(r"^tfd:\s+%d\s" % sock, f.read(), re.M):
                return ep
    return None


RESUME_CHAIN = {
    # TLS 1.3: a client uses each ticket once (RFC 8446 §C.4, as OpenSSL's
    # own client and browsers do), so every connection must hand out a new one
    "tls13": (ssl.TLSVersion.TLSv1_3, True),
    # TLS 1.2: a session (ticket) may be offered again and again
    "tls12": (ssl.TLSVersion.TLSv1_2, False),
}


@pytest.mark.parametrize("version", sorted(RESUME_CHAIN))
def test_every_reconnect_resumes_the_previous_connections_session_on_either_worker(
        make_postern, ca, version):
    tls_version, single_use = RESUME_CHAIN[version]
    p = make_postern(workers=2, log_level="warn")
    ctx = ctx_for(ca)
    ctx.minimum_version = ctx.maximum_version = tls_version
    sess, kinds, workers = None, [], []
    # At least ten reconnects; more until both workers have served some
    # (SO_REUSEPORT spreads connections by their address hash).
    while len(kinds) < 41 and (len(kinds) < 11 or len(set(workers)) < 2):
        raw = socket.create_connection((HOST, p.imap_port), timeout=IO_TIMEOUT)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                chunk = s.recv(512)
                assert chunk, "connection %d closed before the greeting" % len(kinds)
                greeting += chunk
            assert greeting.startswith(b"* OK"), greeting
            kinds.append("resumed" if s.session_reused else "full")
            workers.append(_epoll_watching(p.proc.pid, p.imap_port, s.getsockname()[1]))
            # TLS 1.3 tickets come after the handshake, before the greeting:
            # s.session is now the newest one the server sent.
            new = s.session
            if single_use and sess is not None and new is not None and new.id == sess.id:
                new = None  # no fresh ticket: the one just used is spent
            sess = new
    assert None not in workers, workers
    assert len(set(workers)) == 2, \
        "all %d connections went to one worker (epoll %s)" % (len(kinds), workers)
    assert kinds[0] == "full"
    assert kinds[1:] == ["resumed"] * (len(kinds) - 1), \
        "handshakes in order: %s; workers (epoll fd) in order: %s" % (kinds, workers)


# ---------------------------------------------------------------------------
# 7. SIGHUP: certificate rotation
# ---------------------------------------------------------------------------


def _install(src, dst):
    """Copy src over dst atomically (the way a certificate renewal would)."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def test_sighup_rotates_the_certificate_and_open_sessions_keep_working(
        certs, mx1, mx2, dead_backend, postern_registry, run_dir, ca, tmp_path):
    user = "alice@example.org"
    gens = {n: harness.make_server_cert(str(tmp_path), "gen%d" % n, certs,
                                        "rotation generation %d" % n, dns=["localhost"],
                                        ips=["127.0.0.1"], kind="ecdsa" if n == 3 else "rsa")
            for n in (1, 2, 3)}
    want = {n: der_of(g) for n, g in gens.items()}  # before a file gets broken
    live = {"cert": str(tmp_path / "live.crt"), "key": str(tmp_path / "live.key")}
    _install(gens[1]["cert"], live["cert"])
    _install(gens[1]["key"], live["key"])
    p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir, starttls=True,
                certificates=[live])
    postern_registry.append(p)
    p.start()
    m = None
    try:
        def served(port, starttls=None):
            args = ["-starttls", starttls, "-crlf"] if starttls else []
            wait = rb"Verify return code" if starttls else rb"\* OK|\+OK"
            subject, der, out = sc_cert(port, ca, servername="localhost", args=args,
                                        wait_for=wait)
            return subject, der, out

        subject, der, out = served(p.imap_port)
        assert der == want[1] and "rotation generation 1" in subject, out

        # A session logged in and SELECTed before the rotation.
        m = imaplib.IMAP4_SSL(HOST, p.imap_port, ssl_context=ctx_for(ca), timeout=IO_TIMEOUT)
        assert m.login(user, PASSWORDS[user])[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
        assert pem_to_der(ssl.DER_cert_to_PEM_cert(m.sock.getpeercert(True))) == want[1]

        # New files in place, SIGHUP.
        _install(gens[2]["cert"], live["cert"])
        _install(gens[2]["key"], live["key"])
        result, text = p.reload()
        assert result == "ok", text
        assert re.search(r"event=config\.reload result=ok generation=\d+", text), text
        for port, st in ((p.imap_port, None), (p.pop3_port, None),
                         (p.imap_starttls_port, "imap"), (p.pop3_starttls_port, "pop3")):
            subject, der, out = served(port, st)
            assert der == want[2] and "rotation generation 2" in subject, out
        typ, _ = m.noop()
        assert typ == "OK"
        typ, data = m.fetch("1", "(RFC822)")
        assert typ == "OK" and data[0][1] == mx1.messages[user][0]

        # The config rewritten to name other files, SIGHUP.
        p.certificates = [gens[3]]
        p.write_config()
        result, text = p.reload()
        assert result == "ok", text
        subject, der, out = served(p.imap_port)
        assert der == want[3] and "rotation generation 3" in subject, out

        # A broken certificate: reported, and the last good one stays.
        with open(gens[3]["cert"], "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nthis is not base64 at all !!!\n"
                    "-----END CERTIFICATE-----\n")
        result, text = p.reload()
        assert result == "failed", text
        assert re.search(r"event=config\.reload [^\n]*result=failed", text), text
        assert p.running(), p.log()[-3000:]
        for port, st in ((p.imap_port, None), (p.imap_starttls_port, "imap")):
            subject, der, out = served(port, st)
            assert der == want[3] and "rotation generation 3" in subject, out
        # New logins are served, and the old session still works.
        with RawImap(p.imap_port, ca) as c:
            line, _ = c.command("a1", "LOGIN %s %s" % (user, imap_quote(PASSWORDS[user])))
            assert tagged(line, "a1") == b"OK", c.dump()
        typ, _ = m.noop()
        assert typ == "OK"
        typ, data = m.fetch("3", "(RFC822)")
        assert typ == "OK" and data[0][1] == mx1.messages[user][2]
        assert m.logout()[0] == "BYE"
        m = None
        assert p.running(), p.log()[-3000:]
    finally:
        if m is not None:
            shutdown(m)
        p.cleanup()


def test_sighup_with_a_key_that_does_not_match_keeps_the_old_certificate(
        certs, mx1, mx2, dead_backend, postern_registry, run_dir, ca, tmp_path):
    a = harness.make_server_cert(str(tmp_path), "one", certs, "reload one",
                                 dns=["localhost"], ips=["127.0.0.1"])
    b = harness.make_server_cert(str(tmp_path), "two", certs, "reload two",
                                 dns=["localhost"], ips=["127.0.0.1"])
    p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir,
                certificates=[a])
    postern_registry.append(p)
    p.start()
    try:
        p.certificates = [{"cert": b["cert"], "key": a["key"]}]
        p.write_config()
        result, text = p.reload()
        assert result == "failed", text
        subject, der, out = sc_cert(p.imap_port, ca, servername="localhost")
        assert der == der_of(a), out
        assert p.running()
    finally:
        p.cleanup()


# ---------------------------------------------------------------------------
# 8. TLS to the backends
# ---------------------------------------------------------------------------

BACKEND_USERS = {
    # user: route domain -> backend of the same name
    "ann@implicit.test": "ann-pw-implicit",
    "ann@starttls.test": "ann-pw-starttls",
    "ann@wrongca-implicit.test": "ann-pw-wci",
    "ann@wrongca-starttls.test": "ann-pw-wcs",
    "ann@wrongname-implicit.test": "ann-pw-wni",
    "ann@wrongname-starttls.test": "ann-pw-wns",
    "ann@systemca-implicit.test": "ann-pw-sys",
}
STRICT_USERS = {
    "sue@strict-plain.test": "sue-pw-plain",
    "sue@strict-starttls.test": "sue-pw-starttls",
    "sue@strict-implicit.test": "sue-pw-implicit",
}


@pytest.fixture(scope="module")
def backend_tls_certs(certs, tls_dir):
    d = os.path.join(tls_dir, "backend")
    return {
        "server": harness.make_server_cert(d, "dovecot", certs, "localhost",
                                           dns=["localhost"], ips=["127.0.0.1", "127.0.0.2"]),
        "other_ca": harness.make_ca(d, "other-ca", "an unrelated test CA"),
    }


@pytest.fixture(scope="module")
def tls_dovecot(backend_tls_certs, run_dir):
    """Dovecot with ssl = required: STARTTLS on imap_port/pop3_port, implicit
    TLS on imaps_port/pop3s_port."""
    d = Dovecot("tx1", BACKEND_USERS, parent_dir=run_dir, ssl=backend_tls_certs["server"],
                ssl_mode="required")
    d.start()
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def strict_dovecot(backend_tls_certs, run_dir):
    """disable_plaintext_auth = yes, no trusted networks, on 127.0.0.2: a
    client from 127.0.0.1 is not 'secured' unless it speaks TLS."""
    d = Dovecot("strict", STRICT_USERS, parent_dir=run_dir, ssl=backend_tls_certs["server"],
                ssl_mode="yes", listen="127.0.0.2", trusted_networks=None,
                disable_plaintext_auth=True)
    d.start()
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def _btls_holder(certs, ca, backend_tls_certs, tls_dovecot, strict_dovecot, postern_registry,
                 run_dir):
    tx, st = tls_dovecot, strict_dovecot
    other = backend_tls_certs["other_ca"]["ca"]
    imp = {"imap": tx.imaps_port, "pop3": tx.pop3s_port, "tls": "implicit"}
    stt = {"imap": tx.imap_port, "pop3": tx.pop3_port, "tls": "starttls"}
    backends = [
        dict(imp, name="implicit", ca=ca),  # verified against the IP 127.0.0.1
        dict(stt, name="starttls", ca=ca, verify_name="localhost"),  # a DNS name
        dict(imp, name="wrongca-implicit", ca=other),
        dict(stt, name="wrongca-starttls", ca=other),
        dict(imp, name="wrongname-implicit", ca=ca, verify_name="other.test"),
        dict(stt, name="wrongname-starttls", ca=ca, verify_name="other.test"),
        dict(imp, name="systemca-implicit"),  # no ca: the system store
        {"name": "strict-plain", "host": "127.0.0.2", "imap": st.imap_port,
         "pop3": st.pop3_port, "tls": "none"},
        {"name": "strict-starttls", "host": "127.0.0.2", "imap": st.imap_port,
         "pop3": st.pop3_port, "tls": "starttls", "ca": ca},
        {"name": "strict-implicit", "host": "127.0.0.2", "imap": st.imaps_port,
         "pop3": st.pop3s_port, "tls": "implicit", "ca": ca},
    ]
    routes = [{"domain": b["name"] + ".test", "backend": b["name"]} for b in backends]
    h = _Holder(lambda: Postern(certs, backends, routes, parent_dir=run_dir), postern_registry)
    yield h
    h.close()


@pytest.fixture
def btls_proxy(_btls_holder):
    yield from _checked(_btls_holder)


@pytest.mark.parametrize("user", ["ann@implicit.test", "ann@starttls.test"])
def test_imap_through_a_verified_tls_backend_link_fetches_byte_exact(
        btls_proxy, ca, tls_dovecot, user):
    since = tls_dovecot.log_size()
    m = imaplib.IMAP4_SSL(HOST, btls_proxy.imap_port, ssl_context=ctx_for(ca),
                          timeout=IO_TIMEOUT)
    try:
        typ, _ = m.login(user, BACKEND_USERS[user])
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK" and data[0] == b"3"
        for n in (1, 2, 3):
            typ, data = m.fetch(str(n), "(RFC822)")
            assert typ == "OK" and data[0][1] == tls_dovecot.messages[user][n - 1]
        m.logout()
    finally:
        shutdown(m)
    line = login_line(tls_dovecot, "imap", user, since)
    assert line, tls_dovecot.log()[since:]
    assert re.search(r", TLS\b", line), "the backend login was not over TLS: " + line


@pytest.mark.parametrize("user", ["ann@implicit.test", "ann@starttls.test"])
def test_pop3_through_a_verified_tls_backend_link_retrieves_byte_exact(
        btls_proxy, ca, tls_dovecot, user):
    since = tls_dovecot.log_size()
    p = poplib.POP3_SSL(HOST, btls_proxy.pop3_port, context=ctx_for(ca), timeout=IO_TIMEOUT)
    try:
        p.user(user)
        assert p.pass_(BACKEND_USERS[user]).startswith(b"+OK")
        count, size = p.stat()
        assert count == 3 and size == sum(len(x) for x in tls_dovecot.messages[user])
        for n in (1, 2, 3):
            _, lines, _ = p.retr(n)
            assert b"\r\n".join(lines) + b"\r\n" == tls_dovecot.messages[user][n - 1]
        p.quit()
    finally:
        p.close()
    line = login_line(tls_dovecot, "pop3", user, since)
    assert line, tls_dovecot.log()[since:]
    assert re.search(r", TLS\b", line), "the backend login was not over TLS: " + line


def test_sasl_plain_login_through_a_starttls_backend_link(btls_proxy, ca, tls_dovecot):
    user = "ann@starttls.test"
    with RawImap(btls_proxy.imap_port, ca) as c:
        line, _ = c.command("a1", b"AUTHENTICATE PLAIN " + sasl_plain(user, BACKEND_USERS[user]))
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert fetch_body(c, "a3", 2) == tls_dovecot.messages[user][1]
    with RawPop3(btls_proxy.pop3_port, ca) as c:
        r = c.command(b"AUTH PLAIN " + sasl_plain(user, BACKEND_USERS[user]))
        assert r.startswith(b"+OK"), c.dump()
        assert c.command("RETR 3").startswith(b"+OK"), c.dump()
        assert b"\r\n".join(c.read_multiline()) + b"\r\n" == tls_dovecot.messages[user][2]


REFUSED_BACKENDS = ["wrongca-implicit", "wrongca-starttls", "wrongname-implicit",
                    "wrongname-starttls", "systemca-implicit"]


def _backend_fail_line(p, since, backend, timeout=5.0):
    m = p.wait_log(r"event=backend\.fail [^\n]*backend=%s\b[^\n]*" % re.escape(backend),
                   timeout=timeout, since=since)
    return m.group(0) if m else None


@pytest.mark.parametrize("backend", REFUSED_BACKENDS)
def test_an_unverifiable_backend_certificate_gives_imap_unavailable(
        btls_proxy, ca, tls_dovecot, backend):
    user = "ann@%s.test" % backend
    since, dsince = btls_proxy.log_size(), tls_dovecot.log_size()
    with RawImap(btls_proxy.imap_port, ca) as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (user, BACKEND_USERS[user]), timeout=20)
        assert line.startswith(b"a1 NO [UNAVAILABLE]"), c.dump()
        line, _ = c.command("a2", "NOOP")  # the client connection survives
        assert tagged(line, "a2") == b"OK", c.dump()
    fl = _backend_fail_line(btls_proxy, since, backend)
    assert fl, btls_proxy.log()[since:]
    assert "reason=backend_tls_failed" in fl, fl
    assert 'said="certificate verification failed: ' in fl, fl
    assert_no_login(tls_dovecot, user, dsince)


@pytest.mark.parametrize("backend", REFUSED_BACKENDS)
def test_an_unverifiable_backend_certificate_gives_pop3_sys_temp(
        btls_proxy, ca, tls_dovecot, backend):
    user = "ann@%s.test" % backend
    since, dsince = btls_proxy.log_size(), tls_dovecot.log_size()
    with RawPop3(btls_proxy.pop3_port, ca) as c:
        assert c.command("USER " + user).startswith(b"+OK"), c.dump()
        r = c.command("PASS " + BACKEND_USERS[user], timeout=20)
        assert r.startswith(b"-ERR [SYS/TEMP]"), c.dump()
    fl = _backend_fail_line(btls_proxy, since, backend)
    assert fl, btls_proxy.log()[since:]
    assert "reason=backend_tls_failed" in fl, fl
    assert 'said="certificate verification failed: ' in fl, fl
    assert_no_login(tls_dovecot, user, dsince)


def test_the_strict_backend_refuses_plaintext_logins_from_the_proxy_address(strict_dovecot):
    """The premise of the next two tests, checked directly: from 127.0.0.1 to
    127.0.0.2 without TLS, this Dovecot refuses plaintext logins."""
    user = "sue@strict-plain.test"
    with socket.create_connection(("127.0.0.2", strict_dovecot.imap_port),
                                  timeout=IO_TIMEOUT) as s:
        assert s.getsockname()[0] == "127.0.0.1"
        f = s.makefile("rb")
        greeting = f.readline()
        assert b"LOGINDISABLED" in greeting.upper(), greeting
        s.sendall(b"x1 LOGIN %s %s\r\n" % (user.encode(), STRICT_USERS[user].encode()))
        lines = [f.readline()]
        while lines[-1].startswith(b"* "):
            lines.append(f.readline())
        assert lines[-1].startswith(b"x1 NO"), lines
    with socket.create_connection(("127.0.0.2", strict_dovecot.pop3_port),
                                  timeout=IO_TIMEOUT) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER %s\r\n" % user.encode())
        line = f.readline()
        if line.startswith(b"+OK"):
            s.sendall(b"PASS %s\r\n" % STRICT_USERS[user].encode())
            line = f.readline()
        assert line.startswith(b"-ERR"), line


def test_a_plaintext_link_to_a_backend_that_disables_plaintext_auth_fails(
        btls_proxy, ca, strict_dovecot):
    user = "sue@strict-plain.test"
    dsince = strict_dovecot.log_size()
    with RawImap(btls_proxy.imap_port, ca) as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (user, STRICT_USERS[user]), timeout=20)
        assert tagged(line, "a1") == b"NO", c.dump()
    with RawPop3(btls_proxy.pop3_port, ca) as c:
        c.command("USER " + user)
        r = c.command("PASS " + STRICT_USERS[user], timeout=20)
        assert r.startswith(b"-ERR"), c.dump()
    assert_no_login(strict_dovecot, user, dsince)
    # postern did reach this backend (the failure is Dovecot's refusal)
    assert re.search(r"rip=127\.0\.0\.1, lip=127\.0\.0\.2", strict_dovecot.log()[dsince:]), \
        strict_dovecot.log()[dsince:]


@pytest.mark.parametrize("user", ["sue@strict-starttls.test", "sue@strict-implicit.test"])
def test_a_tls_link_to_a_backend_that_disables_plaintext_auth_logs_in(
        btls_proxy, ca, strict_dovecot, user):
    dsince = strict_dovecot.log_size()
    m = imaplib.IMAP4_SSL(HOST, btls_proxy.imap_port, ssl_context=ctx_for(ca),
                          timeout=IO_TIMEOUT)
    try:
        assert m.login(user, STRICT_USERS[user])[0] == "OK"
        m.select("INBOX")
        typ, data = m.fetch("1", "(RFC822)")
        assert typ == "OK" and data[0][1] == strict_dovecot.messages[user][0]
        m.logout()
    finally:
        shutdown(m)
    p = poplib.POP3_SSL(HOST, btls_proxy.pop3_port, context=ctx_for(ca), timeout=IO_TIMEOUT)
    try:
        p.user(user)
        assert p.pass_(STRICT_USERS[user]).startswith(b"+OK")
        _, lines, _ = p.retr(2)
        assert b"\r\n".join(lines) + b"\r\n" == strict_dovecot.messages[user][1]
        p.quit()
    finally:
        p.close()
    for proto in ("imap", "pop3"):
        line = login_line(strict_dovecot, proto, user, dsince)
        assert line, strict_dovecot.log()[dsince:]
        assert "rip=127.0.0.1, lip=127.0.0.2" in line and re.search(r", TLS\b", line), line


# ---------------------------------------------------------------------------
# 9. sslscan
# ---------------------------------------------------------------------------

WEAK = re.compile(r"NULL|EXPORT|EXP-|RC4|ADH|AECDH|anon|DES|MD5|IDEA|SEED|PSK|SRP")
GOOD_TLS12 = re.compile(r"^(ECDHE-(RSA|ECDSA)|DHE-RSA)-(AES(128|256)-GCM-SHA(256|384)|"
                        r"CHACHA20-POLY1305)$")
GOOD_TLS13 = re.compile(r"^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256|"
                        r"AES_128_CCM_SHA256)$")


def parse_sslscan(text):
    """{"protocols": {"TLSv1.2": "enabled", ...}, "ciphers": [(version, name)]}"""
    protocols = dict(re.findall(r"^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)\s*$",
                                text, re.M))
    ciphers = re.findall(r"^(?:Accepted|Preferred)\s+(\S+)\s+\d+\s+bits\s+(\S+)", text, re.M)
    return {"protocols": protocols, "ciphers": ciphers}


def sslscan_problems(text):
    """Everything wrong with a scan, as a list of strings (empty: good)."""
    r = parse_sslscan(text)
    problems = []
    if set(r["protocols"]) != {"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"}:
        problems.append("could not read the protocol list: %r" % r["protocols"])
    for proto in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        if r["protocols"].get(proto) != "disabled":
            problems.append("%s is %s" % (proto, r["protocols"].get(proto)))
    if r["protocols"].get("TLSv1.2") != "enabled" and r["protocols"].get("TLSv1.3") != "enabled":
        problems.append("neither TLS 1.2 nor 1.3 is enabled")
    if not r["ciphers"]:
        problems.append("no accepted cipher found in the output")
    for version, name in r["ciphers"]:
        if WEAK.search(name):
            problems.append("weak cipher accepted: %s %s" % (version, name))
        elif version == "TLSv1.2" and not GOOD_TLS12.match(name):
            problems.append("TLS 1.2 cipher without forward secrecy or AEAD: %s" % name)
        elif version == "TLSv1.3" and not GOOD_TLS13.match(name):
            problems.append("unexpected TLS 1.3 suite: %s" % name)
        elif version not in ("TLSv1.2", "TLSv1.3"):
            problems.append("cipher accepted with %s: %s" % (version, name))
    return problems


SCANS = {
    "imaps": (lambda p: p.imap_port, []),
    "pop3s": (lambda p: p.pop3_port, []),
    "imap-starttls": (lambda p: p.imap_starttls_port, ["--starttls-imap"]),
    "pop3-stls": (lambda p: p.pop3_starttls_port, ["--starttls-pop3"]),
}


def _need_sslscan():
    if shutil.which("sslscan") is None:
        pytest.fail("sslscan is not installed (Debian package sslscan; tests/deps.sh)")


@pytest.mark.parametrize("listener", sorted(SCANS))
def test_sslscan_finds_only_modern_protocols_and_aead_forward_secret_ciphers(
        stls_proxy, listener):
    _need_sslscan()
    port_of, args = SCANS[listener]
    rc, text = harness.sslscan("127.0.0.1:%d" % port_of(stls_proxy), args)
    assert rc == 0, text
    r = parse_sslscan(text)
    assert r["protocols"].get("TLSv1.2") == "enabled", text
    assert r["protocols"].get("TLSv1.3") == "enabled", text
    assert any(v == "TLSv1.2" for v, _ in r["ciphers"]), text
    assert any(v == "TLSv1.3" for v, _ in r["ciphers"]), text
    problems = sslscan_problems(text)
    assert not problems, "\n".join(problems) + "\n\n" + text


def test_the_sslscan_checks_catch_a_weak_server(certs, tmp_path):
    """The checks above can fail: an openssl s_server with TLS 1.0 and every
    cipher fails them, for the reasons expected."""
    _need_sslscan()
    srv = harness.OpensslServer(["-cert", certs["rsa_cert"], "-key", certs["rsa_key"],
                                 "-cipher", "ALL:eNULL:@SECLEVEL=0"]).start()
    try:
        rc, text = harness.sslscan("127.0.0.1:%d" % srv.port)
    finally:
        srv.stop()
    problems = "\n".join(sslscan_problems(text))
    assert "TLSv1.0 is enabled" in problems, text
    assert "TLSv1.1 is enabled" in problems, text
    assert re.search(r"weak cipher accepted: \S+ (ADH|AECDH)-", problems), problems
    assert re.search(r"TLS 1.2 cipher without forward secrecy or AEAD: (ECDHE-RSA-)?AES\d+-SHA",
                     problems), problems


# ---------------------------------------------------------------------------
# Secrets used above stay out of every log (keep this last)
# ---------------------------------------------------------------------------


_INJECTED_USER_VALUE = re.compile(
    r'user="(?:[^"\\]|\\.)*(?:CREATE injected|DELE 1)(?:[^"\\]|\\.)*"')


def test_no_password_used_in_these_tests_appears_in_any_postern_log(postern_registry):
    secrets = set(BACKEND_USERS.values()) | set(STRICT_USERS.values()) | set(PASSWORDS.values())
    logs = [(p.conf_path if p.dir else "(stopped postern)", p.log()) for p in postern_registry]
    assert any(text for _, text in logs), "no postern log to check"
    for where, text in logs:
        # test_core's injection tests send frank's password inside a *user
        # name*, which is logged on purpose: those values are left out.
        text = _INJECTED_USER_VALUE.sub('user=""', text)
        for s in secrets:
            for form in (s, s.replace("\\", "\\\\").replace('"', '\\"')):
                assert form not in text, "password %r found in %s" % (s, where)
        for user, pw in list(BACKEND_USERS.items()) + list(STRICT_USERS.items()):
            assert sasl_plain(user, pw).decode() not in text, "SASL payload in %s" % where
