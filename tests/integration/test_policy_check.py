"""`postern -t` on policy configs: it accepts every policy group the policy
tests run with, rejects a bad policy setting naming its line, and names the
bad line of a protocols file.  Configs are written for the policy stack's
Dovecot ("pmx", in conftest.py) but no postern is started."""

import pytest

import harness
from harness import Postern
from harness.policy import (CONCURRENT_POLICY, ROUTES, STICKY_POLICY, acl_policy, limits_policy,
                            static_policy, throttle_policy)


# ---------------------------------------------------------------------------
# postern -t
# ---------------------------------------------------------------------------


def _config(certs, pmx, policy, state=None, extra=""):
    if state is not None:
        extra = "state = %s;\n%s" % (harness._q("lmdb:" + state), extra)
    return Postern(certs, [pmx], ROUTES, policy=policy, extra=extra).config_text()


def _check(tmp_path, text, name="p.conf"):
    path = tmp_path / name
    path.write_text(text)
    r = harness.run_postern("-t", "-c", str(path))
    return r.returncode, r.stdout + r.stderr, str(path)


def _line_of(text, needle):
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError("%r not in config" % needle)


def test_config_check_accepts_the_policy_configs_of_these_tests(certs, pmx, tmp_path, map_file,
                                                                 state_dir):
    configs = {
        "sticky": _config(certs, pmx, STICKY_POLICY, state=state_dir),
        "concurrent": _config(certs, pmx, CONCURRENT_POLICY),
        "static": _config(certs, pmx, static_policy("static", map_file)),
        "static-sticky": _config(certs, pmx, static_policy("sticky", map_file), state=state_dir),
        "limits": _config(certs, pmx, limits_policy(max_conn=3, max_sess=2)),
        "throttle": _config(certs, pmx, throttle_policy()),
        "acl": _config(certs, pmx, acl_policy(allow=["127.0.0.0/8"], deny=["127.0.0.9/32"])),
    }
    for name, text in configs.items():
        rc, out, _ = _check(tmp_path, text, name + ".conf")
        assert rc == 0, "%s config refused:\n%s\n--- config ---\n%s" % (name, out, text)


BAD_POLICIES = [
    # (what, policy text, the line the error must name, more config text)
    ("sticky without state", STICKY_POLICY, 'protocol_lock = "sticky"', ""),
    ("rules with protocol_lock off",
     'policy = {\n  protocol_lock = "off";\n'
     '  protocols = ( { domain = "x.test"; allow = ["pop3"]; } );\n};',
     "protocols = (", ""),
    ("an unknown protocol",
     'policy = {\n  protocol_lock = "static";\n'
     '  protocols_default = [ "imap", "smtp" ];\n};',
     "protocols_default", ""),
    ("an unknown lock mode", 'policy = {\n  protocol_lock = "sometimes";\n};',
     "protocol_lock", ""),
    ("delay_max not below timeouts.login",
     'policy = {\n  throttle = {\n    delay_base = "1s";\n    delay_max = "60s";\n  };\n};',
     'delay_max = "60s"', ""),
    ("a bad network", 'policy = {\n  deny = [ "127.0.0.1/33" ];\n};', "deny = [", ""),
    ("host bits beyond the prefix", 'policy = {\n  allow = [ "10.1.2.3/8" ];\n};',
     "allow = [", ""),
]


@pytest.mark.parametrize("what,policy,needle,extra", BAD_POLICIES,
                         ids=[b[0] for b in BAD_POLICIES])
def test_config_check_rejects_a_bad_policy_with_its_line_number(certs, pmx, tmp_path, what,
                                                                  policy, needle, extra):
    text = _config(certs, pmx, policy, extra=extra)
    rc, out, path = _check(tmp_path, text)
    assert rc == 1, "%s: accepted (exit %s):\n%s\n--- config ---\n%s" % (what, rc, out, text)
    n = _line_of(text, needle)
    assert "%s:%d:" % (path, n) in out, \
        "%s: no error for line %d:\n%s\n--- config ---\n%s" % (what, n, out, text)


def test_config_check_names_the_bad_line_of_a_protocols_file(certs, pmx, tmp_path):
    mp = tmp_path / "protocols.map"
    mp.write_text("good@x.test imap\nbad@x.test smtp\n@x.test imap pop3\n\n"
                  "good@x.test pop3\n")
    text = _config(certs, pmx, static_policy("static", str(mp)))
    rc, out, _ = _check(tmp_path, text)
    assert rc == 1, out
    for n in (2, 3, 5):  # bad protocol, text after the protocols, a duplicate
        assert "%s:%d:" % (mp, n) in out, "no error for line %d:\n%s" % (n, out)
    assert "%s:1:" % mp not in out and "%s:4:" % mp not in out, out
