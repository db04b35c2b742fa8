/*
 * test_counters.c: the shared table.  Counts are exact under many threads,
 * limits are checked and counted in one step, the concurrent lock refuses
 * the other protocol while one is live, a full live table refuses safely,
 * and a full throttle table forgets its least recently touched key.
 */
#include <pthread.h>
#include <stdio.h>

#include "unit.h"

#include "counters.h"

static struct acl_addr
v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	return (struct acl_addr){.family = 4, .a = {a, b, c, d}};
}

static const struct ratelimit_conf RL_IU = {.limit = 3, .window_ms = 60000};
static const struct ratelimit_conf RL_IP = {.limit = 10, .window_ms = 60000};

static void
connections_are_counted_per_address_up_to_the_limit(void **state)
{
	struct counters *c = counters_new(16, 16);
	struct acl_addr a = v4(192, 0, 2, 1), b = v4(192, 0, 2, 2);
	struct counters_stats s;

	(void)state;
	assert_non_null(c);
	for (int i = 0; i < 3; i++)
		assert_int_equal(counters_conn_open(c, &a, 3), CONNLIMIT_OK);
	assert_int_equal(counters_conn_open(c, &a, 3), CONNLIMIT_IP_FULL);
	assert_int_equal(counters_conn_open(c, &b, 3), CONNLIMIT_OK);
	assert_int_equal(counters_conn_count(c, &a), 3);
	assert_true(counters_conn_close(c, &a));
	assert_int_equal(counters_conn_open(c, &a, 3), CONNLIMIT_OK);
	assert_int_equal(counters_conn_open(c, &a, 0), CONNLIMIT_OK); /* 0: no limit */
	assert_int_equal(counters_conn_count(c, &a), 4);
	for (int i = 0; i < 4; i++)
		assert_true(counters_conn_close(c, &a));
	/* one close too many is refused and the count stays at zero */
	assert_false(counters_conn_close(c, &a));
	assert_int_equal(counters_conn_count(c, &a), 0);
	assert_true(counters_conn_close(c, &b));
	counters_stats(c, &s);
	assert_int_equal(s.live, 0); /* idle keys leave the table */
	counters_free(&c);
	assert_null(c);
	counters_free(&c);
}

static void
the_concurrent_lock_refuses_the_other_protocol_while_one_is_live(void **state)
{
	struct counters *c = counters_new(16, 16);
	uint32_t live[PROTO__COUNT];

	(void)state;
	assert_int_equal(counters_session_begin(c, "u@x", 3, PROTO_IMAP, 0, true), CONNLIMIT_OK);
	assert_int_equal(counters_session_begin(c, "u@x", 3, PROTO_IMAP, 0, true), CONNLIMIT_OK);
	assert_int_equal(counters_session_begin(c, "u@x", 3, PROTO_POP3, 0, true),
	                 CONNLIMIT_OTHER_PROTO);
	/* another user is not affected; without exclusive both go */
	assert_int_equal(counters_session_begin(c, "v@x", 3, PROTO_POP3, 0, true), CONNLIMIT_OK);
	assert_int_equal(counters_session_begin(c, "u@x", 3, PROTO_POP3, 0, false), CONNLIMIT_OK);
	counters_session_count(c, "u@x", 3, live);
	assert_int_equal(live[PROTO_IMAP], 2);
	assert_int_equal(live[PROTO_POP3], 1);
	assert_true(counters_session_end(c, "u@x", 3, PROTO_POP3));
	assert_true(counters_session_end(c, "u@x", 3, PROTO_IMAP));
	assert_int_equal(counters_session_begin(c, "u@x", 3, PROTO_POP3, 0, true),
	                 CONNLIMIT_OTHER_PROTO);
	assert_true(counters_session_end(c, "u@x", 3, PROTO_IMAP));
	/* the last IMAP session ended: POP3 may come */
	assert_int_equal(counters_session_begin(c, "u@x", 3, PROTO_POP3, 0, true), CONNLIMIT_OK);
	assert_true(counters_session_end(c, "u@x", 3, PROTO_POP3));
	assert_false(counters_session_end(c, "u@x", 3, PROTO_POP3));
	assert_false(counters_session_end(c, "nobody", 6, PROTO_IMAP));
	assert_true(counters_session_end(c, "v@x", 3, PROTO_POP3));
	counters_free(&c);
}

