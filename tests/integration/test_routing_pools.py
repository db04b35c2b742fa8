"""postern's routing over three real Dovecot backends, end to end: hashed
pools (each user always on the same backend, whatever the pool's order in
the config), active health checks (down after `fall` failed checks, up
after `rise` good ones, off with check_interval 0), failover within a login
when a backend is unreachable and passive failures marking it down, a
single-backend route whose backend is stopped or never greets, and
authentication failures never retried on another backend.

How a test learns where a user landed: postern's `event=login.ok` line names
the backend, and the message the test fetches names the backend that stored
it (the harness writes per-backend content); the two must agree.  What a
backend saw (the client address it was told, whether it saw a login at all)
comes from that Dovecot's own log, with rport/lport added to its login line.
The users, routes, log readers and clients are in harness/routing.py; the
start_postern and make_backend fixtures in conftest.py.

Every socket operation has a timeout; every wait is a bounded poll of a log."""

import socket
import time

import pytest

import harness
from harness import Dovecot, cleanup_all
from harness.routing import (AT_ONCE, DOWN_WAIT, HEALTH, HOST, LOGFMT, MUTE_USER, PASSWORDS, POOL,
                             POOL_USERS, ROUTES, SOLO_USER, UP_WAIT, be, homes, login, offsets,
                             postern_lines, trio_backends, wait_event)


# ===========================================================================
# fixtures
# ===========================================================================


@pytest.fixture
def trio(run_dir):
    """Three real Dovecots, mx1..mx3, each holding every test user (with
    content that names the backend).  Function scope: tests stop them."""
    ds = {}
    try:
        for n in POOL:
            ds[n] = Dovecot(n, PASSWORDS, parent_dir=run_dir, extra_conf=LOGFMT).start()
        yield ds
    finally:
        cleanup_all(list(ds.values()))


# ===========================================================================
# Pools: a fixed per-user order over the pool
# ===========================================================================


def test_pool_spreads_users_over_all_three_backends_and_each_user_always_lands_on_the_same_one(
        trio, start_postern):
    p = start_postern(trio_backends(trio, **HEALTH), ROUTES)
    first = homes(p, POOL_USERS, "imap")
    again = homes(p, POOL_USERS, "pop3")
    assert again == first, "a user moved between logins (imap vs pop3)"
    third = homes(p, POOL_USERS, "imap")
    assert third == first, "a user moved between logins"
    counts = {n: sum(1 for b in first.values() if b == n) for n in POOL}
    assert all(counts[n] > 0 for n in POOL), "a pool member got no user: %s" % counts
    # Nothing was down: no health flip, no failover.
    assert not postern_lines(p, "backend.down"), p.log()[-3000:]
    assert not postern_lines(p, "backend.failover"), p.log()[-3000:]


def test_pool_order_in_the_config_does_not_move_any_user(trio, start_postern):
    """Rendezvous ranking depends on the user and the backend names, not on
    where a name sits in the pool list: two proxies of a fleet whose configs
    list the pool differently send every user to the same backend."""
    a = start_postern(trio_backends(trio, **HEALTH), ROUTES)
    routes_b = [dict(r) for r in ROUTES]
    routes_b[1] = {"domain": "example.net", "pool": ["mx3", "mx1", "mx2"]}
    b = start_postern(trio_backends(trio, **HEALTH), routes_b)
    ha = homes(a, POOL_USERS)
    hb = homes(b, POOL_USERS)
    moved = {u: (ha[u], hb[u]) for u in POOL_USERS if ha[u] != hb[u]}
    assert not moved, "users moved when only the pool's list order changed: %s" % moved


# ===========================================================================
# Three backends, one killed and brought back
# ===========================================================================


