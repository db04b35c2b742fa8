/*
 * imap_grammar.c: one pre-authentication IMAP command line, byte by byte,
 * over RFC 9051 §9 (tag, command word, astrings, literals, ID lists,
 * AUTHENTICATE).  The driver in imap.c feeds it; like the driver it owns no
 * memory, does no I/O, and keeps all state in struct imap_parser.
 */
#include <stdio.h>
#include <string.h>

#include "chars.h"
#include "imap.h"
#include "imap_impl.h"
#include "sasl.h"

/* RFC 9051 §9: ATOM-CHAR is any CHAR except atom-specials. */

static bool
is_atom_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

/* ASTRING-CHAR = ATOM-CHAR / resp-specials. */
static bool
is_astring_char(uint8_t c)
{
	return is_atom_char(c) || c == ']';
}

/* RFC 9051 §9: tag = 1*<any ASTRING-CHAR except "+">. */
static bool
is_tag_char(uint8_t c)
{
	return is_astring_char(c) && c != '+';
}

/* Command words are atoms; we keep to letters, digits, "-" and "_" so
 * that a word can be logged as is and garbage is told apart from an
 * unknown command. */
static bool
is_verb_char(uint8_t c)
{
	return chars_alpha(c) || chars_digit(c) || c == '-' || c == '_';
}

/*
 * Mark the line bad: the first reason is kept, the rest of the line is
 * skipped, and the caller looks at the current byte again in S_SKIP (it
 * may be "{" or the line end).
 */
static int
fail(struct imap_parser *p, const char *why)
{
	if (p->error == NULL)
		p->error = why;
	if (p->state == S_TAG) {
		/* RFC 9051 §7.1.5: an untagged BAD when the tag itself is bad. */
		memset(p->cmd.tag, 0, sizeof(p->cmd.tag));
		p->cmd.tag[0] = '*';
	}
	p->state = S_SKIP;
	return R_AGAIN;
}

int
imap_fatal(struct imap_parser *p, const char *why)
{
	p->error = why;
	p->state = S_FATAL;
	return IMAP_FATAL;
}

/* Where the bytes of the current argument go, and how many fit. */
char *
imap_arg_dest(struct imap_parser *p)
{
	if (p->cmd.verb == IMAP_V_LOGIN)
		return p->nargs == 0 ? p->cmd.user : p->cmd.secret;
	return NULL; /* ID items are counted, not kept */
}

static size_t
arg_max(const struct imap_parser *p)
{
	if (p->cmd.verb == IMAP_V_LOGIN)
		return p->nargs == 0 ? IMAP_USER_MAX : IMAP_SECRET_MAX;
	return (p->nargs % 2 == 0) ? ID_FIELD_MAX : ID_VALUE_MAX;
}

static const char *
arg_too_long(const struct imap_parser *p)
{
	if (p->cmd.verb == IMAP_V_LOGIN)
		return p->nargs == 0 ? "user name too long" : "password too long";
	return (p->nargs % 2 == 0) ? "ID field too long" : "ID value too long";
}

static int
put(struct imap_parser *p, uint8_t c)
{
	char *dest = imap_arg_dest(p);

	if (p->arg_len >= arg_max(p))
		return fail(p, arg_too_long(p));
	if (dest != NULL)
		dest[p->arg_len] = (char)c; /* cmd was zeroed: stays terminated */
	p->arg_len++;
	return R_GO;
}

static void
arg_done(struct imap_parser *p)
{
	if (p->cmd.verb == IMAP_V_LOGIN) {
		if (p->nargs == 0)
			p->cmd.user_len = p->arg_len;
		else
			p->cmd.secret_len = p->arg_len;
	}
	p->nargs++;
	p->state = S_AFTER_ARG;
}

void
imap_lit_done(struct imap_parser *p)
{
	p->lit.st = LIT_TEXT; /* what follows a literal starts afresh */
	if (p->lit_skip)
		p->state = S_SKIP;
	else
		arg_done(p);
}

/*
 * A literal announced on a line being skipped.  A synchronising one on a bad
 * line ends the line: we answer BAD instead of "+", so the client never sends
 * it (RFC 9051 §7.5).  Any other must be read through, and bounded.
 */
static int
skip_literal(struct imap_parser *p)
{
	size_t n = p->lit.n;

	if (!p->lit.nonsync && p->error != NULL)
		return IMAP_BAD;
	if (n > p->lim.literal_max)
		return imap_fatal(p, "literal too large");
	p->lit_skip = true;
	p->lit_left = n;
	p->state = S_LIT;
	if (n == 0)
		imap_lit_done(p);
	return p->lit.nonsync ? R_GO : IMAP_CONTINUE;
}

