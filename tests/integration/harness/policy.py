"""The policy tests' stack: their users (all on one Dovecot, "pmx", whose
fixture is in conftest.py) and passwords, the policy groups they configure,
imaplib/poplib clients from a chosen 127.0.0.x address, and a refusal read
at connect.

Not re-exported by the package: PASSWORDS and ROUTES here are this stack's,
not expect's.  Importing this module adds the users' passwords to
LOGIN_PASSWORDS, for imap_login() and pop3_login()."""

import imaplib
import poplib
import socket
import ssl

from .clients import RawImap, RawPop3
from .expect import NO_TARPIT
from .logins import LOGIN_PASSWORDS, _line
from .postern import _q
from .procs import IO_TIMEOUT

HOST = "127.0.0.1"

# ---------------------------------------------------------------------------
# users (all on one Dovecot, "pmx")
# ---------------------------------------------------------------------------

def _pw(user):
    return "pw-" + user.split("@")[0] + "-7"


STICKY_USERS = ["stella@sticky.test", "sam@sticky.test", "sid@sticky.test",
                "sue@sticky.test", "saul@sticky.test"]
CONC_USERS = ["cora@conc.test", "cole@conc.test"]
# static rules (see STATIC_POLICY / STATIC_FILE)
STATIC_USERS = ["pia@popdom.test", "vip@popdom.test", "ian@imapdom.test",
                "fiona@plain.test", "fil@filedom.test", "both@filedom.test",
                "otto@override.test", "uma@plain.test"]
LIMIT_USERS = ["lim@limits.test", "lina@limits.test"]
THROTTLE_USERS = ["alice@example.org", "bob@example.org", "tina@example.org",
                  "tom@example.org", "spray1@example.org", "spray2@example.org",
                  "spray3@example.org", "spray4@example.org", "spray5@example.org"]
ACL_USERS = ["acl@example.org"]
CRASH_USERS = ["c%03d@crash.test" % i for i in range(200)]

ALL_USERS = (STICKY_USERS + CONC_USERS + STATIC_USERS + LIMIT_USERS + THROTTLE_USERS
             + ACL_USERS + CRASH_USERS)
PASSWORDS = {u: _pw(u) for u in ALL_USERS}
LOGIN_PASSWORDS.update(PASSWORDS)  # imap_login() and pop3_login() look them up
WRONG = "not-the-password-%d"

ROUTES = [{"default": True, "backend": "pmx"}]

# ---------------------------------------------------------------------------
# policy groups (one setting a line: `postern -t` errors name the line)
# ---------------------------------------------------------------------------

STICKY_POLICY = ('policy = {\n'
                 '  protocol_lock = "sticky";\n'
                 '  lock_expire = "90d";\n'
                 + NO_TARPIT +
                 '};')

CONCURRENT_POLICY = ('policy = {\n'
                     '  protocol_lock = "concurrent";\n'
                     + NO_TARPIT +
                     '};')

# protocols_file: "@override.test imap" is overridden by the config's rule.
STATIC_FILE = """\
# postern protocols map for the integration tests
fiona@plain.test pop3
@filedom.test imap
both@filedom.test imap,pop3

@override.test imap
"""


def static_policy(mode, map_path, default=("imap",)):
    return ('policy = {\n'
            '  protocol_lock = "%s";\n'
            '  protocols = (\n'
            '    { domain = "popdom.test"; allow = ["pop3"]; },\n'
            '    { user = "vip@popdom.test"; allow = ["imap"]; },\n'
            '    { domain = "imapdom.test"; allow = ["imap"]; },\n'
            '    { domain = "override.test"; allow = ["pop3"]; }\n'
            '  );\n'
            '  protocols_file = %s;\n'
            '  protocols_default = [ %s ];\n'
            % (mode, _q(map_path), ", ".join('"%s"' % d for d in default))
            + NO_TARPIT +
            '};')


def limits_policy(max_conn=0, max_sess=0):
    return ('policy = {\n'
            '  max_connections_per_ip = %d;\n'
            '  max_sessions_per_user = %d;\n' % (max_conn, max_sess)
            + NO_TARPIT +
            '};')


def throttle_policy(ip_user_limit=3, ip_limit=20, window="5m", delay_base="200ms",
                    delay_max="1s"):
    return ('policy = {\n'
            '  throttle = {\n'
            '    ip_user_limit = %d;\n'
            '    ip_limit = %d;\n'
            '    window = "%s";\n'
            '    delay_base = "%s";\n'
            '    delay_max = "%s";\n'
            '  };\n'
            '};' % (ip_user_limit, ip_limit, window, delay_base, delay_max))


def acl_policy(allow=None, deny=None):
    out = ['policy = {']
    if allow is not None:
        out.append('  allow = [ %s ];' % ", ".join(_q(a) for a in allow))
    if deny is not None:
        out.append('  deny = [ %s ];' % ", ".join(_q(a) for a in deny))
    out.append(NO_TARPIT.rstrip("\n"))
    out.append('};')
    return "\n".join(out)



# ---------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------


class IMAP4_SSL_From(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS, from a chosen local address."""

    def __init__(self, host, port, source=None, **kw):
        self._source = source
        super().__init__(host, port, **kw)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source
                                        else None)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


class POP3_SSL_From(poplib.POP3_SSL):
    """poplib over implicit TLS, from a chosen local address."""

    def __init__(self, host, port, source=None, **kw):
        self._source = source
        super().__init__(host, port, **kw)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source
                                        else None)
        return self.context.wrap_socket(sock, server_hostname=self.host)


def imaplib_client(p, ca, source=None):
    return IMAP4_SSL_From(HOST, p.imap_port, source=source,
                          ssl_context=ssl.create_default_context(cafile=ca), timeout=IO_TIMEOUT)


def poplib_client(p, ca, source=None):
    return POP3_SSL_From(HOST, p.pop3_port, source=source,
                         context=ssl.create_default_context(cafile=ca), timeout=IO_TIMEOUT)


def refused_at_connect(port, ca, proto, source=None):
    """Connect (TLS) and return (first line, the rest until the close)."""
    cls = RawImap if proto == "imap" else RawPop3
    c = cls(port, ca, source=source, timeout=IO_TIMEOUT)
    try:
        rest = c.read_until_closed(timeout=IO_TIMEOUT)
        return _line(c.greeting), rest
    finally:
        c.close()


# ---------------------------------------------------------------------------
# restarts
# ---------------------------------------------------------------------------


def restart(start, p, policy, state):
    """Stop p and start a new postern with the same policy and state store
    (and the same ports)."""
    p.stop()
    return start(policy, state=state, imap_port=p.imap_port, pop3_port=p.pop3_port)

