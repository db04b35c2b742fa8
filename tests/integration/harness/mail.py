"""A user's mail read through a proxy, and which backend it came from: log
in (LOGIN with literals, so any password works; POP3 USER/PASS), FETCH or
RETR the first message, tell by its content which backend stored it (see
dovecot.make_message), and find a backend's own log line of the login.

The passwords are the session stack's (expect.PASSWORDS)."""

import imaplib
import poplib
import re

from .certs import client_context
from .clients import RawImap, RawPop3
from .expect import PASSWORDS
from .procs import IO_TIMEOUT

HOST = "127.0.0.1"


def imap_ssl(proxy, ca):
    return imaplib.IMAP4_SSL(HOST, proxy.imap_port, ssl_context=client_context(ca),
                             timeout=IO_TIMEOUT)


def pop3_ssl(proxy, ca):
    return poplib.POP3_SSL(HOST, proxy.pop3_port, context=client_context(ca), timeout=IO_TIMEOUT)


def raw_imap(proxy, ca):
    return RawImap(proxy.imap_port, ca)


def raw_pop3(proxy, ca):
    return RawPop3(proxy.pop3_port, ca)


def tagged(line, tag):
    """The status word of a tagged response line: OK, NO or BAD."""
    assert line.startswith(tag.encode() + b" "), line
    return line.split(b" ", 2)[1]


def literal_login(c, tag, user, password):
    """LOGIN with both arguments as synchronising literals, waiting for each
    continuation request.  Returns (tagged line, all lines)."""
    u = user.encode("utf-8")
    p = password.encode("utf-8")
    c.send(b"%s LOGIN {%d}\r\n" % (tag.encode(), len(u)))
    c.expect_continuation()
    c.send(u + b" {%d}\r\n" % len(p))
    c.expect_continuation()
    c.send(p + b"\r\n")
    return c.read_response(tag)


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


def imap_fetch_first(proxy, ca, user):
    """Log user in through the proxy (literals, so any password works),
    SELECT INBOX, FETCH 1, LOGOUT; returns the message bytes."""
    with raw_imap(proxy, ca) as c:
        line, _ = literal_login(c, "a1", user, PASSWORDS[user])
        assert tagged(line, "a1") == b"OK", c.dump()
        line, _ = c.command("a2", "SELECT INBOX")
        assert tagged(line, "a2") == b"OK", c.dump()
        body = fetch_body(c, "a3")
        c.command("a4", "LOGOUT")
        return body


def pop3_retr_first(proxy, ca, user):
    p = pop3_ssl(proxy, ca)
    try:
        p.user(user)
        p.pass_(PASSWORDS[user])
        _, lines, _ = p.retr(1)
        p.quit()
    finally:
        p.close()
    return b"\r\n".join(lines) + b"\r\n"


def backend_of(body, backends):
    """Which backend a fetched message came from, by its content."""
    names = [n for n in backends if b"backend=%s " % n.encode() in body]
    assert len(names) == 1, body
    return names[0]


def login_seen(dovecot, proto, user, since):
    return dovecot.wait_log(r"%s-login: Info: Login: user=<%s>" % (proto, re.escape(user)),
                            since=since)


def log_offsets(backends):
    return {n: b.log_size() for n, b in backends.items()}
