"""postern's policies end to end: the protocol lock (sticky, concurrent,
static) and its admin commands, crash safety of the lock store, connection
and session limits, failed-login throttling with its tarpit, address ACLs,
and `postern -t` on policy configs.

Real clients (imaplib, poplib, hand-written IMAP/POP3 over TLS, from
distinct 127.0.0.x source addresses) -> a postern started per test with its
own policy group -> one real Dovecot for this module."""

import concurrent.futures
import imaplib
import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time

import pytest

import harness
from harness import (IMAP_ACL_BYE, IMAP_AUTH_FAILED, IMAP_SET_TO_POP3, IMAP_THROTTLED,
                     IMAP_TOO_MANY_CONNS, IMAP_TOO_MANY_SESSIONS, IO_TIMEOUT, LOGIN_PASSWORDS,
                     NO_TARPIT, POP3_ACL_ERR, POP3_AUTH_FAILED, POP3_IN_USE, POP3_SET_TO_IMAP,
                     POP3_THROTTLED, POP3_TOO_MANY_CONNS, ClosedError, Dovecot, Postern,
                     RawImap, RawPop3, _line, imap_login, lock_cmd, lock_list, lock_show,
                     login, pop3_login, q, session_end_seen)

HOST = "127.0.0.1"

# ---------------------------------------------------------------------------
# users (all on the module's Dovecot, "pmx")
# ---------------------------------------------------------------------------

def _pw(user):
    return "pw-" + user.split("@")[0] + "-7"


STICKY_USERS = ["stella@sticky.test", "sam@sticky.test", "sid@sticky.test",
                "sue@sticky.test", "saul@sticky.test"]
CONC_USERS = ["cora@conc.test", "cole@conc.test"]
# static rules (see STATIC_POLICY / STATIC_FILE)
STATIC_USERS = ["pia@popdom.test", "vip@popdom.test", "ian@imapdom.test",
                "fiona@plain.test", "fil@filedom.test", "both@filedom.test",
                "otto@override.test", "uma@plain.test"]
LIMIT_USERS = ["lim@limits.test", "lina@limits.test"]
THROTTLE_USERS = ["alice@example.org", "bob@example.org", "tina@example.org",
                  "tom@example.org", "spray1@example.org", "spray2@example.org",
                  "spray3@example.org", "spray4@example.org", "spray5@example.org"]
ACL_USERS = ["acl@example.org"]
CRASH_USERS = ["c%03d@crash.test" % i for i in range(200)]

ALL_USERS = (STICKY_USERS + CONC_USERS + STATIC_USERS + LIMIT_USERS + THROTTLE_USERS
             + ACL_USERS + CRASH_USERS)
PASSWORDS = {u: _pw(u) for u in ALL_USERS}
LOGIN_PASSWORDS.update(PASSWORDS)  # imap_login() and pop3_login() look them up
WRONG = "not-the-password-%d"

ROUTES = [{"default": True, "backend": "pmx"}]

# ---------------------------------------------------------------------------
# policy groups (one setting a line: `postern -t` errors name the line)
# ---------------------------------------------------------------------------

STICKY_POLICY = ('policy = {\n'
                 '  protocol_lock = "sticky";\n'
                 '  lock_expire = "90d";\n'
                 + NO_TARPIT +
                 '};')

CONCURRENT_POLICY = ('policy = {\n'
                     '  protocol_lock = "concurrent";\n'
                     + NO_TARPIT +
                     '};')

# protocols_file: "@override.test imap" is overridden by the config's rule.
STATIC_FILE = """\
# postern protocols map for the integration tests
fiona@plain.test pop3
@filedom.test imap
both@filedom.test imap,pop3

@override.test imap
"""


def static_policy(mode, map_path, default=("imap",)):
    return ('policy = {\n'
            '  protocol_lock = "%s";\n'
            '  protocols = (\n'
            '    { domain = "popdom.test"; allow = ["pop3"]; },\n'
            '    { user = "vip@popdom.test"; allow = ["imap"]; },\n'
            '    { domain = "imapdom.test"; allow = ["imap"]; },\n'
            '    { domain = "override.test"; allow = ["pop3"]; }\n'
            '  );\n'
            '  protocols_file = %s;\n'
            '  protocols_default = [ %s ];\n'
            % (mode, harness._q(map_path), ", ".join('"%s"' % d for d in default))
            + NO_TARPIT +
            '};')


def limits_policy(max_conn=0, max_sess=0):
    return ('policy = {\n'
            '  max_connections_per_ip = %d;\n'
            '  max_sessions_per_user = %d;\n' % (max_conn, max_sess)
            + NO_TARPIT +
            '};')


def throttle_policy(ip_user_limit=3, ip_limit=20, window="5m", delay_base="200ms",
                    delay_max="1s"):
    return ('policy = {\n'
            '  throttle = {\n'
            '    ip_user_limit = %d;\n'
            '    ip_limit = %d;\n'
            '    window = "%s";\n'
            '    delay_base = "%s";\n'
            '    delay_max = "%s";\n'
            '  };\n'
            '};' % (ip_user_limit, ip_limit, window, delay_base, delay_max))


def acl_policy(allow=None, deny=None):
    out = ['policy = {']
    if allow is not None:
        out.append('  allow = [ %s ];' % ", ".join(harness._q(a) for a in allow))
    if deny is not None:
        out.append('  deny = [ %s ];' % ", ".join(harness._q(a) for a in deny))
    out.append(NO_TARPIT.rstrip("\n"))
    out.append('};')
    return "\n".join(out)


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pmx(run_dir):
    d = Dovecot("pmx", PASSWORDS, messages=1, parent_dir=run_dir)
    d.start()
    yield d
    d.cleanup()


@pytest.fixture
def state_dir(run_dir):
    d = tempfile.mkdtemp(prefix="pit-state-", dir=run_dir)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def start(certs, pmx, postern_registry, run_dir):
    """start(policy, state=None, **Postern kwargs): a postern in front of
    pmx with that policy group (and `state = "lmdb:DIR"` when state is
    given).  Each is stopped after the test; one that exited on its own
    (not killed by the test: p.killed_by_test) fails the test."""
    made = []

    def make(policy, state=None, extra="", **kw):
        if state is not None:
            extra = "state = %s;\n%s" % (harness._q("lmdb:" + state), extra)
        p = Postern(certs, [pmx], ROUTES, policy=policy, extra=extra, parent_dir=run_dir,
                    **kw)
        p.killed_by_test = False
        postern_registry.append(p)
        made.append(p)
        return p.start()

    yield make
    died = []
    for p in made:
        if p.proc is not None and not p.running() and not p.killed_by_test \
                and p.proc.returncode not in (0, -signal.SIGTERM):
            died.append("postern (config %s) exited with %s; log tail:\n%s"
                        % (p.conf_path, p.proc.returncode, harness._tail(p.log(), 40)))
    for p in made:
        p.cleanup()
    if died:
        pytest.fail("\n".join(died))


