"""postern's monitoring HTTP server (admin.http), end to end: /metrics parses
with the Prometheus client library's own text parser, and its counters move
by exactly what a test did through real clients and real Dovecot backends
(logins ok and failed over IMAP and POP3, relayed sessions, bytes, TLS
handshakes full and resumed); /health answers 200, and 503 once every
backend is down.  Each test starts its own postern, so no other test's
traffic shows in its numbers; every wait is bounded."""

import imaplib
import os
import poplib
import select
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import harness
from harness import IO_TIMEOUT, PASSWORDS, ROUTES, WRONG_PASSWORDS, Dovecot, Postern

HOST = "127.0.0.1"
SCALE = harness.TIMEOUT_SCALE

# Every family /metrics must have (counters without their _total, as the
# parser names them).
FAMILIES = [
    "postern_build_info", "postern_connections", "postern_sessions", "postern_logins",
    "postern_login_duration_seconds", "postern_backend_up", "postern_backend_connect_errors",
    "postern_tls_handshakes", "postern_bytes", "postern_policy_refusals", "postern_state_up",
    "postern_lookup_requests", "postern_lookup_duration_seconds", "postern_lookup_breaker_open",
    "process_start_time_seconds", "process_open_fds", "process_resident_memory_bytes",
]

# The results of logins_total: the fail classes' names (proxy/reason.c) and ok.
RESULTS = {"ok", "auth_failed", "policy", "limit", "throttled", "backend_down",
           "backend_protocol", "internal", "lookup_unavailable"}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def http_get(port, path, method="GET"):
    """(status, content type, body text) of one request to 127.0.0.1:port."""
    req = urllib.request.Request("http://%s:%d%s" % (HOST, port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=IO_TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


class Scrape:
    """One /metrics answer: the text, the families, and each sample's value
    by (sample name, labels)."""

    def __init__(self, text):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {}
        for f in self.families.values():
            for s in f.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name, **labels):
        """The value of the one sample name{labels}; KeyError when absent."""
        return self.samples[(name, frozenset(labels.items()))]

    def total(self, name, **labels):
        """The sum of name's samples whose labels include labels."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def labels(self, name, key):
        return {dict(ls).get(key) for (n, ls), _ in self.samples.items() if n == name}


def scrape(p):
    status, ctype, text = http_get(p.admin_port, "/metrics")
    assert status == 200, text
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return Scrape(text)


def wait_metric(p, pred, what, timeout=10.0):
    """Scrape until pred(scrape) holds; the last scrape.  Fails after timeout."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        s = scrape(p)
        if pred(s):
            return s
        if time.monotonic() > deadline:
            pytest.fail("%s: not within %ss; last /metrics:\n%s" % (what, timeout, s.text))
        time.sleep(0.1)


def ctx_for(ca, tls12=False):
    ctx = ssl.create_default_context(cafile=ca)
    if tls12:
        # TLS 1.2: the session is there right after the handshake
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def imap_login(p, ca, user, password):
    """An IMAPS login: True (logged in, then LOGOUT) or False (refused)."""
    c = imaplib.IMAP4_SSL(HOST, p.imap_port, ssl_context=ctx_for(ca), timeout=IO_TIMEOUT)
    try:
        c.login(user, password)
    except imaplib.IMAP4.error:
        c.logout()
        return False
    c.logout()
    return True


def pop3_login(p, ca, user, password):
    c = poplib.POP3_SSL(HOST, p.pop3_port, context=ctx_for(ca), timeout=IO_TIMEOUT)
    try:
        c.user(user)
        c.pass_(password)
    except poplib.error_proto:
        c.quit()
        return False
    c.quit()
    return True


def with_admin(make, tmp_path, **kw):
    """A postern (make: a Postern factory) with admin.http on a fresh port
    and an LMDB state store; p.admin_port is set, and the HTTP server is
    up when this returns."""
    port = harness.free_port()
    state = tmp_path / "state"
    state.mkdir()
    extra = 'admin = { http = "%s:%d"; };\nstate = "lmdb:%s";' % (HOST, port, state)
    p = make(extra=extra, **kw)
    p.admin_port = port
    assert harness.wait_port(port, 10 * SCALE, alive=p.running), p.log()[-3000:]
    # the harness's own probe of each listener (one connection each) is
    # counted once a worker accepts it: wait, so no test counts it as its own
    wait_metric(p, lambda s: all(s.total("postern_connections_total", listener=str(x["port"]))
                                 >= 1 for x in p.listeners()), "the start-up probes")
    return p


@pytest.fixture
def mp(make_postern, tmp_path):
    """A postern of its own in front of the session's mx1 and mx2."""
    return with_admin(make_postern, tmp_path)


# ---------------------------------------------------------------------------
# /metrics
# ---------------------------------------------------------------------------


def test_metrics_parse_as_prometheus_text_with_every_family(mp):
    s = scrape(mp)
    missing = [f for f in FAMILIES if f not in s.families]
    assert not missing, "missing %s in:\n%s" % (missing, s.text)
    assert s.families["postern_connections"].type == "counter"
    assert s.families["postern_sessions"].type == "gauge"
    assert s.families["postern_login_duration_seconds"].type == "histogram"
    assert s.get("postern_build_info", version=s.labels("postern_build_info", "version").pop()) == 1
    assert s.get("postern_state_up", store="lmdb") == 1
    for b in ("mx1", "mx2"):
        assert s.get("postern_backend_up", backend=b) == 1
    assert s.labels("postern_connections_total", "listener") == {
        str(mp.imap_port), str(mp.pop3_port)}
    assert s.labels("postern_logins_total", "result") == RESULTS
    assert s.get("process_start_time_seconds") > time.time() - 3600
    assert s.get("process_open_fds") > 0
    assert s.get("process_resident_memory_bytes") > 1 << 20


def cpu_seconds(pid):
    """utime + stime of process pid (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_postern_with_the_http_server_does_not_spin(mp):
    # CPU time, not wall time: a busy machine cannot add CPU to a process
    # that sleeps.  A thread that never sleeps (the HTTP watchdog once
    # waited on the wrong clock) burns about a core: ~3 s in this window.
    time.sleep(0.5)
    before = cpu_seconds(mp.proc.pid)
    time.sleep(3.0)
    used = cpu_seconds(mp.proc.pid) - before
    assert used < 0.6, "an idle postern used %.2f s of CPU in 3 s" % used


def test_login_counters_move_by_exactly_the_logins_made(mp, ca):
    alice, carol = "alice@example.org", "carol@example.org"
    before = scrape(mp)
    assert imap_login(mp, ca, alice, PASSWORDS[alice])
    assert imap_login(mp, ca, carol, PASSWORDS[carol])
    assert not imap_login(mp, ca, alice, WRONG_PASSWORDS[0])
    assert pop3_login(mp, ca, alice, PASSWORDS[alice])
    assert not pop3_login(mp, ca, carol, WRONG_PASSWORDS[1])
    assert not pop3_login(mp, ca, carol, WRONG_PASSWORDS[2])
    after = scrape(mp)

    def moved(name, **labels):
        return after.total(name, **labels) - before.total(name, **labels)

    want = {("imap", "ok"): 2, ("imap", "auth_failed"): 1,
            ("pop3", "ok"): 1, ("pop3", "auth_failed"): 2}
    for proto in ("imap", "pop3"):
        for result in RESULTS:
            assert moved("postern_logins_total", proto=proto, result=result) == \
                want.get((proto, result), 0), (proto, result, after.text)
    assert moved("postern_login_duration_seconds_count", proto="imap") == 3
    assert moved("postern_login_duration_seconds_count", proto="pop3") == 3
    assert moved("postern_login_duration_seconds_bucket", proto="imap", le="+Inf") == 3
    assert moved("postern_login_duration_seconds_sum", proto="imap") > 0
    assert moved("postern_connections_total", listener=str(mp.imap_port)) == 3
    assert moved("postern_connections_total", listener=str(mp.pop3_port)) == 3
    assert moved("postern_tls_handshakes_total", resumed="false") == 6
    assert moved("postern_tls_handshakes_total", resumed="true") == 0
    # nothing about who: no user name, no client address in any label
    for (name, labels), _ in after.samples.items():
        for k, v in labels:
            assert "@" not in v and v != HOST, (name, k, v)


def test_sessions_gauge_goes_up_while_relaying_and_back_down(mp, ca):
    alice, carol = "alice@example.org", "carol@example.org"
    imap = imaplib.IMAP4_SSL(HOST, mp.imap_port, ssl_context=ctx_for(ca), timeout=IO_TIMEOUT)
    pop3 = poplib.POP3_SSL(HOST, mp.pop3_port, context=ctx_for(ca), timeout=IO_TIMEOUT)
    try:
        imap.login(alice, PASSWORDS[alice])   # mx1
        pop3.user(carol)                      # mx2 (an exact user rule)
        pop3.pass_(PASSWORDS[carol])
        s = scrape(mp)
        assert s.get("postern_sessions", proto="imap", backend="mx1") == 1, s.text
        assert s.get("postern_sessions", proto="pop3", backend="mx2") == 1, s.text
        assert s.total("postern_sessions") == 2, s.text
    finally:
        imap.logout()
        pop3.quit()
    wait_metric(mp, lambda s: s.total("postern_sessions") == 0, "sessions back to 0")


def test_bytes_move_both_ways_with_the_relayed_traffic(mp, ca):
    gina = "gina@other.test"
    before = scrape(mp)
    c = imaplib.IMAP4_SSL(HOST, mp.imap_port, ssl_context=ctx_for(ca), timeout=IO_TIMEOUT)
    c.login(gina, PASSWORDS[gina])
    c.select("INBOX")
    typ, data = c.fetch("1", "(RFC822)")
    assert typ == "OK"
    body = data[0][1]
    # live: counted while the session runs, not only at its end
    mid = wait_metric(mp, lambda s: s.total("postern_bytes_total", proto="imap", direction="out")
                      - before.total("postern_bytes_total", proto="imap", direction="out")
                      >= len(body), "bytes out during the session")
    c.logout()
    after = wait_metric(mp, lambda s: s.total("postern_bytes_total", direction="in")
                        > mid.total("postern_bytes_total", direction="in"), "bytes at the end")
    d_in = after.total("postern_bytes_total", proto="imap", direction="in") - \
        before.total("postern_bytes_total", proto="imap", direction="in")
    d_out = after.total("postern_bytes_total", proto="imap", direction="out") - \
        before.total("postern_bytes_total", proto="imap", direction="out")
    assert d_out >= len(body), (d_out, len(body))
    assert 0 < d_in < d_out
    assert after.total("postern_bytes_total", proto="pop3") == \
        before.total("postern_bytes_total", proto="pop3")


def test_tls_handshakes_are_counted_with_the_resumed_label(mp, ca):
    ctx = ctx_for(ca, tls12=True)
    before = scrape(mp)

    def greet(session=None):
        raw = socket.create_connection((HOST, mp.imap_port), timeout=IO_TIMEOUT)
        s = ctx.wrap_socket(raw, server_hostname=HOST, session=session)
        s.settimeout(IO_TIMEOUT)
        assert s.recv(1024).startswith(b"* OK")
        sess, reused = s.session, s.session_reused
        s.close()
        return sess, reused

    sess, reused = greet()
    assert not reused
    _, reused = greet(sess)
    assert reused, "the client could not resume: nothing to count"
    after = scrape(mp)
    lst = str(mp.imap_port)
    for resumed, n in (("false", 1), ("true", 1)):
        assert after.get("postern_tls_handshakes_total", listener=lst, resumed=resumed) - \
            before.get("postern_tls_handshakes_total", listener=lst, resumed=resumed) == n


def test_backend_connect_errors_and_refusals_are_counted(mp, ca):
    """A user routed to a backend nothing listens on: one connect error on
    that backend, a backend_down login; a throttled login is a policy
    refusal."""
    zed = "zed@down.test"
    before = scrape(mp)
    assert not imap_login(mp, ca, zed, PASSWORDS[zed])
    after = scrape(mp)
    assert after.get("postern_backend_connect_errors_total", backend="dead") - \
        before.get("postern_backend_connect_errors_total", backend="dead") == 1
    assert after.get("postern_logins_total", proto="imap", result="backend_down") - \
        before.get("postern_logins_total", proto="imap", result="backend_down") == 1
    assert after.get("postern_backend_connect_errors_total", backend="mx1") == \
        before.get("postern_backend_connect_errors_total", backend="mx1")


def test_policy_refusals_are_counted_by_verdict(make_postern, tmp_path, ca):
    policy = ('policy = { throttle = { ip_user_limit = 1; delay_base = "0"; '
              'delay_max = "0"; }; };')
    p = with_admin(make_postern, tmp_path, policy=policy)
    alice = "alice@example.org"
    before = scrape(p)
    assert not imap_login(p, ca, alice, WRONG_PASSWORDS[0])  # counted: now over the limit
    assert not imap_login(p, ca, alice, WRONG_PASSWORDS[0])  # refused before any backend
    after = scrape(p)
    assert after.get("postern_policy_refusals_total", reason="throttle") - \
        before.get("postern_policy_refusals_total", reason="throttle") == 1
    assert after.get("postern_logins_total", proto="imap", result="throttled") - \
        before.get("postern_logins_total", proto="imap", result="throttled") == 1


def test_backend_series_survive_a_reload_that_removes_another_backend(mp, ca):
    zed = "zed@down.test"
    assert not imap_login(mp, ca, zed, PASSWORDS[zed])
    alice = "alice@example.org"
    assert imap_login(mp, ca, alice, PASSWORDS[alice])
    before = scrape(mp)
    assert before.get("postern_backend_connect_errors_total", backend="dead") >= 1
    # drop "dead" (and the route to it), put a new backend first
    mp.backends = [b for b in mp.backends if b["name"] != "dead"]
    mp.backends.insert(0, {"name": "spare", "host": HOST, "imap": harness.free_port(),
                           "pop3": harness.free_port(), "tls": "none"})
    mp.routes = [r for r in ROUTES if r.get("backend") != "dead"]
    mp.write_config()
    result, text = mp.reload()
    assert result == "ok", text
    after = scrape(mp)
    # counters keep their backend, whatever its new position
    assert after.get("postern_backend_connect_errors_total", backend="dead") == \
        before.get("postern_backend_connect_errors_total", backend="dead")
    assert after.get("postern_backend_connect_errors_total", backend="mx1") == \
        before.get("postern_backend_connect_errors_total", backend="mx1")
    assert after.labels("postern_backend_up", "backend") == {"mx1", "mx2", "spare"}
    with imaplib.IMAP4_SSL(HOST, mp.imap_port, ssl_context=ctx_for(ca),
                           timeout=IO_TIMEOUT) as c:
        c.login(alice, PASSWORDS[alice])
        s = scrape(mp)
        assert s.get("postern_sessions", proto="imap", backend="mx1") == 1, s.text
        assert s.get("postern_sessions", proto="imap", backend="spare") == 0, s.text
        c.logout()


def test_other_paths_are_404_and_other_methods_405(mp):
    status, _, _ = http_get(mp.admin_port, "/nope")
    assert status == 404
    status, _, _ = http_get(mp.admin_port, "/metrics/x")
    assert status == 404
    status, _, _ = http_get(mp.admin_port, "/metrics", method="POST")
    assert status == 405
    status, _, _ = http_get(mp.admin_port, "/health", method="DELETE")
    assert status == 405
    status, _, body = http_get(mp.admin_port, "/metrics", method="HEAD")
    assert status == 200 and body == ""


# ---------------------------------------------------------------------------
# /health
# ---------------------------------------------------------------------------


def test_health_is_200_while_a_backend_is_up_and_503_once_all_are_down(
        certs, run_dir, postern_registry, tmp_path):
    ds = []
    p = None
    try:
        for n in ("mx1", "mx2"):
            ds.append(Dovecot(n, {"alice@example.org": PASSWORDS["alice@example.org"]},
                              parent_dir=run_dir).start())
        fast = {"check_interval": "1s", "check_timeout": "1s", "rise": 1, "fall": 2}
        backends = [dict(Postern._backend_dict(d), **fast) for d in ds]

        def make(**kw):
            q = Postern(certs, backends, [{"default": True, "pool": ["mx1", "mx2"]}],
                        parent_dir=run_dir, **kw)
            postern_registry.append(q)
            return q.start()

        p = with_admin(make, tmp_path)
        status, _, body = http_get(p.admin_port, "/health")
        assert (status, body) == (200, "ok\n")
        ds[0].stop()
        # one backend left: still healthy
        wait_metric(p, lambda s: s.get("postern_backend_up", backend="mx1") == 0,
                    "mx1 down", timeout=15)
        status, _, body = http_get(p.admin_port, "/health")
        assert (status, body) == (200, "ok\n")
        ds[1].stop()
        deadline = time.monotonic() + 15 * SCALE
        while True:
            status, _, body = http_get(p.admin_port, "/health")
            if status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (status, body) == (503, "no backend up\n"), p.log()[-2000:]
        s = scrape(p)
        assert s.get("postern_backend_up", backend="mx1") == 0
        assert s.get("postern_backend_up", backend="mx2") == 0
    finally:
        if p is not None:
            p.cleanup()
        for d in ds:
            d.cleanup()


# ---------------------------------------------------------------------------
# slow clients (slowloris)
# ---------------------------------------------------------------------------

HTTP_DEADLINE = 5.0  # proxy/metrics_http.c: request in and answer out
HTTP_PER_IP_MAX = 8


def health_within(port, seconds):
    """GET /health on a connection of its own; (status line, seconds taken)."""
    t0 = time.monotonic()
    with socket.create_connection((HOST, port), timeout=seconds) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0], time.monotonic() - t0


def test_slow_clients_never_starve_health_and_are_closed_at_the_deadline(mp):
    port = mp.admin_port
    # 32 connections, 8 from each of four addresses (the per-address cap),
    # each trickling one header byte a second
    slow, opened = [], []
    header = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 64
    stop = threading.Event()
    threads = []
    try:
        for i in range(32):
            src = "127.0.0.%d" % (2 + i // HTTP_PER_IP_MAX)
            s = socket.create_connection((HOST, port), timeout=IO_TIMEOUT,
                                         source_address=(src, 0))
            slow.append(s)
            opened.append(time.monotonic())
        sent = [0] * len(slow)
        gone = [False] * len(slow)

        def trickle():
            for _ in range(int(3 * HTTP_DEADLINE) + 5):  # bounded: about 20 s at most
                for k, s in enumerate(slow):
                    if gone[k] or sent[k] >= len(header):
                        continue
                    try:
                        s.send(header[sent[k]:sent[k] + 1])
                        sent[k] += 1
                    except OSError:
                        gone[k] = True
                if stop.wait(1.0):
                    return

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        threads = [t]
        time.sleep(1.0)
        # while they hang, /health answers at once, again and again
        for _ in range(5):
            line, took = health_within(port, 2.0 * SCALE)
            assert line == b"HTTP/1.1 200 OK" and took < 2.0 * SCALE, (line, took)
            time.sleep(0.2)
        # a ninth from one of those addresses is refused at once
        extra = socket.create_connection((HOST, port), timeout=2 * SCALE,
                                         source_address=("127.0.0.2", 0))
        try:
            assert extra.recv(4096) == b"", "a ninth connection from one address was served"
        except ConnectionResetError:
            pass
        finally:
            extra.close()
        # and each slow one is closed by the server at its deadline
        for k, s in enumerate(slow):
            left = opened[k] + HTTP_DEADLINE + 3.0 * SCALE - time.monotonic()
            r, _, _ = select.select([s], [], [], max(0.0, left))
            assert r, "slow connection %d still open %.1f s after it was opened" % (
                k, time.monotonic() - opened[k])
            try:
                assert s.recv(4096) == b"", k
            except ConnectionResetError:
                pass
        assert all(sent[k] < len(header) for k in range(len(slow))), sent
        line, took = health_within(port, 2.0 * SCALE)
        assert line == b"HTTP/1.1 200 OK", line
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for s in slow:
            s.close()
