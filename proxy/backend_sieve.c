/*
 * backend_sieve.c: the ManageSieve side of a backend login (RFC 5804), as
 * a client: the greeting's capability lines, STARTTLS and the capabilities
 * it re-sends (§2.2), then AUTHENTICATE "PLAIN" with an initial response
 * or "LOGIN" with credentials re-serialised here, or "XOAUTH2" /
 * "OAUTHBEARER" with the client's token in a message built here (with the
 * RFC 7628 §3.2.2 error exchange), and LOGOUT when a login is refused after
 * all.  The only code that writes ManageSieve to a backend.
 *
 * The client's address: RFC 5804 has no command for it, but Dovecot's
 * managesieve-login offers XCLIENT (ADDR, PORT, SESSION, as for POP3) to
 * login_trusted_networks in its greeting; forward = "xclient" sends it
 * when offered and logs backend.forward when not.  A PROXY header
 * (forward = "proxy"/"proxy-v2") is sent by backend.c as for any
 * protocol.  forward = "id" is IMAP's alone: ignored here, silently, as
 * POP3 does.
 *
 * It also keeps, for the whole process, the SIEVE and NOTIFY lists of the
 * latest greeting, which sieve listeners announce before login.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "backend_impl.h"
#include "sasl.h"

enum sieve_step {
	BS_GREETING,     /* capability lines, then OK */
	BS_STARTTLS,     /* STARTTLS sent */
	BS_TLS_GREETING, /* over TLS: capability lines again, then OK (§2.2) */
	BS_XCLIENT,      /* XCLIENT sent (Dovecot) */
	BS_LOGIN_USER,   /* AUTHENTICATE "LOGIN" sent: the user's challenge */
	BS_LOGIN_SECRET, /* the user sent: the password's challenge */
	BS_AUTH,         /* AUTHENTICATE with an initial response sent */
	BS_ANSWER,       /* the exchange is over: OK or NO */
};

/* RFC 5804 §4: a quoted string holds at most 1024 octets; longer ones go
 * as a non-synchronising literal. */
#define QUOTED_MAX 1024

/* ---- the capabilities sieve listeners announce --------------------------- */

static pthread_mutex_t caps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	bool have;
	char sieve[SIEVE_CAP_VALUE_MAX + 1];
	char notify[SIEVE_RESP_TEXT_MAX];
} caps_seen;

static void
copy_cut(char *dst, size_t cap, const char *src)
{
	size_t n;

	if (cap == 0)
		return;
	n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

bool
backend_sieve_caps(char *sieve, size_t sieve_len, char *notify, size_t notify_len)
{
	bool have;

	pthread_mutex_lock(&caps_lock);
	have = caps_seen.have;
	copy_cut(sieve, sieve_len, caps_seen.sieve);
	copy_cut(notify, notify_len, caps_seen.notify);
	pthread_mutex_unlock(&caps_lock);
	return have;
}

/* The greeting we log in after: remember what it offers, if it says. */
static void
caps_remember(const struct sieve_caps *sc)
{
	if (sc->sieve[0] == '\0')
		return;
	pthread_mutex_lock(&caps_lock);
	caps_seen.have = true;
	copy_cut(caps_seen.sieve, sizeof(caps_seen.sieve), sc->sieve);
	copy_cut(caps_seen.notify, sizeof(caps_seen.notify), sc->notify);
	pthread_mutex_unlock(&caps_lock);
}

/* ---- what we send -------------------------------------------------------- */

/* Queue s[0..len) (base64: nothing to escape) as a quoted string, or a
 * {n+} literal when longer than a quoted string may be. */
static int
send_string(struct backend *be, const char *s, size_t len)
{
	char hdr[32];
	int n;

	if (len <= QUOTED_MAX) {
		if (backend_send(be, "\"", 1) < 0 || backend_send(be, s, len) < 0)
			return -1;
		return backend_send(be, "\"", 1);
	}
	n = snprintf(hdr, sizeof(hdr), "{%zu+}\r\n", len);
	if (backend_send(be, hdr, (size_t)n) < 0)
		return -1;
	return backend_send(be, s, len);
}

/* Queue a string, then CRLF: a command's last argument, or a response to
 * a challenge on a line of its own (§2.1). */
static int
send_string_line(struct backend *be, const char *s, size_t len)
{
	if (send_string(be, s, len) < 0)
		return -1;
	return backend_send(be, "\r\n", 2);
}

/* The PLAIN message "\0user\0secret" in base64, as a string line. */
static int
send_plain_response(struct backend *be)
{
	const struct creds *cr = be->req.creds;
	char b64[SASL_MAX_B64];
	size_t n =
	    sasl_plain_encode(cr->user, cr->user_len, cr->secret, cr->secret_len, b64, sizeof(b64));
	int rc = n == 0 ? -1 : send_string_line(be, b64, n);

	OPENSSL_cleanse(b64, sizeof(b64));
	return rc;
}

/* One LOGIN answer, s[0..len) in base64, as a string line. */
static int
send_login_response(struct backend *be, const char *s, size_t len)
{
	char b64[SASL_MAX_B64];
	int rc = -1;

	if (len <= SASL_SECRET_MAX) {
		int n = EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)s, (int)len);
		rc = send_string_line(be, b64, (size_t)n);
	}
	OPENSSL_cleanse(b64, sizeof(b64));
	return backend_sent(be, rc);
}

