/*
 * metrics_http.c: /metrics and /health over HTTP (see metrics_http.h).
 * HTTP parsing is libmicrohttpd's; this file only picks the answer.  Its
 * requests never block a worker: a scrape reads counters, the backend registry
 * and the lifecycle flag, all safe from any thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "config.h"
#include "health.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "prom.h"

#define HTTP_CONNECTIONS_MAX 16    /* a few scrapers and probes, not a web server */
#define HTTP_PER_IP_MAX      8     /* so one client cannot take them all */
#define HTTP_IDLE_SECONDS    10    /* a connection idle this long is closed */
#define HTTP_REQUEST_MEMORY  16384 /* request line and headers, per connection */

struct metrics_http {
	int fd; /* owned until MHD takes it */
	struct MHD_Daemon *d;
	char addr[64];
};

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
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;

	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)HTTP_CONNECTIONS_MAX, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)HTTP_PER_IP_MAX, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_SECONDS,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_REQUEST_MEMORY, MHD_OPTION_END);
	if (h->d == NULL) {
		*err_out = "cannot start the HTTP server";
		return -1;
	}
	h->fd = -1; /* MHD's now: MHD_stop_daemon() closes it */
	log_kv(LOG_INFO, "metrics.start", "listen=%s paths=\"/metrics /health\"", h->addr);
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
		MHD_stop_daemon(h->d);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}
