"""Zero-downtime upgrade: a new postern starts on the same listeners as the
running one (SO_REUSEPORT puts both in one socket group), it is fully up
(READY=1 on $NOTIFY_SOCKET, as systemd would see it), then the old one gets
SIGTERM.  Meanwhile client threads run real IMAPS logins (imaplib over
verified TLS) and every attempt is classified:

  refused     connect() failed: nothing listened.  Must never happen.
  unaccepted  the TCP handshake completed but no postern ever accepted the
              connection (its client port is in no postern's session.start
              line) and it was reset: it sat in the old process's listen
              queue when that socket closed.  Linux resets such connections
              unless net.ipv4.tcp_migrate_req = 1 (5.14+), which moves them
              to another socket of the SO_REUSEPORT group.  A reset that
              reaches connect() itself, before the client has a port to
              look for, is the same.
  cut         accepted by the old postern and ended when it stopped (a login
              in flight; the graceful drain's business, reported only).
  ok          logged in and out.

With migration on, refused + unaccepted must be 0.  With it off (or when
this host does not let the test set it) the figure is measured and
reported, and every failure must be one of the kinds explained above.
POSTERN_UPGRADE_SWAPS (default 3) sets the number of swaps per run."""

import errno
import imaplib
import os
import signal
import socket
import ssl
import threading
import time

import pytest

import harness
from harness import IO_TIMEOUT, PASSWORDS, ROUTES, NotifySocket, Postern

HOST = "127.0.0.1"
USER = "alice@example.org"
MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req"
SWAPS = int(os.environ.get("POSTERN_UPGRADE_SWAPS") or 3)
CLIENTS = 6           # login threads
MAX_ATTEMPTS = 20000  # per thread: the loop is bounded in count and in time
MAX_SECONDS = 120.0


class _Login(imaplib.IMAP4_SSL):
    """IMAP4_SSL that remembers its client port and how far it got."""

    def __init__(self, port, ctx, result):
        self._result = result
        super().__init__(HOST, port, ssl_context=ctx, timeout=IO_TIMEOUT)

    def _create_socket(self, timeout):
        self._result["phase"] = "connect"
        sock = socket.create_connection((self.host, self.port), timeout)
        self._result["cport"] = sock.getsockname()[1]
        self._result["phase"] = "greeting"  # TLS handshake and greeting
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


class LoginLoop:
    """CLIENTS threads, each logging in and out in a loop until stop()."""

    def __init__(self, port, ca):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.results = []  # dicts: t0, phase, cport, ok, error
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(CLIENTS)]

    def _one(self):
        r = {"t0": time.monotonic(), "phase": None, "cport": None, "ok": False,
             "error": None}
        try:
            c = _Login(self.port, self.ctx, r)
            r["phase"] = "login"
            c.login(USER, PASSWORDS[USER])
            r["phase"] = "logout"
            c.logout()
            r["ok"] = True
        except (OSError, imaplib.IMAP4.error, EOFError) as e:
            r["error"] = "%s: %s" % (type(e).__name__, e)
            r["errno"] = getattr(e, "errno", None)
        with self.lock:
            self.results.append(r)

    def _run(self):
        end = time.monotonic() + MAX_SECONDS
        for _ in range(MAX_ATTEMPTS):
            if self.stopping.is_set() or time.monotonic() > end:
                return
            self._one()

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(IO_TIMEOUT + 5)

    def count(self):
        with self.lock:
            return len(self.results)


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


@pytest.fixture
def migrate_req(request):
    """Sets net.ipv4.tcp_migrate_req to the wanted value when allowed; yields
    the value in effect (None: the kernel has no such setting); restores."""
    want = request.param
    before = _read_int(MIGRATE)
    if before is not None and before != want:
        try:
            with open(MIGRATE, "w") as f:
                f.write("%d\n" % want)
        except OSError:
            pass
    yield _read_int(MIGRATE)
    if before is not None and _read_int(MIGRATE) != before:
        with open(MIGRATE, "w") as f:
            f.write("%d\n" % before)


