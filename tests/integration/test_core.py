"""postern end to end: real clients (imaplib, poplib, curl, hand-written
IMAP/POP3 over TLS) -> postern (implicit TLS, verified against the test CA)
-> real Dovecot backends.  Each test states one behaviour."""

import os
import re
import socket
import ssl
import subprocess
import time

import pytest

import harness
from harness import (DOWN_USER, IO_TIMEOUT, PASSWORDS, POOL_USERS, WRONG_PASSWORDS, all_secrets,
                     backend_of, fetch_body, imap_fetch_first, imap_ssl, literal_login,
                     log_offsets, pop3_retr_first, pop3_ssl, raw_imap, raw_pop3, sasl_plain,
                     tagged)

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def ctx_for(ca):
    return ssl.create_default_context(cafile=ca)


def imap_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def assert_no_mailbox(backends, name):
    for b in backends.values():
        for user, boxes in b.all_mailboxes().items():
            assert name not in boxes, "%s: mailbox %r exists for %s" % (b.name, name, user)


def assert_no_create_logged(backends, since):
    time.sleep(0.3)  # Dovecot's log process writes a moment after the fact
    for b in backends.values():
        text = b.log()[since[b.name]:]
        assert not re.search(r"Mailbox created|mailbox_create", text), \
            "%s logged a mailbox creation:\n%s" % (b.name, text)


# ---------------------------------------------------------------------------
# 1. LOGIN: quoted strings and literals
# ---------------------------------------------------------------------------


def test_login_with_a_quoted_password_with_spaces_quotes_and_backslash_fetches_the_backend_message(
        proxy, ca, mx1):
    user = "alice@example.org"
    m = imap_ssl(proxy, ca)
    try:
        typ, _ = m.login(user, PASSWORDS[user])  # imaplib quotes and escapes it
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK" and data[0] == b"3"
        typ, data = m.fetch("1", "(RFC822)")
        assert typ == "OK"
        assert data[0][1] == mx1.messages[user][0]
        typ, _ = m.logout()
        assert typ == "BYE"
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def test_login_with_synchronising_literals_and_a_non_ascii_password_fetches_the_message(
        proxy, ca, mx1):
    user = "dave@example.org"
    with raw_imap(proxy, ca) as c:
        line, _ = literal_login(c, "a1", user, PASSWORDS[user])
        assert tagged(line, "a1") == b"OK", c.dump()
        line, lines = c.command("a2", "SELECT INBOX")
        assert tagged(line, "a2") == b"OK", c.dump()
        assert b"* 3 EXISTS\r\n" in lines
        assert fetch_body(c, "a3") == mx1.messages[user][0]
        line, lines = c.command("a4", "LOGOUT")
        assert lines[0].startswith(b"* BYE") and tagged(line, "a4") == b"OK"