/*
 * "{n}" or "{n+}" then CRLF was read where an argument starts.  The budget is
 * checked before "+" is sent (RFC 9051 §4.3; RFC 7888 §4 for "{n+}", which
 * comes without asking and so is refused the same way).
 */
static int
arg_literal(struct imap_parser *p)
{
	size_t n = p->lit.n;
	size_t budget = p->lim.literal_max;

	if (p->cmd.verb == IMAP_V_ID && n > arg_max(p)) {
		/* An ID item over its RFC 2971 size: a bad line, not a fatal one
		 * when it can be skipped: "{n}" is answered BAD before the client
		 * sends it, "{n+}" is read through if within literal_max. */
		p->error = arg_too_long(p);
		p->state = S_SKIP;
		return skip_literal(p);
	}
	if (p->cmd.verb == IMAP_V_LOGIN && arg_max(p) < budget)
		budget = arg_max(p);
	if (n > budget)
		return imap_fatal(p, "literal too large");
	p->lit_skip = false;
	p->lit_left = n;
	p->arg_len = 0;
	p->state = S_LIT;
	if (n == 0)
		imap_lit_done(p);
	return p->lit.nonsync ? R_GO : IMAP_CONTINUE;
}

static enum imap_verb
verb_lookup(const char *name, size_t len)
{
	static const struct {
		const char *name;
		enum imap_verb verb;
	} verbs[] = {
	    {"CAPABILITY", IMAP_V_CAPABILITY},
	    {"NOOP", IMAP_V_NOOP},
	    {"LOGOUT", IMAP_V_LOGOUT},
	    {"ID", IMAP_V_ID},
	    {"STARTTLS", IMAP_V_STARTTLS},
	    {"LOGIN", IMAP_V_LOGIN},
	    {"AUTHENTICATE", IMAP_V_AUTHENTICATE},
	};
	size_t i;

	if (len > IMAP_VERB_MAX)
		return IMAP_V_OTHER; /* name holds a cut copy; no verb is this long */
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (chars_word_eq(name, len, verbs[i].name))
			return verbs[i].verb;
	}
	return IMAP_V_OTHER;
}

/* The command word ended, at SP or at the line end. */
static int
verb_done(struct imap_parser *p, bool at_eol)
{
	p->cmd.verb = verb_lookup(p->cmd.name, p->arg_len);
	p->arg_len = 0;
	p->nargs = 0;
	switch (p->cmd.verb) {
	case IMAP_V_CAPABILITY:
	case IMAP_V_NOOP:
	case IMAP_V_LOGOUT:
	case IMAP_V_STARTTLS:
		return at_eol ? IMAP_CMD : fail(p, "unexpected arguments");
	case IMAP_V_LOGIN:
		if (at_eol)
			return fail(p, "missing arguments");
		p->state = S_ARG;
		return R_GO;
	case IMAP_V_AUTHENTICATE:
		if (at_eol)
			return fail(p, "missing mechanism");
		p->state = S_MECH;
		return R_GO;
	case IMAP_V_ID:
		if (at_eol)
			return fail(p, "missing arguments");
		p->state = S_ID_ARGS;
		return R_GO;
	default:
		/* Valid only after login: the session refuses it, we skip its
		 * arguments (literals included) without judging them. */
		if (at_eol)
			return IMAP_CMD;
		p->state = S_SKIP;
		return R_GO;
	}
}

/* One byte of a SASL text into the caller's cmd.ir, which is there for the
 * whole call that reads the text (see sasl_line_whole()). */
int
imap_ir_put(struct imap_parser *p, uint8_t c)
{
	p->cmd.ir[p->arg_len++] = (char)c;
	if (p->arg_len > p->ir_written)
		p->ir_written = p->arg_len;
	return R_GO;
}

