/*
 * backend_imap.c: the IMAP side of a backend login (RFC 9051 / 3501), as
 * a client: greeting, STARTTLS, CAPABILITY, ID with the client's address
 * (RFC 2971, the fields Dovecot trusts), then AUTHENTICATE PLAIN or LOGIN
 * with credentials re-serialised here, or AUTHENTICATE XOAUTH2/OAUTHBEARER
 * with the client's token in a message built here (with the RFC 7628
 * §3.2.2 error exchange), and LOGOUT when a login is refused after all.  The only code that writes
 * IMAP to a backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "addr.h"
#include "backend_impl.h"
#include "imap.h"
#include "sasl.h"

/* Our tags, one per command, so an answer is never taken for another's. */
#define TAG_STARTTLS "A0"
#define TAG_CAPA     "A1"
#define TAG_LOGIN    "A2"
#define TAG_POSTCAPA "A3"
#define TAG_ID       "A4"
#define TAG_LOGOUT   "A9"

enum imap_step { BI_GREETING, BI_STARTTLS, BI_CAPA, BI_ID, BI_LOGIN, BI_POSTCAPA };

/* A line for the command tagged tag; "* CAPABILITY" lines update the
 * list (lib/imap_resp.c reads every byte the backend sends). */
static enum imap_resp_kind
classify(struct backend *be, const char *line, const char *tag, const char **text_out)
{
	enum imap_resp_kind k = imap_resp_classify(line, tag, &be->caps, text_out);

	if (k == IMAP_R_CAPS)
		be->have_caps = true;
	return k;
}

/* "[CAPABILITY a b c] text" at the start of resp-text: take the list. */
static void
caps_from_code(struct backend *be, const char *text)
{
	if (imap_resp_caps_code(text, &be->caps))
		be->have_caps = true;
}

/* Queue AUTHENTICATE PLAIN (RFC 4959 SASL-IR when offered; else the
 * response after "+", RFC 9051 §6.2.2). */
static int
send_authenticate(struct backend *be, const struct creds *cr)
{
	char b64[SASL_MAX_B64];
	size_t n =
	    sasl_plain_encode(cr->user, cr->user_len, cr->secret, cr->secret_len, b64, sizeof(b64));
	int rc = -1;

	if (n == 0)
		return -1;
	if (be->caps.sasl_ir) {
		rc = backend_printf(be, TAG_LOGIN " AUTHENTICATE PLAIN %s\r\n", b64);
	} else if (backend_printf(be, TAG_LOGIN " AUTHENTICATE PLAIN\r\n") == 0 &&
	           buf_append(&be->later, b64, n) == 0 && buf_append(&be->later, "\r\n", 2) == 0) {
		be->seg_len[be->nsegs++] = n + 2;
		rc = 0;
	}
	OPENSSL_cleanse(b64, sizeof(b64));
	return rc;
}

/* Quote s into cmd at *o as a string or a literal; a synchronising
 * literal's announcement ends a segment (the backend says "+" first). */
static int
quote_part(struct backend *be, char *cmd, size_t cap, size_t *o, size_t *seg_start, const char *s,
           size_t len)
{
	bool lit;
	size_t n = imap_quote(cmd + *o, cap - *o - 2, s, len, be->caps.literal_plus, &lit);

	if (n == 0)
		return -1;
	if (lit && !be->caps.literal_plus) {
		/* The quote wrote "{n}\r\n" + bytes: cut after the CRLF. */
		size_t hdr = (size_t)(strchr(cmd + *o, '\n') - (cmd + *o)) + 1;
		if (be->nsegs == BE_SEGS_MAX)
			return -1;
		be->seg_len[be->nsegs++] = *o + hdr - *seg_start;
		*seg_start = *o + hdr;
	}
	*o += n;
	return 0;
}

/* Queue LOGIN: "A2 LOGIN " user SP secret CRLF, each as a quoted string or
 * a literal, split after each synchronising literal's announcement. */
