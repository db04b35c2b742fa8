"""The container image, built for real and run in front of real Dovecot
backends (tests/integration/harness/).

With a Docker engine: `docker build`, then `docker run --network host` with
the config directory and the state directory mounted.  Without one (this
project's CI machines): podman builds the image (tests/docker/build.sh,
chroot isolation, a private store), and since `podman run` is refused there
(setrlimit), the image's root filesystem is exported (`podman create` +
`podman export`, file capabilities kept) and its ENTRYPOINT + CMD run with
`chroot --userspec` as the image's USER, on loopback, with the image's own
paths: the config directory is the rootfs's /etc/postern, the state
/var/lib/postern.

Run by `make docker-test` (part of `make test`); `ENGINE=docker|podman`
forces an engine.  A summary of the image (inspect, size, timings) goes to
build/docker/summary.txt.
"""

import imaplib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402
from harness import Dovecot  # noqa: E402

TAG = os.environ.get("POSTERN_IMAGE", "postern:latest")
WORK = os.path.join(REPO, "build", "docker")
SUMMARY = os.path.join(WORK, "summary.txt")
CONF = "/etc/postern/postern.conf"
IMAGE_UID = 10993
# What the README recommends for `docker run --stop-timeout` and compose's
# stop_grace_period; the drain deadline in etc/docker/postern.conf is 7s.
STOP_TIMEOUT = 15
DRAIN_DEADLINE = 7.0

ALICE, ALICE_PW = "alice@example.org", "alice-image-pw"
BOB, BOB_PW = "bob@example.net", "bob-image-pw"

def _engine():
    e = os.environ.get("ENGINE")
    if e:
        return e
    if shutil.which("docker"):
        r = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
        if r.returncode == 0:
            return "docker"
    return "podman"


ENGINE = _engine()


def _podman_opts():
    """The private store's options, as tests/docker/engine.sh picks them."""
    r = subprocess.run(["sh", "-c", ". tests/docker/engine.sh; echo $PODMAN_OPTS"], cwd=REPO,
                       capture_output=True, text=True, check=True,
                       env=dict(os.environ, ENGINE="podman"))
    return r.stdout.split()


def engine(*args, timeout=600, check=True):
    cmd = (["docker"] if ENGINE == "docker" else ["podman", *_podman_opts()]) + list(args)
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode,
                                                   r.stderr.decode(errors="replace")[-2000:]))
    return r


_timings = {}
_summary = []


def _note(line):
    _summary.append(line)
    os.makedirs(WORK, exist_ok=True)
    with open(SUMMARY, "w") as f:
        f.write("\n".join(_summary) + "\n")


# ---------------------------------------------------------------------------
# the image
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image():
    """Builds the image (layers cached between runs) and returns its inspect
    data as {Config fields..., "Healthcheck", "Size"}."""
    t0 = time.monotonic()
    r = subprocess.run(["sh", os.path.join(HERE, "build.sh"), TAG], cwd=REPO,
                       capture_output=True, timeout=3600, env=dict(os.environ, ENGINE=ENGINE))
    _timings["build"] = time.monotonic() - t0
    assert r.returncode == 0, "image build failed:\n%s" % (
        (r.stdout + r.stderr).decode(errors="replace")[-4000:])
    d = json.loads(engine("image", "inspect", TAG).stdout)[0]
    info = dict(d["Config"])
    # podman keeps HEALTHCHECK beside Config, docker inside it.
    info["Healthcheck"] = info.get("Healthcheck") or d.get("Healthcheck")
    info["Size"] = d.get("Size")
    _note("engine: %s   image: %s   id: %s" % (ENGINE, TAG, d["Id"][:12]))
    _note("size: %.1f MB (%d bytes)" % (info["Size"] / 1e6, info["Size"]))
    for k in ("User", "Entrypoint", "Cmd", "WorkingDir", "StopSignal", "ExposedPorts",
              "Volumes", "Healthcheck", "Labels"):
        _note("%s: %s" % (k, json.dumps(info.get(k), sort_keys=True)))
    _note("build: %.0f s (cached layers are reused)" % _timings["build"])
    return info


def test_image_runs_as_the_fixed_non_root_user(image):
    assert image["User"] == "postern:postern"


def test_image_exposes_the_mail_ports_and_managesieve(image):
    assert set(image["ExposedPorts"]) == {"993/tcp", "995/tcp", "143/tcp", "110/tcp",
                                          "4190/tcp"}


def test_image_stops_with_sigterm(image):
    assert image["StopSignal"] == "SIGTERM"


