/*
 * worker.h: one thread, one libev loop, its own listening sockets and the
 * connections they accept.  Only worker_stop(), worker_drain() and
 * worker_post() are called from other threads (each through an ev_async);
 * everything else of a worker runs on its own loop.
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"
#include "conn_index.h"
#include "listener.h"
#include "lookup.h"
#include "metrics.h"
#include "policy.h"

struct conn;
struct worker;
struct worker_job;

#define WORKER_MAILBOX_MAX 64 /* jobs queued at once; more are refused */

/* Runs job on w's own loop; job belongs to whoever posted it (embedded in
 * the poster's own record: container_of), the worker keeps no pointer. */
typedef void (*worker_job_cb)(struct worker *w, struct worker_job *job);

/* Work another thread hands a worker (worker_post): a function and, by
 * embedding, its payload. */
struct worker_job {
	worker_job_cb run;
};

struct worker {
	int id;
	struct ev_loop *loop; /* owned */
	pthread_t thread;
	struct listener_set listeners; /* embedded: its sockets, accepting into conns */
	ev_async stop_async;
	ev_prepare reap_prepare;
	struct policy *policy;        /* borrowed: the process's policy */
	struct policy_worker *pw;     /* owned: this loop's way into it */
	struct conn *conns;           /* all live conns (for shutdown) */
	struct conn_index by_user;    /* the conns by c->user (ASCII case folded) */
	struct conn_index by_backend; /* the conns by c->backend_name */
	struct conn *reap;            /* closed conns waiting to be freed */
	atomic_uint_fast64_t nconns;  /* written by the worker; main reads it while draining */
	uint64_t cid_state;           /* splitmix64 state for connection ids */
	bool stopping;
	struct metrics metrics; /* written by this thread only; read by scrapes */
	/* owned: this loop's user lookups (libcurl multi, cache); made in
	 * worker_init(), freed when the loop ends, after the conns that asked */
	struct lookup_worker *lookup;

	/* Sessions being ended politely (conn_end_politely) and the timer
	 * that looks at them while there are any. */
	uint64_t nending;
	struct conn *ending; /* those conns (c->end_next), for the sweep */
	ev_timer end_sweep;

	/* SIGTERM: main sets these and sends drain_async. */
	ev_async drain_async;
	atomic_uint_fast64_t drain_spread_ms, drain_deadline_ms;
	bool draining;

	/* Jobs from other threads: a list under mbox_lock, announced by
	 * mbox_async; closed (refusing jobs) once the worker stops. */
	pthread_mutex_t mbox_lock;
	struct worker_job *mbox[WORKER_MAILBOX_MAX]; /* borrowed: held here until run */
	size_t nmbox;
	bool mbox_closed;
	ev_async mbox_async;
};

/* Set up w: its loop and one listener per fds[i] (taken over), serving
 * cfg->listeners[i] of whatever runtime is current.  -1 on failure. */
int worker_init(struct worker *w, int id, const struct config *cfg, struct policy *policy,
                const int *fds, size_t nfds);
/* Start the thread running the loop. */
int worker_start(struct worker *w);
/* Ask the worker to close everything and return (thread-safe). */
void worker_stop(struct worker *w);
/* SIGTERM: close the listeners now and end every session politely: BYEs
 * spread over spread_ms, all closed after deadline_ms (thread-safe). */
void worker_drain(struct worker *w, uint64_t spread_ms, uint64_t deadline_ms);
/* Live connections now (thread-safe, a moment's count). */
uint64_t worker_conns(struct worker *w);
/* Queue job (thread-safe); w calls job->run(w, job) on its own loop, also
 * when it stops (then before it closes its conns).  -1 when the worker
 * stopped or its mailbox is full: nothing is queued, job is the caller's. */
int worker_post(struct worker *w, struct worker_job *job);
/* A conn of w started / finished ending politely (conn.c): the sweep runs
 * while any is pending. */
void worker_end_started(struct worker *w);
void worker_end_done(struct worker *w);
/* Wait for the thread and free everything. */
void worker_join(struct worker *w);

#endif
