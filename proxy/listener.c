/*
 * listener.c: bind with SO_REUSEPORT, accept, hand sockets to conn_new().
 * One worker's set of them (struct listener_set): start, stop, close,
 * pause and resume.  When descriptors run out (EMFILE) accepting pauses
 * briefly instead of spinning; it never blocks and never exits the
 * process.  The worker is only where accepted sockets go.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

#define LISTEN_BACKLOG    1024
#define ACCEPT_BATCH      64   /* accepts per wakeup, so one listener cannot starve the loop */
#define ACCEPT_PAUSE_SECS 0.25 /* after EMFILE/ENFILE */

int
listener_bind(const struct listener_conf *lc, const char **err_out)
{
	int fd, one = 1;

	fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err_out = "socket";
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		*err_out = "setsockopt";
		goto fail;
	}
	if (lc->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
		*err_out = "setsockopt(IPV6_V6ONLY)";
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) < 0) {
		*err_out = "bind";
		goto fail;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		*err_out = "listen";
		goto fail;
	}
	return fd;
fail : {
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}
}

int
listener_set_init(struct listener_set *ls, struct worker *w, struct ev_loop *loop,
                  const struct config *cfg, const int *fds, size_t nfds)
{
	memset(ls, 0, sizeof(*ls));
	ls->w = w;
	ls->loop = loop;
	ls->l = calloc(nfds, sizeof(*ls->l));
	if (ls->l == NULL && nfds > 0) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return -1;
	}
	ls->n = nfds;
	for (size_t i = 0; i < nfds; i++) {
		ls->l[i].fd = fds[i];
		ls->l[i].li = i;
		ls->l[i].name = cfg->listeners[i].name;
		ls->l[i].set = ls;
	}
	return 0;
}

void
listener_set_deinit(struct listener_set *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		if (ls->l[i].fd >= 0)
			close(ls->l[i].fd);
	free(ls->l);
	ls->l = NULL;
	ls->n = 0;
}

void
listener_set_pause(struct listener_set *ls)
{
	for (size_t i = 0; i < ls->n; i++) {
		ev_io_stop(ls->loop, &ls->l[i].io);
		ls->l[i].paused = true;
	}
	ev_timer_stop(ls->loop, &ls->resume);
	ev_timer_set(&ls->resume, ACCEPT_PAUSE_SECS, 0.);
	ev_timer_start(ls->loop, &ls->resume);
}

static void
resume_now(struct listener_set *ls)
{
	if (ls->stopped)
		return;
	ev_timer_stop(ls->loop, &ls->resume);
	for (size_t i = 0; i < ls->n; i++) {
		if (ls->l[i].paused) {
			ls->l[i].paused = false;
			ev_io_start(ls->loop, &ls->l[i].io);
		}
	}
}

static void
resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	resume_now(container_of(t, struct listener_set, resume));
}

void
listener_set_resume(struct listener_set *ls)
{
	/* Paused while the timer runs; stopped or closed, never again. */
	if (!ls->stopped && ev_is_active(&ls->resume))
		resume_now(ls);
}

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct listener *l = container_of(io, struct listener, io);
	struct listener_set *ls = l->set;
	static __thread ev_tstamp last_warn;

	(void)revents;
	if (ls->stopped)
		return; /* queued beside the stop in the loop's last iteration */
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				if (ev_now(loop) - last_warn > 10) {
					last_warn = ev_now(loop);
					log_kv(LOG_WARN, "listener.pause",
					       "lst=%s worker=%d reason=\"%s\" conns=%llu", l->name,
					       ls->w->id, strerror(errno),
					       (unsigned long long)worker_conns(ls->w));
				}
				listener_set_pause(ls);
				return;
			}
			log_kv(LOG_WARN, "listener.error", "lst=%s reason=\"%s\"", l->name,
			       strerror(errno));
			return;
		}
		metrics_accepted(&ls->w->metrics, l->li);
		(void)conn_new(ls->w, l->li, fd, (struct sockaddr *)&ss, sl);
	}
}

void
listener_set_start(struct listener_set *ls)
{
	ev_init(&ls->resume, resume_cb);
	for (size_t i = 0; i < ls->n; i++) {
		struct listener *l = &ls->l[i];
		ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
		ev_io_start(ls->loop, &l->io);
	}
}

void
listener_set_stop(struct listener_set *ls)
{
	ls->stopped = true;
	ev_timer_stop(ls->loop, &ls->resume);
	for (size_t i = 0; i < ls->n; i++)
		ev_io_stop(ls->loop, &ls->l[i].io);
}

void
listener_set_close(struct listener_set *ls)
{
	listener_set_stop(ls);
	for (size_t i = 0; i < ls->n; i++) {
		if (ls->l[i].fd >= 0)
			close(ls->l[i].fd);
		ls->l[i].fd = -1;
		ls->l[i].paused = false;
	}
}
