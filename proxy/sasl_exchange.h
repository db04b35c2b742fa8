/*
 * sasl_exchange.h: the SASL exchange of IMAP AUTHENTICATE (RFC 9051
 * §6.2.2, RFC 4959 SASL-IR) and POP3 AUTH (RFC 5034), written once for
 * both: which challenge went out and which response comes next, the LOGIN
 * user name kept between its two steps, and the RFC 7628 §3.2.2 error
 * round.  A session embeds a struct sasl_exchange, parses the lines and
 * calls in here; what the two protocols say differently goes through
 * proto_ops.sasl_expect and proto_ops.sasl_reject.
 */
#ifndef POSTERN_SASL_EXCHANGE_H
#define POSTERN_SASL_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"
#include "sasl.h"

/* Which response line comes next. */
enum sasl_step {
	STEP_NONE,         /* no exchange */
	STEP_PLAIN,        /* "+ " sent: the PLAIN message */
	STEP_LOGIN_USER,   /* "+ VXNlcm5hbWU6" sent: the user name */
	STEP_LOGIN_SECRET, /* "+ UGFzc3dvcmQ6" sent: the password */
	STEP_OAUTH,        /* "+ " sent: the XOAUTH2/OAUTHBEARER message */
	STEP_OAUTH_DUMMY,  /* the backend's RFC 7628 error sent: the dummy response */
};

struct sasl_exchange {
	enum sasl_step step;
	unsigned mech;                /* AUTHM_* of the exchange */
	bool last_fail;               /* STEP_OAUTH_DUMMY: that failure used the last attempt */
	size_t user_len;              /* SASL LOGIN: the user name, until the password */
	char user[SASL_USER_MAX + 1]; /* wiped once the password came, or not */
};

/* AUTHENTICATE / AUTH of mech, an AUTHM_* bit the listener enables, with
 * the initial response ir[0..ir_len) when has_ir.  c may be closed, or in
 * CS_BACKEND, when it returns. */
void sasl_exchange_start(struct conn *c, struct sasl_exchange *x, unsigned mech, bool has_ir,
                         const char *ir, size_t ir_len);

/* The response line b64[0..len) to the last challenge; cancelled: it was
 * "*" (RFC 4422 §3.5).  Same return states as sasl_exchange_start(). */
void sasl_exchange_response(struct conn *c, struct sasl_exchange *x, bool cancelled,
                            const char *b64, size_t len);

/* proto_ops.oauth_error: send the backend's error challenge b64 and wait
 * for the client's dummy response, then refuse (BYE too when last). */
void sasl_exchange_oauth_error(struct conn *c, struct sasl_exchange *x, const char *b64, bool last);

#endif
