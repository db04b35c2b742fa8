"""What the TLS tests share: a CA-verifying client context, IMAP
capabilities, Dovecot's own login lines, the certificate and session kind
openssl s_client reports, and a postern that is started again (on the same
ports) when a test made it exit.

tagged() and fetch_body() are mail's; imap_quote is logins.q under the
name the TLS tests use."""

import re
import ssl
import time

from .certs import pem_to_der, s_client, s_client_cert
from .logins import q

imap_quote = q  # the name the TLS tests know it by


def ctx_for(ca):
    return ssl.create_default_context(cafile=ca)


def caps_of(line):
    """The capability words of '* CAPABILITY ...' or '* OK [CAPABILITY ...]'."""
    m = re.search(rb"CAPABILITY ([^\]\r\n]*)", line)
    assert m, line
    return set(x.upper() for x in m.group(1).split())


def shutdown(m):
    try:
        m.shutdown()
    except OSError:
        pass


def login_line(dovecot, proto, user, since, timeout=5.0):
    """Dovecot's 'Login: user=<user>' line for proto after offset since, or None."""
    m = dovecot.wait_log(r"%s-login: Info: Login: user=<%s>[^\n]*" % (proto, re.escape(user)),
                         timeout=timeout, since=since)
    return m.group(0) if m else None


def assert_no_login(dovecot, user, since, settle=0.5):
    time.sleep(settle)  # Dovecot's log process writes a moment after the fact
    text = dovecot.log()[since:]
    assert not re.search(r"Login: user=<%s>" % re.escape(user), text), \
        "%s logged a login for %s:\n%s" % (dovecot.name, user, text)


def proxy_log_since(p, since, settle=0.3):
    time.sleep(settle)
    return p.log()[since:]


def sc_cert(port, ca, servername=None, args=(), wait_for=rb"\* OK", send=b"", verify=True):
    """openssl s_client to port: (subject line, certificate DER, output).
    servername None sends no SNI; verify checks the chain against ca and
    (with a servername) the name."""
    a = list(args)
    if servername is None:
        a.append("-noservername")
    else:
        a += ["-servername", servername]
    if verify:
        a += ["-CAfile", ca, "-verify_return_error"]
        if servername is not None:
            a += ["-verify_hostname", servername]
    rc, out = s_client(port, a, wait_for=wait_for, send=send)
    try:
        subject, der = s_client_cert(out)
    except ValueError:
        raise AssertionError("s_client (exit %s) showed no certificate:\n%s" % (rc, out))
    return subject, der, out


def der_of(cert):
    return pem_to_der(cert["cert"])


def session_kind(out):
    """'New' or 'Reused' and the protocol, from s_client's summary line."""
    m = re.search(r"^(New|Reused), (TLSv[\d.]+), Cipher is (\S+)", out, re.M)
    assert m, "no session summary in s_client output:\n" + out
    return m.group(1), m.group(2)


# A module-scoped postern that is started again (same ports) if a test made it
# exit, so one crash does not fail every later test; the test during which it
# exits fails at teardown with its log.


def _copy_ports(new, old):
    new.imap_port, new.pop3_port = old.imap_port, old.pop3_port
    new.imap_starttls_port = old.imap_starttls_port
    new.pop3_starttls_port = old.pop3_starttls_port
    new.extra_listeners = [dict(x) for x in old.extra_listeners]


class RestartingPostern:
    """build() makes a Postern (not started); get() returns the running one,
    starting a new one on the same ports if the last one exited; close()
    cleans up every one made."""

    def __init__(self, build, registry):
        self.build, self.registry = build, registry
        self.made = []
        self.current = self._start(None)

    def _start(self, old):
        p = self.build()
        if old is not None:
            _copy_ports(p, old)
        self.registry.append(p)
        self.made.append(p)
        return p.start()

    def get(self):
        if not self.current.running():
            self.current.stop()
            self.current = self._start(self.current)
        return self.current

    def close(self):
        for p in self.made:
            p.cleanup()

    def checked(self, fail):
        """A fixture body: yields the running postern for one test and, if it
        exited during the test, stops it and calls fail (pytest.fail) with its
        exit status and log tail, so the test fails at teardown."""
        p = self.get()
        yield p
        if not p.running():
            rc = p.proc.returncode
            p.stop()
            fail("postern exited during this test (exit status %s); log tail:\n%s"
                 % (rc, "\n".join(p.log().splitlines()[-40:])))
