"""Redis Sentinel end to end (issue #20): a master, two replicas and three
Sentinels on loopback (harness.RedisHA, real redis-server processes, the
Sentinels `redis-server FILE --sentinel`), and posterns configured with
state = "redis-sentinel://S1,S2,S3/NAME/0".

A planned failover (SENTINEL FAILOVER) and an unplanned one (kill -9 of the
master) under 8 clients logging in and out through two posterns: no login
waits longer than state_timeout plus the backend's time, both posterns use
the new master within a second of the Sentinels naming it (the times are
measured and printed: run with -s), the failover counter moves, and the
one-protocol rule holds across the proxies before and after.  With
state_wait_replicas = 1 every lock a client was told OK about before the
kill is on the new master.  The old master, restarted, is made a replica and
no postern writes to it.  A Sentinel that is down, one that names a wrong
address (a fake Sentinel), all of them down at start (degraded, the log says
why, recovered once they are back).  An ACL user (state_user) with a
password file, on both URL forms; a wrong password (Redis' or the
Sentinels') is refused with Redis' WRONGPASS in the log.

The topology is shared by the module (starting it and settling after a kill
takes seconds); the `ha` fixture restores it before each test: every node
and Sentinel running, every Sentinel agreeing on the master and its two
replicas.  Every wait is bounded."""

import calendar
import os
import re
import signal
import socket
import threading
import time
import urllib.request

import pytest

import harness
from harness import (IO_TIMEOUT, NO_TARPIT, POP3_SET_TO_IMAP, TIMEOUT_SCALE, Dovecot,
                     Postern, RedisHA, RedisNode, imap_login, pop3_login)

SCALE = TIMEOUT_SCALE
IMAP_USERS = ["si%d@sent.test" % i for i in range(4)]
POP3_USERS = ["sp%d@sent.test" % i for i in range(4)]
BOTH = "sboth@sent.test"  # tried on both protocols, through both proxies
FRESH = ["sf%02d@sent.test" % i for i in range(100)]  # each logs in once: a new lock
USERS = {u: "pw-" + u.split("@")[0] for u in IMAP_USERS + POP3_USERS + [BOTH] + FRESH}
harness.LOGIN_PASSWORDS.update(USERS)
_fresh = iter(FRESH)

PREFIX = "pit-sent:"
STATE_TIMEOUT = 0.5  # state_timeout, seconds
DOWN_AFTER_MS = 1000  # the Sentinels' down-after-milliseconds
FAILOVER_TIMEOUT_MS = 10000
# A login decides within state_timeout (the store's part) plus the backend's
# time, generous for a busy machine.
LOGIN_BOUND = STATE_TIMEOUT + 2.0 * SCALE
# After the Sentinels name the new master, a postern uses it within this.
FOLLOW_BOUND = 1.0 * SCALE
STICKY = ('policy = {\n  protocol_lock = "sticky";\n  lock_expire = "90d";\n%s};' % NO_TARPIT)


def fresh_user():
    return next(_fresh)


def lock_key(user):
    return PREFIX + "{" + user + "}:lock"


@pytest.fixture(scope="module")
def smx(run_dir):
    d = Dovecot("smx", USERS, messages=1, parent_dir=run_dir)
    d.start()
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def topology(run_dir):
    ha = RedisHA(run_dir, down_after_ms=DOWN_AFTER_MS,
                 failover_timeout_ms=FAILOVER_TIMEOUT_MS).start()
    yield ha
    ha.cleanup()


@pytest.fixture
def ha(topology):
    """The module's topology, whole again: a node killed by an earlier test
    restarted (the Sentinels make it a replica: ~10 s), a Sentinel stopped
    started again, everyone agreeing on the master."""
    for n in topology.nodes:
        if not n.running():
            topology.restart(n)
    for i, s in enumerate(topology.sentinels):
        if not s.running():
            topology.start_sentinel(i)
    topology.wait_healthy(40)
    yield topology


def ts_of(line):
    """The epoch seconds of a postern log line's ts=...Z field."""
    m = re.search(r"ts=(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z", line)
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s)) + ms / 1000.0


