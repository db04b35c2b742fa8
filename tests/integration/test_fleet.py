"""A fleet: two or three postern processes share one real redis-server.

The live-session registry (the concurrent lock and max_sessions_per_user
count every proxy's sessions), heartbeats (a proxy killed with SIGKILL stops
counting within three), failed logins counted once for the fleet, Redis
stopping and coming back (state_unavailable local and refuse, state.recovered,
sessions registered again, sticky locks granted meanwhile written back), and
routes set with `postern route set` obeyed by every proxy.

The redis-server is the test's own (harness.RedisServer: a unix socket in
a temporary directory, a password), stopped by its PID."""

import os
import re
import signal
import time

import pytest

import harness
from harness import (IMAP_THROTTLED, IMAP_TOO_MANY_SESSIONS, IMAP_UNAVAILABLE,
                     LOGIN_PASSWORDS, NO_TARPIT, POP3_SET_TO_IMAP, TIMEOUT_SCALE, Dovecot,
                     Postern, RawImap, RedisServer, imap_login, pop3_login)

USERS = {"fay@fleet.test": "pw-fay-1", "finn@fleet.test": "pw-finn-2",
         "flo@fleet.test": "pw-flo-3", "fred@fleet.test": "pw-fred-4",
         "fox@fleet.test": "pw-fox-5"}
LOGIN_PASSWORDS.update(USERS)  # imap_login() and pop3_login() look passwords up there
HEARTBEAT_MS = 300
PREFIX = "pit-fleet2:"


def key(user, kind):
    """PREFIX{USER}:kind, the hash-tagged layout (store_redis.c)."""
    return PREFIX + "{" + user + "}:" + kind


POP3_UNAVAILABLE = "-ERR [SYS/TEMP] Temporary server failure, try again later."


def policy(mode="concurrent", max_sess=0, extra=""):
    return ('policy = {\n  protocol_lock = "%s";\n  lock_expire = "90d";\n'
            '  max_sessions_per_user = %d;\n%s%s};' % (mode, max_sess, NO_TARPIT, extra))


@pytest.fixture(scope="module")
def fmx(run_dir):
    d = Dovecot("fmx", USERS, messages=1, parent_dir=run_dir)
    d.start()
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def fmx2(run_dir):
    d = Dovecot("fmx2", USERS, messages=1, parent_dir=run_dir)
    d.start()
    yield d
    d.cleanup()


@pytest.fixture
def redis(run_dir):
    r = RedisServer(run_dir).start()
    yield r
    r.cleanup()


@pytest.fixture
def make_fleet(certs, fmx, fmx2, redis, postern_registry, run_dir):
    made = []

    def make(n=2, pol=None, unavailable="local", fallback=False, timeout="250ms", admin=False):
        for i in range(n):
            extra = ("state = %s;\nstate_password_file = %s;\nstate_prefix = %s;\n"
                     'state_timeout = "%s";\nstate_heartbeat = "%dms";\n'
                     'state_unavailable = "%s";\n'
                     % (harness._q("redis+unix:" + redis.sock),
                        harness._q(redis.password_file), harness._q(PREFIX), timeout,
                        HEARTBEAT_MS, unavailable))
            if admin:
                sock = os.path.join(run_dir, "fleet-admin-%d-%d.sock" % (id(made), i))
                extra += "admin = { socket = %s; };\n" % harness._q(sock)
            if fallback:
                extra += "state_fallback = %s;\n" % harness._q(
                    "lmdb:" + os.path.join(run_dir, "fallback-%d-%d" % (id(made), i)))
            p = Postern(certs, [fmx, fmx2], [{"default": True, "backend": "fmx"}],
                        policy=pol or policy(), extra=extra, parent_dir=run_dir)
            postern_registry.append(p)
            made.append(p)
            p.start()
        for p in made[-n:]:
            assert p.wait_log(r"event=store\.connect\b", timeout=10 * harness.TIMEOUT_SCALE)
        return made[-n:]

    yield make
    for p in made:
        p.cleanup()


def kill9(p):
    os.kill(p.proc.pid, signal.SIGKILL)
    p.proc.wait(timeout=10)