def test_image_health_check_is_postern_health(image):
    hc = image["Healthcheck"]
    assert hc and hc["Test"] == ["CMD", "/usr/local/bin/postern", "-c", CONF, "health"]
    assert hc["Interval"] == 30 * 10**9 and hc["Timeout"] == 5 * 10**9
    assert hc["Retries"] == 3


def test_image_has_volumes_labels_and_config_path(image):
    assert set(image["Volumes"]) == {"/etc/postern", "/var/lib/postern"}
    labels = image["Labels"]
    for k in ("title", "description", "version", "revision", "created"):
        assert labels.get("org.opencontainers.image." + k), k
    assert image["Entrypoint"] == ["/usr/local/bin/postern-entrypoint"]
    assert image["Cmd"] == ["-c", CONF]


def test_image_is_small(image):
    # debian:bookworm-slim is about 75-82 MB; postern and its libraries ~10.
    assert image["Size"] < 120 * 10**6, image["Size"]


# ---------------------------------------------------------------------------
# containers: chroot into the exported rootfs, or docker run
# ---------------------------------------------------------------------------


def _image_user(rootfs_passwd_lines, spec):
    """uid, gid of the image's USER "name:group" in its own /etc/passwd."""
    name = spec.split(":")[0]
    for line in rootfs_passwd_lines:
        f = line.split(":")
        if f[0] == name:
            return int(f[2]), int(f[3])
    raise AssertionError("user %s not in the image's /etc/passwd" % name)