# ---------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------


class IMAP4_SSL_From(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS, from a chosen local address."""

    def __init__(self, host, port, source=None, **kw):
        self._source = source
        super().__init__(host, port, **kw)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source
                                        else None)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


class POP3_SSL_From(poplib.POP3_SSL):
    """poplib over implicit TLS, from a chosen local address."""

    def __init__(self, host, port, source=None, **kw):
        self._source = source
        super().__init__(host, port, **kw)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source
                                        else None)
        return self.context.wrap_socket(sock, server_hostname=self.host)


def imaplib_client(p, ca, source=None):
    return IMAP4_SSL_From(HOST, p.imap_port, source=source,
                          ssl_context=ssl.create_default_context(cafile=ca), timeout=IO_TIMEOUT)


def poplib_client(p, ca, source=None):
    return POP3_SSL_From(HOST, p.pop3_port, source=source,
                         context=ssl.create_default_context(cafile=ca), timeout=IO_TIMEOUT)


def refused_at_connect(port, ca, proto, source=None):
    """Connect (TLS) and return (first line, the rest until the close)."""
    cls = RawImap if proto == "imap" else RawPop3
    c = cls(port, ca, source=source, timeout=IO_TIMEOUT)
    try:
        rest = c.read_until_closed(timeout=IO_TIMEOUT)
        return _line(c.greeting), rest
    finally:
        c.close()


# ---------------------------------------------------------------------------
# logs and the lock admin commands
# ---------------------------------------------------------------------------


def restart(start, p, policy, state):
    """Stop p and start a new postern with the same policy and state store
    (and the same ports)."""
    p.stop()
    return start(policy, state=state, imap_port=p.imap_port, pop3_port=p.pop3_port)


# ---------------------------------------------------------------------------
# 1. sticky
# ---------------------------------------------------------------------------


def test_sticky_first_imap_login_locks_the_account_pop3_is_refused_after_the_password_and_survives_a_restart(
        start, ca, pmx, state_dir):
    user = "stella@sticky.test"
    p = start(STICKY_POLICY, state=state_dir)

    m = imaplib_client(p, ca)
    try:
        typ, _ = m.login(user, PASSWORDS[user])
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK" and data == [b"1"], data
        m.logout()
    finally:
        try:
            m.shutdown()
        except OSError:
            pass
    assert p.wait_log(r'event=lock\.create\b[^\n]*user="%s" proto=imap' % re.escape(user))

    # POP3 with the right password: refused with the reason, and the backend
    # session that the password opened is logged out again.
    since = pmx.log_size()
    files_before = pmx.message_files(user)
    s = pop3_login(p, ca, user)
    assert s.line == POP3_SET_TO_IMAP, s
    assert pmx.wait_log(r"pop3-login: Info: Login: user=<%s>" % re.escape(user), since=since), \
        "the backend did not see the POP3 login:\n" + pmx.log()[since:]
    assert pmx.wait_log(r"pop3\(%s\)[^\n]*Disconnected" % re.escape(user), since=since), \
        "the refused POP3 backend session was not ended:\n" + pmx.log()[since:]
    assert pmx.message_files(user) == files_before
    assert re.search(r'event=policy\.deny\b[^\n]*verdict=protocol reason=sticky_lock',
                     p.log()), harness._tail(p.log())

    # a wrong POP3 password reveals nothing
    s = pop3_login(p, ca, user, WRONG % 1)
    assert s.line == POP3_AUTH_FAILED, s
    # the same account spelt in other case (the backend folds it) is locked too
    s = pop3_login(p, ca, "Stella@STICKY.Test", PASSWORDS[user])
    assert s.line == POP3_SET_TO_IMAP, s
    # IMAP still works
    assert imap_login(p, ca, user).ok

    # the lock is on disk: a new postern on the same store still refuses
    p = restart(start, p, STICKY_POLICY, state_dir)
    s = pop3_login(p, ca, user)
    assert s.line == POP3_SET_TO_IMAP, s
    assert imap_login(p, ca, user).ok
    proto, line = lock_show(p, user)
    assert proto == "imap", line
    assert " origin=login " in line, line


def test_sticky_lock_clear_lets_the_other_protocol_in_and_locks_the_account_to_it(
        start, ca, pmx, state_dir):
    user = "sam@sticky.test"
    p = start(STICKY_POLICY, state=state_dir)
    assert imap_login(p, ca, user).ok
    assert pop3_login(p, ca, user).line == POP3_SET_TO_IMAP

    rc, out, err = lock_cmd(p, "clear", user)  # while the daemon runs
    assert rc == 0, out + err
    assert 'user="%s" lock=none' % user in out, out + err
    assert lock_show(p, user)[0] == "none"

    # the next login decides again: POP3 now, and IMAP is refused
    pp = poplib_client(p, ca)
    try:
        pp.user(user)
        assert pp.pass_(PASSWORDS[user]).startswith(b"+OK")
        assert pp.stat()[0] == 1
        pp.quit()
    finally:
        pp.close()
    since = pmx.log_size()
    s = imap_login(p, ca, user)
    assert s.line == IMAP_SET_TO_POP3, s
    assert pmx.wait_log(r"imap-login: Info: Login: user=<%s>" % re.escape(user), since=since), \
        "the backend did not see the IMAP login:\n" + pmx.log()[since:]
    assert pmx.wait_log(r"imap\(%s\)[^\n]*(Logged out|Disconnected)" % re.escape(user),
                        since=since), \
        "the refused IMAP backend session was not ended:\n" + pmx.log()[since:]
    s = imap_login(p, ca, user, WRONG % 2)
    assert s.line == IMAP_AUTH_FAILED, s
    # the same answers by SASL PLAIN (IMAP AUTHENTICATE, POP3 AUTH)
    with RawImap(p.imap_port, ca) as c:
        line, _ = c.command("a1", b"AUTHENTICATE PLAIN " + harness.sasl_plain(user, PASSWORDS[user]))
        assert _line(line) == IMAP_SET_TO_POP3, c.dump()
        line, _ = c.command("a2", b"AUTHENTICATE PLAIN " + harness.sasl_plain(user, WRONG % 2))
        assert _line(line) == IMAP_AUTH_FAILED.replace("a1", "a2"), c.dump()
    with RawPop3(p.pop3_port, ca) as c:
        line = c.command(b"AUTH PLAIN " + harness.sasl_plain(user, PASSWORDS[user]))
        assert line.startswith(b"+OK"), c.dump()
    assert lock_show(p, user)[0] == "pop3"


def test_sticky_lock_set_and_list_are_obeyed_by_the_running_daemon(start, ca, pmx, state_dir):
    a, b, c = "sid@sticky.test", "sue@sticky.test", "saul@sticky.test"
    p = start(STICKY_POLICY, state=state_dir)
    assert imap_login(p, ca, a).ok      # a: imap by login

    # b: set to pop3 by the admin before its first login
    rc, out, err = lock_cmd(p, "set", b, "pop3")
    assert rc == 0, out + err
    assert re.search(r'^user="%s" lock=pop3 origin=admin ' % re.escape(b), out, re.M), out
    assert imap_login(p, ca, b).line == IMAP_SET_TO_POP3
    assert pop3_login(p, ca, b).ok

    # a: moved from imap to pop3 by the admin
    rc, out, err = lock_cmd(p, "set", a, "pop3")
    assert rc == 0, out + err
    assert imap_login(p, ca, a).line == IMAP_SET_TO_POP3
    assert pop3_login(p, ca, a).ok

    # a bad protocol is a usage error and changes nothing
    rc, out, err = lock_cmd(p, "set", a, "smtp")
    assert rc == 2, (rc, out, err)
    assert lock_show(p, a)[0] == "pop3"

    # c: never logged in, no lock
    assert lock_show(p, c)[0] == "none"
    assert lock_list(p) == {a: "pop3", b: "pop3"}


def test_sticky_lock_expires_after_lock_expire_unused_and_each_login_keeps_it_alive(
        start, ca, pmx, state_dir):
    user = "saul@sticky.test"
    policy = STICKY_POLICY.replace('lock_expire = "90d"', 'lock_expire = "3s"')
    p = start(policy, state=state_dir)
    t0 = time.monotonic()
    assert imap_login(p, ca, user).ok
    time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
    t1 = time.monotonic()
    assert imap_login(p, ca, user).ok              # used again: refreshed
    time.sleep(max(0.0, t0 + 3.6 - time.monotonic()))
    # 3.6 s after the first login, but only ~1.6 s after the last one
    s = pop3_login(p, ca, user)
    assert s.line == POP3_SET_TO_IMAP, ("the lock lapsed although it was used %.1fs ago: %s"
                                        % (time.monotonic() - t1, s))
    time.sleep(max(0.0, t1 + 3.6 - time.monotonic()))
    proto, line = lock_show(p, user)
    assert proto == "imap" and "expired=yes" in line, line
    # unused for longer than lock_expire: the next login decides anew
    assert pop3_login(p, ca, user).ok
    assert p.wait_log(r'event=lock\.create\b[^\n]*user="%s" proto=pop3 replaced=expired'
                      % re.escape(user)), harness._tail(p.log())
    assert imap_login(p, ca, user).line == IMAP_SET_TO_POP3
    assert lock_show(p, user)[0] == "pop3"


def test_lock_commands_need_a_state_store_and_valid_arguments(start, ca, pmx, state_dir):
    p = start(STICKY_POLICY, state=state_dir)
    for args in (["show"], ["set", "x@y.test"], ["set", "x@y.test", "smtp"], ["frob", "x"],
                 ["list", "extra"]):
        rc, out, err = lock_cmd(p, *args)
        assert rc == 2, (args, rc, out, err)
        assert "usage" in err or "protocol" in err, (args, err)
    q2 = start(CONCURRENT_POLICY)  # no state
    rc, out, err = lock_cmd(q2, "show", "x@y.test")
    assert rc == 1 and "no state store" in err, (rc, out, err)


def test_a_login_refused_by_the_lock_leaves_the_connection_usable_for_another_account(
        start, ca, pmx, state_dir):
    locked, other = "sue@sticky.test", "sid@sticky.test"
    p = start(STICKY_POLICY, state=state_dir)
    assert lock_cmd(p, "set", locked, "pop3")[0] == 0
    assert lock_cmd(p, "set", other, "imap")[0] == 0
    with RawImap(p.imap_port, ca) as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (q(locked), q(PASSWORDS[locked])))
        assert _line(line) == IMAP_SET_TO_POP3, c.dump()
        line, _ = c.command("a2", "LOGIN %s %s" % (q(other), q(PASSWORDS[other])))
        assert line.startswith(b"a2 OK"), c.dump()
        line, lines = c.command("a3", "SELECT INBOX")
        assert line.startswith(b"a3 OK") and b"* 1 EXISTS\r\n" in lines, c.dump()
        line, lines = c.command("a4", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (TO)])")
        assert line.startswith(b"a4 OK") and other.encode() in b"".join(lines), c.dump()
    with RawPop3(p.pop3_port, ca) as c:
        assert c.command("USER " + other).startswith(b"+OK"), c.dump()
        assert _line(c.command("PASS " + PASSWORDS[other])) == POP3_SET_TO_IMAP, c.dump()
        assert c.command("USER " + locked).startswith(b"+OK"), c.dump()
        assert c.command("PASS " + PASSWORDS[locked]).startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK 1 "), c.dump()


def _race(p, ca, user, nper, hold):
    """nper IMAP and nper POP3 logins of user, released together; returns
    the Sessions (the successful ones still open when hold)."""
    barrier = threading.Barrier(2 * nper)

    def one(proto):
        try:
            barrier.wait(timeout=IO_TIMEOUT)
        except threading.BrokenBarrierError:
            pass
        return proto, login(proto, p, ca, user, keep=hold)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2 * nper) as ex:
        return list(ex.map(one, ["imap", "pop3"] * nper))


def test_simultaneous_first_logins_over_both_protocols_lock_the_account_to_exactly_one(
        start, ca, pmx, state_dir):
    p = start(STICKY_POLICY, state=state_dir)
    users = CRASH_USERS[100:112]
    bad = []
    for user in users:
        res = _race(p, ca, user, 4, hold=False)
        won = {proto for proto, s in res if s.ok}
        if len(won) != 1:
            bad.append("%s: logged in over %s: %s" % (user, sorted(won), res))
            continue
        w = won.pop()
        refusal = POP3_SET_TO_IMAP if w == "imap" else IMAP_SET_TO_POP3
        for proto, s in res:
            if proto != w and s.line != refusal:
                bad.append("%s: %s got %r" % (user, proto, s.line))
        proto, line = lock_show(p, user)
        if proto != w:
            bad.append("%s: won by %s but locked to %s" % (user, w, line))
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------------------
# 2. concurrent
# ---------------------------------------------------------------------------


def test_concurrent_lock_simultaneous_imap_and_pop3_logins_never_both_get_in(start, ca, pmx):
    user = "cole@conc.test"
    p = start(CONCURRENT_POLICY)
    bad = []
    for rnd in range(5):
        since = p.log_size()
        res = _race(p, ca, user, 4, hold=True)
        try:
            won = {proto for proto, s in res if s.ok}
            if len(won) != 1:
                bad.append("round %d: in over %s: %s" % (rnd, sorted(won), res))
            for proto, s in res:
                if not s.ok and s.line not in (IMAP_SET_TO_POP3, POP3_SET_TO_IMAP):
                    bad.append("round %d: %s got %r" % (rnd, proto, s.line))
        finally:
            for _, s in res:
                s.close()
        # every one of the 8 connections has ended before the next round
        deadline = time.monotonic() + 5
        rx = re.compile(r'event=session\.end\b[^\n]*\buser="%s"' % re.escape(user))
        while len(rx.findall(p.log()[since:])) < len(res) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(rx.findall(p.log()[since:])) == len(res), harness._tail(p.log())
    assert not bad, "\n".join(bad)


def test_concurrent_pop3_is_refused_while_an_imap_session_is_open_and_allowed_after_logout(
        start, ca, pmx):
    user = "cora@conc.test"
    p = start(CONCURRENT_POLICY)
    m = imaplib_client(p, ca)
    try:
        assert m.login(user, PASSWORDS[user])[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
        s = pop3_login(p, ca, user)
        assert s.line == POP3_SET_TO_IMAP, s
        assert re.search(r'event=policy\.deny\b[^\n]*verdict=protocol '
                         r'reason=concurrent_other_protocol', p.log()), harness._tail(p.log())
        # a second IMAP session is fine
        assert imap_login(p, ca, user).ok
        since = p.log_size()
        assert m.logout()[0] == "BYE"
    finally:
        try:
            m.shutdown()
        except OSError:
            pass
    assert session_end_seen(p, "imap", user, since), harness._tail(p.log())
    pp = poplib_client(p, ca)
    try:
        pp.user(user)
        assert pp.pass_(PASSWORDS[user]).startswith(b"+OK")
        assert pp.stat()[0] == 1
        # and now the other way round: IMAP waits for the POP3 session
        s = imap_login(p, ca, user)
        assert s.line == IMAP_SET_TO_POP3, s
        s = imap_login(p, ca, user, WRONG % 3)
        assert s.line == IMAP_AUTH_FAILED, s
        since = p.log_size()
        pp.quit()
    finally:
        pp.close()
    assert session_end_seen(p, "pop3", user, since), harness._tail(p.log())
    since = p.log_size()
    assert imap_login(p, ca, user).ok
    # the refused attempts left no session counted: once that IMAP session
    # has ended, POP3 is let in again
    assert session_end_seen(p, "imap", user, since), harness._tail(p.log())
    assert pop3_login(p, ca, user).ok


# ---------------------------------------------------------------------------
# 3. static
# ---------------------------------------------------------------------------


@pytest.fixture
def map_file(run_dir):
    fd, path = tempfile.mkstemp(prefix="pit-protocols-", dir=run_dir)
    with os.fdopen(fd, "w") as f:
        f.write(STATIC_FILE)
    os.chmod(path, 0o644)
    yield path
    os.unlink(path)


# user: (imap allowed, pop3 allowed), under static_policy(default=["imap"])
STATIC_EXPECT = {
    "pia@popdom.test": (False, True),      # domain rule
    "vip@popdom.test": (True, False),      # user rule beats its domain's rule
    "ian@imapdom.test": (True, False),     # domain rule
    "fiona@plain.test": (False, True),     # protocols_file user line
    "fil@filedom.test": (True, False),     # protocols_file @domain line
    "both@filedom.test": (True, True),     # protocols_file "imap,pop3" user line
    "otto@override.test": (False, True),   # config rule beats the file's
    "uma@plain.test": (True, False),       # no rule: protocols_default
}


def test_static_rules_per_domain_per_user_from_the_file_and_the_default(start, ca, pmx,
                                                                          map_file):
    p = start(static_policy("static", map_file, default=["imap"]))
    got = {}
    for user in STATIC_EXPECT:
        i = imap_login(p, ca, user)
        o = pop3_login(p, ca, user)
        got[user] = (i, o)
    bad = []
    for user, (imap_ok, pop3_ok) in STATIC_EXPECT.items():
        i, o = got[user]
        want_i = "a1 OK" if imap_ok else IMAP_SET_TO_POP3
        want_o = "+OK" if pop3_ok else POP3_SET_TO_IMAP
        if not (i.line.startswith(want_i) if imap_ok else i.line == want_i):
            bad.append("%s IMAP: want %r, got %r" % (user, want_i, i.line))
        if not (o.line.startswith(want_o) if pop3_ok else o.line == want_o):
            bad.append("%s POP3: want %r, got %r" % (user, want_o, o.line))
    assert not bad, "\n".join(bad)
    # a wrong password never shows the rule
    assert imap_login(p, ca, "pia@popdom.test", WRONG % 4).line == IMAP_AUTH_FAILED
    assert pop3_login(p, ca, "uma@plain.test", WRONG % 5).line == POP3_AUTH_FAILED
    assert re.search(r'event=policy\.deny\b[^\n]*verdict=protocol reason=static_rule',
                     p.log()), harness._tail(p.log())


def test_static_rules_win_over_sticky_and_record_no_lock(start, ca, pmx, map_file, state_dir):
    p = start(static_policy("sticky", map_file, default=["imap", "pop3"]), state=state_dir)
    # a domain rule allowing only POP3: IMAP refused at the very first login
    s = imap_login(p, ca, "pia@popdom.test")
    assert s.line == IMAP_SET_TO_POP3, s
    assert pop3_login(p, ca, "pia@popdom.test").ok
    # a rule allowing both: both work, alternately, and nothing is locked
    for _ in range(2):
        assert imap_login(p, ca, "both@filedom.test").ok
        assert pop3_login(p, ca, "both@filedom.test").ok
    for user in ("pia@popdom.test", "both@filedom.test"):
        proto, line = lock_show(p, user)
        assert proto == "none", line
    assert "static=pop3" in lock_show(p, "pia@popdom.test")[1]
    assert "static=imap,pop3" in lock_show(p, "both@filedom.test")[1]
    # an account without a rule is sticky as usual
    assert pop3_login(p, ca, "uma@plain.test").ok
    assert imap_login(p, ca, "uma@plain.test").line == IMAP_SET_TO_POP3
    assert lock_list(p) == {"uma@plain.test": "pop3"}
    # an admin lock does not override a static rule either
    rc, out, err = lock_cmd(p, "set", "pia@popdom.test", "imap")
    assert rc == 0, out + err
    assert imap_login(p, ca, "pia@popdom.test").line == IMAP_SET_TO_POP3
    assert pop3_login(p, ca, "pia@popdom.test").ok


def test_a_reload_rereads_the_protocols_file_and_a_broken_one_keeps_the_old_rules(
        start, ca, pmx, run_dir):
    fd, path = tempfile.mkstemp(prefix="pit-protocols-", dir=run_dir)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("fiona@plain.test pop3\n")
        os.chmod(path, 0o644)
        p = start(static_policy("static", path, default=["imap", "pop3"]))
        assert imap_login(p, ca, "fiona@plain.test").line == IMAP_SET_TO_POP3
        assert imap_login(p, ca, "uma@plain.test").ok

        with open(path + ".new", "w") as f:
            f.write("fiona@plain.test imap\n@plain.test pop3\n")
        os.replace(path + ".new", path)
        result, text = p.reload()
        assert result == "ok", text
        assert imap_login(p, ca, "fiona@plain.test").ok
        assert pop3_login(p, ca, "fiona@plain.test").line == POP3_SET_TO_IMAP
        assert imap_login(p, ca, "uma@plain.test").line == IMAP_SET_TO_POP3

        with open(path + ".new", "w") as f:
            f.write("fiona@plain.test pop3\numa@plain.test smtp\n")
        os.replace(path + ".new", path)
        result, text = p.reload()
        assert result == "failed", text
        assert "%s:2:" % path in text, text
        # the rules of the last good reload stay
        assert imap_login(p, ca, "fiona@plain.test").ok
        assert imap_login(p, ca, "uma@plain.test").line == IMAP_SET_TO_POP3
    finally:
        os.unlink(path)


def test_lock_refusals_are_not_counted_as_failed_logins(start, ca, pmx, state_dir):
    user = "sam@sticky.test"
    policy = STICKY_POLICY.replace(NO_TARPIT, '  throttle = { ip_user_limit = 2; ip_limit = 100; '
                                              'delay_base = "0"; delay_max = "0"; };\n')
    assert policy != STICKY_POLICY
    p = start(policy, state=state_dir)
    assert imap_login(p, ca, user).ok
    for _ in range(4):
        s = pop3_login(p, ca, user)
        assert s.line == POP3_SET_TO_IMAP, s
    # one wrong password, then the refusal again (the right password clears)
    assert pop3_login(p, ca, user, WRONG % 1).line == POP3_AUTH_FAILED
    assert pop3_login(p, ca, user).line == POP3_SET_TO_IMAP
    assert pop3_login(p, ca, user, WRONG % 2).line == POP3_AUTH_FAILED
    assert pop3_login(p, ca, user).line == POP3_SET_TO_IMAP
    assert imap_login(p, ca, user).ok


# ---------------------------------------------------------------------------
# 4. crash safety of the lock store
# ---------------------------------------------------------------------------

KILL_AFTER_OKS = 70


def test_every_login_that_got_ok_has_its_lock_after_kill_9_in_the_middle_of_200_first_logins(
        start, ca, pmx, state_dir):
    p = start(STICKY_POLICY, state=state_dir)
    pid = p.proc.pid
    oks = {}                # user -> protocol it was told OK over
    mu = threading.Lock()
    killed = threading.Event()
    errors = []

    def one(i):
        user = CRASH_USERS[i]
        proto = "imap" if i % 2 == 0 else "pop3"
        try:
            if proto == "imap":
                c = RawImap(p.imap_port, ca, timeout=IO_TIMEOUT)
                try:
                    c.send("a1 LOGIN %s %s\r\n" % (q(user), q(PASSWORDS[user])))
                    line, _ = c.read_response("a1")
                finally:
                    c.close()
                ok = line.startswith(b"a1 OK")
            else:
                c = RawPop3(p.pop3_port, ca, timeout=IO_TIMEOUT)
                try:
                    c.send("USER %s\r\nPASS %s\r\n" % (user, PASSWORDS[user]))
                    assert c.readline().startswith(b"+OK")
                    line = c.readline()
                finally:
                    c.close()
                ok = line.startswith(b"+OK")
        except (OSError, ClosedError, AssertionError, ssl.SSLError):
            return  # cut off by the kill (or refused): no promise was made
        if not ok:
            with mu:
                errors.append("%s %s: %r" % (user, proto, line))
            return
        with mu:
            oks[user] = proto
            n = len(oks)
        if n >= KILL_AFTER_OKS and not killed.is_set():
            killed.set()
            p.killed_by_test = True
            os.kill(pid, signal.SIGKILL)  # this PID only

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        list(ex.map(one, range(len(CRASH_USERS))))
    assert killed.is_set(), "only %d logins got OK; errors: %s" % (len(oks), errors[:5])
    p.proc.wait(timeout=10)
    assert p.proc.returncode == -signal.SIGKILL
    assert not errors, "logins refused before the kill:\n" + "\n".join(errors[:10])
    assert KILL_AFTER_OKS <= len(oks) < len(CRASH_USERS), len(oks)

    locks = lock_list(p)  # the store as the killed daemon left it
    missing = {u: (proto, locks.get(u)) for u, proto in oks.items() if locks.get(u) != proto}
    assert not missing, ("%d of %d users that were told OK have no (or the wrong) lock after "
                         "kill -9: %s" % (len(missing), len(oks), sorted(missing.items())[:20]))
    # nobody got a lock for a protocol they did not use
    for u, proto in locks.items():
        i = CRASH_USERS.index(u)
        assert proto == ("imap" if i % 2 == 0 else "pop3"), (u, proto)

    # and a new daemon on that store enforces them
    q2 = start(STICKY_POLICY, state=state_dir)
    for u in sorted(oks)[:6]:
        other = "pop3" if oks[u] == "imap" else "imap"
        s = login(other, q2, ca, u)
        assert s.line == (POP3_SET_TO_IMAP if other == "pop3" else IMAP_SET_TO_POP3), (u, s)
        assert login(oks[u], q2, ca, u).ok


# ---------------------------------------------------------------------------
# 5. per-address connection limit and per-user session limit
# ---------------------------------------------------------------------------


def test_the_fourth_connection_from_one_address_gets_a_refusal_after_tls_another_address_works(
        start, ca, pmx):
    p = start(limits_policy(max_conn=3))
    held = []
    try:
        held.append(RawImap(p.imap_port, ca))
        held.append(RawImap(p.imap_port, ca))
        held.append(RawPop3(p.pop3_port, ca))
        for c in held:
            assert c.greeting.startswith((b"* OK", b"+OK")), c.dump()

        first, rest = refused_at_connect(p.imap_port, ca, "imap")
        assert first == IMAP_TOO_MANY_CONNS and rest == b"", (first, rest)
        first, rest = refused_at_connect(p.pop3_port, ca, "pop3")
        assert first == POP3_TOO_MANY_CONNS and rest == b"", (first, rest)
        assert re.search(r'event=policy\.deny\b[^\n]*client=127\.0\.0\.1[^\n]*verdict=limit '
                         r'reason=ip_connection_limit', p.log()), harness._tail(p.log())

        # another source address is not affected
        assert imap_login(p, ca, "lim@limits.test", source="127.0.0.2").ok
        assert pop3_login(p, ca, "lim@limits.test", source="127.0.0.2").ok

        # one of the three closes: a fourth from 127.0.0.1 is let in
        held.pop(0).close()
        deadline = time.monotonic() + 5
        while True:
            c = RawImap(p.imap_port, ca)
            if c.greeting.startswith(b"* OK"):
                held.append(c)
                break
            c.close()
            assert time.monotonic() < deadline, "the closed connection is still counted"
            time.sleep(0.1)
        line, _ = c.command("a1", "LOGIN %s %s" % (q("lim@limits.test"),
                                                   q(PASSWORDS["lim@limits.test"])))
        assert line.startswith(b"a1 OK"), c.dump()
        # and the limit holds again
        first, _ = refused_at_connect(p.imap_port, ca, "imap")
        assert first == IMAP_TOO_MANY_CONNS, first
    finally:
        for c in held:
            c.close()


def test_a_third_session_of_one_user_is_refused_and_allowed_after_one_logs_out(start, ca, pmx):
    user, other = "lim@limits.test", "lina@limits.test"
    p = start(limits_policy(max_sess=2))
    sessions = []
    try:
        sessions.append(imap_login(p, ca, user, keep=True))
        sessions.append(pop3_login(p, ca, user, keep=True))
        assert all(s.ok for s in sessions), sessions

        s = imap_login(p, ca, user)
        assert s.line == IMAP_TOO_MANY_SESSIONS, s
        s = pop3_login(p, ca, user)
        assert s.line == POP3_IN_USE, s
        assert re.search(r'event=policy\.deny\b[^\n]*verdict=limit reason=user_session_limit',
                         p.log()), harness._tail(p.log())
        # a wrong password is an ordinary failure, not a session-limit answer
        assert imap_login(p, ca, user, WRONG % 6).line == IMAP_AUTH_FAILED
        # other users are not affected
        assert imap_login(p, ca, other).ok

        # the IMAP session logs out: one place is free again
        since = p.log_size()
        line, _ = sessions[0].conn.command("a9", "LOGOUT")
        assert line.startswith(b"a9 OK"), line
        sessions[0].close()
        assert session_end_seen(p, "imap", user, since), harness._tail(p.log())
        s = imap_login(p, ca, user, keep=True)
        sessions.append(s)
        assert s.ok, s
        # two live again (pop3 + the new imap): refused again; the refused
        # attempts above were not counted; other spellings are the same user
        assert imap_login(p, ca, user).line == IMAP_TOO_MANY_SESSIONS
        assert pop3_login(p, ca, user).line == POP3_IN_USE
        assert imap_login(p, ca, "LIM@Limits.Test", PASSWORDS[user]).line == \
            IMAP_TOO_MANY_SESSIONS

        # a client that drops its connection without a word frees its place too
        since = p.log_size()
        sessions[1].close()
        assert session_end_seen(p, "pop3", user, since), harness._tail(p.log())
        s = pop3_login(p, ca, user, keep=True)
        sessions.append(s)
        assert s.ok, s
        assert pop3_login(p, ca, user).line == POP3_IN_USE
    finally:
        for s in sessions:
            s.close()


def test_a_reload_applies_new_limits_to_the_sessions_already_counted(start, ca, pmx):
    user = "lina@limits.test"
    p = start(limits_policy(max_sess=0))
    sessions = []
    try:
        for _ in range(3):
            sessions.append(imap_login(p, ca, user, keep=True))
        assert all(s.ok for s in sessions), sessions
        p.policy = limits_policy(max_sess=3)
        p.write_config()
        result, text = p.reload()
        assert result == "ok", text
        # the three live sessions counted before the reload fill the limit
        assert imap_login(p, ca, user).line == IMAP_TOO_MANY_SESSIONS
        # a reload that would need a state store it does not have is refused
        # and the running policy stays
        p.policy = STICKY_POLICY
        p.write_config()
        result, text = p.reload()
        assert result == "failed", text
        assert imap_login(p, ca, user).line == IMAP_TOO_MANY_SESSIONS
        since = p.log_size()
        sessions.pop().close()
        assert session_end_seen(p, "imap", user, since), harness._tail(p.log())
        s = imap_login(p, ca, user, keep=True)
        sessions.append(s)
        assert s.ok, s
    finally:
        for s in sessions:
            s.close()


# ---------------------------------------------------------------------------
# 6. failed-login throttling
# ---------------------------------------------------------------------------

ATTACKER, VICTIM_HOME = "127.0.0.2", "127.0.0.3"


def tarpit_of(p, s, since):
    """How long postern held a failed login's answer: the client's time
    from the password to the answer less the login's own time (ms= of its
    login.fail line; Dovecot itself answers a failure only on its next
    500 ms tick, so the client's time alone varies by up to 0.5 s)."""
    m = p.wait_log(r"event=login\.fail\b[^\n]*\bms=(\d+)", since=since)
    assert m, "no login.fail logged:\n" + harness._tail(p.log())
    return round(s.secs - int(m.group(1)) / 1000.0, 3)


def test_brute_force_from_one_address_is_tarpitted_then_throttled_while_the_user_logs_in_at_once_from_another(
        start, ca, pmx):
    user = "alice@example.org"
    p = start(throttle_policy(ip_user_limit=3, ip_limit=20, window="5m", delay_base="200ms",
                              delay_max="1s"))
    fails, tarpits = [], []
    for i in range(3):
        since = p.log_size()
        f = imap_login(p, ca, user, WRONG % i, source=ATTACKER)
        fails.append(f)
        tarpits.append(tarpit_of(p, f, since))
    assert [f.line for f in fails] == [IMAP_AUTH_FAILED] * 3, fails
    # the tarpit: 200 ms, 400 ms, 800 ms (delay_base doubling, under delay_max)
    for t, want in zip(tarpits, (0.2, 0.4, 0.8)):
        assert want * 0.9 <= t <= want + 0.3, \
            "tarpits %s, want about 0.2, 0.4, 0.8 s (answers %s)" % (tarpits, fails)
    assert fails[2].secs >= 0.8 * 0.9, fails

    # now even the right password is refused from there, after delay_max,
    # without the backend hearing of it; meanwhile the user logs in from
    # home at once
    since_pmx, since_p = pmx.log_size(), p.log_size()
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "s", imap_login(p, ca, user, source=ATTACKER)), daemon=True)
    t.start()
    time.sleep(0.2)  # the attacker's attempt is in its tarpit now
    home = imap_login(p, ca, user, source=VICTIM_HOME)
    t.join(IO_TIMEOUT + 5)
    assert home.ok, home
    assert home.secs < 0.5, "the real user was slowed down: %s" % home
    attack = box.get("s")
    assert attack is not None and attack.line == IMAP_THROTTLED, attack
    assert attack.secs >= 0.9, attack
    time.sleep(0.3)
    seen = pmx.log()[since_pmx:]
    assert len(re.findall(r"imap-login: Info: Login: user=<%s>" % re.escape(user), seen)) == 1, \
        "expected only the user's own login at the backend:\n" + seen
    assert "Password mismatch" not in seen, seen
    assert re.search(r'event=login\.fail\b[^\n]*client=%s[^\n]*user="%s"[^\n]*class=throttled'
                     % (re.escape(ATTACKER), re.escape(user)), p.log()[since_p:]), \
        harness._tail(p.log())

    # the user's success from home cleared nothing for the attacker's address
    s = imap_login(p, ca, user, source=ATTACKER)
    assert s.line == IMAP_THROTTLED, s
    # nor does spelling the user name another way
    s = imap_login(p, ca, "ALICE@Example.ORG", PASSWORDS[user], source=ATTACKER)
    assert s.line == IMAP_THROTTLED, s
    s = pop3_login(p, ca, user, source=ATTACKER)
    assert s.line == POP3_THROTTLED, s
    # other users from the attacker's address are only counted on the
    # address key (3 + 3 failures < ip_limit 20)
    assert imap_login(p, ca, "tom@example.org", source=ATTACKER).ok


