"""The postern process: its libconfig file written from Python values
(Postern.config_text), started in the foreground, reloaded with SIGHUP, and
one-shot runs of the binary (run_postern: -t, -V, admin commands)."""

import os
import signal
import subprocess
import tempfile
import time

from .dovecot import Dovecot
from .procs import REPO, TIMEOUT_SCALE, _Daemon, _live, _tail, free_port, wait_port

POSTERN_BIN = os.environ.get("POSTERN_BIN", os.path.join(REPO, "postern"))


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


def _group_items(d):
    """A dict as the settings of a libconfig group: `k = v;` each, a dict
    value as a nested group."""
    return ["%s = { %s };" % (k, " ".join(_group_items(v))) if isinstance(v, dict)
            else "%s = %s;" % (k, _cfg_value(v)) for k, v in d.items()]


def _lookup_text(lookup):
    """The top-level `lookup` section: lookup is its settings as a dict
    (e.g. {"url": svc.url(), "protocol": "nginx", "timeout": "2s",
    "headers": ["X-Auth-Key: k"], "backend_defaults": {"tls": "none"}}), or
    the section's text as is."""
    if isinstance(lookup, str):
        return lookup
    return "lookup = {\n%s\n};" % "\n".join("  " + x for x in _group_items(lookup))


class Postern(_Daemon):
    """postern in the foreground with a generated libconfig file; stderr goes
    to a log file.

    backends: list of dicts {name, host?, imap, pop3, sieve?, tls?}, or
    Dovecot objects.  A Dovecot's ManageSieve port is written as the
    backend's `sieve` only when this postern has a sieve listener (the
    configs of the other tests stay as they were).  routes: list of dicts as in the config, e.g.
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
    compress: "pass" or "strip", written on the IMAP listeners.
    starttls: also listen with tls = "starttls" for IMAP and POP3, on
      imap_starttls_port / pop3_starttls_port; allow_plaintext_auth (None:
      not written) goes on those two.
    extra_listeners: more listeners, dicts {"protocol", "tls", "port"?,
      "certificates"?, "allow_plaintext_auth"?, "name"?, "proxy_protocol"?
      (bool), "trusted"? (list of CIDR strings), "auth_mechanisms"? (list of
      names), "compress"? ("pass" or "strip"), "lookup"? (False, or a
      service URL of its own)}; a missing port is chosen and stored in the
      dict; a missing tls is "starttls" for protocol "sieve" (postern's
      default there), else "implicit".
    sieve: also a ManageSieve listener (STARTTLS) on sieve_port.
    lookup: the `lookup = { ... };` section, a dict (string, int and bool
      values, lists of strings, and dicts for groups such as
      backend_defaults) or the raw text of the whole section; None: none.

    After changing attributes, write_config() rewrites the file and reload()
    sends SIGHUP and waits for the outcome."""

    def __init__(self, certs, backends, routes, imap_port=None, pop3_port=None,
                 workers=2, log_level="debug", extra="", parent_dir=None, binary=None,
                 timeouts=None, limits=None, tls_min_version="TLSv1.2",
                 certificates=None, tls_options=None, starttls=False,
                 allow_plaintext_auth=None, imap_starttls_port=None,
                 pop3_starttls_port=None, extra_listeners=None, policy=None, compress=None,
                 lookup=None, sieve=False, sieve_port=None):
        self.certs = certs
        # The `lookup` section (the HTTP user lookup service): a dict of its
        # settings (see _lookup_text) or the section's raw text; None: none.
        self.lookup = lookup
        # The policy group: by default failed logins are not slowed down nor
        # throttled, so tests that try wrong passwords on purpose stay fast;
        # the policy tests pass their own "policy = { ... };" text.
        self.policy = RELAXED_POLICY if policy is None else policy
        self.tls_min_version = tls_min_version
        self.certificates = certificates
        self.tls_options = dict(tls_options or {})
        self.sieve = sieve
        self.sieve_port = (sieve_port or free_port()) if sieve else None
        self.routes = routes
        self.imap_port = imap_port or free_port()
        self.pop3_port = pop3_port or free_port()
        self.starttls = starttls
        self.allow_plaintext_auth = allow_plaintext_auth
        self.imap_starttls_port = (imap_starttls_port or free_port()) if starttls else None
        self.pop3_starttls_port = (pop3_starttls_port or free_port()) if starttls else None
        self.extra_listeners = [dict(x) for x in (extra_listeners or [])]
        self.compress = compress  # "pass" | "strip" on the IMAP listeners, or not written
        for x in self.extra_listeners:
            x.setdefault("port", free_port())
            x.setdefault("tls", "starttls" if x.get("protocol") == "sieve" else "implicit")
        with_sieve = sieve or any(x.get("protocol") == "sieve" for x in self.extra_listeners)
        self.backends = [self._backend_dict(b, with_sieve) for b in backends]
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
    def _backend_dict(b, with_sieve=False):
        if isinstance(b, Dovecot):
            d = {"name": b.name, "host": "127.0.0.1", "imap": b.imap_port,
                 "pop3": b.pop3_port, "tls": "none"}
            if with_sieve:
                d["sieve"] = b.sieve_port
            return d
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
        if self.sieve:
            ls.append({"port": self.sieve_port, "protocol": "sieve", "tls": "starttls"})
        if self.compress is not None:
            for d in ls:
                if d["protocol"] == "imap":
                    d["compress"] = self.compress
        return ls + self.extra_listeners

    def config_text(self):
        c = self.certs
        certificates = self.certificates or [
            {"cert": c["rsa_cert"], "key": c["rsa_key"]},
            {"cert": c["ecdsa_cert"], "key": c["ecdsa_key"]}]
        out = ["# Generated by tests/integration/harness/postern.py",
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
            for k in ("proxy_protocol", "trusted", "auth_mechanisms", "compress", "lookup"):
                if x.get(k) is not None:
                    parts.append("%s = %s;" % (k, _cfg_value(x[k])))
            ll.append("  { " + " ".join(parts) + " }")
        out.append(",\n".join(ll))
        out += [");", "backends = ("]
        bl = []
        for b in self.backends:
            parts = ["name = %s;" % _q(b["name"]), "host = %s;" % _q(b["host"])]
            parts += ["%s = %d;" % (k, b[k]) for k in ("imap", "pop3", "sieve") if b.get(k)]
            parts.append("tls = %s;" % _q(b["tls"]))
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
        if self.lookup is not None:
            out.append(_lookup_text(self.lookup))
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