class ChrootContainer:
    """The exported image: its ENTRYPOINT + CMD under `chroot --userspec`.
    chroot execs, so the PID we hold is postern's, as in a container."""

    def __init__(self, image, workdir):
        self.image = image
        self.rootfs = os.path.join(workdir, "rootfs")
        os.makedirs(self.rootfs)
        tar = os.path.join(workdir, "rootfs.tar")
        cid = engine("create", "--no-healthcheck", TAG).stdout.decode().strip()
        try:
            engine("export", "-o", tar, cid)
        finally:
            engine("rm", cid, check=False)
        # --xattrs keeps security.capability (the file capability).
        subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf",
                        tar, "-C", self.rootfs], check=True, timeout=300)
        os.unlink(tar)
        with open(os.path.join(self.rootfs, "etc", "passwd")) as f:
            self.uid, self.gid = _image_user(f.read().splitlines(), image["User"])
        self.config_dir = os.path.join(self.rootfs, "etc", "postern")
        self.proc = None
        self.log_path = os.path.join(workdir, "container.log")

    def host_path(self, path):
        return os.path.join(self.rootfs, path.lstrip("/"))

    def _cmd(self, argv):
        return ["chroot", "--userspec=%d:%d" % (self.uid, self.gid), self.rootfs] + argv

    def _env(self):
        return dict(e.split("=", 1) for e in self.image.get("Env") or [])

    def run(self, argv, timeout=30):
        """argv through the image's entrypoint, as the image's user."""
        return subprocess.run(self._cmd(self.image["Entrypoint"] + argv), env=self._env(),
                              capture_output=True, timeout=timeout, text=True,
                              errors="replace", stdin=subprocess.DEVNULL)

    def exec(self, argv, timeout=30):
        """argv as is (a HEALTHCHECK's CMD), as the image's user."""
        return subprocess.run(self._cmd(argv), env=self._env(), capture_output=True,
                              timeout=timeout, text=True, errors="replace",
                              stdin=subprocess.DEVNULL)

    def start(self):
        logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self._cmd(self.image["Entrypoint"] + self.image["Cmd"]), env=self._env(),
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        finally:
            logf.close()

    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """What `docker stop -t timeout` does: the StopSignal, then SIGKILL.
        Returns the exit status (None if it had to be killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, getattr(signal, self.image["StopSignal"]))
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return None

    def hup(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def logs(self):
        return harness._read(self.log_path)

    def packages(self):
        r = subprocess.run(["dpkg-query", "--admindir=" + self.host_path("/var/lib/dpkg"),
                            "-W", "-f", "${Package} ${Status}\n"], capture_output=True,
                           text=True, check=True)
        return [ln.split()[0] for ln in r.stdout.splitlines() if ln.endswith(" installed")]

    def capability(self, path):
        r = subprocess.run(["getcap", self.host_path(path)], capture_output=True, text=True)
        return r.stdout

    def cleanup(self):
        if self.alive():
            self.stop(timeout=5)
        shutil.rmtree(os.path.dirname(self.rootfs), ignore_errors=True)


class DockerContainer:
    """`docker run --network host` with the config and state directories
    mounted, as an operator would (not exercised on machines without an
    engine)."""

    def __init__(self, image, workdir):
        self.image = image
        self.workdir = workdir
        self.uid, self.gid = IMAGE_UID, IMAGE_UID
        self.config_dir = os.path.join(workdir, "etc")
        self.state_dir = os.path.join(workdir, "state")
        os.makedirs(self.config_dir)
        os.makedirs(self.state_dir, mode=0o700)
        os.chown(self.state_dir, self.uid, self.gid)
        self.name = "postern-test-%d" % os.getpid()
        self.started = False
        self.exit_code = None

    def _mounts(self):
        return ["-v", "%s:/etc/postern:ro" % self.config_dir,
                "-v", "%s:/var/lib/postern" % self.state_dir]

    def run(self, argv, timeout=60):
        return subprocess.run(["docker", "run", "--rm", "--network", "host", *self._mounts(),
                               TAG, *argv], capture_output=True, timeout=timeout, text=True,
                              errors="replace")

    def exec(self, argv, timeout=30):
        return subprocess.run(["docker", "exec", self.name, *argv], capture_output=True,
                              timeout=timeout, text=True, errors="replace")

    def start(self):
        engine("run", "-d", "--name", self.name, "--network", "host",
               "--stop-timeout", str(STOP_TIMEOUT), *self._mounts(), TAG)
        self.started = True

    def pid(self):
        return int(engine("inspect", "-f", "{{.State.Pid}}", self.name).stdout)

    def alive(self):
        r = engine("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return r.stdout.strip() == b"true"

    def stop(self, timeout=STOP_TIMEOUT):
        engine("stop", "-t", str(timeout), self.name, timeout=timeout + 30)
        state = json.loads(engine("inspect", "-f", "{{json .State}}", self.name).stdout)
        return None if state.get("OOMKilled") or state["ExitCode"] == 137 else state["ExitCode"]

    def hup(self):
        engine("kill", "-s", "HUP", self.name)

    def logs(self):
        r = engine("logs", self.name, check=False)
        return (r.stdout + r.stderr).decode(errors="replace")

    def packages(self):
        r = engine("run", "--rm", "--entrypoint", "dpkg-query", TAG, "-W", "-f",
                   "${Package} ${Status}\n")
        return [ln.split()[0] for ln in r.stdout.decode().splitlines()
                if ln.endswith(" installed")]

    def capability(self, path):
        tmp = os.path.join(self.workdir, "cap-probe")
        cid = engine("create", TAG).stdout.decode().strip()
        try:
            engine("cp", "-a", "%s:%s" % (cid, path), tmp)
        finally:
            engine("rm", cid, check=False)
        return subprocess.run(["getcap", tmp], capture_output=True, text=True).stdout

    def cleanup(self):
        if self.started:
            engine("rm", "-f", self.name, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def container(image):
    os.makedirs(WORK, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="image-test-", dir=WORK)
    t0 = time.monotonic()
    c = (DockerContainer if ENGINE == "docker" else ChrootContainer)(image, workdir)
    _timings["export"] = time.monotonic() - t0
    yield c
    c.cleanup()


def test_runtime_layer_has_no_compiler_and_no_dev_package(container):
    pkgs = container.packages()
    assert "libssl3" in pkgs and "libev4" in pkgs and "libconfig9" in pkgs
    dev = [p for p in pkgs if p.endswith("-dev")]
    tools = [p for p in pkgs if re.match(r"^(gcc(-\d+)?|g\+\+(-\d+)?|cpp(-\d+)?|clang.*|"
                                         r"binutils.*|make|build-essential|pkg-config|"
                                         r"libcap2-bin|curl|wget)$", p)]
    assert dev == [] and tools == [], (dev, tools)
    _note("runtime packages: %d, none -dev, no compiler" % len(pkgs))


def test_the_binary_links_only_what_the_image_has(container):
    r = container.exec(["/usr/bin/ldd", "/usr/local/bin/postern"]) if ENGINE != "docker" else \
        container.run(["ldd", "/usr/local/bin/postern"])
    assert r.returncode == 0, r.stderr
    assert "not found" not in r.stdout, r.stdout


def test_binary_has_the_bind_capability(container):
    assert "cap_net_bind_service=ep" in container.capability("/usr/local/bin/postern")


def test_first_run_without_config_names_the_file_it_wants(container):
    assert not os.listdir(container.config_dir)
    r = container.run(["-c", CONF])
    assert r.returncode == 78, (r.returncode, r.stdout, r.stderr)
    assert "postern: the configuration file %s is missing" % CONF in r.stderr
    assert "/usr/share/postern/postern.conf" in r.stderr


# ---------------------------------------------------------------------------
# postern from the image, in front of the test suite's Dovecot backends
# ---------------------------------------------------------------------------


def _port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _low_port(preferred, taken):
    """preferred (993, ...) when free on 127.0.0.1, else a free one below 1024."""
    for p in [preferred] + list(range(1023, 600, -1)):
        if p not in taken and _port_free(p):
            taken.add(p)
            return p
    raise RuntimeError("no free port below 1024")


def adapted_config(text, ports, backends, http_port):
    """etc/docker/postern.conf with the listeners and admin.http moved to
    127.0.0.1 on the given ports and the backends pointed at the test's
    Dovecots; every other line (paths, state, policy) as in the file."""
    for orig, port in ports.items():
        text = text.replace('"0.0.0.0:%d"' % orig, '"127.0.0.1:%d"' % port)
    text, n = re.subn(r'http = "0\.0\.0\.0:9100";', 'http = "127.0.0.1:%d";' % http_port, text)
    assert n == 1, "admin.http in etc/docker/postern.conf"
    for name, d in backends.items():
        text, n = re.subn(r'host = "%s"; imap = 143; pop3 = 110; sieve = 4190;' % name,
                          'host = "127.0.0.1"; imap = %d; pop3 = %d; sieve = %d;'
                          % (d.imap_port, d.pop3_port, d.sieve_port), text)
        assert n == 1, name
    return text




@pytest.fixture(scope="module")
def stack(container):
    """Two Dovecots (alice on mx1, bob on mx2), the test CA's certificate in
    the config directory's tls/, etc/docker/postern.conf adapted, and the
    container started.  Yields a dict."""
    tmp = tempfile.mkdtemp(prefix="image-stack-", dir=WORK)
    os.chmod(tmp, 0o755)
    started = []
    try:
        certs = harness.make_certs(os.path.join(tmp, "certs"))
        mx1 = Dovecot("mx1", {ALICE: ALICE_PW}, parent_dir=tmp)
        mx1.start()
        started.append(mx1)
        mx2 = Dovecot("mx2", {BOB: BOB_PW}, parent_dir=tmp)
        mx2.start()
        started.append(mx2)

        taken = set()
        ports = {p: _low_port(p, taken) for p in (993, 995, 143, 110)}
        ports[4190] = 4190 if _port_free(4190) else harness.free_port()
        http_port = harness.free_port()
        with open(os.path.join(REPO, "etc", "docker", "postern.conf")) as f:
            conf = adapted_config(f.read(), ports, {"mx1": mx1, "mx2": mx2}, http_port)
        tls = os.path.join(container.config_dir, "tls")
        os.makedirs(tls)
        with open(os.path.join(tls, "fullchain.pem"), "w") as out:
            for p in (certs["rsa_cert"], certs["ca"]):
                out.write(harness._read(p))
        shutil.copy(certs["rsa_key"], os.path.join(tls, "key.pem"))
        os.chown(os.path.join(tls, "key.pem"), container.uid, container.gid)
        os.chmod(os.path.join(tls, "key.pem"), 0o600)
        with open(os.path.join(container.config_dir, "postern.conf"), "w") as f:
            f.write(conf)

        t0 = time.monotonic()
        container.start()
        for orig, port in ports.items():
            assert harness.wait_port(port, 15, alive=container.alive), (
                "postern from the image did not listen on %d (for %d)\n%s"
                % (port, orig, container.logs()[-3000:]))
        _timings["start"] = time.monotonic() - t0
        _note("ports (image port -> test port on 127.0.0.1): %s" % ports)
        yield {"ports": ports, "ca": certs["ca"], "mx1": mx1, "mx2": mx2,
               "conf": conf, "http_port": http_port}
    finally:
        if container.alive():
            container.stop(timeout=5)
        for x in reversed(started):
            x.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def curl(ca, url, user, password, *extra):
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", ca, *extra, "--url", url,
                        "-u", "%s:%s" % (user, password)], capture_output=True, timeout=30)
    assert r.returncode == 0, "curl %s: exit %d: %s" % (url, r.returncode,
                                                        r.stderr.decode(errors="replace"))
    return r.stdout


def _status_ids(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1:]
    raise AssertionError(key)


def test_postern_runs_as_the_image_user_and_not_root(container, stack):
    pid = container.pid()
    uids = [int(x) for x in _status_ids(pid, "Uid")]
    gids = [int(x) for x in _status_ids(pid, "Gid")]
    assert uids == [IMAGE_UID] * 4 and gids == [IMAGE_UID] * 4, (uids, gids)
    with open("/proc/%d/comm" % pid) as f:
        assert f.read().strip() == "postern"  # the entrypoint exec'd it: PID 1 in a container


def test_binds_ports_below_1024_through_the_file_capability(container, stack):
    cap_eff = int(_status_ids(container.pid(), "CapEff")[0], 16)
    assert cap_eff == 1 << 10, hex(cap_eff)  # CAP_NET_BIND_SERVICE and nothing else
    assert all(p < 1024 for o, p in stack["ports"].items() if o < 1024), stack["ports"]


def test_serves_imaps_end_to_end(stack):
    body = curl(stack["ca"], "imaps://127.0.0.1:%d/INBOX;UID=1" % stack["ports"][993],
                ALICE, ALICE_PW)
    assert body == stack["mx1"].messages[ALICE][0]


def test_serves_pop3s_end_to_end(stack):
    body = curl(stack["ca"], "pop3s://127.0.0.1:%d/1" % stack["ports"][995], BOB, BOB_PW)
    assert body.replace(b"\r\n", b"\n") == stack["mx2"].messages[BOB][0].replace(b"\r\n", b"\n")


def test_serves_starttls_on_143_and_110(stack):
    body = curl(stack["ca"], "imap://127.0.0.1:%d/INBOX;UID=2" % stack["ports"][143],
                ALICE, ALICE_PW, "--ssl-reqd")
    assert body == stack["mx1"].messages[ALICE][1]
    body = curl(stack["ca"], "pop3://127.0.0.1:%d/2" % stack["ports"][110], BOB, BOB_PW,
                "--ssl-reqd")
    assert b"message 2 for %s on mx2" % BOB.encode() in body


def test_serves_managesieve_with_starttls_on_4190(stack):
    """The image config's sieve listener: postern's capability greeting,
    STARTTLS with the capabilities sent again (RFC 5804 §2.2), then a login
    and a script that lands in alice's sieve directory on mx1."""
    c = harness.RawSieve(stack["ports"][4190], stack["ca"])
    try:
        assert c.greeting.status == "OK", c.dump()
        for k in ("IMPLEMENTATION", "SASL", "STARTTLS", "VERSION", "SIEVE"):
            assert k in c.caps, (k, c.caps)
        assert c.caps["VERSION"] == "1.0"
        ok, again = c.stls()
        assert again.status == "OK" and "STARTTLS" not in c.caps, c.dump()
        assert "PLAIN" in c.caps["SASL"].split(), c.caps
        assert c.authenticate_plain(ALICE, ALICE_PW).status == "OK", c.dump()
        script = b'require "fileinto";\nif header :contains "subject" "x" { keep; }\n'
        r = c.command(b'PUTSCRIPT "image" ' + harness.sieve_literal(script))
        assert r.status == "OK", c.dump()
        assert stack["mx1"].sieve_scripts(ALICE).get("image") == script
        assert c.command("LOGOUT").status == "OK"
    finally:
        c.close()