/* AUTHENTICATE "XOAUTH2"/"OAUTHBEARER" with a message built from the user
 * and token (never the client's bytes) as its initial response. */
static int
send_oauth(struct backend *be, const char *name)
{
	const struct creds *cr = be->req.creds;
	char *b64 = malloc(SASL_OAUTH_B64_MAX + 1);
	size_t n = 0;
	int rc = -1;

	if (b64 != NULL) {
		n = cr->kind == CREDS_XOAUTH2
		        ? sasl_xoauth2_encode(cr->user, cr->user_len, cr->token, cr->token_len, b64,
		                              SASL_OAUTH_B64_MAX + 1)
		        : sasl_oauthbearer_encode(cr->user, cr->user_len, cr->token, cr->token_len,
		                                  b64, SASL_OAUTH_B64_MAX + 1);
		if (n > 0 && backend_printf(be, "AUTHENTICATE \"%s\" ", name) == 0)
			rc = send_string_line(be, b64, n);
		OPENSSL_cleanse(b64, SASL_OAUTH_B64_MAX + 1);
		free(b64);
	}
	be->step = BS_AUTH;
	return backend_sent(be, rc);
}

/* Log in with what the backend's "SASL" list offers: a token with its own
 * mechanism; a password with PLAIN, else LOGIN.  -1: backend_fail. */
static int
send_credentials(struct backend *be)
{
	const struct creds *cr = be->req.creds;
	unsigned mechs = be->scaps.mechs;

	if (cr->kind != CREDS_PASSWORD) {
		unsigned mech =
		    cr->kind == CREDS_XOAUTH2 ? SASL_MECH_XOAUTH2 : SASL_MECH_OAUTHBEARER;
		if (!(mechs & mech)) {
			char said[64];
			snprintf(said, sizeof(said), "backend does not offer SASL %s",
			         sasl_mech_name(mech));
			return backend_fail_said(be, said, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_MECHANISM_UNAVAILABLE);
		}
		be->creds_sent = true;
		return send_oauth(be, sasl_mech_name(mech));
	}
	if (mechs & SASL_MECH_PLAIN) {
		be->creds_sent = true;
		be->step = BS_AUTH;
		if (backend_send(be, "AUTHENTICATE \"PLAIN\" ", 21) < 0)
			return backend_sent(be, -1);
		return backend_sent(be, send_plain_response(be));
	}
	if (mechs & SASL_MECH_LOGIN) {
		be->creds_sent = true;
		be->step = BS_LOGIN_USER;
		return backend_sent(be, backend_send(be, "AUTHENTICATE \"LOGIN\"\r\n", 22));
	}
	return backend_fail_said(be, "backend offers neither SASL PLAIN nor LOGIN",
	                         FAIL_BACKEND_PROTO, LR_BACKEND_MECHANISM_UNAVAILABLE);
}

