"""The Redis store end to end: two postern processes ("A" and "B", as two
proxies of a fleet) share one real redis-server, so the sticky lock one
writes is the lock the other obeys; the admin commands work on it from
either config; a Redis that stops answering costs a login the internal
error, promptly, and the proxies reconnect when it is back.  A Redis that
is stopped (SIGSTOP) or slow (DEBUG SLEEP) costs every login in a row
state_timeout at most, in both state_unavailable modes; a Redis that lost
its script and its data (SCRIPT FLUSH, FLUSHALL) has the live sessions
back within one heartbeat.

The redis-server is the test's own: a unix socket in a temporary directory
(no TCP port), no configuration file (nothing from the system's redis.conf),
a password (state_password_file), stopped by its PID."""

import re
import time

import pytest

import harness
from harness import (IMAP_SET_TO_POP3, IMAP_UNAVAILABLE, NO_TARPIT, POP3_SET_TO_IMAP,
                     Dovecot, Postern, RedisServer, imap_login, lock_cmd, lock_list,
                     lock_show, pop3_login)

USERS = {"rita@redis.test": "pw-rita-1", "ron@redis.test": "pw-ron-2",
         "rae@redis.test": "pw-rae-3"}
ROUTES = [{"default": True, "backend": "rmx"}]
STICKY = ('policy = {\n'
          '  protocol_lock = "sticky";\n'
          '  lock_expire = "90d";\n'
          + NO_TARPIT +
          '};')
PREFIX = "pit-fleet:"


def key(user, kind):
    """PREFIX{USER}:kind, the hash-tagged layout (store_redis.c)."""
    return PREFIX + "{" + user + "}:" + kind


POP3_UNAVAILABLE = "-ERR [SYS/TEMP] Temporary server failure, try again later."
CONCURRENT = ('policy = {\n'
              '  protocol_lock = "concurrent";\n'
              + NO_TARPIT +
              '};')


@pytest.fixture(scope="module")
def rmx(run_dir):
    d = Dovecot("rmx", USERS, messages=1, parent_dir=run_dir)
    d.start()
    yield d
    d.cleanup()


@pytest.fixture
def redis(run_dir):
    r = RedisServer(run_dir).start()
    yield r
    r.cleanup()


@pytest.fixture
def redis_dbg(run_dir):
    """A redis-server that takes DEBUG SLEEP."""
    r = RedisServer(run_dir, debug_command=True).start()
    yield r
    r.cleanup()


@pytest.fixture
def make_proxy(certs, rmx, postern_registry, run_dir):
    """One postern on a given Redis: state_timeout 1s, the mode given."""
    made = []

    def make(redis, unavailable, policy=STICKY, heartbeat="10s"):
        extra = ("state = %s;\nstate_password_file = %s;\nstate_prefix = %s;\n"
                 'state_timeout = "1s";\nstate_heartbeat = "%s";\n'
                 'state_unavailable = "%s";\n'
                 % (harness._q("redis+unix:" + redis.sock), harness._q(redis.password_file),
                    harness._q(PREFIX), heartbeat, unavailable))
        p = Postern(certs, [rmx], ROUTES, policy=policy, extra=extra, parent_dir=run_dir)
        postern_registry.append(p)
        made.append(p)
        p.start()
        assert p.wait_log(r"event=store\.connect\b", timeout=10 * harness.TIMEOUT_SCALE)
        return p

    yield make
    for p in made:
        p.cleanup()


@pytest.fixture
def fleet(certs, rmx, redis, postern_registry, run_dir):
    """Two posterns on the same Redis and the same backend."""
    extra = ("state = %s;\nstate_password_file = %s;\nstate_prefix = %s;\n"
             'state_timeout = "250ms";\n'
             # the default is "local" (test_fleet.py); these proxies refuse
             'state_unavailable = "refuse";\n'
             % (harness._q("redis+unix:" + redis.sock), harness._q(redis.password_file),
                harness._q(PREFIX)))
    made = []
    for _ in range(2):
        p = Postern(certs, [rmx], ROUTES, policy=STICKY, extra=extra, parent_dir=run_dir)
        postern_registry.append(p)
        made.append(p)
        p.start()
    yield made
    for p in made:
        p.cleanup()