/* One byte of a line, neither CR nor LF nor NUL (unless in S_SKIP). */
static int
step(struct imap_parser *p, uint8_t c)
{
	switch (p->state) {
	case S_TAG:
		if (c == ' ' && p->arg_len > 0) {
			p->state = S_VERB;
			p->arg_len = 0;
			return R_GO;
		}
		if (!is_tag_char(c) || p->arg_len == IMAP_TAG_MAX)
			return fail(p, "invalid tag");
		p->cmd.tag[p->arg_len++] = (char)c;
		return R_GO;

	case S_VERB:
		if (c == ' ' && p->arg_len > 0)
			return verb_done(p, false);
		if (!is_verb_char(c) || (p->arg_len == 0 && !chars_alpha(c)))
			return fail(p, "invalid command");
		if (p->arg_len < IMAP_VERB_MAX)
			p->cmd.name[p->arg_len] = (char)c;
		p->arg_len++;
		return R_GO;

	case S_ARG:
		p->arg_len = 0;
		if (c == '"') {
			p->state = S_QUOTED;
			p->sub = 0;
			return R_GO;
		}
		if (c == '{') {
			p->state = S_LITANN; /* p->lit reads the number */
			return R_GO;
		}
		if (p->cmd.verb == IMAP_V_ID && is_astring_char(c)) {
			/* RFC 2971 §4: fields are strings, values nstrings: the
			 * only atom is a value's NIL. */
			if (p->nargs % 2 == 0 || chars_upper(c) != 'N')
				return fail(p, "ID item not a string");
			p->state = S_ID_VNIL;
			p->sub = 1;
			return R_GO;
		}
		if (is_astring_char(c)) {
			p->state = S_ATOM;
			return R_AGAIN;
		}
		return fail(p, "invalid arguments");

	case S_ATOM:
		if (is_astring_char(c))
			return put(p, c);
		if (c == ' ') {
			arg_done(p);
			return R_AGAIN;
		}
		return fail(p, "invalid arguments");

	case S_ID_VNIL:
		if (p->sub < 3 && chars_upper(c) == (uint8_t) "NIL"[p->sub]) {
			p->sub++;
			return R_GO;
		}
		if (p->sub == 3 && (c == ' ' || c == ')')) {
			arg_done(p);
			return R_AGAIN;
		}
		return fail(p, "ID item not a string");

	case S_QUOTED:
		/* RFC 9051 §4.3: only \" and \\ are escapes; no CR, LF, NUL.
		 * 8-bit bytes must be well-formed UTF-8 (QUOTED-CHAR's UTF8-2/3/4,
		 * RFC 3629 §4): clients send UTF-8 passwords as quoted strings.
		 * sub: 1 after a backslash; else (lead << 8) | continuations left. */
		if (p->sub == 1) {
			if (c != '"' && c != '\\')
				return fail(p, "invalid escape in quoted string");
			p->sub = 0;
			return put(p, c);
		}
		if ((p->sub & 0xff) != 0) {
			if (!chars_utf8_cont_ok(p->sub >> 8, p->sub & 0xff, c))
				return fail(p, "invalid UTF-8 in quoted string");
			p->sub = (p->sub & ~0xff) | ((p->sub & 0xff) - 1);
			if ((p->sub & 0xff) == 0)
				p->sub = 0;
			return put(p, c);
		}
		if (c == '"') {
			arg_done(p);
			return R_GO;
		}
		if (c == '\\') {
			p->sub = 1;
			return R_GO;
		}
		if (c >= 0x80) {
			int more = c >= 0xc2 && c <= 0xdf   ? 1
			           : c >= 0xe0 && c <= 0xef ? 2
			           : c >= 0xf0 && c <= 0xf4 ? 3
			                                    : 0;
			if (more == 0)
				return fail(p, "invalid UTF-8 in quoted string");
			p->sub = (c << 8) | more;
		}
		return put(p, c);

	case S_LITANN:
		/* RFC 9051 §9 literal: "{" number ["+"] "}" CRLF, read by p->lit */
		return lit_scan_well_formed(&p->lit) ? R_GO : fail(p, "invalid literal");

	case S_AFTER_ARG:
		if (p->cmd.verb == IMAP_V_LOGIN) {
			if (c != ' ')
				return fail(p, "invalid arguments");
			if (p->nargs >= 2)
				return fail(p, "too many arguments");
			p->state = S_ARG;
			return R_GO;
		}
		/* ID list: items separated by SP, closed by ")" */
		if (c == ' ') {
			if (p->nargs >= 2 * ID_PAIRS_MAX)
				return fail(p, "too many ID pairs");
			p->state = S_ARG;
			return R_GO;
		}
		if (c == ')') {
			if (p->nargs % 2 != 0)
				return fail(p, "ID list not in pairs");
			p->depth = 0;
			p->state = S_END;
			return R_GO;
		}
		return fail(p, "invalid ID arguments");

	case S_MECH:
		if (c == ' ') {
			if (p->arg_len == 0)
				return fail(p, "missing mechanism");
			p->state = S_IR;
			p->arg_len = 0;
			return R_GO;
		}
		if (!chars_mech(c))
			return fail(p, "invalid mechanism");
		if (p->arg_len == IMAP_MECH_MAX)
			return fail(p, "mechanism name too long");
		p->cmd.mech[p->arg_len++] = (char)chars_upper(c);
		return R_GO;

	case S_IR:
		if (c == ' ')
			return fail(p, "too many arguments");
		if (!chars_base64(c))
			return fail(p, "invalid initial response");
		if (p->arg_len == p->lim.sasl_line_max)
			return fail(p, "initial response too long");
		return imap_ir_put(p, c);

	case S_ID_ARGS:
		if (c == '(') {
			p->depth = 1;
			p->state = S_ID_LIST;
			return R_GO;
		}
		if (chars_upper(c) == 'N') {
			p->state = S_ID_NIL;
			p->sub = 1;
			return R_GO;
		}
		return fail(p, "invalid ID arguments");

	case S_ID_NIL:
		if (p->sub < 3 && chars_upper(c) == (uint8_t) "NIL"[p->sub]) {
			p->sub++;
			return R_GO;
		}
		return fail(p, "invalid ID arguments");

	case S_ID_LIST:
		if (c == ')') {
			p->depth = 0;
			p->state = S_END; /* "()" is an empty list (RFC 2971 §4 "#") */
			return R_GO;
		}
		p->state = S_ARG;
		return R_AGAIN;

	case S_END:
		return fail(p, "unexpected arguments");

	case S_SKIP:
		return R_GO;

	default:
		return fail(p, "internal parser error");
	}
}

