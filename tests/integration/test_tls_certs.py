"""The certificates postern's listeners serve: chosen by SNI (wildcards, the
default set, a listener's own set) and by the client's key type or TLS 1.2
cipher, the minimum TLS version, and SIGHUP rotating a certificate while
open sessions keep working (and keeping the old one when the new key does
not match).  Checked with openssl s_client and Python's ssl."""

import imaplib
import os
import re
import shutil
import socket
import ssl

import pytest

import harness
from harness import (IO_TIMEOUT, PASSWORDS, ROUTES, Postern, RawImap, RestartingPostern, ctx_for,
                     der_of, fetch_body, imap_quote, pem_to_der, sc_cert, shutdown, tagged)

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sni_certs(certs, tls_dir):
    """Server certificates signed by the test CA, for SNI:
    a_rsa, a_ecdsa: CN mail.a.test, SAN DNS:mail.a.test (the default set)
    b_rsa, b_ecdsa: CN star.b.test, SAN DNS:*.b.test, DNS:pop.b-mail.test
    c: CN listener.c.test, SAN DNS:listener.c.test (a listener's own set)."""
    d = os.path.join(tls_dir, "sni")
    mk = harness.make_server_cert
    return {
        "a_rsa": mk(d, "a-rsa", certs, "mail.a.test", dns=["mail.a.test"], kind="rsa"),
        "a_ecdsa": mk(d, "a-ecdsa", certs, "mail.a.test", dns=["mail.a.test"], kind="ecdsa"),
        "b_rsa": mk(d, "b-rsa", certs, "star.b.test", dns=["*.b.test", "pop.b-mail.test"],
                    kind="rsa"),
        "b_ecdsa": mk(d, "b-ecdsa", certs, "star.b.test",
                      dns=["*.b.test", "pop.b-mail.test"], kind="ecdsa"),
        "c": mk(d, "c", certs, "listener.c.test", dns=["listener.c.test"], kind="rsa"),
    }


@pytest.fixture(scope="module")
def _sni_holder(certs, sni_certs, mx1, mx2, dead_backend, postern_registry, run_dir):
    s = sni_certs
    h = RestartingPostern(lambda: Postern(
        certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir, starttls=True,
        certificates=[s["a_rsa"], s["a_ecdsa"], s["b_rsa"], s["b_ecdsa"]],
        extra_listeners=[{"protocol": "imap", "tls": "implicit", "name": "own-certs",
                          "certificates": [s["c"]]}]), postern_registry)
    yield h
    h.close()


@pytest.fixture
def sni_proxy(_sni_holder):
    yield from _sni_holder.checked(pytest.fail)


# ---------------------------------------------------------------------------
# Certificates chosen by SNI
# ---------------------------------------------------------------------------

# servername -> (which certificates may come back, the subject's CN)
SNI_CASES = {
    "mail.a.test": (("a_rsa", "a_ecdsa"), "mail.a.test"),
    "MAIL.A.TEST": (("a_rsa", "a_ecdsa"), "mail.a.test"),
    "x.b.test": (("b_rsa", "b_ecdsa"), "star.b.test"),
    "imap.b.test": (("b_rsa", "b_ecdsa"), "star.b.test"),
    "pop.b-mail.test": (("b_rsa", "b_ecdsa"), "star.b.test"),
}


@pytest.mark.parametrize("servername", sorted(SNI_CASES))
def test_sni_selects_the_certificate_whose_san_names_the_server(
        sni_proxy, ca, sni_certs, servername):
    kinds, cn = SNI_CASES[servername]
    subject, der, out = sc_cert(sni_proxy.imap_port, ca, servername=servername)
    assert "CN = %s" % cn in subject, out
    assert der in [der_of(sni_certs[k]) for k in kinds], out
    assert re.search(r"Verify return code: 0 \(ok\)", out), out


@pytest.mark.parametrize("servername", [None, "nosuch.test", "a.x.b.test", "b.test"],
                         ids=["no-sni", "unknown", "two-labels-under-wildcard", "wildcard-base"])
def test_no_sni_or_an_unknown_name_gets_the_first_certificate(
        sni_proxy, ca, sni_certs, servername):
    subject, der, out = sc_cert(sni_proxy.imap_port, ca, servername=servername,
                                verify=servername is None)
    assert "CN = mail.a.test" in subject, out
    assert der in (der_of(sni_certs["a_rsa"]), der_of(sni_certs["a_ecdsa"])), out


