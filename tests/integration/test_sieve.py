"""ManageSieve (RFC 5804) through postern to real Dovecot (Pigeonhole's
managesieve on the session's mx1 and mx2): the real clients
(python3-sievelib and sieve-connect) end to end with the scripts read back
from the backends' disks, the adversarial set spoken by hand (RawSieve),
and the operations side (sessions, kick, drain, the protocol lock).

One postern for the module (a STARTTLS sieve listener, an implicit-TLS one
with PLAIN only, an admin socket) in front of mx1, mx2, a backend nothing
listens on and a backend that lies in its greeting; the drain and lock
tests start their own, and so do the forwarding tests (a Dovecot that
requires a PROXY header).  Users and routes: harness/expect.py (alice and
frank on mx1, carol on mx2; carol, frank exist on both, so "not on the
other backend" is a sharp check)."""

import base64
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import types
from contextlib import contextmanager

import pytest

import harness
from harness import (IO_TIMEOUT, PASSWORDS, ROUTES, TIMEOUT_SCALE, ClosedError, Dovecot,
                     Postern, RawSieve, client_context, sasl_plain, sieve_literal)

HOST = "127.0.0.1"
LIAR_USER = "liam@liar.test"
PASSWORDS_HERE = {LIAR_USER: "liam-liar-pw-4"}
# postern's listener mechanisms by default (no lookup service: no OAuth)
DEFAULT_MECHS = {"PLAIN", "LOGIN"}


def secret(user):
    return PASSWORDS.get(user) or PASSWORDS_HERE[user]


# ---------------------------------------------------------------------------
# a backend that lies: whatever it is, it is not a ManageSieve server
# ---------------------------------------------------------------------------


class LiarBackend:
    """A TCP server on loopback that answers every connection with bytes
    that are no ManageSieve greeting, then stays silent until the peer
    closes (at most hold seconds).  Counts connections."""

    GARBAGE = (b"220 smtp.liar.test ESMTP pretending\r\n"
               b"\x00\xff\xfe not a capability line \"unclosed\r\n")

    def __init__(self, hold=8.0):
        self.hold = hold
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        open_ = []  # (socket, deadline)
        while not self.stop.is_set():
            rl = [self.sock] + [s for s, _ in open_]
            r, _, _ = select.select(rl, [], [], 0.1)
            for s in r:
                if s is self.sock:
                    c, _ = self.sock.accept()
                    self.connections += 1
                    try:
                        c.sendall(self.GARBAGE)
                    except OSError:
                        pass
                    open_.append((c, time.monotonic() + self.hold))
                else:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        s.close()
                        open_ = [x for x in open_ if x[0] is not s]
            now = time.monotonic()
            for s, dl in [x for x in open_ if x[1] < now]:
                s.close()
            open_ = [x for x in open_ if x[1] >= now]
        for s, _ in open_:
            s.close()
        self.sock.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)


# ---------------------------------------------------------------------------
# fixtures: one postern for the module
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def liar():
    lb = LiarBackend()
    yield lb
    lb.close()


def _backends(mx1, mx2, liar):
    # no health checks on the two broken ones: what a login meets there is
    # the point (the dead one refuses the connection, the liar lies)
    dead = {"name": "dead", "imap": harness.free_port(), "pop3": harness.free_port(),
            "sieve": harness.free_port(), "check_interval": "0"}
    lie = {"name": "liar", "imap": liar.port, "pop3": liar.port, "sieve": liar.port,
           "check_interval": "0"}
    return [mx1, mx2, dead, lie]


ROUTES_HERE = ROUTES[:-1] + [{"domain": "liar.test", "backend": "liar"}] + ROUTES[-1:]


def _admin_extra(run_dir):
    sockdir = tempfile.mkdtemp(prefix="adm-", dir=run_dir)
    return '\nadmin = { socket = "%s"; };' % os.path.join(sockdir, "admin.sock")


@pytest.fixture(scope="module")
def sp(certs, mx1, mx2, liar, postern_registry, run_dir):
    """The module's postern: sieve STARTTLS on sp.sieve_port, implicit-TLS
    sieve with PLAIN only on sp.implicit_port."""
    implicit = {"protocol": "sieve", "tls": "implicit", "auth_mechanisms": ["plain"]}
    p = Postern(certs, _backends(mx1, mx2, liar), ROUTES_HERE, parent_dir=run_dir,
                sieve=True, extra_listeners=[implicit], extra=_admin_extra(run_dir),
                timeouts={"backend_login": "5s", "drain": "10s", "drain_quiet": "300ms",
                          "drain_spread": "0s"})
    postern_registry.append(p)
    p.start()
    p.implicit_port = p.extra_listeners[0]["port"]
    yield p
    p.cleanup()