def _client_ports(p):
    """The client ports in p's session.start lines."""
    ports = set()
    for line in p.log().splitlines():
        if "event=session.start" in line:
            for kv in line.split():
                if kv.startswith("client=127.0.0.1:"):
                    ports.add(int(kv.rsplit(":", 1)[1]))
    return ports


def classify(results, old, new):
    """Each result's kind (see the module text).  old: the posterns that got
    SIGTERM; new: the one left running."""
    by_old = set().union(*(_client_ports(p) for p in old))
    by_new = _client_ports(new)
    out = []
    for r in results:
        if r["ok"]:
            kind = "ok"
        elif r["phase"] == "connect" and r.get("errno") == errno.ECONNRESET:
            # The handshake completed into the old socket's queue and its
            # close reset it before connect() returned: unaccepted, with no
            # client port to look for yet.
            kind = "unaccepted"
        elif r["phase"] == "connect":
            kind = "refused" if r.get("errno") == errno.ECONNREFUSED else "connect_failed"
        elif r["cport"] in by_new:
            kind = "cut_by_new"  # must not happen
        elif r["cport"] in by_old:
            kind = "cut"
        else:
            kind = "unaccepted"
        out.append((kind, r))
    return out


@pytest.mark.parametrize("migrate_req", [1, 0], indirect=True,
                         ids=["tcp_migrate_req=1", "tcp_migrate_req=0"])
def test_swap_under_login_load_refuses_nothing(migrate_req, certs, mx1, mx2, dead_backend,
                                                postern_registry, run_dir, ca, monkeypatch):
    d = os.path.join(run_dir, "u%d" % os.getpid())
    os.makedirs(d, exist_ok=True)
    notify = NotifySocket(d)
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    made = []

    def start(**kw):
        p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir,
                    log_level="info", **kw)
        postern_registry.append(p)
        made.append(p)
        p.start()  # its ports may answer from the old one: READY=1 is the proof
        ready = notify.wait_for("READY", pid=p.proc.pid, timeout=10)
        assert ready, "postern %d sent no READY=1" % p.proc.pid
        return p

    loop = None
    old = []
    swap_ms = []
    try:
        cur = start()
        loop = LoginLoop(cur.imap_port, ca)
        loop.start()
        time.sleep(0.5)
        for _ in range(SWAPS):
            t0 = time.monotonic()
            # Same config text (harness writes the same settings), same ports.
            nxt = start(imap_port=cur.imap_port, pop3_port=cur.pop3_port)
            os.kill(cur.proc.pid, signal.SIGTERM)
            cur.proc.wait(timeout=30 * harness.TIMEOUT_SCALE)
            swap_ms.append((time.monotonic() - t0) * 1000)
            old.append(cur)
            cur = nxt
            time.sleep(0.5)  # logins on the new one alone before the next swap
        loop.stop()
        assert cur.running()
        assert notify.wait_for("STOPPING", count=len(old))

        kinds = classify(loop.results, old, cur)
        tally = {}
        for kind, _r in kinds:
            tally[kind] = tally.get(kind, 0) + 1
        failed = [(k, r) for k, r in kinds if k != "ok"]
        report = ("tcp_migrate_req=%s swaps=%d attempts=%d %s swap_ms=%s"
                  % (migrate_req, SWAPS, len(kinds),
                     " ".join("%s=%d" % kv for kv in sorted(tally.items())),
                     ",".join("%.0f" % x for x in swap_ms)))
        print("\nupgrade: " + report)
        for k, r in failed[:20]:
            print("  %s phase=%s cport=%s %s" % (k, r["phase"], r["cport"], r["error"]))

        assert tally.get("ok", 0) > 0
        assert tally.get("refused", 0) == 0, report
        assert tally.get("connect_failed", 0) == 0, report
        assert tally.get("cut_by_new", 0) == 0, report
        if migrate_req == 1:
            assert tally.get("unaccepted", 0) == 0, report
    finally:
        if loop is not None:
            loop.stop()
        for p in made:
            p.cleanup()
        notify.close()
        try:
            os.unlink(notify.path)
        except FileNotFoundError:
            pass