def test_imap_through_one_proxy_then_pop3_through_another_is_refused_concurrent(
        make_fleet, ca, redis):
    a, b = make_fleet()
    user = "fay@fleet.test"
    s = imap_login(a, ca, user, keep=True)
    assert s.ok, s.line
    try:
        r = pop3_login(b, ca, user)
        assert r.line == POP3_SET_TO_IMAP, r.line
        assert re.search(r"event=policy\.deny\b[^\n]*reason=concurrent_other_protocol", b.log())
        # the registry names the session: proxy id, protocol, backend
        entries = redis.cli("HGETALL", key(user, "sess")).splitlines()
        assert len(entries) == 2 and re.match(r"^[0-9a-f]{16} imap fmx [0-9]+$", entries[1]), \
            entries
        assert imap_login(b, ca, user).ok  # the same protocol is fine
    finally:
        s.close()
    # a session that ends stops counting at once
    deadline = time.monotonic() + 5 * harness.TIMEOUT_SCALE
    while time.monotonic() < deadline and not pop3_login(b, ca, user).ok:
        time.sleep(0.1)
    assert redis.cli("HLEN", key(user, "sess")).strip() in ("0", "")


def test_max_sessions_per_user_counts_the_fleet(make_fleet, ca):
    a, b = make_fleet(pol=policy(mode="off", max_sess=1))
    user = "finn@fleet.test"
    s = imap_login(a, ca, user, keep=True)
    assert s.ok, s.line
    try:
        r = imap_login(b, ca, user)
        assert r.line == IMAP_TOO_MANY_SESSIONS, r.line
        assert re.search(r"reason=user_session_limit", b.log())
    finally:
        s.close()


def test_a_proxy_killed_with_a_session_open_stops_counting_within_three_heartbeats(
        make_fleet, ca):
    a, b = make_fleet()
    user = "flo@fleet.test"
    s = imap_login(a, ca, user, keep=True)
    assert s.ok, s.line
    assert pop3_login(b, ca, user).line == POP3_SET_TO_IMAP
    kill9(a)
    t0 = time.monotonic()
    ok_at = None
    while time.monotonic() - t0 < 10 * harness.TIMEOUT_SCALE:
        if pop3_login(b, ca, user).ok:
            ok_at = time.monotonic() - t0
            break
        time.sleep(0.05)
    s.close()
    assert ok_at is not None
    # 3 heartbeats, plus the login's own time
    assert ok_at < 3 * HEARTBEAT_MS / 1000.0 + 1.0 * harness.TIMEOUT_SCALE, ok_at
    print("kill -9: the other protocol admitted after %.2fs (heartbeat %dms)"
          % (ok_at, HEARTBEAT_MS))


def test_failed_logins_through_both_proxies_are_counted_once(make_fleet, ca):
    pol = ('policy = {\n  throttle = { ip_user_limit = 3; ip_limit = 100; window = "5m";'
           ' delay_base = "0"; delay_max = "0"; };\n};')
    a, b = make_fleet(pol=pol)
    user = "fred@fleet.test"
    assert not imap_login(a, ca, user, password="wrong-1").ok
    assert not imap_login(b, ca, user, password="wrong-2").ok
    assert not imap_login(a, ca, user, password="wrong-3").ok
    # the third failure (made through A) blocks the pair on B too: A
    # announced the block on the fleet channel
    assert b.wait_log(r"event=throttle\.block\b[^\n]*key=fleet"), a.log() + b.log()
    r = imap_login(b, ca, user)
    assert r.line == IMAP_THROTTLED, r.line
    assert imap_login(a, ca, user).line == IMAP_THROTTLED


