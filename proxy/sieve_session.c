/*
 * sieve_session.c: the ManageSieve dialog before login (RFC 5804):
 * capabilities as the greeting and again after STARTTLS (§2.2),
 * CAPABILITY, NOOP (with its TAG, §2.13), LOGOUT, STARTTLS and
 * AUTHENTICATE with PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER, the initial
 * response and every SASL response a string or a literal.  Everything
 * else waits for login, and then goes to the backend untouched.  Drives
 * the pure parser in sieve.c and writes every reply; never forwards a
 * client byte to a backend.
 *
 * Refusals come from reason.c in IMAP's words: "[UNAVAILABLE] text"
 * becomes NO (TRYLATER) "text", "[PRIVACYREQUIRED]" ENCRYPT-NEEDED, and
 * the other RFC 5530 codes, which ManageSieve has no word for, are left
 * off (RFC 5804 §1.3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "log.h"
#include "login.h"
#include "sasl_exchange.h"
#include "sieve.h"

#define OUT_RESERVE                                                                                \
	4096            /* stop parsing while c->out has less room than one reply                  \
	                 * (the capability list is the longest) */
#define QUOTED_MAX 1024 /* RFC 5804 §4: a longer string goes as a literal */
#define EXT_MAX    1024 /* the SIEVE capability */

/* sieve_parse() leaves a SASL text in c->in until it is whole. */
_Static_assert(CONN_BUF_SIZE >= SIEVE_INPUT_MIN, "c->in must hold a whole SASL string");

/* Pigeonhole's default extensions (Dovecot 2.3): what a ManageSieve
 * listener announces before any backend greeted and with no
 * sieve_extensions set.  After login the client asks the backend itself. */
static const char default_extensions[] =
    "fileinto reject envelope encoded-character vacation subaddress "
    "comparator-i;ascii-numeric relational regex imap4flags copy include variables body "
    "enotify environment mailbox date index ihave duplicate mime foreverypart extracttext";

struct sieve_sess {
	struct sieve_parser p;
	struct sasl_exchange x;
};

/* s[0..len) as a ManageSieve string a server sends: quoted when it can
 * be (no CR, LF or NUL, within QUOTED_MAX), else a literal {n}. */
static void
put_string(struct conn *c, const char *s, size_t len)
{
	bool quoted = len <= QUOTED_MAX;

	for (size_t i = 0; i < len && quoted; i++)
		quoted = s[i] != '\r' && s[i] != '\n' && s[i] != '\0';
	if (!quoted) {
		(void)buf_printf(&c->out, "{%zu}\r\n", len);
		(void)buf_append(&c->out, s, len);
		return;
	}
	(void)buf_append(&c->out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			(void)buf_append(&c->out, "\\", 1);
		(void)buf_append(&c->out, &s[i], 1);
	}
	(void)buf_append(&c->out, "\"", 1);
}

/* "OK", "NO" or "BYE" with text, which may start with an RFC 5530 code
 * (reason.c's words): the code ManageSieve has for it, then the text. */
static void
put_status(struct conn *c, const char *word, const char *text)
{
	static const struct {
		const char *imap, *sieve;
	} codes[] = {
	    {"[UNAVAILABLE]", "TRYLATER"},
	    {"[PRIVACYREQUIRED]", "ENCRYPT-NEEDED"},
	};
	const char *code = NULL;

	if (text[0] == '[') {
		const char *end = strchr(text, ']');

		for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]) && end != NULL; i++)
			if ((size_t)(end + 1 - text) == strlen(codes[i].imap) &&
			    strncasecmp(text, codes[i].imap, strlen(codes[i].imap)) == 0)
				code = codes[i].sieve;
		if (end != NULL)
			for (text = end + 1; *text == ' ';)
				text++;
	}
	(void)buf_printf(&c->out, "%s ", word);
	if (code != NULL)
		(void)buf_printf(&c->out, "(%s) ", code);
	put_string(c, text, strlen(text));
	(void)buf_append(&c->out, "\r\n", 2);
}

/* The capability lines (RFC 5804 §1.7), without the OK that ends them.
 * SASL lists exactly the listener's mechanisms, none before TLS where TLS
 * is required. */
