"""The session postern's route rules end to end: each user is served by the
backend its rule names (IMAP and POP3), an exact user rule wins over a
domain rule, user names route without regard to case, pool users spread
over the pool and stay put, and a route map file sends its users where it
says (and a broken one is refused with its own line number).

Real clients -> the session's postern (conftest.py) -> mx1 and mx2; where a
user landed is read from the message fetched (its content names the backend)
and from that backend's own log."""

import re

import pytest

import harness
from harness import (EXPECTED_BACKEND, PASSWORDS, POOL_USERS, backend_of, fetch_body,
                     imap_fetch_first, log_offsets, login_seen, pop3_retr_first, raw_imap,
                     raw_pop3, tagged)


# ---------------------------------------------------------------------------
# Route rules in the config
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", sorted(EXPECTED_BACKEND))
def test_imap_users_are_served_by_the_backend_their_route_names(proxy, ca, backends, user):
    want = EXPECTED_BACKEND[user]
    since = log_offsets(backends)
    psince = proxy.log_size()
    body = imap_fetch_first(proxy, ca, user)
    assert body == backends[want].messages[user][0]
    assert login_seen(backends[want], "imap", user, since[want]), backends[want].log()[-3000:]
    for name, b in backends.items():
        if name != want:
            assert "user=<%s>" % user not in b.log()[since[name]:]
    assert proxy.wait_log(r'event=login\.ok .*user="%s".* backend=%s\b'
                          % (re.escape(user), want), since=psince), proxy.log()[psince:]


@pytest.mark.parametrize("user", sorted(EXPECTED_BACKEND))
def test_pop3_users_are_served_by_the_backend_their_route_names(proxy, ca, backends, user):
    want = EXPECTED_BACKEND[user]
    since = log_offsets(backends)
    body = pop3_retr_first(proxy, ca, user)
    assert body == backends[want].messages[user][0]
    assert login_seen(backends[want], "pop3", user, since[want]), backends[want].log()[-3000:]


def test_an_exact_user_rule_wins_over_the_domain_rule(proxy, ca, backends):
    user = "carol@example.org"  # example.org -> mx1, but carol -> mx2
    since = log_offsets(backends)
    body = imap_fetch_first(proxy, ca, user)
    assert backend_of(body, backends) == "mx2"
    assert login_seen(backends["mx2"], "imap", user, since["mx2"])
    assert "user=<%s>" % user not in backends["mx1"].log()[since["mx1"]:]


def test_routing_ignores_the_case_of_the_user_name(proxy, ca, backends):
    user = "carol@example.org"  # the exact rule sends her to mx2
    with raw_imap(proxy, ca) as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (user.upper(), PASSWORDS[user]))
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert backend_of(fetch_body(c, "a3"), backends) == "mx2"
    with raw_pop3(proxy, ca) as c:
        c.command("USER Carol@Example.ORG")
        assert c.command("PASS " + PASSWORDS[user]).startswith(b"+OK"), c.dump()
        assert c.command("RETR 1").startswith(b"+OK"), c.dump()
        body = b"\r\n".join(c.read_multiline()) + b"\r\n"
        assert backend_of(body, backends) == "mx2"


def test_pool_users_are_spread_over_the_pool_and_always_land_on_the_same_backend(
        proxy, ca, backends):
    home = {}
    for user in POOL_USERS:
        since = log_offsets(backends)
        seen = {backend_of(imap_fetch_first(proxy, ca, user), backends) for _ in range(2)}
        seen.add(backend_of(pop3_retr_first(proxy, ca, user), backends))
        assert len(seen) == 1, "%s landed on %s" % (user, seen)
        home[user] = seen.pop()
        assert login_seen(backends[home[user]], "imap", user, since[home[user]])
    assert set(home.values()) == {"mx1", "mx2"}, home


# ---------------------------------------------------------------------------
# A route map file
# ---------------------------------------------------------------------------


def test_a_route_map_file_sends_its_users_to_their_backends(make_postern, ca, backends, tmp_path):
    # erin@other.test routes to mx1 by the default rule; the map sends her to
    # mx2, and a named pool serves a whole domain from the map.
    m = tmp_path / "routes.map"
    m.write_text("# user and domain rules\nerin@other.test   mx2\n@other.test  pool:both\n")
    p = make_postern(extra='pools = ( { name = "both"; backends = [ "mx2" ]; } );\n'
                           'route_map = "%s";' % m)
    since = log_offsets(backends)
    assert backend_of(imap_fetch_first(p, ca, "erin@other.test"), backends) == "mx2"
    assert backend_of(pop3_retr_first(p, ca, "frank@other.test"), backends) == "mx2"
    assert login_seen(backends["mx2"], "imap", "erin@other.test", since["mx2"])
    assert "user=<erin@other.test>" not in backends["mx1"].log()[since["mx1"]:]
    # A broken map is refused with the map's own line number.
    bad = tmp_path / "bad.map"
    bad.write_text("ok@x.test mx1\nnobody@x.test nosuch\n")
    conf = tmp_path / "bad.conf"
    conf.write_text(p.config_text().replace(str(m), str(bad)))
    r = harness.run_postern("-t", "-c", str(conf))
    assert r.returncode == 1, r
    assert '%s:2: unknown backend "nosuch"' % bad in r.stderr, r.stderr
