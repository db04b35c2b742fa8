#!/usr/bin/python3
"""postern at scale (`make scale N=100000`): N concurrent relayed IMAP sessions.

For each step N of SCALE_STEPS (default 10000 50000 N, those up to N) and
each proxy of PROXIES (default "postern postern-redis haproxy"), all on
127.0.0.1 in one run:
  postern        this checkout's ./postern, no state store (in memory)
  postern-redis  the same with state = "redis://127.0.0.1:PORT" (a
                 redis-server of the run's own, no persistence)
  haproxy        HAProxy in TCP mode terminating TLS, round robin over the
                 same backend ports (2 threads)
the run starts a fresh build/bench/scale_backend (fake IMAP backend on
BACKENDS ports; postern routes by a pool, rendezvous hashing on the user),
a fresh proxy, and build/bench/scale_client, which opens N TLS sessions from
64 loopback sources (127.1.x.y), logs each in and leaves it in IDLE.  With
the N held it measures:
  - the time to open them, and how many failed;
  - the proxy's RSS and PSS (its whole process tree) per session, over what
    it used just after start;
  - the proxy's CPU seconds per second over an IDLE_SECS window (/proc),
    and over EMPTY_SECS before the client started (no session);
  - p50/p99 of PROBES new logins made one after another (connect to the
    LOGIN's tagged OK);
  - postern only, each 3 times (median): `postern sessions`, `sessions
    --user`, `kick --user` (checking that the client's held count drops by
    the user's sessions), a GET /metrics; then a drain (SIGTERM, with
    timeouts.drain DRAIN and drain_spread DRAIN_SPREAD): the time until the
    client holds nothing and until postern has exited;
  - postern-redis only: Redis commands/s over the idle window (INFO stats;
    which commands from INFO commandstats) and Redis used_memory per 100k
    sessions over what it used after postern started.
It prints a table and the ratios of postern to HAProxy, and writes both to
OUT_DIR/table.txt with every figure in OUT_DIR/results.json.

Shards: a process holds as many sessions as its nofile limit allows (a
proxy 2 fds per session, scale_client and scale_backend 1).  Where the hard
limit cannot be raised (no CAP_SYS_RESOURCE, as in some containers) and N
does not fit, each proxy runs as K = ceil(N / per process) processes of the
same kind listening on the same port (postern and HAProxy bind with
SO_REUSEPORT: the kernel spreads the connections), with enough
scale_backend processes (postern's pool and HAProxy's backend list all
their ports) and scale_clients (whole rounds of the users each, so a user
still has PER_USER sessions).  postern's shards each have their own admin
socket, /metrics port and log, and one redis-server for all (each picks its
own proxy id).  Memory and CPU are summed over the shards; `sessions`,
`sessions --user`, `kick --user` and /metrics run on every shard in turn
(the table shows the sum and the slowest shard); the drain sends SIGTERM to
every shard at once.  Where the limit can be raised, K = 1.

For the duration of the run it sets net.core.somaxconn,
net.ipv4.tcp_max_syn_backlog and net.ipv4.ip_local_port_range (and
fs.nr_open if it is too low) and puts them back on exit, also on an error,
SIGINT or SIGTERM; the processes it starts get a nofile limit to match.
Every process it starts is stopped by PID.

Knobs (environment): N, SCALE_STEPS="10000 50000 100000", PROXIES,
BACKENDS (8), CONCURRENCY (200), SOURCES (64), PER_USER (10: sessions per
user, so `--user` matches that many), PROBES (200), IDLE_SECS (10), SETTLE
(3), EMPTY_SECS (3), REDIS_SECS (30: the idle window with Redis, 3
heartbeats), DRAIN ("60s"), DRAIN_SPREAD ("5s"), POSTERN_LOG_LEVEL
("warn"), SESSION_LIMIT (1000: policy.max_sessions_per_user, which makes
postern count, and with Redis register, every session), SCALE_PORT_BASE
(61000: the run's ports, from it up to +4000; the ephemeral range is set to
end below it), METRICS=0 (no admin.http, no
/metrics scrape), PER_PROC (sessions per process, 0: what nofile allows;
set it to shard at a small N), POSTERN, SCALE_BACKEND, SCALE_CLIENT, OUT_DIR,
KEEP_RUN_DIR=1.
"""

import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

# shared with the side-by-side benchmark (tests/bench/bench.py)
from bench import _raise, alive, cpu_s, env, log, port_open, tree_pids, wait_ports  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")



N_MAX = env("N", 100000, int)
STEPS = [int(x) for x in env("SCALE_STEPS", " ".join(
    str(s) for s in sorted({s for s in (10000, 50000) if s < N_MAX} | {N_MAX}))).split()]
PROXIES = env("PROXIES", "postern postern-redis haproxy").split()
NBACKENDS = env("BACKENDS", 8, int)
CONC = env("CONCURRENCY", 200, int)
SOURCES = env("SOURCES", 64, int)
PER_USER = env("PER_USER", 10, int)
PROBES = env("PROBES", 200, int)
IDLE_SECS = env("IDLE_SECS", 10.0, float)
SETTLE = env("SETTLE", 3.0, float)
EMPTY_SECS = env("EMPTY_SECS", 3.0, float)
REDIS_SECS = env("REDIS_SECS", 30.0, float)
DRAIN = env("DRAIN", "60s")
DRAIN_SPREAD = env("DRAIN_SPREAD", "5s")
LOG_LEVEL = env("POSTERN_LOG_LEVEL", "warn")
SESSION_LIMIT = env("SESSION_LIMIT", 1000, int)
PORT_BASE = env("SCALE_PORT_BASE", 61000, int)
POSTERN = env("POSTERN", os.path.join(ROOT, "postern"))
SCALE_BACKEND = env("SCALE_BACKEND", os.path.join(ROOT, "build", "bench", "scale_backend"))
SCALE_CLIENT = env("SCALE_CLIENT", os.path.join(ROOT, "build", "bench", "scale_client"))
OUT_DIR = env("OUT_DIR", os.path.join(ROOT, "build", "scale"))
KEEP_RUN_DIR = env("KEEP_RUN_DIR", "0") == "1"
METRICS = env("METRICS", "1") == "1"  # postern's admin.http (/metrics)
PER_PROC = env("PER_PROC", 0, int)  # sessions per process (0: what nofile allows)
ADMIN_RUNS = 3