def test_pop3_failed_logins_are_throttled_with_sys_temp(start, ca, pmx):
    user = "bob@example.org"
    p = start(throttle_policy(ip_user_limit=3, ip_limit=20, delay_base="100ms",
                              delay_max="500ms"))
    fails = [pop3_login(p, ca, user, WRONG % i, source="127.0.0.5") for i in range(3)]
    assert [f.line for f in fails] == [POP3_AUTH_FAILED] * 3, fails
    s = pop3_login(p, ca, user, source="127.0.0.5")
    assert s.line == POP3_THROTTLED, s
    assert s.secs >= 0.45, s
    assert imap_login(p, ca, user, source="127.0.0.5").line == IMAP_THROTTLED
    assert pop3_login(p, ca, user, source="127.0.0.6").ok


def test_a_successful_login_clears_its_address_and_user_key(start, ca, pmx):
    user, src = "tina@example.org", "127.0.0.4"
    p = start(throttle_policy(ip_user_limit=3, ip_limit=20, delay_base="50ms",
                              delay_max="200ms"))
    for i in range(2):
        assert imap_login(p, ca, user, WRONG % i, source=src).line == IMAP_AUTH_FAILED
    assert imap_login(p, ca, user, source=src).ok
    # counted from zero again: without the clear the 4th failure in the
    # window would be throttled here
    got = [imap_login(p, ca, user, WRONG % i, source=src).line for i in range(2, 5)]
    assert got == [IMAP_AUTH_FAILED] * 3, got
    # ... and now three since the success: throttled
    assert imap_login(p, ca, user, source=src).line == IMAP_THROTTLED


