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
#include "addr.h"
#include "chars.h"
#include "dynback.h"
#include "log.h"
#include "login.h"
#include "lookup.h"
#include "runtime.h"
#include "utf8.h"
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
	conn_names_changed(c); /* a second login may name another user */
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

/* How a refusal is told, when not in the words of reason.c's table: a
 * lookup service's own text, held for its Auth-Wait, or ending the
 * session as nginx does without one. */
struct told {
	const char *text; /* after "NO " / "-ERR "; NULL: fail_reply_text() */
	uint64_t hold_ms; /* the refusal waits at least this long */
	bool end;         /* BYE and close after the refusal */
};

/* The outcome, told to the client; why as for login_end(); t NULL: in
 * reason.c's words.  c may be closed when it returns. */
static void
login_tell(struct conn *c, enum fail_class fc, const char *why, const struct told *t)
{
	bool async = c->state == CS_BACKEND || c->state == CS_POLICY;
	bool last;

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
		last = login_end(c, fc, why);
		c->proto->oauth_error(c, backend_oauth_error(c->be), last);
		backend_free(&c->be);
		if (async) {
			conn_set_state(c, CS_PREAUTH);
			conn_resume(c);
		}
		return;
	}
	backend_free(&c->be);
	c->proto->reply_fail(c, t != NULL && t->text != NULL ? t->text
	                                                     : fail_reply_text(fc, c->lc->proto));
	last = login_end(c, fc, why);
	if (t != NULL && t->hold_ms > 0 &&
	    (!c->tarpit || ev_timer_remaining(c->w->loop, &c->delay) * 1000.0 < (double)t->hold_ms))
		conn_hold(c, t->hold_ms);
	if (last || (t != NULL && t->end)) {
		/* POP3 has no untagged words: its -ERR was the last */
		if (last || c->lc->proto != PROTO_POP3)
			c->proto->bye(c, last ? "Too many authentication failures."
			                      : "Authentication failed.");
		conn_close_after(c, last ? CLOSE_TOO_MANY_AUTH_FAILURES : CLOSE_LOOKUP_REFUSED);
		return;
	}
	if (async) {
		conn_set_state(c, CS_PREAUTH);
		conn_resume(c); /* flush the refusal, then go on with pipelined input */
	}
}

static void
login_finish_as(struct conn *c, enum fail_class fc, const char *why)
{
	login_tell(c, fc, why, NULL);
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
	conn_names_changed(c);
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
	if (!chars_no_control(user, user_len))
		return LR_INVALID_USER_NAME;
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

/* Route and log in at the backend: the backend a lookup named (pinned:
 * pin_dyn, or the configured pin_index), else the config's rules; a route
 * the store holds for the user comes first either way.  c may be closed. */
static void
login_backend(struct conn *c, bool pinned, size_t pin_index, const struct dynback *pin_dyn)
{
	struct backend_req req;
	enum fail_class fc;
	enum login_reason why;

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
	    .pinned = pinned,
	    .pin_index = pin_index,
	    .pin_dyn = pin_dyn,
	    .done = backend_done,
	    .arg = c,
	};
	c->be = backend_start(&req, &fc, &why);
	if (c->be == NULL) {
		login_finish(c, fc, why);
		return;
	}
	c->backend_name = backend_name(c->be);
	conn_names_changed(c);
	conn_set_state(c, CS_BACKEND);
}

/* ---- the user lookup (lookup.h): asked after the throttle, before the
 * backend; its answer routes the login, rewrites it, or refuses it ---- */

/* The lookup's answer named nothing usable: said in the log, told as a
 * temporary failure. */
static void
login_lookup_bad(struct conn *c, const char *what)
{
	log_kv(LOG_WARN, "lookup.bad_answer", "cid=%016llx note=\"%s\"", (unsigned long long)c->id,
	       what);
	login_finish(c, FAIL_LOOKUP, LR_LOOKUP_BAD_ROUTE);
}