@pytest.fixture
def make_proxy(certs, smx, postern_registry, run_dir):
    """make(url, wait_replicas=0, password_file=..., ...): a postern on
    that Redis (a RedisHA's Sentinels by default), sticky locks,
    state_timeout 500ms, state_unavailable local, admin.http on
    p.admin_port and an admin socket; extra: more top-level settings.
    wait=True waits for the store's state.master line."""
    made = []

    def make(ha=None, url=None, wait_replicas=0, password_file=None, sentinel_pw=True,
             user=None, wait=True, unavailable="local", extra=""):
        url = url or ha.url()
        port = harness.free_port()
        more = extra
        extra = ("state = %s;\nstate_password_file = %s;\nstate_prefix = %s;\n"
                 'state_timeout = "%dms";\nstate_heartbeat = "1s";\n'
                 'state_unavailable = "%s";\n'
                 'admin = { http = "127.0.0.1:%d"; socket = %s; };\n'
                 % (harness._q(url), harness._q(password_file or ha.password_file),
                    harness._q(PREFIX), STATE_TIMEOUT * 1000, unavailable, port,
                    harness._q(os.path.join(run_dir, "sentinel-admin-%d.sock" % port))))
        if ha is not None and sentinel_pw and url.startswith("redis-sentinel:"):
            extra += "sentinel_password_file = %s;\n" % harness._q(ha.sentinel_password_file)
        if wait_replicas:
            extra += "state_wait_replicas = %d;\n" % wait_replicas
        if user:
            extra += "state_user = %s;\n" % harness._q(user)
        extra = more + extra
        p = Postern(certs, [smx], [{"default": True, "backend": "smx"}], policy=STICKY,
                    extra=extra, parent_dir=run_dir)
        p.admin_port = port
        postern_registry.append(p)
        made.append(p)
        p.start()
        if wait:
            assert p.wait_log(r"event=state\.master\b", timeout=10), p.log()[-3000:]
        return p

    yield make
    for p in made:
        if p.proc is not None and p.proc.poll() is None:
            try:
                os.kill(p.proc.pid, signal.SIGCONT)  # one a test froze
            except ProcessLookupError:
                pass
        p.cleanup()


def metric(p, name):
    """The value of name{store="redis"} on p's /metrics (0 when absent)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % p.admin_port,
                                timeout=IO_TIMEOUT) as r:
        text = r.read().decode()
    m = re.search(r'^%s\{store="redis"\} (\S+)$' % re.escape(name), text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_metric(p, name, pred, timeout=5.0):
    """Wait (bounded) until pred(value of name) holds; the last value when it
    does, else None."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        v = metric(p, name)
        if pred(v):
            return v if v else True
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def wait_lock(node, user, proto="imap", timeout=5.0):
    """Wait until node has user's lock with that protocol."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        got = node.cli("HGET", lock_key(user), "proto").strip()
        if got == proto or time.monotonic() >= deadline:
            return got
        time.sleep(0.05)


class Load:
    """8 client threads: each logs one user in and out in a loop, through
    the proxies in turn; IMAP users and POP3 users apart (no protocol
    conflict: every login must be admitted).  Every outcome is kept as
    (thread, proto, user, proxy index, Session or the exception)."""

    def __init__(self, proxies, ca, max_secs=90.0, max_logins=5000):
        self.proxies, self.ca = proxies, ca
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.max_secs, self.max_logins = max_secs * SCALE, max_logins
        jobs = [("imap", u) for u in IMAP_USERS] + [("pop3", u) for u in POP3_USERS]
        self.threads = [threading.Thread(target=self._run, args=(i, proto, user), daemon=True)
                        for i, (proto, user) in enumerate(jobs)]

    def _run(self, i, proto, user):
        login = imap_login if proto == "imap" else pop3_login
        t_end = time.monotonic() + self.max_secs
        k = i
        while not self.stop_ev.is_set() and time.monotonic() < t_end:
            with self.lock:
                if len(self.results) >= self.max_logins:
                    return
            px = k % len(self.proxies)
            k += 1
            t0 = time.monotonic()
            try:
                s = login(self.proxies[px], self.ca, user)
            except Exception as e:  # noqa: BLE001 - kept and reported
                s = e
            with self.lock:
                self.results.append((t0, proto, user, px, s))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=IO_TIMEOUT * 2)

    def check(self):
        """Every login admitted, none slower than LOGIN_BOUND; returns
        (count, slowest seconds)."""
        with self.lock:
            res = list(self.results)
        bad = [r for r in res if not hasattr(r[4], "ok") or not r[4].ok]
        slow = [r for r in res if hasattr(r[4], "secs") and r[4].secs > LOGIN_BOUND]
        assert not bad, bad[:10]
        assert not slow, slow[:10]
        return len(res), max((r[4].secs for r in res), default=0.0)


def script_calls(node):
    """How many EVALSHA/EVAL node was sent (run, rejected or failed): a
    postern's writes are scripts; replication brings their effects only."""
    n = 0
    for m in re.finditer(r"^cmdstat_(?:evalsha|evalsha_ro|eval|eval_ro):calls=(\d+)"
                         r"[^\n]*rejected_calls=(\d+),failed_calls=(\d+)",
                         node.cli("INFO", "commandstats"), re.M):
        n += sum(int(x) for x in m.groups())
    return n