def test_logs_go_to_stdout_and_stderr(container, stack):
    assert harness.wait_port(stack["ports"][993], 5)
    logs = container.logs()
    assert "event=postern.start" in logs
    assert re.search(r'event=login\.ok .*user="%s".*backend=mx1' % re.escape(ALICE), logs), \
        logs[-2000:]


def test_state_lives_in_the_state_volume(container, stack):
    # protocol_lock = "sticky": alice's IMAP login was recorded in LMDB there.
    if ENGINE == "docker":
        path = os.path.join(container.state_dir, "data.mdb")
    else:
        path = container.host_path("/var/lib/postern/data.mdb")
    assert os.path.exists(path)
    assert os.stat(path).st_uid == IMAGE_UID


def test_sighup_reloads_a_config_replaced_in_the_mounted_directory(container, stack):
    # An editor writes a new file and renames it over the old one: a new
    # inode, which a directory mount shows and a single-file mount would not.
    path = os.path.join(container.config_dir, "postern.conf")
    before = os.stat(path).st_ino
    tmp = path + ".swp"
    with open(tmp, "w") as f:
        f.write(stack["conf"].replace('log_level = "info";', 'log_level = "debug";'))
    os.rename(tmp, path)
    assert os.stat(path).st_ino != before
    since = len(container.logs())
    container.hup()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "event=config.reload" not in container.logs()[since:]:
        time.sleep(0.1)
    assert re.search(r"event=config\.reload result=ok", container.logs()[since:]), \
        container.logs()[since:]


