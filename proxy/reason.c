/*
 * reason.c: the reply table of refused logins, the verdict -> class table
 * and the names of login reasons, login mechanisms and close reasons (see
 * reason.h).  Every client-visible refusal text is here.  Each table is
 * unsized and checked against its count, so a value added without its row
 * fails to build; tests/unit/test_proxy_reason.c checks the rows are
 * filled, and README lists the names.
 */
#include "reason.h"

static const struct fail_reply fail_replies[] = {
    [FAIL_NONE] = {"", "", "none"},
    [FAIL_AUTH] = {"[AUTHENTICATIONFAILED] Authentication failed.", "[AUTH] Authentication failed.",
                   "auth_failed"},
    [FAIL_POLICY] = {"[CONTACTADMIN] IMAP access is disabled for this account.",
                     "[AUTH] POP3 access is disabled for this account.", "policy"},
    [FAIL_LOCKED] = {"[CONTACTADMIN] This account is set to POP3; IMAP access is disabled.",
                     "[AUTH] This account is set to IMAP; POP3 access is disabled.", "policy"},
    [FAIL_LIMIT] = {"[UNAVAILABLE] Too many sessions for this account, try again later.",
                    "[IN-USE] Mailbox is in use, try again later.", "limit"},
    [FAIL_THROTTLE] = {"[UNAVAILABLE] Too many failed logins, try again later.",
                       "[SYS/TEMP] Too many failed logins, try again later.", "throttled"},
    [FAIL_BACKEND_DOWN] = {"[UNAVAILABLE] Temporary server failure, try again later.",
                           "[SYS/TEMP] Temporary server failure, try again later.", "backend_down"},
    [FAIL_BACKEND_PROTO] = {"[UNAVAILABLE] Temporary server failure, try again later.",
                            "[SYS/TEMP] Temporary server failure, try again later.",
                            "backend_protocol"},
    [FAIL_INTERNAL] = {"[UNAVAILABLE] Temporary server failure, try again later.",
                       "[SYS/TEMP] Temporary server failure, try again later.", "internal"},
    [FAIL_ACL] = {"[CONTACTADMIN] Connections from your address are not allowed.",
                  "[SYS/PERM] Connections from your address are not allowed.", "acl"},
    [FAIL_CONN_LIMIT] = {"[UNAVAILABLE] Too many connections from your address, try again later.",
                         "[SYS/TEMP] Too many connections from your address, try again later.",
                         "conn_limit"},
    /* RFC 7628 §3.1: a= is optional, but a proxy routes on it. */
    [FAIL_NO_USER] = {"[AUTHENTICATIONFAILED] OAUTHBEARER without a user name (a=) cannot be "
                      "routed: send a=user in the GS2 header.",
                      "[AUTH] OAUTHBEARER without a user name (a=) cannot be routed: send "
                      "a=user in the GS2 header.",
                      "auth_failed"},
    /* Acting as someone else is the backend's business, not a proxy's. */
    [FAIL_AUTHZID] = {"[AUTHORIZATIONFAILED] Authorization identity not supported.",
                      "[AUTH] Authorization identity not supported.", "auth_failed"},
    [FAIL_LOOKUP] = {"[UNAVAILABLE] Temporary server failure, try again later.",
                     "[SYS/TEMP] Temporary server failure, try again later.", "lookup_unavailable"},
};
_Static_assert(sizeof(fail_replies) / sizeof(fail_replies[0]) == FAIL__COUNT,
               "fail_replies must have a row per class");

const struct fail_reply *
fail_reply(enum fail_class fc)
{
	return &fail_replies[(unsigned)fc < FAIL__COUNT ? fc : FAIL_INTERNAL];
}

const char *
fail_reply_text(enum fail_class fc, enum proto_kind pk)
{
	const struct fail_reply *r = fail_reply(fc);

	/* ManageSieve takes IMAP's words (its session turns the RFC 5530 code
	 * into its own, RFC 5804 §1.3), but not where they name IMAP. */
	if (pk == PROTO_SIEVE && fc == FAIL_POLICY)
		return "[CONTACTADMIN] ManageSieve access is disabled for this account.";
	if (pk == PROTO_SIEVE && fc == FAIL_LOCKED)
		return "[CONTACTADMIN] This account is set to POP3; ManageSieve access is "
		       "disabled.";
	return pk == PROTO_POP3 ? r->pop3 : r->imap;
}

