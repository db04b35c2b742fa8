/*
 * imap.h: the pre-authentication IMAP command parser (RFC 9051 / RFC 3501
 * grammar for what is parsed).  A pure function over bytes: no sockets, no
 * malloc, no clock, no globals.  It never writes to the client itself; the
 * session writes what an rc asks for.  A SASL text (an initial response or
 * a response line, up to 12 KiB) is read only once its line is whole in
 * the caller's buffer, straight into the caller's cmd->ir: the parser
 * keeps no copy of it, and is some 1.5 KB whatever the client sends.
 */
#ifndef POSTERN_IMAP_H
#define POSTERN_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "literal.h"

#define IMAP_TAG_MAX    64   /* longest tag accepted */
#define IMAP_USER_MAX   256  /* longest user name (LOGIN arg 1) */
#define IMAP_SECRET_MAX 1024 /* longest password (LOGIN arg 2) */
#define IMAP_MECH_MAX   32   /* longest SASL mechanism name */
/* Longest base64 SASL line, initial or continued response: SASL_LINE_MAX
 * (sasl.h), room for an OAuth bearer token of 8 KiB (imap.c checks). */
#define IMAP_SASL_MAX 12288
#define IMAP_LINE_MAX 8192 /* a command line, literals excluded */
/* An ID command at RFC 2971 §3.3's bounds (30 pairs, fields of 30 octets,
 * values of 1024, every byte escaped in a quoted string) is 63491 octets
 * with a 64-octet tag, literals excluded (imap.c checks). */
#define IMAP_ID_LINE_MAX 65536
#define IMAP_VERB_MAX    32 /* longest command name kept for logs */

enum imap_rc {
	IMAP_MORE,     /* command incomplete: read more.  *used_out may be short of len
	                  (a SASL text waits for its line end): the caller keeps the
	                  rest and calls again with it and what follows */
	IMAP_CMD,      /* *cmd_out holds a complete command */
	IMAP_CONTINUE, /* a synchronising literal {n} was announced and fits its budget:
	                  write "+ OK\r\n", then call again with the following bytes */
	IMAP_BAD,      /* a malformed or unknown command, line consumed; cmd_out->tag holds the
	                  tag if one was read ("*" otherwise), cmd_out->error a static reason */
	IMAP_FATAL,    /* unrecoverable (line over its limit, literal over budget, bad
	                  input inside a non-synchronising literal): write BYE and close */
};

enum imap_verb {
	IMAP_V_NONE = 0,
	IMAP_V_CAPABILITY,
	IMAP_V_NOOP,
	IMAP_V_LOGOUT,
	IMAP_V_ID, /* arguments parsed (NIL or a list of string/nstring pairs) and dropped */
	IMAP_V_STARTTLS,
	IMAP_V_LOGIN,        /* user, secret */
	IMAP_V_AUTHENTICATE, /* mech; ir/ir_len/has_ir for SASL-IR (RFC 4959; "=" is empty) */
	IMAP_V_SASL,         /* a SASL response line (see imap_parser_expect_sasl): ir/ir_len;
	                        cancelled is true for "*" */
	IMAP_V_OTHER,        /* a well-formed command valid only after login (SELECT, ...):
	                        the session answers BAD/NO; verb holds its name */
};

struct imap_cmd {
	enum imap_verb verb;
	char tag[IMAP_TAG_MAX + 1];
	char name[IMAP_VERB_MAX + 1]; /* the command word as sent, for logs (cut) */
	char user[IMAP_USER_MAX + 1];
	size_t user_len; /* user may hold NUL from a literal; the session checks */
	char secret[IMAP_SECRET_MAX + 1];
	size_t secret_len;
	char mech[IMAP_MECH_MAX + 1]; /* upper-cased */
	char *ir; /* the caller's IMAP_SASL_MAX + 1 bytes (imap_cmd_init): base64 text as
	             sent, NUL-terminated */
	size_t ir_len;
	bool has_ir;
	bool cancelled;    /* IMAP_V_SASL: the client sent "*" */
	const char *error; /* IMAP_BAD / IMAP_FATAL: static text for the reply and logs */
};

