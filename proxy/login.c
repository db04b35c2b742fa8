/*
 * login.c: the login room (see login.h): credentials in hand to the
 * client's OK.  The order is DESIGN's: check the credentials and the
 * throttle, route and log in at the backend, and only after the backend
 * accepted the password ask the policy, whose refusals may reveal
 * something about the account.  Secrets are wiped here once the backend
 * answered; none reaches a log line.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "account.h"
#include "log.h"
#include "login.h"
#include "runtime.h"
#include "sasl.h"
#include "worker.h"

static uint64_t
now_ms(const struct conn *c)
{
	return (uint64_t)(ev_now(c->w->loop) * 1000.0);
}

/*
 * The user the client named, at the login room's door: c->user as sent
 * (cut; for logs and the admin's listing: log_quote() escapes it) and its
 * account key, made here once for the policy, routing and the backend.
 * The key is made from c->user up to a NUL, as every room took it before.
 */
static void
login_name(struct conn *c, const char *user, size_t len)
{
	size_t n = len < sizeof(c->user) - 1 ? len : sizeof(c->user) - 1;

	memcpy(c->user, user, n);
	c->user[n] = '\0';
	c->key_len = account_key(c->user, strlen(c->user), c->key, sizeof(c->key));
}

/* Log login.ok / login.fail, count and tarpit failures, wipe the
 * credentials.  why: a name from a closed table (login_reason_name() or
 * policy_reason_name()).  true when this failure used the last attempt. */
static bool
login_end(struct conn *c, enum fail_class fc, const char *why)
{
	char quser[LOG_QUOTED_MAX];
	double ms = (ev_now(c->w->loop) - c->login_started) * 1000.0;

	creds_free(&c->creds);
	metrics_login(&c->w->metrics, c->lc->proto, fc, ms / 1000.0);
	log_quote(quser, sizeof(quser), c->user, strlen(c->user));
	if (fc == FAIL_NONE) {
		log_kv(LOG_INFO, "login.ok",
		       "cid=%016llx proto=%s client=%s user=%s mech=%s backend=%s ms=%.0f",
		       (unsigned long long)c->id, proto_name(c->lc->proto), c->peer, quser,
		       login_mech_name(c->login_mech), c->backend_name ? c->backend_name : "-", ms);
		return false;
	}
	log_kv(LOG_INFO, "login.fail",
	       "cid=%016llx proto=%s client=%s user=%s mech=%s backend=%s class=%s reason=%s "
	       "ms=%.0f",
	       (unsigned long long)c->id, proto_name(c->lc->proto), c->peer, quser,
	       login_mech_name(c->login_mech), c->backend_name ? c->backend_name : "-",
	       fail_class_name(fc), why, ms);
	if (fail_refuses_credentials(fc)) {
		/* Only real credential failures count, never an outage. */
		conn_hold(
		    c, policy_login_failed_pw(c->w->pw, (const struct sockaddr *)&c->client_sa,
		                              sizeof(c->client_sa), c->key, c->key_len, now_ms(c)));
	} else if (fc == FAIL_THROTTLE) {
		conn_hold(c, c->throttle_delay_ms);
	}
	if (fail_refuses_credentials(fc) || fc == FAIL_POLICY || fc == FAIL_LOCKED ||
	    fc == FAIL_THROTTLE)
		c->auth_failures++;
	return c->auth_failures >= c->cfg->limits.max_auth_failures;
}

/* The outcome, told to the client; why as for login_end().  c may be
 * closed when it returns. */
static void
login_finish_as(struct conn *c, enum fail_class fc, const char *why)
{
	bool async = c->state == CS_BACKEND || c->state == CS_POLICY;

	if (fc == FAIL_NONE) {
		(void)login_end(c, fc, why);
		/* The client's tag on the backend's post-login capabilities. */
		c->proto->reply_ok(c, backend_ok_text(c->be));
		conn_relay_start(c); /* c may be closed here */
		return;
	}
	if (fc == FAIL_AUTH && c->be != NULL && backend_oauth_error(c->be) != NULL) {
		/* RFC 7628 §3.2.2: the backend's error challenge goes to the
		 * client, whose dummy response the session reads before it
		 * hears the refusal (login_oauth_refusal).  Counted, logged and
		 * tarpitted now: a client that hangs up there is no cheaper. */
		bool last = login_end(c, fc, why);
		c->proto->oauth_error(c, backend_oauth_error(c->be), last);
		backend_free(&c->be);
		if (async) {
			conn_set_state(c, CS_PREAUTH);
			conn_resume(c);
		}
		return;
	}
	backend_free(&c->be);
	c->proto->reply_fail(c, fail_reply_text(fc, c->lc->proto));
	if (login_end(c, fc, why)) {
		c->proto->bye(c, "Too many authentication failures.");
		conn_close_after(c, CLOSE_TOO_MANY_AUTH_FAILURES);
		return;
	}
	if (async) {
		conn_set_state(c, CS_PREAUTH);
		conn_resume(c); /* flush the refusal, then go on with pipelined input */
	}
}

