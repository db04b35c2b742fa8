/*
 * literal.h: a literal's announcement, "{" number ["+"] "}" before CRLF
 * (RFC 9051 §4.3, RFC 5804 §4), read one byte at a time.  The IMAP and
 * ManageSieve command parsers run it over every byte of a command line:
 * a line being skipped may still announce a literal whose bytes the client
 * sends, and the parser must find them to stay in step; and a literal
 * being read as an argument is well-formed while its bytes keep the
 * reader in LIT_DIGITS, LIT_PLUS or LIT_CLOSE.  Pure, no allocation.
 */
#ifndef POSTERN_LITERAL_H
#define POSTERN_LITERAL_H

#include <stdbool.h>
#include <stdint.h>

#include "chars.h"

enum lit_state {
	LIT_TEXT,   /* no announcement under way */
	LIT_OPEN,   /* after "{" */
	LIT_DIGITS, /* after "{" and digits */
	LIT_PLUS,   /* after "{n+" */
	LIT_CLOSE,  /* after "{n}" or "{n+}": a literal if the line ends here */
};

struct lit_scan {
	uint8_t st;   /* enum lit_state */
	bool nonsync; /* LIT_CLOSE: it was "{n+}" */
	uint64_t n;   /* the number so far; saturates, over any bound then */
};

static inline void
lit_scan_byte(struct lit_scan *s, uint8_t c)
{
	if (c == '{') {
		s->st = LIT_OPEN;
		s->n = 0;
	} else if (chars_digit(c) && (s->st == LIT_OPEN || s->st == LIT_DIGITS)) {
		s->st = LIT_DIGITS;
		s->n = s->n > (UINT64_MAX - 9) / 10 ? UINT64_MAX : s->n * 10 + (uint64_t)(c - '0');
	} else if (c == '+' && s->st == LIT_DIGITS) {
		s->st = LIT_PLUS;
	} else if (c == '}' && (s->st == LIT_DIGITS || s->st == LIT_PLUS)) {
		s->nonsync = s->st == LIT_PLUS;
		s->st = LIT_CLOSE;
	} else {
		s->st = LIT_TEXT;
	}
}

/* Inside an announcement begun with "{" (c already scanned): may it go
 * on?  Any byte but the grammar's ends it (LIT_TEXT), and so does a second
 * "{" (LIT_OPEN again). */
static inline bool
lit_scan_well_formed(const struct lit_scan *s)
{
	return s->st == LIT_DIGITS || s->st == LIT_PLUS || s->st == LIT_CLOSE;
}

#endif
