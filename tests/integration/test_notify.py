"""systemd's Type=notify without systemd: a test binds the AF_UNIX datagram
socket that $NOTIFY_SOCKET names, as the service manager would, starts
postern with that variable and reads what sd_notify(3) sends: READY=1 once
the listeners accept, RELOADING=1 then READY=1 around a SIGHUP reload (also
a failed one: the old configuration keeps serving), STOPPING=1 at SIGTERM
and SIGINT.  Every datagram must come from postern's own PID (systemd's
NotifyAccess=main drops the others)."""

import imaplib
import os
import signal
import ssl

import pytest

import harness
from harness import IO_TIMEOUT, PASSWORDS, ROUTES, NotifySocket, Postern

HOST = "127.0.0.1"


@pytest.fixture
def notified(certs, mx1, mx2, dead_backend, postern_registry, run_dir, monkeypatch):
    """(postern started with NOTIFY_SOCKET, its NotifySocket)."""
    p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir)
    postern_registry.append(p)
    # AF_UNIX paths are short (108 bytes): a directory of its own under run_dir.
    d = os.path.join(run_dir, "n%d" % os.getpid())
    os.makedirs(d, exist_ok=True)
    n = NotifySocket(d, ports=[x["port"] for x in p.listeners()])
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)  # postern inherits it
    try:
        p.start()
        monkeypatch.delenv("NOTIFY_SOCKET")
        yield p, n
    finally:
        p.cleanup()
        n.close()
        try:
            os.unlink(n.path)
        except FileNotFoundError:
            pass


def test_ready_comes_once_the_listeners_accept(notified, ca):
    p, n = notified
    ready = n.wait_for("READY")
    assert len(ready) == 1, n.messages
    _t, pid, fields, accepted = ready[0]
    assert pid == p.proc.pid, "READY=1 must come from postern's main PID"
    assert accepted, "READY=1 came before every listener accepted"
    assert n.states() == ["READY"]
    # and a real login works at that point
    ctx = ssl.create_default_context(cafile=ca)
    with imaplib.IMAP4_SSL(HOST, p.imap_port, ssl_context=ctx, timeout=IO_TIMEOUT) as c:
        c.login("alice@example.org", PASSWORDS["alice@example.org"])
        c.logout()


def test_sighup_sends_reloading_then_ready(notified):
    p, n = notified
    assert n.wait_for("READY")
    result, _text = p.reload()
    assert result == "ok"
    assert len(n.wait_for("READY", count=2)) == 2, n.messages
    assert n.states() == ["READY", "RELOADING", "READY"]
    reloading = n.wait_for("RELOADING")[0]
    assert reloading[1] == p.proc.pid
    assert int(reloading[2]["MONOTONIC_USEC"]) > 0


def test_a_failed_reload_still_ends_with_ready(notified):
    p, n = notified
    assert n.wait_for("READY")
    p.extra = "no_such_setting = 1;"
    p.write_config()
    result, _text = p.reload()
    assert result == "failed"
    assert len(n.wait_for("READY", count=2)) == 2, n.messages
    assert n.states() == ["READY", "RELOADING", "READY"]
    assert p.running()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_send_stopping(notified, sig):
    p, n = notified
    assert n.wait_for("READY")
    os.kill(p.proc.pid, sig)
    stopping = n.wait_for("STOPPING")
    assert len(stopping) == 1, n.messages
    assert stopping[0][1] == p.proc.pid
    assert p.proc.wait(timeout=30 * harness.TIMEOUT_SCALE) == 0
    assert n.states() == ["READY", "STOPPING"]


def test_without_notify_socket_nothing_changes(make_postern, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    p = make_postern()
    assert p.running()
    assert "notify" not in p.log().lower()
