/*
 * metrics.h: the counters behind /metrics and `postern stats`.  Each worker
 * embeds a struct metrics and is its only writer; a scrape (any thread)
 * sums the workers' blocks, and reads each backend's series (sessions, up,
 * connect errors) from its registry record (registry.h), by its id.  No lock and no locked
 * instruction on the hot path: an increment is a relaxed load and a relaxed store of a 64-bit
 * atomic that only one thread writes, which compiles to plain moves on the
 * 64-bit targets (aligned 64-bit loads and stores are single accesses
 * there, so a reader never sees half an update) and keeps C11's memory
 * model free of data races.  A scrape may see one worker's counters a few
 * increments apart from each other; each value is exact when read.
 * Never labelled by a user name or client address: every label comes from
 * a closed set (protocols, fail classes, verdicts), from the config
 * (listener names) or from the backend registry (bounded, REGISTRY_MAX).
 */
#ifndef POSTERN_METRICS_H
#define POSTERN_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "policy.h"
#include "reason.h"

/* Login duration buckets (seconds; the last bucket is +Inf). */
#define METRICS_LOGIN_BUCKETS 12

/* Lookup duration buckets (seconds; the last bucket is +Inf). */
#define METRICS_LOOKUP_BUCKETS 10

/* postern_lookup_requests_total{result}: how each lookup was answered. */
enum metrics_lookup {
	METRICS_LOOKUP_OK = 0,   /* the service: a route */
	METRICS_LOOKUP_REFUSED,  /* the service: refused */
	METRICS_LOOKUP_UNKNOWN,  /* the service: no such user */
	METRICS_LOOKUP_TEMPFAIL, /* the service: a temporary failure (5xx, malformed) */
	METRICS_LOOKUP_TIMEOUT,  /* no answer in time */
	METRICS_LOOKUP_ERROR,    /* connect, TLS or HTTP transport error */
	METRICS_LOOKUP_BREAKER,  /* not asked: the breaker is open */
	METRICS_LOOKUP_CACHED,   /* from the cache */
	METRICS_LOOKUP__COUNT
};

enum metrics_dir { METRICS_IN, METRICS_OUT, METRICS__DIRS }; /* from / to the client */

struct metrics_listener {
	atomic_uint_fast64_t accepted;
	atomic_uint_fast64_t tls[2]; /* handshakes done: [0] full, [1] resumed */
};

struct metrics {
	struct metrics_listener *lst; /* owned: [i] counts cfg->listeners[i] */
	size_t nlst;
	atomic_uint_fast64_t logins[PROTO__COUNT][FAIL__COUNT]; /* [FAIL_NONE]: ok */
	atomic_uint_fast64_t login_le[PROTO__COUNT][METRICS_LOGIN_BUCKETS + 1]; /* not cumulated */
	atomic_uint_fast64_t login_us[PROTO__COUNT]; /* sum of the durations, microseconds */
	atomic_uint_fast64_t bytes[PROTO__COUNT][METRICS__DIRS];
	atomic_uint_fast64_t refusals[POLICY__COUNT];
	atomic_uint_fast64_t lookups[METRICS_LOOKUP__COUNT];
	atomic_uint_fast64_t lookup_le[METRICS_LOOKUP_BUCKETS + 1]; /* not cumulated */
	atomic_uint_fast64_t lookup_us;
	atomic_uint_fast64_t admin_visited; /* conns the admin's jobs looked at */
	atomic_uint_fast64_t sweep_visited; /* conns the drain sweep looked at */
};

/* Set m up for nlisteners listeners (zeroed).  -1 when out of memory. */
int metrics_init(struct metrics *m, size_t nlisteners);
/* Free what m holds; after the last scrape that could see it. */
void metrics_deinit(struct metrics *m);

/* The events, each on the thread that owns m (m may be NULL: not counted). */
void metrics_accepted(struct metrics *m, size_t li);
void metrics_tls_done(struct metrics *m, size_t li, bool resumed);
/* A login ended: fc FAIL_NONE is ok; seconds from the credentials on. */
void metrics_login(struct metrics *m, enum proto_kind pk, enum fail_class fc, double seconds);
void metrics_bytes(struct metrics *m, enum proto_kind pk, uint64_t in, uint64_t out);
void metrics_refused(struct metrics *m, enum policy_verdict v);
/* A lookup was answered as r; seconds from the question (the duration
 * histogram counts only answers the service gave: service true). */
void metrics_lookup(struct metrics *m, enum metrics_lookup r, bool service, double seconds);
/* The admin's sessions/kick job, or the sweep of the conns being ended,
 * looked at n conns (each is work: proportional to what matches, not to
 * every conn, when the indexes serve the question). */
void metrics_admin_visited(struct metrics *m, uint64_t n);
void metrics_sweep_visited(struct metrics *m, uint64_t n);
/* How many lookup breakers are open now, process-wide (any thread). */
void metrics_lookup_breakers(int n);

struct worker;

/*
 * What a scrape reads: the workers (each w[i].metrics), the policy (state
 * store) and the version string, all borrowed until metrics_unpublish(),
 * which waits for a scrape under way.  Before the workers are freed.
 */
void metrics_publish(struct worker *w, size_t n, const struct policy *p, const char *version);
void metrics_unpublish(void);

/*
 * Write every series, summed over the workers: prometheus true gives the
 * text exposition format 0.0.4, false a summary for people.  Any thread;
 * scrapes are serialised.  0, or -1 when writing to f failed.
 */
int metrics_write(FILE *f, bool prometheus);
/* "state store: KIND up|down[, master ADDR (HOW), failovers N]", one line
 * (stats and health); without a store "state store: none" if none_too,
 * else nothing. */
void metrics_state_line(FILE *f, bool none_too);

#endif
