/*
 * lookup.h: asking the HTTP user lookup service (lookup_msg.h's words)
 * without ever blocking a worker: one libcurl multi handle per worker,
 * driven by the worker's libev loop (CURLMOPT_SOCKETFUNCTION and
 * CURLMOPT_TIMERFUNCTION), HTTP/1.1 keep-alive, at most max_inflight
 * transfers at once (the rest queue, within the same timeout), a circuit
 * breaker per service URL shared by the whole process, and an optional
 * cache of route answers.  The blocking form is for the command line.
 */
#ifndef POSTERN_LOOKUP_H
#define POSTERN_LOOKUP_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"
#include "lookup_msg.h"

struct metrics;
struct lookup_worker; /* one per worker thread */
struct lookup_req;    /* one question under way */

/* How an answer came (for metrics and the log). */
enum lookup_source {
	LOOKUP_FROM_SERVICE = 0, /* the service answered */
	LOOKUP_FROM_CACHE,       /* cache_ttl / negative_ttl */
	LOOKUP_FROM_TIMEOUT,     /* no answer within timeout (queued or in flight) */
	LOOKUP_FROM_TRANSPORT,   /* connect refused, reset, TLS or HTTP error */
	LOOKUP_FROM_BREAKER,     /* the breaker is open: the service was not asked */
};

/* The answer, once; a is valid only during the call.  For LOOKUP_TEMP,
 * a->why says what went wrong. */
typedef void (*lookup_cb)(void *arg, const struct lookup_answer *a, enum lookup_source src,
                          double seconds);

/* Once per process, before any worker starts (curl_global_init). */
int lookup_global_init(void);

/* m: the worker's metrics (postern_lookup_*), may be NULL. */
struct lookup_worker *lookup_worker_new(struct ev_loop *loop, struct metrics *m);
/* Every question still under way is dropped without a callback. */
void lookup_worker_free(struct lookup_worker **lwp);

/*
 * Ask url (lc: the protocol, timeout, headers, CA, breaker, cache) about q
 * (copied: nothing of q is needed after the call; the password, when
 * sent, is wiped once the request is written).  The callback comes once,
 * later, never from inside lookup_ask().  NULL only when out of memory.
 */
struct lookup_req *lookup_ask(struct lookup_worker *lw, const struct lookup_conf *lc,
                              const char *url, const struct lookup_query *q, lookup_cb cb,
                              void *arg);
/* Drop a question; no callback comes.  Takes NULL and *rp NULL. */
void lookup_cancel(struct lookup_req **rp);

/*
 * The same question, blocking, bounded by lc->timeout_ms, no cache and no
 * breaker (the command line).  *http_status gets the HTTP status (0: none)
 * and the return value is the source, as for the callback.
 */
enum lookup_source lookup_once(const struct lookup_conf *lc, const char *url,
                               const struct lookup_query *q, struct lookup_answer *a,
                               long *http_status);

/* Open breakers, process-wide (for metrics and health). */
int lookup_breakers_open(void);

#endif
