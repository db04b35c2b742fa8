"""postern's address ACLs (deny, allow, deny winning over allow), and behind a
load balancer: the ACL, the limits and the throttle all applying to the
client address from the PROXY header, not the balancer's.

Real clients (imaplib, poplib, hand-written IMAP/POP3 over TLS, from
distinct 127.0.0.x source addresses) -> a postern started per test with its
own policy group (the `start` fixture) -> one real Dovecot for this module
("pmx").  Users, policy groups and clients: harness/policy.py; fixtures:
conftest.py."""

import re

import harness
from harness import (IMAP_ACL_BYE, IMAP_AUTH_FAILED, IMAP_THROTTLED, IMAP_TOO_MANY_CONNS,
                     POP3_ACL_ERR, RawImap, RawPop3, _line, imap_login, pop3_login, q)
from harness.policy import PASSWORDS, WRONG, acl_policy, refused_at_connect


# ---------------------------------------------------------------------------
# ACL
# ---------------------------------------------------------------------------


def test_a_denied_address_is_refused_after_tls_others_are_served(start, ca, pmx):
    p = start(acl_policy(deny=["127.0.0.2/32"]))
    first, rest = refused_at_connect(p.imap_port, ca, "imap", source="127.0.0.2")
    assert first == IMAP_ACL_BYE and rest == b"", (first, rest)
    first, rest = refused_at_connect(p.pop3_port, ca, "pop3", source="127.0.0.2")
    assert first == POP3_ACL_ERR and rest == b"", (first, rest)
    assert re.search(r'event=policy\.deny\b[^\n]*client=127\.0\.0\.2[^\n]*verdict=acl',
                     p.log()), harness._tail(p.log())
    assert imap_login(p, ca, "acl@example.org", source="127.0.0.1").ok
    assert pop3_login(p, ca, "acl@example.org", source="127.0.0.3").ok


def test_only_allowed_addresses_are_served(start, ca, pmx):
    p = start(acl_policy(allow=["127.0.0.1/32"]))
    first, rest = refused_at_connect(p.imap_port, ca, "imap", source="127.0.0.3")
    assert first == IMAP_ACL_BYE and rest == b"", (first, rest)
    first, rest = refused_at_connect(p.pop3_port, ca, "pop3", source="127.0.0.3")
    assert first == POP3_ACL_ERR and rest == b"", (first, rest)
    assert imap_login(p, ca, "acl@example.org", source="127.0.0.1").ok
    assert pop3_login(p, ca, "acl@example.org", source="127.0.0.1").ok


def test_deny_wins_over_allow(start, ca, pmx):
    p = start(acl_policy(allow=["127.0.0.0/8"], deny=["127.0.0.9/32"]))
    first, _ = refused_at_connect(p.imap_port, ca, "imap", source="127.0.0.9")
    assert first == IMAP_ACL_BYE, first
    assert imap_login(p, ca, "acl@example.org", source="127.0.0.10").ok


# ---------------------------------------------------------------------------
# behind a load balancer: the policies see the client of the PROXY header
# ---------------------------------------------------------------------------


def _pp(src, port):
    return b"PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (src.encode(), port)


def test_acl_limits_and_throttle_apply_to_the_client_address_from_the_proxy_header(
        start, ca, pmx):
    policy = ('policy = {\n'
              '  deny = [ "192.0.2.66/32" ];\n'
              '  max_connections_per_ip = 2;\n'
              '  throttle = { ip_user_limit = 2; ip_limit = 100; delay_base = "0"; '
              'delay_max = "0"; };\n'
              '};')
    lb = [{"protocol": "imap", "tls": "implicit", "proxy_protocol": True,
           "trusted": ["127.0.0.0/8"]},
          {"protocol": "pop3", "tls": "implicit", "proxy_protocol": True,
           "trusted": ["127.0.0.0/8"]}]
    p = start(policy, extra_listeners=lb)
    iport, pport = p.extra_listeners[0]["port"], p.extra_listeners[1]["port"]
    user = "acl@example.org"

    def via(port, src, proto="imap"):
        cls = RawImap if proto == "imap" else RawPop3
        return cls(port, ca, preamble=_pp(src, port))

    # the ACL: the denied client, though the load balancer's address is fine
    c = via(iport, "192.0.2.66")
    try:
        assert _line(c.greeting) == IMAP_ACL_BYE, c.dump()
    finally:
        c.close()
    c = via(pport, "192.0.2.66", "pop3")
    try:
        assert _line(c.greeting) == POP3_ACL_ERR, c.dump()
    finally:
        c.close()
    assert re.search(r'event=policy\.deny\b[^\n]*client=192\.0\.2\.66\b[^\n]*verdict=acl',
                     p.log()), harness._tail(p.log())

    # the per-address limit counts each client, not the load balancer
    held = []
    try:
        for _ in range(2):
            held.append(via(iport, "198.51.100.1"))
            assert held[-1].greeting.startswith(b"* OK"), held[-1].dump()
        c = via(iport, "198.51.100.1")
        try:
            assert _line(c.greeting) == IMAP_TOO_MANY_CONNS, c.dump()
        finally:
            c.close()
        for src in ("198.51.100.2", "198.51.100.3"):
            held.append(via(iport, src))
            assert held[-1].greeting.startswith(b"* OK"), held[-1].dump()
        assert imap_login(p, ca, user).ok  # direct, from 127.0.0.1
    finally:
        for c in held:
            c.close()

    # the throttle keys on the client too
    for i in range(2):
        with via(iport, "203.0.113.5") as c:
            line, _ = c.command("a1", "LOGIN %s %s" % (q(user), q(WRONG % i)))
            assert _line(line) == IMAP_AUTH_FAILED, c.dump()
    with via(iport, "203.0.113.5") as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (q(user), q(PASSWORDS[user])))
        assert _line(line) == IMAP_THROTTLED, c.dump()
    with via(iport, "203.0.113.6") as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (q(user), q(PASSWORDS[user])))
        assert line.startswith(b"a1 OK"), c.dump()
