/*
 * backend_pop3.c: the POP3 side of a backend login (RFC 1939, RFC 2449
 * CAPA, RFC 2595 STLS, RFC 5034 AUTH), as a client: greeting, STLS, CAPA,
 * XCLIENT with the client's address (Dovecot), then AUTH PLAIN or
 * USER/PASS with credentials re-serialised here, or AUTH XOAUTH2 /
 * OAUTHBEARER with the client's token in a message built here (with the
 * RFC 7628 §3.2.2 error exchange), and QUIT when a login is refused after
 * all.  The only code that writes POP3 to a backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "backend_impl.h"
#include "sasl.h"

enum pop3_step {
	BP_GREETING,
	BP_STLS,
	BP_CAPA_FIRST,
	BP_CAPA_LIST,
	BP_XCLIENT,
	BP_AUTH,
	BP_USER,
	BP_PASS,
	BP_OAUTH /* AUTH XOAUTH2/OAUTHBEARER sent, waiting for "+ " */
};

/* Every byte the backend sends is read by lib/pop3_resp.c. */
static bool
is_ok(const char *line)
{
	const char *text;

	return pop3_resp_classify(line, &text) == POP3_R_OK;
}

/* A refusal: RFC 3206 codes after "-ERR " say what kind. */
static enum fail_class
err_class(const char *line)
{
	const char *t;

	if (pop3_resp_classify(line, &t) != POP3_R_ERR)
		return FAIL_BACKEND_PROTO;
	switch (pop3_resp_err_code(t)) {
	case POP3_E_SYS_TEMP:
		return FAIL_BACKEND_DOWN;
	case POP3_E_IN_USE:
		return FAIL_LIMIT;
	default:
		return FAIL_AUTH;
	}
}

/* A "+ " challenge (not "+OK"): its text, or NULL. */
static const char *
continuation(const char *line)
{
	const char *text;

	return pop3_resp_classify(line, &text) == POP3_R_CONTINUE ? text : NULL;
}

/* AUTH PLAIN with the initial response (RFC 5034 §4), else the response
 * alone after "+ ". */
static int
send_plain(struct backend *be, bool with_command)
{
	const struct creds *cr = be->req.creds;
	char b64[SASL_MAX_B64];
	size_t n =
	    sasl_plain_encode(cr->user, cr->user_len, cr->secret, cr->secret_len, b64, sizeof(b64));
	int rc = n == 0         ? -1
	         : with_command ? backend_printf(be, "AUTH PLAIN %s\r\n", b64)
	                        : backend_printf(be, "%s\r\n", b64);

	OPENSSL_cleanse(b64, sizeof(b64));
	return backend_sent(be, rc);
}

/* The XOAUTH2/OAUTHBEARER message, built from user and token, as the
 * response after "+ " (RFC 5034 §4: long responses wait for it). */
static int
send_oauth_response(struct backend *be)
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
		if (n > 0 && backend_send(be, b64, n) == 0)
			rc = backend_send(be, "\r\n", 2);
		OPENSSL_cleanse(b64, SASL_OAUTH_B64_MAX + 1);
		free(b64);
	}
	be->step = BP_AUTH;
	return backend_sent(be, rc);
}

/* RFC 7628 §3.2.2: a challenge after our token is the error.  Keep it
 * (re-encoded from its JSON) for the client, answer with the dummy
 * response; -ERR follows. */
static int
oauth_error(struct backend *be, const char *text)
{
	char json[SASL_OAUTH_ERR_MAX + 1];
	size_t jlen = 0;

	be->oauth_dummy = true;
	if (sasl_oauth_error_decode(text, strlen(text), json, &jlen) == SASL_OK)
		EVP_EncodeBlock((unsigned char *)be->oauth_err, (const unsigned char *)json,
		                (int)jlen);
	OPENSSL_cleanse(json, sizeof(json));
	return backend_sent(
	    be, backend_send(be, SASL_OAUTH_DUMMY "\r\n", sizeof(SASL_OAUTH_DUMMY) + 1));
}

static int
send_credentials(struct backend *be)
{
	const struct creds *cr = be->req.creds;

	if (cr->kind != CREDS_PASSWORD) {
		unsigned mech = cr->kind == CREDS_XOAUTH2 ? AUTHM_XOAUTH2 : AUTHM_OAUTHBEARER;
		if (!(be->capa.mechs & mech)) {
			char said[64];
			snprintf(said, sizeof(said), "backend does not offer SASL %s",
			         auth_mech_name(mech));
			return backend_fail_said(be, said, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_MECHANISM_UNAVAILABLE);
		}
		be->creds_sent = true;
		be->step = BP_OAUTH;
		return backend_sent(be, backend_printf(be, "AUTH %s\r\n", auth_mech_name(mech)));
	}
	be->creds_sent = true;
	if (be->capa.sasl_plain) {
		be->step = BP_AUTH;
		return send_plain(be, true);
	}
	/* USER/PASS: the session refused CR, LF and NUL in both already. */
	be->step = BP_USER;
	return backend_sent(be, backend_printf(be, "USER %.*s\r\n", (int)cr->user_len, cr->user));
}

