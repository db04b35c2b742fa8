"""An sslscan of every TLS listener of the STARTTLS postern (IMAPS, POP3S,
IMAP STARTTLS, POP3 STLS): only TLS 1.2 and 1.3, only AEAD forward-secret
ciphers; and a weak openssl s_server to show the checks can fail."""

import re
import shutil

import pytest

import harness


# ---------------------------------------------------------------------------
# sslscan
# ---------------------------------------------------------------------------

WEAK = re.compile(r"NULL|EXPORT|EXP-|RC4|ADH|AECDH|anon|DES|MD5|IDEA|SEED|PSK|SRP")
GOOD_TLS12 = re.compile(r"^(ECDHE-(RSA|ECDSA)|DHE-RSA)-(AES(128|256)-GCM-SHA(256|384)|"
                        r"CHACHA20-POLY1305)$")
GOOD_TLS13 = re.compile(r"^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256|"
                        r"AES_128_CCM_SHA256)$")


def parse_sslscan(text):
    """{"protocols": {"TLSv1.2": "enabled", ...}, "ciphers": [(version, name)]}"""
    protocols = dict(re.findall(r"^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)\s*$",
                                text, re.M))
    ciphers = re.findall(r"^(?:Accepted|Preferred)\s+(\S+)\s+\d+\s+bits\s+(\S+)", text, re.M)
    return {"protocols": protocols, "ciphers": ciphers}


def sslscan_problems(text):
    """Everything wrong with a scan, as a list of strings (empty: good)."""
    r = parse_sslscan(text)
    problems = []
    if set(r["protocols"]) != {"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"}:
        problems.append("could not read the protocol list: %r" % r["protocols"])
    for proto in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        if r["protocols"].get(proto) != "disabled":
            problems.append("%s is %s" % (proto, r["protocols"].get(proto)))
    if r["protocols"].get("TLSv1.2") != "enabled" and r["protocols"].get("TLSv1.3") != "enabled":
        problems.append("neither TLS 1.2 nor 1.3 is enabled")
    if not r["ciphers"]:
        problems.append("no accepted cipher found in the output")
    for version, name in r["ciphers"]:
        if WEAK.search(name):
            problems.append("weak cipher accepted: %s %s" % (version, name))
        elif version == "TLSv1.2" and not GOOD_TLS12.match(name):
            problems.append("TLS 1.2 cipher without forward secrecy or AEAD: %s" % name)
        elif version == "TLSv1.3" and not GOOD_TLS13.match(name):
            problems.append("unexpected TLS 1.3 suite: %s" % name)
        elif version not in ("TLSv1.2", "TLSv1.3"):
            problems.append("cipher accepted with %s: %s" % (version, name))
    return problems


SCANS = {
    "imaps": (lambda p: p.imap_port, []),
    "pop3s": (lambda p: p.pop3_port, []),
    "imap-starttls": (lambda p: p.imap_starttls_port, ["--starttls-imap"]),
    "pop3-stls": (lambda p: p.pop3_starttls_port, ["--starttls-pop3"]),
}


def _need_sslscan():
    if shutil.which("sslscan") is None:
        pytest.fail("sslscan is not installed (Debian package sslscan; tests/deps.sh)")


@pytest.mark.parametrize("listener", sorted(SCANS))
def test_sslscan_finds_only_modern_protocols_and_aead_forward_secret_ciphers(
        stls_proxy, listener):
    _need_sslscan()
    port_of, args = SCANS[listener]
    rc, text = harness.sslscan("127.0.0.1:%d" % port_of(stls_proxy), args)
    assert rc == 0, text
    r = parse_sslscan(text)
    assert r["protocols"].get("TLSv1.2") == "enabled", text
    assert r["protocols"].get("TLSv1.3") == "enabled", text
    assert any(v == "TLSv1.2" for v, _ in r["ciphers"]), text
    assert any(v == "TLSv1.3" for v, _ in r["ciphers"]), text
    problems = sslscan_problems(text)
    assert not problems, "\n".join(problems) + "\n\n" + text


def test_the_sslscan_checks_catch_a_weak_server(certs, tmp_path):
    """The checks above can fail: an openssl s_server with TLS 1.0 and every
    cipher fails them, for the reasons expected."""
    _need_sslscan()
    srv = harness.OpensslServer(["-cert", certs["rsa_cert"], "-key", certs["rsa_key"],
                                 "-cipher", "ALL:eNULL:@SECLEVEL=0"]).start()
    try:
        rc, text = harness.sslscan("127.0.0.1:%d" % srv.port)
    finally:
        srv.stop()
    problems = "\n".join(sslscan_problems(text))
    assert "TLSv1.0 is enabled" in problems, text
    assert "TLSv1.1 is enabled" in problems, text
    assert re.search(r"weak cipher accepted: \S+ (ADH|AECDH)-", problems), problems
    assert re.search(r"TLS 1.2 cipher without forward secrecy or AEAD: (ECDHE-RSA-)?AES\d+-SHA",
                     problems), problems