def test_login_with_non_synchronising_literals_in_one_write_needs_no_continuation(
        proxy, ca, mx1):
    user = "dave@example.org"
    u, p = user.encode(), PASSWORDS[user].encode("utf-8")
    with raw_imap(proxy, ca) as c:
        c.send(b"a1 LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(u), u, len(p), p))
        line, lines = c.read_response("a1")
        assert not any(l.startswith(b"+") for l in lines), c.dump()
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert fetch_body(c, "a3", 2) == mx1.messages[user][1]


def test_login_with_a_literal_user_and_a_quoted_password_works(proxy, ca, mx1):
    user = "alice@example.org"
    with raw_imap(proxy, ca) as c:
        c.send(b"a1 LOGIN {%d}\r\n" % len(user))
        c.expect_continuation()
        c.send(user.encode() + b" " + imap_quote(PASSWORDS[user]).encode() + b"\r\n")
        line, _ = c.read_response("a1")
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert fetch_body(c, "a3", 3) == mx1.messages[user][2]


# ---------------------------------------------------------------------------
# 2. AUTHENTICATE PLAIN
# ---------------------------------------------------------------------------


def test_authenticate_plain_with_a_continuation_round_logs_in(proxy, ca, mx1):
    user = "alice@example.org"
    m = imap_ssl(proxy, ca)
    try:
        raw = b"\0" + user.encode() + b"\0" + PASSWORDS[user].encode()
        typ, _ = m.authenticate("PLAIN", lambda _challenge: raw)
        assert typ == "OK"
        m.select("INBOX")
        typ, data = m.fetch("2", "(RFC822)")
        assert data[0][1] == mx1.messages[user][1]
        m.logout()
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def test_authenticate_plain_with_an_initial_response_logs_in(proxy, ca, mx1):
    user = "dave@example.org"
    with raw_imap(proxy, ca) as c:
        line, lines = c.command("a1", b"AUTHENTICATE PLAIN " + sasl_plain(user, PASSWORDS[user]))
        assert not any(l.startswith(b"+") for l in lines), c.dump()
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert fetch_body(c, "a3") == mx1.messages[user][0]


def test_authenticate_cancelled_with_a_star_gets_bad_and_the_session_continues(
        proxy, ca, mx1):
    user = "alice@example.org"
    with raw_imap(proxy, ca) as c:
        c.send(b"a1 AUTHENTICATE PLAIN\r\n")
        c.expect_continuation()
        c.send(b"*\r\n")
        line, _ = c.read_response("a1")
        assert tagged(line, "a1") == b"BAD", c.dump()
        line, _ = c.command("a2", "NOOP")
        assert tagged(line, "a2") == b"OK", c.dump()
        line, _ = c.command("a3", b"AUTHENTICATE PLAIN " + sasl_plain(user, PASSWORDS[user]))
        assert tagged(line, "a3") == b"OK", c.dump()
        c.command("a4", "SELECT INBOX")
        assert fetch_body(c, "a5") == mx1.messages[user][0]


# ---------------------------------------------------------------------------
# 3. The pre-auth dialog
# ---------------------------------------------------------------------------


def test_greeting_advertises_capabilities_with_auth_plain_sasl_ir_literal_and_id(proxy, ca):
    with raw_imap(proxy, ca) as c:
        g = c.greeting
        assert g.startswith(b"* OK [CAPABILITY "), g
        caps = g[len(b"* OK [CAPABILITY "):g.index(b"]")].upper().split()
        assert b"IMAP4REV1" in caps
        assert b"AUTH=PLAIN" in caps
        assert b"SASL-IR" in caps
        assert b"LITERAL+" in caps or b"LITERAL-" in caps
        assert b"ID" in caps


def test_tagged_ok_after_login_carries_the_backends_post_login_capabilities(proxy, ca, mx1):
    user = "erin@other.test"
    # What mx1 itself says in its tagged OK to a LOGIN, asked directly.
    with socket.create_connection((HOST, mx1.imap_port), timeout=IO_TIMEOUT) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"x1 LOGIN %s %s\r\nx2 LOGOUT\r\n" % (user.encode(), PASSWORDS[user].encode()))
        line = f.readline()
        m = re.match(rb"x1 OK \[CAPABILITY ([^\]]*)\]", line)
        assert m, line
        backend_caps = set(x.decode().upper() for x in m.group(1).split())
    with raw_imap(proxy, ca) as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (user, PASSWORDS[user]))
        assert tagged(line, "a1") == b"OK", c.dump()
        m = re.match(rb"a1 OK \[CAPABILITY ([^\]]*)\]", line)
        assert m, line
        caps = set(x.decode().upper() for x in m.group(1).split())
        assert "IDLE" in caps
        assert not [x for x in caps if x.startswith("AUTH=")], caps
        assert caps == backend_caps, "proxied %s\nbackend %s" % (sorted(caps),
                                                                sorted(backend_caps))


def test_capability_noop_and_id_are_answered_before_login(proxy, ca):
    with raw_imap(proxy, ca) as c:
        line, lines = c.command("a1", "CAPABILITY")
        assert tagged(line, "a1") == b"OK", c.dump()
        assert lines[0].startswith(b"* CAPABILITY ") and b"AUTH=PLAIN" in lines[0].upper()
        line, _ = c.command("a2", "NOOP")
        assert tagged(line, "a2") == b"OK", c.dump()
        line, lines = c.command("a3", 'ID ("name" "pytest" "version" "1.0")')
        assert tagged(line, "a3") == b"OK", c.dump()
        assert any(l.startswith(b"* ID ") for l in lines), c.dump()
        line, lines = c.command("a4", "ID NIL")
        assert tagged(line, "a4") == b"OK", c.dump()
        assert any(l.startswith(b"* ID ") for l in lines), c.dump()


def test_logout_before_login_says_bye_then_ok_and_closes(proxy, ca):
    with raw_imap(proxy, ca) as c:
        line, lines = c.command("a1", "LOGOUT")
        assert lines[0].startswith(b"* BYE"), c.dump()
        assert tagged(line, "a1") == b"OK", c.dump()
        assert c.read_until_closed() == b""


