/*
 * sieve.c: the pre-authentication ManageSieve command parser (sieve.h), a
 * resumable byte state machine over RFC 5804 §4 grammar: a command word,
 * then strings (quoted or "{n+}" literals) and numbers apart by one SP.
 * It owns no memory and never does I/O: every line byte is looked at once,
 * literal bytes are copied or counted in bulk, and all state lives in
 * struct sieve_parser, so a command may arrive in any pieces.
 */
#include <stdio.h>
#include <string.h>

#include "chars.h"
#include "sasl.h"
#include "sieve.h"

/* RFC 5804 §4: quoted = DQUOTE *1024QUOTED-CHAR DQUOTE. */
#define QUOTED_MAX 1024

_Static_assert(SIEVE_SASL_MAX >= SASL_LINE_MAX, "SIEVE_SASL_MAX below the SASL line bound");
_Static_assert(SIEVE_INPUT_MIN >= SIEVE_SASL_MAX + 4, "a quoted SASL text and CRLF must fit");

/* Parser states (p->state). */
enum {
	S_VERB,      /* reading the command word */
	S_ARG,       /* an argument starts here: '"', '{' or a digit */
	S_QUOTED,    /* inside a quoted string; sub 1 after a backslash */
	S_LITANN,    /* inside "{n+}"; sub counts the parts seen */
	S_LIT,       /* literal bytes, lit_left to come */
	S_NUM,       /* inside a number */
	S_AFTER_ARG, /* an argument ended: SP or the line end */
	S_SKIP,      /* a bad line: discarding to its end (literals too) */
	S_FATAL,     /* gave SIEVE_FATAL; stays here */
};

/*
 * p->lit: a bad line may still announce a literal, and "{n}" or "{n+}"
 * just before a line end is one whatever precedes it (a quoted string
 * cannot hold CR or LF).  The client sends its bytes anyway, so we must
 * find them to stay in step; the detector runs over every line byte so it
 * is right wherever the error began.
 */

/* step() results besides a sieve_rc: go on, or look at this byte again. */
#define R_GO    (-1)
#define R_AGAIN (-2)

/*
 * What each command takes (RFC 5804 §2): min..max arguments, one letter
 * each: 'm' the mechanism, 'i' a SASL text (kept in the caller's cmd.ir),
 * 't' NOOP's tag, 's' a string read and dropped, 'n' a number (dropped).
 * Entry 0 is a SASL response line (sieve_parser_expect_sasl()).
 */
static const struct sig {
	const char *name;
	enum sieve_verb verb;
	int min, max;
	const char *args;
} sigs[] = {
    {"", SIEVE_V_SASL, 1, 1, "i"},
    {"CAPABILITY", SIEVE_V_CAPABILITY, 0, 0, ""},
    {"NOOP", SIEVE_V_NOOP, 0, 1, "t"},
    {"LOGOUT", SIEVE_V_LOGOUT, 0, 0, ""},
    {"STARTTLS", SIEVE_V_STARTTLS, 0, 0, ""},
    {"AUTHENTICATE", SIEVE_V_AUTHENTICATE, 1, 2, "mi"},
    {"UNAUTHENTICATE", SIEVE_V_UNAUTHENTICATE, 0, 0, ""},
    {"PUTSCRIPT", SIEVE_V_OTHER, 2, 2, "ss"},
    {"LISTSCRIPTS", SIEVE_V_OTHER, 0, 0, ""},
    {"SETACTIVE", SIEVE_V_OTHER, 1, 1, "s"},
    {"GETSCRIPT", SIEVE_V_OTHER, 1, 1, "s"},
    {"DELETESCRIPT", SIEVE_V_OTHER, 1, 1, "s"},
    {"RENAMESCRIPT", SIEVE_V_OTHER, 2, 2, "ss"},
    {"CHECKSCRIPT", SIEVE_V_OTHER, 1, 1, "s"},
    {"HAVESPACE", SIEVE_V_OTHER, 2, 2, "sn"},
};
#define SIG_SASL 0
#define SIGS     ((int)(sizeof(sigs) / sizeof(sigs[0])))

/* Wipe that the compiler may not drop: the buffers held credentials. */
static void
wipe(void *b, size_t n)
{
	explicit_bzero(b, n);
}

static void
reset_line(struct sieve_parser *p)
{
	wipe(&p->cmd, sizeof(p->cmd));
	p->sasl_line = p->expect_sasl;
	p->state = p->expect_sasl ? S_ARG : S_VERB;
	p->sig = SIG_SASL;
	p->sub = 0;
	p->lit = (struct lit_scan){0};
	p->cr = false;
	p->lit_drop = false;
	p->nargs = 0;
	p->line_len = 0;
	p->lit_left = 0;
	p->arg_len = 0;
	p->raw = 0;
	p->number = 0;
	p->seen = 0;
	p->error = NULL;
}