static void
sessions_per_user_count_both_protocols_against_the_limit(void **state)
{
	struct counters *c = counters_new(16, 16);

	(void)state;
	assert_int_equal(counters_session_begin(c, "u", 1, PROTO_IMAP, 2, false), CONNLIMIT_OK);
	assert_int_equal(counters_session_begin(c, "u", 1, PROTO_POP3, 2, false), CONNLIMIT_OK);
	assert_int_equal(counters_session_begin(c, "u", 1, PROTO_IMAP, 2, false),
	                 CONNLIMIT_USER_FULL);
	/* the concurrent lock speaks first: it is the more useful refusal */
	assert_int_equal(counters_session_begin(c, "w", 1, PROTO_IMAP, 1, true), CONNLIMIT_OK);
	assert_int_equal(counters_session_begin(c, "w", 1, PROTO_POP3, 1, true),
	                 CONNLIMIT_OTHER_PROTO);
	assert_int_equal(counters_session_begin(c, "w", 1, PROTO_IMAP, 1, true),
	                 CONNLIMIT_USER_FULL);
	assert_int_equal(counters_session_begin(c, "u", 1, PROTO__COUNT, 0, false),
	                 CONNLIMIT_TABLE_FULL);
	counters_free(&c);
}

static void
a_full_live_table_refuses_and_forgets_nothing(void **state)
{
	struct counters *c = counters_new(3, 4);
	struct acl_addr a = v4(10, 0, 0, 1), b = v4(10, 0, 0, 2), d = v4(10, 0, 0, 3);
	struct counters_stats s;

	(void)state;
	assert_int_equal(counters_conn_open(c, &a, 0), CONNLIMIT_OK);
	assert_int_equal(counters_session_begin(c, "u", 1, PROTO_IMAP, 0, false), CONNLIMIT_OK);
	assert_int_equal(counters_conn_open(c, &b, 0), CONNLIMIT_OK);
	/* three live keys: a fourth is refused; existing keys still count */
	assert_int_equal(counters_conn_open(c, &d, 0), CONNLIMIT_TABLE_FULL);
	assert_int_equal(counters_session_begin(c, "v", 1, PROTO_IMAP, 0, false),
	                 CONNLIMIT_TABLE_FULL);
	assert_int_equal(counters_conn_open(c, &a, 0), CONNLIMIT_OK);
	assert_int_equal(counters_session_begin(c, "u", 1, PROTO_POP3, 0, false), CONNLIMIT_OK);
	/* throttle entries have their own room: they cannot crowd out counts */
	for (uint8_t i = 0; i < 20; i++) {
		struct acl_addr x = v4(172, 16, 0, i);
		struct counters_throttle t;

		counters_throttle_fail(c, &x, "z", 1, &RL_IU, &RL_IP, 1000, &t);
	}
	counters_stats(c, &s);
	assert_int_equal(s.live, 3);
	assert_int_equal(s.throttle, 4);
	assert_int_equal(s.refused_full, 2);
	assert_int_equal(counters_conn_count(c, &a), 2);
	assert_true(counters_conn_close(c, &b));
	assert_int_equal(counters_conn_open(c, &d, 0), CONNLIMIT_OK);
	counters_free(&c);
}