def test_unknown_command_gets_bad_and_the_session_continues(proxy, ca):
    with raw_imap(proxy, ca) as c:
        line, _ = c.command("a1", "FROBNICATE now")
        assert tagged(line, "a1") == b"BAD", c.dump()
        line, _ = c.command("a2", "NOOP")
        assert tagged(line, "a2") == b"OK", c.dump()


def test_three_bad_commands_end_the_connection_with_bye(proxy, ca):
    with raw_imap(proxy, ca) as c:
        line, _ = c.command("a1", "FROBNICATE")
        assert tagged(line, "a1") == b"BAD", c.dump()
        line, _ = c.command("a2", "XYZZY 1 2 3")
        assert tagged(line, "a2") == b"BAD", c.dump()
        c.send(b"a3 PLUGH\r\n")
        rest = c.read_until_closed()
        assert b"* BYE" in rest, c.dump()
        assert c.eof


def test_a_line_over_8k_gets_bye_and_the_connection_closes(proxy, ca):
    with raw_imap(proxy, ca) as c:
        c.send(b"a1 NOOP " + b"x" * (8 * 1024 + 200) + b"\r\n")
        rest = c.read_until_closed()
        assert b"* BYE" in rest, c.dump()
        assert c.eof


def test_pipelined_commands_are_answered_in_order_and_the_last_by_the_backend(proxy, ca):
    user = "erin@other.test"
    with raw_imap(proxy, ca) as c:
        c.send(b"a NOOP\r\nb CAPABILITY\r\nc LOGIN %s %s\r\nd SELECT INBOX\r\n"
               % (user.encode(), PASSWORDS[user].encode()))
        order, lines = [], []
        while True:
            line = c.readline()
            lines.append(line)
            m = re.match(rb"([a-d]) (OK|NO|BAD)\b", line)
            if m:
                order.append((m.group(1).decode(), m.group(2).decode()))
                if m.group(1) == b"d":
                    break
        assert order == [("a", "OK"), ("b", "OK"), ("c", "OK"), ("d", "OK")], c.dump()
        d_part = lines[lines.index([l for l in lines if l.startswith(b"c ")][0]) + 1:]
        assert b"* 3 EXISTS\r\n" in d_part, c.dump()
        assert d_part[-1].startswith(b"d OK [READ-WRITE]"), c.dump()


def test_a_bad_command_pipelined_before_a_login_does_not_spoil_the_login(proxy, ca):
    user = "erin@other.test"
    with raw_imap(proxy, ca) as c:
        c.send(b"a FROBNICATE\r\nb LOGIN %s %s\r\nc NOOP\r\n"
               % (user.encode(), PASSWORDS[user].encode()))
        line, _ = c.read_response("a")
        assert tagged(line, "a") == b"BAD", c.dump()
        line, _ = c.read_response("b")
        assert tagged(line, "b") == b"OK", c.dump()
        line, _ = c.read_response("c")
        assert tagged(line, "c") == b"OK", c.dump()


def test_a_client_silent_before_login_gets_bye_at_the_login_timeout(make_postern, ca):
    p = make_postern(timeouts={"login": "2s"})
    with raw_imap(p, ca) as c:
        t0 = time.monotonic()
        rest = c.read_until_closed(timeout=10)
        took = time.monotonic() - t0
    assert b"* BYE" in rest, c.dump()
    assert 1.5 <= took <= 6, took


def test_a_client_that_never_starts_tls_is_closed_at_the_handshake_timeout(make_postern):
    p = make_postern(timeouts={"handshake": "2s"})
    with socket.create_connection((HOST, p.imap_port), timeout=10) as s:
        t0 = time.monotonic()
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        took = time.monotonic() - t0
    assert data == b""
    assert 1.5 <= took <= 6, took


def test_three_failed_logins_end_the_connection_with_bye(proxy, ca):
    user = "alice@example.org"
    with raw_imap(proxy, ca) as c:
        for i, pw in enumerate(WRONG_PASSWORDS[:2], 1):
            line, _ = c.command("a%d" % i, "LOGIN %s %s" % (user, imap_quote(pw)))
            assert tagged(line, "a%d" % i) == b"NO", c.dump()
        c.send(b"a3 LOGIN %s %s\r\n" % (user.encode(), imap_quote(WRONG_PASSWORDS[0]).encode()))
        rest = c.read_until_closed(timeout=20)
        assert b"a3 NO" in rest, c.dump()
        assert b"* BYE" in rest, c.dump()