void
sieve_parser_init(struct sieve_parser *p)
{
	memset(p, 0, sizeof(*p));
	reset_line(p);
}

void
sieve_parser_expect_sasl(struct sieve_parser *p)
{
	p->expect_sasl = true;
	/* Called between commands; mid-line it takes effect at the next line. */
	if (p->state == S_VERB && p->line_len == 0) {
		p->state = S_ARG;
		p->sasl_line = true;
	}
}

void
sieve_cmd_init(struct sieve_cmd *cmd, char *ir_buf)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->ir = ir_buf;
	if (ir_buf != NULL)
		ir_buf[0] = '\0';
}

/* What the current argument is: a letter of its command's sigs[].args. */
static char
arg_kind(const struct sieve_parser *p)
{
	const struct sig *s = &sigs[p->sig];

	return p->nargs < s->max ? s->args[p->nargs] : 's';
}

static int
fatal(struct sieve_parser *p, const char *why)
{
	p->error = why;
	p->state = S_FATAL;
	return SIEVE_FATAL;
}

/*
 * Mark the line bad: the first reason is kept, the rest of the line is
 * skipped, and the caller looks at the current byte again in S_SKIP (it
 * may be the line end).  Inside a literal, its other bytes are dropped and
 * the skip begins after it.
 */
static int
fail(struct sieve_parser *p, const char *why)
{
	if (p->error == NULL)
		p->error = why;
	if (p->state == S_LIT) {
		p->lit_drop = true;
		return R_GO;
	}
	p->state = S_SKIP;
	return R_AGAIN;
}

/* One byte of a SASL text into the caller's cmd.ir, which is there for
 * the whole call that reads the text (see quoted_whole(), lit_whole()). */
static void
ir_put(struct sieve_parser *p, uint8_t c)
{
	p->cmd.ir[p->arg_len++] = (char)c;
	if (p->arg_len > p->ir_written)
		p->ir_written = p->arg_len;
}

/* One byte of a string argument (unescaped), quoted or literal. */
static int
put(struct sieve_parser *p, uint8_t c, bool quoted)
{
	switch (arg_kind(p)) {
	case 'i':
		ir_put(p, c); /* bounded: raw <= SIEVE_SASL_MAX, or the "{n+}" */
		return R_GO;
	case 'm':
		if (!chars_mech(c))
			return fail(p, "invalid mechanism");
		if (p->arg_len == SIEVE_MECH_MAX)
			return fail(p, "mechanism name too long");
		p->cmd.mech[p->arg_len++] = (char)chars_upper(c);
		return R_GO;
	case 't':
		/* echoed in OK (TAG ...): no byte a quoted string cannot hold */
		if (c == '\0' || c == '\r' || c == '\n')
			return fail(p, "invalid tag");
		if (p->arg_len == SIEVE_TAG_MAX)
			return fail(p, "tag too long");
		p->cmd.tag[p->arg_len++] = (char)c; /* cmd was zeroed: stays terminated */
		return R_GO;
	default:
		if (quoted && p->arg_len == QUOTED_MAX)
			return fail(p, "quoted string too long");
		p->arg_len++;
		return R_GO;
	}
}

/* A string or number argument ended. */
static int
arg_done(struct sieve_parser *p)
{
	switch (arg_kind(p)) {
	case 'i':
		p->cmd.ir[p->arg_len] = '\0';
		p->cmd.ir_len = p->arg_len;
		p->cmd.has_ir = true;
		break;
	case 'm':
		if (p->arg_len == 0)
			return fail(p, "invalid mechanism");
		break;
	case 't':
		p->cmd.tag_len = p->arg_len;
		p->cmd.has_tag = true;
		break;
	default:
		break;
	}
	p->nargs++;
	p->arg_len = 0;
	p->state = S_AFTER_ARG;
	return R_GO;
}

/* A literal's last byte was read: the argument ends, or the skip goes on. */
static int
lit_done(struct sieve_parser *p)
{
	int r;

	p->lit.st = LIT_TEXT; /* what follows a literal starts afresh */
	p->lit_drop = false;
	p->state = S_SKIP;
	if (p->error != NULL)
		return R_GO;
	p->state = S_AFTER_ARG;
	r = arg_done(p);
	return r == R_AGAIN ? R_GO : r; /* a bad argument: the next byte is skipped */
}

