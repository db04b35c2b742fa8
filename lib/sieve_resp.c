/*
 * sieve_resp.c: the ManageSieve backend's lines, read before login (see
 * sieve_resp.h).  Pure: what a hostile backend sends can cost it a failed
 * login, never memory, and no byte of it reaches a log or a client's line
 * outside printable ASCII.
 */
#include <string.h>
#include <strings.h>

#include "chars.h"
#include "sasl.h"
#include "sieve_resp.h"

/* Append c to dst (cap bytes, NUL included) at *o, as printable ASCII
 * ('?' for anything else); *cut once it no longer fits. */
static void
put(char *dst, size_t cap, size_t *o, unsigned char c, bool *cut)
{
	if (*o + 1 >= cap) {
		*cut = true;
		return;
	}
	dst[(*o)++] = (c < 0x20 || c > 0x7e) ? '?' : (char)c;
	dst[*o] = '\0';
}

/*
 * RFC 5804 §4 quoted string at *pp ('"' there): unquote ("\"" and "\\"
 * are the only escapes) into dst, made printable and cut to cap.  Moves
 * *pp past the closing quote.  false when it is not a well-formed string
 * (no closing quote, another escape); dst may then hold a part.
 */
static bool
quoted(const char **pp, char *dst, size_t cap, bool *cut)
{
	const char *p = *pp + 1;
	size_t o = 0;

	dst[0] = '\0';
	for (;; p++) {
		if (*p == '\0')
			return false;
		if (*p == '"')
			break;
		if (*p == '\\') {
			p++;
			if (*p != '"' && *p != '\\')
				return false;
		}
		put(dst, cap, &o, (unsigned char)*p, cut);
	}
	*pp = p + 1;
	return true;
}

/* Copy s (to its end), printable, cut to cap. */
static void
raw(const char *s, char *dst, size_t cap)
{
	size_t o = 0;
	bool cut = false;

	dst[0] = '\0';
	for (; *s != '\0'; s++)
		put(dst, cap, &o, (unsigned char)*s, &cut);
}

/* Does line end with a literal's announcement, "{n}" or "{n+}" (RFC 5804
 * §4 literal-s2c, and the client form)? */
static bool
ends_in_literal(const char *line)
{
	size_t n = strlen(line);

	if (n < 3 || line[n - 1] != '}')
		return false;
	n--;
	if (line[n - 1] == '+')
		n--;
	if (n == 0 || !chars_digit((uint8_t)line[n - 1]))
		return false;
	while (n > 0 && chars_digit((uint8_t)line[n - 1]))
		n--;
	return n > 0 && line[n - 1] == '{';
}

/* The end of a response code's data at p: the ')' that closes it, outside
 * quoted strings and nested lists (resp-code-ext, §4); NULL when none. */
static const char *
code_end(const char *p)
{
	int depth = 0;

	for (; *p != '\0'; p++) {
		if (*p == '"') {
			for (p++; *p != '"'; p++) {
				if (*p == '\0')
					return NULL;
				if (*p == '\\' && p[1] != '\0')
					p++;
			}
		} else if (*p == '(') {
			depth++;
		} else if (*p == ')') {
			if (depth-- == 0)
				return p;
		}
	}
	return NULL;
}

/*
 * "(" atom [SP data] ")" at *pp ('(' there): code and code_arg set, *pp
 * after the ')'.  false (both left "") when it does not close.
 */
static bool
resp_code(const char **pp, struct sieve_resp *r)
{
	const char *p = *pp + 1, *end = code_end(p);
	size_t o = 0;
	bool cut = false;

	if (end == NULL)
		return false;
	for (; p < end && *p != ' '; p++)
		put(r->code, sizeof(r->code), &o, chars_upper((uint8_t)*p), &cut);
	if (p < end) {
		const char *q = ++p; /* after the SP */
		bool acut = false;

		/* A string (SASL, TAG, REFERRAL as Dovecot and Cyrus send it)
		 * unquoted; anything else (atoms, numbers, lists) as it came. */
		if (*q != '"' || !quoted(&q, r->code_arg, sizeof(r->code_arg), &acut)) {
			o = 0;
			r->code_arg[0] = '\0';
			for (q = p; q < end; q++)
				put(r->code_arg, sizeof(r->code_arg), &o, (unsigned char)*q, &acut);
		}
	}
	*pp = end + 1;
	return true;
}