def test_sni_works_on_pop3s_and_after_imap_starttls_and_pop3_stls(sni_proxy, ca, sni_certs):
    b = (der_of(sni_certs["b_rsa"]), der_of(sni_certs["b_ecdsa"]))
    subject, der, out = sc_cert(sni_proxy.pop3_port, ca, servername="x.b.test",
                                wait_for=rb"\+OK")
    assert "CN = star.b.test" in subject and der in b, out
    subject, der, out = sc_cert(sni_proxy.imap_starttls_port, ca, servername="x.b.test",
                                args=["-starttls", "imap", "-crlf"],
                                wait_for=rb"Verify return code", send=b"z LOGOUT\r\n")
    assert "CN = star.b.test" in subject and der in b, out
    subject, der, out = sc_cert(sni_proxy.pop3_starttls_port, ca, servername="x.b.test",
                                args=["-starttls", "pop3", "-crlf"],
                                wait_for=rb"Verify return code", send=b"QUIT\r\n")
    assert "CN = star.b.test" in subject and der in b, out


@pytest.mark.parametrize("servername", [None, "mail.a.test", "listener.c.test"])
def test_a_listener_with_its_own_certificates_serves_only_those(
        sni_proxy, ca, sni_certs, servername):
    port = sni_proxy.extra_listeners[0]["port"]
    subject, der, out = sc_cert(port, ca, servername=servername, verify=False)
    assert "CN = listener.c.test" in subject, out
    assert der == der_of(sni_certs["c"]), out
    # and it verifies for its own name
    subject, der, out = sc_cert(port, ca, servername="listener.c.test")
    assert re.search(r"Verify return code: 0 \(ok\)", out), out


def test_the_listener_certificates_serve_a_real_login(sni_proxy, ca, mx1):
    user = "alice@example.org"
    port = sni_proxy.extra_listeners[0]["port"]
    with RawImap(port, ca, server_hostname="listener.c.test") as c:
        line, _ = c.command("a1", "LOGIN %s %s" % (user, imap_quote(PASSWORDS[user])))
        assert tagged(line, "a1") == b"OK", c.dump()
        c.command("a2", "SELECT INBOX")
        assert fetch_body(c, "a3") == mx1.messages[user][0]


KEY_TYPE_CASES = [
    # (id, s_client arguments, expected certificate)
    ("tls12-ecdhe-rsa", ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "rsa"),
    ("tls12-ecdhe-ecdsa", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], "ecdsa"),
    ("tls13-rsa-pss", ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "rsa"),
    ("tls13-ecdsa", ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"], "ecdsa"),
]


@pytest.mark.parametrize("args,kind", [(a, k) for _, a, k in KEY_TYPE_CASES],
                         ids=[i for i, _, _ in KEY_TYPE_CASES])
@pytest.mark.parametrize("name,group", [("x.b.test", "b"), ("mail.a.test", "a")])
def test_an_rsa_and_an_ecdsa_certificate_for_one_sni_name_go_to_the_matching_client(
        sni_proxy, ca, sni_certs, args, kind, name, group):
    subject, der, out = sc_cert(sni_proxy.imap_port, ca, servername=name, args=args)
    assert der == der_of(sni_certs["%s_%s" % (group, kind)]), \
        "expected the %s %s certificate:\n%s" % (group, kind, out)


# ---------------------------------------------------------------------------
# TLS certificates
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,cipher", [("rsa", "ECDHE-RSA-AES128-GCM-SHA256"),
                                         ("ecdsa", "ECDHE-ECDSA-AES128-GCM-SHA256")])
def test_the_certificate_matching_the_clients_tls12_cipher_is_served(proxy, ca, certs, kind,
                                                                     cipher):
    ctx = ctx_for(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher)
    with socket.create_connection((HOST, proxy.imap_port), timeout=IO_TIMEOUT) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            der = t.getpeercert(binary_form=True)
            t.settimeout(IO_TIMEOUT)
            assert t.recv(100).startswith(b"* OK")
    with open(certs[kind + "_cert"]) as f:
        assert der == ssl.PEM_cert_to_DER_cert(f.read())