/*
 * "{n}" or "{n+}" then CRLF was read: n bytes follow.  RFC 5804 §4: a
 * client sends only "{n+}"; the server never invites a "{n}" (there is no
 * "+" continuation in ManageSieve), so the client would wait, or send
 * bytes we could not tell from commands.  Every literal is bounded before
 * its first byte.
 */
static int
literal(struct sieve_parser *p, bool skipping)
{
	uint64_t n = p->lit.n;

	if (!p->lit.nonsync)
		return fatal(p, "Synchronizing literals are not allowed");
	if (!skipping && arg_kind(p) == 'i') {
		if (n > SIEVE_SASL_MAX)
			return fatal(p, "SASL response too long");
		if (p->cmd.ir == NULL)
			return fatal(p, "no room for a SASL response");
	} else if (n > SIEVE_LITERAL_MAX) {
		return fatal(p, "literal too large");
	}
	p->lit_left = (size_t)n;
	p->lit_drop = skipping || arg_kind(p) == 's';
	p->arg_len = 0;
	p->state = S_LIT;
	return R_GO;
}

/* Is the command word one we know?  Sets p->sig to its entry. */
static bool
verb_known(struct sieve_parser *p)
{
	size_t len = p->arg_len;

	for (int i = 1; i < SIGS && len <= SIEVE_VERB_MAX; i++) {
		if (chars_word_eq(p->cmd.name, len, sigs[i].name)) {
			p->sig = i;
			return true;
		}
	}
	return false;
}

/* The command word ended, at SP or at the line end. */
static int
verb_done(struct sieve_parser *p, bool at_eol)
{
	const struct sig *s;

	if (!verb_known(p))
		return fail(p, "unknown command");
	s = &sigs[p->sig];
	p->cmd.verb = s->verb;
	p->arg_len = 0;
	p->nargs = 0;
	if (at_eol)
		return s->min == 0 ? SIEVE_CMD : fail(p, "missing arguments");
	if (s->max == 0)
		return fail(p, "unexpected arguments");
	p->state = S_ARG;
	return R_GO;
}

/* One byte of a line, neither CR nor LF nor NUL (unless in S_SKIP). */
static int
step(struct sieve_parser *p, uint8_t c)
{
	switch (p->state) {
	case S_VERB:
		if (c == ' ' && p->arg_len > 0)
			return verb_done(p, false);
		if (!chars_alpha(c))
			return fail(p, p->arg_len == 0 ? "invalid command" : "unknown command");
		if (p->arg_len < SIEVE_VERB_MAX)
			p->cmd.name[p->arg_len] = (char)chars_upper(c);
		p->arg_len++;
		return R_GO;

	case S_ARG:
		p->arg_len = 0;
		p->raw = 0;
		if (c == '"' || c == '{') {
			if (arg_kind(p) == 'n')
				return fail(p, "expected a number");
			p->state = c == '"' ? S_QUOTED : S_LITANN;
			p->sub = 0;
			return R_GO;
		}
		if (chars_digit(c)) {
			if (arg_kind(p) != 'n')
				return fail(p, "expected a string");
			p->number = (uint64_t)(c - '0');
			p->state = S_NUM;
			return R_GO;
		}
		return fail(p, "invalid arguments");

	case S_QUOTED:
		/* RFC 5804 §4: only \" and \\ are escapes; no CR, LF, NUL. */
		if (c == '"' && p->sub == 0)
			return arg_done(p);
		/* a SASL text is bounded as sent: the caller holds it whole */
		if (arg_kind(p) == 'i' && ++p->raw > SIEVE_SASL_MAX)
			return fatal(p, "SASL response too long");
		if (p->sub == 1) {
			if (c != '"' && c != '\\')
				return fail(p, "invalid escape in quoted string");
			p->sub = 0;
			return put(p, c, true);
		}
		if (c == '\\') {
			p->sub = 1;
			return R_GO;
		}
		return put(p, c, true);

	case S_LITANN:
		/* RFC 5804 §4 literal-c2s: "{" number "+}" CRLF, read by p->lit */
		return lit_scan_well_formed(&p->lit) ? R_GO : fail(p, "invalid literal");

	case S_NUM:
		if (c == ' ') {
			arg_done(p);
			return R_AGAIN;
		}
		if (!chars_digit(c))
			return fail(p, "invalid number");
		/* RFC 5804 §4: number < 4,294,967,296 */
		p->number = p->number * 10 + (uint64_t)(c - '0');
		if (p->number > UINT32_MAX)
			return fail(p, "number too large");
		return R_GO;

	case S_AFTER_ARG:
		if (c != ' ')
			return fail(p, "invalid arguments");
		if (p->nargs >= sigs[p->sig].max)
			return fail(p, "too many arguments");
		p->state = S_ARG;
		return R_GO;

	case S_SKIP:
		return R_GO;

	default:
		return fail(p, "internal parser error");
	}
}

