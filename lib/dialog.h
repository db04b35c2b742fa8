/*
 * dialog.h: where a relayed IMAP, POP3 or ManageSieve conversation stands,
 * read off the bytes as they pass, without copying them: is each side
 * between two whole messages (IMAP lines and literals {n} {n+} ~{n}; POP3
 * multi-line answers up to their "." line; ManageSieve lines and literals
 * {n} {n+}, a response ending at its OK/NO/BYE line), how many commands
 * wait for an answer, and has the stream stopped being readable
 * (COMPRESS, RFC 4978; IMAP only).
 *
 * A polite end (drain, kick, backend maint) needs dialog_at_rest(): a line
 * of postern's own (IMAP's "* BYE") then splits nothing.  Pure code: no
 * allocation, no I/O; a few dozen bytes of state per session.
 */
#ifndef POSTERN_DIALOG_H
#define POSTERN_DIALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define DIALOG_HEAD     48   /* the first bytes of a message kept: tag, name, status */
#define DIALOG_TAIL     24   /* the last bytes of a line kept: "{n+}\r\n", ".\r\n" */
#define DIALOG_CAPS_MAX 4096 /* a longer "* CAPABILITY" line passes unedited */

/* One direction's scanner. */
struct dialog_side {
	uint64_t lit;      /* IMAP literal bytes still to pass */
	uint32_t line_len; /* bytes of the current line so far (saturating) */
	bool in_msg;       /* a message has begun and not ended */
	bool first_line;   /* the current line is the message's first */
	bool sync_lit;     /* lit is a synchronizing literal none of whose bytes came yet */
	uint8_t head_len, tail_len;
	char head[DIALOG_HEAD];
	char tail[DIALOG_TAIL];
};

struct dialog {
	enum proto_kind proto;
	bool opaque;       /* COMPRESS took effect: the bytes are no longer read */
	bool idling;       /* IMAP: IDLE sent, DONE not yet */
	bool pop3_multi;   /* POP3: inside a multi-line answer */
	bool answered;     /* IMAP: the command the client is still sending has its answer */
	bool strip_caps;   /* IMAP: stop after each "* CAPABILITY" line (caps_len) */
	uint32_t caps_len; /* the length of the "* CAPABILITY" line just read, or 0 */
	uint8_t ctag_len;  /* IMAP: the tag of a COMPRESS awaiting its answer */
	char ctag[DIALOG_HEAD];
	uint32_t pending;          /* commands sent and not yet answered (saturating) */
	uint64_t pop3_kind;        /* POP3: bit i, the i-th pending command may answer multi-line */
	uint32_t sieve_auth;       /* ManageSieve: responses to come up to AUTHENTICATE's own; while
	                              not 0, client lines are SASL responses, not commands */
	struct dialog_side cs, ss; /* client's commands, server's responses */
};

void dialog_init(struct dialog *d, enum proto_kind proto);

/* Bytes the client sent (on their way to the server). */
void dialog_client(struct dialog *d, const uint8_t *p, size_t n);

/* Bytes the server sent (on their way to the client); returns how many of
 * them were read: all of them, or those up to and including the line that
 * made the stream opaque (the rest are compressed), or, with strip_caps,
 * up to the end of a "* CAPABILITY" line (caps_len says how long). */
size_t dialog_server(struct dialog *d, const uint8_t *p, size_t n);

/* With strip_caps: the bytes of a server line under way that may yet be a
 * "* CAPABILITY" line (they wait, to be edited whole), or 0. */
uint32_t dialog_caps_partial(const struct dialog *d);

/* Both sides between two whole messages and no command waiting for its
 * answer (an IMAP IDLE in progress counts as waiting for nothing). */
bool dialog_at_rest(const struct dialog *d);

/* Did the stream stop being readable (COMPRESS=DEFLATE accepted)? */
static inline bool
dialog_opaque(const struct dialog *d)
{
	return d->opaque;
}

#endif