PORTS = {"backend": PORT_BASE + 100, "postern": PORT_BASE + 993, "postern-redis": PORT_BASE + 1993,
         "haproxy": PORT_BASE + 2993, "metrics": PORT_BASE + 910, "redis": PORT_BASE + 379}

SYSCTLS = {"net.core.somaxconn": "65535", "net.ipv4.tcp_max_syn_backlog": "65535",
           # the ephemeral ports end below the run's own listeners: an outgoing
           # connection (or its TIME_WAIT) on one of them would make a later
           # bind fail
           "net.ipv4.ip_local_port_range": "1024 %d" % min(65000, PORT_BASE - 1)}



def secs(s):
    """A postern duration ("60s", "5m", "500ms", "7") in seconds."""
    m = re.fullmatch(r"([\d.]+)(ms|s|m|h|d)?", s.strip())
    if not m:
        raise SystemExit("bad duration %r" % s)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600,
                                "d": 86400}[m.group(2)]


# ---------------------------------------------------------------- the kernel

class Sysctls:
    """Kernel settings changed for the run, each put back by restore()."""

    def __init__(self):
        self.old = {}  # name -> value before the run

    @staticmethod
    def path(name):
        return "/proc/sys/" + name.replace(".", "/")

    def get(self, name):
        with open(self.path(name)) as f:
            return " ".join(f.read().split())

    def set(self, name, value):
        old = self.get(name)
        if old == " ".join(value.split()):
            return
        self.old.setdefault(name, old)
        with open(self.path(name), "w") as f:
            f.write(value)
        log("sysctl %s: %s -> %s" % (name, old, value))

    def restore(self):
        for name, value in reversed(list(self.old.items())):
            try:
                with open(self.path(name), "w") as f:
                    f.write(value)
                log("sysctl %s restored to %s" % (name, value))
            except OSError as e:
                log("sysctl %s: could not restore %s: %s" % (name, value, e))
        self.old = {}


# ---------------------------------------------------------------- processes

def nofile_limit():
    """What every process started gets: room for 2 fds per session and more."""
    return max(65536, 4 * max(STEPS) + 65536)


def nofile_hard():
    """The nofile limit processes started here can have: nofile_limit(), or
    the hard limit already set when this process may not raise it (no
    CAP_SYS_RESOURCE, as in some containers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = nofile_limit()
    if hard == resource.RLIM_INFINITY or hard >= want:
        return want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, want))
        return want
    except (ValueError, OSError):
        return hard


NOFILE = None  # set by main(): the limit every process started gets


def raise_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def capacity(nofile):
    """The most sessions a proxy holds with this many fds: two per session
    (client and backend), and room for listeners, links, probes."""
    return (nofile - 500) // 2 - PROBES_ROOM


PROBES_ROOM = 100  # room left for the probes over N (HAProxy's maxconn)


def per_proc(kind):
    """How many sessions one process of a kind ("proxy", "client",
    "backend") holds under the nofile limit: a proxy 2 fds per session, the
    client and the backend 1; PER_PROC overrides all three."""
    if PER_PROC > 0:
        return PER_PROC
    if kind == "proxy":
        return capacity(NOFILE)
    return NOFILE - 500 - PROBES_ROOM


def ceil_div(a, b):
    return -(-a // b)


def proxy_shards(n):
    """K proxy processes for n sessions (1 when one process holds them)."""
    return max(1, ceil_div(n, per_proc("proxy")))


def backend_procs(n):
    """scale_backend processes for n sessions: postern's rendezvous hashing
    spreads them unevenly over the ports, so 10% of room."""
    return max(1, ceil_div(n + n // 10, per_proc("backend")))


def client_split(n):
    """The sessions of each scale_client for n: whole rounds of the users
    (session i logs in as user<i % users>) when a round fits in one process,
    so every user has PER_USER sessions in total as with one client."""
    users = max(1, n // PER_USER)
    per = per_proc("client")
    if users > per or n <= per:
        k = max(1, ceil_div(n, per))
        return [n // k + (1 if i < n % k else 0) for i in range(k)]
    rounds, rest = divmod(n, users)
    k = ceil_div(rounds, per // users)
    sizes = [users * (rounds // k + (1 if i < rounds % k else 0)) for i in range(k)]
    sizes[-1] += rest
    return sizes


class Procs:
    """Every process started, stopped by PID in reverse order (SIGTERM, then
    SIGKILL for it and whatever it forked that is left)."""

    def __init__(self):
        self.started = []  # (name, Popen)

    def start(self, name, argv, logfile, stdin=subprocess.DEVNULL, stdout=None):
        f = open(logfile, "ab")
        try:
            p = subprocess.Popen(argv, stdin=stdin, stdout=stdout or f, stderr=f,
                                 preexec_fn=raise_nofile)
        finally:
            f.close()
        self.started.append((name, p))
        return p

    def forget(self, p):
        self.started = [(n, q) for n, q in self.started if q is not p]

    def stop(self, name=None, grace=10):
        keep, victims = [], []
        for n, p in reversed(self.started):
            (victims if name is None or n == name else keep).append((n, p))
        self.started = list(reversed(keep))
        for n, p in victims:
            kids = tree_pids([p.pid]) - {p.pid}
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if p.poll() is not None and not any(alive(k) for k in kids):
                    break
                time.sleep(0.05)
            if p.poll() is None:
                log("%s (pid %d) did not stop in %gs: SIGKILL" % (n, p.pid, grace))
                p.kill()
            for pid in sorted(kids):
                if alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for s in (p.stdin, p.stdout):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass



def mem_kib(roots):
    """(RSS, PSS) in KiB of the trees: VmRSS and smaps_rollup's Pss summed."""
    rss = pss = 0
    for pid in tree_pids(roots):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                text = f.read()
            m = re.search(r"^Rss:\s+(\d+)", text, re.M)
            rss += int(m.group(1)) if m else 0
            m = re.search(r"^Pss:\s+(\d+)", text, re.M)
            pss += int(m.group(1)) if m else 0
        except OSError:
            pass
    return rss, pss


