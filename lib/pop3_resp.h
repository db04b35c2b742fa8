/*
 * pop3_resp.h: what postern reads from a POP3 backend before login, one
 * line at a time: +OK / -ERR with RFC 3206 response codes (RFC 2449 §8),
 * CAPA lines (RFC 2449 §5), and "+ " continuations (RFC 5034 §4).  A
 * backend is untrusted input too.  Pure functions over one NUL-terminated
 * line: no allocation, no I/O.
 */
#ifndef POSTERN_POP3_RESP_H
#define POSTERN_POP3_RESP_H

#include <stdbool.h>

enum pop3_resp_kind {
	POP3_R_OK,       /* "+OK" [SP text] */
	POP3_R_ERR,      /* "-ERR" [SP text] */
	POP3_R_CONTINUE, /* "+" [SP text], not "+OK": a SASL challenge */
	POP3_R_OTHER,
};

/* RFC 3206 (and RFC 2449 §8.1.1 IN-USE) codes that change what we do. */
enum pop3_err_code {
	POP3_E_NONE,     /* no code, or one we treat as a refusal ([AUTH], ...) */
	POP3_E_SYS_TEMP, /* [SYS/TEMP]: temporary, not the credentials */
	POP3_E_IN_USE,   /* [IN-USE]: the mailbox is locked */
};

/* Classify line; *text_out points into line at the text after the status
 * and one SP (at the end of line when there is none). */
enum pop3_resp_kind pop3_resp_classify(const char *line, const char **text_out);

/* The response code at the start of an -ERR text. */
enum pop3_err_code pop3_resp_err_code(const char *text);

/* What one CAPA line tells the login. */
struct pop3_capa {
	bool xclient;    /* "XCLIENT" (or the greeting's "[XCLIENT]" code) */
	bool sasl_plain; /* SASL ... PLAIN ... */
	unsigned mechs;  /* sasl.h SASL_MECH_* bits of the SASL line */
};

/* Add what CAPA line (not the final ".") says to *capa. */
void pop3_resp_capa_line(const char *line, struct pop3_capa *capa);

/* Does an +OK greeting's text start with the "[XCLIENT]" code (Dovecot
 * offers XCLIENT there to trusted networks)? */
bool pop3_resp_greeting_xclient(const char *text);

#endif
