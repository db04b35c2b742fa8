/*
 * metrics_http.c: /metrics and /health over HTTP (see metrics_http.h).
 * HTTP parsing is libmicrohttpd's; this file only picks the answer and
 * bounds each connection's time (a watchdog thread), so no slow client
 * holds a place.  Its requests never block a worker: a scrape reads
 * counters, the backend registry and the lifecycle flag, safe from any thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "config.h"
#include "health.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "prom.h"

/*
 * A slow client (slowloris: a header byte a second) must not keep /health
 * from a load balancer: each address holds at most HTTP_PER_IP_MAX places
 * of HTTP_CONNECTIONS_MAX, so it takes eight addresses to fill them, and
 * every connection must send its request and take its answer within
 * HTTP_DEADLINE_MS of its accept (or of its previous answer, kept alive),
 * whatever it trickles: MHD's own timeout is for idleness only.
 */
#define HTTP_CONNECTIONS_MAX 64    /* a few scrapers and probes, not a web server */
#define HTTP_PER_IP_MAX      8     /* so one client cannot take them all */
#define HTTP_IDLE_SECONDS    10    /* a connection idle this long is closed */
#define HTTP_DEADLINE_MS     5000  /* request in and answer out, per connection */
#define HTTP_WATCH_MS        250   /* how often the watchdog looks */
#define HTTP_REQUEST_MEMORY  16384 /* request line and headers, per connection */

/* One connection's clock: MHD's socket context while it is open. */
struct http_slot {
	int fd;        /* borrowed from MHD: -1 when the slot is free */
	int64_t start; /* ms (monotonic): accepted, or answered last */
	bool overdue;  /* shut down once; MHD closes it next */
};

struct metrics_http {
	int fd; /* owned until MHD takes it */
	struct MHD_Daemon *d;
	char addr[64];
	pthread_t watchdog;
	bool watching;        /* the thread runs */
	pthread_mutex_t lock; /* slots, stop: MHD's thread and ours */
	pthread_cond_t wake;  /* stop */
	bool stop;
	struct http_slot slots[HTTP_CONNECTIONS_MAX];
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * MHD's thread: a connection opens (a slot and its clock) or closes (the
 * slot freed).  MHD calls this before it closes the fd, and the watchdog
 * shuts fds down only under the lock, so it never touches a reused fd.
 */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
              enum MHD_ConnectionNotificationCode code)
{
	struct metrics_http *h = cls;
	struct http_slot *slot = *socket_ctx;

	pthread_mutex_lock(&h->lock);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		for (size_t i = 0; ci != NULL && slot == NULL && i < HTTP_CONNECTIONS_MAX; i++)
			if (h->slots[i].fd < 0)
				slot = &h->slots[i];
		if (slot != NULL) {
			slot->fd = ci->connect_fd;
			slot->start = mono_ms();
			slot->overdue = false;
		} else if (ci != NULL) {
			(void)shutdown(ci->connect_fd, SHUT_RDWR); /* no clock, no place */
		}
		*socket_ctx = slot;
	} else if (slot != NULL) {
		slot->fd = -1;
		*socket_ctx = NULL;
	}
	pthread_mutex_unlock(&h->lock);
}

/* MHD's thread: an answer went out; a kept-alive connection's next
 * request has its own HTTP_DEADLINE_MS. */
static void
on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
             enum MHD_RequestTerminationCode toe)
{
	struct metrics_http *h = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	(void)req_cls;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK || ci == NULL || ci->socket_context == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	((struct http_slot *)ci->socket_context)->start = mono_ms();
	pthread_mutex_unlock(&h->lock);
}

/* The watchdog: shuts down each connection past its deadline; MHD then
 * sees the end of it and closes it (and tells on_connection). */
static void *
watchdog_main(void *arg)
{
	struct metrics_http *h = arg;

	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		struct timespec until;
		int64_t now = mono_ms();
		unsigned shut = 0;

		for (size_t i = 0; i < HTTP_CONNECTIONS_MAX; i++) {
			struct http_slot *s = &h->slots[i];

			if (s->fd < 0 || s->overdue || now - s->start < HTTP_DEADLINE_MS)
				continue;
			s->overdue = true;
			(void)shutdown(s->fd, SHUT_RDWR);
			shut++;
		}
		if (shut > 0)
			log_kv(LOG_INFO, "metrics.http_deadline", "closed=%u deadline_ms=%d", shut,
			       HTTP_DEADLINE_MS);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)HTTP_WATCH_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&h->wake, &h->lock, &until);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

