/*
 * listener.h: listening sockets, and one worker's set of them (struct
 * listener_set).  Each worker binds its own SO_REUSEPORT socket per
 * listener, so the kernel spreads connections over workers and a
 * connection never changes threads.
 */
#ifndef POSTERN_LISTENER_H
#define POSTERN_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "config.h"

struct worker;
struct listener_set;

struct listener {
	size_t li;                /* index into cfg->listeners */
	const char *name;         /* borrowed from the first config, for logs */
	struct listener_set *set; /* borrowed: the set it is in */
	int fd;                   /* owned; -1 once closed */
	ev_io io;
	bool paused;
};

/* One worker's listening sockets (embedded in the worker), on its loop. */
struct listener_set {
	struct worker *w;     /* borrowed: where accepted sockets go (conn_new) */
	struct ev_loop *loop; /* borrowed: w's */
	struct listener *l;   /* owned: [i] serves cfg->listeners[i] of every runtime */
	size_t n;
	ev_timer resume; /* after EMFILE: accepting resumes shortly */
	bool stopped;    /* stop or close: accepting never resumes */
};

/* Bind and listen (non-blocking, SO_REUSEPORT).  Returns the fd, or -1 with
 * *err_out static text and errno set. */
int listener_bind(const struct listener_conf *lc, const char **err_out);

/* Set ls up with one listener per fds[i] (taken over, also on failure),
 * serving cfg->listeners[i], accepting for w on loop once started.  -1
 * when out of memory. */
int listener_set_init(struct listener_set *ls, struct worker *w, struct ev_loop *loop,
                      const struct config *cfg, const int *fds, size_t nfds);
/* Close what is still open and free the array (the loop no longer runs). */
void listener_set_deinit(struct listener_set *ls);
/* Start accepting. */
void listener_set_start(struct listener_set *ls);
/* Stop accepting (shutdown); the sockets stay open until deinit. */
void listener_set_stop(struct listener_set *ls);
/* Draining: stop accepting and close the sockets, so that new connections
 * are refused here at once (and go to another instance). */
void listener_set_close(struct listener_set *ls);
/* Descriptors ran out: stop accepting for a moment (a timer resumes it). */
void listener_set_pause(struct listener_set *ls);
/* Accept again after a pause (a timer, or conns were freed); nothing once
 * stopped or closed, or when not paused. */
void listener_set_resume(struct listener_set *ls);

#endif
