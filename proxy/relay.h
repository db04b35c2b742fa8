/*
 * relay.h: after login, bytes flow both ways untouched between the client
 * link and the backend link, through two fixed buffers, with backpressure
 * and half-close.  The relay never parses; it only remembers the client's
 * last few bytes, so that a session the backend ends right after the
 * client's LOGOUT/QUIT is logged as the client's doing, and where the
 * conversation stands (dialog.h), so that a BYE of postern's own goes
 * only between two whole responses.
 */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "dialog.h"
#include "link.h"
#include "reason.h"

#define RELAY_TAIL 15

struct relay {
	struct link *cl, *bl;          /* borrowed: client, backend */
	struct buf *up, *down;         /* borrowed: client -> backend, backend -> client */
	uint64_t up_bytes, down_bytes; /* read from / written to the client */
	enum proto_kind proto;
	bool c_eof, b_eof, b_shut_wr;
	bool moved; /* the last relay_run() moved bytes (the idle timer restarts) */
	uint8_t tail_len;
	char tail[RELAY_TAIL]; /* the client's last bytes */
	uint32_t hold;         /* down's last bytes held back: a "* CAPABILITY" line under way */
	struct dialog dlg;     /* where the conversation stands */
};

enum relay_rc {
	RELAY_WAIT, /* watchers set: call again on an event */
	RELAY_MORE, /* out of rounds with work left: call again soon */
	RELAY_END,  /* the session is over: *reason_out says why */
};

/* Set r up over the two links and buffers (the login reply may already be
 * in down).  strip_compress: the backend's "* CAPABILITY" lines lose their
 * COMPRESS= words on the way (listener compress = "strip"). */
void relay_init(struct relay *r, enum proto_kind proto, bool strip_compress, struct link *cl,
                struct link *bl, struct buf *up, struct buf *down);
/* Move bytes in both directions as far as the sockets allow, then watch
 * what is needed on both links. */
enum relay_rc relay_run(struct relay *r, enum close_reason *reason_out);

/* Nothing in flight: both buffers empty, both sides between two whole
 * messages and no command waiting for its answer (but an IDLE), so a line
 * of our own to the client splits nothing.  Never true once opaque. */
bool relay_at_rest(const struct relay *r);

/* The stream is compressed (COMPRESS=DEFLATE): no byte may be injected;
 * the session can only be closed, once nothing is in flight. */
bool relay_opaque(const struct relay *r);

/* Nothing buffered either way. */
bool relay_idle(const struct relay *r);

#endif