def one_protocol_rule_holds(a, b, ca, node):
    """BOTH has an IMAP lock (on node): POP3 through either proxy is
    refused, IMAP through either admitted."""
    assert node.cli("HGET", lock_key(BOTH), "proto").strip() == "imap"
    for p in (a, b):
        r = pop3_login(p, ca, BOTH)
        assert r.line == POP3_SET_TO_IMAP, (p.conf_path, r)
        r = imap_login(p, ca, BOTH)
        assert r.ok, r


def follow_times(proxies, since, t_cmd, new_master, timeout):
    """Wait (bounded) until every proxy logged state.failover to
    new_master after offset since; the seconds from t_cmd (epoch) to each
    line's ts, or None for a proxy that did not."""
    rx = r"[^\n]*event=state\.failover\b[^\n]*to=\"?%s\b[^\n]*" % re.escape(new_master.addr)
    out = []
    for p, off in zip(proxies, since):
        m = p.wait_log(rx, timeout=timeout, since=off)
        out.append(ts_of(m.group(0)) - t_cmd if m else None)
    return out


def switches(ha):
    """The Sentinels' +switch-master and +elected-leader lines, for the
    record."""
    return "\n".join("sentinel %d: %s" % (i, x) for i, st in enumerate(ha.sentinels)
                     for x in st.log().splitlines()
                     if "+switch-master" in x or "+elected-leader" in x
                     or "+selected-slave" in x)


def run_failover(ha, a, b, ca, how):
    """Under load, fail the master over (how: "planned" or "kill"); returns
    (the seconds the Sentinels took, [seconds each proxy took])."""
    old = ha.master()
    assert imap_login(a, ca, BOTH).ok  # BOTH's lock: IMAP, taken through A
    for n in ha.replicas():
        assert wait_lock(n, BOTH) == "imap"  # replicated before the failover
    one_protocol_rule_holds(a, b, ca, old)
    failovers = [metric(p, "postern_state_failovers_total") for p in (a, b)]
    with Load([a, b], ca) as load:
        time.sleep(1.0)  # logins in flight through both proxies
        since = [p.log_size() for p in (a, b)]
        t_cmd = time.time()
        if how == "planned":
            assert ha.failover() == "OK"
        else:
            ha.kill_master()
        new, took = ha.wait_master_change(old, DOWN_AFTER_MS / 1000.0 + 15)
        assert new is not None, "the Sentinels named no new master"
        follow = follow_times([a, b], since, t_cmd, new,
                              timeout=took + FOLLOW_BOUND + 2)
        if how == "planned" and all(x is not None for x in follow):
            # the old master stays writable for a moment (until the
            # Sentinels make it a replica): once a postern knows of the
            # switch, it sends the old one no script
            time.sleep(0.2)  # a login already sent there is answered
            before = script_calls(old)
        time.sleep(1.0)  # logins on the new master
        if how == "planned" and all(x is not None for x in follow):
            assert script_calls(old) == before, old.cli("INFO", "commandstats")
    n, slowest = load.check()
    print("\n%s failover: Sentinels named %s after %.2fs (down-after %dms); postern A "
          "followed after %s, B after %s; %d logins meanwhile, slowest %.3fs"
          % (how, new.addr, took, DOWN_AFTER_MS,
             *("%.2fs" % x if x is not None else "never" for x in follow), n, slowest))
    assert all(x is not None for x in follow), (follow, a.log()[-3000:], b.log()[-3000:])
    for x in follow:
        assert x <= took + FOLLOW_BOUND, (follow, took)
    for p, before in zip((a, b), failovers):
        assert wait_metric(p, "postern_state_failovers_total", lambda v: v >= before + 1)
        assert wait_metric(p, "postern_state_up", lambda v: v == 1)
    # the admin answers name the new master and count the failover
    for p in (a, b):
        rc = harness.run_postern("-c", p.conf_path, "stats")
        assert rc.returncode == 0, rc.stderr
        assert re.search(r"^state store: redis up, master %s \([^)]*\), failovers [1-9]"
                         % re.escape(new.addr), rc.stdout, re.M), rc.stdout
        rc = harness.run_postern("-c", p.conf_path, "health")
        assert rc.returncode == 0 and rc.stdout.startswith("ok\n"), (rc.stdout, rc.stderr)
        # (the spec said `state: redis up master A failovers N`; the stats
        # line's words are as good)
        assert re.search(r"^state( store)?: redis up,? master %s\b.*failovers [1-9]"
                         % re.escape(new.addr), rc.stdout, re.M), rc.stdout
    # Now and then the Sentinels fail over a second time right after the
    # first (a Sentinel that still saw the old master down won a later
    # election); the posterns follow that too: check against the master
    # the Sentinels name now.
    final = ha.master()
    if final is not new:
        print("the Sentinels failed over again, to %s:\n%s" % (final.addr, switches(ha)))
        for p in (a, b):
            assert p.wait_log(r"event=state\.failover\b[^\n]*to=\"?%s\b"
                              % re.escape(final.addr), timeout=5), p.log()[-3000:]
    one_protocol_rule_holds(a, b, ca, final)
    # the logins after the switch wrote to the new master
    u = fresh_user()
    assert pop3_login(b, ca, u).ok
    assert wait_lock(final, u, "pop3") == "pop3", "\n".join(
        x for x in b.log().splitlines()[-400:]
        if u in x or "event=state." in x or "event=store." in x or "event=lock." in x)
    return took, follow