def test_kill_one_backend_its_users_log_in_elsewhere_at_once_others_stay_and_all_return_home(
        trio, start_postern):
    p = start_postern(trio_backends(trio, **HEALTH), ROUTES,
                     timeouts={"backend_connect": "5s"})
    home = homes(p, POOL_USERS)
    by_backend = {n: [u for u in POOL_USERS if home[u] == n] for n in POOL}
    victim = max(POOL, key=lambda n: len(by_backend[n]))
    victims = by_backend[victim]
    others = [u for u in POOL_USERS if home[u] != victim]
    assert victims and others, by_backend

    # --- kill it -----------------------------------------------------------
    mark = p.log_size()
    trio[victim].stop()
    assert not trio[victim].running()
    # Dovecot sometimes takes seconds to exit (its login processes wait for
    # their stats handshake), long enough for the checks to mark it down
    # first; only if they have not can the first login be held to a failover.
    already_down = wait_event(p, "backend.down", victim, mark, 0) is not None
    fallback = {}
    for i, u in enumerate(victims):
        r = login(p, "imap", u)
        assert r.ok, "%s (home %s, stopped) could not log in: %r" % (u, victim, r)
        assert r.backend != victim and r.backend in POOL, r
        assert r.elapsed < AT_ONCE, "login of %s took %.2fs (not at once): %r" % (
            u, r.elapsed, r)
        if i == 0 and not already_down:
            # Not marked down yet (fall = 3): postern met the refused
            # connect itself and moved on within this same login.
            assert [(x.get("from"), x.get("to")) for x in r.failovers] == \
                [(victim, r.backend)], "no failover logged for the first login: %r\n%s" % (
                    r, p.log()[mark:][-3000:])
        else:
            # later ones: either tried and failed over, or skipped (down)
            assert all(x.get("from") == victim and x.get("to") == r.backend
                       for x in r.failovers), r
        fallback[u] = r.backend
    for u in others:
        r = login(p, "imap", u)
        assert r.ok and r.backend == home[u], "%s moved off its healthy home %s: %r" % (
            u, home[u], r)
        assert not r.failovers, r
    if len(victims) >= 6:
        # Each user has its own order of the pool: the users of one backend
        # do not all pile onto the same neighbour.
        assert len(set(fallback.values())) == 2, (
            "all %d users of %s fell back to the same backend %s: not a per-user order"
            % (len(victims), victim, set(fallback.values())))

    # --- health checks mark it down --------------------------------------
    down = wait_event(p, "backend.down", victim, mark, DOWN_WAIT)
    assert down is not None, "no backend.down for %s within %ss:\n%s" % (
        victim, DOWN_WAIT, p.log()[mark:][-3000:])
    after_down = p.log_size()
    for u in victims:
        r = login(p, "imap", u)
        assert r.ok and r.backend == fallback[u], (
            "%s: went to %s now that %s is marked down, %s before" % (
                u, r.backend, victim, fallback[u]))
        assert not r.failovers, "a down backend was still tried: %r" % r
        assert r.elapsed < AT_ONCE, r
    for u in victims[:3]:
        r = login(p, "pop3", u)
        assert r.ok and r.backend == fallback[u], r
        assert not r.failovers, r
    for u in others:
        r = login(p, "imap", u)
        assert r.ok and r.backend == home[u], r
    assert not [x for x in postern_lines(p, "backend.failover", after_down)], \
        "failovers although the down backend should be skipped"
    for n in POOL:
        if n != victim:
            assert not [x for x in postern_lines(p, "backend.down") if x.get("backend") == n], \
                "healthy %s was marked down:\n%s" % (n, p.log()[-3000:])

    # --- bring it back: the check sees it and its users return -----------
    mark2 = p.log_size()
    trio[victim].restart()
    up = wait_event(p, "backend.up", victim, mark2, UP_WAIT)
    assert up is not None, "no backend.up for %s within %ss after restart:\n%s" % (
        victim, UP_WAIT, p.log()[mark2:][-3000:])
    for u in victims:
        r = login(p, "imap", u)
        assert r.ok and r.backend == victim, "%s did not return home to %s: %r" % (
            u, victim, r)
        assert not r.failovers, r
    for u in victims[:3]:
        r = login(p, "pop3", u)
        assert r.ok and r.backend == victim, r
    for u in others:
        r = login(p, "imap", u)
        assert r.ok and r.backend == home[u], r


def test_backend_down_needs_fall_failed_checks_and_up_needs_rise_good_ones(trio, start_postern):
    """With check_interval 1s, fall 3 and rise 3 a state flip needs three
    consecutive results, i.e. at least two check intervals after the change;
    the healthy backends never flip."""
    opts = dict(HEALTH, rise=3, fall=3)
    p = start_postern(trio_backends(trio, **opts), ROUTES)
    time.sleep(2.5)  # a few checks pass while all are up
    assert not postern_lines(p, "backend.down"), p.log()[-2000:]
    mark = p.log_size()
    t0 = time.monotonic()
    trio["mx2"].stop()
    down = wait_event(p, "backend.down", "mx2", mark, DOWN_WAIT)
    t_down = time.monotonic() - t0
    assert down is not None, p.log()[mark:][-3000:]
    assert t_down >= 1.5, "mx2 was marked down %.2fs after it stopped: fall=3 at 1s " \
        "intervals needs ~2s or more" % t_down
    mark2 = p.log_size()
    t1 = time.monotonic()
    trio["mx2"].restart()
    up = wait_event(p, "backend.up", "mx2", mark2, UP_WAIT)
    t_up = time.monotonic() - t1
    assert up is not None, p.log()[mark2:][-3000:]
    assert t_up >= 1.5, "mx2 was marked up %.2fs after it restarted: rise=3 at 1s " \
        "intervals needs ~2s or more" % t_up
    downs = [x.get("backend") for x in postern_lines(p, "backend.down")]
    assert downs == ["mx2"], "backend.down lines: %s" % downs


