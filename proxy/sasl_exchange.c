/*
 * sasl_exchange.c: one SASL exchange for IMAP and POP3 (see
 * sasl_exchange.h).  The messages are decoded by lib/sasl.c and the logins
 * begun by login.c; this file only knows the order of the steps.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "login.h"
#include "sasl_exchange.h"

static void
forget_user(struct sasl_exchange *x)
{
	OPENSSL_cleanse(x->user, sizeof(x->user));
	x->user_len = 0;
}

/* A response the exchange cannot use: the protocol's own answer where it
 * has one (IMAP: BAD for bad base64 and a cancel, RFC 9051 §6.2.2), else a
 * failed authentication (POP3: RFC 5034 §4, -ERR [AUTH]). */
static void
reject(struct conn *c, enum sasl_rc rc, enum login_reason why)
{
	if (!c->proto->sasl_reject(c, rc))
		login_refuse(c, FAIL_AUTH, why);
}

/* "+ text" (ManageSieve: a string): the next line is a SASL response. */
static void
challenge(struct conn *c, struct sasl_exchange *x, enum sasl_step step, const char *text)
{
	if (c->proto->sasl_challenge != NULL)
		c->proto->sasl_challenge(c, text);
	else
		(void)buf_printf(&c->out, "+ %s\r\n", text);
	c->proto->sasl_expect(c);
	x->step = step;
}

static void
plain(struct conn *c, const char *b64, size_t len)
{
	enum sasl_rc rc = login_sasl_plain(c, b64, len);

	if (rc == SASL_AUTHZID)
		login_refuse(c, FAIL_AUTHZID, LR_SASL_AUTHZID); /* RFC 5530 in both */
	else if (rc != SASL_OK)
		reject(c, rc, LR_SASL_BAD_FORMAT);
}

/* SASL LOGIN's first response, the user name: keep it, ask the password. */
static void
login_user(struct conn *c, struct sasl_exchange *x, const char *b64, size_t len)
{
	enum sasl_rc rc = sasl_login_user_decode(b64, len, x->user, &x->user_len);

	c->login_mech = LM_SASL_LOGIN;
	if (rc == SASL_OK)
		challenge(c, x, STEP_LOGIN_SECRET, SASL_LOGIN_SECRET_CHALLENGE);
	else
		reject(c, rc, LR_SASL_BAD_FORMAT);
}

/* SASL LOGIN's second response, the password: log in as PLAIN would. */
static void
login_secret(struct conn *c, struct sasl_exchange *x, const char *b64, size_t len)
{
	char secret[SASL_SECRET_MAX + 1];
	size_t slen = 0;
	enum sasl_rc rc = sasl_login_secret_decode(b64, len, secret, &slen);

	if (rc == SASL_OK)
		login_begin(c, x->user, x->user_len, secret, slen, LM_SASL_LOGIN);
	else
		reject(c, rc, LR_SASL_BAD_FORMAT);
	OPENSSL_cleanse(secret, sizeof(secret));
	forget_user(x);
}

/* An XOAUTH2 or OAUTHBEARER message: its token goes through to the backend. */
static void
oauth(struct conn *c, struct sasl_exchange *x, const char *b64, size_t len)
{
	enum sasl_rc rc = login_sasl_oauth(c, x->mech, b64, len);

	switch (rc) {
	case SASL_OK:
		return;
	case SASL_NO_USER:
		login_refuse(c, FAIL_NO_USER, LR_SASL_NO_USER);
		return;
	case SASL_CHANNEL_BINDING:
		login_refuse(c, FAIL_AUTH, LR_SASL_CHANNEL_BINDING);
		return;
	default:
		reject(c, rc, LR_SASL_BAD_FORMAT);
		return;
	}
}

void
sasl_exchange_start(struct conn *c, struct sasl_exchange *x, unsigned mech, bool has_ir,
                    const char *ir, size_t ir_len)
{
	x->step = STEP_NONE;
	x->mech = mech;
	forget_user(x);
	switch (mech) {
	case AUTHM_PLAIN:
		if (has_ir)
			plain(c, ir, ir_len);
		else
			challenge(c, x, STEP_PLAIN, ""); /* an empty challenge */
		return;
	case AUTHM_LOGIN:
		/* SASL-IR: the initial response is the user name. */
		if (has_ir)
			login_user(c, x, ir, ir_len);
		else
			challenge(c, x, STEP_LOGIN_USER, SASL_LOGIN_USER_CHALLENGE);
		return;
	default:
		if (has_ir)
			oauth(c, x, ir, ir_len);
		else
			challenge(c, x, STEP_OAUTH, "");
		return;
	}
}

void
sasl_exchange_response(struct conn *c, struct sasl_exchange *x, bool cancelled, const char *b64,
                       size_t len)
{
	enum sasl_step step = x->step;

	x->step = STEP_NONE;
	if (step == STEP_OAUTH_DUMMY) {
		/* RFC 7628 §3.2.3: whatever the client sends (the dummy ^A,
		 * or "*"), the exchange has failed. */
		login_oauth_refusal(c, x->last_fail);
		return;
	}
	if (cancelled) {
		forget_user(x);
		(void)c->proto->sasl_reject(c, SASL_CANCELLED);
		return;
	}
	switch (step) {
	case STEP_LOGIN_USER:
		login_user(c, x, b64, len);
		return;
	case STEP_LOGIN_SECRET:
		login_secret(c, x, b64, len);
		return;
	case STEP_OAUTH:
		oauth(c, x, b64, len);
		return;
	default:
		plain(c, b64, len);
		return;
	}
}

void
sasl_exchange_oauth_error(struct conn *c, struct sasl_exchange *x, const char *b64, bool last)
{
	challenge(c, x, STEP_OAUTH_DUMMY, b64);
	x->last_fail = last;
}