const char *
fail_class_name(enum fail_class fc)
{
	return fail_reply(fc)->log;
}

/* The one place a policy verdict becomes a fail class.  Verdicts a
 * question never gives (a throttle at accept, an ACL at login) are
 * FAIL_INTERNAL. */
static const struct {
	enum fail_class at_accept, at_login;
} verdict_classes[] = {
    [POLICY_ALLOW] = {FAIL_NONE, FAIL_NONE},
    [POLICY_DENY_ACL] = {FAIL_ACL, FAIL_INTERNAL},
    [POLICY_DENY_LIMIT] = {FAIL_CONN_LIMIT, FAIL_LIMIT},
    [POLICY_DENY_THROTTLE] = {FAIL_INTERNAL, FAIL_THROTTLE},
    [POLICY_DENY_PROTOCOL] = {FAIL_INTERNAL, FAIL_POLICY},
    [POLICY_DENY_INTERNAL] = {FAIL_INTERNAL, FAIL_INTERNAL},
};
_Static_assert(sizeof(verdict_classes) / sizeof(verdict_classes[0]) == POLICY__COUNT,
               "verdict_classes must have a row per verdict");

enum fail_class
fail_class_of_verdict(enum policy_verdict v, bool at_login)
{
	if ((unsigned)v >= POLICY__COUNT)
		return FAIL_INTERNAL;
	return at_login ? verdict_classes[v].at_login : verdict_classes[v].at_accept;
}

static const char *const login_reason_names[] = {
    [LR_NONE] = "-",
    [LR_INVALID_CREDENTIALS] = "invalid_credentials",
    [LR_INVALID_USER_NAME] = "invalid_user_name",
    [LR_INVALID_PASSWORD] = "invalid_password",
    [LR_INVALID_TOKEN] = "invalid_token",
    [LR_SASL_BAD_FORMAT] = "sasl_bad_format",
    [LR_SASL_AUTHZID] = "sasl_authzid",
    [LR_SASL_NO_USER] = "sasl_no_user",
    [LR_SASL_CHANNEL_BINDING] = "sasl_channel_binding",
    [LR_THROTTLED] = "throttled",
    [LR_OUT_OF_MEMORY] = "out_of_memory",
    [LR_POLICY_TIMEOUT] = "policy_timeout",
    [LR_POLICY_OUT_OF_MEMORY] = "policy_out_of_memory",
    [LR_NO_ROUTE] = "no_route",
    [LR_BACKEND_DOWN] = "backend_down",
    [LR_BACKEND_CONNECT_FAILED] = "backend_connect_failed",
    [LR_BACKEND_CONNECT_TIMEOUT] = "backend_connect_timeout",
    [LR_BACKEND_TIMEOUT] = "backend_timeout",
    [LR_BACKEND_TLS_SETUP_FAILED] = "backend_tls_setup_failed",
    [LR_BACKEND_TLS_FAILED] = "backend_tls_failed",
    [LR_BACKEND_PROXY_HEADER_FAILED] = "backend_proxy_header_failed",
    [LR_BACKEND_WRITE_FAILED] = "backend_write_failed",
    [LR_BACKEND_CLOSED] = "backend_closed",
    [LR_BACKEND_LINE_TOO_LONG] = "backend_line_too_long",
    [LR_BACKEND_BAD_LINE] = "backend_bad_line",
    [LR_BACKEND_COMMAND_TOO_LONG] = "backend_command_too_long",
    [LR_BACKEND_BAD_GREETING] = "backend_bad_greeting",
    [LR_BACKEND_BYE] = "backend_bye",
    [LR_BACKEND_STARTTLS_REFUSED] = "backend_starttls_refused",
    [LR_BACKEND_CAPABILITY_FAILED] = "backend_capability_failed",
    [LR_BACKEND_MECHANISM_UNAVAILABLE] = "backend_mechanism_unavailable",
    [LR_BACKEND_LOGIN_DISABLED] = "backend_login_disabled",
    [LR_BACKEND_UNEXPECTED_CONTINUATION] = "backend_unexpected_continuation",
    [LR_BACKEND_BAD_LOGIN_REPLY] = "backend_bad_login_reply",
    [LR_BACKEND_REFUSED_LOGIN] = "backend_refused_login",
    [LR_BACKEND_REFUSED_TOKEN] = "backend_refused_token",
    [LR_LOOKUP_REFUSED] = "lookup_refused",
    [LR_LOOKUP_UNKNOWN_USER] = "lookup_unknown_user",
    [LR_LOOKUP_UNAVAILABLE] = "lookup_unavailable",
    [LR_LOOKUP_BAD_ROUTE] = "lookup_bad_route",
};
_Static_assert(sizeof(login_reason_names) / sizeof(login_reason_names[0]) == LR__COUNT,
               "login_reason_names must name every reason");