def test_many_users_from_one_address_hit_the_address_limit(start, ca, pmx):
    src = "127.0.0.7"
    p = start(throttle_policy(ip_user_limit=3, ip_limit=4, delay_base="0", delay_max="0"))
    for i, user in enumerate(["spray1@example.org", "spray2@example.org",
                              "spray3@example.org", "spray4@example.org"]):
        assert imap_login(p, ca, user, WRONG % i, source=src).line == IMAP_AUTH_FAILED
    # a fifth user, right password: the address is over its limit
    assert imap_login(p, ca, "spray5@example.org", source=src).line == IMAP_THROTTLED
    assert pop3_login(p, ca, "spray5@example.org", source=src).line == POP3_THROTTLED
    assert imap_login(p, ca, "spray5@example.org", source="127.0.0.8").ok


# ---------------------------------------------------------------------------
# 7. ACL
# ---------------------------------------------------------------------------


def test_a_denied_address_is_refused_after_tls_others_are_served(start, ca, pmx):
    p = start(acl_policy(deny=["127.0.0.2/32"]))
    first, rest = refused_at_connect(p.imap_port, ca, "imap", source="127.0.0.2")
    assert first == IMAP_ACL_BYE and rest == b"", (first, rest)
    first, rest = refused_at_connect(p.pop3_port, ca, "pop3", source="127.0.0.2")
    assert first == POP3_ACL_ERR and rest == b"", (first, rest)
    assert re.search(r'event=policy\.deny\b[^\n]*client=127\.0\.0\.2[^\n]*verdict=acl',
                     p.log()), harness._tail(p.log())
    assert imap_login(p, ca, "acl@example.org", source="127.0.0.1").ok
    assert pop3_login(p, ca, "acl@example.org", source="127.0.0.3").ok


