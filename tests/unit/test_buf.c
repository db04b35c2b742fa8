/* test_buf.c: fixed-capacity buffers and log value quoting. */
#include <stdlib.h>

#include "unit.h"

#include "buf.h"
#include "log.h"

static void
an_empty_buffer_holds_no_memory(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 16, false);
	assert_null(b.data);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	assert_non_null(b.data);
	buf_consume(&b, 3);
	assert_null(b.data); /* drained: memory given back */
	assert_int_equal(buf_len(&b), 0);
	buf_deinit(&b);
}

static void
a_busy_relay_keeps_the_memory_until_it_is_idle(void **state)
{
	struct buf b;
	uint8_t *first;

	(void)state;
	buf_init(&b, 16, false);
	assert_int_equal(buf_append(&b, "abcd", 4), 0);
	first = b.data;
	buf_consume_keep(&b, 4); /* drained while busy: kept for the next read */
	assert_int_equal(buf_len(&b), 0);
	assert_ptr_equal(b.data, first);
	assert_int_equal(buf_append(&b, "efgh", 4), 0);
	assert_ptr_equal(b.data, first);
	assert_memory_equal(buf_head(&b), "efgh", 4);
	buf_consume_keep(&b, 2);
	assert_memory_equal(buf_head(&b), "gh", 2);
	buf_consume_keep(&b, 2);
	buf_consume(&b, 0); /* idle: given back */
	assert_null(b.data);
	buf_deinit(&b);
}

static void
a_buffer_that_stops_wiping_keeps_its_unread_bytes_and_clears_the_rest(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 16, true);
	assert_int_equal(buf_append(&b, "a1 LOGIN u pw\r\nx", 16), 0);
	buf_consume(&b, 15); /* the login is read; "x" (pipelined) is not */
	buf_stop_wiping(&b);
	assert_false(b.wipe);
	assert_int_equal(buf_len(&b), 1);
	assert_memory_equal(buf_head(&b), "x", 1);
	for (size_t i = 0; i < b.off; i++)
		assert_int_equal(b.data[i], 0); /* the password is gone from memory */
	buf_deinit(&b);
}

static void
a_buffer_never_grows_past_its_capacity(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8, true);
	assert_int_equal(buf_append(&b, "12345678", 8), 0);
	assert_int_equal(buf_append(&b, "9", 1), -1);
	assert_int_equal(buf_space(&b), 0);
	assert_int_equal(buf_printf(&b, "%d", 1), -1);
	buf_consume(&b, 3);
	assert_int_equal(buf_append(&b, "abc", 3), 0); /* compacts to make room */
	assert_memory_equal(buf_head(&b), "45678abc", 8);
	buf_deinit(&b);
}

static void
tail_and_produce_keep_bytes_in_order(void **state)
{
	struct buf b;
	size_t space;
	uint8_t *t;

	(void)state;
	buf_init(&b, 10, false);
	t = buf_tail(&b, &space);
	assert_int_equal(space, 10);
	memcpy(t, "hello", 5);
	buf_produce(&b, 5);
	buf_consume(&b, 2);
	t = buf_tail(&b, &space);
	assert_int_equal(space, 5); /* tail not exhausted: no compaction yet */
	memcpy(t, "world", 5);
	buf_produce(&b, 5);
	t = buf_tail(&b, &space);
	assert_int_equal(space, 2); /* tail exhausted: compacted */
	assert_memory_equal(buf_head(&b), "lloworld", 8);
	buf_deinit(&b);
}

static void
log_values_are_quoted_escaped_and_cut(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} rows[] = {
	    {"alice@example.org", 17, "\"alice@example.org\""},
	    {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
	    {"x\r\na2 CREATE y", 14, "\"x\\x0d\\x0aa2 CREATE y\""},
	    {"\xff\x01", 2, "\"\\xff\\x01\""},
	    {"", 0, "\"\""},
	};
	char out[LOG_QUOTED_MAX];
	char longv[400];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_string_equal(log_quote(out, sizeof(out), rows[i].in, rows[i].len),
		                    rows[i].out);
	memset(longv, 'a', sizeof(longv));
	log_quote(out, sizeof(out), longv, sizeof(longv));
	assert_int_equal(strlen(out), 1 + LOG_VALUE_MAX + 3 + 1);
	assert_string_equal(out + 1 + LOG_VALUE_MAX, "...\"");
}

static void
cut_removes_bytes_in_the_middle(void **state)
{
	struct buf b;
	(void)state;

	buf_init(&b, 64, false);
	assert_int_equal(buf_append(&b, "xxhello, world", 14), 0);
	buf_consume(&b, 2);
	buf_cut(&b, 5, 2); /* ", " */
	assert_int_equal(buf_len(&b), 10);
	assert_memory_equal(buf_head(&b), "helloworld", 10);
	buf_cut(&b, 8, 100); /* clipped to the end */
	assert_memory_equal(buf_head(&b), "hellowor", 8);
	buf_cut(&b, 8, 1); /* past the end: nothing */
	buf_cut(&b, 0, 0);
	assert_int_equal(buf_len(&b), 8);
	buf_deinit(&b);
}

static void
keep_last_holds_the_stream_s_last_bytes(void **state)
{
	char t[4];
	uint8_t n = 0;
	(void)state;

	buf_keep_last(t, &n, sizeof(t), "ab", 2);
	assert_int_equal(n, 2);
	assert_memory_equal(t, "ab", 2);
	buf_keep_last(t, &n, sizeof(t), "cde", 3); /* past cap: the oldest go */
	assert_int_equal(n, 4);
	assert_memory_equal(t, "bcde", 4);
	buf_keep_last(t, &n, sizeof(t), "0123456789", 10); /* longer than cap */
	assert_memory_equal(t, "6789", 4);
	buf_keep_last(t, &n, sizeof(t), "", 0);
	assert_int_equal(n, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(an_empty_buffer_holds_no_memory),
	    cmocka_unit_test(cut_removes_bytes_in_the_middle),
	    cmocka_unit_test(keep_last_holds_the_stream_s_last_bytes),
	    cmocka_unit_test(a_buffer_never_grows_past_its_capacity),
	    cmocka_unit_test(a_busy_relay_keeps_the_memory_until_it_is_idle),
	    cmocka_unit_test(a_buffer_that_stops_wiping_keeps_its_unread_bytes_and_clears_the_rest),
	    cmocka_unit_test(tail_and_produce_keep_bytes_in_order),
	    cmocka_unit_test(log_values_are_quoted_escaped_and_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