const char *
login_reason_name(enum login_reason r)
{
	return (unsigned)r < LR__COUNT ? login_reason_names[r] : "unknown";
}

static const char *const login_mech_names[] = {
    [LM_NONE] = "-",
    [LM_LOGIN] = "login",
    [LM_USER] = "user",
    [LM_PLAIN] = "plain",
    [LM_SASL_LOGIN] = "sasl-login",
    [LM_XOAUTH2] = "xoauth2",
    [LM_OAUTHBEARER] = "oauthbearer",
};
_Static_assert(sizeof(login_mech_names) / sizeof(login_mech_names[0]) == LM__COUNT,
               "login_mech_names must name every mechanism");

const char *
login_mech_name(enum login_mech m)
{
	return (unsigned)m < LM__COUNT ? login_mech_names[m] : "unknown";
}

static const char *const close_reason_names[] = {
    [CLOSE_CLIENT_CLOSED] = "client_closed",
    [CLOSE_CLIENT_LOGOUT] = "client_logout",
    [CLOSE_CLIENT_READ_ERROR] = "client_read_error",
    [CLOSE_CLIENT_WRITE_ERROR] = "client_write_error",
    [CLOSE_BACKEND_CLOSED] = "backend_closed",
    [CLOSE_BACKEND_READ_ERROR] = "backend_read_error",
    [CLOSE_BACKEND_WRITE_ERROR] = "backend_write_error",
    [CLOSE_BACKEND_SENT_TOO_MUCH] = "backend_sent_too_much",
    [CLOSE_PROXY_UNTRUSTED] = "proxy_untrusted",
    [CLOSE_PROXY_HEADER_BAD] = "proxy_header_bad",
    [CLOSE_PROXY_HEADER_TIMEOUT] = "proxy_header_timeout",
    [CLOSE_TLS_SETUP_FAILED] = "tls_setup_failed",
    [CLOSE_TLS_HANDSHAKE_FAILED] = "tls_handshake_failed",
    [CLOSE_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [CLOSE_LOGIN_TIMEOUT] = "login_timeout",
    [CLOSE_IDLE_TIMEOUT] = "idle_timeout",
    [CLOSE_POLICY_REFUSED] = "policy_refused",
    [CLOSE_PROTOCOL_ERROR] = "protocol_error",
    [CLOSE_TOO_MANY_BAD_COMMANDS] = "too_many_bad_commands",
    [CLOSE_TOO_MANY_AUTH_FAILURES] = "too_many_auth_failures",
    [CLOSE_LOOKUP_REFUSED] = "lookup_refused",
    [CLOSE_OUT_OF_MEMORY] = "out_of_memory",
    [CLOSE_INTERNAL_ERROR] = "internal_error",
    [CLOSE_SHUTDOWN] = "shutdown",
    [CLOSE_KICKED] = "kicked",
};
_Static_assert(sizeof(close_reason_names) / sizeof(close_reason_names[0]) == CLOSE__COUNT,
               "close_reason_names must name every reason");

const char *
close_reason_name(enum close_reason r)
{
	return (unsigned)r < CLOSE__COUNT ? close_reason_names[r] : "unknown";
}

const char *
close_bye_text(enum close_reason r, enum proto_kind pk)
{
	/* RFC 5530 §3 UNAVAILABLE: try again (elsewhere) later; RFC 3206 SYS/TEMP. */
	switch (r) {
	case CLOSE_SHUTDOWN:
		return pk != PROTO_POP3 ? "[UNAVAILABLE] Server shutting down, please reconnect"
		                        : "[SYS/TEMP] Server shutting down, please reconnect";
	case CLOSE_KICKED:
		return pk != PROTO_POP3 ? "[UNAVAILABLE] Session ended by the administrator"
		                        : "[SYS/TEMP] Session ended by the administrator";
	default:
		return "";
	}
}