def test_only_allowed_addresses_are_served(start, ca, pmx):
    p = start(acl_policy(allow=["127.0.0.1/32"]))
    first, rest = refused_at_connect(p.imap_port, ca, "imap", source="127.0.0.3")
    assert first == IMAP_ACL_BYE and rest == b"", (first, rest)
    first, rest = refused_at_connect(p.pop3_port, ca, "pop3", source="127.0.0.3")
    assert first == POP3_ACL_ERR and rest == b"", (first, rest)
    assert imap_login(p, ca, "acl@example.org", source="127.0.0.1").ok
    assert pop3_login(p, ca, "acl@example.org", source="127.0.0.1").ok


def test_deny_wins_over_allow(start, ca, pmx):
    p = start(acl_policy(allow=["127.0.0.0/8"], deny=["127.0.0.9/32"]))
    first, _ = refused_at_connect(p.imap_port, ca, "imap", source="127.0.0.9")
    assert first == IMAP_ACL_BYE, first
    assert imap_login(p, ca, "acl@example.org", source="127.0.0.10").ok


# ---------------------------------------------------------------------------
# 7b. behind a load balancer: the policies see the client of the PROXY header
# ---------------------------------------------------------------------------


def _pp(src, port):
    return b"PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (src.encode(), port)


def test_acl_limits_and_throttle_apply_to_the_client_address_from_the_proxy_header(
        start, ca, pmx):
    policy = ('policy = {\n'
              '  deny = [ "192.0.2.66/32" ];\n'
              '  max_connections_per_ip = 2;\n'
              '  throttle = { ip_user_limit = 2; ip_limit = 100; delay_base = "0"; '
              'delay_max = "0"; };\n'
              '};')
    lb = [{"protocol": "imap", "tls": "implicit", "proxy_protocol": True,
           "trusted": ["127.0.0.0/8"]},
          {"protocol": "pop3", "tls": "implicit", "proxy_protocol": True,
           "trusted": ["127.0.0.0/8"]}]
    p = start(policy, extra_listeners=lb)
    iport, pport = p.extra_listeners[0]["port"], p.extra_listeners[1]["port"]
    user = "acl@example.org"

    def via(port, src, proto="imap"):
        cls = RawImap if proto == "imap" else RawPop3
        return cls(port, ca, preamble=_pp(src, port))

    # the ACL: the denied client, though the load balancer's address is fine
    c = via(iport, "192.0.2.66")
    try:
        assert _line(c.greeting) == IMAP_ACL_BYE, c.dump()
    finally:
        c.close()
    c = via(pport, "192.0.2.66", "pop3")
    try:
        assert _line(c.greeting) == POP3_ACL_ERR, c.dump()
    finally:
        c.close()
    assert re.search(r'event=policy\.deny\b[^\n]*client=192\.0\.2\.66\b[^\n]*verdict=acl',
                     p.log()), harness._tail(p.log())

    # the per-address limit counts each client, not the load balancer
    held = []
    try:
        for _ in range(2):
            held.append(via(iport, "198.51.100.1"))
            assert held[-1].greeting.startswith(b"* OK"), held[-1].dump()
        c = via(iport, "198.51.100.1")
        try:
            assert _line(c.greeting) == IMAP_TOO_MANY_CONNS, c.dump()
        finally:
            c.close()
        for src in ("198.51.100.2", "198.51.100.3"):
            held.append(via(iport, src))
            assert held[-1].greeting.startswith(b"* OK"), held[-1].dump()
        assert imap_login(p, ca, user).ok  # direct, from 127.0.0.1
    finally:
        for c in held:
            c.close()

    # the throttle keys on the client too
    for i in range(2):
        with via(iport, "203.0.113.5") as c:
            line, _ = c.command("a1", "LOGIN %s %s" % (q(user), q(WRONG % i)))
            assert _line(line) == IMAP_AUTH_FAILED, c.dump()
    with via(iport, "203.0.113.5") as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (q(user), q(PASSWORDS[user])))
        assert _line(line) == IMAP_THROTTLED, c.dump()
    with via(iport, "203.0.113.6") as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (q(user), q(PASSWORDS[user])))
        assert line.startswith(b"a1 OK"), c.dump()