/* LOOKUP_OK: the backend login as the service says, then that backend. */
static void
login_lookup_route(struct conn *c, const struct lookup_answer *a)
{
	struct creds *cr = c->creds;
	const struct dynback *dyn = NULL;
	size_t idx = 0;

	if (a->has_user) {
		if (creds_invalid(CREDS_PASSWORD, a->user, a->user_len, "x", 1) != LR_NONE) {
			login_lookup_bad(c, "the user it names cannot be sent to a backend");
			return;
		}
		memcpy(cr->user, a->user, a->user_len);
		cr->user[a->user_len] = '\0';
		cr->user_len = a->user_len;
	}
	if (a->has_pass && cr->kind == CREDS_PASSWORD) {
		if (creds_invalid(CREDS_PASSWORD, cr->user, cr->user_len, a->pass, a->pass_len) !=
		    LR_NONE) {
			login_lookup_bad(c, "the password it names cannot be sent to a backend");
			return;
		}
		OPENSSL_cleanse(cr->secret, sizeof(cr->secret));
		memcpy(cr->secret, a->pass, a->pass_len);
		cr->secret_len = a->pass_len;
	}
	if (a->backend[0] != '\0') {
		int64_t i = config_backend_find(c->cfg, a->backend);

		if (i < 0) {
			login_lookup_bad(c, "it names a backend this config lacks");
			return;
		}
		login_backend(c, true, (size_t)i, NULL);
		return;
	}
	switch (dynback_resolve(c->rt->dyn, c->cfg, c->lc->proto, a->server, a->port, a->tls, &idx,
	                        &dyn)) {
	case DYNBACK_CONFIGURED:
		login_backend(c, true, idx, NULL);
		return;
	case DYNBACK_DYNAMIC:
		login_backend(c, true, 0, dyn);
		return;
	case DYNBACK_FULL:
		login_lookup_bad(c, "lookup.max_backends backends named by address are in use");
		return;
	default:
		login_lookup_bad(c, "its server is no IP address");
		return;
	}
}

/* LOOKUP_REFUSED: with the JSON protocol an ordinary failed login; with
 * nginx's, the service's own words, after Auth-Wait (the session stays)
 * or followed by the end of the session, as nginx does. */
static void
login_lookup_refused(struct conn *c, const struct lookup_answer *a)
{
	char text[LOOKUP_TEXT_MAX + 32];
	struct told t = {.text = text};
	bool imap = c->lc->proto != PROTO_POP3; /* ManageSieve takes IMAP's codes */

	if (c->cfg->lookup.protocol != LOOKUP_PROTO_NGINX) {
		login_finish(c, FAIL_AUTH, LR_LOOKUP_REFUSED);
		return;
	}
	if (a->error_sasl[0] != '\0' && c->creds->kind != CREDS_PASSWORD) {
		/* nginx PR 1590: Auth-Error-SASL is the RFC 7628 error challenge */
		char json[SASL_OAUTH_ERR_MAX + 1];
		size_t jl;

		if (sasl_oauth_error_decode(a->error_sasl, strlen(a->error_sasl), json, &jl) ==
		    SASL_OK) {
			bool last = login_end(c, FAIL_AUTH, login_reason_name(LR_LOOKUP_REFUSED));

			c->proto->oauth_error(c, a->error_sasl, last);
			conn_set_state(c, CS_PREAUTH);
			conn_resume(c);
			return;
		}
	}
	/* RFC 5530 / RFC 3206 codes unless the service sent its own */
	snprintf(text, sizeof(text), "%s%s",
	         a->text[0] == '[' ? ""
	         : imap            ? "[AUTHENTICATIONFAILED] "
	                           : "[AUTH] ",
	         a->text);
	if (a->wait_s > 0)
		t.hold_ms = (uint64_t)a->wait_s * 1000;
	else
		t.end = true;
	login_tell(c, FAIL_AUTH, login_reason_name(LR_LOOKUP_REFUSED), &t);
}

static void
login_looked_up(void *arg, const struct lookup_answer *a, enum lookup_source src, double seconds)
{
	static const char *const sources[] = {"service", "cache", "timeout", "transport",
	                                      "breaker"};
	struct conn *c = arg;

	c->lreq = NULL; /* freed by lookup after this returns */
	if (c->closed)
		return;
	switch (a->status) {
	case LOOKUP_OK:
		login_lookup_route(c, a);
		return;
	case LOOKUP_REFUSED:
		login_lookup_refused(c, a);
		return;
	case LOOKUP_UNKNOWN:
		login_finish(c, FAIL_AUTH, LR_LOOKUP_UNKNOWN_USER);
		return;
	default:
		break;
	}
	{
		char q[LOG_QUOTED_MAX];

		log_kv(LOG_WARN, "lookup.fail", "cid=%016llx source=%s why=%s ms=%.0f fallback=%s",
		       (unsigned long long)c->id, (unsigned)src < 5 ? sources[src] : "?",
		       log_quote(q, sizeof(q), a->why, strlen(a->why)), seconds * 1000.0,
		       c->cfg->lookup.on_failure == LOOKUP_FAIL_RULES ? "rules" : "none");
	}
	if (c->cfg->lookup.on_failure == LOOKUP_FAIL_RULES)
		login_backend(c, false, 0, NULL);
	else
		login_finish(c, FAIL_LOOKUP, LR_LOOKUP_UNAVAILABLE);
}