def test_a_lock_taken_through_one_proxy_is_obeyed_by_another(fleet, ca, redis):
    a, b = fleet
    user = "rita@redis.test"
    s = imap_login(a, ca, user, USERS[user])
    assert s.ok, s.line
    assert a.wait_log(r'event=lock\.create\b[^\n]*user="%s" proto=imap' % re.escape(user))
    # B never saw this user: its refusal comes from the lock in Redis
    s = pop3_login(b, ca, user, USERS[user])
    assert s.line == POP3_SET_TO_IMAP, s.line
    assert re.search(r'event=policy\.deny\b[^\n]*verdict=protocol reason=sticky_lock', b.log())
    assert imap_login(b, ca, user, USERS[user]).ok
    # the record is where the prefix says, with lock_expire as its TTL
    assert redis.cli("HGET", key(user, "lock"), "proto").strip() == "imap"
    ttl = int(redis.cli("PTTL", key(user, "lock")).strip())
    assert 89 * 86400 * 1000 < ttl <= 90 * 86400 * 1000, ttl


def test_admin_commands_work_on_the_shared_store_from_either_config(fleet, ca, redis):
    a, b = fleet
    ron, rae = "ron@redis.test", "rae@redis.test"
    assert imap_login(a, ca, ron, USERS[ron]).ok
    proto, line = lock_show(b, ron)
    assert proto == "imap" and " origin=login " in line, line
    # set through B's config: A obeys it at once
    rc, out, err = lock_cmd(b, "set", rae, "pop3")
    assert rc == 0, out + err
    assert imap_login(a, ca, rae, USERS[rae]).line == IMAP_SET_TO_POP3
    assert lock_list(a) == {ron: "imap", rae: "pop3"}
    # clear through A: the next login decides again, on B
    rc, out, err = lock_cmd(a, "clear", ron)
    assert rc == 0 and 'lock=none' in out, out + err
    assert pop3_login(b, ca, ron, USERS[ron]).ok
    assert imap_login(a, ca, ron, USERS[ron]).line == IMAP_SET_TO_POP3
    assert lock_show(a, ron)[0] == "pop3"


def test_a_lock_in_the_old_key_layout_is_obeyed_and_moved(fleet, ca, redis):
    """A lock a postern wrote before the hash-tagged keys (PREFIX "lock:"
    USER) is listed, obeyed by a login, and moved to PREFIX{USER}:lock."""
    a, b = fleet
    rae, ron = "rae@redis.test", "ron@redis.test"
    now = str(int(time.time() * 1000))

    def old_lock(user, proto):
        redis.cli("HSET", PREFIX + "lock:" + user, "v", "1", "proto", proto,
                  "origin", "login", "created", now, "used", now)

    old_lock(rae, "pop3")
    assert redis.cli("PEXPIRE", PREFIX + "lock:" + rae, "3600000").strip() == "1"
    # ron's in both layouts (an old postern wrote one since): the new one counts
    assert imap_login(a, ca, ron, USERS[ron]).ok
    old_lock(ron, "pop3")
    rc, out, err = lock_cmd(b, "list")
    assert rc == 0 and out.count('user="%s"' % ron) == 1, out + err
    assert lock_list(b) == {rae: "pop3", ron: "imap"}
    assert imap_login(a, ca, rae, USERS[rae]).line == IMAP_SET_TO_POP3
    assert redis.cli("EXISTS", PREFIX + "lock:" + rae).strip() == "0"
    assert redis.cli("HGET", key(rae, "lock"), "proto").strip() == "pop3"
    assert 0 < int(redis.cli("PTTL", key(rae, "lock")).strip()) <= 3600000
    assert pop3_login(b, ca, rae, USERS[rae]).ok
    # `lock clear` leaves neither layout behind
    rc, out, err = lock_cmd(a, "clear", ron)
    assert rc == 0, out + err
    assert redis.cli("EXISTS", PREFIX + "lock:" + ron, key(ron, "lock")).strip() == "0"


