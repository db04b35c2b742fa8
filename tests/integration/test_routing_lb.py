"""postern behind a load balancer, end to end: a real HAProxy sending PROXY
headers (the real client address logged and forwarded), hand-written v1 and
v2 headers from a trusted peer, a header split over several writes or in
one segment with the ClientHello, a v2 LOCAL header, and what is refused:
an untrusted peer whatever it sends, a trusted one without a valid header,
and a header on a listener that does not expect one.

How a test learns where a user landed: postern's `event=login.ok` line names
the backend, and the message the test fetches names the backend that stored
it (the harness writes per-backend content); the two must agree.  What a
backend saw (the client address it was told, whether it saw a login at all)
comes from that Dovecot's own log, with rport/lport added to its login line.
The users, routes, log readers and clients are in harness/routing.py; the
start_postern and make_backend fixtures in conftest.py.

Every socket operation has a timeout; every wait is a bounded poll of a log."""

import re
import struct
import time

import pytest

import harness
from harness import IO_TIMEOUT, HAProxy
from harness.routing import (HOST, PASSWORDS, POOL_USERS, PP2_SIG, BioImap, be, client_hello,
                             connect, dovecot_login, imap_q, login, postern_lines, pp_v1, pp_v2,
                             wait_closed, wait_postern)


# ===========================================================================
# fixtures
# ===========================================================================


@pytest.fixture
def make_haproxy(run_dir):
    made = []

    def make(target_port, send_proxy):
        h = HAProxy(target_port, send_proxy=send_proxy, parent_dir=run_dir)
        made.append(h)
        return h.start()

    yield make
    for h in made:
        h.cleanup()


# ===========================================================================
# Behind a load balancer: PROXY headers into postern
# ===========================================================================


@pytest.fixture
def lb(make_backend, start_postern):
    """One Dovecot "fx" (forward id + xclient) behind a postern that also
    has PROXY-protocol listeners (IMAP and POP3, implicit TLS) trusting only
    127.0.0.1/32.  Returns (dovecot, postern, imap_pp_port, pop3_pp_port)."""
    d = make_backend("fx")
    ls = [{"protocol": "imap", "tls": "implicit", "proxy_protocol": True,
           "trusted": ["127.0.0.1/32"]},
          {"protocol": "pop3", "tls": "implicit", "proxy_protocol": True,
           "trusted": ["127.0.0.1/32"]}]
    p = start_postern([be(d, forward=["id", "xclient"])], [{"default": True, "backend": "fx"}],
                     extra_listeners=ls)
    # Postern keeps copies of the listener dicts, with the ports it chose
    return d, p, p.extra_listeners[0]["port"], p.extra_listeners[1]["port"]


@pytest.mark.parametrize("send_proxy", ["v2", "v1"])
def test_behind_haproxy_postern_logs_and_forwards_the_real_client_address(
        lb, make_haproxy, send_proxy):
    d, p, imap_pp, pop3_pp = lb
    hi = make_haproxy(imap_pp, send_proxy)
    hp = make_haproxy(pop3_pp, send_proxy)
    user = POOL_USERS[7]

    since = d.log_size()
    r = login(p, "imap", user, port=hi.port, source="127.0.0.4")
    assert r.ok, r
    client = "127.0.0.4:%d" % r.local[1]
    assert r.log.get("client") == client, "login.ok: %s" % r.log
    start = wait_postern(p, r"event=session\.start cid=%s " % r.cid)
    assert start and start.get("client") == client, start
    got = dovecot_login(d, "imap", user, since)
    assert got is not None and got["rip"] == "127.0.0.4", got
    assert got["rport"] == str(r.local[1]), got

    r = login(p, "pop3", user, port=hp.port, source="127.0.0.4")
    assert r.ok, r
    assert r.log.get("client") == "127.0.0.4:%d" % r.local[1], r.log
    assert not postern_lines(p, "proxy.refused") and not postern_lines(p, "proxy.bad"), \
        p.log()[-2000:]


@pytest.mark.parametrize("header", ["v1", "v2", "v2-ipv6"])
def test_a_hand_written_proxy_header_from_a_trusted_peer_sets_the_client_address(lb, header):
    d, p, imap_pp, _ = lb
    user = POOL_USERS[8]
    if header == "v1":
        pre, want, ip = pp_v1("203.0.113.7", 5555, "192.0.2.1", 993), "203.0.113.7:5555", \
            "203.0.113.7"
    elif header == "v2":
        pre, want, ip = pp_v2("198.51.100.9", 6666, "192.0.2.1", 993), "198.51.100.9:6666", \
            "198.51.100.9"
    else:
        pre, want, ip = pp_v2("2001:db8::7", 7777, "2001:db8::1", 993), None, "2001:db8::7"
    since = d.log_size()
    r = login(p, "imap", user, port=imap_pp, preamble=pre)
    assert r.ok, r
    if want:
        assert r.log.get("client") == want, r.log
    else:
        assert "2001:db8::7" in r.log.get("client", "") and "7777" in r.log["client"], r.log
    got = dovecot_login(d, "imap", user, since)
    assert got is not None and got["rip"] == ip, got