def test_redis_stopped_local_mode_decides_alone_and_recovers(make_fleet, ca, redis, fmx):
    a, b = make_fleet(pol=policy(mode="sticky", max_sess=5))
    u1, u2 = "fox@fleet.test", "fay@fleet.test"
    keep = imap_login(a, ca, u2, keep=True)
    assert keep.ok, keep.line
    redis.stop()
    t0 = time.monotonic()
    s = imap_login(a, ca, u1)
    took = time.monotonic() - t0
    assert s.ok, s.line
    # state_timeout (250ms) at most for the store, plus the backend's time
    assert took < 0.25 + 1.5 * harness.TIMEOUT_SCALE, took
    assert a.wait_log(r"event=state\.degraded\b")
    redis.start()
    assert a.wait_log(r"event=state\.recovered\b", timeout=15 * harness.TIMEOUT_SCALE)
    # the lock granted meanwhile is in Redis now, and obeyed by B
    deadline = time.monotonic() + 10 * harness.TIMEOUT_SCALE
    while time.monotonic() < deadline:
        if redis.cli("HGET", key(u1, "lock"), "proto").strip() == "imap":
            break
        time.sleep(0.1)
    assert redis.cli("HGET", key(u1, "lock"), "proto").strip() == "imap"
    assert re.search(r'event=lock\.writeback\b[^\n]*user="%s"' % re.escape(u1), a.log())
    # the session kept open through the outage is registered again
    deadline = time.monotonic() + 5 * harness.TIMEOUT_SCALE
    while time.monotonic() < deadline and redis.cli("HLEN", key(u2, "sess")).strip() \
            in ("", "0"):
        time.sleep(0.1)
    keep.close()
    assert re.search(r"event=state\.recovered\b[^\n]*sessions=[1-9]", a.log())


def test_redis_stopped_refuse_mode_answers_unavailable_within_state_timeout(
        make_fleet, ca, redis):
    (a,) = make_fleet(n=1, pol=policy(mode="sticky"), unavailable="refuse")
    redis.stop()
    t0 = time.monotonic()
    s = imap_login(a, ca, "finn@fleet.test")
    took = time.monotonic() - t0
    assert s.line == IMAP_UNAVAILABLE, s.line
    assert took < 0.25 + 1.5 * harness.TIMEOUT_SCALE, took
    s = pop3_login(a, ca, "flo@fleet.test")
    assert s.line == POP3_UNAVAILABLE, s.line
    assert re.search(r"event=state\.degraded\b[^\n]*mode=refuse", a.log())


def test_route_set_sends_the_next_login_to_the_new_backend_on_every_proxy(
        make_fleet, ca, redis):
    a, b = make_fleet(pol=policy(mode="off"))
    user = "fred@fleet.test"
    assert imap_login(a, ca, user).ok
    assert re.search(r'event=login\.ok\b[^\n]*user="%s"[^\n]*backend=fmx ' % re.escape(user),
                     a.log())
    assert imap_login(b, ca, user).ok  # B has it cached now
    rc = harness.run_postern("-c", a.conf_path, "route", "set", user, "nosuch")
    assert rc.returncode == 1 and "no backend" in rc.stderr, rc.stderr
    rc = harness.run_postern("-c", a.conf_path, "route", "set", user, "fmx2")
    assert rc.returncode == 0, rc.stderr
    assert redis.cli("GET", key(user, "route")).strip() == "fmx2"
    for p in (a, b):
        since = p.log_size()
        assert imap_login(p, ca, user).ok
        assert p.wait_log(r'event=login\.ok\b[^\n]*user="%s"[^\n]*backend=fmx2 '
                          % re.escape(user), since=since)
    rc = harness.run_postern("-c", b.conf_path, "route", "show", user)
    assert "route=fmx2" in rc.stdout, rc.stdout
    rc = harness.run_postern("-c", b.conf_path, "route", "clear", user)
    assert rc.returncode == 0, rc.stderr
    since = a.log_size()
    assert imap_login(a, ca, user).ok
    assert a.wait_log(r'event=login\.ok\b[^\n]*backend=fmx ', since=since)


def test_kick_reaches_every_proxy_through_the_channel(make_fleet, ca):
    a, b, c = make_fleet(n=3, pol=policy(mode="off"))
    for p in (a, b, c):
        assert p.wait_log(r"event=fleet\.start\b")
    time.sleep(0.5)  # subscriptions settle
    rc = harness.run_postern("-c", a.conf_path, "kick", "--user", "Fay@Fleet.test")
    assert rc.returncode == 0 and "kick=sent" in rc.stdout, rc.stderr
    for p in (a, b, c):
        assert p.wait_log(r'event=fleet\.kick_received\b[^\n]*user="fay@fleet\.test"')