/* RFC 7628 §3.2.2: a challenge after our token is the error.  Keep it
 * (re-encoded from the JSON it holds) for the client and answer with the
 * dummy response; NO follows. */
static int
oauth_error(struct backend *be, const char *b64)
{
	char json[SASL_OAUTH_ERR_MAX + 1];
	size_t jlen = 0;

	be->oauth_dummy = true;
	be->step = BS_ANSWER;
	if (sasl_oauth_error_decode(b64, strlen(b64), json, &jlen) == SASL_OK)
		EVP_EncodeBlock((unsigned char *)be->oauth_err, (const unsigned char *)json,
		                (int)jlen);
	else
		backend_set_text(be, "backend sent a malformed RFC 7628 error challenge");
	OPENSSL_cleanse(json, sizeof(json));
	return backend_sent(be, send_string_line(be, SASL_OAUTH_DUMMY, 4));
}

/* ---- what the backend says ----------------------------------------------- */

/* The client's OK tail in be->text: "(CODE) " unless none or SASL (a
 * security layer postern does not run), then the text quoted. */
static void
ok_tail(struct backend *be, const struct sieve_resp *r)
{
	const char *t = r->text[0] != '\0' ? r->text : "Logged in.";
	size_t cap = sizeof(be->text), o = 0;
	bool atom = r->code[0] != '\0' && strcmp(r->code, "SASL") != 0;

	for (const char *p = r->code; atom && *p != '\0'; p++)
		atom = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		       *p == '/' || *p == '_' || *p == '.';
	if (atom)
		o = (size_t)snprintf(be->text, cap, "(%s) ", r->code);
	be->text[o++] = '"';
	/* printable already (sieve_resp.h); room kept for an escape, the
	 * closing quote and the NUL */
	for (; *t != '\0' && o + 4 <= cap; t++) {
		if (*t == '"' || *t == '\\')
			be->text[o++] = '\\';
		be->text[o++] = *t;
	}
	be->text[o++] = '"';
	be->text[o] = '\0';
}

/* The answer to our AUTHENTICATE (a challenge handled by the caller). */
static int
answer(struct backend *be, const char *line, const struct sieve_resp *r)
{
	bool token = be->req.creds->kind != CREDS_PASSWORD;

	switch (r->kind) {
	case SIEVE_R_OK:
		ok_tail(be, r);
		backend_logged_in(be);
		return -1;
	case SIEVE_R_NO:
		/* (TRYLATER) is RFC 5804's [UNAVAILABLE]: not the credentials */
		return backend_fail_said(
		    be, line, strcmp(r->code, "TRYLATER") == 0 ? FAIL_BACKEND_DOWN : FAIL_AUTH,
		    token ? LR_BACKEND_REFUSED_TOKEN : LR_BACKEND_REFUSED_LOGIN);
	case SIEVE_R_BYE:
		return backend_fail_said(be, line, FAIL_BACKEND_DOWN, LR_BACKEND_BYE);
	case SIEVE_R_STRING:
		return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
		                         LR_BACKEND_UNEXPECTED_CONTINUATION);
	default:
		return backend_fail_said(be, line, FAIL_BACKEND_PROTO, LR_BACKEND_BAD_LOGIN_REPLY);
	}
}

/* The greeting we log in after is over: forward the client's address if
 * asked and offered, then log in. */