static int
send_login(struct backend *be, const struct creds *cr)
{
	size_t cap = BE_TX_MAX, o, seg_start = 0;
	char *cmd = malloc(cap);
	int rc = -1;

	if (cmd == NULL)
		return -1;
	o = (size_t)snprintf(cmd, cap, TAG_LOGIN " LOGIN ");
	if (quote_part(be, cmd, cap, &o, &seg_start, cr->user, cr->user_len) < 0)
		goto out;
	cmd[o++] = ' ';
	if (quote_part(be, cmd, cap, &o, &seg_start, cr->secret, cr->secret_len) < 0)
		goto out;
	cmd[o++] = '\r';
	cmd[o++] = '\n';
	if (be->nsegs == BE_SEGS_MAX)
		goto out;
	be->seg_len[be->nsegs++] = o - seg_start;
	/* The first segment now, the rest after each "+". */
	rc = backend_send(be, cmd, be->seg_len[0]);
	if (rc == 0 && be->nsegs > 1)
		rc = buf_append(&be->later, cmd + be->seg_len[0], o - be->seg_len[0]);
	memmove(be->seg_len, be->seg_len + 1, (be->nsegs - 1) * sizeof(be->seg_len[0]));
	be->nsegs--;
out:
	OPENSSL_cleanse(cmd, cap);
	free(cmd);
	return rc;
}

/* The longest AUTHENTICATE line sent with SASL-IR: longer messages wait for
 * the "+", as RFC 4959 §7 advises for servers with short line limits. */
#define IR_MAX 2048

/* Queue AUTHENTICATE XOAUTH2/OAUTHBEARER with a message built from the
 * user and token (never the client's bytes).  -1: backend_fail called. */
static int
send_oauth(struct backend *be, const struct creds *cr)
{
	unsigned mech = cr->kind == CREDS_XOAUTH2 ? AUTHM_XOAUTH2 : AUTHM_OAUTHBEARER;
	const char *name = auth_mech_name(mech);
	char *b64;
	size_t n;
	int rc = -1;

	if (!(be->caps.mechs & mech)) {
		char said[64];
		snprintf(said, sizeof(said), "backend does not advertise AUTH=%s", name);
		return backend_fail_said(be, said, FAIL_BACKEND_PROTO,
		                         LR_BACKEND_MECHANISM_UNAVAILABLE);
	}
	if ((b64 = malloc(SASL_OAUTH_B64_MAX + 1)) == NULL)
		return backend_sent(be, -1);
	n = mech == AUTHM_XOAUTH2
	        ? sasl_xoauth2_encode(cr->user, cr->user_len, cr->token, cr->token_len, b64,
	                              SASL_OAUTH_B64_MAX + 1)
	        : sasl_oauthbearer_encode(cr->user, cr->user_len, cr->token, cr->token_len, b64,
	                                  SASL_OAUTH_B64_MAX + 1);
	be->creds_sent = true;
	be->have_caps = false;
	be->nsegs = 0;
	be->step = BI_LOGIN;
	if (n == 0) {
		rc = -1;
	} else if (be->caps.sasl_ir && n <= IR_MAX) {
		rc = backend_printf(be, TAG_LOGIN " AUTHENTICATE %s %s\r\n", name, b64);
	} else if (backend_printf(be, TAG_LOGIN " AUTHENTICATE %s\r\n", name) == 0 &&
	           buf_append(&be->later, b64, n) == 0 && buf_append(&be->later, "\r\n", 2) == 0) {
		be->seg_len[be->nsegs++] = n + 2;
		rc = 0;
	}
	OPENSSL_cleanse(b64, SASL_OAUTH_B64_MAX + 1);
	free(b64);
	return backend_sent(be, rc);
}

/* Log in: a token with its own mechanism; a password with AUTHENTICATE
 * PLAIN if offered, else LOGIN.  -1: backend_fail. */