/*
 * Line limits.  Every command line keeps to line_max, except two that carry
 * more by design: AUTHENTICATE may add an initial response of up to
 * sasl_line_max (RFC 4959), which also bounds a SASL continuation line; ID
 * may take id_line_max in all (RFC 2971 §3.3), its values counted and
 * dropped as they stream.  Literal bytes never count as line bytes.
 */
struct imap_limits {
	size_t line_max;      /* default IMAP_LINE_MAX */
	size_t literal_max;   /* any one literal; default IMAP_SECRET_MAX */
	size_t sasl_line_max; /* default and most IMAP_SASL_MAX */
	size_t id_line_max;   /* default IMAP_ID_LINE_MAX; never below line_max */
};

/*
 * Resumable state: where in a command we are, literal bytes left, argument
 * count and the partial argument.  Zero it with imap_parser_init().
 */
struct imap_parser {
	struct imap_limits lim;
	int state;
	int sub;             /* sub-state (inside quoted string, escape, ...) */
	size_t line_len;     /* bytes of the current line, literals excluded */
	size_t lit_left;     /* bytes of the current literal still to come */
	bool lit_skip;       /* literal of a command being discarded */
	bool expect_sasl;    /* next line is a SASL response, not a command */
	int nargs;           /* arguments completed in this command */
	int depth;           /* parenthesis depth (ID lists) */
	size_t arg_len;      /* bytes in the argument being built */
	const char *error;   /* first error seen in a line being skipped */
	bool cr;             /* private: a CR was read, the next byte must be LF */
	struct lit_scan lit; /* private: "{n}"/"{n+}" read over every line byte (literal.h);
	                        lit.nonsync: the current literal is {n+} */
	size_t seen;         /* private: bytes of a SASL text looked at, no line end yet */
	size_t ir_written;   /* private: bytes put in cmd.ir during this call */
	struct imap_cmd cmd; /* the command being built; cmd.ir only during a call */
};

/* Ready cmd for imap_parse(): zeroed, a SASL text to go into ir_buf (the
 * caller's, IMAP_SASL_MAX + 1 bytes; imap_cmd_wipe() wipes what it holds). */
void imap_cmd_init(struct imap_cmd *cmd, char *ir_buf);

/* Set up a parser; lim may be NULL for the defaults. */
void imap_parser_init(struct imap_parser *p, const struct imap_limits *lim);

/* After AUTHENTICATE without an initial response, the session writes "+ "
 * and calls this: the next line is parsed as IMAP_V_SASL. */
void imap_parser_expect_sasl(struct imap_parser *p);

/*
 * Parse buf[0..len).  Sets *used_out to the bytes consumed (always, for every
 * rc); the caller drops them and calls again with the rest while rc is not
 * IMAP_MORE and not IMAP_FATAL.  On IMAP_MORE the caller keeps what was not
 * used and calls again with it and more after it, so its buffer must hold
 * IMAP_SASL_MAX + 2 bytes.  cmd_out was readied by imap_cmd_init() (its ir
 * is where a SASL text goes); it is written for IMAP_CMD and IMAP_BAD (tag,
 * error) and IMAP_FATAL (error), and holds copies, never pointers into buf.
 * After IMAP_CMD/IMAP_BAD the parser is ready for the next command; after
 * IMAP_FATAL it must not be called again.
 */
enum imap_rc imap_parse(struct imap_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
                        struct imap_cmd *cmd_out);

/* Wipe credentials held by the parser (partial arguments) and by cmd. */
void imap_cmd_wipe(struct imap_cmd *cmd);
void imap_parser_wipe(struct imap_parser *p);

/*
 * Append s[0..len) to out as an IMAP string for a command sent to a backend:
 * a quoted string when every byte is safe in one (no CR, LF, NUL, 8-bit),
 * else a literal "{len+}\r\n" (nonsync true) or "{len}\r\n" (the caller must
 * wait for "+" before the bytes).  Returns bytes written, or 0 if it does not
 * fit in outlen.  *is_literal_out tells which form was used.
 */
size_t imap_quote(char *out, size_t outlen, const char *s, size_t len, bool nonsync,
                  bool *is_literal_out);

#endif