# ---------------------------------------------------------------------------
# 8. postern -t
# ---------------------------------------------------------------------------


def _config(certs, pmx, policy, state=None, extra=""):
    if state is not None:
        extra = "state = %s;\n%s" % (harness._q("lmdb:" + state), extra)
    return Postern(certs, [pmx], ROUTES, policy=policy, extra=extra).config_text()


def _check(tmp_path, text, name="p.conf"):
    path = tmp_path / name
    path.write_text(text)
    r = harness.run_postern("-t", "-c", str(path))
    return r.returncode, r.stdout + r.stderr, str(path)


def _line_of(text, needle):
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError("%r not in config" % needle)


def test_config_check_accepts_the_policy_configs_of_these_tests(certs, pmx, tmp_path, map_file,
                                                                 state_dir):
    configs = {
        "sticky": _config(certs, pmx, STICKY_POLICY, state=state_dir),
        "concurrent": _config(certs, pmx, CONCURRENT_POLICY),
        "static": _config(certs, pmx, static_policy("static", map_file)),
        "static-sticky": _config(certs, pmx, static_policy("sticky", map_file), state=state_dir),
        "limits": _config(certs, pmx, limits_policy(max_conn=3, max_sess=2)),
        "throttle": _config(certs, pmx, throttle_policy()),
        "acl": _config(certs, pmx, acl_policy(allow=["127.0.0.0/8"], deny=["127.0.0.9/32"])),
    }
    for name, text in configs.items():
        rc, out, _ = _check(tmp_path, text, name + ".conf")
        assert rc == 0, "%s config refused:\n%s\n--- config ---\n%s" % (name, out, text)


