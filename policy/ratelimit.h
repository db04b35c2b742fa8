/*
 * ratelimit.h: failed-login throttling for one key, as pure arithmetic on a
 * small state the caller keeps (counters.c, under its lock).  Only failures
 * count; a key over its limit is refused until its window ends; each failure
 * earns a growing, capped delay before its answer (a tarpit).
 */
#ifndef POSTERN_RATELIMIT_H
#define POSTERN_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit_conf {
	uint32_t limit;     /* failures allowed per window; 0: no limit */
	uint64_t window_ms; /* > 0 */
};

/*
 * A fixed window that opens with the first failure: failures are counted
 * until start_ms + window, then the next failure opens a new window.  So a
 * key gets at most `limit` failures per window, and an idle key forgets.
 */
struct ratelimit_state {
	uint64_t start_ms; /* when this window opened */
	uint32_t failures; /* in this window */
};

/* Has st's window ended at now_ms?  (A clock that went back keeps it open.) */
bool ratelimit_expired(const struct ratelimit_state *st, const struct ratelimit_conf *c,
                       uint64_t now_ms);

/* Is the key over its limit, so that a login must not even be tried? */
bool ratelimit_blocked(const struct ratelimit_state *st, const struct ratelimit_conf *c,
                       uint64_t now_ms);

/* Count one failure at now_ms.  Returns true when this failure reached the
 * limit (the key is blocked from now until its window ends). */
bool ratelimit_fail(struct ratelimit_state *st, const struct ratelimit_conf *c, uint64_t now_ms);

/* How long after its window opened st stops being blocked (for logs). */
uint64_t ratelimit_until(const struct ratelimit_state *st, const struct ratelimit_conf *c);

/*
 * The tarpit after the n-th failure: base * 2^(n-1), at most max; 0 when
 * n == 0 or base == 0.  Never overflows.
 */
uint64_t ratelimit_delay(uint32_t n, uint64_t base_ms, uint64_t max_ms);

#endif
