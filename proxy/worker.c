/*
 * worker.c: a thread with its own libev loop.  worker_stop(), worker_drain()
 * and worker_post() are called from other threads (through ev_async);
 * everything else of a worker runs on its own loop.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "conn.h"
#include "hash.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

static void
reap_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
	struct worker *w = container_of(p, struct worker, reap_prepare);

	(void)loop;
	(void)revents;
	if (w->reap != NULL) {
		conn_reap(w);
		/* Descriptors came back: resume accepting if they had run out. */
		listener_set_resume(&w->listeners);
	}
}

#define END_SWEEP_SECONDS 0.1 /* how often sessions being ended are looked at */

/* Run what other threads queued; with close, refuse anything later. */
static void
mbox_run(struct worker *w, bool close)
{
	struct worker_job *jobs[WORKER_MAILBOX_MAX];
	size_t n;

	pthread_mutex_lock(&w->mbox_lock);
	n = w->nmbox;
	memcpy(jobs, w->mbox, n * sizeof(jobs[0]));
	w->nmbox = 0;
	if (close)
		w->mbox_closed = true;
	pthread_mutex_unlock(&w->mbox_lock);
	for (size_t i = 0; i < n; i++)
		jobs[i]->run(w, jobs[i]); /* the job goes back to its poster */
}

static void
mbox_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	mbox_run(container_of(a, struct worker, mbox_async), false);
}

int
worker_post(struct worker *w, struct worker_job *job)
{
	int rc = -1;

	/* The send is under the lock: once the mailbox is closed (the worker
	 * stopping), nobody touches the loop, which worker_join() destroys. */
	pthread_mutex_lock(&w->mbox_lock);
	if (!w->mbox_closed && w->nmbox < WORKER_MAILBOX_MAX) {
		w->mbox[w->nmbox++] = job;
		ev_async_send(w->loop, &w->mbox_async);
		rc = 0;
	}
	pthread_mutex_unlock(&w->mbox_lock);
	return rc;
}

static void
end_sweep_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = container_of(t, struct worker, end_sweep);

	(void)revents;
	conn_end_sweep(w);
	if (w->nending == 0)
		ev_timer_stop(loop, t);
}

void
worker_end_started(struct worker *w)
{
	if (w->nending++ == 0 && !ev_is_active(&w->end_sweep)) {
		ev_timer_set(&w->end_sweep, END_SWEEP_SECONDS, END_SWEEP_SECONDS);
		ev_timer_start(w->loop, &w->end_sweep);
	}
}

void
worker_end_done(struct worker *w)
{
	if (w->nending > 0)
		w->nending--;
}

uint64_t
worker_conns(struct worker *w)
{
	return atomic_load(&w->nconns);
}

/* A uniform double in [0, 1) from the worker's splitmix64 state. */
static double
worker_random(struct worker *w)
{
	uint64_t z = hash_splitmix64(&w->cid_state);

	return (double)(z >> 11) / (double)(1ULL << 53);
}

static void
drain_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = container_of(a, struct worker, drain_async);
	double spread = (double)atomic_load(&w->drain_spread_ms) / 1000.0;
	double deadline = (double)atomic_load(&w->drain_deadline_ms) / 1000.0;
	struct conn *next;

	(void)loop;
	(void)revents;
	if (w->draining || w->stopping)
		return;
	w->draining = true;
	listener_set_close(&w->listeners);
	/* Each session its own moment within the spread, so that thousands of
	 * clients do not come back at once. */
	for (struct conn *c = w->conns; c != NULL; c = next) {
		next = c->next; /* c may be closed (unlinked) here */
		conn_end_politely(c, CLOSE_SHUTDOWN, worker_random(w) * spread, deadline);
	}
}

void
worker_drain(struct worker *w, uint64_t spread_ms, uint64_t deadline_ms)
{
	atomic_store(&w->drain_spread_ms, spread_ms);
	atomic_store(&w->drain_deadline_ms, deadline_ms);
	ev_async_send(w->loop, &w->drain_async);
}

static void
stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = container_of(a, struct worker, stop_async);

	(void)revents;
	w->stopping = true;
	mbox_run(w, true); /* answer what is queued, then take no more */
	listener_set_stop(&w->listeners);
	ev_timer_stop(loop, &w->end_sweep);
	while (w->conns != NULL)
		conn_close(w->conns, CLOSE_SHUTDOWN);
	ev_break(loop, EVBREAK_ALL);
}

int
worker_init(struct worker *w, int id, const struct config *cfg, struct policy *policy,
            const int *fds, size_t nfds)
{
	const char *err = NULL;

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (w->loop == NULL)
		return -1;
	w->policy = policy;
	w->pw = policy_worker_new(policy, w->loop, &err);
	if (w->pw == NULL) {
		log_kv(LOG_ERR, "worker.fail", "worker=%d reason=\"%s\"", id, err ? err : "policy");
		return -1;
	}
	if (RAND_bytes((unsigned char *)&w->cid_state, sizeof(w->cid_state)) != 1)
		w->cid_state = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL + (uint64_t)id;
	if (conn_index_init(&w->by_user, offsetof(struct conn, by_user), true,
	                    hash_splitmix64(&w->cid_state)) < 0 ||
	    conn_index_init(&w->by_backend, offsetof(struct conn, by_backend), false,
	                    hash_splitmix64(&w->cid_state)) < 0)
		return -1;
	if (metrics_init(&w->metrics, nfds) < 0)
		return -1;
	if ((w->lookup = lookup_worker_new(w->loop, &w->metrics)) == NULL)
		return -1;
	if (listener_set_init(&w->listeners, w, w->loop, cfg, fds, nfds) < 0)
		return -1;
	ev_async_init(&w->stop_async, stop_cb);
	ev_async_start(w->loop, &w->stop_async);
	ev_async_init(&w->drain_async, drain_cb);
	ev_async_start(w->loop, &w->drain_async);
	pthread_mutex_init(&w->mbox_lock, NULL);
	ev_async_init(&w->mbox_async, mbox_cb);
	ev_async_start(w->loop, &w->mbox_async);
	ev_init(&w->end_sweep, end_sweep_cb);
	ev_prepare_init(&w->reap_prepare, reap_cb);
	ev_prepare_start(w->loop, &w->reap_prepare);
	listener_set_start(&w->listeners);
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	ev_run(w->loop, 0);
	/* ev_break() lets the rest of the last iteration run: an accept or a
	 * close queued beside the stop may have opened or closed conns after
	 * stop_cb.  End them all, then free what the reaper holds. */
	while (w->conns != NULL)
		conn_close(w->conns, CLOSE_SHUTDOWN);
	conn_reap(w);
	lookup_worker_free(&w->lookup); /* no conn is left to wait for an answer */
	policy_worker_free(&w->pw);
	return NULL;
}

int
worker_start(struct worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void
worker_stop(struct worker *w)
{
	ev_async_send(w->loop, &w->stop_async);
}

void
worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
	listener_set_deinit(&w->listeners);
	metrics_deinit(&w->metrics);
	conn_index_deinit(&w->by_user);
	conn_index_deinit(&w->by_backend);
	/* mbox_lock stays: a poster may still find the mailbox closed (the
	 * admin thread until admin_stop()). */
	ev_loop_destroy(w->loop);
}