def test_check_interval_zero_turns_active_checks_off(trio, start_postern):
    """check_interval = "0": no check ever connects, so a stopped backend
    nobody logs in to is never marked down."""
    time.sleep(1.0)  # the harness's own port probes reach Dovecot's log first
    before = offsets(trio)
    p = start_postern(trio_backends(trio, check_interval="0", fall=1, rise=1), ROUTES)
    trio["mx3"].stop()
    time.sleep(4)
    assert not postern_lines(p, "backend.down"), p.log()[-2000:]
    # and no check connection reached the running backends either
    for n in ("mx1", "mx2"):
        text = trio[n].log()[before[n]:]
        assert "Connection closed (no auth attempts" not in text, (
            "%s saw connections although checks are off:\n%s" % (n, text[-1500:]))


# ===========================================================================
# A backend unreachable at connect: failover within the same login
# ===========================================================================


def test_connect_failure_fails_over_within_the_login_and_passive_failures_mark_it_down(
        trio, start_postern):
    """A pool with a member nothing listens on and no active checks: its
    users' logins fail over to their next backend inside the same login
    (backend.failover logged, client sees only OK), and `fall` such
    connect failures mark the member down, after which it is skipped."""
    ghost = {"name": "ghost", "imap": harness.free_port(), "pop3": harness.free_port(),
             "check_interval": "0", "fall": 3, "rise": 2}
    backends = [be(trio["mx1"], check_interval="0"), be(trio["mx2"], check_interval="0"),
                ghost]
    routes = [{"domain": "example.net", "pool": ["mx1", "mx2", "ghost"]}]
    p = start_postern(backends, routes, timeouts={"backend_connect": "5s"})
    landed = {}
    ghost_users = []
    n_fail = 0
    for u in POOL_USERS:
        if n_fail >= 2:
            break
        r = login(p, "pop3" if n_fail == 0 else "imap", u)
        assert r.ok and r.backend in ("mx1", "mx2"), r
        assert r.elapsed < AT_ONCE, r
        if r.failovers:
            assert [(x.get("from"), x.get("to")) for x in r.failovers] == \
                [("ghost", r.backend)], r
            n_fail += 1
            ghost_users.append(u)
        landed[u] = r.backend
    assert n_fail == 2, "fewer than two of %d users rank ghost first" % len(POOL_USERS)
    time.sleep(0.5)
    assert not postern_lines(p, "backend.down"), \
        "ghost marked down after 2 connect failures with fall = 3:\n%s" % p.log()[-2000:]
    # the third failure flips it
    mark = p.log_size()
    r = login(p, "imap", ghost_users[0])
    assert r.ok and r.backend == landed[ghost_users[0]], r
    assert [(x.get("from"), x.get("to")) for x in r.failovers] == [("ghost", r.backend)], r
    down = wait_event(p, "backend.down", "ghost", mark, 5.0)
    assert down is not None, "3 connect failures (fall = 3) did not mark ghost down:\n%s" % (
        p.log()[mark:][-2000:])
    # now skipped: same backend for each user, no attempt on ghost
    for u in ghost_users:
        for proto in ("imap", "pop3"):
            r = login(p, proto, u)
            assert r.ok and r.backend == landed[u], r
            assert not r.failovers, "ghost still tried after backend.down: %r" % r


# ===========================================================================
# A single-backend route whose backend is down
# ===========================================================================