# ---------------------------------------------------------------------------
# 4. POP3
# ---------------------------------------------------------------------------


def test_pop3_user_pass_stat_and_retr_return_the_backend_message(proxy, ca, mx1):
    user = "alice@example.org"
    p = pop3_ssl(proxy, ca)
    try:
        assert p.getwelcome().startswith(b"+OK")
        p.user(user)
        assert p.pass_(PASSWORDS[user]).startswith(b"+OK")
        count, size = p.stat()
        assert count == 3
        assert size == sum(len(m) for m in mx1.messages[user])
        _, lines, octets = p.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == mx1.messages[user][0]
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()


def test_pop3_auth_plain_with_an_initial_response_logs_in(proxy, ca, mx1):
    user = "dave@example.org"
    with raw_pop3(proxy, ca) as c:
        assert c.greeting.startswith(b"+OK"), c.greeting
        r = c.command(b"AUTH PLAIN " + sasl_plain(user, PASSWORDS[user]))
        assert r.startswith(b"+OK"), c.dump()
        r = c.command("RETR 2")
        assert r.startswith(b"+OK"), c.dump()
        assert b"\r\n".join(c.read_multiline()) + b"\r\n" == mx1.messages[user][1]
        assert c.command("QUIT").startswith(b"+OK"), c.dump()


def test_pop3_auth_plain_with_a_continuation_round_logs_in(proxy, ca, mx1):
    user = "alice@example.org"
    with raw_pop3(proxy, ca) as c:
        r = c.command("AUTH PLAIN")
        assert r.startswith(b"+ ") or r == b"+\r\n", c.dump()
        r = c.command(sasl_plain(user, PASSWORDS[user]))
        assert r.startswith(b"+OK"), c.dump()
        r = c.command("STAT")
        assert r.startswith(b"+OK 3 "), c.dump()


def test_pop3_auth_cancelled_with_a_star_gets_err_and_the_session_continues(proxy, ca, mx1):
    user = "alice@example.org"
    with raw_pop3(proxy, ca) as c:
        r = c.command("AUTH PLAIN")
        assert r.startswith(b"+ ") or r == b"+\r\n", c.dump()
        r = c.command("*")
        assert r.startswith(b"-ERR"), c.dump()
        assert c.command("USER " + user).startswith(b"+OK"), c.dump()
        assert c.command(b"PASS " + PASSWORDS[user].encode()).startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK 3 "), c.dump()


def test_pop3_pipelined_commands_are_answered_in_order_and_after_login_by_the_backend(
        proxy, ca, mx1):
    user = "erin@other.test"
    with raw_pop3(proxy, ca) as c:
        c.send(b"CAPA\r\nUSER %s\r\nPASS %s\r\nSTAT\r\nRETR 3\r\nQUIT\r\n"
               % (user.encode(), PASSWORDS[user].encode()))
        assert c.readline().startswith(b"+OK"), c.dump()
        assert b"PIPELINING" in b"".join(c.read_multiline()), c.dump()
        assert c.readline().startswith(b"+OK"), c.dump()  # USER
        assert c.readline().startswith(b"+OK"), c.dump()  # PASS
        assert c.readline().startswith(b"+OK 3 "), c.dump()  # STAT, from the backend
        assert c.readline().startswith(b"+OK"), c.dump()  # RETR
        assert b"\r\n".join(c.read_multiline()) + b"\r\n" == mx1.messages[user][2]
        assert c.readline().startswith(b"+OK"), c.dump()  # QUIT


def test_pop3_capa_lists_user_sasl_plain_resp_codes_auth_resp_code_and_pipelining(proxy, ca):
    p = pop3_ssl(proxy, ca)
    try:
        caps = p.capa()
    finally:
        p.close()
    for cap in ("USER", "SASL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert cap in caps, caps
    assert "PLAIN" in [m.upper() for m in caps["SASL"]], caps


# ---------------------------------------------------------------------------
# 5. curl
# ---------------------------------------------------------------------------


def curl(ca, url, user, password):
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", ca, "--url", url,
                        "-u", "%s:%s" % (user, password)],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, "curl exit %d: %s" % (r.returncode, r.stderr.decode(errors="replace"))
    return r.stdout


def test_curl_fetches_a_message_over_imaps(proxy, ca, mx1):
    user = "alice@example.org"
    out = curl(ca, "imaps://127.0.0.1:%d/INBOX;UID=1" % proxy.imap_port, user, PASSWORDS[user])
    assert out == mx1.messages[user][0]


