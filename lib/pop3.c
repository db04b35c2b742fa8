/*
 * pop3.c: the POP3 authorization-state command parser (RFC 1939 §4, §7;
 * RFC 2449 CAPA; RFC 5034 AUTH; RFC 2595 STLS).  It reads a line only once
 * the whole of it is in the caller's buffer, and keeps no copy: the parser
 * is a few words however long the line may be.  No memory, no I/O.
 */
#include <string.h>

#include "chars.h"
#include "pop3.h"
#include "sasl.h"

_Static_assert(POP3_SASL_MAX >= SASL_LINE_MAX, "POP3_SASL_MAX below the SASL line bound");
_Static_assert(POP3_AUTH_LINE_MAX >= POP3_SASL_MAX + 2, "an AUTH line is the longest");

/* Wipe that the compiler may not drop: lines hold PASS arguments. */
static void
wipe(void *b, size_t n)
{
	explicit_bzero(b, n);
}

void
pop3_parser_init(struct pop3_parser *p)
{
	memset(p, 0, sizeof(*p));
}

void
pop3_cmd_init(struct pop3_cmd *cmd, char *ir_buf)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->ir = ir_buf;
	if (ir_buf != NULL)
		ir_buf[0] = '\0';
}

/* A fresh command for the next line; the caller's ir buffer stays, and
 * whatever an earlier line left there is wiped first. */
static void
cmd_reset(struct pop3_cmd *cmd)
{
	char *ir = cmd->ir;

	if (ir != NULL)
		wipe(ir, cmd->ir_len + 1);
	memset(cmd, 0, sizeof(*cmd));
	cmd->ir = ir;
}

/* Copy a SASL text into the caller's buffer; false when there is none. */
static bool
copy_ir(struct pop3_cmd *cmd, const uint8_t *a, size_t n)
{
	if (cmd->ir == NULL) {
		cmd->error = "no room for a SASL response";
		return false;
	}
	memcpy(cmd->ir, a, n);
	cmd->ir[n] = '\0';
	cmd->ir_len = n;
	return true;
}

void
pop3_parser_expect_sasl(struct pop3_parser *p)
{
	p->expect_sasl = true;
}

static enum pop3_verb
verb_lookup(const uint8_t *w, size_t n)
{
	static const struct {
		const char *name;
		enum pop3_verb verb;
	} verbs[] = {
	    {"CAPA", POP3_V_CAPA},
	    {"USER", POP3_V_USER},
	    {"PASS", POP3_V_PASS},
	    {"AUTH", POP3_V_AUTH},
	    {"QUIT", POP3_V_QUIT},
	    {"STLS", POP3_V_STLS},
	    {"NOOP", POP3_V_NOOP},
	    /* RFC 1939 §5, §7 transaction commands (and APOP, LAST, XCLIENT):
	     * known, so the session can say "not now" instead of "what?" */
	    {"STAT", POP3_V_OTHER},
	    {"LIST", POP3_V_OTHER},
	    {"RETR", POP3_V_OTHER},
	    {"DELE", POP3_V_OTHER},
	    {"RSET", POP3_V_OTHER},
	    {"TOP", POP3_V_OTHER},
	    {"UIDL", POP3_V_OTHER},
	    {"LAST", POP3_V_OTHER},
	    {"APOP", POP3_V_OTHER},
	    {"XCLIENT", POP3_V_OTHER},
	};
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (chars_word_eq(w, n, verbs[i].name))
			return verbs[i].verb;
	}
	return POP3_V_NONE;
}