def sockstat_tcp_kib():
    """The kernel's TCP buffer memory (sockstat 'mem', pages) in KiB."""
    with open("/proc/net/sockstat") as f:
        m = re.search(r"^TCP:.*\bmem (\d+)", f.read(), re.M)
    return int(m.group(1)) * PAGE // 1024 if m else 0



def wait_line(path, pattern, proc, secs):
    """The first match of pattern in the file a process writes, or None."""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                m = re.search(pattern, f.read(), re.M)
            if m:
                return m
        except OSError:
            pass
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


class Client:
    """scale_client on pipes: one command line in, one answer line out."""

    def __init__(self, proc):
        self.p = proc
        self.buf = b""
        os.set_blocking(proc.stdout.fileno(), False)

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.p.stdout], [], [], min(left, 1.0))
            if r:
                try:
                    chunk = os.read(self.p.stdout.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    return None  # it exited
                self.buf += chunk
            elif self.p.poll() is not None:
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def ask(self, cmd, timeout=30):
        if self.p.poll() is not None:
            return None
        try:
            self.p.stdin.write((cmd + "\n").encode())
            self.p.stdin.flush()
        except OSError:
            return None
        return self.readline(timeout)

    def held(self):
        m = re.match(r"HELD n=(\d+)", self.ask("held", 10) or "")
        return int(m.group(1)) if m else None


class Clients:
    """Several scale_clients: "held" is their sum."""

    def __init__(self, cs):
        self.cs = cs

    def held(self):
        total = 0
        for c in self.cs:
            h = c.held()
            if h is None:
                return None
            total += h
        return total

    def quit(self):
        for c in self.cs:
            try:
                c.p.stdin.write(b"quit\n")
                c.p.stdin.flush()
            except OSError:
                pass
        for c in self.cs:
            c.readline(30)


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def kv(line):
    return dict(x.split("=", 1) for x in (line or "").split()[1:] if "=" in x)


# ---------------------------------------------------------------- configs

def make_cert(run):
    d = os.path.join(run, "tls")
    os.makedirs(d)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "7", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    with open(os.path.join(d, "combined.pem"), "w") as f:
        for x in ("cert.pem", "key.pem"):
            with open(os.path.join(d, x)) as g:
                f.write(g.read())
    return {"cert": os.path.join(d, "cert.pem"), "key": os.path.join(d, "key.pem"),
            "combined": os.path.join(d, "combined.pem")}


def backend_ports(nprocs=1):
    """The backend ports of nprocs scale_backend processes, one list each:
    BACKENDS ports in all (at least one per process)."""
    each = max(1, ceil_div(NBACKENDS, nprocs))
    return [[PORTS["backend"] + i * each + j for j in range(each)] for i in range(nprocs)]


def metrics_port(i):
    return PORTS["metrics"] + i


def postern_conf(d, i, port, certs, redis, bports):
    """The config of postern shard i (its own admin socket and /metrics)."""
    backends = ",\n".join('  { name = "b%d"; host = "127.0.0.1"; imap = %d; tls = "none"; }'
                          % (j, p) for j, p in enumerate(bports))
    pool = ", ".join('"b%d"' % j for j in range(len(bports)))
    return """# postern for the scale run: the defaults but for what holding N idle
# sessions from a few loopback addresses needs.
workers = "auto";
log_level = "%(log)s";
%(state)s
tls = {
  certificates = ( { cert = "%(cert)s"; key = "%(key)s"; } );
  min_version = "TLSv1.2";
};
listeners = (
  { listen = "127.0.0.1:%(port)d"; protocol = "imap"; tls = "implicit"; }
);
backends = (
%(backends)s
);
routes = ( { default = true; pool = [ %(pool)s ]; } );
timeouts = {
  login = "60s";
  idle = "2h";
  drain = "%(drain)s";
  drain_quiet = "2s";
  drain_spread = "%(spread)s";
};
policy = {
  max_connections_per_ip = 0;
  max_sessions_per_user = %(limit)d;
};
admin = {
  socket = "%(dir)s/admin.%(i)d.sock";
%(http)s};
""" % {"log": LOG_LEVEL, "cert": certs["cert"], "key": certs["key"], "port": port,
       "backends": backends, "pool": pool, "drain": DRAIN, "spread": DRAIN_SPREAD,
       "limit": SESSION_LIMIT, "dir": d, "i": i,
       "http": '  http = "127.0.0.1:%d";\n' % metrics_port(i) if METRICS else "",
       "state": 'state = "redis://127.0.0.1:%d";' % PORTS["redis"] if redis else ""}


def haproxy_conf(port, certs, n, bports):
    servers = "\n".join("    server b%d 127.0.0.1:%d" % (i, p) for i, p in enumerate(bports))
    # HAProxy sizes its fd table from maxconn (2 per connection and some)
    maxconn = min(n + 2000, capacity(NOFILE) + PROBES_ROOM)
    return """# HAProxy: TCP mode, TLS terminated here, plaintext to the backends.
global
    nbthread 2
    maxconn %(maxconn)d
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode tcp
    timeout connect 5s
    timeout client 2h
    timeout server 2h
    maxconn %(maxconn)d
frontend imaps
    bind 127.0.0.1:%(port)d ssl crt %(combined)s
    default_backend imap
backend imap
    balance roundrobin
%(servers)s
""" % {"maxconn": maxconn, "port": port, "combined": certs["combined"], "servers": servers}


# ---------------------------------------------------------------- redis

def redis_info(port):
    res = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "INFO", "all"],
                         capture_output=True, text=True, timeout=10)
    info = {}
    for line in res.stdout.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            info[k] = v.strip()
    return info