def test_curl_retrieves_a_message_over_pop3s(proxy, ca, mx2):
    user = "carol@example.org"
    out = curl(ca, "pop3s://127.0.0.1:%d/1" % proxy.pop3_port, user, PASSWORDS[user])
    assert out == mx2.messages[user][0]


# ---------------------------------------------------------------------------
# 7. Wrong passwords
# ---------------------------------------------------------------------------


def test_wrong_imap_password_gets_authenticationfailed_and_can_be_retried_on_the_same_connection(
        proxy, ca, mx1):
    user = "alice@example.org"
    with raw_imap(proxy, ca) as c:
        psince = proxy.log_size()
        line, _ = c.command("a1", "LOGIN %s %s" % (user, imap_quote(WRONG_PASSWORDS[0])))
        assert line.startswith(b"a1 NO [AUTHENTICATIONFAILED]"), c.dump()
        assert proxy.wait_log(r'event=login\.fail .*user="%s"' % re.escape(user),
                              since=psince), proxy.log()[psince:]
        line, _ = c.command("a2", "LOGIN %s %s" % (user, imap_quote(PASSWORDS[user])))
        assert tagged(line, "a2") == b"OK", c.dump()
        c.command("a3", "SELECT INBOX")
        assert fetch_body(c, "a4") == mx1.messages[user][0]


def test_wrong_imap_sasl_password_gets_authenticationfailed_and_can_be_retried(proxy, ca):
    user = "carol@example.org"
    with raw_imap(proxy, ca) as c:
        line, _ = c.command("a1", b"AUTHENTICATE PLAIN " + sasl_plain(user, WRONG_PASSWORDS[1]))
        assert line.startswith(b"a1 NO [AUTHENTICATIONFAILED]"), c.dump()
        line, _ = c.command("a2", b"AUTHENTICATE PLAIN " + sasl_plain(user, PASSWORDS[user]))
        assert tagged(line, "a2") == b"OK", c.dump()


def test_wrong_pop3_password_gets_err_auth_and_can_be_retried_on_the_same_connection(
        proxy, ca, mx1):
    user = "alice@example.org"
    with raw_pop3(proxy, ca) as c:
        assert c.command("USER " + user).startswith(b"+OK"), c.dump()
        r = c.command(b"PASS " + WRONG_PASSWORDS[2].encode("utf-8"))
        assert r.startswith(b"-ERR [AUTH]"), c.dump()
        assert c.command("USER " + user).startswith(b"+OK"), c.dump()
        r = c.command(b"PASS " + PASSWORDS[user].encode())
        assert r.startswith(b"+OK"), c.dump()
        assert c.command("RETR 1").startswith(b"+OK"), c.dump()
        assert b"\r\n".join(c.read_multiline()) + b"\r\n" == mx1.messages[user][0]


def test_wrong_pop3_sasl_password_gets_err_auth_and_can_be_retried(proxy, ca):
    user = "carol@example.org"
    with raw_pop3(proxy, ca) as c:
        r = c.command(b"AUTH PLAIN " + sasl_plain(user, WRONG_PASSWORDS[0]))
        assert r.startswith(b"-ERR [AUTH]"), c.dump()
        r = c.command(b"AUTH PLAIN " + sasl_plain(user, PASSWORDS[user]))
        assert r.startswith(b"+OK"), c.dump()


# ---------------------------------------------------------------------------
# 8. Backend down
# ---------------------------------------------------------------------------


def _reason_line(log, user):
    for line in log.splitlines():
        if 'user="%s"' % user in line and re.search(r"\breason=\S", line):
            return line
    return None


def test_unreachable_backend_gives_imap_unavailable_and_a_logged_reason(proxy, ca, mx1):
    with raw_imap(proxy, ca) as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (DOWN_USER, PASSWORDS[DOWN_USER]),
                            timeout=20)
        assert line.startswith(b"a1 NO [UNAVAILABLE]"), c.dump()
    deadline = time.monotonic() + 5
    while _reason_line(proxy.log(), DOWN_USER) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    line = _reason_line(proxy.log(), DOWN_USER)
    assert line, "no log line with user and reason:\n" + proxy.log()[-3000:]
    assert "dead" in line or "backend" in line, line
    # Other users are still served.
    assert imap_fetch_first(proxy, ca, "alice@example.org") == \
        mx1.messages["alice@example.org"][0]


