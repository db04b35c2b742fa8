/*
 * reason.h: the closed sets of why things end.  enum fail_class says why a
 * login (or a connection at accept) was refused and picks, from one table,
 * the client's reply in each protocol (RFC 5530 codes for IMAP, RFC 3206
 * for POP3) and the class= of the log line.  enum close_reason says why a
 * session ended: session.end reason= is exactly one of its names.
 */
#ifndef POSTERN_REASON_H
#define POSTERN_REASON_H

#include <stdbool.h>

#include "config.h"

enum fail_class {
	FAIL_NONE = 0,
	FAIL_AUTH,          /* credentials refused */
	FAIL_POLICY,        /* refused by a policy rule (said only after the password) */
	FAIL_LOCKED,        /* the account is set to the other protocol (ditto) */
	FAIL_LIMIT,         /* too many sessions for the account */
	FAIL_THROTTLE,      /* too many failed logins */
	FAIL_BACKEND_DOWN,  /* cannot reach a backend */
	FAIL_BACKEND_PROTO, /* the backend said something unusable */
	FAIL_INTERNAL,      /* our fault */
	FAIL_ACL,           /* at accept: the address is not allowed */
	FAIL_CONN_LIMIT,    /* at accept: too many connections from the address */
	FAIL_NO_USER,       /* OAUTHBEARER naming no user: FAIL_AUTH, in words of its own */
	FAIL_AUTHZID,       /* SASL PLAIN acting as someone else: ditto */
	FAIL__COUNT
};

/* Does fc refuse the credentials (counted and tarpitted as a wrong
 * password, logged class=auth_failed)? */
static inline bool
fail_refuses_credentials(enum fail_class fc)
{
	return fc == FAIL_AUTH || fc == FAIL_NO_USER || fc == FAIL_AUTHZID;
}

struct fail_reply {
	const char *imap; /* after "tag NO " or "* BYE ": "[CODE] text" */
	const char *pop3; /* after "-ERR ": "[CODE] text" */
	const char *log;  /* class= in login.fail */
};

/* The row of fc (FAIL_NONE has an empty row). */
const struct fail_reply *fail_reply(enum fail_class fc);
/* The client's reply text for fc in protocol pk ("[CODE] text"). */
const char *fail_reply_text(enum fail_class fc, enum proto_kind pk);
/* class= for logs. */
const char *fail_class_name(enum fail_class fc);

enum close_reason {
	CLOSE_CLIENT_CLOSED,          /* the client closed its side */
	CLOSE_CLIENT_LOGOUT,          /* LOGOUT/QUIT, answered by us or relayed */
	CLOSE_CLIENT_READ_ERROR,      /* reading from the client failed (reset, TLS error) */
	CLOSE_CLIENT_WRITE_ERROR,     /* writing to the client failed */
	CLOSE_BACKEND_CLOSED,         /* the backend ended the relayed session */
	CLOSE_BACKEND_READ_ERROR,     /* reading from the backend failed */
	CLOSE_BACKEND_WRITE_ERROR,    /* writing to the backend failed */
	CLOSE_BACKEND_SENT_TOO_MUCH,  /* more after its login OK than a buffer holds */
	CLOSE_PROXY_UNTRUSTED,        /* PROXY listener, peer not in trusted */
	CLOSE_PROXY_HEADER_BAD,       /* malformed PROXY header */
	CLOSE_PROXY_HEADER_TIMEOUT,   /* no PROXY header in time */
	CLOSE_TLS_SETUP_FAILED,       /* could not start TLS (out of memory) */
	CLOSE_TLS_HANDSHAKE_FAILED,   /* the client's handshake failed */
	CLOSE_HANDSHAKE_TIMEOUT,      /* no complete handshake in time */
	CLOSE_LOGIN_TIMEOUT,          /* no login within timeouts.login */
	CLOSE_IDLE_TIMEOUT,           /* relay idle for timeouts.idle */
	CLOSE_POLICY_REFUSED,         /* refused at accept (ACL, connection limit) */
	CLOSE_PROTOCOL_ERROR,         /* line or literal over its limit, bad SASL data */
	CLOSE_TOO_MANY_BAD_COMMANDS,  /* limits.max_bad_commands reached */
	CLOSE_TOO_MANY_AUTH_FAILURES, /* limits.max_auth_failures reached */
	CLOSE_OUT_OF_MEMORY,          /* an allocation failed */
	CLOSE_INTERNAL_ERROR,         /* our fault */
	CLOSE_SHUTDOWN,               /* postern is stopping */
	CLOSE_KICKED,                 /* ended from the admin socket (kick, backend maint) */
	CLOSE__COUNT
};

const char *close_reason_name(enum close_reason r);

/* The last words (after "* BYE " or "-ERR ") of a session postern ends
 * itself: CLOSE_SHUTDOWN or CLOSE_KICKED; "" for other reasons. */
const char *close_bye_text(enum close_reason r, enum proto_kind pk);

#endif
