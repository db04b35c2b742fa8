/*
 * imap_session.c: the IMAP dialog before login (RFC 9051 / RFC 3501):
 * greeting, CAPABILITY, NOOP, ID, LOGOUT, STARTTLS, LOGIN and AUTHENTICATE
 * with PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER (RFC 9051 §6.2.2, RFC 4959
 * SASL-IR).  Drives the pure parser in imap.c and writes every reply;
 * never forwards a client byte to a backend.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "imap.h"
#include "imap_resp.h"
#include "log.h"
#include "login.h"
#include "sasl_exchange.h"

#define OUT_RESERVE 1024 /* stop parsing while c->out has less room than one reply */

/* imap_parse() leaves a SASL text in c->in until its line is whole. */
_Static_assert(CONN_BUF_SIZE >= IMAP_SASL_MAX + 2, "c->in must hold a whole SASL line");

struct imap_sess {
	struct imap_parser p;
	char tag[IMAP_TAG_MAX + 1]; /* the tag of the LOGIN/AUTHENTICATE in progress */
	struct sasl_exchange x;
};

#define CAPS_MAX 160

/* Pre-login capabilities (RFC 9051 §7.2.2): AUTH= lists exactly the
 * listener's mechanisms, none before TLS where TLS is required.  After
 * login the client gets the backend's own list. */
static const char *
preauth_caps(const struct conn *c, char buf[CAPS_MAX])
{
	size_t o = (size_t)snprintf(buf, CAPS_MAX, "IMAP4rev1 SASL-IR ID LITERAL+%s",
	                            c->cl.ssl == NULL ? " STARTTLS" : "");

	if (conn_tls_required(c)) {
		snprintf(buf + o, CAPS_MAX - o, " LOGINDISABLED");
		return buf;
	}
	for (unsigned i = 0; i < AUTHM_COUNT; i++)
		if (c->lc->auth_mechanisms & (1u << i))
			o += (size_t)snprintf(buf + o, CAPS_MAX - o, " AUTH=%s",
			                      auth_mech_name(1u << i));
	return buf;
}

static int
imap_start(struct conn *c)
{
	struct imap_sess *s = calloc(1, sizeof(*s));
	char caps[CAPS_MAX];

	if (s == NULL)
		return -1;
	imap_parser_init(&s->p, NULL);
	c->sess = s;
	return buf_printf(&c->out, "* OK [CAPABILITY %s] IMAP server ready.\r\n",
	                  preauth_caps(c, caps));
}

static void
imap_free_sess(struct conn *c)
{
	struct imap_sess *s = c->sess;

	if (s == NULL)
		return;
	imap_parser_wipe(&s->p);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	c->sess = NULL;
}

static void
imap_bye(struct conn *c, const char *text)
{
	(void)buf_printf(&c->out, "* BYE %s\r\n", text);
}

/* A bad command: BAD, and BYE after too many (RFC 9051 §7.1.5). */
static void
bad_command(struct conn *c, const char *tag, const char *text)
{
	(void)buf_printf(&c->out, "%s BAD %s\r\n", tag[0] ? tag : "*", text);
	if (++c->bad_commands >= c->cfg->limits.max_bad_commands) {
		log_kv(LOG_INFO, "session.abuse", "cid=%016llx client=%s reason=%s",
		       (unsigned long long)c->id, c->peer,
		       close_reason_name(CLOSE_TOO_MANY_BAD_COMMANDS));
		imap_bye(c, "Too many invalid commands.");
		conn_close_after(c, CLOSE_TOO_MANY_BAD_COMMANDS);
	}
}

/* The login succeeded: the client's tag on the backend's post-login
 * capabilities (RFC 9051 §7.1 response code). */