def test_min_version_tls13_refuses_a_tls12_only_client(make_postern, ca):
    p = make_postern(tls_min_version="TLSv1.3")
    ctx = ctx_for(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((HOST, p.imap_port), timeout=IO_TIMEOUT) as s:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(s, server_hostname="localhost")
    # A TLS 1.3 client is still served.
    with RawImap(p.imap_port, ca) as c:
        assert c.sock.version() == "TLSv1.3"
        assert c.greeting.startswith(b"* OK")


# ---------------------------------------------------------------------------
# SIGHUP: certificate rotation
# ---------------------------------------------------------------------------


def _install(src, dst):
    """Copy src over dst atomically (the way a certificate renewal would)."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def test_sighup_rotates_the_certificate_and_open_sessions_keep_working(
        certs, mx1, mx2, dead_backend, postern_registry, run_dir, ca, tmp_path):
    user = "alice@example.org"
    gens = {n: harness.make_server_cert(str(tmp_path), "gen%d" % n, certs,
                                        "rotation generation %d" % n, dns=["localhost"],
                                        ips=["127.0.0.1"], kind="ecdsa" if n == 3 else "rsa")
            for n in (1, 2, 3)}
    want = {n: der_of(g) for n, g in gens.items()}  # before a file gets broken
    live = {"cert": str(tmp_path / "live.crt"), "key": str(tmp_path / "live.key")}
    _install(gens[1]["cert"], live["cert"])
    _install(gens[1]["key"], live["key"])
    p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir, starttls=True,
                certificates=[live])
    postern_registry.append(p)
    p.start()
    m = None
    try:
        def served(port, starttls=None):
            args = ["-starttls", starttls, "-crlf"] if starttls else []
            wait = rb"Verify return code" if starttls else rb"\* OK|\+OK"
            subject, der, out = sc_cert(port, ca, servername="localhost", args=args,
                                        wait_for=wait)
            return subject, der, out

        subject, der, out = served(p.imap_port)
        assert der == want[1] and "rotation generation 1" in subject, out

        # A session logged in and SELECTed before the rotation.
        m = imaplib.IMAP4_SSL(HOST, p.imap_port, ssl_context=ctx_for(ca), timeout=IO_TIMEOUT)
        assert m.login(user, PASSWORDS[user])[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
        assert pem_to_der(ssl.DER_cert_to_PEM_cert(m.sock.getpeercert(True))) == want[1]

        # New files in place, SIGHUP.
        _install(gens[2]["cert"], live["cert"])
        _install(gens[2]["key"], live["key"])
        result, text = p.reload()
        assert result == "ok", text
        assert re.search(r"event=config\.reload result=ok generation=\d+", text), text
        for port, st in ((p.imap_port, None), (p.pop3_port, None),
                         (p.imap_starttls_port, "imap"), (p.pop3_starttls_port, "pop3")):
            subject, der, out = served(port, st)
            assert der == want[2] and "rotation generation 2" in subject, out
        typ, _ = m.noop()
        assert typ == "OK"
        typ, data = m.fetch("1", "(RFC822)")
        assert typ == "OK" and data[0][1] == mx1.messages[user][0]

        # The config rewritten to name other files, SIGHUP.
        p.certificates = [gens[3]]
        p.write_config()
        result, text = p.reload()
        assert result == "ok", text
        subject, der, out = served(p.imap_port)
        assert der == want[3] and "rotation generation 3" in subject, out

        # A broken certificate: reported, and the last good one stays.
        with open(gens[3]["cert"], "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nthis is not base64 at all !!!\n"
                    "-----END CERTIFICATE-----\n")
        result, text = p.reload()
        assert result == "failed", text
        assert re.search(r"event=config\.reload [^\n]*result=failed", text), text
        assert p.running(), p.log()[-3000:]
        for port, st in ((p.imap_port, None), (p.imap_starttls_port, "imap")):
            subject, der, out = served(port, st)
            assert der == want[3] and "rotation generation 3" in subject, out
        # New logins are served, and the old session still works.
        with RawImap(p.imap_port, ca) as c:
            line, _ = c.command("a1", "LOGIN %s %s" % (user, imap_quote(PASSWORDS[user])))
            assert tagged(line, "a1") == b"OK", c.dump()
        typ, _ = m.noop()
        assert typ == "OK"
        typ, data = m.fetch("3", "(RFC822)")
        assert typ == "OK" and data[0][1] == mx1.messages[user][2]
        assert m.logout()[0] == "BYE"
        m = None
        assert p.running(), p.log()[-3000:]
    finally:
        if m is not None:
            shutdown(m)
        p.cleanup()


def test_sighup_with_a_key_that_does_not_match_keeps_the_old_certificate(
        certs, mx1, mx2, dead_backend, postern_registry, run_dir, ca, tmp_path):
    a = harness.make_server_cert(str(tmp_path), "one", certs, "reload one",
                                 dns=["localhost"], ips=["127.0.0.1"])
    b = harness.make_server_cert(str(tmp_path), "two", certs, "reload two",
                                 dns=["localhost"], ips=["127.0.0.1"])
    p = Postern(certs, [mx1, mx2, dead_backend], ROUTES, parent_dir=run_dir,
                certificates=[a])
    postern_registry.append(p)
    p.start()
    try:
        p.certificates = [{"cert": b["cert"], "key": a["key"]}]
        p.write_config()
        result, text = p.reload()
        assert result == "failed", text
        subject, der, out = sc_cert(p.imap_port, ca, servername="localhost")
        assert der == der_of(a), out
        assert p.running()
    finally:
        p.cleanup()
