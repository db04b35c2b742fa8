/*
 * login.h: the login room, from credentials in hand to the client's OK:
 * checks on the credentials, the throttle, routing and the backend login,
 * the post-login policy question (CS_POLICY), the one log line of the
 * outcome, the tarpit of a failure and the wiping of every secret.  The
 * sessions call in here; the replies' words come from reason.c's table
 * through the session's reply_ok/reply_fail.
 */
#ifndef POSTERN_LOGIN_H
#define POSTERN_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"
#include "sasl.h"

/*
 * Log in as user with secret (both copied; the caller wipes its own).
 * Either refused at once (the session's reply_fail has been called and c
 * is still in CS_PREAUTH, or closing), or c is in CS_BACKEND and the
 * outcome comes later.  mech is how the client logged in, for logs.  c
 * may be closed when it returns.
 */
void login_begin(struct conn *c, const char *user, size_t user_len, const char *secret,
                 size_t secret_len, enum login_mech mech);

/* Decode a SASL PLAIN response (RFC 4616) and login_begin() with it.
 * SASL_OK: the login began.  Any other enum sasl_rc: nothing began, the
 * caller answers. */
enum sasl_rc login_sasl_plain(struct conn *c, const char *b64, size_t len);

/* Decode an XOAUTH2 or OAUTHBEARER message (mech: AUTHM_XOAUTH2 or
 * AUTHM_OAUTHBEARER) and begin a login that passes its token through.
 * SASL_OK: the login began (or was refused, answered).  Any other enum
 * sasl_rc: nothing began, the caller answers.  c may be closed. */
enum sasl_rc login_sasl_oauth(struct conn *c, unsigned mech, const char *b64, size_t len);

/* The client sent its dummy response after a backend's RFC 7628 error
 * (proto_ops.oauth_error): the refusal, then BYE when last says the
 * failure used the last attempt (already counted and logged). */
void login_oauth_refusal(struct conn *c, bool last);

/* End a login attempt that failed before login_begin() could take it
 * (e.g. a malformed SASL response): the refusal, the log line, the tarpit
 * and the failure count, as for any other failure; why is its reason=. */
void login_refuse(struct conn *c, enum fail_class fc, enum login_reason why);

/* The policy gave no answer within CS_POLICY's timeout. */
void login_policy_timeout(struct conn *c);

#endif