def test_a_proxy_header_split_over_several_writes_is_reassembled(lb):
    d, p, imap_pp, _ = lb
    hdr = pp_v2("198.51.100.23", 2323, "192.0.2.1", 993)
    s = connect(imap_pp)
    try:
        for chunk in (hdr[:5], hdr[5:14], hdr[14:20], hdr[20:]):
            s.sendall(chunk)
            time.sleep(0.15)
        tls = harness.client_context(p.certs["ca"]).wrap_socket(s, server_hostname=HOST)
        tls.settimeout(IO_TIMEOUT)
        greeting = tls.recv(4096)
        assert greeting.startswith(b"* OK"), greeting
        tls.close()
    finally:
        s.close()
    start = wait_postern(p, r"event=session\.start [^\n]*client=198\.51\.100\.23:2323")
    assert start is not None, p.log()[-2000:]


def test_a_proxy_header_and_the_client_hello_in_one_segment_both_count(lb):
    """The bytes after the header (the ClientHello) belong to TLS."""
    d, p, imap_pp, _ = lb
    user = POOL_USERS[9]
    c = BioImap(imap_pp, p.certs["ca"], pp_v1("203.0.113.50", 5050, "192.0.2.1", 993))
    try:
        assert c.greeting.startswith(b"* OK"), c.greeting
        line = c.command("a1", "LOGIN %s %s" % (imap_q(user), imap_q(PASSWORDS[user])))
        assert line.startswith(b"a1 OK"), line
        c.command("a2", "LOGOUT")
    finally:
        c.close()
    ok = wait_postern(p, r'event=login\.ok [^\n]*user="%s"' % re.escape(user))
    assert ok and ok.get("client") == "203.0.113.50:5050", ok


def test_a_v2_local_header_keeps_the_balancers_own_address(lb):
    """PROXY v2 LOCAL (a balancer's health check): no client address, the
    connection is served with the socket's own."""
    d, p, imap_pp, _ = lb
    r = login(p, "imap", POOL_USERS[10], port=imap_pp, preamble=pp_v2(None, 0, None, 0,
                                                                       local=True))
    assert r.ok, r
    assert r.log.get("client") == "127.0.0.1:%d" % r.local[1], r.log


@pytest.mark.parametrize("send", ["nothing", "valid-v1", "valid-v2"])
def test_a_peer_outside_trusted_is_refused_whatever_it_sends(lb, send):
    d, p, imap_pp, _ = lb
    since = p.log_size()
    s = connect(imap_pp, source="127.0.0.5")
    local = s.getsockname()[1]
    try:
        if send == "valid-v1":
            s.sendall(pp_v1("203.0.113.99", 9999, "192.0.2.1", 993) + client_hello(p.certs["ca"]))
        elif send == "valid-v2":
            s.sendall(pp_v2("203.0.113.99", 9999, "192.0.2.1", 993) + client_hello(p.certs["ca"]))
        closed, got = wait_closed(s, 5.0)
    finally:
        s.close()
    assert closed, "an untrusted peer's connection stayed open (got %r)" % got[:200]
    assert not got.startswith(b"\x16"), "postern started TLS with an untrusted peer"
    ref = wait_postern(p, r"event=proxy\.refused ", since=since)
    assert ref is not None and ref.get("peer", "").startswith("127.0.0.5"), \
        p.log()[since:][-2000:]
    assert "203.0.113.99" not in p.log()[since:], "postern believed an untrusted header"
    # no session began for this connection (the harness's own port probes
    # of the other listeners may log theirs meanwhile)
    assert not [x for x in postern_lines(p, "session.start", since)
                if x.get("client", "").endswith(":%d" % local)
                or "203.0.113" in x.get("client", "")], p.log()[since:]


@pytest.mark.parametrize("garbage", ["text", "client-hello", "bad-v1-address",
                                     "v1-too-long", "v2-bad-version", "v1-bad-ports"])
def test_a_trusted_peer_that_sends_no_valid_header_is_closed(lb, garbage):
    d, p, imap_pp, _ = lb
    data = {
        "text": b"HELLO I AM NOT A PROXY HEADER\r\n",
        "client-hello": None,
        "bad-v1-address": b"PROXY TCP4 300.1.2.3 192.0.2.1 5555 993\r\n",
        "v1-too-long": b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
        "v2-bad-version": PP2_SIG + bytes([0x31, 0x11]) + struct.pack("!H", 12) + b"\0" * 12,
        "v1-bad-ports": b"PROXY TCP4 203.0.113.1 192.0.2.1 99999 993\r\n",
    }[garbage]
    if data is None:
        data = client_hello(p.certs["ca"])
    since = p.log_size()
    s = connect(imap_pp)
    local = s.getsockname()[1]
    try:
        s.sendall(data)
        closed, got = wait_closed(s, 5.0)
    finally:
        s.close()
    assert closed, "a bad header did not close the connection (got %r)" % got[:200]
    bad = wait_postern(p, r"event=proxy\.bad ", since=since)
    assert bad is not None, p.log()[since:][-2000:]
    # no session began for this connection (the harness's own port probes
    # of the other listeners may log theirs meanwhile)
    assert not [x for x in postern_lines(p, "session.start", since)
                if x.get("client", "").endswith(":%d" % local)
                or "203.0.113" in x.get("client", "")], p.log()[since:]


def test_a_listener_without_proxy_protocol_does_not_read_a_header(lb):
    """A PROXY header sent to an ordinary listener is just bytes that are not
    TLS: nobody gets to claim an address there."""
    d, p, _, _ = lb
    since = p.log_size()
    s = connect(p.imap_port)
    try:
        s.sendall(pp_v1("203.0.113.77", 7777, "192.0.2.1", 993) + client_hello(p.certs["ca"]))
        closed, got = wait_closed(s, 5.0)
    finally:
        s.close()
    assert closed, got[:200]
    time.sleep(0.3)
    assert "203.0.113.77" not in p.log()[since:], p.log()[since:]