def test_a_redis_that_is_gone_costs_the_login_not_the_proxy_and_it_reconnects(
        fleet, ca, redis):
    a, b = fleet
    user = "rita@redis.test"
    redis.stop()
    t0 = time.monotonic()
    s = imap_login(a, ca, user, USERS[user])
    assert s.line == IMAP_UNAVAILABLE, s.line
    assert time.monotonic() - t0 < 5 * harness.TIMEOUT_SCALE
    assert a.wait_log(r'event=store\.(disconnect|error)\b')
    assert a.running() and b.running()
    # the admin command says why, and fails
    rc, out, err = lock_cmd(a, "show", user)
    assert rc == 1 and "Redis" in err, (rc, out, err)
    # Redis is back (same socket, empty): both proxies come back by themselves
    redis.start()
    deadline = time.monotonic() + 15 * harness.TIMEOUT_SCALE
    while time.monotonic() < deadline:
        s = imap_login(a, ca, user, USERS[user])
        if s.ok:
            break
        time.sleep(0.3)
    assert s.ok, s.line
    deadline = time.monotonic() + 15 * harness.TIMEOUT_SCALE
    while time.monotonic() < deadline:
        s = pop3_login(b, ca, user, USERS[user])
        if s.line == POP3_SET_TO_IMAP:
            break
        time.sleep(0.3)
    assert s.line == POP3_SET_TO_IMAP, s.line


def test_config_check_refuses_rediss_and_accepts_the_redis_forms(certs, rmx, redis, tmp_path):
    def check(extra):
        p = Postern(certs, [rmx], ROUTES, policy=STICKY, extra=extra, parent_dir=str(tmp_path))
        path = str(tmp_path / "t.conf")
        with open(path, "w") as f:
            f.write(p.config_text())
        return harness.run_postern("-t", "-c", path)

    r = check('state = "rediss://127.0.0.1:6379/0";\n')
    assert r.returncode != 0 and "rediss://" in r.stderr and "not supported" in r.stderr, \
        r.stderr
    r = check('state = "redis://127.0.0.1:6379/0";\nstate_timeout = "100ms";\n')
    assert r.returncode == 0, r.stderr
    r = check('state = "redis+unix:%s";\nstate_password_file = "%s";\n'
              % (redis.sock, redis.password_file))
    assert r.returncode == 0, r.stderr


# A login asks the store twice, one wait after the other: the route before
# the backend, then the post-auth check.  Together they wait state_timeout
# (1 s) at most: once a request timed out, the next are answered at once
# until Redis says anything again.  Plus the backend's time, generous for a
# busy machine.  The defect this guards against made a login wait for the
# dead-link check (4 state_timeouts, 4 s) or for Redis' late answer; a
# route wait and a post-auth wait one after the other would take 2 s.
LOGIN_BOUND = 1.0 + 0.8 * harness.TIMEOUT_SCALE


