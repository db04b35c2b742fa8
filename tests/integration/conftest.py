"""pytest fixtures for postern's integration tests: one set of test
certificates, two real Dovecot backends ("mx1", "mx2") and a postern in
front of them for the whole session, plus a fresh stack per test for tests
that stop a backend.  Their users, passwords and routes are in
harness/expect.py.

At the end, the fixtures that the modules of one feature share: the TLS
modules' STARTTLS postern, the policy modules' Dovecot ("pmx") and postern
factory, the routing modules' postern and Dovecot factories.  A
module-scoped one is set up once in each module that uses it."""

import os
import shutil
import signal
import tempfile

import pytest

# The harness's own asserts (helpers such as tagged() and lock_show()) report
# their values the way a test's asserts do.
pytest.register_assert_rewrite("harness")

import harness  # noqa: E402
import harness.policy  # noqa: E402
import harness.routing  # noqa: E402
from harness import MX1_USERS, MX2_USERS, PASSWORDS, ROUTES, Dovecot, Postern, cleanup_all  # noqa: E402


# ---- sanitizer reports (make integration-asan) ------------------------------
# postern built with ASan/UBSan writes each report to a file in
# harness.SANITIZER_LOGS.  A test during which one appears fails at teardown
# with the report; and since leaks of the session's postern are found only
# when it exits at the end, any report file at all fails the whole run.


@pytest.fixture(autouse=True)
def _sanitizer_reports_fail_the_test():
    before = set(harness.sanitizer_reports())
    yield
    new = {k: v for k, v in harness.sanitizer_reports().items() if k not in before}
    if new:
        pytest.fail("sanitizer report(s) during this test:\n" +
                    "\n".join("--- %s ---\n%s" % kv for kv in sorted(new.items())),
                    pytrace=False)


# The password checks read the log of every postern the run started.
LAST = ("test_no_password_used_in_these_tests_appears_in_any_postern_log",  # TLS's
        "test_no_password_ever_appears_in_the_log")


def pytest_collection_modifyitems(session, config, items):
    # The password checks go last, after the logins of every module (route
    # rules, the TLS modules, ...).
    last = sorted((i for i in items if i.name in LAST), key=lambda i: LAST.index(i.name))
    items[:] = [i for i in items if i not in last] + last


def pytest_sessionfinish(session, exitstatus):
    if harness.sanitizer_reports() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reports = harness.sanitizer_reports()
    if not reports:
        return
    tr = terminalreporter
    tr.section("sanitizer reports: %d file(s) in %s" % (len(reports), harness.SANITIZER_LOGS),
               red=True)
    for path, text in sorted(reports.items()):
        tr.write_line("--- %s ---" % path)
        tr.write_line(text)
    tr.write_line("FAILED: sanitizer reports (above)", red=True)


@pytest.fixture(scope="session")
def run_dir():
    d = tempfile.mkdtemp(prefix="pit-")
    os.chmod(d, 0o755)  # the mail uid walks through it to its maildir
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def certs(run_dir):
    return harness.make_certs(os.path.join(run_dir, "certs"))


@pytest.fixture(scope="session")
def ca(certs):
    return certs["ca"]


def _dovecot(name, users, run_dir):
    d = Dovecot(name, {u: PASSWORDS[u] for u in users}, parent_dir=run_dir)
    d.start()
    return d


@pytest.fixture(scope="session")
def mx1(run_dir):
    d = _dovecot("mx1", MX1_USERS, run_dir)
    yield d
    d.cleanup()


@pytest.fixture(scope="session")
def mx2(run_dir):
    d = _dovecot("mx2", MX2_USERS, run_dir)
    yield d
    d.cleanup()


@pytest.fixture(scope="session")
def backends(mx1, mx2):
    return {"mx1": mx1, "mx2": mx2}


@pytest.fixture(scope="session")
def dead_backend():
    """A backend entry whose ports nothing listens on."""
    return {"name": "dead", "imap": harness.free_port(), "pop3": harness.free_port()}


@pytest.fixture(scope="session")
def postern_registry():
    """Every Postern started in this session; their logs outlive them."""
    return []


class _ProxyHolder:
    def __init__(self):
        self.current = None
        self.crashes = []


@pytest.fixture(scope="session")
def _proxy_holder(certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    h = _ProxyHolder()
    p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir)
    postern_registry.append(p)
    p.start()
    h.current = p
    yield h
    for q in postern_registry:
        q.cleanup()


