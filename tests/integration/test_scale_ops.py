"""The admin's lookups by user and the drain sweep at a few thousand sessions:
they must do work in proportion to what they find, not to every session
the proxy holds.  Counted, not timed: postern counts the sessions the
admin's sessions/kick jobs looked at ("admin: sessions visited N" in
`stats`, postern_admin_sessions_visited_total in /metrics) and those the
sweep of the sessions being ended looked at.

The sessions are real: TLS IMAP clients from this process, logged in
through postern and IDLEing, relayed to a tiny fake IMAP backend (asyncio,
plain TCP) that serves any login, so that thousands of logins cost little.
"""

import asyncio
import os
import re
import resource
import ssl
import tempfile
import threading
import time

import pytest

from harness import TIMEOUT_SCALE, Postern, free_port, run_postern

HOST = "127.0.0.1"
USERS = int(os.environ.get("SCALE_OPS_USERS") or 300)  # u000 .. u299
PER_USER = 10      # sessions each
NEEDLE = "needle"  # and one more user with 3 sessions
NEEDLES = 3
TOTAL = USERS * PER_USER + NEEDLES
WORKERS = 2
# A user's index chain holds its own sessions and, rarely, those of a user
# whose name hashes to the same bucket (PER_USER each): a few such users at
# most, never the thousands a walk of every session visits.
VISIT_BOUND = NEEDLES + 2 * PER_USER
OPEN_SECONDS = 60 * TIMEOUT_SCALE
CONCURRENCY = 64


# ---- the fake backend ---------------------------------------------------------

