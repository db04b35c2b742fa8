"""postern's per-address connection limit and per-user session limit (and a
reload applying new limits to sessions already counted), and failed-login
throttling: the tarpit, then refusal, per address and per address+user,
over IMAP and POP3, and a successful login clearing its keys.

Real clients (imaplib, poplib, hand-written IMAP/POP3 over TLS, from
distinct 127.0.0.x source addresses) -> a postern started per test with its
own policy group (the `start` fixture) -> one real Dovecot for this module
("pmx").  Users, policy groups and clients: harness/policy.py; fixtures:
conftest.py."""

import re
import threading
import time

import harness
from harness import (IMAP_AUTH_FAILED, IMAP_THROTTLED, IMAP_TOO_MANY_CONNS,
                     IMAP_TOO_MANY_SESSIONS, IO_TIMEOUT, POP3_AUTH_FAILED, POP3_IN_USE,
                     POP3_THROTTLED, POP3_TOO_MANY_CONNS, RawImap, RawPop3, imap_login,
                     pop3_login, q, session_end_seen)
from harness.policy import (PASSWORDS, STICKY_POLICY, WRONG, limits_policy, refused_at_connect,
                            throttle_policy)


# ---------------------------------------------------------------------------
# per-address connection limit and per-user session limit
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
# failed-login throttling
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
