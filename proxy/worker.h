/*
 * worker.h: one thread, one libev loop, its own listening sockets and the
 * connections they accept.  Only worker_stop() is called from another
 * thread; everything else of a worker runs on its own loop.
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"
#include "listener.h"
#include "metrics.h"
#include "policy.h"

struct conn;

struct worker {
	int id;
	struct ev_loop *loop; /* owned */
	pthread_t thread;
	struct listener *listeners; /* [i] serves cfg->listeners[i] of every runtime */
	size_t nlisteners;
	ev_async stop_async;
	ev_prepare reap_prepare;
	ev_timer accept_resume;   /* after EMFILE: accepting resumes shortly */
	struct policy *policy;    /* borrowed: the process's policy */
	struct policy_worker *pw; /* owned: this loop's way into it */
	struct conn *conns;       /* all live conns (for shutdown) */
	struct conn *reap;        /* closed conns waiting to be freed */
	uint64_t nconns;
	uint64_t cid_state; /* splitmix64 state for connection ids */
	bool stopping;
	struct metrics metrics; /* written by this thread only; read by scrapes */
};

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
