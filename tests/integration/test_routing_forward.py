"""Forwarding the client's address from postern to the backends, end to end
against real Dovecot: none (the backend sees postern), IMAP ID, POP3
XCLIENT, both, a backend that does not trust postern, and PROXY v1 and v2
headers (with the TLS TLV) to the backend, whose health checks keep it up.

How a test learns where a user landed: postern's `event=login.ok` line names
the backend, and the message the test fetches names the backend that stored
it (the harness writes per-backend content); the two must agree.  What a
backend saw (the client address it was told, whether it saw a login at all)
comes from that Dovecot's own log, with rport/lport added to its login line.
The users, routes, log readers and clients are in harness/routing.py; the
start_postern and make_backend fixtures in conftest.py.

Every socket operation has a timeout; every wait is a bounded poll of a log."""

import time

import pytest

from harness.routing import POOL_USERS, be, dovecot_login, login, postern_lines


# ===========================================================================
# Forwarding the client's address to the backend
# ===========================================================================


@pytest.fixture
def fwd(make_backend, start_postern):
    """Factory: one Dovecot "fx" (Dovecot() options) behind a postern whose
    only route sends everyone there with backend settings bopts."""

    def make(dovecot=None, **bopts):
        d = make_backend("fx", **(dovecot or {}))
        p = start_postern([be(d, **bopts)], [{"default": True, "backend": "fx"}])
        return d, p

    return make


def _check_forwarded(d, p, proto, user, source, flags=()):
    since = d.log_size()
    r = login(p, proto, user, source=source)
    assert r.ok, r
    assert r.log.get("client") == "%s:%d" % r.local, r.log
    got = dovecot_login(d, proto, user, since)
    assert got is not None, d.log()[since:][-2000:]
    assert got["rip"] == source, "%s: the backend saw rip=%s, not the client %s: %s" % (
        proto, got["rip"], source, got)
    assert got["rport"] == str(r.local[1]), got
    for f in flags:
        assert f in got["flags"], got
    return r, got


def test_forward_none_the_backend_sees_the_proxys_address(fwd):
    d, p = fwd()
    for proto in ("imap", "pop3"):
        since = d.log_size()
        r = login(p, proto, POOL_USERS[0], source="127.0.0.3")
        assert r.ok and r.log.get("client", "").startswith("127.0.0.3:"), r
        got = dovecot_login(d, proto, POOL_USERS[0], since)
        assert got is not None and got["rip"] == "127.0.0.1", got


def test_forward_id_tells_dovecot_the_client_address_port_and_session(fwd):
    d, p = fwd(forward="id")
    r, got = _check_forwarded(d, p, "imap", POOL_USERS[0], "127.0.0.3")
    # x-connected-ip/port: the address the client connected to (postern's)
    assert got["lip"] == "127.0.0.1" and got["lport"] == str(p.imap_port), got
    # x-session-id: postern's connection id, so both logs join up
    assert got["session"] == r.cid, (got, r.cid)
    # ID is IMAP only: POP3 still comes from the proxy
    since = d.log_size()
    r = login(p, "pop3", POOL_USERS[0], source="127.0.0.3")
    assert r.ok, r
    got = dovecot_login(d, "pop3", POOL_USERS[0], since)
    assert got is not None and got["rip"] == "127.0.0.1", got


def test_forward_xclient_tells_dovecot_pop3_the_client_address_port_and_session(fwd):
    """Dovecot offers XCLIENT to trusted networks (2.3 says so in its greeting,
    `+OK [XCLIENT] ...`)."""
    d, p = fwd(forward="xclient")
    r, got = _check_forwarded(d, p, "pop3", POOL_USERS[1], "127.0.0.3")
    assert got["session"] == r.cid, (got, r.cid)
    assert not postern_lines(p, "backend.forward"), p.log()[-2000:]


def test_forward_id_and_xclient_together_cover_both_protocols(fwd):
    d, p = fwd(forward=["id", "xclient"])
    _check_forwarded(d, p, "imap", POOL_USERS[2], "127.0.0.3")
    _check_forwarded(d, p, "pop3", POOL_USERS[2], "127.0.0.2")


def test_forwarding_to_a_backend_that_does_not_trust_postern_still_logs_in(fwd):
    """Without login_trusted_networks Dovecot ignores the ID fields and
    offers no XCLIENT: the login must still work (from the proxy's address)."""
    d, p = fwd(dovecot={"trusted_networks": None}, forward=["id", "xclient"])
    for proto in ("imap", "pop3"):
        since = d.log_size()
        r = login(p, proto, POOL_USERS[3], source="127.0.0.3")
        assert r.ok, r
        got = dovecot_login(d, proto, POOL_USERS[3], since)
        assert got is not None and got["rip"] == "127.0.0.1", got


def test_forward_proxy_v1_header_gives_dovecot_the_client_address(fwd):
    d, p = fwd(dovecot={"haproxy": True}, forward="proxy-v1")
    _check_forwarded(d, p, "imap", POOL_USERS[4], "127.0.0.3")
    _check_forwarded(d, p, "pop3", POOL_USERS[4], "127.0.0.2")


def test_forward_proxy_v2_header_carries_the_client_address_and_the_tls_tlv(fwd):
    """The v2 header's SSL TLV tells Dovecot the client used TLS: a Dovecot
    that trusts no network for logins and refuses plaintext auth on
    non-secure connections takes the login and logs it "secured"."""
    d, p = fwd(dovecot={"haproxy": True, "trusted_networks": None,
                        "disable_plaintext_auth": True}, forward="proxy-v2")
    _check_forwarded(d, p, "imap", POOL_USERS[5], "127.0.0.3", flags=("secured",))
    _check_forwarded(d, p, "pop3", POOL_USERS[5], "127.0.0.2", flags=("secured",))


@pytest.mark.parametrize("version", ["proxy-v1", "proxy-v2"])
def test_health_checks_of_a_proxy_protocol_backend_keep_it_up(fwd, version):
    """A Dovecot haproxy listener waits for a PROXY header before its
    greeting: the checker must send one too, or it marks a healthy backend
    down."""
    d, p = fwd(dovecot={"haproxy": True}, forward=version, check_interval="1s",
               check_timeout="1s", fall=2, rise=2)
    time.sleep(5)
    assert not postern_lines(p, "backend.down"), (
        "a healthy %s backend was marked down:\n%s" % (version, p.log()[-2500:]))
    r = login(p, "imap", POOL_USERS[6], source="127.0.0.3")
    assert r.ok, r
