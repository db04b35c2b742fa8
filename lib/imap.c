/*
 * imap.c: the pre-authentication IMAP command parser, a resumable byte state
 * machine over RFC 9051 §9 grammar (tag, command word, astrings, literals).
 * It owns no memory and never does I/O: every byte is looked at once and all
 * state lives in struct imap_parser, so a command may arrive in any pieces.
 */
#include <stdio.h>
#include <string.h>

#include "chars.h"
#include "imap.h"
#include "sasl.h"

/* Parser states (p->state). */
enum {
	S_TAG,       /* reading the tag */
	S_VERB,      /* reading the command word */
	S_ARG,       /* an astring (LOGIN) or ID item starts here */
	S_ATOM,      /* inside an atom argument */
	S_QUOTED,    /* inside a quoted string; sub 1 after a backslash */
	S_LITANN,    /* inside "{n[+]}"; sub counts the parts seen */
	S_LIT,       /* literal bytes, lit_left to come */
	S_AFTER_ARG, /* an argument ended: SP, ")" (ID) or line end */
	S_MECH,      /* AUTHENTICATE mechanism name */
	S_IR,        /* AUTHENTICATE initial response (RFC 4959) */
	S_ID_ARGS,   /* after "ID ": "(" or NIL */
	S_ID_NIL,    /* matching NIL; sub = letters matched */
	S_ID_LIST,   /* just after "(": ")" or the first item */
	S_ID_VNIL,   /* an ID value that must be NIL; sub = letters matched */
	S_END,       /* only the line end may follow */
	S_SKIP,      /* discarding to line end */
	S_SASL,      /* a SASL response line (imap_parser_expect_sasl) */
	S_FATAL,     /* gave IMAP_FATAL; stays here */
};

/* S_LITANN sub-states: after "{", after digits, after "+", after "}". */
enum { LA_OPEN, LA_DIGITS, LA_PLUS, LA_CLOSE };

/*
 * p->scan: a line being skipped may still announce a literal, and "{n}" or
 * "{n+}" just before the line end is one whatever precedes it (a quoted
 * string cannot hold CR or LF, RFC 9051 §4.3).  The client will send (or wait
 * to send) those bytes, so we must find them to stay in step with it; the
 * detector runs over every line byte so it is right wherever an error began.
 */
enum { SK_TEXT, SK_OPEN, SK_DIGITS, SK_PLUS, SK_CLOSE };

/* step() results besides an imap_rc: go on, or look at this byte again. */
#define R_GO    (-1)
#define R_AGAIN (-2)

/* RFC 2971 §3.3 limits on ID. */
#define ID_FIELD_MAX 30
#define ID_VALUE_MAX 1024
#define ID_PAIRS_MAX 30

_Static_assert(IMAP_SASL_MAX >= SASL_LINE_MAX, "IMAP_SASL_MAX below the SASL line bound");
/* tag SP "ID" SP "(" pairs ")" CRLF, each pair two quoted strings with every
 * byte escaped, pairs apart by SP: the longest well-formed ID line. */
_Static_assert(IMAP_TAG_MAX + 5 + ID_PAIRS_MAX * (2 + 2 * ID_FIELD_MAX + 1 + 2 + 2 * ID_VALUE_MAX) +
                       (ID_PAIRS_MAX - 1) + 3 <=
                   IMAP_ID_LINE_MAX,
               "IMAP_ID_LINE_MAX below RFC 2971's bounds");

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

/* Wipe that the compiler may not drop: the buffers held passwords. */
static void
wipe(void *b, size_t n)
{
	explicit_bzero(b, n);
}

static void
reset_line(struct imap_parser *p)
{
	wipe(&p->cmd, sizeof(p->cmd));
	p->state = p->expect_sasl ? S_SASL : S_TAG;
	p->sub = 0;
	p->line_len = 0;
	p->lit_left = 0;
	p->lit_nonsync = false;
	p->lit_skip = false;
	p->nargs = 0;
	p->depth = 0;
	p->arg_len = 0;
	p->lit_len_acc = 0;
	p->error = NULL;
	p->cr = false;
	p->scan = SK_TEXT;
	p->seen = 0;
}