/* AUTH [mech [initial-response]] (RFC 5034 §4), a = the text after "AUTH". */
static enum pop3_rc
parse_auth(const uint8_t *a, size_t n, struct pop3_cmd *cmd)
{
	size_t i, m;

	if (n == 0)
		return POP3_CMD; /* no mechanism: list them (RFC 5034 §4) */
	/* a[0] is the single SP */
	for (m = 1; m < n && a[m] != ' '; m++) {
		if (!chars_mech(a[m])) {
			cmd->error = "invalid mechanism";
			return POP3_BAD;
		}
	}
	if (m == 1) {
		cmd->error = "invalid arguments";
		return POP3_BAD;
	}
	if (m - 1 > POP3_MECH_MAX) {
		cmd->error = "mechanism name too long";
		return POP3_BAD;
	}
	for (i = 1; i < m; i++)
		cmd->mech[i - 1] = (char)chars_upper(a[i]);
	cmd->has_mech = true;
	if (m == n)
		return POP3_CMD;
	a += m + 1;
	n -= m + 1;
	if (n == 0 || a[0] == ' ') {
		cmd->error = "invalid arguments"; /* RFC 2449 §3: one SP apart */
		return POP3_BAD;
	}
	for (i = 0; i < n; i++) {
		if (a[i] == ' ') {
			cmd->error = "too many arguments";
			return POP3_BAD;
		}
		if (!chars_base64(a[i])) {
			cmd->error = "invalid initial response";
			return POP3_BAD;
		}
	}
	if (n > POP3_SASL_MAX) {
		cmd->error = "initial response too long";
		return POP3_BAD;
	}
	cmd->has_ir = true;
	/* RFC 5034 §4: a lone "=" is an empty initial response. */
	if (n == 1 && a[0] == '=')
		return POP3_CMD;
	return copy_ir(cmd, a, n) ? POP3_CMD : POP3_FATAL;
}

/* One command line, terminator removed. */
static enum pop3_rc
parse_command(const uint8_t *l, size_t n, struct pop3_cmd *cmd)
{
	size_t w, i;
	const uint8_t *a;

	for (w = 0; w < n && l[w] != ' '; w++)
		;
	for (i = 0; i < w && i < POP3_VERB_MAX; i++)
		cmd->name[i] = (char)chars_upper(l[i]);
	if (memchr(l, '\0', n) != NULL) {
		cmd->error = "NUL in command";
		return POP3_BAD;
	}
	if (memchr(l, '\r', n) != NULL) {
		cmd->error = "CR not followed by LF";
		return POP3_BAD;
	}
	if (w == 0) {
		cmd->error = "empty command";
		return POP3_BAD;
	}
	cmd->verb = verb_lookup(l, w);
	a = l + w; /* the arguments, with their leading SP */
	n -= w;
	if (cmd->verb != POP3_V_PASS) {
		/* Trailing spaces are client sloppiness, not arguments. */
		while (n > 0 && a[n - 1] == ' ')
			n--;
	}
	switch (cmd->verb) {
	case POP3_V_NONE:
		cmd->error = "unknown command";
		return POP3_BAD;
	case POP3_V_CAPA:
	case POP3_V_QUIT:
	case POP3_V_STLS:
	case POP3_V_NOOP:
		if (n != 0) {
			cmd->error = "unexpected arguments";
			return POP3_BAD;
		}
		return POP3_CMD;
	case POP3_V_USER:
		/* RFC 1939 §7 USER name: the rest of the line, spaces around cut. */
		while (n > 0 && a[0] == ' ') {
			a++;
			n--;
		}
		if (n == 0) {
			cmd->error = "missing user name";
			return POP3_BAD;
		}
		if (n > POP3_USER_MAX) {
			cmd->error = "user name too long";
			return POP3_BAD;
		}
		memcpy(cmd->user, a, n);
		cmd->user_len = n;
		return POP3_CMD;
	case POP3_V_PASS:
		/* RFC 1939 §7: the argument may be the rest of the line, spaces
		 * included; only the one separating SP is dropped. */
		if (n < 2) {
			cmd->error = "missing password";
			return POP3_BAD;
		}
		if (n - 1 > POP3_SECRET_MAX) {
			cmd->error = "password too long";
			return POP3_BAD;
		}
		memcpy(cmd->secret, a + 1, n - 1);
		cmd->secret_len = n - 1;
		return POP3_CMD;
	case POP3_V_AUTH:
		return parse_auth(a, n, cmd);
	default:
		return POP3_CMD; /* POP3_V_OTHER: arguments left to the session */
	}
}