def test_unreachable_backend_gives_pop3_sys_temp(proxy, ca, mx2):
    with raw_pop3(proxy, ca) as c:
        assert c.command("USER " + DOWN_USER).startswith(b"+OK"), c.dump()
        r = c.command("PASS " + PASSWORDS[DOWN_USER], timeout=20)
        assert r.startswith(b"-ERR [SYS/TEMP]"), c.dump()
    assert pop3_retr_first(proxy, ca, "carol@example.org") == \
        mx2.messages["carol@example.org"][0]


def test_stopped_backend_gives_unavailable_while_other_users_are_still_served(stack, ca):
    p, mx1, mx2 = stack.postern, stack.mx1, stack.mx2
    carol, alice = "carol@example.org", "alice@example.org"
    assert backend_of(imap_fetch_first(p, ca, carol), stack.backends) == "mx2"
    mx2.stop()
    with raw_imap(p, ca) as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (carol, PASSWORDS[carol]), timeout=20)
        assert line.startswith(b"a1 NO [UNAVAILABLE]"), c.dump()
    with raw_pop3(p, ca) as c:
        c.command("USER " + carol)
        r = c.command("PASS " + PASSWORDS[carol], timeout=20)
        assert r.startswith(b"-ERR [SYS/TEMP]"), c.dump()
    deadline = time.monotonic() + 5
    while _reason_line(p.log(), carol) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _reason_line(p.log(), carol), p.log()[-3000:]
    assert imap_fetch_first(p, ca, alice) == mx1.messages[alice][0]
    assert pop3_retr_first(p, ca, alice) == mx1.messages[alice][0]
    assert p.running()


# ---------------------------------------------------------------------------
# 9. CRLF injection
# ---------------------------------------------------------------------------

INJECT_USERS = [
    # what a proxy that pastes the user into "LOGIN <user> <pass>" would send
    "frank@other.test frank-secret-6\r\na2 CREATE injected\r\na3 NOOP",
    # the same against a proxy that wraps it in quotes without escaping them
    'frank@other.test" "frank-secret-6"\r\na2 CREATE injected\r\na3 NOOP "',
]


@pytest.mark.parametrize("evil", INJECT_USERS, ids=["atom", "quoted"])
def test_crlf_in_a_literal_user_name_gets_no_and_creates_no_mailbox(proxy, ca, backends, evil):
    since = log_offsets(backends)
    with raw_imap(proxy, ca) as c:
        u = evil.encode()
        c.send(b"a1 LOGIN {%d}\r\n" % len(u))
        c.expect_continuation()
        c.send(u + b" x\r\n")
        line, _ = c.read_response("a1", timeout=20)
        assert tagged(line, "a1") == b"NO", c.dump()
        # The same connection logs in properly; nothing was left queued.
        line, _ = c.command("b1", "LOGIN frank@other.test frank-secret-6")
        assert tagged(line, "b1") == b"OK", c.dump()
        line, lines = c.command("b2", 'LIST "" "*"')
        assert tagged(line, "b2") == b"OK", c.dump()
        assert not any(b"injected" in l for l in lines), c.dump()
        c.command("b3", "LOGOUT")
    assert_no_mailbox(backends, "injected")
    assert_no_create_logged(backends, since)


@pytest.mark.parametrize("evil", INJECT_USERS, ids=["atom", "quoted"])
def test_crlf_in_a_sasl_plain_user_gets_no_and_creates_no_mailbox(proxy, ca, backends, evil):
    since = log_offsets(backends)
    with raw_imap(proxy, ca) as c:
        line, _ = c.command("a1", b"AUTHENTICATE PLAIN " + sasl_plain(evil, "x"), timeout=20)
        assert tagged(line, "a1") == b"NO", c.dump()
        line, _ = c.command("a9", "NOOP")
        assert tagged(line, "a9") == b"OK", c.dump()
    assert_no_mailbox(backends, "injected")
    assert_no_create_logged(backends, since)


def test_crlf_in_a_pop3_sasl_user_cannot_inject_pop3_commands(proxy, ca, backends):
    user = "frank@other.test"
    before = {n: b.message_files(user) for n, b in backends.items()}
    since = log_offsets(backends)
    evil = user + "\r\nPASS " + PASSWORDS[user] + "\r\nDELE 1\r\nDELE 2\r\nDELE 3\r\nQUIT"
    with raw_pop3(proxy, ca) as c:
        r = c.command(b"AUTH PLAIN " + sasl_plain(evil, "x"), timeout=20)
        assert r.startswith(b"-ERR"), c.dump()
        assert c.command("NOOP").startswith(b"-ERR"), c.dump()  # still not logged in
    time.sleep(0.3)
    for n, b in backends.items():
        assert b.message_files(user) == before[n], "%s lost messages" % n
        text = b.log()[since[n]:]
        assert "pop3(%s)" % user not in text, text