static void
put_caps(struct conn *c)
{
	char ext[EXT_MAX + 1], notify[256];
	const char *sieve = c->cfg->sieve_extensions;

	(void)backend_sieve_caps(ext, sizeof(ext), notify, sizeof(notify));
	if (sieve == NULL)
		sieve = ext[0] != '\0' ? ext : default_extensions;
	(void)buf_printf(&c->out, "\"IMPLEMENTATION\" \"postern\"\r\n\"SASL\" \"");
	if (!conn_tls_required(c)) {
		const char *sep = "";

		for (unsigned i = 0; i < AUTHM_COUNT; i++)
			if (c->lc->auth_mechanisms & (1u << i)) {
				(void)buf_printf(&c->out, "%s%s", sep, auth_mech_name(1u << i));
				sep = " ";
			}
	}
	(void)buf_printf(&c->out, "\"\r\n\"SIEVE\" ");
	put_string(c, sieve, strlen(sieve));
	(void)buf_append(&c->out, "\r\n", 2);
	/* RFC 5804 §1.7: "enotify" needs a NOTIFY line; "mailto" is RFC 5436's
	 * one method, and Pigeonhole's */
	if (notify[0] == '\0' && strstr(sieve, "enotify") != NULL)
		snprintf(notify, sizeof(notify), "mailto");
	if (notify[0] != '\0') {
		(void)buf_printf(&c->out, "\"NOTIFY\" ");
		put_string(c, notify, strlen(notify));
		(void)buf_append(&c->out, "\r\n", 2);
	}
	if (c->cl.ssl == NULL)
		(void)buf_printf(&c->out, "\"STARTTLS\"\r\n");
	(void)buf_printf(&c->out, "\"VERSION\" \"1.0\"\r\n");
}

static int
sieve_start(struct conn *c)
{
	struct sieve_sess *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -1;
	sieve_parser_init(&s->p);
	c->sess = s;
	put_caps(c);
	return buf_printf(&c->out, "OK \"ManageSieve server ready.\"\r\n");
}

/* RFC 5804 §2.2: after STARTTLS the capabilities again, as if asked. */
static void
sieve_tls_started(struct conn *c)
{
	put_caps(c);
	(void)buf_printf(&c->out, "OK \"TLS negotiation successful.\"\r\n");
}

static void
sieve_free_sess(struct conn *c)
{
	struct sieve_sess *s = c->sess;

	if (s == NULL)
		return;
	sieve_parser_wipe(&s->p);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	c->sess = NULL;
}

static void
sieve_bye(struct conn *c, const char *text)
{
	put_status(c, "BYE", text);
}

/* A bad command: NO, and BYE after too many. */
static void
bad_command(struct conn *c, const char *text)
{
	put_status(c, "NO", text);
	if (++c->bad_commands >= c->cfg->limits.max_bad_commands) {
		log_kv(LOG_INFO, "session.abuse", "cid=%016llx client=%s reason=%s",
		       (unsigned long long)c->id, c->peer,
		       close_reason_name(CLOSE_TOO_MANY_BAD_COMMANDS));
		sieve_bye(c, "Too many invalid commands.");
		conn_close_after(c, CLOSE_TOO_MANY_BAD_COMMANDS);
	}
}

/* The login succeeded: the backend's own OK (its response code and text,
 * backend_sieve.c), ready to follow "OK ". */
static void
sieve_reply_ok(struct conn *c, const char *tail)
{
	(void)buf_printf(&c->out, "OK %s\r\n", tail[0] ? tail : "\"Logged in.\"");
	sieve_free_sess(c); /* parser and its copies of the credentials */
}

static void
sieve_reply_fail(struct conn *c, const char *text)
{
	put_status(c, "NO", text);
}

/* A SASL challenge is a string on a line of its own (RFC 5804 §2.1). */
static void
sieve_sasl_challenge(struct conn *c, const char *text)
{
	put_string(c, text, strlen(text));
	(void)buf_append(&c->out, "\r\n", 2);
}

static void
sieve_sasl_expect(struct conn *c)
{
	struct sieve_sess *s = c->sess;

	sieve_parser_expect_sasl(&s->p);
}

/* RFC 5804 §2.1: a cancelled exchange is answered NO; an undecodable
 * response is a bad command, as in IMAP. */
static bool
sieve_sasl_reject(struct conn *c, enum sasl_rc rc)
{
	switch (rc) {
	case SASL_BAD_BASE64:
		bad_command(c, "Invalid base64 in SASL response.");
		return true;
	case SASL_CANCELLED:
		put_status(c, "NO", "Authentication canceled.");
		return true;
	default:
		return false;
	}
}

static void
sieve_oauth_error(struct conn *c, const char *b64, bool last)
{
	struct sieve_sess *s = c->sess;

	sasl_exchange_oauth_error(c, &s->x, b64, last);
}

/* NOOP's tag comes back as OK (TAG string) (RFC 5804 §2.13). */
static void
noop(struct conn *c, const struct sieve_cmd *cmd)
{
	if (!cmd->has_tag) {
		(void)buf_printf(&c->out, "OK \"NOOP completed.\"\r\n");
		return;
	}
	(void)buf_printf(&c->out, "OK (TAG ");
	put_string(c, cmd->tag, cmd->tag_len);
	(void)buf_printf(&c->out, ") \"Done\"\r\n");
}

/* One parsed command.  Returns false when the dialog must stop parsing
 * (logging in, closing, TLS starting). */
