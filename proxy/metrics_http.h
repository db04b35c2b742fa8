/*
 * metrics_http.h: the monitoring HTTP server of `admin.http`, on
 * libmicrohttpd's own thread: GET /metrics (metrics_write() in the
 * Prometheus text format) and GET /health (200 while accepting with a
 * backend up, 503 while draining or when every backend is down); 404 for
 * any other path, 405 for any other method.  Bounded connections, request
 * memory and idle time; it never touches a worker's loop.
 */
#ifndef POSTERN_METRICS_HTTP_H
#define POSTERN_METRICS_HTTP_H

struct metrics_http;

/* Bind and listen on addr ("host:port", as admin.http), while still
 * privileged; nothing is served yet.  NULL with *err_out (static) and errno. */
struct metrics_http *metrics_http_new(const char *addr, const char **err_out);

/* Start serving from a thread of its own.  Call with the signals main
 * waits for blocked (the thread inherits the mask).  0, or -1 with *err_out. */
int metrics_http_start(struct metrics_http *h, const char **err_out);

/* Stop serving (waits for the thread; requests under way finish or are cut
 * off), close the socket and free; takes NULL, sets *hp NULL. */
void metrics_http_free(struct metrics_http **hp);

#endif