def cmdstats(info):
    """{command: calls} from INFO commandstats."""
    out = {}
    for k, v in info.items():
        if k.startswith("cmdstat_"):
            m = re.search(r"calls=(\d+)", v)
            if m:
                out[k[len("cmdstat_"):]] = int(m.group(1))
    return out


# ---------------------------------------------------------------- the run

class Scale:
    def __init__(self):
        self.procs = Procs()
        self.sysctl = Sysctls()
        self.rows = []  # one dict per (proxy, N)
        self.notes = []  # what the table should say about the run

    def check(self):
        need = [POSTERN, SCALE_BACKEND, SCALE_CLIENT]
        for x in need:
            if not os.access(x, os.X_OK):
                raise SystemExit("missing %s (run: make scale)" % x)
        for b in ["openssl"] + (["haproxy"] if "haproxy" in PROXIES else []) + \
                (["redis-server", "redis-cli"] if "postern-redis" in PROXIES else []):
            if shutil.which(b) is None:
                raise SystemExit("missing %s (run: sh tests/bench/deps.sh)" % b)
        for p in PROXIES:
            if p not in ("postern", "postern-redis", "haproxy"):
                raise SystemExit("unknown proxy %s" % p)

    def check_ports(self):
        top = max(STEPS)
        ports = [x for b in backend_ports(backend_procs(top)) for x in b]
        ports += [PORTS[p] for p in PROXIES] + [PORTS["redis"]]
        ports += [metrics_port(i) for i in range(proxy_shards(top))]
        if len(set(ports)) != len(ports):
            raise SystemExit("port plan overlaps (%d backend procs, %d shards): lower BACKENDS "
                             "or raise PER_PROC" % (backend_procs(top), proxy_shards(top)))
        for port in ports:
            if port_open(port):
                raise SystemExit("port %d on 127.0.0.1 is in use (set SCALE_PORT_BASE)" % port)

    def tune_kernel(self):
        for k, v in SYSCTLS.items():
            self.sysctl.set(k, v)
        need = NOFILE
        if int(self.sysctl.get("fs.nr_open")) < need:
            self.sysctl.set("fs.nr_open", str(need))
        if int(self.sysctl.get("fs.file-max")) < 3 * need:
            self.sysctl.set("fs.file-max", str(3 * need))

    # -- one proxy at one step
    def start_backends(self, d, bports):
        procs = []
        for i, ports in enumerate(bports):
            out = os.path.join(d, "backend.%d.out" % i)
            procs.append(self.procs.start("backend", [
                SCALE_BACKEND, "-a", "127.0.0.1", "-p", str(ports[0]), "-k", str(len(ports))],
                out))
        for i, p in enumerate(procs):
            out = os.path.join(d, "backend.%d.out" % i)
            if not wait_line(out, r"^READY ports=", p, 20):
                raise SystemExit("scale_backend did not start; see %s" % out)
        return procs

    def start_redis(self, d):
        p = self.procs.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port",
                                       str(PORTS["redis"]), "--save", "", "--appendonly", "no",
                                       "--dir", d, "--maxclients", "10000"],
                             os.path.join(d, "redis.log"))
        if not wait_ports([PORTS["redis"]], p):
            raise SystemExit("redis-server did not start; see %s" % d)
        return p

    def start_proxies(self, proxy, d, n, k, bports):
        """k processes of the proxy, all listening on its port (SO_REUSEPORT:
        the kernel spreads the connections over them); postern's each with
        its own admin socket, /metrics port and log."""
        port = PORTS[proxy]
        procs = []
        self.confs = []
        for i in range(k):
            if proxy == "haproxy":
                conf = os.path.join(d, "haproxy.%d.cfg" % i)
                with open(conf, "w") as f:
                    f.write(haproxy_conf(port, self.certs, n, bports))
                p = self.procs.start(proxy, ["haproxy", "-db", "-f", conf],
                                     os.path.join(d, "haproxy.%d.log" % i))
            else:
                conf = os.path.join(d, "postern.%d.conf" % i)
                with open(conf, "w") as f:
                    f.write(postern_conf(d, i, port, self.certs, proxy == "postern-redis",
                                         bports))
                if i == 0:
                    t = subprocess.run([POSTERN, "-t", "-c", conf], capture_output=True,
                                       text=True, timeout=30)
                    if t.returncode != 0:
                        raise SystemExit("postern -t %s: %s" % (
                            conf, (t.stdout + t.stderr).strip()))
                p = self.procs.start(proxy, [POSTERN, "-c", conf],
                                     os.path.join(d, "postern.%d.log" % i))
                self.confs.append(conf)
            procs.append(p)
            ok = wait_ports([port] + ([metrics_port(i)] if proxy != "haproxy" and METRICS
                                      else []), p)
            if ok and proxy != "haproxy":
                # the admin socket answers once the workers run
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if self.admin(["health"], i, timeout=5)[0] == 0:
                        break
                    time.sleep(0.2)
                else:
                    ok = False
            if ok and i > 0:
                # the port answered already: make sure this one still runs
                # (a bind refused would end it)
                time.sleep(0.5)
                ok = p.poll() is None
            if not ok:
                raise SystemExit("%s shard %d did not start; see %s" % (proxy, i, d))
        return procs

    def admin(self, args, shard=0, timeout=120):
        """(exit status, seconds, stdout) of `postern -c CONF ARGS` on a shard."""
        t0 = time.monotonic()
        try:
            res = subprocess.run([POSTERN, "-c", self.confs[shard]] + args,
                                 capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, timeout, b""
        dt = time.monotonic() - t0
        if res.returncode != 0:
            log("   postern %s (shard %d): exit %d: %s" % (
                " ".join(args), shard, res.returncode,
                res.stderr.decode(errors="replace").strip()))
        return res.returncode, dt, res.stdout

    def admin_all(self, args):
        """The admin command on every shard in turn: (total seconds, the
        largest shard's seconds, the outputs)."""
        times, outs = [], []
        for i in range(len(self.confs)):
            rc, dt, out = self.admin(args, i)
            times.append(dt)
            outs.append(out)
        return sum(times), max(times), outs

    def user_sessions(self, sizes, k):
        """How many of the clients' sessions (sizes: each client's count)
        log in as user<k>."""
        users = max(1, sum(sizes) // PER_USER)
        return sum(len(range(k, m, users)) for m in sizes)

    def measure(self, proxy, n):
        d = os.path.join(self.run, "%s-%d" % (proxy, n))
        os.makedirs(d)
        row = {"proxy": proxy, "n": n}
        self.rows.append(row)
        try:
            self._measure(proxy, n, d, row)
        except Exception as e:  # one failed step does not end the run
            log("   %s N=%d failed: %s" % (proxy, n, e))
            row["error"] = str(e)
        finally:
            self.procs.stop()
            logs = os.path.join(OUT_DIR, "logs", "%s-%d" % (proxy, n))
            os.makedirs(logs, exist_ok=True)
            for x in os.listdir(d):
                if x.endswith((".log", ".out", ".conf", ".cfg")):
                    shutil.copy(os.path.join(d, x), logs)
            events, nbytes = {}, None
            for x in sorted(os.listdir(d)):
                if not re.fullmatch(r"(postern|haproxy)\.\d+\.log", x):
                    continue
                path = os.path.join(d, x)
                nbytes = (nbytes or 0) + os.path.getsize(path)
                with open(path, errors="replace") as fh:
                    for m in re.finditer(r"level=(?:warn|error) event=(\S+)", fh.read()):
                        events[m.group(1)] = events.get(m.group(1), 0) + 1
            if nbytes is not None:
                row["log_bytes"] = nbytes
                row["log_warnings"] = events

    def _measure(self, proxy, n, d, row):
        nshards = proxy_shards(n)
        bports = backend_ports(backend_procs(n))
        sizes = client_split(n)
        row["shards"] = nshards
        row["backend_procs"] = len(bports)
        row["backend_ports"] = sum(len(b) for b in bports)
        row["client_sizes"] = sizes
        log("== %s, N=%d: %d proxy process%s, %d scale_backend (%d ports), %d scale_client %s"
            % (proxy, n, nshards, "" if nshards == 1 else "es", len(bports), row["backend_ports"],
               len(sizes), sizes))
        backends = self.start_backends(d, bports)
        redis = self.start_redis(d) if proxy == "postern-redis" else None
        ps = self.start_proxies(proxy, d, n, nshards, [x for b in bports for x in b])
        roots = [p.pid for p in ps]
        time.sleep(1)
        # the proxy's CPU with no session: what the idle figure is made of
        # when no session costs anything
        c0, w0 = cpu_s(roots), time.monotonic()
        time.sleep(EMPTY_SECS)
        row["empty_cpu"] = (cpu_s(roots) - c0) / (time.monotonic() - w0)
        rss0, pss0 = mem_kib(roots)
        tcp0 = sockstat_tcp_kib()
        if redis:
            r0 = redis_info(PORTS["redis"])
            row["redis_base_kib"] = int(r0["used_memory"]) / 1024
        row["rss_base_mib"] = rss0 / 1024
        row["pss_base_mib"] = pss0 / 1024

        users = max(1, n // PER_USER)
        conc = max(20, ceil_div(CONC, len(sizes)))
        t0 = time.monotonic()
        cps = []
        for i, m in enumerate(sizes):
            argv = [SCALE_CLIENT, "-p", str(PORTS[proxy]), "-h", "127.0.0.1", "-n", str(m),
                    "-c", str(conc), "-s", str(SOURCES), "-u", str(users), "-t", "120"]
            cps.append(self.procs.start("client", argv, os.path.join(d, "client.%d.log" % i),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        client = Clients([Client(cp) for cp in cps])
        row["held"] = row["failed"] = 0
        row["open_s"] = 0.0
        deadline = t0 + 180 + n / 100
        for i, c in enumerate(client.cs):
            line = c.readline(max(1, deadline - time.monotonic()))
            if not line or not line.startswith("READY"):
                raise RuntimeError("scale_client %d gave no READY (%r); see %s/client.%d.log" % (
                    i, line, d, i))
            r = kv(line)
            row["held"] += int(r.get("held", 0))
            row["failed"] += int(r.get("failed", 0))
            # they run at once: the open time is the slowest one's
            row["open_s"] = max(row["open_s"], float(r.get("secs", time.monotonic() - t0)))
            log("   client %d: %s" % (i, line))
        row["open_wall_s"] = time.monotonic() - t0
        if row["held"] == 0:
            raise RuntimeError("no session held")

        time.sleep(SETTLE)
        rss1, pss1 = mem_kib(roots)
        held = client.held() or row["held"]
        row["held_at_mem"] = held
        row["rss_mib"], row["pss_mib"] = rss1 / 1024, pss1 / 1024
        row["rss_kib_sess"] = (rss1 - rss0) / held
        row["pss_kib_sess"] = (pss1 - pss0) / held
        row["kernel_tcp_kib_sess"] = (sockstat_tcp_kib() - tcp0) / held
        if nshards > 1:
            # how evenly the kernel spread them: each shard's open fds
            row["shard_fds"] = [fd_count(p.pid) for p in ps]

        # the idle window
        others = [[b.pid for b in backends], [cp.pid for cp in cps]] + \
            ([[redis.pid]] if redis else [])
        c0, o0 = cpu_s(roots), [cpu_s(x) for x in others]
        if redis:
            i0 = redis_info(PORTS["redis"])
        w0 = time.monotonic()
        # with Redis, whole heartbeats (state_heartbeat, 10s): the commands
        # counted do not depend on where the window falls as much
        time.sleep(max(IDLE_SECS, REDIS_SECS) if redis else IDLE_SECS)
        w = time.monotonic() - w0
        c1, o1 = cpu_s(roots), [cpu_s(x) for x in others]
        row["idle_cpu"] = (c1 - c0) / w
        row["idle_cpu_backend"] = (o1[0] - o0[0]) / w
        row["idle_cpu_client"] = (o1[1] - o0[1]) / w
        if redis:
            i1 = redis_info(PORTS["redis"])
            row["idle_cpu_redis"] = (o1[2] - o0[2]) / w
            # minus the INFO of redis_info itself
            row["redis_ops_s"] = (int(i1["total_commands_processed"]) -
                                  int(i0["total_commands_processed"]) - 1) / w
            s0, s1 = cmdstats(i0), cmdstats(i1)
            row["redis_cmds"] = {c: v - s0.get(c, 0) for c, v in s1.items()
                                 if v - s0.get(c, 0) > 0 and c != "info"}
            row["redis_mib_100k"] = ((int(i1["used_memory"]) - int(r0["used_memory"])) /
                                     held * 100000 / 1048576)
            row["redis_keys"] = sum(int(m) for m in re.findall(r"keys=(\d+)",
                                                               i1.get("db0", "")))
        log("   held %d; RSS %.1f PSS %.1f KiB/session; idle CPU %.4f s/s%s%s" % (
            held, row["rss_kib_sess"], row["pss_kib_sess"], row["idle_cpu"],
            "; redis %.1f ops/s %s" % (row["redis_ops_s"], row["redis_cmds"]) if redis else "",
            "; fds per shard %s" % row["shard_fds"] if "shard_fds" in row else ""))

        # the probes from one client only, while all the clients hold theirs
        line = client.cs[0].ask("probe %d" % PROBES, 30 + PROBES * 0.5)
        r = kv(line)
        row["probe_ok"] = int(r.get("ok", 0))
        row["p50_ms"] = float(r["p50_ms"]) if "p50_ms" in r else None
        row["p99_ms"] = float(r["p99_ms"]) if "p99_ms" in r else None
        log("   %s" % line)

        if proxy != "haproxy":
            self.operate(proxy, n, sizes, client, row)
            self.drain(ps, client, row)

        client.quit()

    def operate(self, proxy, n, sizes, client, row):
        """postern's admin commands and /metrics with the N held, each on
        every shard in turn: the time is the sum over the shards (the
        largest single shard's in *_max_s)."""
        def lines(out):
            return sum(1 for x in out.splitlines() if re.match(rb"[0-9a-f]{16} ", x))

        times, maxes = [], []
        for _ in range(ADMIN_RUNS):
            dt, mx, outs = self.admin_all(["sessions"])
            times.append(dt)
            maxes.append(mx)
            row["sessions_lines"] = sum(lines(o) for o in outs)
            row["sessions_bytes"] = sum(len(o) for o in outs)
        row["sessions_s"] = statistics.median(times)
        row["sessions_max_s"] = statistics.median(maxes)
        row["sessions_all"] = times

        k = 7
        expect = self.user_sessions(sizes, k)
        times, maxes = [], []
        for _ in range(ADMIN_RUNS):
            dt, mx, outs = self.admin_all(["sessions", "--user", "user%d" % k])
            times.append(dt)
            maxes.append(mx)
            row["sessions_user_lines"] = sum(lines(o) for o in outs)
        row["sessions_user_s"] = statistics.median(times)
        row["sessions_user_max_s"] = statistics.median(maxes)
        row["sessions_user_all"] = times
        if row["sessions_user_lines"] != expect:
            log("   sessions --user user%d listed %d sessions, the clients made %d" % (
                k, row["sessions_user_lines"], expect))

        times, maxes, drops, gone, kicked = [], [], [], [], []
        for k in (8, 9, 10):
            expect = self.user_sessions(sizes, k)
            before = client.held()
            dt, mx, outs = self.admin_all(["kick", "--user", "user%d" % k])
            t0 = time.monotonic()
            times.append(dt)
            maxes.append(mx)
            # with Redis the kick goes to the fleet ("kick=sent", no count)
            said = [re.search(rb"kicked (\d+)", o) for o in outs]
            kicked.append(sum(int(m.group(1)) for m in said) if all(said) else None)
            if kicked[-1] is not None and kicked[-1] != expect:
                log("   kick --user user%d: kicked %d (%s) but the clients made %d" % (
                    k, kicked[-1], b" | ".join(o.strip() for o in outs).decode(), expect))
            # the BYEs go at a quiet moment (drain_quiet): wait for them
            after = before
            deadline = t0 + 30
            while before is not None and time.monotonic() < deadline:
                after = client.held()
                if after is None or after <= before - expect:
                    break
                time.sleep(0.1)
            drops.append(None if after is None or before is None else before - after)
            gone.append(dt + time.monotonic() - t0)
        row["kick_s"] = statistics.median(times)
        row["kick_max_s"] = statistics.median(maxes)
        row["kick_all"] = times
        row["kick_dropped"] = drops
        row["kick_kicked"] = kicked
        row["kick_expected"] = self.user_sessions(sizes, 8)
        row["kick_to_closed_s"] = statistics.median(gone)
        if any(x != row["kick_expected"] for x in drops):
            log("   kick --user: the clients lost %s sessions, expected %d each" % (
                drops, row["kick_expected"]))

        times, maxes = [], []
        for _ in range(ADMIN_RUNS if METRICS else 0):
            each, size = [], 0
            for i in range(len(self.confs)):
                t0 = time.monotonic()
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port(i),
                                                timeout=30) as resp:
                        size += len(resp.read())
                    each.append(time.monotonic() - t0)
                except OSError as e:
                    log("   /metrics of shard %d: %s" % (i, e))
                    each = None
                    break
            times.append(sum(each) if each else None)
            maxes.append(max(each) if each else None)
            row["metrics_bytes"] = size
        ok = [t for t in times if t is not None]
        row["metrics_s"] = statistics.median(ok) if ok else None
        okm = [t for t in maxes if t is not None]
        row["metrics_max_s"] = statistics.median(okm) if okm else None
        row["metrics_all"] = times
        many = len(self.confs) > 1
        log("   sessions %.3fs%s (%d lines), sessions --user %.3fs%s, kick --user %.3fs%s "
            "(closed after %.2fs), /metrics %s%s" % (
                row["sessions_s"], " (max shard %.3fs)" % row["sessions_max_s"] if many else "",
                row["sessions_lines"], row["sessions_user_s"],
                " (max shard %.3fs)" % row["sessions_user_max_s"] if many else "",
                row["kick_s"], " (max shard %.3fs)" % row["kick_max_s"] if many else "",
                row["kick_to_closed_s"], "%.3fs" % row["metrics_s"] if ok else "-",
                " (max shard %.3fs)" % row["metrics_max_s"] if many and okm else ""))

    def drain(self, ps, client, row):
        """SIGTERM to every shard at the same moment: the time until the
        clients hold nothing and until every shard has exited."""
        held = client.held()
        row["drain_from"] = held
        t0 = time.monotonic()
        for p in ps:
            p.send_signal(signal.SIGTERM)
        limit = secs(DRAIN) + 30
        zero = None
        while time.monotonic() - t0 < limit:
            if zero is None:
                h = client.held()
                if h == 0:
                    zero = time.monotonic() - t0
            if all(p.poll() is not None for p in ps) and zero is not None:
                break
            time.sleep(0.1)
        done = all(p.poll() is not None for p in ps)
        row["drain_held0_s"] = zero
        row["drain_exit_s"] = time.monotonic() - t0 if done else None
        codes = [p.poll() for p in ps]
        row["drain_exit_code"] = codes[0] if len(set(codes)) == 1 else codes
        log("   drain of %s sessions: clients held 0 after %s s, postern exited (%s) after %s s"
            % (held, "%.1f" % zero if zero is not None else "-", row["drain_exit_code"],
               "%.1f" % row["drain_exit_s"] if row["drain_exit_s"] is not None else "-"))

    def table(self):
        def f(v, d=1):
            if v is None:
                return "-"
            return "%.*f" % (d, v)

        g = lambda r, k: r.get(k)  # noqa: E731
        lines = ["# postern at scale %s" % self.stamp, ""]
        with open("/proc/cpuinfo") as fh:
            model = re.search(r"model name\s*:\s*(.*)", fh.read())
        lines.append("host: %d cores, %s, kernel %s, %.1f GiB" % (
            os.cpu_count() or 1, model.group(1) if model else "?", os.uname().release,
            os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30))
        lines.append("params: steps=%s backends=%d concurrency=%d sources=%d per_user=%d "
                     "probes=%d idle_secs=%g (redis %g) settle=%g drain=%s drain_spread=%s "
                     "postern log_level=%s max_sessions_per_user=%d" % (
                         " ".join(map(str, STEPS)), NBACKENDS, CONC, SOURCES, PER_USER, PROBES,
                         IDLE_SECS, max(IDLE_SECS, REDIS_SECS), SETTLE, DRAIN, DRAIN_SPREAD,
                         LOG_LEVEL, SESSION_LIMIT))
        lines.extend(self.notes)
        lines.append("")
        if any(r.get("shards", 1) > 1 for r in self.rows):
            lines.append("with shards > 1 an admin or /metrics time \"a / b\" is the sum over "
                         "the shards / the slowest shard")
        cols = ["proxy", "N", "shards", "held", "failed", "open s", "RSS KiB/sess", "PSS KiB/sess",
                "CPU s/s empty / N idle", "probe p50 ms", "p99 ms", "sessions s",
                "sessions --user s",
                "kick --user s", "/metrics s", "drain s (held 0 / exit)", "redis ops/s",
                "redis MiB/100k"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|---" * 2 + "|---:" * (len(cols) - 2) + "|")

        def adm(r, k):
            if r.get("shards", 1) > 1 and r.get(k + "_max_s") is not None:
                return "%s / %s" % (f(g(r, k + "_s"), 3), f(g(r, k + "_max_s"), 3))
            return f(g(r, k + "_s"), 3)
        for r in self.rows:
            if "error" in r and "held" not in r:
                lines.append("| %s | %d | %s | failed: %s |" % (
                    r["proxy"], r["n"], r.get("shards", "-"), r["error"]) +
                    " |" * (len(cols) - 4))
                continue
            drain = "-"
            if g(r, "drain_held0_s") is not None or g(r, "drain_exit_s") is not None:
                drain = "%s / %s" % (f(g(r, "drain_held0_s")), f(g(r, "drain_exit_s")))
            lines.append("| " + " | ".join([
                r["proxy"], str(r["n"]), str(g(r, "shards")), str(g(r, "held")),
                str(g(r, "failed")),
                f(g(r, "open_s")), f(g(r, "rss_kib_sess"), 2), f(g(r, "pss_kib_sess"), 2),
                "%s / %s" % (f(g(r, "empty_cpu"), 4), f(g(r, "idle_cpu"), 4)),
                f(g(r, "p50_ms"), 2), f(g(r, "p99_ms"), 2),
                adm(r, "sessions"), adm(r, "sessions_user"), adm(r, "kick"),
                adm(r, "metrics"), drain, f(g(r, "redis_ops_s"), 1),
                f(g(r, "redis_mib_100k"), 1)]) + " |")
        lines.append("")
        ratio_rows = []
        for n in STEPS:
            h = next((r for r in self.rows if r["proxy"] == "haproxy" and r["n"] == n), None)
            for r in self.rows:
                if r["n"] != n or r["proxy"] == "haproxy" or h is None:
                    continue

                def ratio(k):
                    a, b = r.get(k), h.get(k)
                    return "-" if a is None or b in (None, 0) else "%.2f" % (a / b)
                ratio_rows.append("| %s / haproxy | %d | %s | %s | %s | %s | %s |" % (
                    r["proxy"], n, ratio("rss_kib_sess"), ratio("pss_kib_sess"),
                    ratio("idle_cpu"), ratio("p50_ms"), ratio("p99_ms")))
        if ratio_rows:
            lines.append("postern relative to HAProxy (<1 is better for postern):")
            lines.append("")
            lines.append("| ratio | N | RSS/sess | PSS/sess | idle CPU | probe p50 | probe p99 |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|")
            lines.extend(ratio_rows)
            lines.append("")
        lines.append("details:")
        for r in self.rows:
            if "held" not in r:
                continue
            extra = []
            extra.append("RSS/PSS after start %s/%s MiB, with N held %s/%s MiB" % (
                f(g(r, "rss_base_mib")), f(g(r, "pss_base_mib")), f(g(r, "rss_mib")),
                f(g(r, "pss_mib"))))
            extra.append("kernel TCP buffers %s KiB/session" % f(g(r, "kernel_tcp_kib_sess"), 2))
            extra.append("idle CPU of backend %s, client %s%s s/s" % (
                f(g(r, "idle_cpu_backend"), 4), f(g(r, "idle_cpu_client"), 4),
                ", redis %s" % f(g(r, "idle_cpu_redis"), 4) if "idle_cpu_redis" in r else ""))
            extra.append("probes ok %s/%d" % (g(r, "probe_ok"), PROBES))
            extra.append("%s scale_backend (%s ports), scale_client sessions %s" % (
                g(r, "backend_procs"), g(r, "backend_ports"), g(r, "client_sizes")))
            if "shard_fds" in r:
                extra.append("open fds per shard %s" % r["shard_fds"])
            if "sessions_lines" in r:
                kicked = r.get("kick_kicked") or []
                extra.append("sessions listed %d (%d bytes); kick kicked %s, dropped %s (expected "
                             "%s each), "
                             "closed %s s after the command; /metrics %s bytes" % (
                                 r["sessions_lines"], r["sessions_bytes"],
                                 "- (sent to the fleet through Redis)" if None in kicked
                                 else kicked, r.get("kick_dropped"),
                                 r.get("kick_expected"), f(g(r, "kick_to_closed_s"), 2),
                                 r.get("metrics_bytes", "-")))
            if "redis_cmds" in r:
                extra.append("redis commands in the idle window %s, keys %s" % (
                    json.dumps(r["redis_cmds"], sort_keys=True), r.get("redis_keys")))
            if "log_bytes" in r:
                extra.append("log %d bytes%s" % (r["log_bytes"], (
                    ", warnings %s" % json.dumps(r["log_warnings"], sort_keys=True))
                    if r.get("log_warnings") else ""))
            if "error" in r:
                extra.append("ERROR %s" % r["error"])
            lines.append("- %s N=%d: %s" % (r["proxy"], r["n"], "; ".join(extra)))
        lines.append("")
        lines.append("wall time %.0f s" % (time.monotonic() - self.t0))
        return "\n".join(lines) + "\n"

    def write(self):
        text = self.table()
        os.makedirs(OUT_DIR, exist_ok=True)
        with open(os.path.join(OUT_DIR, "table.txt"), "w") as fh:
            fh.write(text)
        with open(os.path.join(OUT_DIR, "results.json"), "w") as fh:
            json.dump({"stamp": self.stamp, "steps": STEPS, "proxies": PROXIES,
                       "rows": self.rows}, fh, indent=1, sort_keys=True)
        return text

    def main(self):
        self.t0 = time.monotonic()
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.check()
        if os.geteuid() != 0:
            raise SystemExit("run as root: the run sets sysctls and nofile limits")
        global NOFILE
        NOFILE = nofile_hard()
        raise_nofile()
        sharded = [s for s in STEPS if proxy_shards(s) > 1]
        if sharded:
            # one process cannot hold them: a fleet of proxy processes of the
            # same kind on one port (SO_REUSEPORT), as on a box with several
            if PER_PROC > 0:
                why = "PER_PROC=%d sets how many sessions one process holds" % PER_PROC
            else:
                why = ("the nofile hard limit here is %d and cannot be raised (no "
                       "CAP_SYS_RESOURCE): one process holds at most %d sessions through a "
                       "proxy (2 fds each), %d in a client or backend (1 fd each); where the "
                       "limit can be raised, each proxy runs as one process" % (
                           NOFILE, per_proc("proxy"), per_proc("client")))
            self.notes.append(
                "shards: %s; so each proxy runs as K processes listening on the same port "
                "(SO_REUSEPORT: the kernel spreads the connections), K = %s, postern's each "
                "with its own admin socket and /metrics (Redis: one server for all); memory "
                "and CPU are the sum over the K, admin commands and /metrics are run on every "
                "shard in turn (time = sum, max = the slowest shard), drain signals all K at "
                "once" % (why, ", ".join("%d at N=%d" % (proxy_shards(s), s) for s in sharded)))
            log("NOTE " + self.notes[-1])
        self.check_ports()
        os.makedirs(OUT_DIR, exist_ok=True)
        shutil.rmtree(os.path.join(OUT_DIR, "logs"), ignore_errors=True)
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.run = tempfile.mkdtemp(prefix="postern-scale-", dir=base)
        os.chmod(self.run, 0o755)
        log("steps %s, proxies %s; run dir %s, results in %s" % (
            " ".join(map(str, STEPS)), " ".join(PROXIES), self.run, OUT_DIR))
        failed = True
        try:
            self.tune_kernel()
            self.certs = make_cert(self.run)
            for n in STEPS:
                for proxy in PROXIES:
                    self.measure(proxy, n)
                    self.write()  # a partial table survives a later failure
            text = self.write()
            sys.stdout.write(text)
            failed = any("error" in r for r in self.rows)
        finally:
            # a second ^C must not cut the cleanup short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.procs.stop()
            self.sysctl.restore()
            if KEEP_RUN_DIR or failed:
                log("run dir kept: %s" % self.run)
            else:
                shutil.rmtree(self.run, ignore_errors=True)
        return 1 if failed else 0



if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)
    sys.exit(Scale().main())