static bool
command(struct conn *c, struct sieve_cmd *cmd)
{
	struct sieve_sess *s = c->sess;

	switch (cmd->verb) {
	case SIEVE_V_CAPABILITY:
		put_caps(c);
		(void)buf_printf(&c->out, "OK \"Capability completed.\"\r\n");
		return true;
	case SIEVE_V_NOOP:
		noop(c, cmd);
		return true;
	case SIEVE_V_LOGOUT:
		(void)buf_printf(&c->out, "OK \"Logout completed.\"\r\n");
		conn_close_after(c, CLOSE_CLIENT_LOGOUT);
		return false;
	case SIEVE_V_STARTTLS:
		if (c->cl.ssl != NULL) {
			bad_command(c, "TLS is already active.");
			return !c->closed && c->state == CS_PREAUTH;
		}
		(void)buf_printf(&c->out, "OK \"Begin TLS negotiation now.\"\r\n");
		conn_starttls(c);
		return false;
	case SIEVE_V_AUTHENTICATE: {
		unsigned mech = auth_mech_bit(cmd->mech);

		if (conn_tls_required(c)) {
			put_status(c, "NO", "[PRIVACYREQUIRED] Use STARTTLS before AUTHENTICATE.");
			return true;
		}
		if (mech == 0 || !(c->lc->auth_mechanisms & mech)) {
			put_status(c, "NO", "Unsupported authentication mechanism.");
			return true;
		}
		sasl_exchange_start(c, &s->x, mech, cmd->has_ir, cmd->ir, cmd->ir_len);
		sieve_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	}
	case SIEVE_V_SASL:
		sasl_exchange_response(c, &s->x, cmd->cancelled, cmd->ir, cmd->ir_len);
		sieve_cmd_wipe(cmd);
		return !c->closed && c->state == CS_PREAUTH;
	case SIEVE_V_UNAUTHENTICATE:
	case SIEVE_V_OTHER:
		bad_command(c, "Authenticate first.");
		return !c->closed && c->state == CS_PREAUTH;
	case SIEVE_V_NONE:
		break;
	}
	bad_command(c, "Unknown command.");
	return !c->closed && c->state == CS_PREAUTH;
}

static void
sieve_input(struct conn *c, struct sieve_cmd *cmd)
{
	struct sieve_sess *s = c->sess;

	while (buf_len(&c->in) > 0 && buf_space(&c->out) >= OUT_RESERVE) {
		size_t used = 0;
		enum sieve_rc rc;

		rc = sieve_parse(&s->p, buf_head(&c->in), buf_len(&c->in), &used, cmd);
		buf_consume(&c->in, used);
		switch (rc) {
		case SIEVE_MORE:
			return;
		case SIEVE_BAD:
			bad_command(c, cmd->error ? cmd->error : "Syntax error.");
			if (c->closed || c->state != CS_PREAUTH)
				return;
			continue;
		case SIEVE_FATAL:
			log_kv(LOG_INFO, "session.abuse", "cid=%016llx client=%s reason=\"%s\"",
			       (unsigned long long)c->id, c->peer,
			       cmd->error ? cmd->error : "fatal");
			sieve_bye(c, cmd->error ? cmd->error : "Protocol error.");
			conn_close_after(c, CLOSE_PROTOCOL_ERROR);
			return;
		case SIEVE_CMD:
			if (log_get_level() <= LOG_DEBUG)
				log_kv(LOG_DEBUG, "sieve.command", "cid=%016llx cmd=%s",
				       (unsigned long long)c->id,
				       cmd->verb == SIEVE_V_SASL ? "(sasl)" : cmd->name);
			if (!command(c, cmd))
				return; /* c may be closing, logging in or starting TLS */
			continue;
		}
	}
}

/*
 * The command being acted on lives here, one per worker thread, not in
 * each connection's session, and so does its SASL text: both are used
 * only inside one call of the input handler, on the worker's own thread.
 * Wiped after every call: they held credentials.
 */
static __thread struct sieve_cmd sieve_scratch;
static __thread char sieve_scratch_ir[SIEVE_SASL_MAX + 1];

static void
sieve_on_input(struct conn *c)
{
	sieve_cmd_init(&sieve_scratch, sieve_scratch_ir);
	sieve_input(c, &sieve_scratch); /* c may be closed here */
	sieve_cmd_wipe(&sieve_scratch);
}

const struct proto_ops sieve_proto_ops = {
    .kind = PROTO_SIEVE,
    .start = sieve_start,
    .on_input = sieve_on_input,
    .reply_ok = sieve_reply_ok,
    .reply_fail = sieve_reply_fail,
    .oauth_error = sieve_oauth_error,
    .sasl_expect = sieve_sasl_expect,
    .sasl_reject = sieve_sasl_reject,
    .tls_started = sieve_tls_started,
    .sasl_challenge = sieve_sasl_challenge,
    .bye = sieve_bye,
    .free_sess = sieve_free_sess,
};
