"""Logins as a policy test makes them: LOGIN or USER/PASS over a new raw
connection, timed from the password to the answer (Session), and the
`postern lock` admin commands read back as values.

imap_login() and pop3_login() take the password from LOGIN_PASSWORDS when
none is given; a test module adds its users' passwords there."""

import re
import time

from .clients import RawImap, RawPop3
from .postern import run_postern
from .procs import IO_TIMEOUT

# {user: password} for imap_login() and pop3_login() without a password.
LOGIN_PASSWORDS = {}


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line(b):
    return b.decode("utf-8", "replace").rstrip("\r\n")


class Session:
    """A login attempt's outcome: line (the answer, without CRLF), secs (from
    sending the password to the answer), conn (the open connection when
    keep=True and the login succeeded, else None)."""

    def __init__(self, line, secs, conn=None):
        self.line, self.secs, self.conn = line, secs, conn

    @property
    def ok(self):
        return self.line.startswith("a1 OK") or self.line.startswith("+OK")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __repr__(self):
        return "Session(%r, %.3fs)" % (self.line, self.secs)


def imap_login(p, ca, user, password=None, source=None, keep=False, timeout=IO_TIMEOUT):
    """LOGIN user over a new IMAP connection to p (from source).  Without
    keep the connection is logged out (if the login worked) and closed."""
    password = LOGIN_PASSWORDS[user] if password is None else password
    c = RawImap(p.imap_port, ca, source=source, timeout=timeout)
    try:
        assert c.greeting.startswith(b"* OK"), c.dump()
        t0 = time.monotonic()
        line, _ = c.command("a1", "LOGIN %s %s" % (q(user), q(password)))
        s = Session(_line(line), time.monotonic() - t0)
        if s.ok and keep:
            s.conn = c
            c = None
        elif s.ok:
            c.command("a9", "LOGOUT")
        return s
    finally:
        if c is not None:
            c.close()


def pop3_login(p, ca, user, password=None, source=None, keep=False, timeout=IO_TIMEOUT):
    """USER/PASS over a new POP3 connection to p (from source)."""
    password = LOGIN_PASSWORDS[user] if password is None else password
    c = RawPop3(p.pop3_port, ca, source=source, timeout=timeout)
    try:
        assert c.greeting.startswith(b"+OK"), c.dump()
        r = c.command("USER " + user)
        assert r.startswith(b"+OK"), c.dump()
        t0 = time.monotonic()
        line = c.command("PASS " + password)
        s = Session(_line(line), time.monotonic() - t0)
        if s.ok and keep:
            s.conn = c
            c = None
        elif s.ok:
            c.command("QUIT")
        return s
    finally:
        if c is not None:
            c.close()


def login(proto, *a, **kw):
    return (imap_login if proto == "imap" else pop3_login)(*a, **kw)


def lock_cmd(p, *args):
    r = run_postern("-c", p.conf_path, "lock", *args)
    return r.returncode, r.stdout, r.stderr


LOCK_LINE = re.compile(r'^user="((?:[^"\\]|\\.)*)" lock=(\w+)(.*)$', re.M)


def lock_show(p, user):
    """(protocol or "none", the whole line) from `lock show user`."""
    rc, out, err = lock_cmd(p, "show", user)
    assert rc == 0, "lock show %s: exit %s\n%s%s" % (user, rc, out, err)
    m = LOCK_LINE.search(out)
    assert m and m.group(1) == user, "unexpected `lock show` output: %r %r" % (out, err)
    return m.group(2), m.group(0)


def lock_list(p):
    """{user: protocol} from `lock list`."""
    rc, out, err = lock_cmd(p, "list")
    assert rc == 0, "lock list: exit %s\n%s%s" % (rc, out, err)
    locks = {}
    for line in out.splitlines():
        m = LOCK_LINE.match(line)
        assert m, "unexpected line in `lock list`: %r" % line
        locks[m.group(1)] = m.group(2)
    return locks


def session_end_seen(p, proto, user, since, timeout=5.0):
    return p.wait_log(r'event=session\.end\b[^\n]*\bproto=%s\b[^\n]*\buser="%s"'
                      % (proto, re.escape(user)), timeout=timeout, since=since)