BAD_POLICIES = [
    # (what, policy text, the line the error must name, more config text)
    ("sticky without state", STICKY_POLICY, 'protocol_lock = "sticky"', ""),
    ("rules with protocol_lock off",
     'policy = {\n  protocol_lock = "off";\n'
     '  protocols = ( { domain = "x.test"; allow = ["pop3"]; } );\n};',
     "protocols = (", ""),
    ("an unknown protocol",
     'policy = {\n  protocol_lock = "static";\n'
     '  protocols_default = [ "imap", "smtp" ];\n};',
     "protocols_default", ""),
    ("an unknown lock mode", 'policy = {\n  protocol_lock = "sometimes";\n};',
     "protocol_lock", ""),
    ("delay_max not below timeouts.login",
     'policy = {\n  throttle = {\n    delay_base = "1s";\n    delay_max = "60s";\n  };\n};',
     'delay_max = "60s"', ""),
    ("a bad network", 'policy = {\n  deny = [ "127.0.0.1/33" ];\n};', "deny = [", ""),
    ("host bits beyond the prefix", 'policy = {\n  allow = [ "10.1.2.3/8" ];\n};',
     "allow = [", ""),
]


@pytest.mark.parametrize("what,policy,needle,extra", BAD_POLICIES,
                         ids=[b[0] for b in BAD_POLICIES])
def test_config_check_rejects_a_bad_policy_with_its_line_number(certs, pmx, tmp_path, what,
                                                                  policy, needle, extra):
    text = _config(certs, pmx, policy, extra=extra)
    rc, out, path = _check(tmp_path, text)
    assert rc == 1, "%s: accepted (exit %s):\n%s\n--- config ---\n%s" % (what, rc, out, text)
    n = _line_of(text, needle)
    assert "%s:%d:" % (path, n) in out, \
        "%s: no error for line %d:\n%s\n--- config ---\n%s" % (what, n, out, text)


def test_config_check_names_the_bad_line_of_a_protocols_file(certs, pmx, tmp_path):
    mp = tmp_path / "protocols.map"
    mp.write_text("good@x.test imap\nbad@x.test smtp\n@x.test imap pop3\n\n"
                  "good@x.test pop3\n")
    text = _config(certs, pmx, static_policy("static", str(mp)))
    rc, out, _ = _check(tmp_path, text)
    assert rc == 1, out
    for n in (2, 3, 5):  # bad protocol, text after the protocols, a duplicate
        assert "%s:%d:" % (mp, n) in out, "no error for line %d:\n%s" % (n, out)
    assert "%s:1:" % mp not in out and "%s:4:" % mp not in out, out