/* The command line ended: a command, or a bad line. */
static int
line_done(struct sieve_parser *p)
{
	if (p->nargs < sigs[p->sig].min)
		return fail(p, "missing arguments");
	if (p->sig == SIG_SASL && p->cmd.ir_len == 1 && p->cmd.ir[0] == '*') {
		/* RFC 5804 §2.1: the string "*" cancels the exchange */
		p->cmd.ir[0] = '\0';
		p->cmd.ir_len = 0;
		p->cmd.has_ir = false;
		p->cmd.cancelled = true;
	}
	p->cmd.verb = sigs[p->sig].verb;
	return SIEVE_CMD;
}

/* The line ended (LF, or CRLF) in the current state. */
static int
eol(struct sieve_parser *p)
{
	switch (p->state) {
	case S_VERB:
		if (p->arg_len == 0)
			return fail(p, "empty command line");
		return verb_done(p, true);

	case S_ARG:
		return fail(p, "missing arguments");

	case S_QUOTED:
		return fail(p, "unterminated quoted string");

	case S_LITANN:
		if (p->lit.st != LIT_CLOSE)
			return fail(p, "invalid literal");
		return literal(p, false);

	case S_NUM:
		arg_done(p);
		return R_AGAIN;

	case S_AFTER_ARG:
		return line_done(p);

	case S_SKIP:
		if (p->lit.st == LIT_CLOSE)
			return literal(p, true);
		return SIEVE_BAD;

	default:
		return fail(p, "internal parser error");
	}
}

static int
run(struct sieve_parser *p, uint8_t c, bool at_eol)
{
	int r;

	while ((r = at_eol ? eol(p) : step(p, c)) == R_AGAIN)
		;
	return r;
}

/* One byte of a command line (not literal content). */
static int
line_byte(struct sieve_parser *p, uint8_t c)
{
	if (p->cr) {
		p->cr = false;
		if (c == '\n')
			return run(p, c, true);
		/* RFC 5804 §4: lines end in CRLF; a lone CR is garbage */
		p->lit.st = LIT_TEXT;
		fail(p, "CR not followed by LF");
	}
	if (c == '\r') {
		p->cr = true;
		return R_GO;
	}
	if (c == '\n')
		return run(p, c, true); /* bare LF: tolerated, as imap.c does */
	if (c == '\0')
		fail(p, "NUL in command");
	lit_scan_byte(&p->lit, c);
	return run(p, c, false);
}

/*
 * At the opening quote of a SASL text: is its line end in b[0..n), or the
 * text over its limit there (the byte loop will say so before the end of
 * b)?  Only then is the text read, straight into the caller's cmd.ir
 * during this one call; else the caller keeps the bytes and brings more.
 * seen spares a text coming a byte at a time from being scanned again.
 */
static bool
quoted_whole(struct sieve_parser *p, const uint8_t *b, size_t n)
{
	size_t cap = SIEVE_SASL_MAX + 4; /* the quotes, the text, CR, LF */
	size_t upto = n < cap ? n : cap;
	size_t from = p->seen < upto ? p->seen : 0;

	if (n > cap || memchr(b + from, '\n', upto - from) != NULL) {
		p->seen = 0;
		return true;
	}
	p->seen = n;
	return false;
}

/* At a literal SASL text: are its bytes and the line end after them in
 * b[0..n) (or a byte that will fail the line)? */
static bool
lit_whole(const struct sieve_parser *p, const uint8_t *b, size_t n)
{
	size_t k = p->lit_left;

	return n >= k + 2 || (n == k + 1 && b[k] != '\r');
}

/* Literal bytes: copied where their argument goes, or counted. */
static void
lit_bytes(struct sieve_parser *p, const uint8_t *b, size_t n)
{
	if (p->lit_drop)
		return;
	if (arg_kind(p) == 'i') {
		memcpy(p->cmd.ir + p->arg_len, b, n); /* fits: checked at "{n+}" */
		p->arg_len += n;
		if (p->arg_len > p->ir_written)
			p->ir_written = p->arg_len;
		return;
	}
	for (size_t i = 0; i < n && !p->lit_drop; i++)
		put(p, b[i], false); /* a bad byte sets lit_drop */
}

static void
set_out_error(struct sieve_parser *p, struct sieve_cmd *out)
{
	char *ir = out->ir;

	memset(out, 0, sizeof(*out));
	out->ir = ir;
	if (ir != NULL)
		ir[0] = '\0';
	memcpy(out->name, p->cmd.name, sizeof(out->name));
	out->error = p->error != NULL ? p->error : "invalid command";
}

