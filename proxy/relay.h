/*
 * relay.h: after login, bytes flow both ways untouched between the client
 * (TLS) and the backend (TCP), with backpressure and half-close.
 */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

#include "conn.h"

/* Enter CS_RELAY: the login reply is already in c->out. */
void relay_start(struct conn *c);
/* Move bytes in both directions as far as the sockets allow. */
void relay_run(struct conn *c);

#endif
