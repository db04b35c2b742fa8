/*
 * sieve.h: the pre-authentication ManageSieve command parser (RFC 5804 §4
 * grammar for what is parsed).  A pure function over bytes: no sockets, no
 * malloc, no clock, no globals, and it never writes to the client: the
 * session writes what an rc asks for.
 *
 * ManageSieve commands are a command word and strings, each a quoted
 * string or a literal.  A client sends only non-synchronising literals
 * "{n+}" (RFC 5804 §4, literal-c2s); a "{n}" from a client is
 * SIEVE_FATAL.  A SASL text (AUTHENTICATE's initial response, or a
 * response line after a server challenge) is read only once it is whole
 * in the caller's buffer, straight into the caller's cmd->ir: the parser
 * keeps no copy, and holds some hundred bytes whatever the client sends.
 * A quoted string holds at most 1024 octets (RFC 5804 §4), except a SASL
 * text, which may take SIEVE_SASL_MAX as sent either way (Dovecot takes
 * longer quoted strings too, and a PLAIN response with a long password
 * outgrows 1024).  Numbers (HAVESPACE) are digits below 2^32.
 */
#ifndef POSTERN_SIEVE_H
#define POSTERN_SIEVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "literal.h"

#define SIEVE_LINE_MAX 8192 /* a command line, literal bytes excluded */
#define SIEVE_MECH_MAX 32   /* a SASL mechanism name */
#define SIEVE_TAG_MAX  1024 /* NOOP's tag (OK (TAG ...)): a quoted string's bound */
#define SIEVE_VERB_MAX 32   /* the command word kept for logs (cut) */
/* Longest SASL text, initial or continued response, base64: SASL_LINE_MAX
 * (sasl.h), room for an OAuth bearer token of 8 KiB. */
#define SIEVE_SASL_MAX 12288
/* Any literal that is not a SASL text (a mechanism name, a NOOP tag, the
 * arguments of a command refused before login): its bytes stream through,
 * copied into mech or tag while they fit there (a longer one is
 * SIEVE_BAD) or counted and dropped, up to this many (more: SIEVE_FATAL). */
#define SIEVE_LITERAL_MAX (64 * 1024)
/* What the caller's input buffer must be able to hold: a SASL text as a
 * literal with its "{n+}" line. */
#define SIEVE_INPUT_MIN (SIEVE_SASL_MAX + 64)

enum sieve_rc {
	SIEVE_MORE,  /* command incomplete: read more.  *used_out may be short of len
	                (a SASL text waits whole): the caller keeps the rest and calls
	                again with it and what follows */
	SIEVE_CMD,   /* *cmd_out holds a complete command */
	SIEVE_BAD,   /* malformed or unknown command, line (and its literals) consumed;
	                cmd_out->error holds a static reason, name the command word
	                as far as read: answer NO */
	SIEVE_FATAL, /* unrecoverable (line or literal over its limit, a synchronising
	                literal from the client): answer BYE and close */
};

enum sieve_verb {
	SIEVE_V_NONE = 0,
	SIEVE_V_CAPABILITY,
	SIEVE_V_NOOP, /* tag/tag_len/has_tag: the optional string (RFC 5804 §2.13) */
	SIEVE_V_LOGOUT,
	SIEVE_V_STARTTLS,
	SIEVE_V_AUTHENTICATE,   /* mech (upper-cased); ir/ir_len/has_ir for the initial response
	                           (an empty string is an empty response) */
	SIEVE_V_SASL,           /* a SASL response string (sieve_parser_expect_sasl): ir/ir_len;
	                           cancelled is true for the string "*" */
	SIEVE_V_UNAUTHENTICATE, /* RFC 5804 §2.14.1: valid only after login */
	SIEVE_V_OTHER,          /* a well-formed command valid only after login (PUTSCRIPT,
	                           LISTSCRIPTS, SETACTIVE, GETSCRIPT, DELETESCRIPT, RENAMESCRIPT,
	                           CHECKSCRIPT, HAVESPACE): its arguments were read and dropped;
	                           the session answers NO */
};

