#!/usr/bin/python3
"""postern's side-by-side benchmark (`make bench`).

Starts two real Dovecot backends (A and B, 2,000 users, one 10 MB message),
then postern and the proxies a user would pick instead, each configured the
way its documentation suggests, all on 127.0.0.1 in one run:
  postern   this checkout's ./postern, routing users by a route map
  haproxy   HAProxy in TCP mode terminating TLS (not protocol aware: round
            robin over the backends)
  nginx     nginx's mail module, plus a tiny nginx http auth_http endpoint
            that says yes and names the user's backend (counted apart)
  postern-lookup  (only when PEERS names it) postern routing each login by
            asking such an endpoint of its own (lookup, nginx protocol)
drives the same workloads through each with tests/bench/loadgen, and prints
a table of absolute figures and the ratios of postern to each peer.

Figures: IMAP logins/s at c=64 (full TLS 1.3 handshakes), p50 ms of one
login at c=1, proxy CPU ms per IMAP login (full and resumed handshakes),
PSS KiB per idle logged-in session, IMAP bulk FETCH MB/s, proxy CPU s per GB
relayed, and TLS 1.3 resumed handshakes at c=64 (each client slot offers the
ticket its previous connection was given, once).  CPU comes from /proc for
each proxy's whole process tree, PSS from /proc/PID/smaps_rollup.  Every
process this script starts is stopped by PID.

Knobs (environment): QUICK=1 (short run), PEERS="postern haproxy nginx",
ROUNDS, LOGIN_SECS, WARMUP, LAT_SECS, RESUME_SECS, BULK_SECS, IDLE_K, NUSERS,
BIG_MB, BENCH_PORT_BASE (default 22000), POSTERN, LOADGEN, POSTERN_LOG_LEVEL,
OUT_DIR, KEEP_RUN_DIR=1.
"""

import base64
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
HZ = os.sysconf("SC_CLK_TCK")


def env(name, default, cast=str):
    v = os.environ.get(name)
    return cast(v) if v not in (None, "") else default


QUICK = env("QUICK", "0") == "1"
PEERS = env("PEERS", "postern haproxy nginx").split()
ROUNDS = env("ROUNDS", 1 if QUICK else 2, int)
LOGIN_CONC = env("LOGIN_CONC", 64, int)
LOGIN_SECS = env("LOGIN_SECS", 2.0 if QUICK else 3.0, float)
WARMUP = env("WARMUP", 0.5 if QUICK else 1.0, float)
LAT_SECS = env("LAT_SECS", 1.5 if QUICK else 2.0, float)
RESUME_SECS = env("RESUME_SECS", 2.0 if QUICK else 3.0, float)
BULK_SECS = env("BULK_SECS", 1.5 if QUICK else 3.0, float)
IDLE_K = env("IDLE_K", 300 if QUICK else 2000, int)
NUSERS = env("NUSERS", 2000, int)
BIG_MB = env("BIG_MB", 10.0, float)
PORT_BASE = env("BENCH_PORT_BASE", 22000, int)
POSTERN = env("POSTERN", os.path.join(ROOT, "postern"))
LOADGEN = env("LOADGEN", os.path.join(ROOT, "build", "bench", "loadgen"))
POSTERN_LOG_LEVEL = env("POSTERN_LOG_LEVEL", "info")  # postern's default
NGINX_MAIL_MODULE = env("NGINX_MAIL_MODULE", "/usr/lib/nginx/modules/ngx_mail_module.so")
KEEP_RUN_DIR = env("KEEP_RUN_DIR", "0") == "1"
NCPU = os.cpu_count() or 1

PORTS = {
    "a": {"imap": PORT_BASE + 143, "pop3": PORT_BASE + 110},
    "b": {"imap": PORT_BASE + 1143, "pop3": PORT_BASE + 1110},
    "postern": {"imap": PORT_BASE + 2993, "pop3": PORT_BASE + 2995},
    "haproxy": {"imap": PORT_BASE + 3993, "pop3": PORT_BASE + 3995},
    "nginx": {"imap": PORT_BASE + 4993, "pop3": PORT_BASE + 4995},
    "nginx_auth": {"http": PORT_BASE + 4080},
    "postern-lookup": {"imap": PORT_BASE + 5993, "pop3": PORT_BASE + 5995},
    "lookup_auth": {"http": PORT_BASE + 5080},
}


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ---------------------------------------------------------------- processes