def test_health_check_command_answers(container, stack, image):
    r = container.exec(image["Healthcheck"]["Test"][1:])
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "ok" in r.stdout


def test_http_health_and_metrics_answer(stack):
    """admin.http from the image's config: /health is 200 (both backends up)
    and /metrics carries postern's series."""
    import urllib.request
    base = "http://127.0.0.1:%d" % stack["http_port"]
    deadline = time.monotonic() + 10 * harness.TIMEOUT_SCALE
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as r:
                assert r.status == 200, r.status
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        body = r.read().decode()
    assert "postern_build_info" in body and "postern_backend_up" in body, body[:500]


_stopped = {}


def test_sigterm_ends_postern_with_status_0_within_the_stop_timeout(container, stack):
    """An IMAP session logged in and idle through the image's postern, then
    the image's StopSignal; postern must exit 0 well before the recommended
    --stop-timeout (15s), so Docker never needs SIGKILL."""
    ctx = ssl.create_default_context(cafile=stack["ca"])
    m = imaplib.IMAP4_SSL("127.0.0.1", stack["ports"][993], ssl_context=ctx, timeout=20)
    m.login(ALICE, ALICE_PW)
    m.select("INBOX")
    t0 = time.monotonic()
    rc = container.stop(timeout=STOP_TIMEOUT)
    _stopped["seconds"] = time.monotonic() - t0
    # What the client got after the signal: a BYE, then the end of the stream.
    received = b""
    m.sock.settimeout(5)
    try:
        while True:
            chunk = m.sock.recv(4096)
            if not chunk:
                break
            received += chunk
    except (OSError, ssl.SSLError):
        pass
    _stopped["received"] = received
    _stopped["logs"] = container.logs()
    _timings["stop"] = _stopped["seconds"]
    _note("stop: SIGTERM -> exit %s in %.1f s" % (rc, _stopped["seconds"]))
    assert rc == 0, (rc, container.logs()[-2000:])
    assert _stopped["seconds"] < STOP_TIMEOUT
    assert "event=postern.stop signal=TERM" in _stopped["logs"]