@pytest.mark.parametrize("unavailable", ["local", "refuse"])
@pytest.mark.parametrize("how", ["sigstop", "debug_sleep"])
def test_logins_in_a_row_on_a_stopped_or_slow_redis_each_wait_state_timeout_at_most(
        make_proxy, redis_dbg, ca, how, unavailable):
    """Each request has its own deadline, and one that timed out makes the
    next answered at once until Redis answers again: every login is decided
    within state_timeout by state_unavailable (local: decided here; refuse:
    refused), never by Redis' late answer."""
    p = make_proxy(redis_dbg, unavailable)
    first = "rita@redis.test"
    assert imap_login(p, ca, first, USERS[first]).ok  # linked, script loaded
    logins = [("imap", "ron@redis.test"), ("imap", "rae@redis.test"),
              ("imap", "rita@redis.test"), ("pop3", "ron@redis.test")]
    sleeper = None
    got = []
    try:
        if how == "sigstop":
            redis_dbg.pause()
        else:
            # longer than the logins below take: no answer comes in between
            sleeper = redis_dbg.sleep_in_background(8)
            time.sleep(0.3)  # the DEBUG SLEEP has reached Redis
        for proto, user in logins:
            login = imap_login if proto == "imap" else pop3_login
            got.append((proto, login(p, ca, user, USERS[user])))
    finally:
        redis_dbg.resume()
        if sleeper is not None:
            RedisServer.wait_sleeper(sleeper, 15 * harness.TIMEOUT_SCALE)
    print("%s, %s: %s" % (how, unavailable, got))
    for proto, s in got:
        assert s.secs < LOGIN_BOUND, got
        if unavailable == "local":
            assert s.ok, got
        else:
            assert s.line == (IMAP_UNAVAILABLE if proto == "imap" else POP3_UNAVAILABLE), got
    if unavailable == "refuse":
        assert re.search(r"event=state\.degraded\b[^\n]*mode=refuse", p.log())
        assert not re.search(r"event=login\.ok\b", p.log().split("event=state.degraded")[1])


def test_a_live_session_is_written_once_and_its_hash_lives_a_day(make_proxy, redis, ca):
    """A user's live-sessions hash lives 24 h (each session is written again
    after 12 h), whatever state_heartbeat is: the heartbeat writes the proxy
    key only.  A config that left the TTL unset once made it 8 heartbeats,
    and every session was written again every few heartbeats."""
    p = make_proxy(redis, "local", policy=CONCURRENT, heartbeat="1s")
    user = "rita@redis.test"
    s = imap_login(p, ca, user, USERS[user], keep=True)
    assert s.ok, s.line
    try:
        ttl = int(redis.cli("PTTL", key(user, "sess")).strip())
        assert 23 * 3600 * 1000 < ttl <= 24 * 3600 * 1000, ttl
        calls = lambda: int(re.search(r"cmdstat_evalsha:calls=(\d+)",  # noqa: E731
                                      redis.cli("INFO", "commandstats")).group(1))
        before = calls()
        time.sleep(3.5)  # 3 heartbeats: one beat a worker each, no session written
        assert calls() - before <= 2 * 5, calls() - before
        assert int(redis.cli("PTTL", key(user, "sess")).strip()) <= ttl
    finally:
        s.close()


def test_live_sessions_are_back_within_one_heartbeat_after_script_flush_and_flushall(
        make_proxy, redis, ca):
    """The heartbeat's own NOSCRIPT loads the script and beats again: a Redis
    that lost its scripts and its data has this proxy's key and its live
    sessions back within one heartbeat, with no login needed."""
    heartbeat = 1.0
    p = make_proxy(redis, "local", policy=CONCURRENT, heartbeat="1s")
    user = "ron@redis.test"
    sess_key, proxy_keys = key(user, "sess"), PREFIX + "proxy:*"

    def back():
        return (redis.cli("HLEN", sess_key).strip() not in ("", "0")
                and redis.cli("KEYS", proxy_keys).strip() != "")

    s = imap_login(p, ca, user, USERS[user], keep=True)
    assert s.ok, s.line
    try:
        assert back(), redis.cli("KEYS", "*")
        for _ in range(2):  # twice: the second beat after a loss works the same
            assert redis.cli("SCRIPT", "FLUSH").strip() == "OK"
            assert redis.cli("FLUSHALL").strip() == "OK"
            assert not back()
            t0 = time.monotonic()
            deadline = t0 + heartbeat + 1.5 * harness.TIMEOUT_SCALE
            while time.monotonic() < deadline and not back():
                time.sleep(0.05)
            took = time.monotonic() - t0
            assert back(), (took, redis.cli("KEYS", "*"), p.log()[-2000:])
            print("sessions back %.2fs after SCRIPT FLUSH + FLUSHALL (heartbeat 1s)" % took)
    finally:
        s.close()
