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

#define SIEVE_RESP_CODE_MAX 64   /* a response code's atom, e.g. "QUOTA/MAXSIZE" */
#define SIEVE_RESP_TEXT_MAX 256  /* the human text kept, cut, made printable */
#define SIEVE_CAP_NAME_MAX  32
#define SIEVE_CAP_VALUE_MAX 1024 /* a capability's value kept ("SIEVE" lists run long) */

enum sieve_resp_kind {
	SIEVE_R_OK,      /* "OK" [SP "(" code ")"] [SP string] */
	SIEVE_R_NO,      /* "NO" ... */
	SIEVE_R_BYE,     /* "BYE" ... */
	SIEVE_R_CAP,     /* a capability line: string [SP string] */
	SIEVE_R_STRING,  /* a bare quoted string: a SASL challenge (value in text... see
	                    struct sieve_resp.value) */
	SIEVE_R_LITERAL, /* a line ending in "{n}" or "{n+}": not read here */
	SIEVE_R_OTHER,   /* anything else: not ManageSieve */
};

/* One line, read. */
struct sieve_resp {
	enum sieve_resp_kind kind;
	/* OK/NO/BYE: the response code's first atom, upper-cased ("" when none),
	 * and for (SASL "...") / (TAG "...") / (REFERRAL "...") its string */
	char code[SIEVE_RESP_CODE_MAX];
	char code_arg[SIEVE_CAP_VALUE_MAX];
	/* OK/NO/BYE: the text, unquoted, cut to what fits, every byte outside
	 * printable ASCII replaced by '?': safe to log and to pass to a client */
	char text[SIEVE_RESP_TEXT_MAX];
	/* SIEVE_R_CAP: the name, upper-cased, and the value unquoted ("" when
	 * none); SIEVE_R_STRING: value holds the string (a base64 challenge) */
	char name[SIEVE_CAP_NAME_MAX];
	char value[SIEVE_CAP_VALUE_MAX];
	bool value_cut; /* value did not fit and was cut */
};

/* Read line into *r; returns r->kind. */
enum sieve_resp_kind sieve_resp_parse(const char *line, struct sieve_resp *r);

/* A backend's capabilities, gathered from its capability lines. */
struct sieve_caps {
	char implementation[SIEVE_RESP_TEXT_MAX];
	char sieve[SIEVE_CAP_VALUE_MAX];  /* the "SIEVE" extension list */
	char notify[SIEVE_RESP_TEXT_MAX]; /* "NOTIFY" methods, or "" */
	char maxredirects[16];            /* "MAXREDIRECTS" or "" */
	bool starttls;
	unsigned mechs; /* sasl.h SASL_MECH_* bits of its "SASL" list */
	bool have_sasl; /* a "SASL" line came (an empty list after login is normal) */
	bool have_version;
};

/* Add what a SIEVE_R_CAP line says to *caps (names case-insensitive;
 * unknown names ignored). */
void sieve_caps_add(struct sieve_caps *caps, const struct sieve_resp *r);

#endif