/* OK / NO / BYE at line, then [SP "(" code ")"] [SP string]. */
static bool
status(const char *line, struct sieve_resp *r)
{
	static const struct {
		const char *word;
		size_t len;
		enum sieve_resp_kind kind;
	} words[] = {{"OK", 2, SIEVE_R_OK}, {"NO", 2, SIEVE_R_NO}, {"BYE", 3, SIEVE_R_BYE}};
	const char *p = NULL;
	bool cut = false;

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t l = words[i].len;
		if (strncasecmp(line, words[i].word, l) == 0 &&
		    (line[l] == ' ' || line[l] == '\0')) {
			r->kind = words[i].kind;
			p = line + l;
			break;
		}
	}
	if (p == NULL)
		return false;
	while (*p == ' ')
		p++;
	if (*p == '(') {
		const char *q = p;
		if (resp_code(&q, r)) {
			p = q;
			while (*p == ' ')
				p++;
		} else {
			r->code[0] = r->code_arg[0] = '\0';
		}
	}
	/* The text is a string (§4); a server that sends it bare still has
	 * it shown, as it came. */
	if (*p == '"') {
		const char *q = p;
		if (quoted(&q, r->text, sizeof(r->text), &cut) && *q == '\0')
			return true;
	}
	raw(p, r->text, sizeof(r->text));
	return true;
}

/* Not ManageSieve: nothing of it kept. */
static enum sieve_resp_kind
other(struct sieve_resp *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = SIEVE_R_OTHER;
	return r->kind;
}

enum sieve_resp_kind
sieve_resp_parse(const char *line, struct sieve_resp *r)
{
	const char *p = line;

	memset(r, 0, sizeof(*r));
	r->kind = SIEVE_R_OTHER;
	if (ends_in_literal(line)) {
		r->kind = SIEVE_R_LITERAL;
		return r->kind;
	}
	if (line[0] != '"')
		return status(line, r) ? r->kind : other(r);
	/* string [SP string]: a capability, or a lone string (a challenge,
	 * or a capability without a value such as "STARTTLS") */
	if (!quoted(&p, r->value, sizeof(r->value), &r->value_cut))
		return other(r);
	if (strlen(r->value) < sizeof(r->name) && !r->value_cut) {
		for (size_t i = 0; r->value[i] != '\0'; i++)
			r->name[i] = (char)chars_upper((uint8_t)r->value[i]);
	}
	if (*p == '\0') {
		r->kind = SIEVE_R_STRING;
		return r->kind;
	}
	if (*p != ' ' || p[1] != '"' || r->name[0] == '\0')
		return other(r);
	p++;
	r->value_cut = false;
	if (!quoted(&p, r->value, sizeof(r->value), &r->value_cut) || *p != '\0')
		return other(r);
	r->kind = SIEVE_R_CAP;
	return r->kind;
}

/* Copy value into dst (cap bytes), cut. */
static void
keep(char *dst, size_t cap, const char *value)
{
	size_t n = strnlen(value, cap - 1);

	memcpy(dst, value, n);
	dst[n] = '\0';
}

void
sieve_caps_add(struct sieve_caps *caps, const struct sieve_resp *r)
{
	const char *v = r->kind == SIEVE_R_CAP ? r->value : "";

	if (r->kind != SIEVE_R_CAP && r->kind != SIEVE_R_STRING)
		return;
	if (strcmp(r->name, "IMPLEMENTATION") == 0) {
		keep(caps->implementation, sizeof(caps->implementation), v);
	} else if (strcmp(r->name, "SIEVE") == 0) {
		keep(caps->sieve, sizeof(caps->sieve), v);
	} else if (strcmp(r->name, "NOTIFY") == 0) {
		keep(caps->notify, sizeof(caps->notify), v);
	} else if (strcmp(r->name, "MAXREDIRECTS") == 0) {
		keep(caps->maxredirects, sizeof(caps->maxredirects), v);
	} else if (strcmp(r->name, "STARTTLS") == 0) {
		caps->starttls = true;
	} else if (strcmp(r->name, "XCLIENT") == 0) {
		caps->xclient = true;
	} else if (strcmp(r->name, "VERSION") == 0) {
		caps->have_version = true;
	} else if (strcmp(r->name, "SASL") == 0) {
		caps->have_sasl = true;
		caps->mechs = 0;
		for (const char *p = v; *p != '\0';) {
			size_t l = strcspn(p, " ");
			/* a cut list's last word may be a cut name: not trusted */
			if (p[l] != '\0' || !r->value_cut)
				caps->mechs |= sasl_mech_bit(p, l);
			p += l;
			p += strspn(p, " ");
		}
	}
}