static void
throttle_counts_failures_per_pair_and_per_address(void **state)
{
	struct counters *c = counters_new(16, 64);
	struct acl_addr a = v4(198, 51, 100, 7), b = v4(198, 51, 100, 8);
	struct counters_throttle t;

	(void)state;
	counters_throttle_check(c, &a, "u", 1, &RL_IU, &RL_IP, 1000, &t);
	assert_false(t.ip_user_blocked || t.ip_blocked);
	counters_throttle_fail(c, &a, "u", 1, &RL_IU, &RL_IP, 1000, &t);
	counters_throttle_fail(c, &a, "u", 1, &RL_IU, &RL_IP, 2000, &t);
	assert_int_equal(t.ip_user_failures, 2);
	assert_false(t.newly_blocked);
	counters_throttle_fail(c, &a, "u", 1, &RL_IU, &RL_IP, 3000, &t);
	assert_true(t.newly_blocked);
	assert_true(t.ip_user_blocked);
	assert_false(t.ip_blocked);
	assert_int_equal(t.until_ms, 61000);
	counters_throttle_check(c, &a, "u", 1, &RL_IU, &RL_IP, 60999, &t);
	assert_true(t.ip_user_blocked);
	/* the real user elsewhere, and another user here, are not affected */
	counters_throttle_check(c, &b, "u", 1, &RL_IU, &RL_IP, 4000, &t);
	assert_false(t.ip_user_blocked || t.ip_blocked);
	counters_throttle_check(c, &a, "other", 5, &RL_IU, &RL_IP, 4000, &t);
	assert_false(t.ip_user_blocked || t.ip_blocked);
	assert_int_equal(t.ip_failures, 3);
	counters_throttle_check(c, &a, "u", 1, &RL_IU, &RL_IP, 61000, &t);
	assert_false(t.ip_user_blocked);
	/* a success clears the pair, and only the pair */
	counters_throttle_fail(c, &a, "u", 1, &RL_IU, &RL_IP, 62000, &t);
	counters_throttle_clear(c, &a, "u", 1);
	counters_throttle_check(c, &a, "u", 1, &RL_IU, &RL_IP, 62001, &t);
	assert_int_equal(t.ip_user_failures, 0);
	assert_int_equal(t.ip_failures, 1); /* the address's window from 1s ended at 61s */
	/* spraying users from one address meets the address limit */
	for (int i = 0; i < 9; i++) {
		char u[16];

		snprintf(u, sizeof(u), "s%d", i);
		counters_throttle_fail(c, &a, u, strlen(u), &RL_IU, &RL_IP, 63000, &t);
	}
	assert_true(t.ip_blocked);
	assert_false(t.ip_user_blocked);
	counters_throttle_check(c, &a, "fresh", 5, &RL_IU, &RL_IP, 63001, &t);
	assert_true(t.ip_blocked);
	counters_free(&c);
}

static void
a_full_throttle_table_forgets_the_least_recently_touched_key(void **state)
{
	struct counters *c = counters_new(4, 4);
	struct acl_addr a = v4(192, 0, 2, 1);
	struct counters_throttle t;
	struct counters_stats s;

	(void)state;
	/* two keys per failure (pair and address): "u1" and the address fill
	 * half; "u2", "u3" the rest */
	counters_throttle_fail(c, &a, "u1", 2, &RL_IU, &RL_IP, 1000, &t);
	counters_throttle_fail(c, &a, "u2", 2, &RL_IU, &RL_IP, 1001, &t);
	counters_throttle_fail(c, &a, "u3", 2, &RL_IU, &RL_IP, 1002, &t);
	counters_stats(c, &s);
	assert_int_equal(s.throttle, 4);
	assert_int_equal(s.evicted, 0);
	/* u1 is the coldest; the address is touched by every failure */
	counters_throttle_fail(c, &a, "u4", 2, &RL_IU, &RL_IP, 1003, &t);
	counters_stats(c, &s);
	assert_int_equal(s.evicted, 1);
	counters_throttle_check(c, &a, "u1", 2, &RL_IU, &RL_IP, 1004, &t);
	assert_int_equal(t.ip_user_failures, 0);
	assert_int_equal(t.ip_failures, 4);
	counters_throttle_check(c, &a, "u4", 2, &RL_IU, &RL_IP, 1004, &t);
	assert_int_equal(t.ip_user_failures, 1);
	counters_free(&c);
}