/* The outcome, for postern's own reasons. */
static void
login_finish(struct conn *c, enum fail_class fc, enum login_reason why)
{
	login_finish_as(c, fc, login_reason_name(why));
}

void
login_refuse(struct conn *c, enum fail_class fc, enum login_reason why)
{
	c->login_started = ev_now(c->w->loop); /* refused as it came: ms=0 */
	/* Nobody is named yet: neither the log line nor the throttle may take
	 * an earlier attempt's user for this one. */
	login_name(c, "", 0);
	login_finish(c, fc, why);
}

void
login_oauth_refusal(struct conn *c, bool last)
{
	c->proto->reply_fail(c, fail_reply_text(FAIL_AUTH, c->lc->proto));
	if (last) {
		c->proto->bye(c, "Too many authentication failures.");
		conn_close_after(c, CLOSE_TOO_MANY_AUTH_FAILURES);
	}
}

static void
policy_answer(void *arg, const struct policy_answer *a)
{
	struct conn *c = arg;
	enum fail_class fc;

	c->preq = NULL; /* freed by policy after this returns */
	if (c->closed)
		return;
	if (a->verdict == POLICY_ALLOW) {
		c->session_live = true;
		login_finish(c, FAIL_NONE, LR_NONE); /* c may be freed */
		return;
	}
	metrics_refused(&c->w->metrics, a->verdict);
	log_kv(LOG_INFO, "policy.deny", "cid=%016llx client=%s user=%s verdict=%s reason=%s",
	       (unsigned long long)c->id, c->peer, c->user[0] ? "(see login.fail)" : "-",
	       policy_verdict_name[a->verdict], policy_reason_name(a->reason));
	fc = fail_class_of_verdict(a->verdict, true);
	/* Say which protocol the account is set to, when it is the other. */
	if (fc == FAIL_POLICY && a->allowed < PROTO__COUNT && a->allowed != c->lc->proto)
		fc = FAIL_LOCKED;
	backend_logout(c->be);
	login_finish_as(c, fc, policy_reason_name(a->reason));
}

void
login_policy_timeout(struct conn *c)
{
	policy_req_cancel(&c->preq);
	log_kv(LOG_WARN, "backend.fail",
	       "cid=%016llx backend=%s reason=%s said=\"no policy answer in time\"",
	       (unsigned long long)c->id, c->backend_name ? c->backend_name : "-",
	       login_reason_name(LR_POLICY_TIMEOUT));
	backend_logout(c->be);
	login_finish(c, FAIL_INTERNAL, LR_POLICY_TIMEOUT);
}

/* The backend's answer: logged in, or why not. */
static void
backend_done(void *arg, enum fail_class fc, enum login_reason why)
{
	struct conn *c = arg;

	c->backend_name = backend_name(c->be); /* failover may have moved on */
	if (fc != FAIL_NONE) {
		login_finish(c, fc, why);
		return;
	}
	/* The policy speaks before the client hears OK. */
	conn_set_state(c, CS_POLICY);
	c->preq = policy_postauth_sid(c->w->pw, (const struct sockaddr *)&c->client_sa,
	                              sizeof(c->client_sa), c->key, c->key_len, c->lc->proto, c->id,
	                              c->backend_name, now_ms(c), policy_answer, c);
	if (c->preq == NULL) {
		backend_logout(c->be);
		login_finish(c, FAIL_INTERNAL, LR_POLICY_OUT_OF_MEMORY);
	}
}

/* Credentials that no backend should ever see: LR_NONE when fine.  A
 * token the decoders let through is fine by construction; this checks
 * again here, where it leaves for a backend. */
static enum login_reason
creds_invalid(enum creds_kind kind, const char *user, size_t user_len, const char *secret,
              size_t secret_len)
{
	size_t max = kind == CREDS_PASSWORD ? CREDS_SECRET_MAX : CREDS_TOKEN_MAX;

	if (user_len == 0 || user_len > CREDS_USER_MAX || secret_len == 0 || secret_len > max)
		return LR_INVALID_CREDENTIALS;
	/* A user name is text: CR, LF, NUL and other controls have no business
	 * there and are how command injection would start. */
	for (size_t i = 0; i < user_len; i++) {
		unsigned char ch = (unsigned char)user[i];
		if (ch < 0x20 || ch == 0x7f)
			return LR_INVALID_USER_NAME;
	}
	if (kind != CREDS_PASSWORD) {
		/* RFC 6750 §2.1 b64token: printable, no space. */
		for (size_t i = 0; i < secret_len; i++) {
			unsigned char ch = (unsigned char)secret[i];
			if (ch <= 0x20 || ch >= 0x7f)
				return LR_INVALID_TOKEN;
		}
		return LR_NONE;
	}
	/* A password may hold anything SASL PLAIN can carry, but not NUL, CR or
	 * LF: POP3 PASS and IMAP quoted strings cannot carry them either. */
	if (memchr(secret, '\0', secret_len) || memchr(secret, '\r', secret_len) ||
	    memchr(secret, '\n', secret_len))
		return LR_INVALID_PASSWORD;
	return LR_NONE;
}