@pytest.fixture
def proxy(sp):
    """The module's postern, checked alive after each test."""
    yield sp
    if not sp.running():
        pytest.fail("postern exited during this test (exit status %s); log tail:\n%s"
                    % (sp.proc.returncode, harness._tail(sp.log(), 40)))


def admin(p, *args):
    return harness.run_postern("-c", p.conf_path, *args, timeout=30)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def tls_session(p, ca):
    """A RawSieve on p's STARTTLS listener, after STARTTLS."""
    c = RawSieve(p.sieve_port, ca)
    c.stls()
    return c


def logged_in(p, ca, user):
    c = tls_session(p, ca)
    r = c.authenticate_plain(user, secret(user))
    assert r.status == "OK", c.dump()
    return c


def assert_usable(c, tag="still-here"):
    """The session answers NOOP with its tag (RFC 5804 §2.14)."""
    r = c.command('NOOP "%s"' % tag)
    assert r.status == "OK" and r.code and r.code[0].upper() == "TAG" \
        and r.code[1] == tag.encode(), c.dump()


def read_bye_and_close(c, timeout=None):
    """The responses until BYE, then the close; returns the BYE response.
    NO responses to commands the client already sent may come before it."""
    timeout = timeout or IO_TIMEOUT
    deadline = time.monotonic() + timeout
    while True:
        r = c.read_response(max(0.1, deadline - time.monotonic()))
        if r.status == "BYE":
            rest = c.read_until_closed(max(0.1, deadline - time.monotonic()))
            assert rest == b"", "bytes after BYE: %r\n%s" % (rest, c.dump())
            return r
        assert r.status == "NO", "expected NO or BYE, got %r\n%s" % (r.line, c.dump())


def send_ignoring_close(c, data, chunk=4096):
    """Send in chunks, stopping once the server has answered (so that a
    close does not meet unread bytes of ours and turn into a reset that
    discards its last words), tolerating its close meanwhile."""
    for i in range(0, len(data), chunk):
        pending = c.sock.pending() if isinstance(c.sock, ssl.SSLSocket) else 0
        if pending or select.select([c.sock], [], [], 0)[0]:
            return
        try:
            c.send(data[i:i + chunk])
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return


@contextmanager
def closing_sock(client):
    """Close a sievelib client's socket at the end, whatever happened."""
    try:
        yield client
    finally:
        if client.sock is not None:
            client.sock.close()


@contextmanager
def deadline(seconds):
    """SIGALRM after seconds: bounds a client library call that has no
    bound of its own (sievelib loops forever on a closed connection)."""
    def on_alarm(signum, frame):
        raise TimeoutError("still running after %.0f s" % seconds)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds * TIMEOUT_SCALE)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def big_script(who, size=40 * 1024):
    """A valid Sieve script of at least size bytes: comment lines, then
    rules; LF line ends (what sieve clients write) and one CRLF, so a
    line-end conversion anywhere shows."""
    head = (b"# filters for %s, written by the postern integration tests\r\n"
            b"require [\"fileinto\", \"envelope\", \"vacation\"];\n" % who.encode())
    out = bytearray(head)
    n = 0
    while len(out) < size:
        out += b"# comment line %05d: the quick brown fox jumps over the lazy dog {}\"\\\n" % n
        n += 1
    for i in range(40):
        out += (b'if header :contains "subject" "topic-%02d" { fileinto "INBOX"; stop; }\n' % i)
    out += b'if envelope :is "from" "boss@example.org" { keep; }\n'
    out += b'vacation :days 3 "Away (literal test)";\n'
    return bytes(out)


def on_disk(backends, user, name):
    """{backend name: bytes or None} of script name for user on each backend."""
    return {b.name: b.sieve_scripts(user).get(name) for b in backends}


# ---------------------------------------------------------------------------
# python3-sievelib
# ---------------------------------------------------------------------------


@pytest.fixture
def sievelib(monkeypatch, ca):
    """sievelib's Client, its STARTTLS verified against the test CA.
    sievelib 1.2.1 calls ssl.wrap_socket(sock, keyfile, certfile) without
    verification; here that call gets a verifying context (the handshake
    fails on a certificate the CA did not sign) and is counted."""
    from sievelib import managesieve
    wrapped = []

    def wrap_socket(sock, keyfile=None, certfile=None, **kw):
        s = client_context(ca).wrap_socket(sock, server_hostname="localhost")
        wrapped.append(s.version())
        return s

    monkeypatch.setattr(managesieve, "ssl",
                        types.SimpleNamespace(wrap_socket=wrap_socket, SSLError=ssl.SSLError))
    managesieve.Client.tls_versions = wrapped
    return managesieve.Client