def test_kick_by_backend_or_client_goes_to_this_proxys_socket_with_a_shared_store(
        make_fleet, ca):
    """Only `kick --user` goes to the fleet's channel; `--backend` and
    `--client` name this proxy's sessions and go to its admin socket (they
    used to be sent down the fleet path and refused as a usage error)."""
    (a,) = make_fleet(n=1, pol=policy(mode="off"), admin=True)
    for how in (("--backend", "fmx"), ("--client", "127.0.0.1")):
        rc = harness.run_postern("-c", a.conf_path, "kick", *how)
        assert rc.returncode == 0, (how, rc.returncode, rc.stdout, rc.stderr)
        assert rc.stdout.strip() == "kicked 0 sessions", (how, rc.stdout)


def read_bye(c, timeout):
    """Lines until '* BYE', then the close; returns the BYE line."""
    deadline = time.monotonic() + timeout
    while True:
        line = c.readline(max(0.1, deadline - time.monotonic()))
        if line.startswith(b"* BYE"):
            assert c.read_until_closed(max(0.1, deadline - time.monotonic())) == b""
            return line


def test_route_set_with_kick_moves_an_idle_session_on_another_proxy_to_the_new_backend(
        make_fleet, ca):
    """The fleet's kick end to end: an IMAP IDLE session through A; `route set
    ... --kick` run against B's config; A's client is told BYE at a quiet
    moment, A logs session.end reason=kicked, and the client's next login
    (through B) lands on the new backend."""
    a, b = make_fleet(pol=policy(mode="off"))
    user = "flo@fleet.test"
    for p in (a, b):
        assert p.wait_log(r"event=fleet\.start\b")
    time.sleep(0.5)  # subscriptions settle
    c = RawImap(a.imap_port, ca)
    try:
        line, _ = c.command("a1", 'LOGIN "%s" "%s"' % (user, USERS[user]))
        assert line.startswith(b"a1 OK"), c.dump()
        assert re.search(r'event=login\.ok\b[^\n]*user="%s"[^\n]*backend=fmx ' % re.escape(user),
                         a.log())
        c.send(b"i IDLE\r\n")
        assert c.readline(5 * TIMEOUT_SCALE).startswith(b"+"), c.dump()
        since = a.log_size()
        rc = harness.run_postern("-c", b.conf_path, "route", "set", user, "fmx2", "--kick")
        assert rc.returncode == 0 and "kick=sent" in rc.stdout, (rc.stdout, rc.stderr)
        bye = read_bye(c, 15 * TIMEOUT_SCALE)
        assert bye.startswith(b"* BYE [UNAVAILABLE]"), bye
        assert a.wait_log(r'event=session\.end\b[^\n]*user="%s"[^\n]*reason=kicked\b'
                          % re.escape(user), since=since)
    finally:
        c.close()
    since = b.log_size()
    assert imap_login(b, ca, user).ok
    assert b.wait_log(r'event=login\.ok\b[^\n]*user="%s"[^\n]*backend=fmx2 ' % re.escape(user),
                      since=since)


def test_added_login_latency_with_the_registry_and_the_lock_is_printed(
        make_fleet, certs, fmx, fmx2, postern_registry, run_dir, ca):
    """Not a pass/fail figure: login times (password sent -> OK) through a
    proxy with the Redis registry and sticky lock (2 round trips after the
    backend's OK, 1 for the route) against one with no state at all."""
    (a,) = make_fleet(n=1, pol=policy(mode="sticky", max_sess=100))
    plain = Postern(certs, [fmx, fmx2], [{"default": True, "backend": "fmx"}],
                    policy=policy(mode="off"), parent_dir=run_dir)
    postern_registry.append(plain)
    plain.start()
    try:
        def run(p, n=120):
            t = []
            for i in range(n):
                s = imap_login(p, ca, "fay@fleet.test")
                assert s.ok, s.line
                t.append(s.secs * 1000)
            t.sort()
            return t[len(t) // 2], t[int(len(t) * 0.99) - 1]
        run(a, 10)
        run(plain, 10)
        r50, r99 = run(a)
        p50, p99 = run(plain)
        print("\nlogin ms, Redis (unix socket) registry+lock+route: p50 %.1f p99 %.1f; "
              "no store: p50 %.1f p99 %.1f; added p50 %.1f p99 %.1f"
              % (r50, r99, p50, p99, r50 - p50, r99 - p99))
    finally:
        plain.cleanup()