static void
imap_reply_ok(struct conn *c, const char *caps)
{
	struct imap_sess *s = c->sess;
	char shown[IMAP_CAPS_MAX];
	size_t n = strlen(caps);

	/* compress = "strip": the client never hears of COMPRESS (RFC 4978) */
	if (c->lc->compress == COMPRESS_STRIP && n < sizeof(shown)) {
		memcpy(shown, caps, n);
		shown[imap_caps_drop(shown, n, "COMPRESS=")] = '\0';
		caps = shown;
	}
	(void)buf_printf(&c->out, "%s OK [CAPABILITY %s] Logged in\r\n", s->tag, caps);
	imap_free_sess(c); /* parser and its copies of the credentials */
}

static void
imap_reply_fail(struct conn *c, const char *text)
{
	struct imap_sess *s = c->sess;

	(void)buf_printf(&c->out, "%s NO %s\r\n", s->tag, text);
}

static void
imap_sasl_expect(struct conn *c)
{
	struct imap_sess *s = c->sess;

	imap_parser_expect_sasl(&s->p);
}

/* RFC 9051 §6.2.2: a response that cannot be decoded, or "*", is answered
 * BAD. */
static bool
imap_sasl_reject(struct conn *c, enum sasl_rc rc)
{
	struct imap_sess *s = c->sess;

	switch (rc) {
	case SASL_BAD_BASE64:
		bad_command(c, s->tag, "Invalid base64 in SASL response.");
		return true;
	case SASL_CANCELLED:
		(void)buf_printf(&c->out, "%s BAD Authentication canceled.\r\n", s->tag);
		return true;
	default:
		return false;
	}
}

static void
imap_oauth_error(struct conn *c, const char *b64, bool last)
{
	struct imap_sess *s = c->sess;

	sasl_exchange_oauth_error(c, &s->x, b64, last);
}

/* One parsed command.  Returns false when the dialog must stop parsing
 * (logging in, closing, TLS starting). */
static bool
command(struct conn *c, struct imap_cmd *cmd)
{
	struct imap_sess *s = c->sess;
	char caps[CAPS_MAX];

	switch (cmd->verb) {
	case IMAP_V_CAPABILITY:
		(void)buf_printf(&c->out, "* CAPABILITY %s\r\n%s OK Capability completed.\r\n",
		                 preauth_caps(c, caps), cmd->tag);
		return true;
	case IMAP_V_NOOP:
		(void)buf_printf(&c->out, "%s OK NOOP completed.\r\n", cmd->tag);
		return true;
	case IMAP_V_ID:
		/* RFC 2971: always answered; we name nothing about ourselves. */
		(void)buf_printf(&c->out, "* ID NIL\r\n%s OK ID completed.\r\n", cmd->tag);
		return true;
	case IMAP_V_LOGOUT:
		(void)buf_printf(&c->out, "* BYE Logging out.\r\n%s OK Logout completed.\r\n",
		                 cmd->tag);
		conn_close_after(c, CLOSE_CLIENT_LOGOUT);
		return false;
	case IMAP_V_STARTTLS:
		if (c->cl.ssl != NULL) {
			bad_command(c, cmd->tag, "TLS is already active.");
			return !c->closed && c->state == CS_PREAUTH;
		}
		(void)buf_printf(&c->out, "%s OK Begin TLS negotiation now.\r\n", cmd->tag);
		conn_starttls(c);
		return false;
	case IMAP_V_LOGIN:
		if (conn_tls_required(c)) {
			(void)buf_printf(&c->out,
			                 "%s NO [PRIVACYREQUIRED] Use STARTTLS before LOGIN.\r\n",
			                 cmd->tag);
			return true;
		}
		snprintf(s->tag, sizeof(s->tag), "%s", cmd->tag);
		login_begin(c, cmd->user, cmd->user_len, cmd->secret, cmd->secret_len, LM_LOGIN);
		imap_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	case IMAP_V_AUTHENTICATE: {
		unsigned mech = auth_mech_bit(cmd->mech);

		snprintf(s->tag, sizeof(s->tag), "%s", cmd->tag);
		if (conn_tls_required(c)) {
			(void)buf_printf(&c->out,
			                 "%s NO [PRIVACYREQUIRED] Use STARTTLS before "
			                 "AUTHENTICATE.\r\n",
			                 cmd->tag);
			return true;
		}
		if (mech == 0 || !(c->lc->auth_mechanisms & mech)) {
			(void)buf_printf(&c->out, "%s NO Unsupported authentication mechanism.\r\n",
			                 cmd->tag);
			return true;
		}
		sasl_exchange_start(c, &s->x, mech, cmd->has_ir, cmd->ir, cmd->ir_len);
		imap_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	}
	case IMAP_V_SASL:
		sasl_exchange_response(c, &s->x, cmd->cancelled, cmd->ir, cmd->ir_len);
		imap_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	case IMAP_V_OTHER:
		bad_command(c, cmd->tag, "Command not allowed before login.");
		return !c->closed && c->state == CS_PREAUTH;
	case IMAP_V_NONE:
		break;
	}
	bad_command(c, cmd->tag, "Unknown command.");
	return !c->closed && c->state == CS_PREAUTH;
}

