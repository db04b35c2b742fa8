"""redis-server for the fleet tests: the test's own, on a unix socket in a
temporary directory (no TCP port), no configuration file (nothing from the
system's redis.conf), a password (state_password_file), stopped by its PID.

And for the Sentinel tests a TCP topology on loopback: RedisNode (one
redis-server on a free port), Sentinel (`redis-server FILE --sentinel`) and
RedisHA (a master, two replicas, three Sentinels), every wait bounded."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from .procs import TIMEOUT_SCALE, _live, _read, _tail, free_port, stop_pid

REDIS_BIN = os.environ.get("REDIS_SERVER", "redis-server")


class RedisServer:
    """redis-server on a unix socket, with a password; stop() by PID."""

    def __init__(self, parent_dir, debug_command=False):
        # debug_command: allow DEBUG (Redis 7 refuses it unless told), for
        # sleep_in_background()
        self.debug_command = debug_command
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=parent_dir)
        self.sock = os.path.join(self.dir, "redis.sock")
        self.password = "pit-redis-secret-7"
        self.password_file = os.path.join(self.dir, "password")
        with open(self.password_file, "w") as f:
            f.write(self.password + "\n")
        self.proc = None

    def start(self):
        if shutil.which(REDIS_BIN) is None:
            raise RuntimeError("redis-server is not installed (make deps installs it)")
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--requirepass", self.password, "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log")]
            + (["--enable-debug-command", "local"] if self.debug_command else []),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10 * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            if self.cli("PING").strip() == "PONG":
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-s", self.sock, "--no-auth-warning",
                            "-a", self.password, *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def sleep_in_background(self, secs):
        """DEBUG SLEEP secs from a connection of its own (Redis answers
        nobody meanwhile); the redis-cli process, for wait_sleeper()."""
        return subprocess.Popen(["redis-cli", "-s", self.sock, "--no-auth-warning",
                                 "-a", self.password, "DEBUG", "SLEEP", str(secs)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    @staticmethod
    def wait_sleeper(proc, timeout):
        """Wait (bounded) for a sleep_in_background() redis-cli; killed by its
        PID if it outlives timeout."""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_pid(proc)

    def pause(self):
        """SIGSTOP the redis-server this object started: it answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        """SIGCONT it again (harmless when it was not stopped)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        self.resume()  # a stopped process would not see SIGTERM until then
        stop_pid(self.proc)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- TCP topology: a master, replicas and Sentinels on loopback --------------
# One Sentinel is `redis-server FILE --sentinel` (the same binary; Sentinel
# rewrites FILE, so it is written fresh for each start).  Every node has a
# password (requirepass, and masterauth for its replication link); the
# Sentinels have their own (requirepass and sentinel-pass, for the fleet's
# sentinel_password_file).


def _cli(port, password, *args, timeout=5):
    """redis-cli -h 127.0.0.1 -p port -a password args...; the reply text
    ("" when the command could not run in time)."""
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--no-auth-warning"]
    if password:
        cmd += ["-a", password]
    try:
        r = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                           timeout=timeout * TIMEOUT_SCALE, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ""
    return r.stdout


def _pairs(text):
    """A flat field/value reply (redis-cli prints one per line) as a dict."""
    lines = text.splitlines()
    return dict(zip(lines[0::2], lines[1::2]))


def _info(text):
    """INFO's text as a dict."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and not line.startswith("#"):
            out[k.strip()] = v.strip()
    return out


