"""Integration harness for postern: test certificates, real Dovecot backends
and a postern process, each in its own temporary directory on loopback.

No pytest in here: tests/integration/demo.py imports it too.  Every wait is
bounded, every process is stopped by the PID this module started (never by
name), and every temporary directory is removed, also when a test fails.
"""

import atexit
import base64
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
POSTERN_BIN = os.environ.get("POSTERN_BIN", os.path.join(REPO, "postern"))
DOVECOT_BIN = os.environ.get("DOVECOT_BIN", "/usr/sbin/dovecot")

# Dovecot refuses root as the mail uid; these exist on every Debian system.
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"

# Slow builds (the sanitizer build: make integration-asan) stretch the
# harness's waits by this factor; what a test asserts stays the same.
TIMEOUT_SCALE = float(os.environ.get("POSTERN_TIMEOUT_SCALE") or 1.0)

IO_TIMEOUT = 10.0 * TIMEOUT_SCALE  # seconds, for every socket operation in the tests

# Where a sanitizer build of postern writes its reports (ASAN_OPTIONS and
# UBSAN_OPTIONS log_path=DIR/asan, DIR/ubsan: one file per process, named
# by its PID), or None.
SANITIZER_LOGS = os.environ.get("POSTERN_SANITIZER_LOGS") or None


def sanitizer_reports(pid=None):
    """The sanitizer report files, as {path: text}: all of them, or only
    those of process pid.  Empty when no sanitizer log directory is set."""
    if not SANITIZER_LOGS or not os.path.isdir(SANITIZER_LOGS):
        return {}
    out = {}
    for name in sorted(os.listdir(SANITIZER_LOGS)):
        if pid is not None and name.rsplit(".", 1)[-1] != str(pid):
            continue
        path = os.path.join(SANITIZER_LOGS, name)
        out[path] = _read(path)
    return out

# Processes started here and not yet stopped: stopped at interpreter exit if a
# caller forgot (or was interrupted before its own cleanup ran).
_live = set()


def _stop_all_at_exit():
    for obj in list(_live):
        try:
            obj.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all_at_exit)


_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago, and
    never one this process handed out before (the kernel may offer a port
    again once its probe socket is closed)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port after 200 tries")


def wait_port(port, timeout=10.0, host="127.0.0.1", alive=None):
    """Wait until host:port accepts a TCP connection.  alive() (optional)
    returns False when the process that should listen has died, which ends
    the wait early.  Returns True when the port accepts, False otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_pid(proc, term_timeout=10.0):
    """SIGTERM the one process proc (a subprocess.Popen), wait, then SIGKILL.
    Only this PID is signalled, never a name or a group.  SIGTERM lets
    postern return from main(), so a sanitizer build runs its leak check."""
    if proc is None or proc.poll() is not None:
        return
    term_timeout *= TIMEOUT_SCALE
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=term_timeout)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def _read(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(
            "openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace"))
        )


def make_certs(dirpath):
    """A self-signed test CA and two server certificates it signs, RSA-2048
    and ECDSA P-256, for CN "localhost" with SAN DNS:localhost, IP:127.0.0.1.
    Returns a dict of paths: ca, ca_key, rsa_cert, rsa_key, ecdsa_cert,
    ecdsa_key."""
    os.makedirs(dirpath, exist_ok=True)
    p = {
        "ca": os.path.join(dirpath, "ca.crt"),
        "ca_key": os.path.join(dirpath, "ca.key"),
        "rsa_cert": os.path.join(dirpath, "rsa.crt"),
        "rsa_key": os.path.join(dirpath, "rsa.key"),
        "ecdsa_cert": os.path.join(dirpath, "ecdsa.crt"),
        "ecdsa_key": os.path.join(dirpath, "ecdsa.key"),
    }
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", p["ca_key"], "-out", p["ca"], "-days", "30",
             "-subj", "/CN=postern test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = os.path.join(dirpath, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for kind, newkey in (("rsa", ["-newkey", "rsa:2048"]),
                         ("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        csr = os.path.join(dirpath, kind + ".csr")
        _openssl("req", "-new", *newkey, "-nodes", "-keyout", p[kind + "_key"],
                 "-out", csr, "-subj", "/CN=localhost")
        _openssl("x509", "-req", "-in", csr, "-CA", p["ca"], "-CAkey", p["ca_key"],
                 "-CAcreateserial", "-out", p[kind + "_cert"], "-days", "30",
                 "-sha256", "-extfile", ext)
    return p


def make_ca(dirpath, name, cn):
    """Another self-signed CA (ECDSA P-256) in dirpath: {"ca", "ca_key"}."""
    os.makedirs(dirpath, exist_ok=True)
    p = {"ca": os.path.join(dirpath, name + ".crt"),
         "ca_key": os.path.join(dirpath, name + ".key")}
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", p["ca_key"], "-out", p["ca"], "-days", "30",
             "-subj", "/CN=" + cn,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return p


def make_server_cert(dirpath, name, ca, cn, dns=(), ips=(), kind="rsa"):
    """A server certificate signed by ca (a dict with "ca" and "ca_key", e.g.
    make_certs()' result), subject CN=cn, SAN DNS:dns..., IP:ips..., key kind
    "rsa" (2048) or "ecdsa" (P-256), a random serial.  Files
    dirpath/name.crt and name.key; returns {"cert", "key"}."""
    os.makedirs(dirpath, exist_ok=True)
    p = {"cert": os.path.join(dirpath, name + ".crt"),
         "key": os.path.join(dirpath, name + ".key")}
    san = ",".join(["DNS:" + d for d in dns] + ["IP:" + i for i in ips])
    ext = os.path.join(dirpath, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
        if san:
            f.write("subjectAltName=%s\n" % san)
    newkey = (["-newkey", "rsa:2048"] if kind == "rsa" else
              ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    csr = os.path.join(dirpath, name + ".csr")
    _openssl("req", "-new", *newkey, "-nodes", "-keyout", p["key"], "-out", csr,
             "-subj", "/CN=" + cn)
    _openssl("x509", "-req", "-in", csr, "-CA", ca["ca"], "-CAkey", ca["ca_key"],
             "-set_serial", "0x" + os.urandom(8).hex(), "-out", p["cert"], "-days", "30",
             "-sha256", "-extfile", ext)
    return p


def pem_to_der(path_or_text):
    """The DER bytes of the first certificate in a PEM file (or PEM text)."""
    text = path_or_text
    if "-----BEGIN" not in text:
        with open(text) as f:
            text = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    if not m:
        raise ValueError("no certificate in %r" % text[:200])
    return ssl.PEM_cert_to_DER_cert(m.group(0))


def client_context(cafile):
    """A client TLS context that verifies the server against cafile."""
    return ssl.create_default_context(cafile=cafile)


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------


def make_message(user, backend, n):
    """Message n for user as stored on backend: CRLF line ends, content that
    names both, so a test can tell where a FETCH came from."""
    lines = [
        "Return-Path: <sender@example.com>",
        "From: Test Sender <sender@example.com>",
        "To: <%s>" % user,
        "Subject: message %d for %s on %s" % (n, user, backend),
        "Message-ID: <%d.%s.%s@postern.test>" % (n, user.replace("@", "."), backend),
        "Date: Mon, 01 Jan 2024 10:%02d:00 +0000" % n,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Hello %s," % user,
        "this is message %d, stored on backend %s." % (n, backend),
        "user=%s backend=%s n=%d" % (user, backend, n),
        "",
        "-- ",
        "postern integration tests",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


# ---------------------------------------------------------------------------
# Dovecot
# ---------------------------------------------------------------------------

DOVECOT_CONF = """\
# Generated by tests/integration/harness.py for backend {name}.
instance_name = pit-{name}
base_dir = {run}
state_dir = {state}
log_path = {log}
info_log_path = {log}
debug_log_path = {log}

protocols = imap pop3
listen = {listen}
{ssl_settings}
disable_plaintext_auth = {disable_plaintext_auth}
auth_mechanisms = plain login
{trusted_line}
login_greeting = Dovecot {name} ready.
auth_verbose = yes
auth_failure_delay = 0
shutdown_clients = yes

default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull

# Mail belongs to an unprivileged user: Dovecot refuses root as mail uid.
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_plugins = notify mail_log
plugin {{
  mail_log_events = mailbox_create mailbox_delete mailbox_rename delete expunge
  mail_log_fields = uid box msgid
}}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}