/* Credentials checked, throttle asked, then the backend: the common path
 * of passwords and tokens.  token NULL: a password in secret. */
static void
login_start(struct conn *c, enum creds_kind kind, const char *user, size_t user_len,
            const char *secret, size_t secret_len, enum login_mech mech)
{
	struct backend_req req;
	enum policy_verdict v;
	enum fail_class fc;
	enum login_reason why;
	uint64_t delay = 0;

	login_name(c, user, user_len);
	c->login_mech = mech;
	c->login_started = ev_now(c->w->loop);
	why = creds_invalid(kind, user, user_len, secret, secret_len);
	if (why != LR_NONE) {
		login_finish(c, FAIL_AUTH, why);
		return;
	}
	/* Throttled: no backend hears of it; answered after the tarpit.  A
	 * refused token counts as a refused password: same keys. */
	v = policy_login_check(c->w->policy, (const struct sockaddr *)&c->client_sa,
	                       sizeof(c->client_sa), c->key, c->key_len, now_ms(c), &delay);
	if (v != POLICY_ALLOW) {
		c->throttle_delay_ms = delay;
		metrics_refused(&c->w->metrics, v);
		login_finish(c, fail_class_of_verdict(v, true), LR_THROTTLED);
		return;
	}
	c->creds = calloc(1, sizeof(*c->creds));
	if (c->creds == NULL ||
	    (kind != CREDS_PASSWORD && (c->creds->token = malloc(secret_len + 1)) == NULL)) {
		login_finish(c, FAIL_INTERNAL, LR_OUT_OF_MEMORY);
		return;
	}
	c->creds->kind = kind;
	memcpy(c->creds->user, user, user_len);
	c->creds->user_len = user_len;
	if (kind == CREDS_PASSWORD) {
		memcpy(c->creds->secret, secret, secret_len);
		c->creds->secret_len = secret_len;
	} else {
		memcpy(c->creds->token, secret, secret_len);
		c->creds->token[secret_len] = '\0';
		c->creds->token_len = secret_len;
	}
	req = (struct backend_req){
	    .cid = c->id,
	    .loop = c->w->loop,
	    .rt = c->rt,
	    .proto = c->lc->proto,
	    .client_sa = &c->client_sa,
	    .local_sa = &c->local_sa,
	    .client_ssl = c->cl.ssl,
	    .creds = c->creds,
	    .key = c->key,
	    .key_len = c->key_len,
	    .pw = c->w->pw,
	    .done = backend_done,
	    .arg = c,
	};
	c->be = backend_start(&req, &fc, &why);
	if (c->be == NULL) {
		login_finish(c, fc, why);
		return;
	}
	c->backend_name = backend_name(c->be);
	conn_set_state(c, CS_BACKEND);
}

void
login_begin(struct conn *c, const char *user, size_t user_len, const char *secret,
            size_t secret_len, enum login_mech mech)
{
	login_start(c, CREDS_PASSWORD, user, user_len, secret, secret_len, mech);
}

enum sasl_rc
login_sasl_oauth(struct conn *c, unsigned mech, const char *b64, size_t len)
{
	char user[SASL_USER_MAX + 1];
	char *token = malloc(SASL_TOKEN_MAX + 1); /* only while a token is in hand */
	size_t ulen = 0, tlen = 0;
	enum login_mech name = mech == AUTHM_XOAUTH2 ? LM_XOAUTH2 : LM_OAUTHBEARER;
	enum sasl_rc rc;

	c->login_mech = name;
	c->login_started = ev_now(c->w->loop);
	login_name(c, "", 0); /* not known until the message is decoded */
	if (token == NULL) {
		login_finish(c, FAIL_INTERNAL, LR_OUT_OF_MEMORY);
		return SASL_OK;
	}
	rc = mech == AUTHM_XOAUTH2 ? sasl_xoauth2_decode(b64, len, user, &ulen, token, &tlen)
	                           : sasl_oauthbearer_decode(b64, len, user, &ulen, token, &tlen);
	if (rc == SASL_OK)
		login_start(c, mech == AUTHM_XOAUTH2 ? CREDS_XOAUTH2 : CREDS_OAUTHBEARER, user,
		            ulen, token, tlen, name);
	OPENSSL_cleanse(user, sizeof(user));
	OPENSSL_cleanse(token, SASL_TOKEN_MAX + 1);
	free(token);
	return rc;
}

enum sasl_rc
login_sasl_plain(struct conn *c, const char *b64, size_t len)
{
	char user[SASL_USER_MAX + 1], secret[SASL_SECRET_MAX + 1];
	size_t ulen = 0, slen = 0;
	enum sasl_rc rc;

	c->login_mech = LM_PLAIN;
	rc = sasl_plain_decode(b64, len, user, &ulen, secret, &slen);
	if (rc == SASL_OK)
		login_begin(c, user, ulen, secret, slen, LM_PLAIN);
	OPENSSL_cleanse(user, sizeof(user));
	OPENSSL_cleanse(secret, sizeof(secret));
	return rc;
}