def test_crlf_in_a_password_cannot_inject_commands(proxy, ca, backends):
    user = "frank@other.test"
    before = {n: b.message_files(user) for n, b in backends.items()}
    since = log_offsets(backends)
    evil = PASSWORDS[user] + "\r\nb CREATE injected\r\nc NOOP"
    with raw_imap(proxy, ca) as c:
        pw = evil.encode()
        c.send(b"a1 LOGIN %s {%d}\r\n" % (user.encode(), len(pw)))
        c.expect_continuation()
        c.send(pw + b"\r\n")
        line, _ = c.read_response("a1", timeout=20)
        assert tagged(line, "a1") == b"NO", c.dump()
        line, _ = c.command("a2", b"AUTHENTICATE PLAIN " + sasl_plain(user, evil), timeout=20)
        assert tagged(line, "a2") == b"NO", c.dump()
    pop_evil = PASSWORDS[user] + "\r\nDELE 1\r\nDELE 2\r\nDELE 3\r\nQUIT"
    with raw_pop3(proxy, ca) as c:
        r = c.command(b"AUTH PLAIN " + sasl_plain(user, pop_evil), timeout=20)
        assert r.startswith(b"-ERR"), c.dump()
    assert_no_mailbox(backends, "injected")
    assert_no_create_logged(backends, since)
    for n, b in backends.items():
        assert b.message_files(user) == before[n], "%s lost messages" % n


# ---------------------------------------------------------------------------
# The relay after login
# ---------------------------------------------------------------------------


def test_a_large_message_crosses_the_relay_intact_both_ways(proxy, ca, mx1):
    user = "gina@other.test"
    body = b"".join(b"line %07d %s\r\n" % (i, b"z" * 70) for i in range(25000))
    msg = (b"From: <sender@example.com>\r\nTo: <%s>\r\nSubject: big one\r\n\r\n"
           % user.encode()) + body  # about 2 MB, far over the 16 KiB relay buffers
    m = imap_ssl(proxy, ca)
    try:
        m.login(user, PASSWORDS[user])
        typ, data = m.append("INBOX", None, None, msg)
        assert typ == "OK", data
        m.select("INBOX")
        typ, data = m.uid("SEARCH", None, "SUBJECT", '"big one"')
        uid = data[0].split()[-1]
        typ, data = m.uid("FETCH", uid, "(RFC822)")
        assert typ == "OK"
        assert data[0][1] == msg
        m.logout()
    finally:
        try:
            m.shutdown()
        except OSError:
            pass
    p = pop3_ssl(proxy, ca)
    try:
        p.user(user)
        p.pass_(PASSWORDS[user])
        n, _ = p.stat()
        _, lines, _ = p.retr(n)
        assert b"\r\n".join(lines) + b"\r\n" == msg
        p.quit()
    finally:
        p.close()
    # The session summaries count the bytes: in= from the client, out= to it.
    deadline = time.monotonic() + 5
    while True:
        ends = [(int(m.group(1)), int(m.group(2))) for m in re.finditer(
            r'event=session\.end .*user="%s".* in=(\d+) out=(\d+)' % re.escape(user),
            proxy.log())]
        if len(ends) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert any(i >= len(msg) and o >= len(msg) for i, o in ends), ends  # APPEND + FETCH
    assert any(o >= len(msg) for i, o in ends if i < 1000), ends  # RETR


def test_many_concurrent_sessions_are_all_served(proxy, ca, backends):
    import threading
    users = ["alice@example.org", "carol@example.org", "erin@other.test"] + POOL_USERS[:5]
    errors, done = [], []

    def one(i):
        user = users[i % len(users)]
        try:
            if i % 2:
                body = imap_fetch_first(proxy, ca, user)
            else:
                body = pop3_retr_first(proxy, ca, user)
            if body != backends[backend_of(body, backends)].messages[user][0]:
                errors.append("%s: wrong message" % user)
            done.append(i)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append("%s: %r" % (user, e))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert len(done) == 40


# ---------------------------------------------------------------------------
# 11. Command line
# ---------------------------------------------------------------------------

