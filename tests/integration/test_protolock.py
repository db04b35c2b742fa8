"""postern's protocol lock end to end: sticky (the first protocol an account
logs in with is the only one it may use, across restarts; `postern lock`
clear/set/list; expiry; simultaneous first logins), concurrent (IMAP and
POP3 never at once), static rules (config, protocols file, default, and a
reload), and that every lock granted survives a kill -9 of the store's
writer in the middle of 200 first logins.

Real clients (imaplib, poplib, hand-written IMAP/POP3 over TLS, from
distinct 127.0.0.x source addresses) -> a postern started per test with its
own policy group (the `start` fixture) -> one real Dovecot for this module
("pmx").  Users, policy groups and clients: harness/policy.py; fixtures:
conftest.py."""

import concurrent.futures
import os
import re
import signal
import ssl
import tempfile
import threading
import time

import harness
from harness import (IMAP_AUTH_FAILED, IMAP_SET_TO_POP3, IO_TIMEOUT, NO_TARPIT, POP3_AUTH_FAILED,
                     POP3_SET_TO_IMAP, ClosedError, RawImap, RawPop3, _line, imap_login, lock_cmd,
                     lock_list, lock_show, login, pop3_login, q, session_end_seen)
from harness.policy import (CONCURRENT_POLICY, CRASH_USERS, PASSWORDS, STICKY_POLICY, WRONG,
                            imaplib_client, poplib_client, restart, static_policy)


# ---------------------------------------------------------------------------
# sticky
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
# concurrent
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
# static
# ---------------------------------------------------------------------------


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
# crash safety of the lock store
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
