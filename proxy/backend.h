/*
 * backend.h: connecting to the backend a user routes to and logging in there
 * with the user's credentials, re-serialised by postern (never the client's
 * raw bytes).  Speaks the client side of IMAP and POP3 just far enough.
 */
#ifndef POSTERN_BACKEND_H
#define POSTERN_BACKEND_H

#include "conn.h"

/*
 * Route c->creds->user and start connecting; c enters CS_BACKEND.  Returns
 * 0, and later calls c->proto->login_done() exactly once (never before this
 * returns); or -1 with *fc_out and *why_out (static) when nothing could be
 * started (no route, socket failure): then no callback comes.
 */
int backend_start(struct conn *c, enum fail_class *fc_out, const char **why_out);

/* The events the backend socket waits for in CS_BACKEND. */
int backend_events(struct conn *c);
void backend_on_io(struct conn *c, int revents);
void backend_on_timeout(struct conn *c);

/* After a successful login: move what the backend sent after its OK into
 * c->out, so nothing it said is lost.  -1 if it does not fit. */
int backend_take_leftover(struct conn *c);

/* After a login the backend accepted: its capabilities (IMAP) or the text
 * of its +OK (POP3), valid while c->be lives. */
const char *backend_ok_text(const struct conn *c);

/* Free c->be (wiping what it held); the backend socket stays with c. */
void backend_free(struct conn *c);

#endif