def test_user_of_a_stopped_single_backend_gets_unavailable_at_once_and_no_other_backend_sees_it(
        trio, start_postern):
    p = start_postern(trio_backends(trio, **HEALTH), ROUTES,
                     timeouts={"backend_connect": "5s"})
    r = login(p, "imap", SOLO_USER)
    assert r.ok and r.backend == "mx3", r
    mark = p.log_size()
    trio["mx3"].stop()
    before = offsets(trio)

    def check(phase):
        r = login(p, "imap", SOLO_USER)
        assert not r.ok and r.line.startswith(b"a1 NO [UNAVAILABLE]"), (phase, r)
        assert r.elapsed < AT_ONCE, "%s: UNAVAILABLE after %.2fs" % (phase, r.elapsed)
        r = login(p, "pop3", SOLO_USER)
        assert not r.ok and r.line.startswith(b"-ERR [SYS/TEMP]"), (phase, r)
        assert r.elapsed < AT_ONCE, "%s: -ERR after %.2fs" % (phase, r.elapsed)
        assert not r.failovers, r

    check("before backend.down")
    assert wait_event(p, "backend.down", "mx3", mark, DOWN_WAIT) is not None, \
        p.log()[mark:][-3000:]
    check("after backend.down")
    time.sleep(0.5)
    for n in ("mx1", "mx2"):
        text = trio[n].log()[before[n]:]
        assert SOLO_USER not in text, "%s saw %s, routed to mx3 alone:\n%s" % (
            n, SOLO_USER, text[-1500:])
    assert not [x for x in postern_lines(p, "login.ok", mark)
                if x.get("user") == SOLO_USER], "a login of a down single route succeeded"


def test_a_backend_that_accepts_but_never_greets_is_marked_down_and_then_refused_at_once(
        trio, start_postern):
    """A hung backend (the kernel accepts, nothing answers): the check times
    out (check_timeout), `fall` of them mark it down, and from then on its
    user gets NO [UNAVAILABLE] / -ERR [SYS/TEMP] at once instead of waiting
    out backend_connect + backend_login (10s each here)."""
    lsocks = []
    try:
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            s.listen(128)  # never accept()ed: connects succeed, no byte ever comes
            lsocks.append(s)
        mute = {"name": "mute", "imap": lsocks[0].getsockname()[1],
                "pop3": lsocks[1].getsockname()[1],
                "check_interval": "1s", "check_timeout": "1s", "fall": 2, "rise": 2}
        routes = [{"domain": "mute.test", "backend": "mute"}] + ROUTES
        p = start_postern(trio_backends(trio, **HEALTH) + [mute], routes,
                         timeouts={"backend_connect": "10s", "backend_login": "10s"})
        down = wait_event(p, "backend.down", "mute", 0, DOWN_WAIT)
        assert down is not None, "a backend that never greets was not marked down:\n%s" % (
            p.log()[-3000:])
        r = login(p, "imap", MUTE_USER)
        assert not r.ok and r.line.startswith(b"a1 NO [UNAVAILABLE]"), r
        assert r.elapsed < AT_ONCE, "UNAVAILABLE only after %.2fs" % r.elapsed
        r = login(p, "pop3", MUTE_USER)
        assert not r.ok and r.line.startswith(b"-ERR [SYS/TEMP]"), r
        assert r.elapsed < AT_ONCE, "-ERR only after %.2fs" % r.elapsed
        # the others are fine
        r = login(p, "imap", SOLO_USER)
        assert r.ok and r.backend == "mx3", r
        assert [x.get("backend") for x in postern_lines(p, "backend.down")] == ["mute"]
    finally:
        for s in lsocks:
            s.close()


# ===========================================================================
# Authentication failures are never retried elsewhere
# ===========================================================================


def test_wrong_password_on_the_home_backend_fails_there_and_no_other_backend_sees_a_login(
        trio, start_postern):
    p = start_postern(trio_backends(trio, **HEALTH), ROUTES)
    user = POOL_USERS[5]
    home = login(p, "imap", user).backend
    others = [n for n in POOL if n != home]
    before = offsets(trio)
    # fall + 1 failures, each from its own address and connection: an
    # authentication failure is not a backend failure either.
    for i, proto in enumerate(["imap", "pop3", "imap", "pop3"]):
        r = login(p, proto, user, password="wrong-%d" % i, source="127.0.0.%d" % (11 + i))
        want = b"a1 NO [AUTHENTICATIONFAILED]" if proto == "imap" else b"-ERR [AUTH]"
        assert not r.ok and r.line.startswith(want), r
        assert not r.failovers, "an auth failure was retried elsewhere: %r" % r
    m = trio[home].wait_log(r"Password mismatch|auth failed", since=before[home])
    assert m, "the home backend %s saw no failed login:\n%s" % (
        home, trio[home].log()[before[home]:][-2000:])
    time.sleep(1.0)  # let the other Dovecots' log processes catch up
    for n in others:
        text = trio[n].log()[before[n]:]
        assert user not in text, "%s (not %s's home) saw a login attempt:\n%s" % (
            n, user, text[-2000:])
    assert not postern_lines(p, "backend.down"), \
        "authentication failures marked a backend down:\n%s" % p.log()[-2000:]
    r = login(p, "imap", user)
    assert r.ok and r.backend == home, r