/* The line ended (LF, or CRLF) in the current state. */
static int
eol(struct imap_parser *p)
{
	switch (p->state) {
	case S_TAG:
		if (p->arg_len == 0)
			return fail(p, "empty command line");
		p->state = S_VERB; /* the tag is good: keep it for the BAD */
		return fail(p, "missing command");

	case S_VERB:
		if (p->arg_len == 0)
			return fail(p, "missing command");
		return verb_done(p, true);

	case S_ARG:
		return fail(p, "missing arguments");

	case S_ATOM:
		arg_done(p);
		return R_AGAIN;

	case S_QUOTED:
		return fail(p, "unterminated quoted string");

	case S_LITANN:
		if (p->lit.st != LIT_CLOSE)
			return fail(p, "invalid literal");
		return arg_literal(p);

	case S_AFTER_ARG:
		if (p->cmd.verb == IMAP_V_LOGIN)
			return p->nargs == 2 ? IMAP_CMD : fail(p, "missing arguments");
		return fail(p, "unterminated ID list");

	case S_MECH:
		if (p->arg_len == 0)
			return fail(p, "missing mechanism");
		return IMAP_CMD;

	case S_IR:
		if (p->arg_len == 0)
			return fail(p, "missing initial response");
		/* RFC 4959 §3: a lone "=" is an empty initial response. */
		if (p->arg_len == 1 && p->cmd.ir[0] == '=') {
			p->cmd.ir[0] = '\0';
			p->cmd.ir_len = 0;
		} else {
			p->cmd.ir[p->arg_len] = '\0';
			p->cmd.ir_len = p->arg_len;
		}
		p->cmd.has_ir = true;
		return IMAP_CMD;

	case S_ID_ARGS:
		return fail(p, "missing arguments");

	case S_ID_NIL:
		return p->sub == 3 ? IMAP_CMD : fail(p, "invalid ID arguments");

	case S_ID_LIST:
	case S_ID_VNIL:
		return fail(p, "unterminated ID list");

	case S_END:
		return IMAP_CMD;

	case S_SKIP:
		if (p->lit.st == LIT_CLOSE)
			return skip_literal(p);
		return p->error != NULL ? IMAP_BAD : IMAP_CMD;

	default:
		return fail(p, "internal parser error");
	}
}

static int
run_step(struct imap_parser *p, uint8_t c)
{
	int r;

	while ((r = step(p, c)) == R_AGAIN)
		;
	return r;
}

static int
run_eol(struct imap_parser *p)
{
	int r;

	while ((r = eol(p)) == R_AGAIN)
		;
	return r;
}

/* One byte of a command line (not literal content). */
int
imap_line_byte(struct imap_parser *p, uint8_t c)
{
	if (p->cr) {
		p->cr = false;
		if (c == '\n')
			return run_eol(p);
		/* RFC 9051 §2.2: lines end in CRLF; a lone CR is garbage. */
		p->lit.st = LIT_TEXT;
		fail(p, "CR not followed by LF");
	}
	if (c == '\r') {
		p->cr = true;
		return R_GO;
	}
	if (c == '\n')
		return run_eol(p); /* bare LF: tolerated, as most servers do */
	if (c == '\0')
		fail(p, "NUL in command"); /* RFC 9051 §9: CHAR excludes NUL */
	lit_scan_byte(&p->lit, c);
	return run_step(p, c);
}
