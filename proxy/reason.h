/*
 * reason.h: the closed sets of why things end.  enum fail_class says why a
 * login (or a connection at accept) was refused and picks, from one table,
 * the client's reply in each protocol (RFC 5530 codes for IMAP, RFC 3206
 * for POP3) and the class= of the log line.  enum login_reason says in
 * more detail why a login failed (reason= of login.fail and backend.fail),
 * enum login_mech how the client logged in (mech=).  enum close_reason
 * says why a session ended: session.end reason= is exactly one of its
 * names.  Each set is one table in reason.c; README lists the names.
 */
#ifndef POSTERN_REASON_H
#define POSTERN_REASON_H

#include <stdbool.h>

#include "config.h"
#include "policy.h"

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
	FAIL_LOOKUP,        /* the user lookup service failed (down, slow, nonsense) */
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

/* The class of a policy refusal: at accept (policy_accept(): ACL or the
 * connection limit) or at login (the throttle, the post-login question).
 * POLICY_ALLOW is FAIL_NONE.  At login, POLICY_DENY_PROTOCOL is
 * FAIL_POLICY; the caller makes it FAIL_LOCKED when the account is set
 * to the other protocol. */
enum fail_class fail_class_of_verdict(enum policy_verdict v, bool at_login);

/* Why a login failed, in more words than its class: reason= of login.fail
 * (unless the policy refused: then the policy's reason) and of
 * backend.fail. */
enum login_reason {
	LR_NONE, /* logged in: "-" */
	/* the client's credentials, before any backend hears of them */
	LR_INVALID_CREDENTIALS,  /* a user name or secret empty or over its limit */
	LR_INVALID_USER_NAME,    /* control characters in the user name */
	LR_INVALID_PASSWORD,     /* NUL, CR or LF in the password */
	LR_INVALID_TOKEN,        /* a bearer token outside RFC 6750's b64token */
	LR_SASL_BAD_FORMAT,      /* a SASL response that does not decode */
	LR_SASL_AUTHZID,         /* SASL PLAIN acting as someone else */
	LR_SASL_NO_USER,         /* OAUTHBEARER without a=: nobody to route */
	LR_SASL_CHANNEL_BINDING, /* OAUTHBEARER asking for channel binding */
	/* postern itself */
	LR_THROTTLED,            /* too many failed logins: no backend asked */
	LR_OUT_OF_MEMORY,        /* an allocation failed */
	LR_POLICY_TIMEOUT,       /* no post-login policy answer in time */
	LR_POLICY_OUT_OF_MEMORY, /* the post-login question could not be asked */
	/* routing and the backend's connection */
	LR_NO_ROUTE,                    /* no backend for the user (or none with the port) */
	LR_BACKEND_DOWN,                /* every candidate is down */
	LR_BACKEND_CONNECT_FAILED,      /* connect() failed */
	LR_BACKEND_CONNECT_TIMEOUT,     /* no connection within timeouts.backend_connect */
	LR_BACKEND_TIMEOUT,             /* no login within the backend's deadline */
	LR_BACKEND_TLS_SETUP_FAILED,    /* could not start TLS (out of memory) */
	LR_BACKEND_TLS_FAILED,          /* the TLS handshake failed */
	LR_BACKEND_PROXY_HEADER_FAILED, /* the PROXY header could not be built */
	LR_BACKEND_WRITE_FAILED,        /* writing to the backend failed */
	LR_BACKEND_CLOSED,              /* the backend closed the connection */
	LR_BACKEND_LINE_TOO_LONG,       /* a line over BE_LINE_MAX */
	LR_BACKEND_BAD_LINE,            /* a NUL in a line */
	LR_BACKEND_COMMAND_TOO_LONG,    /* our command did not fit the buffer */
	/* the backend's dialog */
	LR_BACKEND_BAD_GREETING,            /* not an OK greeting */
	LR_BACKEND_BYE,                     /* BYE instead of a greeting or an answer */
	LR_BACKEND_STARTTLS_REFUSED,        /* STARTTLS/STLS refused */
	LR_BACKEND_CAPABILITY_FAILED,       /* CAPABILITY refused */
	LR_BACKEND_MECHANISM_UNAVAILABLE,   /* the token's SASL mechanism not offered */
	LR_BACKEND_LOGIN_DISABLED,          /* IMAP LOGINDISABLED and no AUTH=PLAIN */
	LR_BACKEND_UNEXPECTED_CONTINUATION, /* a "+" where none belongs */
	LR_BACKEND_BAD_LOGIN_REPLY,         /* neither OK nor NO to the login */
	LR_BACKEND_REFUSED_LOGIN,           /* the password refused */
	LR_BACKEND_REFUSED_TOKEN,           /* the token refused */
	/* the user lookup service (lookup.h) */
	LR_LOOKUP_REFUSED,      /* it refused the login (nginx Auth-Status, JSON 401/403) */
	LR_LOOKUP_UNKNOWN_USER, /* it knows no such user (JSON 404) */
	LR_LOOKUP_UNAVAILABLE,  /* no usable answer: down, slow, 5xx, malformed, breaker open */
	LR_LOOKUP_BAD_ROUTE,    /* an answer naming no usable backend or login */
	LR__COUNT
};

/* The reason= word of r; "unknown" outside the set.  Static. */
const char *login_reason_name(enum login_reason r);

/* How the client logged in: mech= of login.ok and login.fail. */
enum login_mech {
	LM_NONE,        /* not yet known: "-" */
	LM_LOGIN,       /* IMAP LOGIN */
	LM_USER,        /* POP3 USER and PASS */
	LM_PLAIN,       /* SASL PLAIN (RFC 4616) */
	LM_SASL_LOGIN,  /* SASL LOGIN (draft-murchison-sasl-login) */
	LM_XOAUTH2,     /* Google's XOAUTH2 */
	LM_OAUTHBEARER, /* RFC 7628 */
	LM__COUNT
};

/* The mech= word of m; "unknown" outside the set.  Static. */
const char *login_mech_name(enum login_mech m);

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
	CLOSE_LOOKUP_REFUSED,         /* the lookup refused without Auth-Wait: nginx ends there */
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
