/*
 * lookup_impl.h: what the lookup engine's files share: the process-wide
 * circuit breaker (lookup_breaker.c) and the per-worker answer cache
 * (lookup_cache.c).  Private to proxy/lookup*.c.
 */
#ifndef POSTERN_LOOKUP_IMPL_H
#define POSTERN_LOOKUP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lookup.h"

#define LOOKUP_BREAKERS_MAX 16   /* service URLs with a breaker; more go unguarded */
#define LOOKUP_CACHE_MAX    4096 /* cached answers per worker */

/* ---- lookup_breaker.c: one per service URL, for the whole process ---- */

enum breaker_verdict {
	BREAKER_PASS = 0, /* closed (or no slot left): ask */
	BREAKER_PROBE,    /* half-open: this question is the probe */
	BREAKER_REFUSE,   /* open, or a probe is under way: answer at once */
};

/* May url be asked now?  BREAKER_PROBE obliges the caller to report or
 * release.  Any thread. */
enum breaker_verdict lookup_breaker_admit(const char *url);
/* The outcome of a question admitted for url: failed (transport, timeout,
 * 5xx, malformed) or not; after failures failures in a row the breaker
 * opens for wait_ms.  why: for the log (no secret). */
void lookup_breaker_report(const char *url, bool probe, bool failed, int failures, uint64_t wait_ms,
                           const char *why);
/* A probe dropped unanswered: the next question probes instead. */
void lookup_breaker_release(const char *url);

/* ---- lookup_cache.c: per worker, no locks ---- */

struct lookup_cache;

struct lookup_cache *lookup_cache_new(void);
void lookup_cache_free(struct lookup_cache **cp);
/* The key of a question: url, protocol, proto and user, in key (cap
 * bytes).  Returns its length, or 0 when it does not fit (not cached). */
size_t lookup_cache_key(char *key, size_t cap, const char *url, enum lookup_protocol protocol,
                        const struct lookup_query *q);
/* A live answer under key into a_out (never a password): true, or false. */
bool lookup_cache_get(struct lookup_cache *c, const char *key, size_t len, uint64_t now_ms,
                      struct lookup_answer *a_out);
/* Keep a for ttl_ms (a must hold no password). */
void lookup_cache_put(struct lookup_cache *c, const char *key, size_t len,
                      const struct lookup_answer *a, uint64_t now_ms, uint64_t ttl_ms);

#endif
