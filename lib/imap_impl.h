/*
 * imap_impl.h: what the two halves of the IMAP command parser share:
 * imap.c (the driver: lines, literals, SASL texts, the call's result) and
 * imap_grammar.c (RFC 9051 grammar of one command line, byte by byte).
 * Not for any other file.
 */
#ifndef POSTERN_IMAP_IMPL_H
#define POSTERN_IMAP_IMPL_H

#include <stdint.h>

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

/*
 * p->lit (literal.h): a line being skipped may still announce a literal,
 * and "{n}" or "{n+}" just before the line end is one whatever precedes it
 * (a quoted string cannot hold CR or LF, RFC 9051 §4.3).  The client will
 * send (or wait to send) those bytes, so we must find them to stay in step
 * with it; the reader runs over every line byte so it is right wherever an
 * error began.
 */

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

/* Mark the line unrecoverable: IMAP_FATAL, and the parser stays there. */
int imap_fatal(struct imap_parser *p, const char *why);
/* Where the bytes of the current argument go (NULL: counted, not kept). */
char *imap_arg_dest(struct imap_parser *p);
/* A literal's last byte was read: the argument ends, or the skip goes on. */
void imap_lit_done(struct imap_parser *p);
/* One byte of a SASL text into the caller's cmd.ir.  R_GO. */
int imap_ir_put(struct imap_parser *p, uint8_t c);
/* One byte of a command line (not literal content): R_GO or an imap_rc. */
int imap_line_byte(struct imap_parser *p, uint8_t c);

#endif