async def backend_session(reader, writer):
    """Any login is OK; IDLE waits for DONE; LOGOUT ends it."""
    writer.write(b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID IDLE AUTH=PLAIN] fake ready\r\n")
    idle_tag = None
    sasl_tag = None
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            line = line.rstrip(b"\r\n")
            if sasl_tag is not None:  # the AUTHENTICATE continuation's answer
                writer.write(sasl_tag + b" OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n")
                sasl_tag = None
                continue
            if idle_tag is not None:
                if line.upper() == b"DONE":
                    writer.write(idle_tag + b" OK IDLE done\r\n")
                    idle_tag = None
                continue
            parts = line.split(b" ")
            tag, cmd = parts[0], (parts[1].upper() if len(parts) > 1 else b"")
            if cmd == b"CAPABILITY":
                writer.write(b"* CAPABILITY IMAP4rev1 SASL-IR ID IDLE AUTH=PLAIN\r\n"
                             + tag + b" OK done\r\n")
            elif cmd == b"ID":
                writer.write(b"* ID NIL\r\n" + tag + b" OK ID done\r\n")
            elif cmd == b"AUTHENTICATE" and len(parts) == 3:
                sasl_tag = tag
                writer.write(b"+ \r\n")
            elif cmd in (b"AUTHENTICATE", b"LOGIN"):
                writer.write(tag + b" OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n")
            elif cmd == b"IDLE":
                idle_tag = tag
                writer.write(b"+ idling\r\n")
            elif cmd == b"LOGOUT":
                writer.write(b"* BYE bye\r\n" + tag + b" OK bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(tag + b" OK done\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


# ---- the clients ----------------------------------------------------------------

class Clients:
    """TLS IMAP sessions held open by one asyncio loop in its own thread."""

    def __init__(self, port):
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.held = {}    # user -> number of sessions in IDLE
        self.ended = {}   # user -> sessions the server closed
        self.failed = []  # the first errors
        self.writers = []
        self.server = None

    def run(self, coro, timeout):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _serve(self):
        self.server = await asyncio.start_server(backend_session, HOST, 0, backlog=4096)
        return self.server.sockets[0].getsockname()[1]

    def start_backend(self):
        return self.run(self._serve(), 10)

    async def _session(self, user, sem):
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    HOST, self.port, ssl=self.ctx, server_hostname="localhost"), 20)
                self.writers.append(w)
                await asyncio.wait_for(r.readline(), 20)  # greeting
                w.write(b"a LOGIN %s pw\r\n" % user.encode())
                while True:
                    line = await asyncio.wait_for(r.readline(), 20)
                    if not line or line.startswith(b"a "):
                        break
                if not line.startswith(b"a OK"):
                    raise RuntimeError("login %s: %r" % (user, line))
                w.write(b"b IDLE\r\n")
                line = await asyncio.wait_for(r.readline(), 20)
                if not line.startswith(b"+"):
                    raise RuntimeError("idle %s: %r" % (user, line))
            except Exception as e:  # counted; the test asserts none
                if len(self.failed) < 5:
                    self.failed.append("%s: %r" % (user, e))
                return
            self.held[user] = self.held.get(user, 0) + 1
        # held: wait for the server to end it (a kick), or for the test's end
        try:
            while await r.readline():
                pass
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        self.held[user] -= 1
        self.ended[user] = self.ended.get(user, 0) + 1

    async def _open(self, users):
        sem = asyncio.Semaphore(CONCURRENCY)
        tasks = [asyncio.ensure_future(self._session(u, sem)) for u in users]
        deadline = self.loop.time() + OPEN_SECONDS
        while sum(self.held.values()) + len(self.failed) < len(users):
            if self.loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        return tasks

    def open(self, users):
        self.tasks = self.run(self._open(users), OPEN_SECONDS + 10)

    async def _close(self):
        for w in self.writers:
            w.close()
        if self.server is not None:
            self.server.close()
        await asyncio.sleep(0.1)
        for t in self.tasks:
            t.cancel()

    def close(self):
        try:
            self.run(self._close(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


# ---- the test -------------------------------------------------------------------

def admin(p, *args):
    r = run_postern("-c", p.conf_path, *args, timeout=30)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr)
    return r.stdout


def visited(p):
    """(admin, sweep): the sessions each has looked at so far."""
    m = re.search(r"admin: sessions visited (\d+); drain sweep: sessions visited (\d+)",
                  admin(p, "stats"))
    assert m, "stats has no visited counts"
    return int(m.group(1)), int(m.group(2))


def listed(out):
    """The sessions of a `sessions` text answer (its lines but the header)."""
    return [ln for ln in out.splitlines()[1:] if ln.strip() and not ln.startswith("(")]


def rss_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    return 0


@pytest.fixture
def nofile():
    # each session: a client socket here, postern's two, the fake backend's
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * TOTAL + 1000
    if soft == resource.RLIM_INFINITY or soft >= want:
        yield
        return
    try:  # postern inherits it; above the hard limit only as root
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (want, hard if hard == resource.RLIM_INFINITY else max(hard, want)))
    except (ValueError, OSError):
        pytest.skip("RLIMIT_NOFILE %d/%d is too low for %d sessions" % (soft, hard, TOTAL))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_admin_lookups_by_user_and_the_drain_sweep_visit_only_what_they_find(
        certs, run_dir, postern_registry, nofile):
    t0 = time.monotonic()
    imap_port = free_port()
    clients = Clients(imap_port)
    p = None
    try:
        backend_port = clients.start_backend()
        sockdir = tempfile.mkdtemp(prefix="adm-", dir=run_dir)
        p = Postern(certs, [{"name": "fake", "imap": backend_port, "pop3": backend_port}],
                    [{"default": True, "backend": "fake"}], imap_port=imap_port,
                    workers=WORKERS, log_level="info", parent_dir=run_dir,
                    timeouts={"drain": "10s", "drain_quiet": "300ms", "drain_spread": "0s"},
                    extra='admin = { socket = "%s"; };' % os.path.join(sockdir, "admin.sock"))
        postern_registry.append(p)
        p.start()

        users = ["u%03d" % (i % USERS) for i in range(USERS * PER_USER)]
        users += [NEEDLE] * NEEDLES
        clients.open(users)
        assert not clients.failed, clients.failed
        assert sum(clients.held.values()) == TOTAL
        opened = time.monotonic() - t0

        # Every session is there: a plain `sessions` lists them all, and
        # looks at each (the counter counts).
        a0, _ = visited(p)
        before_kib = rss_kib(p.proc.pid, "VmRSS")
        with open("/proc/%d/clear_refs" % p.proc.pid, "w") as f:
            f.write("5")  # VmHWM from here on
        out = admin(p, "sessions")
        peak_kib = rss_kib(p.proc.pid, "VmHWM")
        assert len(listed(out)) == TOTAL
        a1, _ = visited(p)
        assert a1 - a0 >= TOTAL

        # By user: the user's sessions, and not the others.
        out = admin(p, "sessions", "--user", NEEDLE)
        rows = listed(out)
        assert len(rows) == NEEDLES and all(" needle " in r for r in rows), out
        a2, s2 = visited(p)
        by_user = a2 - a1
        assert by_user <= VISIT_BOUND, "sessions --user visited %d of %d" % (by_user, TOTAL)
        # the same user in other letters: the filter compares without case
        assert len(listed(admin(p, "sessions", "--user", "NeEdLe"))) == NEEDLES
        a3, _ = visited(p)

        # kick --user: those three end, the others stay.
        k0 = time.monotonic()
        assert "kicked %d sessions" % NEEDLES in admin(p, "kick", "--user", NEEDLE)
        a4, _ = visited(p)
        kick = a4 - a3
        assert kick <= VISIT_BOUND, "kick --user visited %d of %d" % (kick, TOTAL)
        deadline = time.monotonic() + 15 * TIMEOUT_SCALE
        while clients.ended.get(NEEDLE, 0) < NEEDLES and time.monotonic() < deadline:
            time.sleep(0.1)
        assert clients.ended.get(NEEDLE, 0) == NEEDLES
        time.sleep(0.3)  # the sweep's ticks after the last one closed
        _, s5 = visited(p)
        ticks = (time.monotonic() - k0) / 0.1 + 2
        sweep = s5 - s2
        # Each tick of a worker looks at its sessions being ended: the
        # needle's three at most, never the worker's 1500.
        assert sweep <= NEEDLES * WORKERS * ticks, \
            "the sweep visited %d in %.0f ticks" % (sweep, ticks)
        assert sum(clients.held.values()) == TOTAL - NEEDLES
        assert len(listed(admin(p, "sessions", "--user", "u007"))) == PER_USER

        print("\n%d sessions open in %.1fs; visited: sessions %d, sessions --user %d, "
              "kick --user %d, drain sweep %d (%.0f ticks); RSS %d KiB, peak during "
              "sessions +%d KiB" % (TOTAL, opened, a1 - a0, by_user, kick, sweep, ticks,
                                    before_kib, peak_kib - before_kib))
    finally:
        if p is not None:
            p.cleanup()
        clients.close()
    assert time.monotonic() - t0 < 120 * TIMEOUT_SCALE