static int
greeted(struct backend *be)
{
	caps_remember(&be->scaps);
	if (be->bc->forward & FORWARD_XCLIENT) {
		int rc = backend_xclient(be, be->scaps.xclient, BS_XCLIENT);

		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	return send_credentials(be);
}

/* A greeting line (the first, or the one after STARTTLS): capabilities
 * gathered, OK ends it.  1 at its OK, 0 to read on, -1 when it failed. */
static int
greeting_line(struct backend *be, const char *line, const struct sieve_resp *r)
{
	switch (r->kind) {
	case SIEVE_R_CAP:
	case SIEVE_R_STRING:
		sieve_caps_add(&be->scaps, r);
		return 0;
	case SIEVE_R_OK:
		return 1;
	case SIEVE_R_NO:
	case SIEVE_R_BYE:
		return backend_fail_said(be, line, FAIL_BACKEND_DOWN, LR_BACKEND_BYE);
	default: /* a literal too: none is read from a backend before login */
		return backend_fail_said(be, line, FAIL_BACKEND_PROTO, LR_BACKEND_BAD_GREETING);
	}
}

static int
sieve_line(struct backend *be, char *line)
{
	const struct creds *cr = be->req.creds;
	struct sieve_resp r;
	int rc;

	(void)sieve_resp_parse(line, &r);
	switch ((enum sieve_step)be->step) {
	case BS_GREETING:
		if ((rc = greeting_line(be, line, &r)) <= 0)
			return rc;
		backend_greeted(be);
		if (be->bc->tls == TLSM_STARTTLS && be->link.ssl == NULL) {
			be->step = BS_STARTTLS; /* §2.2 */
			return backend_sent(be, backend_send(be, "STARTTLS\r\n", 10));
		}
		return greeted(be);
	case BS_STARTTLS:
		if (r.kind != SIEVE_R_OK)
			return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_STARTTLS_REFUSED);
		return backend_start_tls(be, BS_TLS_GREETING);
	case BS_TLS_GREETING:
		if ((rc = greeting_line(be, line, &r)) <= 0)
			return rc;
		return greeted(be);
	case BS_XCLIENT:
		/* Whatever the answer, log in: without it the backend only logs
		 * the proxy's address. */
		if (r.kind != SIEVE_R_OK)
			backend_forward_failed(be, "xclient", line);
		return send_credentials(be);
	case BS_LOGIN_USER:
		if (r.kind != SIEVE_R_STRING)
			return answer(be, line, &r);
		be->step = BS_LOGIN_SECRET;
		return send_login_response(be, cr->user, cr->user_len);
	case BS_LOGIN_SECRET:
		if (r.kind != SIEVE_R_STRING)
			return answer(be, line, &r);
		be->step = BS_ANSWER;
		return send_login_response(be, cr->secret, cr->secret_len);
	case BS_AUTH:
		if (r.kind == SIEVE_R_STRING) {
			if (cr->kind != CREDS_PASSWORD)
				return oauth_error(be, r.value_cut ? "" : r.value);
			if (r.value[0] == '\0') {
				/* it ignored the initial response: the same again */
				be->step = BS_ANSWER;
				return backend_sent(be, send_plain_response(be));
			}
		}
		return answer(be, line, &r);
	case BS_ANSWER:
		return answer(be, line, &r);
	}
	return 0;
}

static void
sieve_begin(struct backend *be)
{
	be->step = BS_GREETING;
	memset(&be->scaps, 0, sizeof(be->scaps)); /* a failover's backend starts afresh */
}

static void
sieve_after_tls(struct backend *be)
{
	/* §2.2: the capabilities come again, and only those over TLS count */
	memset(&be->scaps, 0, sizeof(be->scaps));
}

static const char *
sieve_ok_text(const struct backend *be)
{
	return be->text;
}

const struct backend_dialog backend_sieve_dialog = {
    .name = "sieve",
    .begin = sieve_begin,
    .after_tls = sieve_after_tls,
    .line = sieve_line,
    .ok_text = sieve_ok_text,
    .logout = "LOGOUT\r\n",
};
