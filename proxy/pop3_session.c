/*
 * pop3_session.c: the POP3 AUTHORIZATION state (RFC 1939, RFC 2449 CAPA,
 * RFC 5034 AUTH, RFC 2595 STLS): greeting, CAPA, USER/PASS, AUTH with
 * PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER, STLS, QUIT.  Drives the pure parser in pop3.c; never
 * forwards a client byte to a backend.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "log.h"
#include "login.h"
#include "pop3.h"
#include "sasl_exchange.h"

#define OUT_RESERVE 1024

/* pop3_parse() leaves a line in c->in until it is whole. */
_Static_assert(CONN_BUF_SIZE > POP3_AUTH_LINE_MAX, "c->in must hold the longest POP3 line");

struct pop3_sess {
	struct pop3_parser p;
	char user[POP3_USER_MAX + 1]; /* from USER, waiting for PASS */
	size_t user_len;
	bool have_user;
	struct sasl_exchange x;
};

static int
pop3_start(struct conn *c)
{
	struct pop3_sess *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -1;
	pop3_parser_init(&s->p);
	c->sess = s;
	return buf_printf(&c->out, "+OK POP3 server ready.\r\n");
}

static void
pop3_free_sess(struct conn *c)
{
	struct pop3_sess *s = c->sess;

	if (s == NULL)
		return;
	pop3_parser_wipe(&s->p);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	c->sess = NULL;
}

static void
pop3_bye(struct conn *c, const char *text)
{
	(void)buf_printf(&c->out, "-ERR %s\r\n", text);
}

static void
bad_command(struct conn *c, const char *text)
{
	(void)buf_printf(&c->out, "-ERR %s\r\n", text);
	if (++c->bad_commands >= c->cfg->limits.max_bad_commands) {
		log_kv(LOG_INFO, "session.abuse", "cid=%016llx client=%s reason=%s",
		       (unsigned long long)c->id, c->peer,
		       close_reason_name(CLOSE_TOO_MANY_BAD_COMMANDS));
		pop3_bye(c, "Too many invalid commands.");
		conn_close_after(c, CLOSE_TOO_MANY_BAD_COMMANDS);
	}
}

/* CAPA (RFC 2449 §5): what this dialog offers before login; after login the
 * client's CAPA goes to the backend. */
static void
capa(struct conn *c)
{
	(void)buf_printf(&c->out, "+OK Capability list follows\r\n");
	if (c->cl.ssl == NULL)
		(void)buf_printf(&c->out, "STLS\r\n");
	if (!conn_tls_required(c)) {
		/* RFC 2449 §6.3: exactly the listener's mechanisms. */
		(void)buf_printf(&c->out, "USER\r\nSASL");
		for (unsigned i = 0; i < AUTHM_COUNT; i++)
			if (c->lc->auth_mechanisms & (1u << i))
				(void)buf_printf(&c->out, " %s", auth_mech_name(1u << i));
		(void)buf_printf(&c->out, "\r\n");
	}
	(void)buf_printf(&c->out, "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n.\r\n");
}

/* The login succeeded: the backend's own +OK text (RFC 1939 §7). */
static void
pop3_reply_ok(struct conn *c, const char *text)
{
	(void)buf_printf(&c->out, "+OK %s\r\n", text[0] ? text : "Logged in.");
	pop3_free_sess(c);
}

static void
pop3_reply_fail(struct conn *c, const char *text)
{
	(void)buf_printf(&c->out, "-ERR %s\r\n", text);
}

static void
pop3_sasl_expect(struct conn *c)
{
	struct pop3_sess *s = c->sess;

	pop3_parser_expect_sasl(&s->p);
}

/* RFC 5034 §4: an undecodable or malformed response is -ERR [AUTH], a
 * failed authentication; a cancelled exchange is answered -ERR. */
static bool
pop3_sasl_reject(struct conn *c, enum sasl_rc rc)
{
	if (rc != SASL_CANCELLED)
		return false;
	(void)buf_printf(&c->out, "-ERR Authentication canceled.\r\n");
	return true;
}

static void
pop3_oauth_error(struct conn *c, const char *b64, bool last)
{
	struct pop3_sess *s = c->sess;

	sasl_exchange_oauth_error(c, &s->x, b64, last);
}