def test_sigterm_drains_sessions_with_a_bye_before_the_deadline(stack):
    assert _stopped, "the SIGTERM test did not run"
    assert b"* BYE" in _stopped["received"], _stopped["received"]
    assert re.search(r"event=postern\.drain\b", _stopped["logs"])
    assert re.search(r"event=postern\.drained\b", _stopped["logs"])
    # timeouts.drain = 7s in the image's config; postern waits up to 1s more
    # for the last words to go out.
    assert _stopped["seconds"] < DRAIN_DEADLINE + 1.5, _stopped["seconds"]


def test_compose_stack_is_well_formed():
    """No compose engine here: the YAML's structure (check_compose.py) and
    the shell scripts' syntax; the Dovecot image itself is built below."""
    sys.path.insert(0, HERE)
    import check_compose
    assert check_compose.problems() == []
    for script in ("entrypoint.sh", "dovecot/entrypoint.sh", "dovecot/demo-init.sh"):
        r = subprocess.run(["sh", "-n", os.path.join(REPO, "etc", "docker", script)],
                           capture_output=True, text=True)
        assert r.returncode == 0, (script, r.stderr)


def test_compose_dovecot_image_builds(image):
    t0 = time.monotonic()
    args = ["build", "--format", "docker", "--pull=never", "--layers", "--isolation",
            "chroot"] if ENGINE == "podman" else ["build"]
    engine(*args, "-t", "postern-dovecot:demo", os.path.join(REPO, "etc", "docker", "dovecot"),
           timeout=1800)
    _timings["dovecot image"] = time.monotonic() - t0
    d = json.loads(engine("image", "inspect", "postern-dovecot:demo").stdout)[0]
    assert d["Config"]["Entrypoint"] == ["/usr/local/bin/dovecot-entrypoint"]
    _note("compose's dovecot image: %.1f MB" % (d["Size"] / 1e6))


def test_zz_summary(image):
    """Not a check: records the timings in build/docker/summary.txt."""
    _note("timings: " + ", ".join("%s %.1f s" % kv for kv in _timings.items()))
