/*
 * sieve_resp.h: what postern reads from a ManageSieve backend before login
 * (RFC 5804), one line at a time: capability lines ("SIEVE" "fileinto
 * ..."), OK / NO / BYE with an optional response code and text, and the
 * bare strings that carry SASL challenges.  A backend is untrusted input
 * too.  Pure functions over one NUL-terminated line (CRLF removed): no
 * allocation, no I/O, fixed arrays.  A line that announces a literal
 * ("{n}" at its end) is SIEVE_R_LITERAL: postern does not read literals
 * from a backend before login.
 */
#ifndef POSTERN_SIEVE_RESP_H
#define POSTERN_SIEVE_RESP_H

#include <stdbool.h>
#include <stddef.h>

#define SIEVE_RESP_CODE_MAX 64  /* a response code's atom, e.g. "QUOTA/MAXSIZE" */
#define SIEVE_RESP_TEXT_MAX 256 /* the human text kept, cut, made printable */
#define SIEVE_CAP_NAME_MAX  32
/* a string's octets kept: RFC 5804 §4 allows a quoted string 1024 octets,
 * which also bounds a capability's value ("SIEVE" lists run long) */
#define SIEVE_CAP_VALUE_MAX 1024

enum sieve_resp_kind {
	SIEVE_R_OK,  /* "OK" [SP "(" code ")"] [SP string] */
	SIEVE_R_NO,  /* "NO" ... */
	SIEVE_R_BYE, /* "BYE" ... */
	SIEVE_R_CAP, /* a capability line: string SP string */
	/* a lone quoted string: a SASL challenge in a login, or a capability
	 * without a value ("STARTTLS") in a greeting: the caller knows which */
	SIEVE_R_STRING,
	SIEVE_R_LITERAL, /* a line ending in "{n}" or "{n+}": not read here */
	SIEVE_R_OTHER,   /* anything else: not ManageSieve */
};

/*
 * One line, read.  Every field is NUL-terminated, cut to its array, and
 * holds only printable ASCII (0x20..0x7e; '?' for any other byte): safe to
 * log.  Strings are unquoted, so '"' and '\\' may appear: quote again
 * before passing one on.  Fields a kind does not use are "".
 */
struct sieve_resp {
	enum sieve_resp_kind kind;
	/* OK/NO/BYE: the response code's first atom, upper-cased ("" when none),
	 * and what follows it inside the parentheses: for (SASL "...") /
	 * (TAG "...") / (REFERRAL "...") its string unquoted, else the rest as
	 * it came ("" when nothing) */
	char code[SIEVE_RESP_CODE_MAX];
	char code_arg[SIEVE_CAP_VALUE_MAX + 1];
	/* OK/NO/BYE: the text, unquoted (a bare text is kept as it came) */
	char text[SIEVE_RESP_TEXT_MAX];
	/* SIEVE_R_CAP: the name, upper-cased ("" when it does not fit), and
	 * the value unquoted; SIEVE_R_STRING: value holds the string (a base64
	 * challenge) and name its upper-cased copy when it fits */
	char name[SIEVE_CAP_NAME_MAX];
	char value[SIEVE_CAP_VALUE_MAX + 1];
	bool value_cut; /* value did not fit and was cut */
};

/* Read line (CRLF removed, NUL-terminated) into *r; returns r->kind.
 * Status words and capability names are case-insensitive. */
enum sieve_resp_kind sieve_resp_parse(const char *line, struct sieve_resp *r);

/* A backend's capabilities, gathered from its capability lines. */
struct sieve_caps {
	char implementation[SIEVE_RESP_TEXT_MAX];
	char sieve[SIEVE_CAP_VALUE_MAX + 1]; /* the "SIEVE" extension list */
	char notify[SIEVE_RESP_TEXT_MAX];    /* "NOTIFY" methods, or "" */
	char maxredirects[16];               /* "MAXREDIRECTS" or "" */
	bool starttls;
	bool xclient;   /* "XCLIENT": Dovecot offers it to login_trusted_networks */
	unsigned mechs; /* sasl.h SASL_MECH_* bits of its "SASL" list */
	bool have_sasl; /* a "SASL" line came (an empty list after login is normal) */
	bool have_version;
};

/* Add what a SIEVE_R_CAP line (or a SIEVE_R_STRING one, a capability
 * without value) says to *caps, copies cut to the arrays; unknown names
 * and other kinds ignored.  A "SASL" line replaces the mechanism bits
 * (a cut list's last word is not trusted). */
void sieve_caps_add(struct sieve_caps *caps, const struct sieve_resp *r);

#endif
