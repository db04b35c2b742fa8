/*
 * imap_session.c: the IMAP dialog before login (RFC 9051 / RFC 3501):
 * greeting, CAPABILITY, NOOP, ID, LOGOUT, STARTTLS, LOGIN and AUTHENTICATE
 * PLAIN.  Drives the pure parser in imap.c and writes every reply; never
 * forwards a client byte to a backend.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "imap.h"
#include "log.h"
#include "login.h"
#include "sasl.h"

#define OUT_RESERVE 1024 /* stop parsing while c->out has less room than one reply */

struct imap_sess {
	struct imap_parser p;
	struct imap_cmd cmd;
	char tag[IMAP_TAG_MAX + 1]; /* the tag of the LOGIN/AUTHENTICATE in progress */
	bool in_sasl;               /* "+ " sent, waiting for the SASL response */
};

/* Pre-login capabilities (RFC 9051 §7.2.2).  After login the client gets
 * the backend's own list. */
static const char *
preauth_caps(const struct conn *c)
{
	if (c->cl.ssl == NULL)
		return conn_tls_required(c) ? "IMAP4rev1 SASL-IR ID LITERAL+ STARTTLS LOGINDISABLED"
		                            : "IMAP4rev1 SASL-IR ID LITERAL+ STARTTLS AUTH=PLAIN";
	return "IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN";
}

static int
imap_start(struct conn *c)
{
	struct imap_sess *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -1;
	imap_parser_init(&s->p, NULL);
	c->sess = s;
	return buf_printf(&c->out, "* OK [CAPABILITY %s] IMAP server ready.\r\n", preauth_caps(c));
}

static void
imap_free_sess(struct conn *c)
{
	struct imap_sess *s = c->sess;

	if (s == NULL)
		return;
	imap_parser_wipe(&s->p);
	imap_cmd_wipe(&s->cmd);
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
		log_kv(LOG_INFO, "session.abuse",
		       "cid=%016llx client=%s reason=too_many_bad_commands",
		       (unsigned long long)c->id, c->peer);
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
sasl_plain(struct conn *c, const char *b64, size_t len)
{
	struct imap_sess *s = c->sess;

	switch ((enum sasl_rc)login_sasl_plain(c, b64, len)) {
	case SASL_OK:
		break;
	case SASL_BAD_BASE64:
		/* RFC 9051 §6.2.2: an undecodable response is rejected with BAD. */
		bad_command(c, s->tag, "Invalid base64 in SASL response.");
		break;
	case SASL_AUTHZID:
		(void)buf_printf(&c->out,
		                 "%s NO [AUTHORIZATIONFAILED] Authorization identity not "
		                 "supported.\r\n",
		                 s->tag);
		break;
	default:
		login_refuse(c, FAIL_AUTH, "sasl_bad_format");
		break;
	}
}

/* One parsed command.  Returns false when the dialog must stop parsing
 * (logging in, closing, TLS starting). */
static bool
command(struct conn *c, struct imap_cmd *cmd)
{
	struct imap_sess *s = c->sess;

	switch (cmd->verb) {
	case IMAP_V_CAPABILITY:
		(void)buf_printf(&c->out, "* CAPABILITY %s\r\n%s OK Capability completed.\r\n",
		                 preauth_caps(c), cmd->tag);
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
		login_begin(c, cmd->user, cmd->user_len, cmd->secret, cmd->secret_len, "login");
		imap_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	case IMAP_V_AUTHENTICATE:
		snprintf(s->tag, sizeof(s->tag), "%s", cmd->tag);
		if (conn_tls_required(c)) {
			(void)buf_printf(&c->out,
			                 "%s NO [PRIVACYREQUIRED] Use STARTTLS before "
			                 "AUTHENTICATE.\r\n",
			                 cmd->tag);
			return true;
		}
		if (strcasecmp(cmd->mech, "PLAIN") != 0) {
			(void)buf_printf(&c->out, "%s NO Unsupported authentication mechanism.\r\n",
			                 cmd->tag);
			return true;
		}
		if (cmd->has_ir) {
			sasl_plain(c, cmd->ir, cmd->ir_len);
			imap_cmd_wipe(cmd);
			return !c->closed && c->state == CS_PREAUTH;
		}
		/* RFC 9051 §6.2.2: an empty challenge, then one response line. */
		(void)buf_printf(&c->out, "+ \r\n");
		imap_parser_expect_sasl(&s->p);
		s->in_sasl = true;
		return true;
	case IMAP_V_SASL:
		s->in_sasl = false;
		if (cmd->cancelled) {
			(void)buf_printf(&c->out, "%s BAD Authentication canceled.\r\n", s->tag);
			return true;
		}
		sasl_plain(c, cmd->ir, cmd->ir_len);
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
imap_on_input(struct conn *c)
{
	struct imap_sess *s = c->sess;

	while (buf_len(&c->in) > 0 && buf_space(&c->out) >= OUT_RESERVE) {
		size_t used = 0;
		enum imap_rc rc;

		rc = imap_parse(&s->p, buf_head(&c->in), buf_len(&c->in), &used, &s->cmd);
		buf_consume(&c->in, used);
		switch (rc) {
		case IMAP_MORE:
			return;
		case IMAP_CONTINUE:
			/* RFC 9051 §7.5: go ahead with the literal. */
			(void)buf_printf(&c->out, "+ OK\r\n");
			continue;
		case IMAP_BAD:
			bad_command(c, s->cmd.tag, s->cmd.error ? s->cmd.error : "Syntax error.");
			if (c->closed || c->state != CS_PREAUTH)
				return;
			continue;
		case IMAP_FATAL:
			log_kv(LOG_INFO, "session.abuse", "cid=%016llx client=%s reason=\"%s\"",
			       (unsigned long long)c->id, c->peer,
			       s->cmd.error ? s->cmd.error : "fatal");
			imap_bye(c, s->cmd.error ? s->cmd.error : "Protocol error.");
			conn_close_after(c, CLOSE_PROTOCOL_ERROR);
			return;
		case IMAP_CMD:
			if (log_get_level() <= LOG_DEBUG)
				log_kv(LOG_DEBUG, "imap.command", "cid=%016llx cmd=%s",
				       (unsigned long long)c->id,
				       s->cmd.verb == IMAP_V_SASL ? "(sasl)" : s->cmd.name);
			if (!command(c, &s->cmd))
				return; /* c may be closing, logging in or starting TLS */
			continue;
		}
	}
}

const struct proto_ops imap_proto_ops = {
    .kind = PROTO_IMAP,
    .start = imap_start,
    .on_input = imap_on_input,
    .reply_ok = imap_reply_ok,
    .reply_fail = imap_reply_fail,
    .bye = imap_bye,
    .free_sess = imap_free_sess,
};