@pytest.fixture
def proxy(_proxy_holder, postern_registry, certs, mx1, mx2, dead_backend, run_dir):
    """The session's postern.  If an earlier test made it exit, a new one is
    started on the same ports (so one crash does not fail every later test),
    and a test during which postern exits fails at teardown with its log."""
    h = _proxy_holder
    p = h.current
    if not p.running():
        p.stop()
        q = Postern(certs, [mx1, mx2, dead_backend], ROUTES, imap_port=p.imap_port,
                    pop3_port=p.pop3_port, parent_dir=run_dir)
        postern_registry.append(q)
        q.start()
        h.current = p = q
    yield p
    if not p.running():
        rc = p.proc.returncode
        p.stop()
        pytest.fail("postern exited during this test (exit status %s); log tail:\n%s"
                    % (rc, "\n".join(p.log().splitlines()[-40:])))


@pytest.fixture
def make_postern(certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    """A factory for an extra postern in front of the session backends, with
    Postern() keyword overrides (e.g. timeouts={"login": "2s"}); each one is
    stopped after the test."""
    made = []

    def make(**kw):
        p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir, **kw)
        postern_registry.append(p)
        made.append(p)
        return p.start()

    yield make
    for p in made:
        p.cleanup()


class Stack:
    """A private mx1 + mx2 + postern for one test (which may stop a backend)."""

    def __init__(self, mx1, mx2, postern):
        self.mx1, self.mx2, self.postern = mx1, mx2, postern
        self.backends = {"mx1": mx1, "mx2": mx2}


@pytest.fixture
def stack(certs, postern_registry, run_dir):
    started = []
    try:
        a = _dovecot("mx1", ["alice@example.org", "carol@example.org"], run_dir)
        started.append(a)
        b = _dovecot("mx2", ["carol@example.org", "erin@other.test"], run_dir)
        started.append(b)
        routes = [{"user": "carol@example.org", "backend": "mx2"},
                  {"domain": "example.org", "backend": "mx1"},
                  {"default": True, "backend": "mx2"}]
        p = Postern(certs, [a, b], routes, parent_dir=run_dir)
        postern_registry.append(p)
        p.start()
        started.append(p)
        yield Stack(a, b, p)
    finally:
        for x in reversed(started):
            x.cleanup()


# ---- TLS (test_tls_*.py) ----------------------------------------------------


@pytest.fixture(scope="module")
def tls_dir(run_dir):
    d = os.path.join(run_dir, "tls")
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def _stls_holder(certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    """implicit IMAP/POP3 + STARTTLS IMAP/POP3, plaintext auth refused."""
    h = harness.RestartingPostern(
        lambda: Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir,
                        starttls=True), postern_registry)
    yield h
    h.close()


@pytest.fixture
def stls_proxy(_stls_holder):
    yield from _stls_holder.checked(pytest.fail)


# ---- policies (test_protolock, test_limits, test_acl, test_policy_check) ----


@pytest.fixture(scope="module")
def pmx(run_dir):
    d = Dovecot("pmx", harness.policy.PASSWORDS, messages=1, parent_dir=run_dir)
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
        p = Postern(certs, [pmx], harness.policy.ROUTES, policy=policy, extra=extra,
                    parent_dir=run_dir, **kw)
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


@pytest.fixture
def map_file(run_dir):
    fd, path = tempfile.mkstemp(prefix="pit-protocols-", dir=run_dir)
    with os.fdopen(fd, "w") as f:
        f.write(harness.policy.STATIC_FILE)
    os.chmod(path, 0o644)
    yield path
    os.unlink(path)


# ---- routing (test_routing_*.py) --------------------------------------------


@pytest.fixture
def start_postern(certs, postern_registry, run_dir):
    """Factory: a postern started with make(backends, routes, **Postern kw);
    stopped after the test.  A test during which one exits fails with its log."""
    made = []

    def make(backends, routes, **kw):
        p = Postern(certs, backends, routes, parent_dir=run_dir, **kw)
        postern_registry.append(p)
        made.append(p)
        return p.start()

    yield make
    dead = [(p, p.proc.returncode) for p in made if p.proc is not None and not p.running()]
    for p in made:
        p.cleanup()
    if dead:
        p, rc = dead[0]
        pytest.fail("postern exited during this test (exit status %s); log tail:\n%s"
                    % (rc, "\n".join(p.log().splitlines()[-40:])))


@pytest.fixture
def make_backend(run_dir):
    """Factory: one more real Dovecot (Dovecot() keyword options) with every
    test user, LOGFMT unless extra_conf is given."""
    made = []

    def make(name, **kw):
        kw.setdefault("extra_conf", harness.routing.LOGFMT)
        d = Dovecot(name, harness.routing.PASSWORDS, parent_dir=run_dir, **kw)
        made.append(d)
        return d.start()

    yield make
    cleanup_all(made)
