/*
 * relay.h: after login, bytes flow both ways untouched between the client
 * link and the backend link, through two fixed buffers, with backpressure
 * and half-close.  The relay never parses; it only remembers the client's
 * last few bytes, so that a session the backend ends right after the
 * client's LOGOUT/QUIT is logged as the client's doing, and whether the
 * backend's last byte ended a line (a quiet moment for a BYE needs it).
 */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "link.h"
#include "reason.h"

#define RELAY_TAIL 15

struct relay {
	struct link *cl, *bl;          /* borrowed: client, backend */
	struct buf *up, *down;         /* borrowed: client -> backend, backend -> client */
	uint64_t up_bytes, down_bytes; /* read from / written to the client */
	enum proto_kind proto;
	bool c_eof, b_eof, b_shut_wr;
	bool moved;        /* the last relay_run() moved bytes (the idle timer restarts) */
	bool b_line_ended; /* the backend's last byte read was '\n' (true before any) */
	uint8_t tail_len;
	char tail[RELAY_TAIL]; /* the client's last bytes */
};

enum relay_rc {
	RELAY_WAIT, /* watchers set: call again on an event */
	RELAY_MORE, /* out of rounds with work left: call again soon */
	RELAY_END,  /* the session is over: *reason_out says why */
};

/* Set r up over the two links and buffers (the login reply may already be
 * in down). */
void relay_init(struct relay *r, enum proto_kind proto, struct link *cl, struct link *bl,
                struct buf *up, struct buf *down);
/* Move bytes in both directions as far as the sockets allow, then watch
 * what is needed on both links. */
enum relay_rc relay_run(struct relay *r, enum close_reason *reason_out);

/* Nothing in flight: both buffers empty and the backend's last line
 * complete, so a line of our own to the client splits nothing. */
bool relay_at_line_boundary(const struct relay *r);

#endif