/* Ask url about the login in c->creds; the answer comes to
 * login_looked_up().  c may be closed when it returns. */
static void
login_lookup(struct conn *c, const char *url)
{
	const struct lookup_conf *lk = &c->cfg->lookup;
	const struct creds *cr = c->creds;
	char cip[ADDR_TEXT_MAX], lip[ADDR_TEXT_MAX];
	unsigned cport, lport;
	struct lookup_query q = {
	    .proto = c->lc->proto,
	    .method = cr->kind == CREDS_XOAUTH2       ? LOOKUP_METHOD_XOAUTH2
	              : cr->kind == CREDS_OAUTHBEARER ? LOOKUP_METHOD_OAUTHBEARER
	                                              : LOOKUP_METHOD_PLAIN,
	    .user = cr->user,
	    .user_len = cr->user_len,
	    .attempt = c->login_attempts,
	    .client_ip = cip,
	    .local_ip = lip,
	    .headers = (const char *const *)lk->headers,
	    .nheaders = lk->nheaders,
	};

	addr_parts((const struct sockaddr *)&c->client_sa, cip, sizeof(cip), &cport);
	addr_parts((const struct sockaddr *)&c->local_sa, lip, sizeof(lip), &lport);
	q.client_port = (uint16_t)cport;
	q.local_port = (uint16_t)lport;
	if (lk->send_password) {
		q.pass = cr->kind == CREDS_PASSWORD ? cr->secret : cr->token;
		q.pass_len = cr->kind == CREDS_PASSWORD ? cr->secret_len : cr->token_len;
	}
	/* JSON carries text only: a name or password in another charset
	 * cannot be asked about (nginx's escaped headers carry any byte) */
	if (lk->protocol == LOOKUP_PROTO_JSON &&
	    (!utf8_valid((const uint8_t *)q.user, q.user_len) ||
	     (q.pass != NULL && !utf8_valid((const uint8_t *)q.pass, q.pass_len)))) {
		login_finish(c, FAIL_AUTH,
		             utf8_valid((const uint8_t *)q.user, q.user_len)
		                 ? LR_INVALID_PASSWORD
		                 : LR_INVALID_USER_NAME);
		return;
	}
	if (c->cl.ssl != NULL) {
		q.ssl = true;
		q.ssl_protocol = SSL_get_version(c->cl.ssl);
		q.ssl_cipher = SSL_get_cipher_name(c->cl.ssl);
	}
	if (c->lc->proxy_protocol) {
		/* the addresses the load balancer's PROXY header named */
		q.proxy_addr = cip;
		q.proxy_port = q.client_port;
		q.proxy_server_addr = lip;
		q.proxy_server_port = q.local_port;
	}
	c->lreq =
	    c->w->lookup != NULL ? lookup_ask(c->w->lookup, lk, url, &q, login_looked_up, c) : NULL;
	if (c->lreq == NULL) {
		login_finish(c, FAIL_INTERNAL, LR_OUT_OF_MEMORY);
		return;
	}
	conn_set_state(c, CS_BACKEND);
}
/* Credentials checked, throttle asked, then the backend: the common path
 * of passwords and tokens.  token NULL: a password in secret. */
static void
login_start(struct conn *c, enum creds_kind kind, const char *user, size_t user_len,
            const char *secret, size_t secret_len, enum login_mech mech)
{
	enum policy_verdict v;
	enum login_reason why;
	const char *url;
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
	c->login_attempts++;
	if ((url = config_lookup_url(c->cfg, c->lc)) != NULL) {
		login_lookup(c, url);
		return;
	}
	login_backend(c, false, 0, NULL);
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
