/*
 * listener.h: listening sockets.  Each worker binds its own SO_REUSEPORT
 * socket per listener, so the kernel spreads connections over workers and
 * a connection never changes threads.
 */
#ifndef POSTERN_LISTENER_H
#define POSTERN_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "config.h"

struct worker;

struct listener {
	size_t li;        /* index into cfg->listeners */
	const char *name; /* borrowed from the first config, for logs */
	struct worker *w; /* borrowed */
	int fd;           /* owned */
	ev_io io;
	bool paused;
};

/* Bind and listen (non-blocking, SO_REUSEPORT).  Returns the fd, or -1 with
 * *err_out static text and errno set. */
int listener_bind(const struct listener_conf *lc, const char **err_out);

/* Start accepting on w->listeners. */
void listener_start(struct worker *w);
/* Stop accepting (shutdown); the sockets stay open until worker teardown. */
void listener_stop(struct worker *w);
/* Draining: stop accepting and close the sockets, so that new connections
 * are refused here at once (and go to another instance). */
void listener_close(struct worker *w);
/* Conns of w were freed: resume accepting if descriptors ran out before. */
void listener_conn_closed(struct worker *w);

#endif
