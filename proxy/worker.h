/*
 * worker.h: one thread, one libev loop, its own listening sockets and the
 * connections they accept.  struct worker itself is in conn.h.
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include "conn.h"

/* Set up w (loop, listeners from fds[0..nfds), which it takes over).  -1 on
 * failure. */
int worker_init(struct worker *w, int id, struct config *cfg, SSL_CTX *ctx, const int *fds,
		size_t nfds);
/* Start the thread running the loop. */
int worker_start(struct worker *w);
/* Ask the worker to close everything and return (thread-safe). */
void worker_stop(struct worker *w);
/* Wait for the thread and free everything. */
void worker_join(struct worker *w);

#endif