@pytest.mark.parametrize("user,mech,home,other", [
    ("alice@example.org", "PLAIN", "mx1", "mx2"),
    ("carol@example.org", "LOGIN", "mx2", "mx1"),
])
def test_sievelib_starttls_auth_put_check_activate_get_delete(
        proxy, ca, sievelib, mx1, mx2, user, mech, home, other):
    backends = {"mx1": mx1, "mx2": mx2}
    since = proxy.log_size()
    name = "lib-" + mech.lower()
    script = big_script(user)
    assert len(script) > 40 * 1024
    c = sievelib(HOST, proxy.sieve_port)
    with deadline(20), closing_sock(c):
        assert c.connect(user, secret(user), starttls=True, authmech=mech), \
            "sievelib login failed: %r %r" % (c.errcode, getattr(c, "errmsg", None))
        assert sievelib.tls_versions and sievelib.tls_versions[-1].startswith("TLSv1."), \
            "STARTTLS did not run"
        assert c.get_implementation()
        assert set(c.get_sasl_mechanisms()) >= {mech}
        assert "fileinto" in c.get_sieve_capabilities()
        assert not c.has_tls_support(), "STARTTLS still announced after TLS"

        active, scripts = c.listscripts()
        assert name not in scripts and active != name
        assert c.havespace(name, len(script))
        assert c.checkscript(script), (c.errcode, c.errmsg)
        assert not c.checkscript(b'require "nonsense-extension";\nfrobnicate;\n')
        assert c.putscript(name, script), (c.errcode, c.errmsg)
        # on the user's own backend, byte for byte, and not on the other
        disk = on_disk(backends.values(), user, name)
        assert disk[home] == script, "not stored byte-exact on %s" % home
        assert disk[other] is None, "the script reached %s too" % other

        assert c.setactive(name)
        active, scripts = c.listscripts()
        assert active == name, (active, scripts)
        assert backends[home].active_script(user) == name
        assert backends[other].active_script(user) is None

        # sievelib's getscript rejoins the lines with "\n" (its own line-end
        # normalisation); the exact bytes are checked with RawSieve below
        got = c.getscript(name)
        assert got.splitlines() == script.decode().splitlines()

        # byte-exact through postern: GETSCRIPT by hand on the same listener
        r = logged_in(proxy, ca, user)
        try:
            resp, body = r.getscript(name)
            assert resp.status == "OK" and body == script, r.dump()[:2000]
        finally:
            r.close()

        assert c.setactive("")
        assert backends[home].active_script(user) is None
        assert c.deletescript(name)
        assert name not in c.listscripts()[1]
        assert on_disk(backends.values(), user, name) == {"mx1": None, "mx2": None}
        c.logout()
    assert harness.session_end_seen(proxy, "sieve", user, since), \
        harness._tail(proxy.log()[since:])


# ---------------------------------------------------------------------------
# sieve-connect
# ---------------------------------------------------------------------------


def sieve_connect(p, ca, user, *args, timeout=20):
    """sieve-connect against p's STARTTLS sieve listener, verifying the
    certificate against the test CA (name "localhost" as in its SAN), the
    password on fd 0.  Returns the CompletedProcess (bytes)."""
    cmd = ["sieve-connect", "--nosrv", "--server", HOST, "--port", str(p.sieve_port),
           "--tlscafile", ca, "--tlshostname", "localhost", "--noclearauth",
           "--user", user, "--passwordfd", "0", "--authmech", "PLAIN", *args]
    return subprocess.run(cmd, input=secret(user).encode() + b"\n", capture_output=True,
                          timeout=timeout * TIMEOUT_SCALE)


