"""TLS session resumption through postern: TLS 1.2 tickets and session IDs
and TLS 1.3 on one postern (IMAPS and POP3S), posterns sharing a ticket key
file (and its second key) resuming each other's sessions while different
keys do not, and a chain of reconnects resumed on either worker."""

import os
import re
import socket
import ssl
import time

import pytest

from harness import IO_TIMEOUT, ctx_for, s_client, session_kind

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------
# Session resumption
# ---------------------------------------------------------------------------

RESUME_VERSIONS = {
    "tls12-ticket": ["-tls1_2"],
    "tls12-session-id": ["-tls1_2", "-no_ticket"],
    "tls13": ["-tls1_3"],
}


def _resume(port_a, port_b, ca, args, tmp_path, wait_for=rb"\* OK"):
    """A full handshake on port_a saving the session, then one on port_b
    offering it.  Returns (first kind, second kind, second output)."""
    sess = str(tmp_path / ("sess-%d-%d" % (port_a, time.monotonic_ns())))
    common = list(args) + ["-CAfile", ca, "-verify_return_error", "-noservername"]
    rc, out1 = s_client(port_a, common + ["-sess_out", sess], wait_for=wait_for)
    k1, v1 = session_kind(out1)
    assert os.path.exists(sess) and os.path.getsize(sess) > 0, \
        "s_client saved no session:\n" + out1
    rc, out2 = s_client(port_b, common + ["-sess_in", sess], wait_for=wait_for)
    k2, v2 = session_kind(out2)
    assert v1 == v2, (out1, out2)
    return k1, k2, out2


@pytest.mark.parametrize("version", sorted(RESUME_VERSIONS))
def test_a_session_is_resumed_on_the_same_postern(stls_proxy, ca, tmp_path, version):
    k1, k2, out = _resume(stls_proxy.imap_port, stls_proxy.imap_port, ca,
                          RESUME_VERSIONS[version], tmp_path)
    assert k1 == "New"
    assert k2 == "Reused", out


def test_a_pop3s_session_is_resumed_too(stls_proxy, ca, tmp_path):
    k1, k2, out = _resume(stls_proxy.pop3_port, stls_proxy.pop3_port, ca, ["-tls1_3"],
                          tmp_path, wait_for=rb"\+OK")
    assert (k1, k2) == ("New", "Reused"), out


def _key_file(path, keys):
    with open(path, "wb") as f:
        for k in keys:
            assert len(k) == 80
            f.write(k)
    os.chmod(path, 0o600)
    return str(path)


@pytest.fixture
def ticket_keys(tmp_path):
    k1, k2 = os.urandom(80), os.urandom(80)
    return {
        "k1": _key_file(tmp_path / "k1.key", [k1]),
        "k1_copy": _key_file(tmp_path / "k1-copy.key", [k1]),
        "k2_then_k1": _key_file(tmp_path / "k2k1.key", [k2, k1]),
        "k2": _key_file(tmp_path / "k2.key", [k2]),
    }


TICKET_VERSIONS = {"tls12": ["-tls1_2"], "tls13": ["-tls1_3"]}


@pytest.mark.parametrize("version", sorted(TICKET_VERSIONS))
def test_posterns_sharing_a_ticket_key_file_resume_each_others_sessions(
        make_postern, ca, ticket_keys, tmp_path, version):
    a = make_postern(tls_options={"ticket_key_file": ticket_keys["k1"]})
    b = make_postern(tls_options={"ticket_key_file": ticket_keys["k1_copy"]})
    k1, k2, out = _resume(a.imap_port, b.imap_port, ca, TICKET_VERSIONS[version], tmp_path)
    assert (k1, k2) == ("New", "Reused"), out
    # and the other way round
    k1, k2, out = _resume(b.imap_port, a.imap_port, ca, TICKET_VERSIONS[version], tmp_path)
    assert (k1, k2) == ("New", "Reused"), out


@pytest.mark.parametrize("version", sorted(TICKET_VERSIONS))
def test_a_ticket_under_the_second_key_of_the_file_is_still_accepted(
        make_postern, ca, ticket_keys, tmp_path, version):
    old = make_postern(tls_options={"ticket_key_file": ticket_keys["k1"]})
    new = make_postern(tls_options={"ticket_key_file": ticket_keys["k2_then_k1"]})
    k1, k2, out = _resume(old.imap_port, new.imap_port, ca, TICKET_VERSIONS[version],
                          tmp_path)
    assert (k1, k2) == ("New", "Reused"), out


