"""postern's STARTTLS and STLS listeners end to end: real clients (imaplib,
poplib, curl) upgrading and logging in, plaintext authentication refused
before TLS (and allowed with allow_plaintext_auth), nothing pipelined behind
STARTTLS/STLS surviving the handshake, and STARTTLS/STLS where TLS is
already on.  The STARTTLS postern (stls_proxy) is in conftest.py."""

import imaplib
import poplib
import re
import socket
import ssl
import subprocess
import time

import pytest

from harness import (IO_TIMEOUT, PASSWORDS, ROUTES, Postern, RawImap, RawPop3, RestartingPostern,
                     assert_no_login, caps_of, ctx_for, fetch_body, imap_quote, proxy_log_since,
                     sasl_plain, shutdown, tagged)

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _plain_ok_holder(certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    """STARTTLS listeners with allow_plaintext_auth = true."""
    h = RestartingPostern(lambda: Postern(certs, [mx1, mx2, dead_backend], ROUTES,
                                          parent_dir=run_dir, starttls=True,
                                          allow_plaintext_auth=True), postern_registry)
    yield h
    h.close()


@pytest.fixture
def plain_ok_proxy(_plain_ok_holder):
    yield from _plain_ok_holder.checked(pytest.fail)


# ---------------------------------------------------------------------------
# STARTTLS / STLS with real clients
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
# Plaintext authentication before TLS
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
# Nothing pipelined behind STARTTLS / STLS survives the handshake
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
# STARTTLS where TLS is already on
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
