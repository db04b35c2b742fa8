/*
 * test_ratelimit.c: one key's failed-login window and tarpit, with the
 * clock in the test's hand.  A window opens with the first failure, a key
 * at its limit is refused until the window ends, and the delay doubles
 * from its base up to its cap.
 */
#include "unit.h"

#include "ratelimit.h"

#define SEC 1000ULL
#define MIN (60 * SEC)

static void
a_key_is_blocked_at_its_limit_until_its_window_ends(void **state)
{
	struct ratelimit_conf c = {.limit = 5, .window_ms = 15 * MIN};
	struct ratelimit_state st = {0};
	uint64_t t0 = 1700000000000ULL;

	(void)state;
	assert_false(ratelimit_blocked(&st, &c, t0));
	for (int i = 1; i <= 4; i++) {
		assert_false(ratelimit_fail(&st, &c, t0 + (uint64_t)i * SEC));
		assert_false(ratelimit_blocked(&st, &c, t0 + (uint64_t)i * SEC));
	}
	/* the fifth failure reaches the limit: that one says so, once */
	assert_true(ratelimit_fail(&st, &c, t0 + 5 * SEC));
	assert_true(ratelimit_blocked(&st, &c, t0 + 5 * SEC));
	assert_int_equal(ratelimit_until(&st, &c), t0 + SEC + 15 * MIN);
	/* the window opened with the first failure (t0 + 1s) */
	assert_true(ratelimit_blocked(&st, &c, t0 + SEC + 15 * MIN - 1));
	assert_false(ratelimit_blocked(&st, &c, t0 + SEC + 15 * MIN));
	assert_true(ratelimit_expired(&st, &c, t0 + SEC + 15 * MIN));
	/* the next failure opens a fresh window */
	assert_false(ratelimit_fail(&st, &c, t0 + SEC + 15 * MIN));
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.start_ms, t0 + SEC + 15 * MIN);
}

static void
failures_spread_wider_than_the_window_never_block(void **state)
{
	struct ratelimit_conf c = {.limit = 3, .window_ms = 10 * SEC};
	struct ratelimit_state st = {0};

	(void)state;
	for (uint64_t t = 0; t < 100 * SEC; t += 6 * SEC) {
		(void)ratelimit_fail(&st, &c, t);
		assert_false(ratelimit_blocked(&st, &c, t));
	}
}

static void
a_limit_of_zero_never_blocks(void **state)
{
	struct ratelimit_conf c = {.limit = 0, .window_ms = 10 * SEC};
	struct ratelimit_state st = {0};

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_false(ratelimit_fail(&st, &c, 5));
	assert_false(ratelimit_blocked(&st, &c, 5));
	assert_int_equal(st.failures, 1000);
}

static void
a_clock_that_goes_back_keeps_the_window_open(void **state)
{
	struct ratelimit_conf c = {.limit = 2, .window_ms = 10 * SEC};
	struct ratelimit_state st = {0};

	(void)state;
	(void)ratelimit_fail(&st, &c, 100 * SEC);
	(void)ratelimit_fail(&st, &c, 100 * SEC);
	assert_true(ratelimit_blocked(&st, &c, 50 * SEC));
	assert_false(ratelimit_expired(&st, &c, 50 * SEC));
	(void)ratelimit_fail(&st, &c, 50 * SEC);
	assert_int_equal(st.failures, 3);
}

static void
the_tarpit_doubles_from_its_base_up_to_its_cap(void **state)
{
	static const struct {
		uint32_t n;
		uint64_t base, max, want;
	} rows[] = {
	    {0, 1000, 15000, 0},
	    {1, 1000, 15000, 1000},
	    {2, 1000, 15000, 2000},
	    {3, 1000, 15000, 4000},
	    {4, 1000, 15000, 8000},
	    {5, 1000, 15000, 15000},
	    {6, 1000, 15000, 15000},
	    {UINT32_MAX, 1000, 15000, 15000},
	    {1, 0, 15000, 0},
	    {9, 0, 15000, 0},         /* no base: no tarpit */
	    {1, 20000, 15000, 15000}, /* a base over the cap is capped */
	    {3, 1000, 0, 0},
	    {64, UINT64_MAX / 2, UINT64_MAX, UINT64_MAX},
	    {200, 1, UINT64_MAX, UINT64_MAX}, /* never wraps */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t d = ratelimit_delay(rows[i].n, rows[i].base, rows[i].max);

		if (d != rows[i].want)
			print_message("row %zu: %llu\n", i, (unsigned long long)d);
		assert_int_equal(d, rows[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_key_is_blocked_at_its_limit_until_its_window_ends),
	    cmocka_unit_test(failures_spread_wider_than_the_window_never_block),
	    cmocka_unit_test(a_limit_of_zero_never_blocks),
	    cmocka_unit_test(a_clock_that_goes_back_keeps_the_window_open),
	    cmocka_unit_test(the_tarpit_doubles_from_its_base_up_to_its_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