def test_planned_failover_under_load(ha, make_proxy, ca):
    """SENTINEL FAILOVER while 8 clients log in and out through two posterns:
    no login waits more than state_timeout plus the backend's time, both
    posterns log state.failover to the new master within a second of the
    Sentinels naming it, the failover counter moves (/metrics, and `stats`
    and `health` name the new master), and BOTH's IMAP lock
    (taken before) refuses POP3 through either proxy before and after."""
    a, b = make_proxy(ha), make_proxy(ha)
    run_failover(ha, a, b, ca, "planned")


def test_unplanned_failover_kill9_under_load(ha, make_proxy, ca):
    """kill -9 of the master under the same load: logins are decided
    locally meanwhile (state_unavailable local) within the same bound, both
    posterns follow the Sentinels' new master within a second, the rule
    holds across the proxies after."""
    a, b = make_proxy(ha), make_proxy(ha)
    took, follow = run_failover(ha, a, b, ca, "kill")
    assert took <= DOWN_AFTER_MS / 1000.0 + FAILOVER_TIMEOUT_MS / 1000.0


def test_wait_replicas_every_lock_told_ok_survives_the_kill(ha, make_proxy, ca):
    """state_wait_replicas = 1: a client is told OK only once a replica has
    the lock, so every lock told OK is on the new master after kill -9 of
    the old one.  The posterns are frozen (SIGSTOP) before the kill, so no
    write-back can put a lock there afterwards: only replication did."""
    a, b = make_proxy(ha, wait_replicas=1), make_proxy(ha, wait_replicas=1)
    told_ok = []
    times = []
    for i in range(12):
        u = fresh_user()
        proto = "imap" if i % 2 == 0 else "pop3"
        s = (imap_login if proto == "imap" else pop3_login)((a, b)[i % 2], ca, u)
        assert s.ok, s
        told_ok.append((u, proto))
        times.append(s.secs)
    for p in (a, b):
        assert not re.search(r"event=state\.degraded\b", p.log()), p.log()[-2000:]
        os.kill(p.proc.pid, signal.SIGSTOP)
    try:
        old = ha.kill_master()
        new, took = ha.wait_master_change(old, DOWN_AFTER_MS / 1000.0 + 15)
        assert new is not None
        missing = [(u, proto) for u, proto in told_ok
                   if new.cli("HGET", lock_key(u), "proto").strip() != proto]
    finally:
        for p in (a, b):
            os.kill(p.proc.pid, signal.SIGCONT)
    times.sort()
    print("\nstate_wait_replicas=1: %d locks told OK, %d missing on the new master %s; "
          "login p50 %.1f ms" % (len(told_ok), len(missing), new.addr,
                                 times[len(times) // 2] * 1000))
    assert not missing, missing


def test_wait_replicas_cost_per_login_is_printed(ha, make_proxy, ca):
    """The login time (password -> OK) of a login that creates a lock, with
    state_wait_replicas = 1 and without, printed (not a pass/fail figure);
    the master is sent one WAIT per lock created with it, none without."""
    plain, waiting = make_proxy(ha), make_proxy(ha, wait_replicas=1)
    master = ha.master()

    def waits():
        m = re.search(r"^cmdstat_wait:calls=(\d+)", master.cli("INFO", "commandstats"), re.M)
        return int(m.group(1)) if m else 0

    before = waits()
    t = {plain: [], waiting: []}
    for i in range(40):  # interleaved: the machine's moods hit both alike
        p = (plain, waiting)[i % 2]
        s = imap_login(p, ca, fresh_user())
        assert s.ok, s
        t[p].append(s.secs * 1000)
    for x in t.values():
        x.sort()
    w, p = t[waiting][len(t[waiting]) // 2], t[plain][len(t[plain]) // 2]
    print("\nlogin creating a lock, p50 of 20: state_wait_replicas=1 %.1f ms, 0 %.1f ms, "
          "added %.1f ms" % (w, p, w - p))
    assert not re.search(r"event=state\.degraded\b", waiting.log()), waiting.log()[-2000:]
    # one WAIT per lock created through `waiting`, none through `plain`
    assert waits() - before == 20, (waits(), before)


@pytest.mark.parametrize("unavailable", ["refuse", "local"])
def test_a_wait_that_does_not_reach_its_replicas_is_the_store_unavailable(
        ha, make_proxy, ca, unavailable):
    """state_wait_replicas = 3 with two replicas: WAIT never reaches 3, so a
    login that creates a lock is decided as when Redis is unavailable.
    "refuse": IMAP NO [UNAVAILABLE] and POP3 -ERR [SYS/TEMP], within
    state_timeout; "local": granted (state.degraded).  Either way the lock is
    on the master (the script ran; only the replicas' copy is missing), so
    the next login, which creates nothing and waits for nothing, is let in
    and the other protocol is refused."""
    p = make_proxy(ha, wait_replicas=3, unavailable=unavailable)
    master = ha.master()
    u, v = fresh_user(), fresh_user()
    t0 = time.monotonic()
    first = imap_login(p, ca, u)
    took = time.monotonic() - t0
    second = pop3_login(p, ca, v)
    if unavailable == "refuse":
        assert first.line == "a1 NO [UNAVAILABLE] Temporary server failure, try again later.", \
            first.line
        assert second.line == "-ERR [SYS/TEMP] Temporary server failure, try again later.", \
            second.line
    else:
        assert first.ok and second.ok, (first.line, second.line)
        assert p.wait_log(r"event=state\.degraded\b[^\n]*state_wait_replicas", timeout=5)
    assert took < STATE_TIMEOUT + 2 * SCALE, took
    assert p.wait_log(r'event=store\.error\b[^\n]*what="WAIT"[^\n]*of 3 replicas',
                      timeout=5), p.log()[-4000:]
    assert wait_lock(master, u) == "imap"
    assert imap_login(p, ca, u).ok  # held: no WAIT
    assert pop3_login(p, ca, u).line == POP3_SET_TO_IMAP


def test_the_old_master_restarted_as_a_replica_gets_no_postern_writes(ha, make_proxy, ca):
    """kill -9 the master, the posterns follow the new one; the old master is
    started again (empty, believing it is the master until the Sentinels make
    it a replica, ~8 s later).  Through all of it, with clients logging in
    through both posterns, it never runs a postern command: no EVALSHA,
    EVAL or SCRIPT in its command statistics (replication brings it the
    scripts' effects, never the scripts)."""
    a, b = make_proxy(ha), make_proxy(ha)
    since = [p.log_size() for p in (a, b)]
    old = ha.kill_master()
    new, took = ha.wait_master_change(old, DOWN_AFTER_MS / 1000.0 + 15)
    assert new is not None
    for p, off in zip((a, b), since):
        assert p.wait_log(r"event=state\.failover\b", timeout=5, since=off), p.log()[-2000:]
    ha.restart(old)
    assert old.role() == "master"  # for now
    with Load([a, b], ca, max_secs=40) as load:
        deadline = time.monotonic() + 30 * SCALE
        while time.monotonic() < deadline and old.role() != "slave":
            time.sleep(0.2)
        assert old.role() == "slave", old.info()
        time.sleep(1.5)  # and some logins once it is a replica
    load.check()
    stats = old.cli("INFO", "commandstats")
    assert script_calls(old) == 0, stats
    assert not re.search(r"^cmdstat_(script|fcall)\b", stats, re.M), stats
    for p, off in zip((a, b), since):
        assert not re.search(r"event=state\.master\b[^\n]*master=\"?%s\b" % re.escape(old.addr),
                             p.log()[off:]), p.log()[-2000:]


# ---- Sentinels down or wrong ------------------------------------------------


def test_first_sentinel_down_postern_starts_and_uses_the_next(ha, make_proxy, ca):
    """The first Sentinel of the URL is stopped: the postern asks the next
    one, names it in state.master, and its locks are on the master."""
    ha.stop_sentinel(0)
    p = make_proxy(ha)
    master = ha.master()
    assert re.search(r'event=state\.master\b[^\n]*master="?%s\b[^\n]*how="sentinel '
                     r'127\.0\.0\.1:(%d|%d)"' % (re.escape(master.addr), ha.sentinels[1].port,
                                                ha.sentinels[2].port), p.log()), p.log()[-2000:]
    u = fresh_user()
    assert imap_login(p, ca, u).ok
    assert wait_lock(master, u) == "imap"


class FakeSentinel:
    """A Sentinel that lies: RESP on a free port, AUTH +OK, PING +PONG,
    `SENTINEL get-master-addr-by-name` answers with answer (host, port),
    SUBSCRIBE is confirmed (then nothing), anything else an error.  Every
    command received is kept in self.commands.  Stopped with stop()."""

    def __init__(self, answer):
        self.answer = answer
        self.commands = []
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.stop_ev = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.stop_ev.is_set():
            try:
                c, _ = self.srv.accept()
            except OSError:
                continue
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _bulk(s):
        s = s.encode() if isinstance(s, str) else s
        return b"$%d\r\n%s\r\n" % (len(s), s)

    def _serve(self, c):
        c.settimeout(0.2)
        buf = b""
        while not self.stop_ev.is_set():
            try:
                chunk = c.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                cmd, buf = self._parse(buf)
                if cmd is None:
                    break
                self.commands.append(cmd)
                try:
                    c.sendall(self._reply(cmd))
                except OSError:
                    return

    @staticmethod
    def _parse(buf):
        """One RESP array of bulk strings from buf: (args, rest) or (None, buf)."""
        if not buf.startswith(b"*") or b"\r\n" not in buf:
            if buf and not buf.startswith(b"*") and b"\r\n" in buf:  # inline command
                line, _, rest = buf.partition(b"\r\n")
                return [x.decode() for x in line.split()], rest
            return None, buf
        head, _, rest = buf.partition(b"\r\n")
        n = int(head[1:])
        args = []
        for _ in range(n):
            if b"\r\n" not in rest:
                return None, buf
            h, _, rest2 = rest.partition(b"\r\n")
            ln = int(h[1:])
            if len(rest2) < ln + 2:
                return None, buf
            args.append(rest2[:ln].decode("utf-8", "replace"))
            rest = rest2[ln + 2:]
        return args, rest

    def _reply(self, cmd):
        name = cmd[0].upper() if cmd else ""
        if name == "AUTH":
            return b"+OK\r\n"
        if name == "PING":
            return b"+PONG\r\n"
        if name == "SENTINEL" and len(cmd) >= 2 and cmd[1].lower() == "get-master-addr-by-name":
            return b"*2\r\n" + self._bulk(self.answer[0]) + self._bulk(str(self.answer[1]))
        if name == "SUBSCRIBE":
            out = b""
            for i, ch in enumerate(cmd[1:], 1):
                out += b"*3\r\n" + self._bulk("subscribe") + self._bulk(ch) + b":%d\r\n" % i
            return out
        return b"-ERR unknown command of a fake Sentinel\r\n"

    def stop(self):
        self.stop_ev.set()
        self.srv.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(timeout=2)


@pytest.mark.parametrize("wrong", ["dead_port", "a_replica"])
def test_a_sentinel_naming_a_wrong_address_first_the_next_ones_are_asked(
        ha, make_proxy, ca, wrong):
    """A fake Sentinel listed first names a port nothing listens on, or a
    replica (ROLE says slave): the postern does not take it, asks the real
    Sentinels after it, and works on the real master."""
    liar = ha.replicas()[0]
    # (the replica may have been a master in an earlier test: its command
    # statistics start now)
    assert liar.cli("CONFIG", "RESETSTAT").strip() == "OK"
    answer = (("127.0.0.1", harness.free_port()) if wrong == "dead_port"
              else ("127.0.0.1", liar.port))
    fake = FakeSentinel(answer)
    try:
        url = ha.url([fake.addr] + [s.addr for s in ha.sentinels])
        p = make_proxy(ha, url=url)
        master = ha.master()
        assert p.wait_log(r'event=state\.master\b[^\n]*master="?%s\b' % re.escape(master.addr),
                          timeout=10), p.log()[-3000:]
        assert any(c[:2] == ["SENTINEL", "get-master-addr-by-name"] or
                   [x.lower() for x in c[:2]] == ["sentinel", "get-master-addr-by-name"]
                   for c in fake.commands), fake.commands
        u = fresh_user()
        assert imap_login(p, ca, u).ok
        assert wait_lock(master, u) == "imap"
        if wrong == "a_replica":  # asked, but never sent a script to run
            stats = liar.cli("INFO", "commandstats")
            assert not re.search(r"^cmdstat_(evalsha|evalsha_ro|eval|fcall)\b", stats,
                                 re.M), stats
    finally:
        fake.stop()


def test_a_switch_the_subscription_never_hears_of_is_found_within_a_heartbeat(
        ha, make_proxy, ca):
    """The only Sentinel the postern knows confirms its subscription and
    then says nothing (silent, not closed): a planned failover by the real
    Sentinels is never announced to it.  Asked every heartbeat (1 s here),
    that Sentinel names the new master, and the postern moves within about
    a heartbeat, long before the Sentinels would demote the old master
    (several seconds, during which it takes writes)."""
    old = ha.master()
    fake = FakeSentinel(("127.0.0.1", old.port))
    try:
        p = make_proxy(ha, url=ha.url([fake.addr]))
        assert p.wait_log(r"event=state\.master\b[^\n]*master=%s\b" % re.escape(old.addr),
                          timeout=10), p.log()[-3000:]
        assert ha.failover() == "OK"
        new, _ = ha.wait_master_change(old, 15)
        assert new is not None
        fake.answer = ("127.0.0.1", new.port)
        t0 = time.time()
        assert p.wait_log(r"event=state\.failover\b[^\n]*to=%s\b" % re.escape(new.addr),
                          timeout=10), p.log()[-3000:]
        line = [x for x in p.log().splitlines()
                if "event=state.failover" in x and "to=%s" % new.addr in x][0]
        took = ts_of(line) - t0
        print("\nno +switch-master heard: moved %.2f s after the Sentinel named the new "
              "master (state_heartbeat 1 s)" % took)
        assert took < 1.0 + 1.5 * SCALE, took
        u = fresh_user()
        assert imap_login(p, ca, u).ok
        assert wait_lock(new, u) == "imap"
    finally:
        fake.stop()


def test_all_sentinels_down_at_start_degraded_then_recovers(ha, make_proxy, ca):
    """No Sentinel answers when the postern starts: it starts, logins are
    decided locally (state_unavailable local) within the bound, a store.*
    warning says why; once the Sentinels are back it finds the master
    (state.master, state.recovered) and writes the lock granted meanwhile."""
    for i in range(len(ha.sentinels)):
        ha.stop_sentinel(i)
    p = make_proxy(ha, wait=False)
    u = fresh_user()
    s = imap_login(p, ca, u)
    assert s.ok and s.secs < LOGIN_BOUND, s
    assert p.wait_log(r"level=warn[^\n]*event=store\.\w+", timeout=5), p.log()[-3000:]
    assert not re.search(r"event=state\.master\b", p.log())
    print("\nall Sentinels down at start: login %.3fs; log: %s" % (
        s.secs, re.search(r"[^\n]*event=store\.\w+[^\n]*", p.log()).group(0)))
    since = p.log_size()
    for i in range(len(ha.sentinels)):
        ha.start_sentinel(i)
    master = ha.wait_healthy(30)
    assert p.wait_log(r"event=state\.master\b[^\n]*master=\"?%s\b" % re.escape(master.addr),
                      timeout=15, since=since), p.log()[-3000:]
    # the lock granted while no Sentinel answered is written back
    assert wait_lock(master, u, timeout=10) == "imap", p.log()[-3000:]
    assert p.wait_log(r"event=state\.recovered\b", timeout=5, since=since), p.log()[-3000:]


# ---- ACL user and passwords ------------------------------------------------


def test_acl_user_on_the_sentinel_form(ha, make_proxy, ca):
    """state_user with redis-sentinel://: the data links log in as the ACL
    user (CLIENT LIST on the master says user=postern), the Sentinels with
    sentinel_password_file, and the locks are written."""
    p = make_proxy(ha, password_file=ha.acl_password_file, user=ha.acl_user[0])
    master = ha.master()
    u = fresh_user()
    assert imap_login(p, ca, u).ok
    assert wait_lock(master, u) == "imap"
    clients = master.cli("CLIENT", "LIST")
    assert re.search(r"\buser=postern\b", clients), clients
    assert not re.search(r"WRONGPASS|NOAUTH", p.log())


@pytest.mark.parametrize("which", ["sentinel", "redis"])
def test_a_wrong_password_on_the_sentinel_form_is_logged_with_wrongpass(
        ha, make_proxy, ca, tmp_path, which):
    """A wrong password in sentinel_password_file (the Sentinels refuse it)
    or in state_password_file (the master refuses it): store.error with
    Redis' WRONGPASS text, logins decided locally (degraded), nothing
    written."""
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    if which == "sentinel":
        p = make_proxy(ha, wait=False, sentinel_pw=False,
                       extra='sentinel_password_file = %s;\n' % harness._q(str(wrong)))
    else:
        p = make_proxy(ha, wait=False, password_file=str(wrong))
    assert p.wait_log(r"event=store\.error\b[^\n]*WRONGPASS", timeout=10), p.log()[-3000:]
    u = fresh_user()
    s = imap_login(p, ca, u)
    assert s.ok and s.secs < LOGIN_BOUND, s
    assert p.wait_log(r"event=state\.degraded\b", timeout=5), p.log()[-3000:]
    assert ha.master().cli("EXISTS", lock_key(u)).strip() == "0"
    print("\nwrong %s password: %s" % (which, re.search(
        r"[^\n]*event=store\.error\b[^\n]*WRONGPASS[^\n]*", p.log()).group(0)))


@pytest.fixture
def acl_node(run_dir):
    """A Redis with the default user off and an ACL user "postern"."""
    n = RedisNode(run_dir, acl_user=("postern", "pit-acl-secret"), default_user_off=True,
                  name="acl").start()
    n.acl_password_file = os.path.join(n.dir, "acl-password")
    with open(n.acl_password_file, "w") as f:
        f.write("pit-acl-secret\n")
    yield n
    n.cleanup()


def test_acl_user_with_a_password_file_logs_in_and_writes(acl_node, make_proxy, ca):
    """state_user = "postern" with its password in state_password_file (the
    default user is off): AUTH postern PASSWORD works, the lock is written."""
    url = "redis://127.0.0.1:%d/0" % acl_node.port
    p = make_proxy(url=url, password_file=acl_node.acl_password_file, user="postern",
                   wait=False)
    assert p.wait_log(r"event=(store\.connect|state\.master)\b", timeout=10), p.log()[-3000:]
    u = fresh_user()
    assert imap_login(p, ca, u).ok
    assert wait_lock(acl_node, u) == "imap"
    assert not re.search(r"WRONGPASS|NOAUTH", p.log())


def test_wrong_password_is_refused_with_a_clear_log_and_degraded(acl_node, make_proxy, ca,
                                                                  tmp_path):
    """The password file holds a wrong password: postern logs store.error
    with Redis' WRONGPASS text, logins are decided locally (degraded)."""
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    url = "redis://127.0.0.1:%d/0" % acl_node.port
    p = make_proxy(url=url, password_file=str(wrong), user="postern", wait=False)
    assert p.wait_log(r"event=store\.error\b[^\n]*WRONGPASS", timeout=10), p.log()[-3000:]
    u = fresh_user()
    s = imap_login(p, ca, u)
    assert s.ok and s.secs < LOGIN_BOUND, s
    assert p.wait_log(r"event=state\.degraded\b", timeout=5), p.log()[-3000:]
    assert acl_node.cli("EXISTS", lock_key(u)).strip() == "0"