struct sieve_cmd {
	enum sieve_verb verb;
	char name[SIEVE_VERB_MAX + 1]; /* the command word, upper-cased, cut, for logs */
	char mech[SIEVE_MECH_MAX + 1]; /* upper-cased */
	char tag[SIEVE_TAG_MAX + 1];   /* NOOP's string as sent (may hold any byte but NUL,
	                                  CR, LF: a literal holding those is SIEVE_BAD) */
	size_t tag_len;
	bool has_tag;
	char *ir; /* the caller's SIEVE_SASL_MAX + 1 bytes (sieve_cmd_init): the base64
	             text as sent, NUL-terminated */
	size_t ir_len;
	bool has_ir;
	bool cancelled;    /* SIEVE_V_SASL: the client sent the string "*" */
	const char *error; /* SIEVE_BAD / SIEVE_FATAL: static text for the reply and logs */
};

/* Resumable state: where in a command we are, literal bytes left, the
 * argument being built.  Zero it with sieve_parser_init().  Every field
 * is private to sieve.c. */
struct sieve_parser {
	int state;
	int sub;              /* inside a quoted string: after a backslash */
	int sig;              /* the command's argument list (sieve.c's table) */
	struct lit_scan lit;  /* "{n}"/"{n+}" read over every line byte (literal.h) */
	bool expect_sasl;     /* the next command line is a SASL response string */
	bool sasl_line;       /* the current line is one */
	bool cr;              /* a CR was read, the next byte must be LF */
	bool lit_drop;        /* the literal under way is counted, not kept */
	int nargs;            /* strings completed in this command */
	size_t line_len;      /* bytes of the current line, literal bytes excluded */
	size_t lit_left;      /* bytes of the current literal still to come */
	size_t arg_len;       /* bytes in the argument being built */
	size_t raw;           /* bytes of a quoted SASL text as sent (escapes too) */
	uint64_t number;      /* a number argument being read */
	size_t seen;          /* bytes of a SASL text looked at, not whole yet */
	size_t ir_written;    /* bytes put in cmd.ir during this call */
	const char *error;    /* the first error of a command being skipped */
	struct sieve_cmd cmd; /* the command being built (cmd.ir only during a call) */
};

/* Ready cmd for sieve_parse(): zeroed, a SASL text to go into ir_buf (the
 * caller's, SIEVE_SASL_MAX + 1 bytes; sieve_cmd_wipe() wipes it). */
void sieve_cmd_init(struct sieve_cmd *cmd, char *ir_buf);

void sieve_parser_init(struct sieve_parser *p);

/* The session wrote a SASL challenge: the next command line is a response
 * string (quoted or literal), SIEVE_V_SASL.  It lasts that one line: a
 * line that is no such string is SIEVE_BAD and the exchange is over. */
void sieve_parser_expect_sasl(struct sieve_parser *p);

/*
 * Parse buf[0..len).  Sets *used_out to the bytes consumed (for every rc);
 * the caller drops them and calls again with the rest while rc is not
 * SIEVE_MORE and not SIEVE_FATAL.  On SIEVE_MORE the caller keeps what was
 * not used and calls again with it and more after it, so its buffer must
 * hold SIEVE_INPUT_MIN bytes.  cmd_out was readied by sieve_cmd_init(); it
 * is written for SIEVE_CMD, SIEVE_BAD and SIEVE_FATAL (error) and holds
 * copies, never pointers into buf.  After SIEVE_FATAL the parser must not
 * be called again.  Command words are case-insensitive.
 */
enum sieve_rc sieve_parse(struct sieve_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
                          struct sieve_cmd *cmd_out);

/* Wipe credentials held by the parser and by cmd. */
void sieve_cmd_wipe(struct sieve_cmd *cmd);
void sieve_parser_wipe(struct sieve_parser *p);

/*
 * Append s[0..len) to out as a ManageSieve string: a quoted string when
 * every byte is safe in one (RFC 5804 §4 quoted: no CR, LF, NUL, at most
 * 1024 octets; '"' and '\' escaped; and 7-bit here, since a quoted string
 * must be UTF-8, which a literal need not be), else a literal: "{len+}\r\n"
 * bytes when nonsync (what a client, postern to a backend, sends), "{len}\r\n"
 * bytes otherwise (what a server sends).  Returns bytes written (no NUL
 * added), or 0 if it does not fit in outlen.
 */
size_t sieve_quote(char *out, size_t outlen, const char *s, size_t len, bool nonsync);

#endif
