/*
 * worker.c: a thread with its own libev loop.  Only worker_stop() is
 * called from another thread (through ev_async); everything else of a
 * worker runs on its own loop.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

static void
reap_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
	struct worker *w = container_of(p, struct worker, reap_prepare);

	(void)loop;
	(void)revents;
	conn_reap(w);
}

static void
stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = container_of(a, struct worker, stop_async);

	(void)revents;
	w->stopping = true;
	listener_stop(w);
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
	if (metrics_init(&w->metrics, nfds) < 0)
		return -1;
	w->listeners = calloc(nfds, sizeof(*w->listeners));
	if (w->listeners == NULL && nfds > 0)
		return -1;
	w->nlisteners = nfds;
	for (size_t i = 0; i < nfds; i++) {
		w->listeners[i].fd = fds[i];
		w->listeners[i].li = i;
		w->listeners[i].name = cfg->listeners[i].name;
		w->listeners[i].w = w;
	}
	ev_async_init(&w->stop_async, stop_cb);
	ev_async_start(w->loop, &w->stop_async);
	ev_prepare_init(&w->reap_prepare, reap_cb);
	ev_prepare_start(w->loop, &w->reap_prepare);
	listener_start(w);
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
	for (size_t i = 0; i < w->nlisteners; i++)
		close(w->listeners[i].fd);
	free(w->listeners);
	metrics_deinit(&w->metrics);
	ev_loop_destroy(w->loop);
}