class Procs:
    """Every long-running process we start, stopped by PID in reverse order
    (SIGTERM, then SIGKILL for it and whatever it forked that is left)."""

    def __init__(self):
        self.started = []  # (name, Popen)

    def start(self, name, argv, logfile, cwd=None):
        f = open(logfile, "wb")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f, cwd=cwd)
        finally:
            f.close()
        self.started.append((name, p))
        return p

    def stop(self, name=None):
        keep = []
        victims = []
        for n, p in reversed(self.started):
            if name is None or n == name:
                victims.append(p)
            else:
                keep.append((n, p))
        self.started = list(reversed(keep))
        for p in victims:
            kids = tree_pids([p.pid]) - {p.pid}
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if p.poll() is not None and not any(alive(k) for k in kids):
                    break
                time.sleep(0.05)
            if p.poll() is None:
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


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[1] = ppid; rest[11..14] = utime stime cutime cstime
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_pids(roots):
    """The given PIDs and all their descendants that are alive now."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid, _ = _stat(int(d))
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    seen, stack = set(), [r for r in roots]
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        stack.extend(children.get(p, []))
    return seen


def cpu_s(roots):
    """CPU seconds (user + system, plus reaped children) of the trees."""
    t = 0
    for pid in tree_pids(roots):
        try:
            t += _stat(pid)[1]
        except (OSError, ValueError, IndexError):
            pass
    return t / HZ


def pss_kib(roots):
    total = 0
    for pid in tree_pids(roots):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                m = re.search(r"^Pss:\s+(\d+)", f.read(), re.M)
                total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def busy_s():
    """All CPU time used on the machine (user+nice+system), in seconds."""
    with open("/proc/stat") as f:
        x = f.readline().split()
    return (int(x[1]) + int(x[2]) + int(x[3])) / HZ


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ports(ports, proc, secs=20):
    deadline = time.monotonic() + secs
    for port in ports:
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return True


# ---------------------------------------------------------------- data

def render(path, text, **kw):
    for k, v in kw.items():
        text = text.replace("@%s@" % k, str(v))
    with open(path, "w") as f:
        f.write(text)
    return path


def user_name(n):
    return "user%04d" % n


def home_backend(user):
    """Even user numbers live on A, odd ones on B; 'bulk' on both (A first)."""
    m = re.search(r"(\d+)$", user)
    return "b" if m and int(m.group(1)) % 2 else "a"


def make_data(run):
    users = [user_name(n) for n in range(1, NUSERS + 1)] + ["bulk"]
    with open(os.path.join(run, "users.passwd"), "w") as f:
        for u in users:
            f.write("%s:{PLAIN}pw::::::\n" % u)
    # every user has a Maildir on both backends (HAProxy may send anyone
    # anywhere), so no directory is created inside a measured loop
    for b in ("a", "b"):
        for u in users:
            for d in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(run, "mail-" + b, u, "Maildir", d))
    rnd = random.Random(1)
    body = base64.encodebytes(rnd.randbytes(int(BIG_MB * 1024 * 1024 * 3 / 4))).decode()
    msg = ("From: bench <bench@example.org>\nTo: bulk@example.org\n"
           "Subject: big message\nMessage-ID: <bulk-1@example.org>\n"
           "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMIME-Version: 1.0\n"
           "Content-Type: text/plain\n\n" + body).replace("\n", "\r\n")
    for b in ("a", "b"):
        name = "1700000000.M1P1.bench,S=%d:2," % len(msg)
        with open(os.path.join(run, "mail-" + b, "bulk", "Maildir", "cur", name), "w",
                  newline="") as f:
            f.write(msg)
    subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(run, "mail-a"),
                    os.path.join(run, "mail-b")], check=True)
    return len(msg)


def make_cert(run):
    d = os.path.join(run, "tls")
    os.makedirs(d)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "7", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem")],
                   check=True, capture_output=True)
    with open(os.path.join(d, "combined.pem"), "w") as f:
        for x in ("cert.pem", "key.pem"):
            with open(os.path.join(d, x)) as g:
                f.write(g.read())
    os.chmod(d, 0o755)
    for x in os.listdir(d):
        os.chmod(os.path.join(d, x), 0o644)  # a throwaway key, read by dropped-privilege workers
    return {"cert": os.path.join(d, "cert.pem"), "key": os.path.join(d, "key.pem"),
            "combined": os.path.join(d, "combined.pem")}


# ---------------------------------------------------------------- configs

DOVECOT_CONF = """# Dovecot backend @NAME@ for postern's bench: its own instance and base_dir.
instance_name = postern-bench-@NAME@
base_dir = @DIR@/run
state_dir = @DIR@/state
protocols = imap pop3
listen = 127.0.0.1
log_path = @DIR@/dovecot.log
info_log_path = /dev/null
default_internal_user = dovecot
default_login_user = dovenull
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN @RUN@/users.passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=@RUN@/mail-@NAME@/%u
}
mail_location = maildir:~/Maildir
mail_fsync = never
first_valid_uid = 1
first_valid_gid = 1
mail_max_userip_connections = 100000
default_client_limit = 12000
default_process_limit = 1000
default_vsz_limit = 1G
service imap-login {
  inet_listener imap {
    port = @IMAP@
  }
  inet_listener imaps {
    port = 0
  }
  service_count = 0
  process_min_avail = @NCPU@
  client_limit = 10000
}
service pop3-login {
  inet_listener pop3 {
    port = @POP3@
  }
  inet_listener pop3s {
    port = 0
  }
  service_count = 0
  process_min_avail = @NCPU@
  client_limit = 10000
}
service imap {
  service_count = 0
  client_limit = 50
  process_limit = 400
  process_min_avail = 2
}
service pop3 {
  service_count = 0
  client_limit = 50
  process_limit = 400
  process_min_avail = 2
}
service auth {
  client_limit = 12000
}
service anvil {
  client_limit = 12000
}
"""

POSTERN_CONF = """# postern for the bench: the defaults, one worker per core.
workers = "auto";
log_level = "@LOG_LEVEL@";
tls = {
  certificates = ( { cert = "@CERT@"; key = "@KEY@"; } );
  min_version = "TLSv1.2";
};
listeners = (
  { listen = "127.0.0.1:@IMAPS@"; protocol = "imap"; tls = "implicit"; },
  { listen = "127.0.0.1:@POP3S@"; protocol = "pop3"; tls = "implicit"; }
);
backends = (
  { name = "a"; host = "127.0.0.1"; imap = @A_IMAP@; pop3 = @A_POP3@; tls = "none"; },
  { name = "b"; host = "127.0.0.1"; imap = @B_IMAP@; pop3 = @B_POP3@; tls = "none"; }
);
route_map = "@DIR@/routes.map";
routes = ( { default = true; backend = "a"; } );
"""

# postern-lookup: the same postern, each login routed by asking an HTTP
# lookup service in nginx's auth_http protocol (the same tiny nginx
# endpoint nginx mail asks, its own instance) instead of the route map:
# what the lookup adds to a login, side by side with the static route.
POSTERN_LOOKUP_CONF = POSTERN_CONF.replace(
    'route_map = "@DIR@/routes.map";\n',
    'lookup = { url = "http://127.0.0.1:@AUTH@/auth"; protocol = "nginx"; };\n')

HAPROXY_CONF = """# HAProxy: TCP mode, TLS terminated here, plaintext to the backends.  Not
# protocol aware, so it cannot route per user: round robin.
global
    nbthread @NCPU@
    maxconn 9000
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode tcp
    timeout connect 5s
    timeout client 30m
    timeout server 30m
    maxconn 9000