void
imap_parser_init(struct imap_parser *p, const struct imap_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->lim.line_max = IMAP_LINE_MAX;
	p->lim.literal_max = IMAP_SECRET_MAX;
	p->lim.sasl_line_max = IMAP_SASL_MAX;
	p->lim.id_line_max = IMAP_ID_LINE_MAX;
	if (lim != NULL && lim->line_max != 0)
		p->lim.line_max = lim->line_max;
	if (lim != NULL && lim->literal_max != 0)
		p->lim.literal_max = lim->literal_max;
	/* the caller's cmd.ir holds IMAP_SASL_MAX: the limit can only be lowered */
	if (lim != NULL && lim->sasl_line_max != 0 && lim->sasl_line_max < IMAP_SASL_MAX)
		p->lim.sasl_line_max = lim->sasl_line_max;
	if (lim != NULL && lim->id_line_max != 0)
		p->lim.id_line_max = lim->id_line_max;
	if (p->lim.id_line_max < p->lim.line_max)
		p->lim.id_line_max = p->lim.line_max;
	reset_line(p);
}

void
imap_parser_expect_sasl(struct imap_parser *p)
{
	p->expect_sasl = true;
	/* Called between commands; mid-line it takes effect at the next line. */
	if (p->state == S_TAG && p->line_len == 0)
		p->state = S_SASL;
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

static int
fatal(struct imap_parser *p, const char *why)
{
	p->error = why;
	p->state = S_FATAL;
	return IMAP_FATAL;
}

static uint32_t
acc_digit(uint32_t acc, uint8_t c)
{
	/* RFC 9051 number is 32 bits; saturate, it is over any budget then. */
	if (acc > (UINT32_MAX - 9) / 10)
		return UINT32_MAX;
	return acc * 10 + (uint32_t)(c - '0');
}

/* Where the bytes of the current argument go, and how many fit. */
static char *
arg_dest(struct imap_parser *p)
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
	char *dest = arg_dest(p);

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

static void
lit_done(struct imap_parser *p)
{
	p->scan = SK_TEXT; /* what follows a literal starts afresh */
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
	size_t n = p->lit_len_acc;

	if (!p->lit_nonsync && p->error != NULL)
		return IMAP_BAD;
	if (n > p->lim.literal_max)
		return fatal(p, "literal too large");
	p->lit_skip = true;
	p->lit_left = n;
	p->state = S_LIT;
	if (n == 0)
		lit_done(p);
	return p->lit_nonsync ? R_GO : IMAP_CONTINUE;
}

/*
 * "{n}" or "{n+}" then CRLF was read where an argument starts.  The budget is
 * checked before "+" is sent (RFC 9051 §4.3; RFC 7888 §4 for "{n+}", which
 * comes without asking and so is refused the same way).
 */
static int
arg_literal(struct imap_parser *p)
{
	size_t n = p->lit_len_acc;
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
		return fatal(p, "literal too large");
	p->lit_skip = false;
	p->lit_left = n;
	p->arg_len = 0;
	p->state = S_LIT;
	if (n == 0)
		lit_done(p);
	return p->lit_nonsync ? R_GO : IMAP_CONTINUE;
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

/* The literal detector; it also keeps the length and kind of "{n[+]}". */
static void
scan_byte(struct imap_parser *p, uint8_t c)
{
	if (c == '{') {
		p->scan = SK_OPEN;
		p->lit_len_acc = 0;
	} else if (chars_digit(c) && (p->scan == SK_OPEN || p->scan == SK_DIGITS)) {
		p->scan = SK_DIGITS;
		p->lit_len_acc = acc_digit(p->lit_len_acc, c);
	} else if (c == '+' && p->scan == SK_DIGITS) {
		p->scan = SK_PLUS;
	} else if (c == '}' && (p->scan == SK_DIGITS || p->scan == SK_PLUS)) {
		p->lit_nonsync = (p->scan == SK_PLUS);
		p->scan = SK_CLOSE;
	} else {
		p->scan = SK_TEXT;
	}
}

/* One byte of a SASL text into the caller's cmd.ir, which is there for the
 * whole call that reads the text (see sasl_line_whole()). */
static int
ir_put(struct imap_parser *p, uint8_t c)
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
			p->state = S_LITANN; /* scan_byte() reads the number */
			p->sub = LA_OPEN;
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
		/* RFC 9051 §9 literal: "{" number ["+"] "}" CRLF */
		if (chars_digit(c) && (p->sub == LA_OPEN || p->sub == LA_DIGITS)) {
			p->sub = LA_DIGITS;
			return R_GO;
		}
		if (c == '+' && p->sub == LA_DIGITS) {
			p->sub = LA_PLUS;
			return R_GO;
		}
		if (c == '}' && (p->sub == LA_DIGITS || p->sub == LA_PLUS)) {
			p->sub = LA_CLOSE;
			return R_GO;
		}
		return fail(p, "invalid literal");

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
		return ir_put(p, c);

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
		if (p->sub != LA_CLOSE)
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
		if (p->scan == SK_CLOSE)
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
static int
line_byte(struct imap_parser *p, uint8_t c)
{
	if (p->cr) {
		p->cr = false;
		if (c == '\n')
			return run_eol(p);
		/* RFC 9051 §2.2: lines end in CRLF; a lone CR is garbage. */
		p->scan = SK_TEXT;
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
	scan_byte(p, c);
	return run_step(p, c);
}

static int
sasl_put(struct imap_parser *p, uint8_t c)
{
	if (p->arg_len >= p->lim.sasl_line_max)
		return fatal(p, "SASL response too long");
	return ir_put(p, c);
}

/*
 * One byte of a SASL response line (RFC 9051 §6.2.2).  The line is kept as
 * sent (a lone CR, NUL and all): the session's base64 decoder judges it.
 */
static int
sasl_byte(struct imap_parser *p, uint8_t c)
{
	int r;

	if (p->cr) {
		p->cr = false;
		if (c != '\n' && (r = sasl_put(p, '\r')) != R_GO)
			return r;
	}
	if (c == '\r') {
		p->cr = true;
		return R_GO;
	}
	if (c != '\n')
		return sasl_put(p, c);
	p->cmd.verb = IMAP_V_SASL;
	if (p->arg_len == 1 && p->cmd.ir[0] == '*') {
		p->cmd.ir[0] = '\0';
		p->cmd.cancelled = true;
	} else {
		p->cmd.ir[p->arg_len] = '\0';
		p->cmd.ir_len = p->arg_len;
		p->cmd.has_ir = true;
	}
	p->expect_sasl = false;
	return IMAP_CMD;
}

/*
 * The cap on the current command line (literals excluded), known once the
 * command word is: AUTHENTICATE may carry an initial response of up to
 * sasl_line_max on top of the usual line (RFC 4959 §3 sets no length; a
 * bearer token needs ~12 KiB of base64), ID may take id_line_max (RFC 2971
 * §3.3).  A bad line of either is skipped to its end within the same cap.
 */
static size_t
line_cap(const struct imap_parser *p)
{
	if (p->cmd.verb == IMAP_V_AUTHENTICATE)
		return p->lim.line_max + p->lim.sasl_line_max;
	if (p->cmd.verb == IMAP_V_ID)
		return p->lim.id_line_max;
	return p->lim.line_max;
}

/* Copy literal bytes into the argument they belong to. */
static void
lit_bytes(struct imap_parser *p, const uint8_t *b, size_t n)
{
	char *dest;

	if (!p->lit_skip && (dest = arg_dest(p)) != NULL)
		memcpy(dest + p->arg_len, b, n); /* fits: checked at "{n}" */
	if (!p->lit_skip)
		p->arg_len += n;
}

static void
set_out_error(struct imap_parser *p, struct imap_cmd *out)
{
	char *ir = out->ir;

	memset(out, 0, sizeof(*out));
	out->ir = ir;
	memcpy(out->tag, p->cmd.tag, sizeof(out->tag));
	if (out->tag[0] == '\0')
		out->tag[0] = '*';
	memcpy(out->name, p->cmd.name, sizeof(out->name));
	out->error = p->error;
}

/*
 * At the first byte of a SASL text (an AUTHENTICATE initial response, or a
 * response line): is its line end in b[0..n), or the line over its limit
 * there (the byte loop will say so before the end of b)?  Only then is the
 * text read, straight into the caller's cmd.ir during this one call; else
 * the caller keeps the bytes and brings more.  seen spares a line coming a
 * byte at a time from being scanned again from its start.
 */
static bool
sasl_line_whole(struct imap_parser *p, const uint8_t *b, size_t n)
{
	size_t cap = p->lim.sasl_line_max + 2; /* the text, CR, LF */
	size_t upto = n < cap ? n : cap;
	size_t from = p->seen < upto ? p->seen : 0;

	if (n > cap || memchr(b + from, '\n', upto - from) != NULL) {
		p->seen = 0;
		return true;
	}
	p->seen = n;
	return false;
}

static bool
at_sasl_text(const struct imap_parser *p)
{
	return (p->state == S_IR || p->state == S_SASL) && p->arg_len == 0 && !p->cr;
}

static enum imap_rc
parse(struct imap_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
      struct imap_cmd *cmd_out)
{
	size_t i = 0;
	int r = R_GO;

	if (p->state == S_FATAL) {
		*used_out = 0;
		set_out_error(p, cmd_out);
		return IMAP_FATAL;
	}
	while (i < len && r == R_GO) {
		if (p->state == S_LIT) {
			size_t n = len - i < p->lit_left ? len - i : p->lit_left;

			/* Literal bytes are data and do not count as line bytes. */
			lit_bytes(p, buf + i, n);
			i += n;
			p->lit_left -= n;
			if (p->lit_left == 0)
				lit_done(p);
			continue;
		}
		if (at_sasl_text(p)) {
			if (p->cmd.ir == NULL) {
				r = fatal(p, "no room for a SASL response");
				break;
			}
			if (!sasl_line_whole(p, buf + i, len - i))
				break; /* *used_out = i: the text stays with the caller */
		}
		if (p->state == S_SASL) {
			r = sasl_byte(p, buf[i++]);
			continue;
		}
		if (++p->line_len > line_cap(p)) {
			r = fatal(p, "line too long");
			i++;
			break;
		}
		r = line_byte(p, buf[i++]);
	}
	*used_out = i;
	switch (r) {
	case R_GO:
		return IMAP_MORE;
	case IMAP_CONTINUE:
		return IMAP_CONTINUE;
	case IMAP_CMD:
		*cmd_out = p->cmd;
		cmd_out->error = NULL;
		reset_line(p);
		return IMAP_CMD;
	case IMAP_BAD:
		set_out_error(p, cmd_out);
		reset_line(p);
		return IMAP_BAD;
	default:
		set_out_error(p, cmd_out);
		wipe(&p->cmd.user, sizeof(p->cmd.user));
		wipe(&p->cmd.secret, sizeof(p->cmd.secret));
		return IMAP_FATAL;
	}
}

enum imap_rc
imap_parse(struct imap_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
           struct imap_cmd *cmd_out)
{
	enum imap_rc rc;

	p->cmd.ir = cmd_out->ir; /* lent for this call only */
	p->ir_written = 0;
	rc = parse(p, buf, len, used_out, cmd_out);
	/* A text read and not handed over (a bad line, a line skipped on
	 * through a literal) leaves nothing behind in the caller's buffer. */
	if (rc != IMAP_CMD && p->ir_written > 0)
		wipe(cmd_out->ir, p->ir_written);
	p->cmd.ir = NULL;
	return rc;
}

void
imap_cmd_init(struct imap_cmd *cmd, char *ir_buf)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->ir = ir_buf;
	if (ir_buf != NULL)
		ir_buf[0] = '\0';
}

void
imap_cmd_wipe(struct imap_cmd *cmd)
{
	wipe(cmd->user, sizeof(cmd->user));
	wipe(cmd->secret, sizeof(cmd->secret));
	if (cmd->ir != NULL)
		wipe(cmd->ir, cmd->ir_len + 1); /* the parser wiped any other text */
	cmd->user_len = 0;
	cmd->secret_len = 0;
	cmd->ir_len = 0;
}

void
imap_parser_wipe(struct imap_parser *p)
{
	imap_cmd_wipe(&p->cmd);
	p->arg_len = 0;
}
