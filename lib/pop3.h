/*
 * pop3.h: the POP3 authorization-state command parser (RFC 1939, RFC 2449
 * CAPA, RFC 5034 AUTH, RFC 2595 STLS).  A pure function over bytes: no
 * sockets, no malloc, no clock, no globals, no copy of the line.
 */
#ifndef POSTERN_POP3_H
#define POSTERN_POP3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POP3_LINE_MAX   255 /* RFC 2449 §4: a command line, CRLF included */
#define POP3_USER_MAX   256
#define POP3_SECRET_MAX 1024
#define POP3_MECH_MAX   32
/* Longest base64 SASL line: SASL_LINE_MAX (sasl.h), room for an OAuth
 * bearer token of 8 KiB (pop3.c checks). */
#define POP3_SASL_MAX 12288
#define POP3_VERB_MAX 8
/* "AUTH" SP mech SP initial-response CRLF: RFC 5034 §4 keeps AUTH within
 * the 255 octets of RFC 2449 §4 and tells clients with a longer initial
 * response to wait for the "+ " instead; some send it on the line anyway
 * (OAuth tokens), so an AUTH line alone may run to this. */
#define POP3_AUTH_LINE_MAX (5 + POP3_MECH_MAX + 1 + POP3_SASL_MAX + 2)

enum pop3_rc {
	POP3_MORE,  /* no whole line yet: nothing used, call again with more */
	POP3_CMD,   /* *cmd_out holds a command */
	POP3_BAD,   /* unknown or malformed command, line consumed; cmd_out->error says why */
	POP3_FATAL, /* line over its limit (or a SASL text and no cmd_out->ir):
	               answer -ERR and close */
};

enum pop3_verb {
	POP3_V_NONE = 0,
	POP3_V_CAPA,
	POP3_V_USER, /* arg: user */
	POP3_V_PASS, /* arg: secret, the rest of the line (may hold spaces) */
	POP3_V_AUTH, /* mech (upper-cased); ir/has_ir for the initial response ("=" is empty);
	                no mech at all: has_mech false (list mechanisms) */
	POP3_V_SASL, /* a SASL response line (pop3_parser_expect_sasl); cancelled for "*" */
	POP3_V_QUIT,
	POP3_V_STLS,
	POP3_V_NOOP,
	POP3_V_OTHER, /* a known transaction-state command (STAT, LIST, RETR, DELE, RSET, TOP,
	                 UIDL, APOP, ...): the session answers -ERR */
};

struct pop3_cmd {
	enum pop3_verb verb;
	char name[POP3_VERB_MAX + 1]; /* command word, upper-cased, cut, for logs */
	char user[POP3_USER_MAX + 1];
	size_t user_len;
	char secret[POP3_SECRET_MAX + 1];
	size_t secret_len;
	char mech[POP3_MECH_MAX + 1];
	bool has_mech;
	char *ir; /* the caller's POP3_SASL_MAX + 1 bytes (pop3_cmd_init): base64 text as
	             sent, NUL-terminated */
	size_t ir_len;
	bool has_ir;
	bool cancelled;
	const char *error; /* POP3_BAD / POP3_FATAL: static text */
};

/* Where the dialog stands; the line itself stays in the caller's buffer. */
struct pop3_parser {
	bool expect_sasl; /* the next line is a SASL response */
	bool overlong;    /* a line went over its limit: nothing more is parsed */
	size_t seen;      /* bytes of a line not yet whole, looked at (no LF) */
};

void pop3_parser_init(struct pop3_parser *p);

/*
 * Ready cmd for pop3_parse(): ir_buf (POP3_SASL_MAX + 1 bytes, or NULL for
 * a caller that takes no SASL text: such a text is then POP3_FATAL) is
 * where an initial response or a SASL response line is copied.  A large
 * buffer that the caller shares between connections, such as one per
 * thread, keeps the command itself small.
 */
void pop3_cmd_init(struct pop3_cmd *cmd, char *ir_buf);

/* After AUTH without initial response the session writes "+ " and calls this. */
void pop3_parser_expect_sasl(struct pop3_parser *p);

/*
 * Parse the first line of buf[0..len).  *used_out is always set: the
 * caller drops that many bytes and calls again with the rest after
 * POP3_CMD/POP3_BAD, never after POP3_FATAL.  POP3_MORE uses nothing: the
 * line is not whole yet, and the caller calls again with the same bytes
 * and more after them, so its buffer must hold POP3_AUTH_LINE_MAX + 1 bytes.
 * A line that has not ended within its limit is POP3_FATAL at once.  A
 * line ends at LF (a CR before it is dropped, RFC 1939 asks for CRLF but
 * bare LF is accepted as most servers do).
 */
enum pop3_rc pop3_parse(struct pop3_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
                        struct pop3_cmd *cmd_out);

/* Wipes the credentials cmd holds (user, secret, and the ir text it wrote). */
void pop3_cmd_wipe(struct pop3_cmd *cmd);
void pop3_parser_wipe(struct pop3_parser *p);

#endif