struct metrics_http *
metrics_http_new(const char *addr, const char **err_out)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	struct metrics_http *h;
	int one = 1;

	if (config_parse_listen(addr, &ss, &len, err_out) < 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		*err_out = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < HTTP_CONNECTIONS_MAX; i++)
		h->slots[i].fd = -1;
	snprintf(h->addr, sizeof(h->addr), "%s", addr);
	h->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0) {
		*err_out = "socket";
		goto fail;
	}
	if (setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		*err_out = "setsockopt";
		goto fail;
	}
	if (bind(h->fd, (struct sockaddr *)&ss, len) < 0) {
		*err_out = "bind";
		goto fail;
	}
	if (listen(h->fd, 64) < 0) {
		*err_out = "listen";
		goto fail;
	}
	return h;
fail : {
	int saved = errno;
	if (h->fd >= 0)
		close(h->fd);
	free(h);
	errno = saved;
	return NULL;
}
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body, size_t len,
      enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result rc;

	if (r == NULL) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO; /* MHD closes the connection */
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return reply(conn, status, "text/plain; charset=utf-8", (char *)text, strlen(text),
	             MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result
serve_metrics(struct MHD_Connection *conn)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	int rc;

	if (f == NULL)
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	rc = metrics_write(f, true);
	if (fclose(f) != 0 || rc < 0) {
		free(body);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot collect metrics\n");
	}
	return reply(conn, MHD_HTTP_OK, PROM_CONTENT_TYPE, body, len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result
serve_health(struct MHD_Connection *conn)
{
	if (lifecycle_draining())
		return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "draining\n");
	if (!health_any_up())
		return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no backend up\n");
	return reply_text(conn, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_len, void **req_cls)
{
	static int seen;

	(void)cls;
	(void)version;
	(void)upload;
	/* The first call has the headers only; answer on a later one, once
	 * any body (never wanted here) has been read and dropped. */
	if (*req_cls == NULL) {
		*req_cls = &seen;
		return MHD_YES;
	}
	if (*upload_len != 0) {
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(conn);
	if (strcmp(url, "/health") == 0)
		return serve_health(conn);
	return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /health\n");
}

/* libmicrohttpd's own complaints, as log lines. */
static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256], q[LOG_QUOTED_MAX];
	int n;

	(void)cls;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	n = (int)strnlen(msg, sizeof(msg));
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_kv(LOG_WARN, "metrics.http", "said=%s", log_quote(q, sizeof(q), msg, (size_t)n));
}

int
metrics_http_start(struct metrics_http *h, const char **err_out)
{
	/* MHD_USE_AUTO: epoll on Linux, so descriptor numbers above
	 * FD_SETSIZE (a busy proxy has many) do not matter. */
	/* One polling thread, non-blocking sockets: a slow client costs a
	 * place, never the thread. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	pthread_condattr_t ca;

	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		*err_out = "cannot start the HTTP server";
		return -1;
	}
	/* The watchdog's deadlines are CLOCK_MONOTONIC: so is its wait's clock
	 * (the default, CLOCK_REALTIME, read them as long past and never slept:
	 * a core spun while postern was idle). */
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&h->wake, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		pthread_mutex_destroy(&h->lock);
		*err_out = "cannot start the HTTP server";
		return -1;
	}
	pthread_condattr_destroy(&ca);
	if (pthread_create(&h->watchdog, NULL, watchdog_main, h) != 0) {
		pthread_cond_destroy(&h->wake);
		pthread_mutex_destroy(&h->lock);
		*err_out = "cannot start the HTTP server's watchdog";
		return -1;
	}
	h->watching = true;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
	                        on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, h->fd,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS_MAX,
	                        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_PER_IP_MAX,
	                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_SECONDS,
	                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_REQUEST_MEMORY,
	                        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
	                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
	if (h->d == NULL) {
		*err_out = "cannot start the HTTP server";
		return -1; /* metrics_http_free() stops the watchdog */
	}
	h->fd = -1; /* MHD's now: MHD_stop_daemon() closes it */
	log_kv(LOG_INFO, "metrics.start",
	       "listen=%s paths=\"/metrics /health\" max_conns=%d per_ip=%d deadline_ms=%d",
	       h->addr, HTTP_CONNECTIONS_MAX, HTTP_PER_IP_MAX, HTTP_DEADLINE_MS);
	return 0;
}

void
metrics_http_free(struct metrics_http **hp)
{
	struct metrics_http *h = *hp;

	if (h == NULL)
		return;
	*hp = NULL;
	if (h->d != NULL)
		MHD_stop_daemon(h->d); /* every connection closed: no slot in use */
	if (h->watching) {
		pthread_mutex_lock(&h->lock);
		h->stop = true;
		pthread_cond_signal(&h->wake);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->watchdog, NULL);
		pthread_cond_destroy(&h->wake);
		pthread_mutex_destroy(&h->lock);
	}
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}
