"""What the test modules share: the users, passwords and routes of the
session's stack (two Dovecots "mx1" and "mx2" and a postern in front, see
conftest.py), and the exact refusals postern answers, word for word.

The refusals with a tag carry the tag "a1", as sent by the login helpers
(harness.logins)."""

# ---------------------------------------------------------------------------
# The session's stack: users, passwords, routes
# ---------------------------------------------------------------------------

# Every password a test sends, right or wrong: the log test greps for each.
PASSWORDS = {
    # a quoted string for imaplib: spaces, double quotes, a backslash
    "alice@example.org": 'alice pw "quoted" back\\slash',
    # non-ASCII (UTF-8) and a space: only an IMAP literal can carry it
    "dave@example.org": "d\u00e4v\u00e9 p\u00e4ssw\u00f6rd-7",
    # routed to mx2 by an exact user rule although example.org goes to mx1
    "carol@example.org": "carol-Secret-3",
    # other.test has no rule: the default (mx1)
    "erin@other.test": "erin-secret-5",
    # the target of the injection tests
    "frank@other.test": "frank-secret-6",
    # big messages go through the relay in both directions (APPEND, FETCH)
    "gina@other.test": "gina-secret-8",
    # example.net is a pool of mx1 and mx2
    "bob@example.net": "bob-net-pw-0",
}
POOL_USERS = ["u%02d@example.net" % i for i in range(1, 13)]
for _u in POOL_USERS:
    PASSWORDS[_u] = "net-pw-" + _u.split("@")[0]

WRONG_PASSWORDS = ["wrong-password-1", 'wr"ong \\pw 2', "wr\u00f6ng-3"]

# Who lives where.  Users a rule sends to one backend also exist on the other
# one (with that backend's content) wherever that sharpens a routing test.
MX1_USERS = ["alice@example.org", "dave@example.org", "carol@example.org",
             "erin@other.test", "frank@other.test", "gina@other.test",
             "bob@example.net"] + POOL_USERS
MX2_USERS = ["carol@example.org", "erin@other.test", "frank@other.test",
             "bob@example.net"] + POOL_USERS

# A backend that nothing listens on: users of down.test route there.
DOWN_USER = "zed@down.test"
PASSWORDS[DOWN_USER] = "zed-down-pw-9"

ROUTES = [
    {"user": "carol@example.org", "backend": "mx2"},
    {"domain": "example.org", "backend": "mx1"},
    {"domain": "example.net", "pool": ["mx1", "mx2"]},
    {"domain": "down.test", "backend": "dead"},
    {"default": True, "backend": "mx1"},
]

# Where the routes above must send each user (pool users: either).
EXPECTED_BACKEND = {
    "alice@example.org": "mx1",
    "dave@example.org": "mx1",
    "carol@example.org": "mx2",
    "erin@other.test": "mx1",
    "frank@other.test": "mx1",
}


def all_secrets():
    return list(PASSWORDS.values()) + WRONG_PASSWORDS


# ---------------------------------------------------------------------------
# The exact refusals
# ---------------------------------------------------------------------------

IMAP_SET_TO_POP3 = "a1 NO [CONTACTADMIN] This account is set to POP3; IMAP access is disabled."
POP3_SET_TO_IMAP = "-ERR [AUTH] This account is set to IMAP; POP3 access is disabled."
IMAP_AUTH_FAILED = "a1 NO [AUTHENTICATIONFAILED] Authentication failed."
POP3_AUTH_FAILED = "-ERR [AUTH] Authentication failed."
IMAP_TOO_MANY_SESSIONS = "a1 NO [UNAVAILABLE] Too many sessions for this account, try again later."
POP3_IN_USE = "-ERR [IN-USE] Mailbox is in use, try again later."
IMAP_THROTTLED = "a1 NO [UNAVAILABLE] Too many failed logins, try again later."
POP3_THROTTLED = "-ERR [SYS/TEMP] Too many failed logins, try again later."
IMAP_TOO_MANY_CONNS = "* BYE [UNAVAILABLE] Too many connections from your address, try again later."
POP3_TOO_MANY_CONNS = "-ERR [SYS/TEMP] Too many connections from your address, try again later."
IMAP_ACL_BYE = "* BYE [CONTACTADMIN] Connections from your address are not allowed."
POP3_ACL_ERR = "-ERR [SYS/PERM] Connections from your address are not allowed."
# A state store (Redis) that does not answer, with state_unavailable = "refuse".
IMAP_UNAVAILABLE = "a1 NO [UNAVAILABLE] Temporary server failure, try again later."

# ---------------------------------------------------------------------------
# Policy settings
# ---------------------------------------------------------------------------

# The throttle lines of a policy group that neither slows down nor throttles
# failed logins (one setting a line: `postern -t` errors name the line).
NO_TARPIT = ('  throttle = { delay_base = "0"; delay_max = "0"; ip_user_limit = 1000; '
             'ip_limit = 1000000; };\n')