static bool
command(struct conn *c, struct pop3_cmd *cmd)
{
	struct pop3_sess *s = c->sess;
	unsigned mech;

	switch (cmd->verb) {
	case POP3_V_CAPA:
		capa(c);
		return true;
	case POP3_V_QUIT:
		(void)buf_printf(&c->out, "+OK Logging out.\r\n");
		conn_close_after(c, CLOSE_CLIENT_LOGOUT);
		return false;
	case POP3_V_STLS:
		if (c->cl.ssl != NULL) {
			bad_command(c, "TLS is already active.");
			return !c->closed;
		}
		(void)buf_printf(&c->out, "+OK Begin TLS negotiation now.\r\n");
		conn_starttls(c);
		return false;
	case POP3_V_USER:
		if (conn_tls_required(c)) {
			(void)buf_printf(&c->out,
			                 "-ERR [AUTH] Plaintext authentication disallowed, use "
			                 "STLS first.\r\n");
			return true;
		}
		memcpy(s->user, cmd->user, cmd->user_len);
		s->user[cmd->user_len] = '\0';
		s->user_len = cmd->user_len;
		s->have_user = true;
		/* Whether the user exists is learnt only from PASS. */
		(void)buf_printf(&c->out, "+OK\r\n");
		return true;
	case POP3_V_PASS:
		if (conn_tls_required(c)) {
			(void)buf_printf(&c->out,
			                 "-ERR [AUTH] Plaintext authentication disallowed, use "
			                 "STLS first.\r\n");
			return true;
		}
		if (!s->have_user) {
			bad_command(c, "No user name given: USER first.");
			return !c->closed;
		}
		s->have_user = false;
		login_begin(c, s->user, s->user_len, cmd->secret, cmd->secret_len, LM_USER);
		pop3_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	case POP3_V_AUTH:
		if (conn_tls_required(c)) {
			(void)buf_printf(&c->out,
			                 "-ERR [AUTH] Plaintext authentication disallowed, use "
			                 "STLS first.\r\n");
			return true;
		}
		if (!cmd->has_mech) {
			/* The mechanism list many clients ask for (RFC 1734 style). */
			(void)buf_printf(&c->out, "+OK\r\n");
			for (unsigned i = 0; i < AUTHM_COUNT; i++)
				if (c->lc->auth_mechanisms & (1u << i))
					(void)buf_printf(&c->out, "%s\r\n",
					                 auth_mech_name(1u << i));
			(void)buf_printf(&c->out, ".\r\n");
			return true;
		}
		mech = auth_mech_bit(cmd->mech);
		if (mech == 0 || !(c->lc->auth_mechanisms & mech)) {
			(void)buf_printf(&c->out, "-ERR Unsupported authentication mechanism.\r\n");
			return true;
		}
		s->have_user = false; /* a PASS after AUTH has no USER */
		sasl_exchange_start(c, &s->x, mech, cmd->has_ir, cmd->ir, cmd->ir_len);
		pop3_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	case POP3_V_SASL:
		sasl_exchange_response(c, &s->x, cmd->cancelled, cmd->ir, cmd->ir_len);
		pop3_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	case POP3_V_NOOP:
	case POP3_V_OTHER:
		bad_command(c, "Not logged in.");
		return !c->closed;
	case POP3_V_NONE:
		break;
	}
	bad_command(c, "Unknown command.");
	return !c->closed;
}

static void
pop3_input(struct conn *c, struct pop3_cmd *cmd)
{
	struct pop3_sess *s = c->sess;

	while (buf_len(&c->in) > 0 && buf_space(&c->out) >= OUT_RESERVE) {
		size_t used = 0;
		enum pop3_rc rc;

		rc = pop3_parse(&s->p, buf_head(&c->in), buf_len(&c->in), &used, cmd);
		buf_consume(&c->in, used);
		switch (rc) {
		case POP3_MORE:
			return;
		case POP3_BAD:
			bad_command(c, cmd->error ? cmd->error : "Syntax error.");
			if (c->closed || c->state != CS_PREAUTH)
				return;
			continue;
		case POP3_FATAL:
			log_kv(LOG_INFO, "session.abuse", "cid=%016llx client=%s reason=\"%s\"",
			       (unsigned long long)c->id, c->peer,
			       cmd->error ? cmd->error : "fatal");
			pop3_bye(c, cmd->error ? cmd->error : "Protocol error.");
			conn_close_after(c, CLOSE_PROTOCOL_ERROR);
			return;
		case POP3_CMD:
			if (log_get_level() <= LOG_DEBUG)
				log_kv(LOG_DEBUG, "pop3.command", "cid=%016llx cmd=%s",
				       (unsigned long long)c->id,
				       cmd->verb == POP3_V_SASL ? "(sasl)" : cmd->name);
			if (!command(c, cmd))
				return;
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
static __thread struct pop3_cmd pop3_scratch;
static __thread char pop3_scratch_ir[POP3_SASL_MAX + 1];

static void
pop3_on_input(struct conn *c)
{
	pop3_cmd_init(&pop3_scratch, pop3_scratch_ir);
	pop3_input(c, &pop3_scratch); /* c may be closed here */
	pop3_cmd_wipe(&pop3_scratch);
}

const struct proto_ops pop3_proto_ops = {
    .kind = PROTO_POP3,
    .start = pop3_start,
    .on_input = pop3_on_input,
    .reply_ok = pop3_reply_ok,
    .reply_fail = pop3_reply_fail,
    .oauth_error = pop3_oauth_error,
    .sasl_expect = pop3_sasl_expect,
    .sasl_reject = pop3_sasl_reject,
    .bye = pop3_bye,
    .free_sess = pop3_free_sess,
};
