/*
 * test_proxy_reason.c: the close reasons and fail classes of proxy/reason.c
 * are closed sets: every value has a distinct, non-empty name.
 */
#include "unit.h"

#include "reason.h"

static void
every_close_reason_has_a_distinct_name(void **state)
{
	(void)state;
	for (int i = 0; i < CLOSE__COUNT; i++) {
		const char *a = close_reason_name((enum close_reason)i);
		assert_non_null(a);
		assert_true(a[0] != '\0');
		for (int j = 0; j < i; j++)
			assert_string_not_equal(a, close_reason_name((enum close_reason)j));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_close_reason_has_a_distinct_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
