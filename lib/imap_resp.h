/*
 * imap_resp.h: what postern reads from an IMAP backend before login, one
 * response line at a time (RFC 9051 §7): the greeting, CAPABILITY lists
 * and [CAPABILITY] response codes, tagged status answers, continuation
 * requests.  A backend is untrusted input too.  Pure functions over one
 * NUL-terminated line: no allocation, no I/O, fixed arrays.
 */
#ifndef POSTERN_IMAP_RESP_H
#define POSTERN_IMAP_RESP_H

#include <stdbool.h>
#include <stddef.h>

#define IMAP_CAPS_MAX 2048 /* the capability list kept, cut beyond */

/* A backend's capabilities: the list (printable ASCII, no ']', space
 * separated, for the client's OK) and what the login needs from it. */
struct imap_caps {
	char list[IMAP_CAPS_MAX];
	bool auth_plain, sasl_ir, literal_plus, login_disabled;
	unsigned mechs; /* sasl.h SASL_MECH_* bits of its AUTH= entries */
};

enum imap_resp_kind {
	IMAP_R_CONTINUE, /* "+" [SP text]: text in *text_out */
	IMAP_R_CAPS,     /* "* CAPABILITY ...": taken into caps */
	IMAP_R_BYE,      /* "* BYE ..." */
	IMAP_R_UNTAGGED, /* any other "*" line */
	IMAP_R_OK,       /* "TAG OK": resp-text in *text_out */
	IMAP_R_NO,       /* "TAG NO": resp-text in *text_out */
	IMAP_R_BAD,      /* "TAG BAD": resp-text in *text_out */
	IMAP_R_OTHER,    /* another tag, or not IMAP */
};

/*
 * Classify line (CRLF removed, NUL-terminated) for a command tagged tag.
 * A "* CAPABILITY" line sets *caps (caps may be NULL to ignore it, then it
 * is IMAP_R_UNTAGGED).  *text_out points into line, at its end when there
 * is no text.  Status words are case-insensitive.
 */
enum imap_resp_kind imap_resp_classify(const char *line, const char *tag, struct imap_caps *caps,
                                       const char **text_out);

/* Is line a greeting "* OK" (true), with its resp-text in *text_out
 * (inside line)?
 * *bye_out tells a "* BYE" greeting from other garbage. */
bool imap_resp_greeting(const char *line, const char **text_out, bool *bye_out);

/* resp-text starting "[CAPABILITY a b c]" (any case): set *caps from it.
 * false (caps untouched) when text holds no such code. */
bool imap_resp_caps_code(const char *text, struct imap_caps *caps);

/* Set caps from the list s[0..len): cut, made printable, flags derived. */
void imap_caps_set(struct imap_caps *caps, const char *s, size_t len);

/* Drop from s[0..len) every word (between spaces, CR or LF) that starts
 * with prefix (case-insensitive), with the space before it; returns the
 * new length.  "* CAPABILITY A COMPRESS=DEFLATE B\r\n" with "COMPRESS="
 * gives "* CAPABILITY A B\r\n". */
size_t imap_caps_drop(char *s, size_t len, const char *prefix);

/* Does the space-separated list hold word (case-insensitive)? */
bool imap_caps_has(const char *list, const char *word);

/* Does a NO's resp-text carry [UNAVAILABLE] (RFC 5530: a temporary
 * failure, not a refusal of the credentials)? */
bool imap_resp_unavailable(const char *text);

#endif