static enum sieve_rc
parse(struct sieve_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
      struct sieve_cmd *cmd_out)
{
	size_t i = 0;
	int r = R_GO;

	if (p->state == S_FATAL) {
		*used_out = 0;
		set_out_error(p, cmd_out);
		return SIEVE_FATAL;
	}
	while (i < len && r == R_GO) {
		if (p->state == S_LIT) {
			size_t n;

			if (!p->lit_drop && arg_kind(p) == 'i' && !lit_whole(p, buf + i, len - i))
				break; /* *used_out = i: the text stays with the caller */
			n = len - i < p->lit_left ? len - i : p->lit_left;
			lit_bytes(p, buf + i, n);
			i += n;
			p->lit_left -= n;
			if (p->lit_left == 0)
				r = lit_done(p);
			continue;
		}
		if (p->state == S_ARG && buf[i] == '"' && !p->cr && arg_kind(p) == 'i') {
			if (p->cmd.ir == NULL) {
				r = fatal(p, "no room for a SASL response");
				break;
			}
			if (!quoted_whole(p, buf + i, len - i))
				break;
		}
		/* a quoted SASL text has its own bound (raw), not the line's */
		if (!(p->state == S_QUOTED && arg_kind(p) == 'i') &&
		    ++p->line_len > SIEVE_LINE_MAX) {
			r = fatal(p, "line too long");
			i++;
			break;
		}
		r = line_byte(p, buf[i++]);
	}
	*used_out = i;
	switch (r) {
	case R_GO:
		return SIEVE_MORE;
	case SIEVE_CMD:
		*cmd_out = p->cmd;
		cmd_out->error = NULL;
		if (p->sasl_line)
			p->expect_sasl = false;
		reset_line(p);
		return SIEVE_CMD;
	case SIEVE_BAD:
		set_out_error(p, cmd_out);
		/* a bad SASL response ends the exchange: the session answers NO */
		if (p->sasl_line)
			p->expect_sasl = false;
		reset_line(p);
		return SIEVE_BAD;
	default:
		set_out_error(p, cmd_out);
		return SIEVE_FATAL;
	}
}

enum sieve_rc
sieve_parse(struct sieve_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
            struct sieve_cmd *cmd_out)
{
	enum sieve_rc rc;

	p->cmd.ir = cmd_out->ir; /* lent for this call only */
	p->ir_written = 0;
	rc = parse(p, buf, len, used_out, cmd_out);
	/* A text read and not handed over (a bad line, or one cut short by a
	 * fatal error) leaves nothing behind in the caller's buffer. */
	if (rc != SIEVE_CMD && p->ir_written > 0)
		wipe(cmd_out->ir, p->ir_written + 1);
	p->cmd.ir = NULL;
	return rc;
}

void
sieve_cmd_wipe(struct sieve_cmd *cmd)
{
	if (cmd->ir != NULL)
		wipe(cmd->ir, cmd->ir_len + 1); /* the parser wiped any other text */
	cmd->ir_len = 0;
	cmd->has_ir = false;
}

void
sieve_parser_wipe(struct sieve_parser *p)
{
	/* the parser keeps no SASL text between calls; the rest is not secret,
	 * but a half-read command goes too */
	wipe(&p->cmd, sizeof(p->cmd));
	p->arg_len = 0;
}

size_t
sieve_quote(char *out, size_t outlen, const char *s, size_t len, bool nonsync)
{
	size_t need = 2, i, o = 0;
	bool quoted = len <= QUOTED_MAX;

	for (i = 0; i < len && quoted; i++) {
		uint8_t c = (uint8_t)s[i];

		/* 7-bit only: a quoted string must be UTF-8 (RFC 5804 §4
		 * SAFE-UTF8-CHAR); a literal carries any octet */
		if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80)
			quoted = false;
		need += (c == '"' || c == '\\') ? 2 : 1;
	}
	if (quoted) {
		if (need > outlen)
			return 0;
		out[o++] = '"';
		for (i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\')
				out[o++] = '\\';
			out[o++] = s[i];
		}
		out[o++] = '"';
		return o;
	}
	char head[32];
	int h = snprintf(head, sizeof(head), "{%zu%s}\r\n", len, nonsync ? "+" : "");

	if (h <= 0 || (size_t)h > outlen || len > outlen - (size_t)h)
		return 0;
	memcpy(out, head, (size_t)h);
	memcpy(out + h, s, len);
	return (size_t)h + len;
}
