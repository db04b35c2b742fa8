/*
 * reason.c: the reply table of refused logins and the names of close
 * reasons (see reason.h).  Every client-visible refusal text is here.
 */
#include "reason.h"

static const struct fail_reply fail_replies[FAIL__COUNT] = {
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

	return pk == PROTO_IMAP ? r->imap : r->pop3;
}

const char *
fail_class_name(enum fail_class fc)
{
	return fail_reply(fc)->log;
}

static const char *const close_reason_names[CLOSE__COUNT] = {
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
		return pk == PROTO_IMAP ? "[UNAVAILABLE] Server shutting down, please reconnect"
		                        : "[SYS/TEMP] Server shutting down, please reconnect";
	case CLOSE_KICKED:
		return pk == PROTO_IMAP ? "[UNAVAILABLE] Session ended by the administrator"
		                        : "[SYS/TEMP] Session ended by the administrator";
	default:
		return "";
	}
}
