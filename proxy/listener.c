/*
 * listener.c: bind with SO_REUSEPORT, accept, hand sockets to conn_new().
 * When descriptors run out (EMFILE) accepting pauses briefly instead of
 * spinning; it never blocks and never exits the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

static void
pause_accepting(struct worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		ev_io_stop(w->loop, &w->listeners[i].io);
		w->listeners[i].paused = true;
	}
	ev_timer_stop(w->loop, &w->accept_resume);
	ev_timer_set(&w->accept_resume, ACCEPT_PAUSE_SECS, 0.);
	ev_timer_start(w->loop, &w->accept_resume);
}

static void
resume_accepting(struct worker *w)
{
	if (w->stopping || w->draining)
		return;
	ev_timer_stop(w->loop, &w->accept_resume);
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].paused) {
			w->listeners[i].paused = false;
			ev_io_start(w->loop, &w->listeners[i].io);
		}
	}
}

static void
accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = container_of(t, struct worker, accept_resume);

	(void)loop;
	(void)revents;
	resume_accepting(w);
}

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct listener *l = container_of(io, struct listener, io);
	static __thread ev_tstamp last_warn;

	(void)revents;
	if (l->w->stopping)
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
					       l->w->id, strerror(errno),
					       (unsigned long long)l->w->nconns);
				}
				pause_accepting(l->w);
				return;
			}
			log_kv(LOG_WARN, "listener.error", "lst=%s reason=\"%s\"", l->name,
			       strerror(errno));
			return;
		}
		metrics_accepted(&l->w->metrics, l->li);
		(void)conn_new(l->w, l->li, fd, (struct sockaddr *)&ss, sl);
	}
}

void
listener_start(struct worker *w)
{
	ev_init(&w->accept_resume, accept_resume_cb);
	for (size_t i = 0; i < w->nlisteners; i++) {
		struct listener *l = &w->listeners[i];
		ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
		ev_io_start(w->loop, &l->io);
	}
}

void
listener_stop(struct worker *w)
{
	ev_timer_stop(w->loop, &w->accept_resume);
	for (size_t i = 0; i < w->nlisteners; i++)
		ev_io_stop(w->loop, &w->listeners[i].io);
}

void
listener_close(struct worker *w)
{
	listener_stop(w);
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].fd >= 0)
			close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
		w->listeners[i].paused = false;
	}
}

void
listener_conn_closed(struct worker *w)
{
	if (w->draining)
		return;
	if (ev_is_active(&w->accept_resume))
		resume_accepting(w);
}