/* The line l[0..n), its LF and any CR before it removed. */
static enum pop3_rc
line_done(struct pop3_parser *p, const uint8_t *l, size_t n, struct pop3_cmd *cmd)
{
	enum pop3_rc rc;

	cmd_reset(cmd);
	if (p->expect_sasl) {
		/* RFC 5034 §4: "*" cancels; otherwise the line is passed as
		 * sent, for the base64 decoder to judge. */
		p->expect_sasl = false;
		cmd->verb = POP3_V_SASL;
		if (n > POP3_SASL_MAX) {
			/* only reachable with a bare LF ending */
			cmd->error = "line too long";
			p->overlong = true;
			return POP3_FATAL;
		}
		if (n == 1 && l[0] == '*') {
			cmd->cancelled = true;
		} else {
			if (!copy_ir(cmd, l, n))
				return POP3_FATAL;
			cmd->has_ir = true;
		}
		return POP3_CMD;
	}
	rc = parse_command(l, n, cmd);
	if (rc == POP3_BAD) {
		cmd->verb = POP3_V_NONE;
		wipe(cmd->user, sizeof(cmd->user));
		wipe(cmd->secret, sizeof(cmd->secret));
		if (cmd->ir != NULL)
			wipe(cmd->ir, cmd->ir_len + 1);
		cmd->user_len = cmd->secret_len = cmd->ir_len = 0;
		cmd->has_ir = cmd->has_mech = false;
		cmd->mech[0] = '\0';
	}
	return rc;
}

/*
 * The most bytes, LF included, the line starting at buf may take: RFC 2449
 * §4's 255 octets; a SASL response is not bound by them (RFC 5034 §4), nor
 * is an AUTH line carrying a long initial response.  Whether a line is an
 * AUTH line is known from its first five bytes; until they are here the
 * shorter limit stands, which they cannot exceed.
 */
static size_t
line_max(const struct pop3_parser *p, const uint8_t *buf, size_t len)
{
	if (p->expect_sasl)
		return POP3_SASL_MAX + 2;
	if (len >= 5 && chars_word_eq(buf, 4, "AUTH") && buf[4] == ' ')
		return POP3_AUTH_LINE_MAX;
	return POP3_LINE_MAX;
}

enum pop3_rc
pop3_parse(struct pop3_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
           struct pop3_cmd *cmd_out)
{
	size_t max = line_max(p, buf, len);
	const uint8_t *lf;
	size_t n;

	*used_out = 0;
	if (p->overlong) {
		cmd_reset(cmd_out);
		cmd_out->error = "line too long";
		return POP3_FATAL;
	}
	/* bytes seen by an earlier call are the same and hold no LF */
	n = p->seen < len ? p->seen : 0;
	lf = n < max ? memchr(buf + n, '\n', (len < max ? len : max) - n) : NULL;
	if (lf == NULL) {
		if (len <= max) {
			p->seen = len;
			return POP3_MORE; /* the caller keeps buf and adds to it */
		}
		/* A byte past the limit and no LF: we do not wait for the end
		 * of a line already too long. */
		p->overlong = true;
		*used_out = max + 1;
		cmd_reset(cmd_out);
		cmd_out->error = "line too long";
		return POP3_FATAL;
	}
	p->seen = 0;
	*used_out = (size_t)(lf - buf) + 1;
	n = (size_t)(lf - buf);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	return line_done(p, buf, n, cmd_out);
}

void
pop3_cmd_wipe(struct pop3_cmd *cmd)
{
	wipe(cmd->user, sizeof(cmd->user));
	wipe(cmd->secret, sizeof(cmd->secret));
	if (cmd->ir != NULL)
		wipe(cmd->ir, cmd->ir_len + 1); /* nothing past it was written */
	cmd->user_len = 0;
	cmd->secret_len = 0;
	cmd->ir_len = 0;
}

void
pop3_parser_wipe(struct pop3_parser *p)
{
	wipe(p, sizeof(*p));
}
