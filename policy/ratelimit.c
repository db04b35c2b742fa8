/*
 * ratelimit.c: the throttle arithmetic for one key.  Pure: the caller keeps
 * the state, passes the clock, and holds whatever lock guards the state.
 */
#include "ratelimit.h"

bool
ratelimit_expired(const struct ratelimit_state *st, const struct ratelimit_conf *c, uint64_t now_ms)
{
	if (st->failures == 0)
		return true;
	/* a clock that went back: the window is still open, not over */
	if (now_ms < st->start_ms)
		return false;
	return now_ms - st->start_ms >= c->window_ms;
}

bool
ratelimit_blocked(const struct ratelimit_state *st, const struct ratelimit_conf *c, uint64_t now_ms)
{
	if (c->limit == 0 || ratelimit_expired(st, c, now_ms))
		return false;
	return st->failures >= c->limit;
}

bool
ratelimit_fail(struct ratelimit_state *st, const struct ratelimit_conf *c, uint64_t now_ms)
{
	if (ratelimit_expired(st, c, now_ms)) {
		st->start_ms = now_ms;
		st->failures = 0;
	}
	if (st->failures < UINT32_MAX)
		st->failures++;
	return c->limit != 0 && st->failures == c->limit;
}

uint64_t
ratelimit_until(const struct ratelimit_state *st, const struct ratelimit_conf *c)
{
	return st->start_ms > UINT64_MAX - c->window_ms ? UINT64_MAX : st->start_ms + c->window_ms;
}

uint64_t
ratelimit_delay(uint32_t n, uint64_t base_ms, uint64_t max_ms)
{
	uint64_t d = base_ms;

	if (n == 0 || base_ms == 0)
		return 0;
	for (uint32_t i = 1; i < n && d < max_ms; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	return d < max_ms ? d : max_ms;
}