BAD_CONF = """\
workers = 2;
log_level = "loud";
tls = { certificates = ( { cert = "%(cert)s"; key = "%(key)s"; } ); min_version = "TLSv1.2"; };
listeners = (
  { listen = "127.0.0.1:%(p1)d"; protocol = "smtp"; tls = "implicit"; },
  { listen = "127.0.0.1:%(p2)d"; protocol = "pop3"; tls = "implicit"; }
);
backends = ( { name = "mx1"; host = "127.0.0.1"; imap = 143; pop3 = 110; tls = "none"; } );
routes = ( { domain = "example.org"; backend = "nosuch"; },
           { default = true; backend = "mx1"; } );
timeouts = { handshake = "ten seconds"; };
"""
BAD_LINES = [2, 5, 9, 11]


def _need_binary():
    if not os.access(harness.POSTERN_BIN, os.X_OK):
        pytest.fail("postern binary missing: %s (run make)" % harness.POSTERN_BIN)


def test_config_check_reports_every_error_with_its_line_number_and_exits_1(certs, tmp_path):
    _need_binary()
    path = tmp_path / "bad.conf"
    path.write_text(BAD_CONF % {"cert": certs["rsa_cert"], "key": certs["rsa_key"],
                                "p1": harness.free_port(), "p2": harness.free_port()})
    r = harness.run_postern("-t", "-c", str(path))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    for n in BAD_LINES:
        assert "%s:%d:" % (path, n) in out, "no error for line %d in:\n%s" % (n, out)


def test_config_check_reports_a_syntax_error_with_its_line_number(tmp_path):
    _need_binary()
    path = tmp_path / "syntax.conf"
    path.write_text('workers = 2;\nlog_level = "info";\ntls = { = ; };\n')
    r = harness.run_postern("-t", "-c", str(path))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "%s:3:" % path in out, out


def test_config_check_accepts_the_test_config_and_exits_0(proxy):
    r = harness.run_postern("-t", "-c", proxy.conf_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"(?i)\bok\b", r.stdout + r.stderr), r.stdout + r.stderr


def test_version_flag_prints_a_version():
    _need_binary()
    r = harness.run_postern("-V")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"\d+\.\d+", out), out


# ---------------------------------------------------------------------------
# 10. Secrets stay out of the log (keep this last: it reads every log)
# ---------------------------------------------------------------------------


def _log_forms(secret):
    """The ways a secret could show up in a key=value log: as is, and
    quoted the way log_quote() does it (\\, \\" and \\xNN for 8-bit bytes)."""
    forms = {secret, secret.replace("\\", "\\\\").replace('"', '\\"')}
    for hexfmt in ("\\x%02x", "\\x%02X"):
        forms.add("".join(hexfmt % x if x >= 0x80 or x < 0x20 else
                          ("\\" + chr(x) if chr(x) in '"\\' else chr(x))
                          for x in secret.encode("utf-8")))
    return forms


_INJECTED_USER_VALUE = re.compile(
    r'user="(?:[^"\\]|\\.)*(?:CREATE injected|DELE 1)(?:[^"\\]|\\.)*"')


def test_no_password_ever_appears_in_the_log(proxy, ca, postern_registry):
    # Use every secret once more, by every route, right and wrong.
    sasl_blobs = []
    for user in ["alice@example.org", "dave@example.org", "carol@example.org"]:
        for pw in [PASSWORDS[user]] + WRONG_PASSWORDS:
            with raw_imap(proxy, ca) as c:
                literal_login(c, "a1", user, pw)
                blob = sasl_plain(user, pw)
                sasl_blobs.append(blob)
                c.command("a2", b"AUTHENTICATE PLAIN " + blob)
            with raw_pop3(proxy, ca) as c:
                c.command("USER " + user)
                c.command(b"PASS " + pw.encode("utf-8"))
                c.command(b"AUTH PLAIN " + sasl_plain(user, pw))
    time.sleep(0.3)
    secrets = [s for s in all_secrets()]
    logs = [(p.conf_path if p.dir else "(stopped postern)", p.log()) for p in postern_registry]
    assert any(text for _, text in logs), "no postern log to check"
    for where, text in logs:
        # The injection tests send frank's password inside a *user name*;
        # user names are logged on purpose, so those values are left out.
        text = _INJECTED_USER_VALUE.sub('user=""', text)
        for s in secrets:
            for form in _log_forms(s):
                assert form not in text, "password %r found in %s as %r" % (s, where, form)
        for blob in sasl_blobs:
            assert blob.decode() not in text, "SASL payload found in %s" % where