static int
send_credentials(struct backend *be)
{
	int rc;

	if (be->req.creds->kind != CREDS_PASSWORD)
		return send_oauth(be, be->req.creds);
	be->creds_sent = true;
	be->have_caps = false; /* the answer to the login brings the new ones */
	be->nsegs = 0;
	if (be->caps.auth_plain) {
		rc = send_authenticate(be, be->req.creds);
	} else if (be->caps.login_disabled) {
		return backend_fail_said(be, "backend advertises LOGINDISABLED and no AUTH=PLAIN",
		                         FAIL_BACKEND_PROTO, LR_BACKEND_LOGIN_DISABLED);
	} else {
		rc = send_login(be, be->req.creds);
	}
	be->step = BI_LOGIN;
	return backend_sent(be, rc);
}

/* The client's address for the backend (RFC 2971 ID with the fields
 * Dovecot trusts from login_trusted_networks). */
static int
send_id(struct backend *be)
{
	char pip[64], lip[64];
	unsigned pport, lport;

	addr_parts((const struct sockaddr *)be->req.client_sa, pip, sizeof(pip), &pport);
	addr_parts((const struct sockaddr *)be->req.local_sa, lip, sizeof(lip), &lport);
	be->step = BI_ID;
	return backend_sent(
	    be,
	    backend_printf(be,
	                   TAG_ID " ID (\"x-originating-ip\" \"%s\" \"x-originating-port\" \"%u\" "
	                          "\"x-connected-ip\" \"%s\" \"x-connected-port\" \"%u\" "
	                          "\"x-session-id\" \"%016llx\")\r\n",
	                   pip, pport, lip, lport, (unsigned long long)be->req.cid));
}

/* Capabilities known: forward the client's address, then log in. */
static int
ready(struct backend *be)
{
	if ((be->bc->forward & FORWARD_ID) && be->step != BI_ID)
		return send_id(be);
	return send_credentials(be);
}

static enum fail_class
no_class(const char *text)
{
	if (imap_resp_unavailable(text))
		return FAIL_BACKEND_DOWN;
	/* [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED], [EXPIRED], none: the
	 * credentials were not accepted. */
	return FAIL_AUTH;
}

/* RFC 7628 §3.2.2: a challenge after our token is the error.  Keep it
 * (re-encoded from the JSON it holds) for the client and answer with the
 * dummy response; the tagged NO follows. */
static int
oauth_error(struct backend *be, const char *text)
{
	char json[SASL_OAUTH_ERR_MAX + 1];
	size_t jlen = 0;

	be->oauth_dummy = true;
	if (sasl_oauth_error_decode(text, strlen(text), json, &jlen) == SASL_OK)
		EVP_EncodeBlock((unsigned char *)be->oauth_err, (const unsigned char *)json,
		                (int)jlen);
	else
		backend_set_text(be, "backend sent a malformed RFC 7628 error challenge");
	OPENSSL_cleanse(json, sizeof(json));
	return backend_sent(
	    be, backend_send(be, SASL_OAUTH_DUMMY "\r\n", sizeof(SASL_OAUTH_DUMMY) + 1));
}

/* The answer to our login. */
static int
login_line(struct backend *be, char *line)
{
	const char *text;

	switch (classify(be, line, TAG_LOGIN, &text)) {
	case IMAP_R_CONTINUE: {
		size_t l;
		if (be->nsegs == 0 && be->req.creds->kind != CREDS_PASSWORD && !be->oauth_dummy)
			return oauth_error(be, text);
		if (be->nsegs == 0)
			return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_UNEXPECTED_CONTINUATION);
		l = be->seg_len[0];
		if (backend_sent(be, backend_send(be, (const char *)buf_head(&be->later), l)) < 0)
			return -1;
		buf_consume(&be->later, l);
		memmove(be->seg_len, be->seg_len + 1, (be->nsegs - 1) * sizeof(be->seg_len[0]));
		be->nsegs--;
		return 0;
	}
	case IMAP_R_CAPS:
	case IMAP_R_UNTAGGED:
		return 0;
	case IMAP_R_BYE:
		return backend_fail_said(be, line, FAIL_BACKEND_DOWN, LR_BACKEND_BYE);
	case IMAP_R_OK:
		caps_from_code(be, text);
		if (!be->have_caps) {
			/* RFC 9051 §6.2.3: capabilities may change at login. */
			be->step = BI_POSTCAPA;
			return backend_sent(be,
			                    backend_send(be, TAG_POSTCAPA " CAPABILITY\r\n", 15));
		}
		backend_logged_in(be);
		return -1;
	case IMAP_R_NO:
		return backend_fail_said(be, line, no_class(text),
		                         be->req.creds->kind != CREDS_PASSWORD
		                             ? LR_BACKEND_REFUSED_TOKEN
		                             : LR_BACKEND_REFUSED_LOGIN);
	default:
		return backend_fail_said(be, line, FAIL_BACKEND_PROTO, LR_BACKEND_BAD_LOGIN_REPLY);
	}
}

