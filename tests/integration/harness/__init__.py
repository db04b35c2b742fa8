"""Integration harness for postern: test certificates, real Dovecot backends
and a postern process, each in its own temporary directory on loopback.

No pytest in here: tests/integration/demo.py, tests/docker/test_image.py and
tests/bench/ import it too.  Every wait is bounded, every process is stopped
by the PID this package started (never by name), and every temporary
directory is removed, also when a test fails.

The modules, each with one job:
  procs          ports, bounded waits, stopping by PID, sanitizer reports,
                 the timeout scale, the base of every daemon started here
  certs          the test CA and certificates, openssl s_client/s_server, sslscan
  dovecot        the Dovecot backend and the messages it stores
  postern        the postern process, its config file, one-shot runs
  haproxy        HAProxy in front of postern (PROXY protocol)
  redis          redis-server for the fleet tests; a master, replicas and
                 Sentinels on loopback for the Sentinel tests
  notify_socket  the service manager's end of sd_notify(3)
  script         a scripted IMAP/POP3 backend that pauses mid-response
  clients        IMAP, POP3 and ManageSieve spoken by hand over TLS, SASL PLAIN
  mail           a user's mail read through a proxy, and which backend served it
  logins         timed logins and the `postern lock` commands, as policy tests use them
  expect         the session stack's users, passwords and routes; exact refusals
  tls            what the TLS tests share: s_client certificate and session checks,
                 Dovecot login lines, a postern started again after it exited

Everything public is re-exported here: `import harness` and
`from harness import X` are the way in.  Two modules are not, because
their PASSWORDS and ROUTES are other stacks' than expect's; import them as
`from harness.policy import ...` and `from harness.routing import ...`:
  policy         the policy tests' users, policy groups and source-address clients
  routing        the routing tests' users on mx1..mx3, log lines, Login, PROXY headers
Nor are the lookup tests' two, whose short names (route, error, ...) are
theirs alone; import them as `from harness.authsvc import ...` and
`from harness.nginx import Nginx`:
  authsvc        an HTTP user lookup service (nginx auth_http and JSON) with
                 a behaviour per user, counting connections and requests
  nginx          nginx's mail proxy asking such a service, the reference
"""

from .procs import (HERE, IO_TIMEOUT, REPO, SANITIZER_LOGS, TIMEOUT_SCALE, _Daemon,
                    _handed_out, _live, _read, _stop_all_at_exit, _tail, free_port,
                    sanitizer_reports, stop_pid, wait_port)
from .certs import (OpensslServer, _openssl, client_context, make_ca, make_certs,
                    make_server_cert, pem_to_der, s_client, s_client_cert, sslscan)
from .dovecot import DOVECOT_BIN, DOVECOT_CONF, MAIL_GROUP, MAIL_USER, Dovecot, cleanup_all, make_message
from .postern import POSTERN_BIN, RELAXED_POLICY, Postern, _cfg_value, _q, run_postern
from .haproxy import HAPROXY_BIN, HAPROXY_CONF, HAProxy
from .redis import REDIS_BIN, RedisHA, RedisNode, RedisServer, Sentinel
from .notify_socket import NotifySocket
from .script import ScriptBackend, pop3_dot_stuffed
from .clients import (ClosedError, RawImap, RawPop3, RawSieve, RawTLS, SieveResponse,
                      sasl_plain, sieve_caps, sieve_literal, sieve_tokens)
from .expect import (DOWN_USER, EXPECTED_BACKEND, IMAP_ACL_BYE, IMAP_AUTH_FAILED,
                     IMAP_SET_TO_POP3, IMAP_THROTTLED, IMAP_TOO_MANY_CONNS,
                     IMAP_TOO_MANY_SESSIONS, IMAP_UNAVAILABLE, MX1_USERS, MX2_USERS, NO_TARPIT,
                     PASSWORDS, POOL_USERS, POP3_ACL_ERR, POP3_AUTH_FAILED, POP3_IN_USE,
                     POP3_SET_TO_IMAP, POP3_THROTTLED, POP3_TOO_MANY_CONNS, ROUTES,
                     WRONG_PASSWORDS, all_secrets)
from .mail import (backend_of, fetch_body, imap_fetch_first, imap_ssl, literal_login,
                   log_offsets, login_seen, pop3_retr_first, pop3_ssl, raw_imap, raw_pop3,
                   tagged)
from .logins import (LOCK_LINE, LOGIN_PASSWORDS, Session, _line, imap_login, lock_cmd,
                     lock_list, lock_show, login, pop3_login, q, session_end_seen)
from .tls import (RestartingPostern, assert_no_login, caps_of, ctx_for, der_of, imap_quote,
                  login_line, proxy_log_since, sc_cert, session_kind, shutdown)

# Every name above, for `from harness import *` and for pyflakes.
__all__ = ["HERE", "IO_TIMEOUT", "REPO", "SANITIZER_LOGS", "TIMEOUT_SCALE", "_Daemon",
           "_handed_out", "_live", "_read", "_stop_all_at_exit", "_tail", "free_port",
           "sanitizer_reports", "stop_pid", "wait_port", "OpensslServer", "_openssl",
           "client_context", "make_ca", "make_certs", "make_server_cert", "pem_to_der",
           "s_client", "s_client_cert", "sslscan", "DOVECOT_BIN", "DOVECOT_CONF", "MAIL_GROUP",
           "MAIL_USER", "Dovecot", "cleanup_all", "make_message", "POSTERN_BIN", "RELAXED_POLICY", "Postern",
           "_cfg_value", "_q", "run_postern", "HAPROXY_BIN", "HAPROXY_CONF", "HAProxy",
           "REDIS_BIN", "RedisHA", "RedisNode", "RedisServer", "Sentinel", "NotifySocket", "ScriptBackend", "pop3_dot_stuffed", "ClosedError", "RawImap", "RawPop3",
           "RawTLS", "sasl_plain", "RawSieve", "SieveResponse", "sieve_caps",
           "sieve_literal", "sieve_tokens", "DOWN_USER", "EXPECTED_BACKEND", "IMAP_ACL_BYE",
           "IMAP_AUTH_FAILED", "IMAP_SET_TO_POP3", "IMAP_THROTTLED", "IMAP_TOO_MANY_CONNS",
           "IMAP_TOO_MANY_SESSIONS", "IMAP_UNAVAILABLE", "MX1_USERS", "MX2_USERS", "NO_TARPIT",
           "PASSWORDS", "POOL_USERS", "POP3_ACL_ERR", "POP3_AUTH_FAILED", "POP3_IN_USE",
           "POP3_SET_TO_IMAP", "POP3_THROTTLED", "POP3_TOO_MANY_CONNS", "ROUTES",
           "WRONG_PASSWORDS", "all_secrets", "backend_of", "fetch_body", "imap_fetch_first",
           "imap_ssl", "literal_login", "log_offsets", "login_seen", "pop3_retr_first",
           "pop3_ssl", "raw_imap", "raw_pop3", "tagged", "LOCK_LINE", "LOGIN_PASSWORDS",
           "Session", "_line", "imap_login", "lock_cmd", "lock_list", "lock_show", "login",
           "pop3_login", "q", "session_end_seen", "RestartingPostern", "assert_no_login",
           "caps_of", "ctx_for", "der_of", "imap_quote", "login_line", "proxy_log_since",
           "sc_cert", "session_kind", "shutdown"]