static void
imap_input(struct conn *c, struct imap_cmd *cmd)
{
	struct imap_sess *s = c->sess;

	while (buf_len(&c->in) > 0 && buf_space(&c->out) >= OUT_RESERVE) {
		size_t used = 0;
		enum imap_rc rc;

		rc = imap_parse(&s->p, buf_head(&c->in), buf_len(&c->in), &used, cmd);
		buf_consume(&c->in, used);
		switch (rc) {
		case IMAP_MORE:
			return;
		case IMAP_CONTINUE:
			/* RFC 9051 §7.5: go ahead with the literal. */
			(void)buf_printf(&c->out, "+ OK\r\n");
			continue;
		case IMAP_BAD:
			bad_command(c, cmd->tag, cmd->error ? cmd->error : "Syntax error.");
			if (c->closed || c->state != CS_PREAUTH)
				return;
			continue;
		case IMAP_FATAL:
			log_kv(LOG_INFO, "session.abuse", "cid=%016llx client=%s reason=\"%s\"",
			       (unsigned long long)c->id, c->peer,
			       cmd->error ? cmd->error : "fatal");
			imap_bye(c, cmd->error ? cmd->error : "Protocol error.");
			conn_close_after(c, CLOSE_PROTOCOL_ERROR);
			return;
		case IMAP_CMD:
			if (log_get_level() <= LOG_DEBUG)
				log_kv(LOG_DEBUG, "imap.command", "cid=%016llx cmd=%s",
				       (unsigned long long)c->id,
				       cmd->verb == IMAP_V_SASL ? "(sasl)" : cmd->name);
			if (!command(c, cmd))
				return; /* c may be closing, logging in or starting TLS */
			continue;
		}
	}
}

/*
 * The command being acted on lives here, one per worker thread, not in
 * each connection's session, and so does its SASL text, as large as the
 * longest SASL response (lib/sasl.h): both are used only inside one call
 * of the input handler, on the worker's own thread.  Wiped after every
 * call: they held credentials.
 */
static __thread struct imap_cmd imap_scratch;
static __thread char imap_scratch_ir[IMAP_SASL_MAX + 1];

static void
imap_on_input(struct conn *c)
{
	imap_cmd_init(&imap_scratch, imap_scratch_ir);
	imap_input(c, &imap_scratch); /* c may be closed here */
	imap_cmd_wipe(&imap_scratch);
}

const struct proto_ops imap_proto_ops = {
    .kind = PROTO_IMAP,
    .start = imap_start,
    .on_input = imap_on_input,
    .reply_ok = imap_reply_ok,
    .reply_fail = imap_reply_fail,
    .oauth_error = imap_oauth_error,
    .sasl_expect = imap_sasl_expect,
    .sasl_reject = imap_sasl_reject,
    .bye = imap_bye,
    .free_sess = imap_free_sess,
};
