/*
 * worker.h: one thread, one libev loop, its own listening sockets and the
 * connections they accept.  struct worker itself is in conn.h.
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include "conn.h"

/* Set up w: its loop and one listener per fds[i] (taken over), serving
 * cfg->listeners[i] of whatever runtime is current.  -1 on failure. */
int worker_init(struct worker *w, int id, const struct config *cfg, struct policy *policy,
                const int *fds, size_t nfds);
/* Start the thread running the loop. */
int worker_start(struct worker *w);
/* Ask the worker to close everything and return (thread-safe). */
void worker_stop(struct worker *w);
/* Wait for the thread and free everything. */
void worker_join(struct worker *w);

#endif