frontend imaps
    bind 127.0.0.1:@IMAPS@ ssl crt @COMBINED@
    default_backend imap
frontend pop3s
    bind 127.0.0.1:@POP3S@ ssl crt @COMBINED@
    default_backend pop3
backend imap
    balance roundrobin
    server a 127.0.0.1:@A_IMAP@
    server b 127.0.0.1:@B_IMAP@
backend pop3
    balance roundrobin
    server a 127.0.0.1:@A_POP3@
    server b 127.0.0.1:@B_POP3@
"""

NGINX_MAIL_CONF = """# nginx mail proxy: TLS to the client, plaintext to the backend that the
# auth_http endpoint names (the ngx_mail_ssl_module example settings).
load_module @MODULE@;
daemon off;
worker_processes @NCPU@;
worker_rlimit_nofile 20000;
pid @DIR@/mail.pid;
error_log @DIR@/mail-error.log warn;
events {
    worker_connections 9000;
}
mail {
    server_name localhost;
    auth_http 127.0.0.1:@AUTH@/auth;
    proxy_pass_error_message on;
    ssl_certificate     @CERT@;
    ssl_certificate_key @KEY@;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:MAIL:10m;
    ssl_session_timeout 1h;
    imap_capabilities "IMAP4rev1" "LITERAL+" "SASL-IR" "ID" "ENABLE" "IDLE";
    pop3_capabilities "TOP" "USER" "UIDL";
    server {
        listen 127.0.0.1:@IMAPS@ ssl;
        protocol imap;
    }
    server {
        listen 127.0.0.1:@POP3S@ ssl;
        protocol pop3;
    }
}
"""

# The tiny auth_http endpoint nginx mail needs: yes, and the user's backend
# (Dovecot checks the password).  Even user numbers on A, odd on B.
NGINX_AUTH_CONF = """daemon off;
worker_processes 1;
pid @DIR@/auth.pid;
error_log @DIR@/auth-error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path @DIR@/tmp;
    proxy_temp_path @DIR@/tmp;
    fastcgi_temp_path @DIR@/tmp;
    uwsgi_temp_path @DIR@/tmp;
    scgi_temp_path @DIR@/tmp;
    map "$http_auth_protocol:$http_auth_user" $backend_port {
        "~^imap:.*[13579]$" @B_IMAP@;
        "~^imap:"           @A_IMAP@;
        "~^pop3:.*[13579]$" @B_POP3@;
        default             @A_POP3@;
    }
    server {
        listen 127.0.0.1:@AUTH@;
        location = /auth {
            add_header Auth-Status OK;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port $backend_port;
            return 204;
        }
    }
}
"""


# ---------------------------------------------------------------- the run

class Bench:
    def __init__(self):
        self.procs = Procs()
        self.roots = {}   # peer -> [pid]: the proxy's process trees
        self.aux = {}     # peer -> [pid]: helpers counted apart (auth_http)
        self.ok = []      # peers that started and passed the smoke test
        self.r = {}       # (peer, key) -> value
        self.backend_pids = []
        self.foreign = {}  # peer -> [% of a core other tenants used]

    # -- setup
    def start_backends(self):
        self.backend_pids = []
        for name in ("a", "b"):
            d = os.path.join(self.run, "dovecot-" + name)
            os.makedirs(d, exist_ok=True)
            conf = render(os.path.join(d, "dovecot.conf"), DOVECOT_CONF, NAME=name, DIR=d,
                          RUN=self.run, IMAP=PORTS[name]["imap"], POP3=PORTS[name]["pop3"],
                          NCPU=NCPU)
            p = self.procs.start("dovecot-" + name, ["dovecot", "-F", "-c", conf],
                                 os.path.join(d, "stdout.log"))
            if not wait_ports([PORTS[name]["imap"], PORTS[name]["pop3"]], p):
                raise SystemExit("Dovecot %s did not start; see %s" % (name, d))
            self.backend_pids.append(p.pid)

    def start_peer(self, peer):
        d = os.path.join(self.run, peer)
        os.makedirs(d, exist_ok=True)
        common = dict(DIR=d, NCPU=NCPU, CERT=self.certs["cert"], KEY=self.certs["key"],
                      COMBINED=self.certs["combined"], IMAPS=PORTS[peer]["imap"],
                      POP3S=PORTS[peer]["pop3"], A_IMAP=PORTS["a"]["imap"],
                      A_POP3=PORTS["a"]["pop3"], B_IMAP=PORTS["b"]["imap"],
                      B_POP3=PORTS["b"]["pop3"])
        if peer == "postern-lookup":
            os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
            auth = PORTS["lookup_auth"]["http"]
            aconf = render(os.path.join(d, "auth.conf"), NGINX_AUTH_CONF, AUTH=auth, **common)
            a = self.procs.start("postern-lookup-auth", ["nginx", "-p", d, "-e",
                                                         d + "/auth-start.log", "-c", aconf],
                                 os.path.join(d, "auth.out"))
            if not wait_ports([auth], a):
                return False
            conf = render(os.path.join(d, "postern.conf"), POSTERN_LOOKUP_CONF, AUTH=auth,
                          LOG_LEVEL=POSTERN_LOG_LEVEL, **common)
            p = self.procs.start(peer, [POSTERN, "-c", conf], os.path.join(d, "postern.log"))
            self.roots[peer] = [p.pid]
            self.aux[peer] = [a.pid]
        elif peer == "postern":
            with open(os.path.join(d, "routes.map"), "w") as f:
                for n in range(1, NUSERS + 1):
                    f.write("%s %s\n" % (user_name(n), home_backend(user_name(n))))
            conf = render(os.path.join(d, "postern.conf"), POSTERN_CONF,
                          LOG_LEVEL=POSTERN_LOG_LEVEL, **common)
            p = self.procs.start(peer, [POSTERN, "-c", conf], os.path.join(d, "postern.log"))
            self.roots[peer] = [p.pid]
        elif peer == "haproxy":
            conf = render(os.path.join(d, "haproxy.cfg"), HAPROXY_CONF, **common)
            p = self.procs.start(peer, ["haproxy", "-db", "-f", conf],
                                 os.path.join(d, "haproxy.log"))
            self.roots[peer] = [p.pid]
        elif peer == "nginx":
            os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
            auth = PORTS["nginx_auth"]["http"]
            aconf = render(os.path.join(d, "auth.conf"), NGINX_AUTH_CONF, AUTH=auth, **common)
            mconf = render(os.path.join(d, "mail.conf"), NGINX_MAIL_CONF, AUTH=auth,
                           MODULE=NGINX_MAIL_MODULE, **common)
            a = self.procs.start("nginx-auth", ["nginx", "-p", d, "-e", d + "/auth-start.log",
                                                "-c", aconf], os.path.join(d, "auth.out"))
            if not wait_ports([auth], a):
                return False
            p = self.procs.start(peer, ["nginx", "-p", d, "-e", d + "/mail-start.log", "-c",
                                        mconf], os.path.join(d, "mail.out"))
            self.roots[peer] = [p.pid]
            self.aux[peer] = [a.pid]
        else:
            log("unknown peer %s" % peer)
            return False
        return wait_ports([PORTS[peer]["imap"], PORTS[peer]["pop3"]], p)

    # -- loadgen
    def lg(self, tag, peer, proto, *args, timeout=300):
        argv = [LOADGEN, "-q", "-p", str(PORTS[peer][proto]), "-P", proto] + [str(a) for a in args]
        out = os.path.join(self.out, "%s.%s.txt" % (peer, tag))
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        with open(out, "w") as f:
            f.write(" ".join(argv) + "\n" + res.stdout + res.stderr)
        m = re.search(r"^RESULT (.*)$", res.stdout, re.M)
        if not m:
            log("   %s %s: no result: %s" % (peer, tag, res.stderr.strip()[-200:]))
            return {}
        kv = dict(x.split("=", 1) for x in m.group(1).split())
        err = re.search(r"^FIRST_ERROR (.*)$", res.stdout, re.M)
        if err and int(kv.get("total_fail", 0)) > 0:
            kv["first_error"] = err.group(1)
        return kv

    def measured(self, tag, peer, proto, *args):
        """A loadgen run with the proxy's CPU (and its helpers') around it."""
        c0, a0 = cpu_s(self.roots[peer]), cpu_s(self.aux.get(peer, []))
        kv = self.lg(tag, peer, proto, *args)
        c1, a1 = cpu_s(self.roots[peer]), cpu_s(self.aux.get(peer, []))
        kv["cpu"], kv["aux_cpu"] = c1 - c0, a1 - a0
        return kv

    def keep(self, peer, key, value, better):
        """Best of the rounds: better is max or min."""
        if value is None:
            return
        old = self.r.get((peer, key))
        self.r[(peer, key)] = value if old is None else better(old, value)
        self.r.setdefault((peer, key + ".all"), []).append(value)

    def login_run(self, peer, tag, proto, *args):
        kv = self.measured(tag, peer, proto, "-m", "login", "-U", "1-%d" % NUSERS, *args)
        ok = int(kv.get("total_ok", 0))
        fails = int(kv.get("total_fail", 0))
        if fails:
            self.r[(peer, tag + ".fail")] = self.r.get((peer, tag + ".fail"), 0) + fails
            log("   %s %s: %d failed sessions (%s)" % (peer, tag, fails,
                                                       kv.get("first_error", "?")))
        if ok == 0:
            return kv
        kv["cpu_ms"] = kv["cpu"] / ok * 1000
        kv["aux_ms"] = kv["aux_cpu"] / ok * 1000
        return kv

    def smoke(self, peer):
        for proto in ("imap", "pop3"):
            kv = self.lg("smoke-" + proto, peer, proto, "-m", "login", "-c", 1, "-n", 2,
                         "-U", "1-2", "-t", 10)
            if kv.get("total_ok") != "2":
                log("peer %s: %s smoke test failed: %s" % (peer, proto, kv))
                return False
            self.r[(peer, "tls")] = kv.get("tls")
        return True

    def phase(self, peer, fn):
        b0, m0, t0 = busy_s(), cpu_s([os.getpid()]), time.monotonic()
        fn()
        b1, m1, t1 = busy_s(), cpu_s([os.getpid()]), time.monotonic()
        pct = max(0.0, ((b1 - b0) - (m1 - m0)) / (t1 - t0) * 100)
        self.foreign.setdefault(peer, []).append(pct)

    # -- workloads
    def latency_and_resumption(self, peer):
        kv = self.login_run(peer, "login-c1", "imap", "-c", 1, "-w", 0.3, "-d", LAT_SECS)
        self.r[(peer, "p50_c1")] = float(kv.get("p50_ms", 0)) or None
        self.r[(peer, "p99_c1")] = float(kv.get("p99_ms", 0)) or None
        for ver in ("1.3", "1.2"):
            kv = self.login_run(peer, "resume-tls" + ver, "imap", "-c", LOGIN_CONC, "-w", 0.5,
                                "-d", RESUME_SECS, "-r", "--tls", ver)
            self.r[(peer, "resumed" + ver)] = "%s / %d" % (
                kv.get("resumed", "0"), int(kv.get("resumed", 0)) + int(kv.get("full_hs", 0)))
            self.r[(peer, "resume_rate" + ver)] = float(kv.get("rate", 0))
            if "cpu_ms" in kv:
                self.r[(peer, "cpu_resumed" + ver)] = kv["cpu_ms"]
                self.r[(peer, "aux_resumed" + ver)] = kv["aux_ms"]

    def throughput_round(self, peer, rnd):
        kv = self.login_run(peer, "login-imap.r%d" % rnd, "imap", "-c", LOGIN_CONC, "-w", WARMUP,
                            "-d", LOGIN_SECS, "--tls", "1.3")
        self.keep(peer, "rate_imap", float(kv.get("rate", 0)) or None, max)
        if "cpu_ms" in kv:
            self.keep(peer, "cpu_full", kv["cpu_ms"], min)
            self.keep(peer, "aux_full", kv["aux_ms"], min)
        kv = self.login_run(peer, "login-pop3.r%d" % rnd, "pop3", "-c", LOGIN_CONC, "-w", WARMUP,
                            "-d", LOGIN_SECS, "--tls", "1.3")
        self.keep(peer, "rate_pop3", float(kv.get("rate", 0)) or None, max)
        for proto in ("imap", "pop3"):
            kv = self.measured("bulk-%s.r%d" % (proto, rnd), peer, proto, "-m", "bulk", "-c", 1,
                               "-w", 0.5, "-d", BULK_SECS, "-t", 30)
            total = int(kv.get("bytes_total", 0))
            if total > 0:
                self.keep(peer, "bulk_" + proto, float(kv["mbps"]), max)
                self.keep(peer, "cpu_gb_" + proto, kv["cpu"] / total * 1e9, min)
            else:
                log("   %s bulk %s failed: %s" % (peer, proto, kv.get("first_error", kv)))

    def idle(self, peer):
        # Fresh backends: Dovecot keeps the mail processes the previous
        # peer's sessions made, and this peer's sessions would reuse them.
        # Then a fresh proxy: the login storms before leave freed heap
        # behind that idle sessions would reuse, hiding what one costs.
        self.procs.stop(peer)
        if peer == "nginx":
            self.procs.stop("nginx-auth")
        if peer == "postern-lookup":
            self.procs.stop("postern-lookup-auth")
        self.procs.stop("dovecot-b")
        self.procs.stop("dovecot-a")
        self.start_backends()
        if not self.start_peer(peer):
            log("   %s did not restart" % peer)
            return
        time.sleep(1)
        m0, b0 = pss_kib(self.roots[peer]), pss_kib(self.backend_pids)
        out = os.path.join(self.out, "%s.idle.txt" % peer)
        f = open(out, "w")
        p = subprocess.Popen([LOADGEN, "-q", "-p", str(PORTS[peer]["imap"]), "-P", "imap", "-m",
                              "idle", "-k", str(IDLE_K), "-c", "64", "-U", "1-%d" % NUSERS,
                              "--hold", "120", "-t", "30"], stdout=f, stderr=f)
        n = 0
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and p.poll() is None:
                with open(out) as g:
                    m = re.search(r"^READY idle=(\d+) failed=(\d+) ramp_s=([\d.]+)", g.read(), re.M)
                if m:
                    n = int(m.group(1))
                    self.r[(peer, "idle_ramp_s")] = float(m.group(3))
                    self.r[(peer, "idle_failed")] = int(m.group(2))
                    break
                time.sleep(0.1)
            time.sleep(1)
            m1, b1 = pss_kib(self.roots[peer]), pss_kib(self.backend_pids)
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            f.close()
        self.r[(peer, "idle_n")] = n
        if n > 0:
            self.r[(peer, "pss")] = (m1 - m0) / n
            self.r[(peer, "backend_pss")] = (b1 - b0) / n
            self.r[(peer, "pss_total_mib")] = m1 / 1024
        time.sleep(2)  # let the proxy and the backends tear the sessions down

    # -- report
    def fmt(self, v, d=1):
        if v is None or v == "":
            return "-"
        if isinstance(v, str):
            return v
        return "%.*f" % (d, v)

    def table(self):
        g = lambda p, k: self.r.get((p, k))  # noqa: E731
        lines = []
        lines.append("# postern bench %s%s" % (self.stamp, " (QUICK=1)" if QUICK else ""))
        lines.append("")
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.*)", f.read())
        ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
        lines.append("host: %d cores, %s, kernel %s, %s; load average at start %s" % (
            NCPU, model.group(1) if model else "?", os.uname().release, ossl.strip(),
            self.load0))
        lines.append("params: ROUNDS=%d LOGIN_CONC=%d LOGIN_SECS=%g WARMUP=%g IDLE_K=%d "
                     "BULK_SECS=%g BIG_MB=%g NUSERS=%d; throughput = best round, CPU = "
                     "lowest round" % (ROUNDS, LOGIN_CONC, LOGIN_SECS, WARMUP, IDLE_K,
                                       BULK_SECS, BIG_MB, NUSERS))
        lines.append("")
        cols = ["peer", "IMAP logins/s c=%d" % LOGIN_CONC, "p50 ms c=1",
                "proxy CPU ms / IMAP login (full)", "proxy CPU ms / IMAP login (resumed)",
                "PSS KiB / idle session", "IMAP bulk MB/s", "CPU s / GB relayed",
                "TLS 1.3 resumed c=%d" % LOGIN_CONC]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|---" + "|---:" * (len(cols) - 1) + "|")
        for p in PEERS:
            if p not in self.ok:
                lines.append("| %s | did not start or failed the smoke test |%s" %
                             (p, " |" * (len(cols) - 2)))
                continue
            aux = lambda k: (" + %.3f auth" % g(p, k)) if g(p, k) else ""  # noqa: E731
            lines.append("| " + " | ".join([
                p, self.fmt(g(p, "rate_imap"), 0), self.fmt(g(p, "p50_c1"), 2),
                self.fmt(g(p, "cpu_full"), 3) + aux("aux_full"),
                self.fmt(g(p, "cpu_resumed1.3"), 3) + aux("aux_resumed1.3"),
                self.fmt(g(p, "pss"), 1), self.fmt(g(p, "bulk_imap"), 0),
                self.fmt(g(p, "cpu_gb_imap"), 2), self.fmt(g(p, "resumed1.3"))]) + " |")
        lines.append("")
        if "postern" in self.ok:
            lines.append("postern relative to each peer (postern / peer; logins/s and MB/s: "
                         ">1 is better for postern; ms, CPU and KiB: <1 is better):")
            lines.append("")
            rc = ["peer", "IMAP logins/s", "p50 ms c=1", "CPU / login full",
                  "CPU / login resumed", "PSS / idle session", "IMAP bulk MB/s",
                  "CPU / GB", "TLS 1.3 resumed share"]
            lines.append("| " + " | ".join(rc) + " |")
            lines.append("|---" + "|---:" * (len(rc) - 1) + "|")

            def share(p):
                v = g(p, "resumed1.3")
                m = re.match(r"(\d+) / (\d+)", v or "")
                return int(m.group(1)) / int(m.group(2)) if m and int(m.group(2)) else None

            def cpu(p, k, a):
                return None if g(p, k) is None else g(p, k) + (g(p, a) or 0)

            def ratio(a, b):
                return "-" if a is None or b in (None, 0) else "%.2f" % (a / b)
            for p in self.ok:
                if p == "postern":
                    continue
                q = "postern"
                lines.append("| " + " | ".join([
                    p, ratio(g(q, "rate_imap"), g(p, "rate_imap")),
                    ratio(g(q, "p50_c1"), g(p, "p50_c1")),
                    ratio(cpu(q, "cpu_full", "aux_full"), cpu(p, "cpu_full", "aux_full")),
                    ratio(cpu(q, "cpu_resumed1.3", "aux_resumed1.3"),
                          cpu(p, "cpu_resumed1.3", "aux_resumed1.3")),
                    ratio(g(q, "pss"), g(p, "pss")), ratio(g(q, "bulk_imap"), g(p, "bulk_imap")),
                    ratio(g(q, "cpu_gb_imap"), g(p, "cpu_gb_imap")),
                    ratio(share(q), share(p))]) + " |")
            lines.append("")
            lines.append("(nginx's CPU includes its auth_http endpoint in the ratios.)")
            lines.append("")
        if "postern" in self.ok and "postern-lookup" in self.ok:
            q, p = "postern", "postern-lookup"

            def diff(k, fmt="%+.3f"):
                a, b = g(p, k), g(q, k)
                return "-" if a is None or b is None else fmt % (a - b)
            lines.append("the HTTP user lookup (postern-lookup: each login asks an nginx "
                         "auth_http endpoint on loopback, keep-alive) against the route map "
                         "(postern), same run: logins/s %s vs %s; added p50 %s ms, p99 %s ms "
                         "at c=1; added postern CPU per login %s ms (the service: %s ms)" % (
                             self.fmt(g(p, "rate_imap"), 0), self.fmt(g(q, "rate_imap"), 0),
                             diff("p50_c1"), diff("p99_c1"), diff("cpu_full"),
                             self.fmt(g(p, "aux_full"), 3)))
            lines.append("")
        lines.append("details:")
        for p in self.ok:
            lines.append(
                "- **%s**: tls=%s; IMAP logins/s per round=%s; POP3 logins/s=%s; p99 ms c=1=%s; "
                "TLS 1.2 resumed c=%d=%s (CPU ms/login %s); resumed logins/s TLS 1.3/1.2=%s/%s; "
                "bulk MB/s imap=%s pop3=%s; CPU s/GB pop3=%s; idle sessions held=%s/%d "
                "(ramp %s s; proxy PSS total %s MiB; backend PSS KiB/session %s); "
                "failed sessions=%s; other tenants' CPU per phase=%s%% of a core" % (
                    p, g(p, "tls"),
                    "/".join("%.0f" % x for x in g(p, "rate_imap.all") or []),
                    self.fmt(g(p, "rate_pop3"), 0), self.fmt(g(p, "p99_c1"), 2), LOGIN_CONC,
                    self.fmt(g(p, "resumed1.2")), self.fmt(g(p, "cpu_resumed1.2"), 3),
                    self.fmt(g(p, "resume_rate1.3"), 0), self.fmt(g(p, "resume_rate1.2"), 0),
                    "/".join("%.0f" % x for x in g(p, "bulk_imap.all") or []),
                    "/".join("%.0f" % x for x in g(p, "bulk_pop3.all") or []),
                    self.fmt(g(p, "cpu_gb_pop3"), 2), g(p, "idle_n"), IDLE_K,
                    self.fmt(g(p, "idle_ramp_s"), 1), self.fmt(g(p, "pss_total_mib"), 1),
                    self.fmt(g(p, "backend_pss"), 1),
                    sum(v for (pp, k), v in self.r.items() if pp == p and k.endswith(".fail")),
                    "/".join("%.0f" % x for x in self.foreign.get(p, []))))
        lines.append("")
        lines.append("wall time %.0f s; raw loadgen output in %s" % (
            time.monotonic() - self.t0, self.out))
        return "\n".join(lines) + "\n"

    # -- all of it
    def main(self):
        self.t0 = time.monotonic()
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        with open("/proc/loadavg") as f:
            self.load0 = " ".join(f.read().split()[:3])
        for b in ("dovecot", "openssl") + (("haproxy",) if "haproxy" in PEERS else ()) + \
                (("nginx",) if "nginx" in PEERS or "postern-lookup" in PEERS else ()):
            if shutil.which(b) is None:
                raise SystemExit("missing %s (run: sh tests/bench/deps.sh)" % b)
        for x in (POSTERN, LOADGEN):
            if not os.access(x, os.X_OK):
                raise SystemExit("missing %s (run: make bench)" % x)
        for peer in ["a", "b"] + PEERS + (["nginx_auth"] if "nginx" in PEERS else []) + \
                (["lookup_auth"] if "postern-lookup" in PEERS else []):
            for port in PORTS[peer].values():
                if port_open(port):
                    raise SystemExit("port %d on 127.0.0.1 is in use (set BENCH_PORT_BASE)"
                                     % port)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.out = env("OUT_DIR", os.path.join(ROOT, "build", "bench", "out", self.stamp))
        os.makedirs(self.out, exist_ok=True)
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.run = tempfile.mkdtemp(prefix="postern-bench-", dir=base)
        os.chmod(self.run, 0o755)
        log("run dir %s, results in %s" % (self.run, self.out))
        failed = True
        try:
            self.certs = make_cert(self.run)
            size = make_data(self.run)
            log("data: %d users, a %.1f MB message; starting Dovecot A (%d/%d) and B (%d/%d)" % (
                NUSERS, size / 1e6, PORTS["a"]["imap"], PORTS["a"]["pop3"], PORTS["b"]["imap"],
                PORTS["b"]["pop3"]))
            self.start_backends()
            for peer in PEERS:
                if not self.start_peer(peer):
                    log("peer %s did not start; see %s" % (peer, os.path.join(self.run, peer)))
                    continue
                if self.smoke(peer):
                    self.ok.append(peer)
            log("peers up: %s" % " ".join(self.ok))
            for peer in self.ok:
                log("== %s: latency at c=1, resumed handshakes (TLS 1.3, 1.2)" % peer)
                self.phase(peer, lambda: self.latency_and_resumption(peer))
            for rnd in range(1, ROUNDS + 1):
                order = self.ok if rnd % 2 else list(reversed(self.ok))
                for peer in order:
                    log("== %s: round %d/%d, logins and bulk" % (peer, rnd, ROUNDS))
                    self.phase(peer, lambda: self.throughput_round(peer, rnd))
                    log("   imap logins/s %s, CPU ms/login %s, bulk MB/s %s" % (
                        self.fmt(self.r.get((peer, "rate_imap")), 0),
                        self.fmt(self.r.get((peer, "cpu_full")), 3),
                        self.fmt(self.r.get((peer, "bulk_imap")), 0)))
            # last: holding thousands of sessions leaves the backends slower
            for peer in self.ok:
                log("== %s: %d idle logged-in sessions" % (peer, IDLE_K))
                self.phase(peer, lambda: self.idle(peer))
            text = self.table()
            with open(os.path.join(self.out, "table.md"), "w") as f:
                f.write(text)
            sys.stdout.write(text)
            failed = False
        finally:
            self.procs.stop()
            for peer in PEERS + ["dovecot-a", "dovecot-b"]:
                d = os.path.join(self.run, peer)
                if os.path.isdir(d):
                    logs = os.path.join(self.out, "logs", peer)
                    os.makedirs(logs, exist_ok=True)
                    for x in os.listdir(d):
                        if x.endswith((".log", ".out", ".conf", ".cfg")):
                            shutil.copy(os.path.join(d, x), logs)
            if KEEP_RUN_DIR or failed:
                log("run dir kept: %s" % self.run)
            else:
                shutil.rmtree(self.run, ignore_errors=True)
        return 0 if self.ok else 1


def _raise(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)
    sys.exit(Bench().main())