/* CAPA is done: forward the client's address if asked, then log in. */
static int
capa_done(struct backend *be)
{
	if (be->bc->forward & FORWARD_XCLIENT) {
		int rc = backend_xclient(be, be->capa.xclient, BP_XCLIENT);

		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	return send_credentials(be);
}

static int
pop3_dialog_line(struct backend *be, char *line)
{
	const struct creds *cr = be->req.creds;

	switch ((enum pop3_step)be->step) {
	case BP_GREETING:
		if (!is_ok(line))
			return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_BAD_GREETING);
		backend_greeted(be);
		/* Dovecot offers XCLIENT in its greeting's response code
		 * ("+OK [XCLIENT] ..."), not in CAPA, to trusted networks. */
		if (pop3_resp_greeting_xclient(line[3] == ' ' ? line + 4 : line + 3))
			be->capa.xclient = true;
		if (be->bc->tls == TLSM_STARTTLS && be->link.ssl == NULL) {
			be->step = BP_STLS; /* RFC 2595 §4 */
			return backend_sent(be, backend_send(be, "STLS\r\n", 6));
		}
		be->step = BP_CAPA_FIRST;
		return backend_sent(be, backend_send(be, "CAPA\r\n", 6));
	case BP_STLS:
		if (!is_ok(line))
			return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_STARTTLS_REFUSED);
		return backend_start_tls(be, BP_CAPA_FIRST);
	case BP_CAPA_FIRST:
		if (is_ok(line)) {
			be->step = BP_CAPA_LIST;
			return 0;
		}
		return send_credentials(be); /* no CAPA (RFC 1939 server): USER/PASS */
	case BP_CAPA_LIST:
		if (strcmp(line, ".") != 0) {
			pop3_resp_capa_line(line, &be->capa);
			return 0;
		}
		return capa_done(be);
	case BP_XCLIENT:
		if (!is_ok(line))
			backend_forward_failed(be, "xclient", line);
		return send_credentials(be);
	case BP_OAUTH:
		if (continuation(line) != NULL)
			return send_oauth_response(be);
		return backend_fail_said(be, line, err_class(line), LR_BACKEND_REFUSED_TOKEN);
	case BP_AUTH:
		if (continuation(line) != NULL) {
			if (cr->kind != CREDS_PASSWORD && !be->oauth_dummy)
				return oauth_error(be, continuation(line));
			if (cr->kind != CREDS_PASSWORD)
				return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
				                         LR_BACKEND_UNEXPECTED_CONTINUATION);
			return send_plain(be, false); /* it ignored the initial response */
		}
		/* fall through */
	case BP_PASS:
		if (is_ok(line)) {
			backend_set_text(be, line[3] == ' ' ? line + 4 : "");
			backend_logged_in(be);
			return -1;
		}
		return backend_fail_said(be, line, err_class(line),
		                         cr->kind != CREDS_PASSWORD ? LR_BACKEND_REFUSED_TOKEN
		                                                    : LR_BACKEND_REFUSED_LOGIN);
	case BP_USER:
		if (!is_ok(line))
			return backend_fail_said(be, line, err_class(line),
			                         LR_BACKEND_REFUSED_LOGIN);
		be->step = BP_PASS;
		return backend_sent(
		    be, backend_printf(be, "PASS %.*s\r\n", (int)cr->secret_len, cr->secret));
	}
	return 0;
}

static void
pop3_dialog_begin(struct backend *be)
{
	be->step = BP_GREETING;
}

static void
pop3_dialog_after_tls(struct backend *be)
{
	if (be->step == BP_CAPA_FIRST)
		(void)backend_send(be, "CAPA\r\n", 6);
}

static const char *
pop3_dialog_ok_text(const struct backend *be)
{
	return be->text;
}

const struct backend_dialog backend_pop3_dialog = {
    .name = "pop3",
    .begin = pop3_dialog_begin,
    .after_tls = pop3_dialog_after_tls,
    .line = pop3_dialog_line,
    .ok_text = pop3_dialog_ok_text,
    .logout = "QUIT\r\n",
};