def test_sieve_connect_list_upload_download_activate_delete(proxy, ca, mx1, mx2, tmp_path):
    user, name = "frank@other.test", "sc-filters"  # frank: mx1 (default route), also on mx2
    script = big_script(user, 6000)
    local = tmp_path / "in.sieve"
    local.write_bytes(script)
    back = tmp_path / "out.sieve"

    def run(*a):
        r = sieve_connect(proxy, ca, user, *a)
        assert r.returncode == 0, "sieve-connect %s: exit %s\n%s%s" % (
            " ".join(a), r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace"))
        return r.stdout.decode()

    assert '"%s"' % name not in run("--list")
    run("--upload", "--localsieve", str(local), "--remotesieve", name)
    assert mx1.sieve_scripts(user).get(name) == script
    assert name not in mx2.sieve_scripts(user)
    assert '"%s"' % name in run("--list")
    run("--activate", "--remotesieve", name)
    assert ('"%s" ACTIVE' % name) in run("--list")
    assert mx1.active_script(user) == name
    run("--download", "--remotesieve", name, "--localsieve", str(back))
    assert back.read_bytes() == script, "sieve-connect downloaded other bytes"
    run("--deactivate")
    run("--delete", "--remotesieve", name)
    assert '"%s"' % name not in run("--list")
    assert name not in mx1.sieve_scripts(user)


def test_sieve_connect_refuses_a_certificate_the_ca_did_not_sign(proxy, certs, tmp_path):
    """The check above is a real one: with another CA sieve-connect stops."""
    other = harness.make_ca(str(tmp_path), "other", "Other Test CA")
    r = sieve_connect(proxy, other["ca"], "frank@other.test", "--list")
    assert r.returncode != 0, r
    assert b"certificate" in r.stderr.lower() or b"verif" in r.stderr.lower(), r.stderr


# ---------------------------------------------------------------------------
# the greeting and STARTTLS
# ---------------------------------------------------------------------------


def test_greeting_is_posterns_capability_list_and_starttls_sends_it_again(proxy, ca):
    c = RawSieve(proxy.sieve_port, ca)
    try:
        g = c.greeting
        assert g.status == "OK" and g.code is None, c.dump()
        caps = c.caps
        for k in ("IMPLEMENTATION", "SASL", "STARTTLS", "VERSION", "SIEVE"):
            assert k in caps, (k, caps)
        assert caps["VERSION"] == "1.0"
        assert caps["STARTTLS"] is None
        assert "Dovecot" not in caps["IMPLEMENTATION"], "the backend's greeting leaked"
        assert "XCLIENT" not in caps, caps
        assert "fileinto" in caps["SIEVE"].split(), caps
        # before TLS a TLS-only listener offers no mechanism or its own ones
        assert set((caps["SASL"] or "").split()) <= DEFAULT_MECHS, caps

        sresp, again = c.stls()
        assert sresp.status == "OK" and again.status == "OK", c.dump()
        after = c.caps
        assert "STARTTLS" not in after, after
        assert set(after["SASL"].split()) == DEFAULT_MECHS, after
        assert after["VERSION"] == "1.0" and after["SIEVE"] == caps["SIEVE"]
        assert after["IMPLEMENTATION"] == caps["IMPLEMENTATION"]

        r = c.command("CAPABILITY")
        assert r.status == "OK" and harness.sieve_caps(r.lines) == after, c.dump()
        assert_usable(c, "t1")
        r = c.command("STARTTLS")
        assert r.status == "NO", "a second STARTTLS: %r" % r.line
        r = c.command("LOGOUT")
        assert r.status == "OK"
        assert c.read_until_closed() == b""
    finally:
        c.close()


def test_implicit_tls_listener_announces_its_own_mechanisms(proxy, ca):
    c = RawSieve(proxy.implicit_port, ca, plaintext=False)
    try:
        assert c.greeting.status == "OK", c.dump()
        assert "STARTTLS" not in c.caps, c.caps
        assert c.caps["SASL"].split() == ["PLAIN"], c.caps
        r = c.command(b'AUTHENTICATE "LOGIN"')
        assert r.status == "NO", c.dump()
        r = c.authenticate_plain("alice@example.org", secret("alice@example.org"))
        assert r.status == "OK", c.dump()
        r = c.command("LISTSCRIPTS")
        assert r.status == "OK", c.dump()
    finally:
        c.close()


def test_authenticate_before_starttls_is_refused_with_encrypt_needed(proxy, ca, mx1):
    since = mx1.log_size()
    c = RawSieve(proxy.sieve_port, ca)
    try:
        r = c.authenticate_plain("alice@example.org", secret("alice@example.org"))
        assert r.status == "NO" and r.code_name == "ENCRYPT-NEEDED", c.dump()
        r = c.command(b'AUTHENTICATE "LOGIN"')
        assert r.status == "NO", c.dump()
        # still usable, and TLS then login works
        assert_usable(c)
        c.stls()
        assert c.authenticate_plain("alice@example.org",
                                    secret("alice@example.org")).status == "OK", c.dump()
    finally:
        c.close()
    # the refused attempt never reached the backend: one login there
    assert mx1.wait_log(r"managesieve-login: Info: Login: user=<alice@example\.org>",
                        since=since)
    time.sleep(0.2)
    assert mx1.log()[since:].count("managesieve-login: Info: Login: user=<alice@example.org>") \
        == 1, mx1.log()[since:]


@pytest.mark.parametrize("cmd", [
    b'PUTSCRIPT "x" ' + sieve_literal(b"keep;\n"), b"LISTSCRIPTS", b'GETSCRIPT "x"',
    b'SETACTIVE "x"', b'DELETESCRIPT "x"', b"CHECKSCRIPT " + sieve_literal(b"keep;\n"),
    b'HAVESPACE "x" 10', b'RENAMESCRIPT "x" "y"', b"UNAUTHENTICATE"])
def test_commands_of_a_logged_in_session_before_login_get_no(proxy, ca, cmd):
    c = tls_session(proxy, ca)
    try:
        r = c.command(cmd)
        assert r.status == "NO", "%r before login: %r\n%s" % (cmd, r.line, c.dump())
        assert_usable(c)
    finally:
        c.close()


def test_plaintext_pipelined_after_starttls_is_dropped(proxy, ca, mx1):
    user = "alice@example.org"
    since = mx1.log_size()
    c = RawSieve(proxy.sieve_port, ca)
    try:
        c.send(b'STARTTLS\r\nAUTHENTICATE "PLAIN" "%s"\r\n' % sasl_plain(user, secret(user)))
        r = c.read_response()
        assert r.status == "OK", c.dump()
        leftover = c.starttls()
        assert leftover == b"", "bytes before the handshake: %r" % leftover
        again = c.read_response()
        assert again.status == "OK" and "STARTTLS" not in harness.sieve_caps(again.lines)
        # the injected AUTHENTICATE did not run: no answer to it, not logged in
        assert_usable(c, "after")
        r = c.command("LISTSCRIPTS")
        assert r.status == "NO", c.dump()
    except ClosedError:
        pass  # closing the connection is an acceptable answer too
    finally:
        c.close()
    time.sleep(0.2)
    assert "user=<%s>" % user not in mx1.log()[since:], "the injected login reached mx1"


# ---------------------------------------------------------------------------
# the adversarial set
# ---------------------------------------------------------------------------


def test_overlong_line_gets_bye_and_close(proxy, ca):
    c = tls_session(proxy, ca)
    try:
        send_ignoring_close(c, b"NOOP \"" + b"x" * 70000)
        r = read_bye_and_close(c)
        assert r.status == "BYE", c.dump()
    finally:
        c.close()


def test_overlong_line_before_tls_gets_bye_and_close(proxy, ca):
    c = RawSieve(proxy.sieve_port, ca)
    try:
        send_ignoring_close(c, b"A" * 70000 + b"\r\n")
        read_bye_and_close(c)
    finally:
        c.close()


def test_overlong_literal_gets_bye_and_close(proxy, ca):
    c = tls_session(proxy, ca)
    try:
        send_ignoring_close(c, b'AUTHENTICATE "PLAIN" {100000000+}\r\n' + b"A" * 4096)
        read_bye_and_close(c)
    finally:
        c.close()


def test_client_literal_without_plus_is_refused_cleanly(proxy, ca):
    """RFC 5804 §4: clients send only {n+}.  A synchronising {n} gets BYE
    and the close at once, not a wait for the n octets."""
    c = tls_session(proxy, ca)
    try:
        send_ignoring_close(c, b'AUTHENTICATE "PLAIN" {24}\r\n')
        t0 = time.monotonic()
        read_bye_and_close(c, 5 * TIMEOUT_SCALE)
        assert time.monotonic() - t0 < 4 * TIMEOUT_SCALE
    finally:
        c.close()


def test_initial_response_as_a_literal_logs_in(proxy, ca):
    c = tls_session(proxy, ca)
    try:
        ir = sasl_plain("alice@example.org", secret("alice@example.org"))
        r = c.command(b'AUTHENTICATE "PLAIN" ' + sieve_literal(ir))
        assert r.status == "OK", c.dump()
        assert c.command("LISTSCRIPTS").status == "OK", c.dump()
    finally:
        c.close()


def test_bad_base64_in_authenticate_gets_no(proxy, ca):
    c = tls_session(proxy, ca)
    try:
        r = c.command(b'AUTHENTICATE "PLAIN" "!!not*base64=="')
        assert r.status == "NO", c.dump()
        assert_usable(c)
        r = c.authenticate_plain("alice@example.org", secret("alice@example.org"))
        assert r.status == "OK", c.dump()
    finally:
        c.close()


def test_sasl_cancel_gets_no_and_the_session_goes_on(proxy, ca):
    c = tls_session(proxy, ca)
    try:
        c.send(b'AUTHENTICATE "PLAIN"\r\n')
        line = c.readline()
        assert line == b'""\r\n', "expected an empty challenge: %r\n%s" % (line, c.dump())
        r = c.command(b'"*"')
        assert r.status == "NO", c.dump()
        assert_usable(c)
        # LOGIN by hand, with its continuations
        c.send(b'AUTHENTICATE "LOGIN"\r\n')
        for answer in (b"carol@example.org",):
            ch = harness.sieve_tokens(c.readline().rstrip(b"\r\n"))
            assert len(ch) == 1 and isinstance(ch[0], bytes), c.dump()
            c.send(b'"%s"\r\n' % base64.b64encode(answer))
        ch = harness.sieve_tokens(c.readline().rstrip(b"\r\n"))
        assert len(ch) == 1 and isinstance(ch[0], bytes), c.dump()
        r = c.command(b'"%s"' % base64.b64encode(secret("carol@example.org").encode()))
        assert r.status == "OK", c.dump()
    finally:
        c.close()


def test_wrong_password_gets_no_and_the_next_attempt_works(proxy, ca):
    c = tls_session(proxy, ca)
    try:
        r = c.authenticate_plain("alice@example.org", harness.WRONG_PASSWORDS[0])
        assert r.status == "NO" and r.code_name != "TRYLATER", c.dump()
        r = c.authenticate_plain("alice@example.org", secret("alice@example.org"))
        assert r.status == "OK", c.dump()
    finally:
        c.close()


def test_too_many_bad_commands_get_bye(proxy, ca):
    c = tls_session(proxy, ca)
    try:
        seen = []
        for i in range(10):
            send_ignoring_close(c, b"FROBNICATE %d\r\n" % i)
            try:
                r = c.read_response()
            except ClosedError:
                break
            seen.append(r.status)
            if r.status == "BYE":
                assert c.read_until_closed() == b""
                break
            assert r.status == "NO", c.dump()
        assert seen and seen[-1] == "BYE" and len(seen) <= 5, (seen, c.dump())
    finally:
        c.close()


def test_a_slow_client_sending_one_byte_at_a_time_logs_in(proxy, ca):
    c = RawSieve(proxy.sieve_port, ca)
    try:
        for b in b"STARTTLS\r\n":
            c.send(bytes([b]))
            time.sleep(0.005)
        assert c.read_response().status == "OK", c.dump()
        assert c.starttls() == b""
        assert c.read_response().status == "OK", c.dump()
        line = b'AUTHENTICATE "PLAIN" "%s"\r\n' % sasl_plain("alice@example.org",
                                                             secret("alice@example.org"))
        for b in line:
            c.send(bytes([b]))
            time.sleep(0.003)
        r = c.read_response()
        assert r.status == "OK", c.dump()
        assert c.command("LISTSCRIPTS").status == "OK", c.dump()
    finally:
        c.close()


def fail_logged(p, user, since, reason_rx):
    """postern's login.fail line for user (proto sieve) since the offset,
    its reason matching reason_rx."""
    return p.wait_log(r'event=login\.fail\b[^\n]*\bproto=sieve\b[^\n]*\buser="%s"[^\n]*'
                      r'\breason=%s' % (re.escape(user), reason_rx), timeout=5, since=since)


def test_a_backend_that_is_down_gets_no_trylater_and_the_session_stays(proxy, ca):
    since = proxy.log_size()
    c = tls_session(proxy, ca)
    try:
        r = c.authenticate_plain(harness.DOWN_USER, secret(harness.DOWN_USER))
        assert r.status == "NO" and r.code_name == "TRYLATER", c.dump()
        assert fail_logged(proxy, harness.DOWN_USER, since, r"backend_\w+"), \
            harness._tail(proxy.log()[since:])
        assert_usable(c)
        r = c.authenticate_plain("alice@example.org", secret("alice@example.org"))
        assert r.status == "OK", c.dump()
    finally:
        c.close()


def test_a_backend_that_lies_in_its_greeting_gets_no_trylater(proxy, ca, liar):
    before = liar.connections
    since = proxy.log_size()
    c = tls_session(proxy, ca)
    try:
        t0 = time.monotonic()
        r = c.authenticate_plain(LIAR_USER, secret(LIAR_USER))
        assert r.status == "NO" and r.code_name == "TRYLATER", c.dump()
        assert time.monotonic() - t0 < 8 * TIMEOUT_SCALE
        assert liar.connections > before, "postern never asked the liar"
        assert fail_logged(proxy, LIAR_USER, since, r"backend_bad_greeting\b"), \
            harness._tail(proxy.log()[since:])
        assert_usable(c)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# operations
# ---------------------------------------------------------------------------


def sessions(p, *filters):
    r = admin(p, "sessions", "--json", *filters)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_sieve_session_shows_as_sieve_and_a_kick_ends_it_with_bye(proxy, ca):
    user = "erin@other.test"  # no other test here logs erin in
    c = logged_in(proxy, ca, user)
    try:
        assert c.command("LISTSCRIPTS").status == "OK", c.dump()
        got = [s for s in sessions(proxy, "--user", user)]
        assert [(s["user"], s["proto"], s["backend"], s["state"]) for s in got] == \
            [(user, "sieve", "mx1", "relay")], got
        r = admin(proxy, "kick", "--user", user)
        assert r.returncode == 0 and "1 session" in r.stdout, r
        bye = read_bye_and_close(c)
        assert bye.status == "BYE", c.dump()
    finally:
        c.close()
    deadline_ = time.monotonic() + 5 * TIMEOUT_SCALE
    while sessions(proxy, "--user", user) and time.monotonic() < deadline_:
        time.sleep(0.1)
    assert sessions(proxy, "--user", user) == []


def test_sigterm_drain_tells_idle_sieve_sessions_bye_and_closes_them(
        certs, mx1, mx2, liar, postern_registry, run_dir, ca):
    p = Postern(certs, _backends(mx1, mx2, liar), ROUTES_HERE, parent_dir=run_dir, sieve=True,
                timeouts={"drain": "10s", "drain_quiet": "300ms", "drain_spread": "0s"})
    postern_registry.append(p)
    p.start()
    try:
        c = logged_in(p, ca, "alice@example.org")
        pre = tls_session(p, ca)          # not logged in yet
        sasl = tls_session(p, ca)         # in the middle of AUTHENTICATE
        try:
            assert c.command("LISTSCRIPTS").status == "OK", c.dump()
            sasl.send(b'AUTHENTICATE "PLAIN"\r\n')
            assert sasl.readline() == b'""\r\n', sasl.dump()
            os.kill(p.proc.pid, signal.SIGTERM)
            for x in (c, pre, sasl):
                bye = read_bye_and_close(x, 8 * TIMEOUT_SCALE)
                assert bye.status == "BYE", x.dump()
        finally:
            for x in (c, pre, sasl):
                x.close()
        assert p.proc.wait(10 * TIMEOUT_SCALE) == 0
    finally:
        p.cleanup()


def lock_postern(certs, mx1, postern_registry, run_dir, sieve_lock=None):
    policy = ('policy = {\n  protocol_lock = "static";\n'
              '  protocols = ( { user = "alice@example.org"; allow = ["pop3"]; } );\n'
              + ('  sieve_lock = "%s";\n' % sieve_lock if sieve_lock else "")
              + harness.NO_TARPIT + '};')
    p = Postern(certs, [mx1], [{"default": True, "backend": "mx1"}], parent_dir=run_dir,
                sieve=True, policy=policy)
    postern_registry.append(p)
    return p.start()


def test_the_protocol_lock_does_not_count_sieve_unless_configured(
        certs, mx1, postern_registry, run_dir, ca):
    user = "alice@example.org"
    p = lock_postern(certs, mx1, postern_registry, run_dir)
    try:
        # the account is POP3-only: IMAP refused, ManageSieve (exempt) fine
        s = harness.imap_login(p, ca, user, secret(user))
        assert not s.ok, s
        c = logged_in(p, ca, user)
        c.close()
    finally:
        p.cleanup()
    p = lock_postern(certs, mx1, postern_registry, run_dir, sieve_lock="as_imap")
    try:
        c = tls_session(p, ca)
        try:
            r = c.authenticate_plain(user, secret(user))
            assert r.status == "NO", c.dump()
            assert r.code_name != "TRYLATER", c.dump()
        finally:
            c.close()
    finally:
        p.cleanup()


# ---------------------------------------------------------------------------
# the client's address, forwarded to Dovecot
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("forward,haproxy", [("proxy-v2", True), ("xclient", False)])
def test_the_client_address_reaches_dovecots_managesieve(
        certs, postern_registry, run_dir, ca, forward, haproxy):
    """PROXY v2 to a managesieve listener that requires the header (its
    haproxy_trusted_networks), or XCLIENT where managesieve-login offers it
    (login_trusted_networks): Dovecot logs the client's address, not
    postern's, and the login is "secured" (v2's SSL TLV; XCLIENT from a
    trusted network)."""
    user = "alice@example.org"
    d = Dovecot("fwd", {user: secret(user)}, messages=0, parent_dir=run_dir,
                haproxy=haproxy, disable_plaintext_auth=haproxy,
                trusted_networks=None if haproxy else "127.0.0.0/8")
    d.start()
    p = None
    try:
        be = dict(Postern._backend_dict(d, with_sieve=True), forward=forward,
                  check_interval="0")
        p = Postern(certs, [be], [{"default": True, "backend": "fwd"}], parent_dir=run_dir,
                    sieve=True)
        postern_registry.append(p)
        p.start()
        since = d.log_size()
        c = RawSieve(p.sieve_port, ca, source="127.0.0.7")
        try:
            c.stls()
            assert c.authenticate_plain(user, secret(user)).status == "OK", c.dump()
            assert c.command("LISTSCRIPTS").status == "OK", c.dump()
        finally:
            c.close()
        m = d.wait_log(r"managesieve-login: Info: Login: user=<%s>[^\n]*" % re.escape(user),
                       since=since)
        assert m, d.log()[since:]
        assert "rip=127.0.0.7," in m.group(0), m.group(0)
        assert "secured" in m.group(0), m.group(0)
    finally:
        if p is not None:
            p.cleanup()
        d.cleanup()


# ---------------------------------------------------------------------------
# a kick waits for a response that is half out
# ---------------------------------------------------------------------------


class PausingSieveBackend:
    """A scripted ManageSieve backend: any AUTHENTICATE is OK; GETSCRIPT
    answers with a literal of BODY sent in two halves, with a pause
    (until resume is set, at most pause seconds) after a line end in the
    middle; LOGOUT ends.  One session at a time."""

    def __init__(self, body, split, pause=12.0):
        self.body, self.split, self.pause = body, split, pause
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            try:
                self._serve(c)
            except OSError:
                pass
            finally:
                c.close()
        self.sock.close()

    def _serve(self, c):
        c.settimeout(0.2)
        c.sendall(b'"IMPLEMENTATION" "script"\r\n"SIEVE" "fileinto"\r\n'
                  b'"SASL" "PLAIN"\r\n"VERSION" "1.0"\r\nOK "script ready"\r\n')
        buf = b""
        while not self.stop.is_set():
            while b"\r\n" not in buf:
                try:
                    chunk = c.recv(4096)
                except socket.timeout:
                    if self.stop.is_set():
                        return
                    continue
                if not chunk:
                    return
                buf += chunk
            line, _, buf = buf.partition(b"\r\n")
            word = line.split(b" ", 1)[0].upper()
            if word == b"GETSCRIPT":
                c.sendall(b"{%d}\r\n" % len(self.body) + self.body[:self.split])
                self.paused.set()
                self.resume.wait(self.pause)
                c.sendall(self.body[self.split:] + b'\r\nOK "Getscript completed."\r\n')
            elif word == b"LOGOUT":
                c.sendall(b'OK "bye"\r\n')
                return
            else:
                c.sendall(b'OK "done"\r\n')

    def close(self):
        self.resume.set()
        self.stop.set()
        self.thread.join(5)


def test_a_kick_waits_until_a_getscript_literal_is_whole(certs, postern_registry, run_dir, ca):
    body = b"".join(b"# line %04d of a script paused in the middle\r\n" % i for i in range(120))
    split = body.index(b"\r\n", len(body) // 2) + 2  # right after a line end
    be = PausingSieveBackend(body, split)
    p = None
    try:
        # the harness always writes IMAP and POP3 listeners: ports for them too
        p = Postern(certs, [{"name": "script", "imap": be.port, "pop3": be.port,
                             "sieve": be.port, "check_interval": "0"}],
                    [{"default": True, "backend": "script"}], parent_dir=run_dir, sieve=True,
                    extra=_admin_extra(run_dir),
                    timeouts={"drain": "30s", "drain_quiet": "300ms", "drain_spread": "0s"})
        postern_registry.append(p)
        p.start()
        c = tls_session(p, ca)
        try:
            assert c.authenticate_plain("kim@example.org", "kim-pw").status == "OK", c.dump()
            c.send(b'GETSCRIPT "s"\r\n')
            assert c.readline() == b"{%d}\r\n" % len(body), c.dump()
            assert be.paused.wait(IO_TIMEOUT), "the backend never paused"
            first = c.read_exact(split)
            r = admin(p, "kick", "--user", "kim@example.org")
            assert r.returncode == 0 and "1 session" in r.stdout, r
            # several drain_quiet periods with the literal half out: no BYE
            # inside it, no close
            try:
                extra = c.read_exact(len(c.buf) + 1, 1.5 * TIMEOUT_SCALE)
                pytest.fail("bytes in the pause: %r\n%s" % (extra, c.dump()))
            except socket.timeout:
                pass
            be.resume.set()
            rest = c.read_exact(len(body) - split + 2)
            assert first + rest == body + b"\r\n", "the literal came back altered"
            assert c.readline() == b'OK "Getscript completed."\r\n', c.dump()
            bye = read_bye_and_close(c)
            assert bye.status == "BYE", c.dump()
        finally:
            c.close()
    finally:
        be.close()
        if p is not None:
            p.cleanup()


# ---------------------------------------------------------------------------
# last: no secret of this module in the module postern's log
# ---------------------------------------------------------------------------


def test_zz_no_password_or_sasl_text_of_these_tests_in_the_log(sp):
    """The passwords sent here, raw and as the SASL PLAIN and LOGIN texts
    (base64) the clients sent, appear nowhere in the module postern's log
    (at log_level debug)."""
    log = sp.log()
    users = ["alice@example.org", "carol@example.org", "frank@other.test", "erin@other.test",
             harness.DOWN_USER, LIAR_USER]
    for u in users:
        pw = secret(u)
        for needle in (pw, sasl_plain(u, pw).decode(),
                       base64.b64encode(pw.encode()).decode()):
            assert needle not in log, "a secret of %s in the log" % u
    for pw in harness.WRONG_PASSWORDS[:1]:
        assert pw not in log and sasl_plain("alice@example.org", pw).decode() not in log