class RedisNode:
    """redis-server on 127.0.0.1:port (a free port), with requirepass and
    masterauth, optionally an ACL user (acl_user=(name, password)) and
    replicaof (a port on 127.0.0.1).  A configuration file of its own
    (Sentinel's CONFIG REWRITE needs one), no persistence.  stop()/kill()
    by PID; start() again on the same port and with the same settings."""

    def __init__(self, parent_dir, password="pit-ha-node-secret", replicaof=None,
                 acl_user=None, default_user_off=False, port=None, name="node"):
        self.dir = tempfile.mkdtemp(prefix="redis-%s-" % name, dir=parent_dir)
        self.port = port or free_port()
        self.password = password
        self.replicaof = replicaof
        self.acl_user = acl_user
        self.default_user_off = default_user_off
        self.name = name
        self.password_file = os.path.join(self.dir, "password")
        with open(self.password_file, "w") as f:
            f.write(password + "\n")
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _write_conf(self):
        lines = ["port %d" % self.port, "bind 127.0.0.1", "protected-mode no",
                 "dir %s" % self.dir, 'save ""', "appendonly no", "daemonize no",
                 "logfile %s" % os.path.join(self.dir, "redis.log"),
                 "requirepass %s" % self.password, "masterauth %s" % self.password,
                 # a replica answers reads while its link is down; postern
                 # must not take it for the master anyway
                 "replica-read-only yes", "repl-diskless-sync yes",
                 "repl-diskless-sync-delay 0"]
        if self.replicaof is not None:
            lines.append("replicaof 127.0.0.1 %d" % self.replicaof)
        if self.acl_user is not None:
            name, pw = self.acl_user
            lines.append("user %s on >%s ~* &* +@all" % (name, pw))
        if self.default_user_off:
            lines.append("user default off")
        with open(os.path.join(self.dir, "redis.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, fresh_conf=True):
        """Start (again).  fresh_conf=False keeps the file as a Sentinel may
        have rewritten it."""
        if shutil.which(REDIS_BIN) is None:
            raise RuntimeError("redis-server is not installed (make deps installs it)")
        if fresh_conf or not os.path.exists(os.path.join(self.dir, "redis.conf")):
            self._write_conf()
        self.proc = subprocess.Popen([REDIS_BIN, os.path.join(self.dir, "redis.conf")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _live.add(self)
        deadline = time.monotonic() + 10 * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.cli("PING").strip() == "PONG":
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server on port %d did not start:\n%s"
                           % (self.port, _tail(_read(os.path.join(self.dir, "redis.log")))))

    def cli(self, *args):
        """A command as the default user (or the ACL user when the default
        one is off)."""
        if self.default_user_off:
            name, pw = self.acl_user
            return _cli(self.port, None, "--user", name, "--pass", pw, *args)
        return _cli(self.port, self.password, *args)

    def info(self, section="replication"):
        return _info(self.cli("INFO", section))

    def role(self):
        return self.info().get("role")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL by PID: no goodbye to anyone."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        _live.discard(self)

    def stop(self):
        stop_pid(self.proc)
        _live.discard(self)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        return _read(os.path.join(self.dir, "redis.log"))


class Sentinel:
    """One Sentinel: `redis-server FILE --sentinel` on 127.0.0.1:port, its
    own requirepass (and sentinel-pass, to talk to its peers), monitoring
    master_name at 127.0.0.1:master_port with quorum 2."""

    def __init__(self, parent_dir, master_name, master_port, node_password, password,
                 down_after_ms, failover_timeout_ms, port=None, index=0):
        self.dir = tempfile.mkdtemp(prefix="sentinel%d-" % index, dir=parent_dir)
        self.port = port or free_port()
        self.master_name = master_name
        self.master_port = master_port
        self.node_password = node_password
        self.password = password
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def conf_path(self):
        return os.path.join(self.dir, "sentinel.conf")

    def start(self, master_port=None):
        """Start with a fresh file monitoring master_port (the master now:
        a restarted Sentinel learns the rest from the nodes and its peers)."""
        if master_port is not None:
            self.master_port = master_port
        n = self.master_name
        lines = ["port %d" % self.port, "bind 127.0.0.1", "protected-mode no",
                 "daemonize no", "dir %s" % self.dir,
                 "logfile %s" % os.path.join(self.dir, "sentinel.log"),
                 "sentinel resolve-hostnames no",
                 "sentinel monitor %s 127.0.0.1 %d 2" % (n, self.master_port),
                 "sentinel down-after-milliseconds %s %d" % (n, self.down_after_ms),
                 "sentinel failover-timeout %s %d" % (n, self.failover_timeout_ms),
                 "sentinel parallel-syncs %s 2" % n,
                 "sentinel auth-pass %s %s" % (n, self.node_password),
                 "requirepass %s" % self.password,
                 "sentinel sentinel-pass %s" % self.password]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([REDIS_BIN, self.conf_path, "--sentinel"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _live.add(self)
        deadline = time.monotonic() + 10 * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.cli("PING").strip() == "PONG":
                return self
            time.sleep(0.05)
        raise RuntimeError("sentinel on port %d did not start:\n%s"
                           % (self.port, _tail(self.log())))

    def cli(self, *args):
        return _cli(self.port, self.password, *args)

    def master_addr(self):
        """(host, port) this Sentinel names for the master, or None."""
        out = self.cli("SENTINEL", "get-master-addr-by-name", self.master_name).split()
        if len(out) == 2 and out[1].isdigit():
            return out[0], int(out[1])
        return None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        stop_pid(self.proc)
        _live.discard(self)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        return _read(os.path.join(self.dir, "sentinel.log"))


class RedisHA:
    """One master, `replicas` replicas and three Sentinels (quorum 2) on
    loopback, all stopped by PID at cleanup().  The nodes share one password
    (password_file for state_password_file), the Sentinels another
    (sentinel_password_file); the nodes also have an ACL user (acl_user,
    its password in acl_password_file, for state_user).  master() asks a Sentinel; failover() is
    SENTINEL FAILOVER; kill_master() SIGKILLs the master's PID; restart(node)
    starts a killed node again as it was first configured (a master: the
    Sentinels make it a replica); wait_healthy() waits until every running
    Sentinel agrees on the master and sees every other node as a working
    replica.

    Time: a failover takes down-after plus about a second; a killed master
    restarted is made a replica by the Sentinels only after about 8 s (they
    wait that long before reconfiguring an instance that claims to be the
    master)."""

    def __init__(self, parent_dir, name="pitmaster", replicas=2, sentinels=3,
                 down_after_ms=1000, failover_timeout_ms=10000):
        self.dir = tempfile.mkdtemp(prefix="redis-ha-", dir=parent_dir)
        self.name = name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.node_password = "pit-ha-node-secret"
        self.sentinel_password = "pit-ha-sentinel-secret"
        self.password_file = os.path.join(self.dir, "node-password")
        self.sentinel_password_file = os.path.join(self.dir, "sentinel-password")
        with open(self.password_file, "w") as f:
            f.write(self.node_password + "\n")
        with open(self.sentinel_password_file, "w") as f:
            f.write(self.sentinel_password + "\n")
        # every node also has the ACL user acl_user (state_user), whose
        # password is in acl_password_file
        self.acl_user = ("postern", "pit-ha-acl-secret")
        self.acl_password_file = os.path.join(self.dir, "acl-password")
        with open(self.acl_password_file, "w") as f:
            f.write(self.acl_user[1] + "\n")
        self.nodes = [RedisNode(self.dir, self.node_password, name="m",
                                acl_user=self.acl_user)]
        for i in range(replicas):
            self.nodes.append(RedisNode(self.dir, self.node_password,
                                        replicaof=self.nodes[0].port, name="r%d" % i,
                                        acl_user=self.acl_user))
        self.sentinels = [Sentinel(self.dir, name, self.nodes[0].port, self.node_password,
                                   self.sentinel_password, down_after_ms,
                                   failover_timeout_ms, index=i) for i in range(sentinels)]

    def start(self, timeout=30.0):
        try:
            for n in self.nodes:
                n.start()
            for s in self.sentinels:
                s.start()
            self.wait_healthy(timeout)
        except Exception:
            self.cleanup()
            raise
        return self

    def url(self, sentinels=None, db=0):
        """The redis-sentinel:// URL of these Sentinels (or of the given
        host:port strings), in order."""
        addrs = sentinels or [s.addr for s in self.sentinels]
        return "redis-sentinel://%s/%s/%d" % (",".join(addrs), self.name, db)

    def node_at(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        return None

    def master(self):
        """The node a running Sentinel names as the master (the first that
        answers), or None."""
        for s in self.sentinels:
            if s.running():
                a = s.master_addr()
                if a is not None:
                    return self.node_at(a[1])
        return None

    def master_addr(self):
        m = self.master()
        return m.addr if m else None

    def replicas(self):
        m = self.master()
        return [n for n in self.nodes if n is not m]

    def cli(self, node, *args):
        return node.cli(*args)

    def _sentinel_ok(self, s, master):
        if s.master_addr() != ("127.0.0.1", master.port):
            return False
        m = _pairs(s.cli("SENTINEL", "master", self.name))
        if m.get("flags") != "master":
            return False
        reps = s.cli("SENTINEL", "replicas", self.name)
        # one flat list per replica, each starting with "name"
        seen = {}
        cur = None
        for k, v in zip(reps.splitlines()[0::2], reps.splitlines()[1::2]):
            if k == "name":
                cur = v
                seen[cur] = {}
            elif cur is not None:
                seen[cur][k] = v
        want = {n.addr for n in self.nodes if n is not master}
        # (master-link-status is refreshed every 10 s only: the master's
        # INFO says whether the links are up)
        good = {a for a, f in seen.items() if f.get("flags") == "slave"}
        others = sum(1 for x in self.sentinels if x.running()) - 1
        return want <= good and int(m.get("num-other-sentinels", "0")) >= others

    def wait_healthy(self, timeout=30.0):
        """Every running node up; the master has every other node as an
        online replica; every running Sentinel names it, sees the replicas
        with their links up and knows the other running Sentinels.  Raises
        after timeout (scaled)."""
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        last = ""
        while time.monotonic() < deadline:
            master = self.master()
            if master is not None and master.running():
                info = master.info()
                online = sum(1 for k, v in info.items()
                             if k.startswith("slave") and k[5:].isdigit() and "state=online" in v)
                if info.get("role") == "master" and online == len(self.nodes) - 1 and all(
                        self._sentinel_ok(s, master) for s in self.sentinels if s.running()):
                    return master
                last = "master %s: %s" % (master.addr, info)
            time.sleep(0.1)
        raise RuntimeError("the Redis topology did not settle in %ss: %s\n%s"
                           % (timeout, last, "\n".join(_tail(s.log(), 15)
                                                       for s in self.sentinels)))

    def failover(self):
        """SENTINEL FAILOVER through the first running Sentinel; its answer."""
        s = next(s for s in self.sentinels if s.running())
        return s.cli("SENTINEL", "failover", self.name).strip()

    def kill_master(self):
        """SIGKILL the master's PID; the node killed."""
        m = self.master()
        m.kill()
        return m

    def restart(self, node):
        """Start a stopped node again as a master (the old master comes back
        believing it still is one, with no data; the Sentinels reconfigure it
        as a replica)."""
        node.replicaof = None  # it was the master when it died
        node.start(fresh_conf=True)
        return node

    def wait_master_change(self, old, timeout):
        """Poll the Sentinels until they name a master other than old (a
        node); (node, seconds waited) or (None, timeout)."""
        t0 = time.monotonic()
        deadline = t0 + timeout * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            m = self.master()
            if m is not None and m is not old:
                return m, time.monotonic() - t0
            time.sleep(0.05)
        return None, time.monotonic() - t0

    def stop_sentinel(self, i):
        self.sentinels[i].stop()

    def master_by_role(self):
        """The running node whose INFO says role:master (the most recent
        one to have become master wins when a restarted old master also
        says so: it has no replicas), or None."""
        masters = [n for n in self.nodes if n.running() and n.role() == "master"]
        masters.sort(key=lambda n: -int(n.info().get("connected_slaves", "0")))
        return masters[0] if masters else None

    def start_sentinel(self, i):
        """Start Sentinel i again, monitoring the master as the other
        Sentinels name it, or as the nodes' ROLE says when none runs."""
        m = self.master() or self.master_by_role()
        self.sentinels[i].start(master_port=m.port if m else None)

    def cleanup(self):
        for s in self.sentinels:
            s.cleanup()
        for n in self.nodes:
            n.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