/* A command's end: untagged lines go on, OK returns 1, anything else 0. */
static int
tagged_ok(struct backend *be, const char *line, const char *tag)
{
	const char *text;
	enum imap_resp_kind k = classify(be, line, tag, &text);

	if (k == IMAP_R_CAPS || k == IMAP_R_UNTAGGED || k == IMAP_R_BYE)
		return -1;
	return k == IMAP_R_OK;
}

static int
imap_dialog_line(struct backend *be, char *line)
{
	const char *text;
	bool bye;
	int ok;

	switch ((enum imap_step)be->step) {
	case BI_GREETING:
		if (!imap_resp_greeting(line, &text, &bye))
			return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
			                         bye ? LR_BACKEND_BYE : LR_BACKEND_BAD_GREETING);
		backend_greeted(be);
		if (be->bc->tls == TLSM_STARTTLS && be->link.ssl == NULL) {
			/* RFC 9051 §6.2.1; capabilities are asked again over TLS. */
			be->step = BI_STARTTLS;
			return backend_sent(be, backend_send(be, TAG_STARTTLS " STARTTLS\r\n", 13));
		}
		caps_from_code(be, text);
		if (!be->have_caps) {
			be->step = BI_CAPA;
			return backend_sent(be, backend_send(be, TAG_CAPA " CAPABILITY\r\n", 15));
		}
		return ready(be);
	case BI_STARTTLS:
		if ((ok = tagged_ok(be, line, TAG_STARTTLS)) < 0)
			return 0;
		if (!ok)
			return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_STARTTLS_REFUSED);
		return backend_start_tls(be, BI_CAPA);
	case BI_CAPA:
		if ((ok = tagged_ok(be, line, TAG_CAPA)) < 0)
			return 0;
		if (!ok)
			return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_CAPABILITY_FAILED);
		return ready(be);
	case BI_ID:
		/* Whatever the answer, go on: a backend that ignores ID still
		 * serves the user, it only logs the proxy's address. */
		if ((ok = tagged_ok(be, line, TAG_ID)) < 0)
			return 0;
		if (!ok)
			backend_forward_failed(be, "id", line);
		return ready(be);
	case BI_LOGIN:
		return login_line(be, line);
	case BI_POSTCAPA:
		if ((ok = tagged_ok(be, line, TAG_POSTCAPA)) < 0)
			return 0;
		if (!ok)
			return backend_fail_said(be, line, FAIL_BACKEND_PROTO,
			                         LR_BACKEND_CAPABILITY_FAILED);
		backend_logged_in(be);
		return -1;
	}
	return 0;
}

static void
imap_dialog_begin(struct backend *be)
{
	be->step = BI_GREETING;
}

static void
imap_dialog_after_tls(struct backend *be)
{
	if (be->step == BI_CAPA) {
		be->have_caps = false;
		(void)backend_send(be, TAG_CAPA " CAPABILITY\r\n", 15);
	}
}

static const char *
imap_dialog_ok_text(const struct backend *be)
{
	return be->have_caps ? be->caps.list : "IMAP4rev1";
}

const struct backend_dialog backend_imap_dialog = {
    .name = "imap",
    .begin = imap_dialog_begin,
    .after_tls = imap_dialog_after_tls,
    .line = imap_dialog_line,
    .ok_text = imap_dialog_ok_text,
    .logout = TAG_LOGOUT " LOGOUT\r\n",
};