static void
expired_throttle_keys_leave_the_table(void **state)
{
	struct counters *c = counters_new(4, 64);
	struct counters_throttle t;
	struct counters_stats s;

	(void)state;
	for (uint8_t i = 0; i < 10; i++) {
		struct acl_addr x = v4(10, 9, 8, i);

		counters_throttle_fail(c, &x, "u", 1, &RL_IU, &RL_IP, 1000, &t);
	}
	counters_stats(c, &s);
	assert_int_equal(s.throttle, 20);
	/* each later call drops a few expired keys from the cold end */
	for (int i = 0; i < 5; i++)
		counters_throttle_check(c, &(struct acl_addr){.family = 4}, "x", 1, &RL_IU, &RL_IP,
		                        1000 + 60000, &t);
	counters_stats(c, &s);
	assert_int_equal(s.throttle, 0);
	counters_free(&c);
}

static void
bad_sizes_make_no_table(void **state)
{
	(void)state;
	assert_null(counters_new(0, 4));
	assert_null(counters_new(4, 1));
	assert_null(counters_new(SIZE_MAX, 4));
}

/* ---- many threads ------------------------------------------------------- */

#define THREADS 8
#define ROUNDS  20000

struct hammer {
	struct counters *c;
	int id;
	int ok_imap, ok_pop3;
};

static void *
hammer(void *arg)
{
	struct hammer *h = arg;
	struct acl_addr a = v4(203, 0, 113, (uint8_t)(h->id % 3));

	for (int i = 0; i < ROUNDS; i++) {
		enum proto_kind p = (i + h->id) % 2 ? PROTO_IMAP : PROTO_POP3;
		char u[16];

		snprintf(u, sizeof(u), "u%d", i % 5);
		if (counters_conn_open(h->c, &a, 0) != CONNLIMIT_OK)
			fail();
		if (counters_session_begin(h->c, u, strlen(u), p, 0, true) == CONNLIMIT_OK) {
			if (!counters_session_end(h->c, u, strlen(u), p))
				fail();
			*(p == PROTO_IMAP ? &h->ok_imap : &h->ok_pop3) += 1;
		}
		if (!counters_conn_close(h->c, &a))
			fail();
	}
	return NULL;
}

static void
counts_stay_exact_under_many_threads(void **state)
{
	struct counters *c = counters_new(64, 64);
	struct hammer h[THREADS];
	pthread_t th[THREADS];
	struct counters_stats s;
	int ok = 0;

	(void)state;
	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){.c = c, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		ok += h[i].ok_imap + h[i].ok_pop3;
	}
	counters_stats(c, &s);
	/* every open was closed and every session ended: nothing is left */
	assert_int_equal(s.live, 0);
	assert_true(ok > 0);
	for (int i = 0; i < 3; i++) {
		struct acl_addr a = v4(203, 0, 113, (uint8_t)i);

		assert_int_equal(counters_conn_count(c, &a), 0);
	}
	counters_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(connections_are_counted_per_address_up_to_the_limit),
	    cmocka_unit_test(the_concurrent_lock_refuses_the_other_protocol_while_one_is_live),
	    cmocka_unit_test(sessions_per_user_count_both_protocols_against_the_limit),
	    cmocka_unit_test(a_full_live_table_refuses_and_forgets_nothing),
	    cmocka_unit_test(throttle_counts_failures_per_pair_and_per_address),
	    cmocka_unit_test(a_full_throttle_table_forgets_the_least_recently_touched_key),
	    cmocka_unit_test(expired_throttle_keys_leave_the_table),
	    cmocka_unit_test(bad_sizes_make_no_table),
	    cmocka_unit_test(counts_stay_exact_under_many_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