protocol imap {{
  mail_max_userip_connections = 200
}}
protocol pop3 {{
  mail_max_userip_connections = 200
}}

# No anvil auth penalty: tests fail logins on purpose, and every client
# comes from 127.0.0.1 (the auth process cannot reach this socket).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = {listen}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {listen}
    port = {imaps_port}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {listen}
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = {listen}
    port = {pop3s_port}
  }}
}}
"""


class Dovecot:
    """A real Dovecot, plaintext IMAP and POP3 on 127.0.0.1, in its own
    temporary directory with its own config, users from a passwd-file and
    mail in maildirs.

        d = Dovecot("mx1", {"alice@example.org": "secret"})
        d.start(); ...; d.stop()       # or: with Dovecot(...) as d:

    users: {user: password}.  Each user gets `messages` messages;
    d.messages[user] is the list of their exact bytes, in UID order.

    TLS (all optional; the defaults are the plaintext backend above):
    ssl = {"cert": path, "key": path} turns Dovecot's TLS on: STARTTLS/STLS on
    imap_port/pop3_port and implicit TLS on imaps_port/pop3s_port;
    ssl_mode "yes" or "required".  listen: the one address every listener
    binds (e.g. "127.0.0.2").  trusted_networks: login_trusted_networks, None
    for none.  disable_plaintext_auth: Dovecot's setting of that name."""

    def __init__(self, name, users, imap_port=None, pop3_port=None, messages=3,
                 parent_dir=None, ssl=None, ssl_mode="required", listen="127.0.0.1",
                 trusted_networks="127.0.0.0/8", disable_plaintext_auth=False,
                 imaps_port=None, pop3s_port=None, haproxy=None, extra_conf=""):
        self.name = name
        self.users = dict(users)
        # PROXY protocol on the plaintext imap and pop3 listeners (see
        # _extra_conf); extra_conf: more Dovecot settings, appended as is.
        self.haproxy = haproxy
        self.extra_conf = extra_conf
        self.imap_port = imap_port or free_port()
        self.pop3_port = pop3_port or free_port()
        self.ssl = dict(ssl) if ssl else None
        self.ssl_mode = ssl_mode
        self.listen = listen
        self.trusted_networks = trusted_networks
        self.disable_plaintext_auth = disable_plaintext_auth
        self.imaps_port = (imaps_port or free_port()) if ssl else 0
        self.pop3s_port = (pop3s_port or free_port()) if ssl else 0
        self.nmessages = messages
        self.parent_dir = parent_dir
        self.dir = None
        self.proc = None
        self.messages = {}

    # paths ------------------------------------------------------------
    @property
    def conf_path(self):
        return os.path.join(self.dir, "dovecot.conf")

    @property
    def log_path(self):
        return os.path.join(self.dir, "dovecot.log")

    @property
    def stderr_path(self):
        return os.path.join(self.dir, "dovecot.stderr")

    def maildir(self, user):
        return os.path.join(self.dir, "mail", user, "Maildir")

    # setup ------------------------------------------------------------
    def _write_users(self, path):
        with open(path, "wb") as f:
            for user, password in self.users.items():
                pw = password.encode("utf-8") if isinstance(password, str) else password
                if b":" in pw or b"\n" in pw or b":" in user.encode():
                    raise ValueError("passwd-file cannot hold ':' or newlines: %r" % user)
                f.write(user.encode("utf-8") + b":{PLAIN}" + pw + b"::::::\n")
        os.chmod(path, 0o644)

    def _deliver(self, uid, gid):
        t0 = 1700000000
        for user in self.users:
            md = self.maildir(user)
            for sub in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(md, sub), exist_ok=True)
            msgs = []
            for n in range(1, self.nmessages + 1):
                data = make_message(user, self.name, n)
                # Dovecot assigns UIDs to new/ in the order of the time prefix.
                fname = "%d.M%dP%d.%s,S=%d" % (t0 + n, n, os.getpid(), self.name, len(data))
                path = os.path.join(md, "new", fname)
                with open(path, "wb") as f:
                    f.write(data)
                os.utime(path, (t0 + n, t0 + n))
                msgs.append(data)
            self.messages[user] = msgs
            for root, dirs, files in os.walk(os.path.join(self.dir, "mail", user)):
                os.chown(root, uid, gid)
                for fn in files:
                    os.chown(os.path.join(root, fn), uid, gid)
            os.chown(os.path.join(self.dir, "mail", user), uid, gid)

    def _ssl_settings(self):
        if not self.ssl:
            return "ssl = no"
        lines = ["ssl = %s" % self.ssl_mode,
                 "ssl_cert = <%s" % self.ssl["cert"],
                 "ssl_key = <%s" % self.ssl["key"],
                 "ssl_min_protocol = TLSv1.2"]
        if os.path.exists("/usr/share/dovecot/dh.pem"):
            lines.append("ssl_dh = </usr/share/dovecot/dh.pem")
        return "\n".join(lines)

    def _extra_conf(self):
        """Settings after the generated ones (Dovecot merges a repeated
        section into the earlier one of the same name).  haproxy: True (or a
        network list, default 127.0.0.0/8, for haproxy_trusted_networks) puts
        `haproxy = yes` on the plaintext imap and pop3 listeners, which then
        REQUIRE a PROXY v1/v2 header from those networks; the implicit-TLS
        listeners stay as they are."""
        out = ["", "# added by Dovecot(haproxy=..., extra_conf=...)"]
        if self.haproxy:
            nets = self.haproxy if isinstance(self.haproxy, str) else "127.0.0.0/8"
            out += ["haproxy_trusted_networks = %s" % nets,
                    "service imap-login {",
                    "  inet_listener imap {",
                    "    haproxy = yes",
                    "  }",
                    "}",
                    "service pop3-login {",
                    "  inet_listener pop3 {",
                    "    haproxy = yes",
                    "  }",
                    "}"]
        if self.extra_conf:
            out.append(self.extra_conf)
        return "\n".join(out) + "\n"

    def listening_ports(self):
        return [p for p in (self.imap_port, self.pop3_port, self.imaps_port,
                            self.pop3s_port) if p]

    def start(self, timeout=15.0):
        uid = pwd.getpwnam(MAIL_USER).pw_uid
        gid = grp.getgrnam(MAIL_GROUP).gr_gid
        self.dir = tempfile.mkdtemp(prefix="pit-%s-" % self.name, dir=self.parent_dir)
        os.chmod(self.dir, 0o755)
        for sub in ("run", "state", "mail"):
            os.makedirs(os.path.join(self.dir, sub))
        os.chmod(os.path.join(self.dir, "mail"), 0o755)
        users = os.path.join(self.dir, "users")
        self._write_users(users)
        self._deliver(uid, gid)
        with open(self.conf_path, "w") as f:
            f.write(DOVECOT_CONF.format(
                name=self.name, run=os.path.join(self.dir, "run"),
                state=os.path.join(self.dir, "state"), log=self.log_path,
                uid=uid, gid=gid, mail=os.path.join(self.dir, "mail"), users=users,
                imap_port=self.imap_port, pop3_port=self.pop3_port,
                imaps_port=self.imaps_port, pop3s_port=self.pop3s_port,
                listen=self.listen, ssl_settings=self._ssl_settings(),
                disable_plaintext_auth="yes" if self.disable_plaintext_auth else "no",
                trusted_line=("login_trusted_networks = %s" % self.trusted_networks
                              if self.trusted_networks else
                              "# no login_trusted_networks")))
            f.write(self._extra_conf())
        return self._spawn("wb", timeout, self.cleanup, "listen")

    def _spawn(self, mode, timeout, on_fail, what):
        """Run dovecot -F in the background (stderr file opened with mode) and
        wait, bounded, until every port listens; else on_fail() and raise."""
        err = open(self.stderr_path, mode)
        try:
            self.proc = subprocess.Popen([DOVECOT_BIN, "-F", "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         cwd=self.dir)
        finally:
            err.close()
        _live.add(self)
        alive = lambda: self.proc.poll() is None  # noqa: E731
        deadline = time.monotonic() + timeout
        for port in self.listening_ports():
            if not wait_port(port, max(0.1, deadline - time.monotonic()), host=self.listen,
                             alive=alive):
                why = "exited with %s" % self.proc.returncode if not alive() else "timed out"
                diag = self.diagnostics()
                on_fail()
                raise RuntimeError("dovecot %s did not %s on %d (%s)\n%s"
                                   % (self.name, what, port, why, diag))
        return self

    def stop(self):
        """Stop this Dovecot (its master PID only) and keep its directory, so
        the log can still be read; cleanup() removes it."""
        stop_pid(self.proc)
        _live.discard(self)

    def restart(self, timeout=15.0):
        """Start this Dovecot again after stop(): the same directory, config,
        ports, users, mail and log file (the log goes on growing, so offsets
        from log_size() stay valid).  Waits until every port listens."""
        if self.dir is None or not os.path.isdir(self.dir):
            raise RuntimeError("dovecot %s: restart() needs start() and stop() first"
                               % self.name)
        if self.running():
            raise RuntimeError("dovecot %s is still running" % self.name)
        return self._spawn("ab", timeout, self.stop, "listen again")

    def cleanup(self):
        self.stop()
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # inspection -------------------------------------------------------
    def log(self):
        """The Dovecot log so far (its own log file)."""
        return _read(self.log_path)

    def diagnostics(self):
        return ("--- %s stderr ---\n%s\n--- %s log ---\n%s"
                % (self.name, _read(self.stderr_path), self.name, _tail(self.log())))

    def wait_log(self, pattern, timeout=5.0, since=0):
        """Wait until the log (from byte offset since) matches regex pattern;
        returns the match or None.  Dovecot's log process writes a moment
        after the event."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log()[since:])
            if m or time.monotonic() >= deadline:
                return m
            time.sleep(0.05)

    def log_size(self):
        return len(self.log())

    def mailboxes(self, user):
        """Mailbox names that exist on disk for user: "INBOX" plus each
        Maildir++ folder (".name" directories), e.g. ["INBOX", "injected"]."""
        md = self.maildir(user)
        if not os.path.isdir(md):
            return []
        boxes = ["INBOX"]
        for e in sorted(os.listdir(md)):
            if e.startswith(".") and os.path.isdir(os.path.join(md, e)):
                boxes.append(e[1:])
        return boxes

    def all_mailboxes(self):
        """{user: [mailboxes]} for every maildir under this backend, also
        ones for users the harness did not create."""
        root = os.path.join(self.dir, "mail")
        return {u: self.mailboxes(u) for u in sorted(os.listdir(root))}

    def message_files(self, user):
        """Message file names in new/ and cur/ for user (a count check
        tells whether anything was expunged)."""
        md = self.maildir(user)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            if os.path.isdir(d):
                out += [os.path.join(sub, f) for f in os.listdir(d)]
        return sorted(out)


# ---------------------------------------------------------------------------
# postern
# ---------------------------------------------------------------------------


# No tarpit and generous failed-login limits: the default for tests that are
# not about the policy.
RELAXED_POLICY = ('policy = { throttle = { delay_base = "0"; delay_max = "0"; '
                  'ip_user_limit = 1000; ip_limit = 1000000; }; };')


def _q(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cfg_value(v):
    """A Python value as a libconfig value: bool, int, string, or a list
    (array) of strings."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "%d" % v
    if isinstance(v, (list, tuple)):
        return "[ %s ]" % ", ".join(_q(x) for x in v)
    return _q(v)


class _Daemon:
    """What the daemons started here share: a process (self.proc) stopped by
    its PID, a temp dir (self.dir) removed at cleanup, and a log file
    (self.log_path) whose text outlives the dir."""

    def stop(self):
        stop_pid(self.proc)
        _live.discard(self)
        if self.dir:
            self.final_log = self.log()

    def cleanup(self):
        self.stop()
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def log(self):
        if self.dir is None:
            return self.final_log or ""
        return _read(self.log_path)

    def log_size(self):
        return len(self.log())

    def wait_log(self, pattern, timeout=5.0, since=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while True:
            m = rx.search(self.log()[since:])
            if m or time.monotonic() >= deadline:
                return m
            time.sleep(0.05)



class Postern(_Daemon):
    """postern in the foreground with a generated libconfig file; stderr goes
    to a log file.

    backends: list of dicts {name, host?, imap, pop3, tls?}, or Dovecot
    objects.  routes: list of dicts as in the config, e.g.
    {"user": "carol@example.org", "backend": "mx2"},
    {"domain": "example.net", "pool": ["mx1", "mx2"]},
    {"default": True, "backend": "mx1"}.

    Backend dicts may also carry "ca", "verify_name", "cert" and "key", and
    "check_interval", "check_timeout" (strings), "rise", "fall" (ints) and
    "forward" (a string or a list of strings).

    TLS (all optional):
    certificates: [{"cert", "key"}, ...], the tls.certificates set (default:
      certs' RSA and ECDSA pair).
    tls_options: more settings of the tls group, e.g. {"ticket_key_file":
      path, "session_timeout": "1h", "ciphers": "..."}.
    starttls: also listen with tls = "starttls" for IMAP and POP3, on
      imap_starttls_port / pop3_starttls_port; allow_plaintext_auth (None:
      not written) goes on those two.
    extra_listeners: more listeners, dicts {"protocol", "tls", "port"?,
      "certificates"?, "allow_plaintext_auth"?, "name"?, "proxy_protocol"?
      (bool), "trusted"? (list of CIDR strings), "auth_mechanisms"? (list of
      names)}; a missing port is chosen
      and stored in the dict.

    After changing attributes, write_config() rewrites the file and reload()
    sends SIGHUP and waits for the outcome."""

    def __init__(self, certs, backends, routes, imap_port=None, pop3_port=None,
                 workers=2, log_level="debug", extra="", parent_dir=None, binary=None,
                 timeouts=None, limits=None, tls_min_version="TLSv1.2",
                 certificates=None, tls_options=None, starttls=False,
                 allow_plaintext_auth=None, imap_starttls_port=None,
                 pop3_starttls_port=None, extra_listeners=None, policy=None):
        self.certs = certs
        # The policy group: by default failed logins are not slowed down nor
        # throttled, so tests that try wrong passwords on purpose stay fast;
        # the policy tests pass their own "policy = { ... };" text.
        self.policy = RELAXED_POLICY if policy is None else policy
        self.tls_min_version = tls_min_version
        self.certificates = certificates
        self.tls_options = dict(tls_options or {})
        self.backends = [self._backend_dict(b) for b in backends]
        self.routes = routes
        self.imap_port = imap_port or free_port()
        self.pop3_port = pop3_port or free_port()
        self.starttls = starttls
        self.allow_plaintext_auth = allow_plaintext_auth
        self.imap_starttls_port = (imap_starttls_port or free_port()) if starttls else None
        self.pop3_starttls_port = (pop3_starttls_port or free_port()) if starttls else None
        self.extra_listeners = [dict(x) for x in (extra_listeners or [])]
        for x in self.extra_listeners:
            x.setdefault("port", free_port())
        self.workers = workers
        self.log_level = log_level
        self.extra = extra
        self.parent_dir = parent_dir
        self.binary = binary or POSTERN_BIN
        # SIGTERM drains politely (timeouts.drain); stop() waits 10s for the
        # exit, so the drain here is shorter than that.
        self.timeouts = dict(handshake="10s", login="60s", idle="30m",
                             backend_connect="5s", backend_login="15s",
                             drain="5s", drain_quiet="500ms", drain_spread="1s")
        self.timeouts.update(timeouts or {})
        self.limits = dict(max_bad_commands=3, max_auth_failures=3)
        self.limits.update(limits or {})
        self.dir = None
        self.proc = None
        self.final_log = None  # the log text, kept after cleanup()

    @staticmethod
    def _backend_dict(b):
        if isinstance(b, Dovecot):
            return {"name": b.name, "host": "127.0.0.1", "imap": b.imap_port,
                    "pop3": b.pop3_port, "tls": "none"}
        d = {"host": "127.0.0.1", "tls": "none"}
        d.update(b)
        return d

    @property
    def conf_path(self):
        return os.path.join(self.dir, "postern.conf")

    @property
    def log_path(self):
        return os.path.join(self.dir, "postern.log")

    @staticmethod
    def _cert_list(certs):
        return "( %s )" % ",\n    ".join("{ cert = %s; key = %s; }" % (_q(x["cert"]), _q(x["key"]))
                                        for x in certs)

    def listeners(self):
        """Every listener as a dict {port, protocol, tls, ...}, in config order."""
        ls = [{"port": self.imap_port, "protocol": "imap", "tls": "implicit"},
              {"port": self.pop3_port, "protocol": "pop3", "tls": "implicit"}]
        if self.starttls:
            for port, proto in ((self.imap_starttls_port, "imap"),
                                (self.pop3_starttls_port, "pop3")):
                d = {"port": port, "protocol": proto, "tls": "starttls"}
                if self.allow_plaintext_auth is not None:
                    d["allow_plaintext_auth"] = self.allow_plaintext_auth
                ls.append(d)
        return ls + self.extra_listeners

    def config_text(self):
        c = self.certs
        certificates = self.certificates or [
            {"cert": c["rsa_cert"], "key": c["rsa_key"]},
            {"cert": c["ecdsa_cert"], "key": c["ecdsa_key"]}]
        out = ["# Generated by tests/integration/harness.py",
               "workers = %s;" % (_q(self.workers) if isinstance(self.workers, str)
                                  else int(self.workers)),
               "log_level = %s;" % _q(self.log_level),
               "tls = {",
               "  certificates = %s;" % self._cert_list(certificates),
               "  min_version = %s;" % _q(self.tls_min_version)]
        for k, v in self.tls_options.items():
            out.append("  %s = %s;" % (k, _q(v)))
        out += ["};", "listeners = ("]
        ll = []
        for x in self.listeners():
            parts = ['listen = "127.0.0.1:%d";' % x["port"],
                     "protocol = %s;" % _q(x["protocol"]), "tls = %s;" % _q(x["tls"])]
            if "name" in x:
                parts.append("name = %s;" % _q(x["name"]))
            if "allow_plaintext_auth" in x:
                parts.append("allow_plaintext_auth = %s;"
                             % ("true" if x["allow_plaintext_auth"] else "false"))
            if x.get("certificates"):
                parts.append("certificates = %s;" % self._cert_list(x["certificates"]))
            for k in ("proxy_protocol", "trusted", "auth_mechanisms"):
                if x.get(k) is not None:
                    parts.append("%s = %s;" % (k, _cfg_value(x[k])))
            ll.append("  { " + " ".join(parts) + " }")
        out.append(",\n".join(ll))
        out += [");", "backends = ("]
        bl = []
        for b in self.backends:
            parts = ["name = %s;" % _q(b["name"]), "host = %s;" % _q(b["host"]),
                     "imap = %d;" % b["imap"], "pop3 = %d;" % b["pop3"],
                     "tls = %s;" % _q(b["tls"])]
            for k in ("ca", "verify_name", "cert", "key"):
                if b.get(k) is not None:
                    parts.append("%s = %s;" % (k, _q(b[k])))
            for k in ("check_interval", "check_timeout", "rise", "fall", "forward"):
                if b.get(k) is not None:
                    parts.append("%s = %s;" % (k, _cfg_value(b[k])))
            bl.append("  { " + " ".join(parts) + " }")
        out.append(",\n".join(bl))
        out += [");", "routes = ("]
        rl = []
        for r in self.routes:
            parts = []
            if r.get("default"):
                parts.append("default = true;")
            if "user" in r:
                parts.append("user = %s;" % _q(r["user"]))
            if "domain" in r:
                parts.append("domain = %s;" % _q(r["domain"]))
            if "backend" in r:
                parts.append("backend = %s;" % _q(r["backend"]))
            if "pool" in r:
                parts.append("pool = [ %s ];" % ", ".join(_q(p) for p in r["pool"]))
            rl.append("  { " + " ".join(parts) + " }")
        out.append(",\n".join(rl))
        out.append(");")
        out.append("timeouts = { %s };" % " ".join("%s = %s;" % (k, _q(v))
                                                  for k, v in self.timeouts.items()))
        out.append("limits = { %s };" % " ".join("%s = %d;" % (k, v)
                                                for k, v in self.limits.items()))
        if self.policy:
            out.append(self.policy)
        if self.extra:
            out.append(self.extra)
        return "\n".join(out) + "\n"

    def start(self, timeout=10.0):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("postern binary not found: %s (run `make`)" % self.binary)
        self.dir = tempfile.mkdtemp(prefix="pit-postern-", dir=self.parent_dir)
        self.write_config()
        logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen([self.binary, "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         cwd=self.dir)
        finally:
            logf.close()
        _live.add(self)
        alive = lambda: self.proc.poll() is None  # noqa: E731
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        for port in [x["port"] for x in self.listeners()]:
            if not wait_port(port, max(0.1, deadline - time.monotonic()), alive=alive):
                why = "exited with %s" % self.proc.returncode if not alive() else "timed out"
                text = self.log()
                self.cleanup()
                raise RuntimeError("postern did not listen on %d (%s)\n--- config ---\n%s"
                                   "--- log ---\n%s" % (port, why, self.config_text(),
                                                        _tail(text)))
        # The listeners are bound before the admin socket, the health checker
        # and the metrics endpoint start; postern.start is logged once all of
        # them are up (a test that logs below info only has the ports).
        if self.log_level in ("debug", "info"):
            left = max(0.1, deadline - time.monotonic())
            if not self.wait_log(r"event=postern\.start\b", timeout=left / TIMEOUT_SCALE):
                text = self.log()
                self.cleanup()
                raise RuntimeError("postern listened but did not log postern.start\n"
                                   "--- log ---\n%s" % _tail(text))
        return self

    def write_config(self):
        """(Re)write the config file from the current attributes."""
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config_text())
        os.replace(tmp, self.conf_path)

    def reload(self, timeout=10.0):
        """SIGHUP to this postern's PID; waits for its config.reload result
        line.  Returns ("ok" | "failed", the log text since the signal);
        (None, text) on a timeout."""
        if not self.running():
            raise RuntimeError("postern is not running")
        since = self.log_size()
        os.kill(self.proc.pid, signal.SIGHUP)
        m = self.wait_log(r"event=config\.reload\b[^\n]*\bresult=(ok|failed)\b[^\n]*\n",
                          timeout=timeout, since=since)
        if m and m.group(1) == "failed":
            # the failure comes as several lines; let the last one arrive
            self.wait_log(r'event=config\.reload result=failed note=', timeout=2, since=since)
        return (m.group(1) if m else None), self.log()[since:]

    # stop, cleanup, running, log, wait_log: _Daemon

def run_postern(*args, timeout=20):
    """Run the postern binary with args (e.g. "-t", "-c", path); returns the
    CompletedProcess with text stdout/stderr."""
    return subprocess.run([POSTERN_BIN, *args], capture_output=True,
                          timeout=timeout * TIMEOUT_SCALE,
                          stdin=subprocess.DEVNULL, text=True, errors="replace")


# ---------------------------------------------------------------------------
# Raw protocol clients over TLS (bounded in time)
# ---------------------------------------------------------------------------


class ClosedError(Exception):
    """The peer closed the connection before the expected data arrived."""


class RawTLS:
    """A line-oriented TLS client; every read has a deadline.

    plaintext=True connects without TLS (a STARTTLS listener); starttls()
    later runs the TLS handshake on the same socket.

    source: the local address to connect from (e.g. "127.0.0.3"; any
    127.0.0.0/8 address works on loopback).  preamble: bytes sent on the TCP
    connection before anything else (e.g. a PROXY protocol header), before
    the TLS handshake."""

    def __init__(self, port, cafile, host="127.0.0.1", timeout=IO_TIMEOUT, context=None,
                 server_hostname=None, plaintext=False, source=None, preamble=b""):
        self.timeout = timeout
        self.cafile = cafile
        self.context = context
        self.server_hostname = server_hostname or host
        raw = socket.create_connection((host, port), timeout=timeout,
                                       source_address=(source, 0) if source else None)
        if preamble:
            try:
                raw.sendall(preamble)
            except Exception:
                raw.close()
                raise
        if plaintext:
            self.sock = raw
        else:
            ctx = context or client_context(cafile)
            try:
                self.sock = ctx.wrap_socket(raw, server_hostname=self.server_hostname)
            except Exception:
                raw.close()
                raise
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False
        self.transcript = []  # (direction, bytes), for failure messages

    def starttls(self, context=None, server_hostname=None):
        """TLS handshake on the existing (plaintext) socket.  Returns the
        bytes that were already received after the last line read (a server
        must send nothing between its STARTTLS answer and the handshake);
        they are dropped."""
        leftover, self.buf = self.buf, b""
        ctx = context or self.context or client_context(self.cafile)
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname=server_hostname or self.server_hostname)
        self.sock.settimeout(self.timeout)
        self.transcript.append(("-", b"(TLS handshake done: %s)" % self.sock.version().encode()))
        return leftover

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.transcript.append(("C", data))
        self.sock.settimeout(self.timeout)  # a read may have left a short one
        self.sock.sendall(data)

    def _fill(self, deadline):
        if self.eof:
            raise ClosedError("connection closed; transcript:\n" + self.dump())
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out; transcript:\n" + self.dump())
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise socket.timeout("timed out; transcript:\n" + self.dump()) from None
        except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            raise ClosedError("connection closed; transcript:\n" + self.dump())
        self.transcript.append(("S", chunk))
        self.buf += chunk

    def readline(self, timeout=None):
        """One line including CRLF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_until_closed(self, timeout=None):
        """Everything until the peer closes; raises on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self._fill(deadline)
        except ClosedError:
            pass
        data, self.buf = self.buf, b""
        return data

    def dump(self):
        out = []
        for d, data in self.transcript[-40:]:
            out.append("%s: %r" % (d, data[:600]))
        return "\n".join(out)


class RawImap(RawTLS):
    """IMAP over implicit TLS (or plaintext=True: a STARTTLS port), spoken
    by hand."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.greeting = self.readline()

    def read_response(self, tag, timeout=None):
        """Lines until the tagged response for tag (str).  Literals in
        untagged data ({n}) are read whole and kept inside the line.
        Returns (tagged_line, [all lines including the tagged one])."""
        t = tag.encode() + b" "
        lines = []
        while True:
            line = self.readline(timeout)
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            while m:
                lit = self.read_exact(int(m.group(1)), timeout)
                rest = self.readline(timeout)
                line = line + lit + rest
                m = re.search(rb"\{(\d+)\}\r\n$", rest)
            lines.append(line)
            if line.startswith(t):
                return line, lines

    def command(self, tag, text, timeout=None):
        """Send 'tag text\\r\\n' and read to the tagged response."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.read_response(tag, timeout)

    def expect_continuation(self, timeout=None):
        line = self.readline(timeout)
        if not line.startswith(b"+"):
            raise AssertionError("expected a continuation request, got %r\n%s"
                                 % (line, self.dump()))
        return line


class RawPop3(RawTLS):
    """POP3 over implicit TLS (or plaintext=True: a STLS port), spoken by
    hand."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.greeting = self.readline()

    def command(self, text, timeout=None):
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(text + b"\r\n")
        return self.readline(timeout)

    def read_multiline(self, timeout=None):
        """Lines of a multi-line answer up to '.', dot-unstuffed, without CRLF."""
        out = []
        while True:
            line = self.readline(timeout)
            if line == b".\r\n":
                return out
            if line.startswith(b".."):
                line = line[1:]
            out.append(line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n"))


def sasl_plain(user, password, authzid=""):
    """Base64 of a SASL PLAIN message (RFC 4616): authzid NUL authcid NUL passwd."""
    enc = lambda s: s.encode("utf-8") if isinstance(s, str) else s  # noqa: E731
    return base64.b64encode(enc(authzid) + b"\0" + enc(user) + b"\0" + enc(password))



# ---------------------------------------------------------------------------
# openssl s_client and sslscan, bounded in time
# ---------------------------------------------------------------------------


def s_client(port, args=(), wait_for=None, send=b"", timeout=15.0, host="127.0.0.1"):
    """Run `openssl s_client -connect host:port args...`.  Once its output
    matches the regex wait_for (bytes; None: at once) `send` goes to its stdin
    and stdin is closed, which makes s_client close the connection and exit.
    Returns (exit status or None if it had to be stopped, output text with
    stderr).  The process is stopped by its PID whatever happens."""
    import threading
    proc = subprocess.Popen(["openssl", "s_client", "-connect", "%s:%d" % (host, port),
                             *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    chunks = []
    seen = threading.Event()
    rx = re.compile(wait_for) if wait_for is not None else None

    def reader():
        while True:
            b = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else \
                proc.stdout.read(1)
            if not b:
                seen.set()
                return
            chunks.append(b)
            if rx is None or rx.search(b"".join(chunks)):
                seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    rc = None
    try:
        if rx is not None:
            seen.wait(timeout)
        try:
            if send:
                proc.stdin.write(send)
                proc.stdin.flush()
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
    finally:
        stop_pid(proc, term_timeout=5)
        t.join(5)
        try:
            proc.stdout.close()
        except OSError:
            pass
    return rc, b"".join(chunks).decode("utf-8", errors="replace")


def s_client_cert(output):
    """(subject line, DER of the server certificate) from s_client output;
    ValueError when it shows none."""
    m = re.search(r"^subject=(.*)$", output, re.M)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", output, re.S)
    if not pem:
        raise ValueError("s_client showed no server certificate")
    return (m.group(1).strip() if m else None), ssl.PEM_cert_to_DER_cert(pem.group(0))


def sslscan(target, args=(), timeout=180):
    """Run `sslscan --no-colour args... target`; returns (status, text)."""
    r = subprocess.run(["sslscan", "--no-colour", *args, target], capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------
# HAProxy: a TCP load balancer in front of postern (PROXY protocol)
# ---------------------------------------------------------------------------

HAPROXY_BIN = os.environ.get("HAPROXY_BIN", "/usr/sbin/haproxy")

HAPROXY_CONF = """\
# Generated by tests/integration/harness.py
global
    maxconn 100
    log stderr format raw local0 info

defaults
    mode tcp
    log global
    option tcplog
    timeout connect {timeout_connect}
    timeout client {timeout_client}
    timeout server {timeout_server}

frontend f
    bind {listen}:{port}
    default_backend b

backend b
    server p {target_host}:{target_port}{send_proxy}
"""


class HAProxy(_Daemon):
    """A real HAProxy in the foreground (-db) in mode tcp: listens on
    listen:port and passes every connection (TLS untouched) to
    target_host:target_port, first sending a PROXY header: send_proxy "v2"
    (send-proxy-v2), "v1" (send-proxy) or None (no header).  Its own log
    (tcplog lines) goes to a file.  Started and stopped by its PID only."""

    def __init__(self, target_port, send_proxy="v2", port=None, listen="127.0.0.1",
                 target_host="127.0.0.1", parent_dir=None, binary=None,
                 timeout_connect="5s", timeout_client="30s", timeout_server="30s"):
        self.target_port = target_port
        self.target_host = target_host
        self.send_proxy = send_proxy
        self.port = port or free_port()
        self.listen = listen
        self.parent_dir = parent_dir
        self.binary = binary or HAPROXY_BIN
        self.timeouts = (timeout_connect, timeout_client, timeout_server)
        self.dir = None
        self.proc = None
        self.final_log = None

    @property
    def conf_path(self):
        return os.path.join(self.dir, "haproxy.cfg")

    @property
    def log_path(self):
        return os.path.join(self.dir, "haproxy.log")

    def config_text(self):
        sp = {"v2": " send-proxy-v2", "v1": " send-proxy", None: ""}[self.send_proxy]
        return HAPROXY_CONF.format(
            listen=self.listen, port=self.port, target_host=self.target_host,
            target_port=self.target_port, send_proxy=sp,
            timeout_connect=self.timeouts[0], timeout_client=self.timeouts[1],
            timeout_server=self.timeouts[2])

    def start(self, timeout=10.0):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("haproxy not found: %s (apt-get install haproxy)" % self.binary)
        self.dir = tempfile.mkdtemp(prefix="pit-haproxy-", dir=self.parent_dir)
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen([self.binary, "-f", self.conf_path, "-db"],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         cwd=self.dir)
        finally:
            logf.close()
        _live.add(self)
        alive = lambda: self.proc.poll() is None  # noqa: E731
        if not wait_port(self.port, timeout, host=self.listen, alive=alive):
            why = "exited with %s" % self.proc.returncode if not alive() else "timed out"
            text = self.log()
            self.cleanup()
            raise RuntimeError("haproxy did not listen on %d (%s)\n--- config ---\n%s"
                               "--- log ---\n%s" % (self.port, why, self.config_text(),
                                                    _tail(text)))
        return self


class OpensslServer:
    """`openssl s_server` on 127.0.0.1 (a TLS server with any settings, to
    check what the tests' own checks catch); stopped by its PID."""

    def __init__(self, args, port=None):
        self.args = list(args)
        self.port = port or free_port()
        self.proc = None
        self.output = None

    def start(self, timeout=10.0):
        self.output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["openssl", "s_server", "-accept",
                                      "127.0.0.1:%d" % self.port, "-quiet", *self.args],
                                     stdin=subprocess.DEVNULL, stdout=self.output,
                                     stderr=subprocess.STDOUT)
        _live.add(self)
        if not wait_port(self.port, timeout, alive=lambda: self.proc.poll() is None):
            self.stop()
            raise RuntimeError("openssl s_server did not listen on %d" % self.port)
        return self

    def stop(self):
        stop_pid(self.proc)
        _live.discard(self)
        if self.output is not None:
            self.output.close()
            self.output = None