@pytest.mark.parametrize("version", sorted(TICKET_VERSIONS))
def test_posterns_with_different_ticket_keys_do_not_resume_each_others_sessions(
        make_postern, ca, ticket_keys, tmp_path, version):
    a = make_postern(tls_options={"ticket_key_file": ticket_keys["k1"]})
    b = make_postern(tls_options={"ticket_key_file": ticket_keys["k2"]})
    c = make_postern()  # keys of its own
    for x, y in ((a, b), (a, c), (c, a)):
        k1, k2, out = _resume(x.imap_port, y.imap_port, ca, TICKET_VERSIONS[version],
                              tmp_path)
        assert (k1, k2) == ("New", "New"), out
    # each still resumes its own sessions
    for x in (a, b, c):
        k1, k2, out = _resume(x.imap_port, x.imap_port, ca, TICKET_VERSIONS[version],
                              tmp_path)
        assert (k1, k2) == ("New", "Reused"), out


def _epoll_watching(pid, port, client_port):
    """The epoll instance (one per worker loop) that watches postern's end of
    the connection from 127.0.0.1:client_port to port: its fd number in
    postern, or None.  Found through /proc: the socket's inode, the fd that
    holds it, and the epoll fdinfo that lists that fd."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            x = line.split()
            if (int(x[1].split(":")[1], 16) == port
                    and int(x[2].split(":")[1], 16) == client_port):
                inode = x[9]
    if inode is None:
        return None
    fds, epolls = {}, []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        fds[link] = int(fd)
        if link == "anon_inode:[eventpoll]":
            epolls.append(int(fd))
    sock = fds.get("socket:[%s]" % inode)
    for ep in epolls:
        with open("/proc/%d/fdinfo/%d" % (pid, ep)) as f:
            if re.search(r"^tfd:\s+%d\s" % sock, f.read(), re.M):
                return ep
    return None


RESUME_CHAIN = {
    # TLS 1.3: a client uses each ticket once (RFC 8446 §C.4, as OpenSSL's
    # own client and browsers do), so every connection must hand out a new one
    "tls13": (ssl.TLSVersion.TLSv1_3, True),
    # TLS 1.2: a session (ticket) may be offered again and again
    "tls12": (ssl.TLSVersion.TLSv1_2, False),
}


@pytest.mark.parametrize("version", sorted(RESUME_CHAIN))
def test_every_reconnect_resumes_the_previous_connections_session_on_either_worker(
        make_postern, ca, version):
    tls_version, single_use = RESUME_CHAIN[version]
    p = make_postern(workers=2, log_level="warn")
    ctx = ctx_for(ca)
    ctx.minimum_version = ctx.maximum_version = tls_version
    sess, kinds, workers = None, [], []
    # At least ten reconnects; more until both workers have served some
    # (SO_REUSEPORT spreads connections by their address hash).
    while len(kinds) < 41 and (len(kinds) < 11 or len(set(workers)) < 2):
        raw = socket.create_connection((HOST, p.imap_port), timeout=IO_TIMEOUT)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                chunk = s.recv(512)
                assert chunk, "connection %d closed before the greeting" % len(kinds)
                greeting += chunk
            assert greeting.startswith(b"* OK"), greeting
            kinds.append("resumed" if s.session_reused else "full")
            workers.append(_epoll_watching(p.proc.pid, p.imap_port, s.getsockname()[1]))
            # TLS 1.3 tickets come after the handshake, before the greeting:
            # s.session is now the newest one the server sent.
            new = s.session
            if single_use and sess is not None and new is not None and new.id == sess.id:
                new = None  # no fresh ticket: the one just used is spent
            sess = new
    assert None not in workers, workers
    assert len(set(workers)) == 2, \
        "all %d connections went to one worker (epoll %s)" % (len(kinds), workers)
    assert kinds[0] == "full"
    assert kinds[1:] == ["resumed"] * (len(kinds) - 1), \
        "handshakes in order: %s; workers (epoll fd) in order: %s" % (kinds, workers)
