/*
 * test_proxy_registry.c: proxy/registry.c keeps one record per backend
 * name with an id that never changes, flips up and down after rise/fall
 * results, holds the operator's state and the session and error counts, and
 * says NULL once it is full.  The registry is process-wide: each test uses
 * names of its own, and the one that fills it runs last.
 */
#include <stdio.h>

#include "unit.h"

#include "log.h"
#include "registry.h"

static void
a_name_is_made_once_and_found_by_name(void **state)
{
	struct registry_entry *a, *b;

	(void)state;
	assert_null(registry_find("find-a"));
	a = registry_get("find-a");
	b = registry_get("find-b");
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_ptr_equal(registry_find("find-a"), a);
	assert_ptr_equal(registry_find("find-b"), b);
	assert_ptr_equal(registry_get("find-a"), a);
	assert_string_equal(registry_name(a), "find-a");
	assert_null(registry_find("find-c"));
	assert_null(registry_find("find-"));
}

static void
ids_are_dense_and_stay_when_a_name_comes_back(void **state)
{
	struct registry_entry *a, *b;
	uint32_t ida, idb, n;

	(void)state;
	a = registry_get("id-a");
	ida = registry_id(a);
	n = registry_count();
	assert_true(ida < n);
	assert_ptr_equal(registry_at(ida), a);
	b = registry_get("id-b");
	idb = registry_id(b);
	assert_int_equal(idb, ida + 1);
	assert_int_equal(registry_count(), n + 1);
	/* A reload that drops id-a and adds others, then one that brings it
	 * back: the same record, the same id, nothing made twice. */
	for (int i = 0; i < 5; i++) {
		char name[32];
		snprintf(name, sizeof(name), "id-other-%d", i);
		assert_non_null(registry_get(name));
	}
	assert_ptr_equal(registry_get("id-a"), a);
	assert_int_equal(registry_id(registry_get("id-a")), ida);
	assert_int_equal(registry_id(registry_get("id-b")), idb);
	assert_int_equal(registry_count(), n + 1 + 5);
	assert_null(registry_at(registry_count()));
}

static void
names_that_cannot_be_backend_names_get_no_record(void **state)
{
	char long_name[REGISTRY_NAME_MAX + 2];

	(void)state;
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_null(registry_get(""));
	assert_null(registry_get(long_name));
	assert_null(registry_find(long_name));
	long_name[REGISTRY_NAME_MAX] = '\0'; /* exactly the longest */
	assert_non_null(registry_get(long_name));
	assert_string_equal(registry_name(registry_find(long_name)), long_name);
}

static void
fall_failures_take_it_down_and_rise_successes_bring_it_up(void **state)
{
	struct registry_entry *e = registry_get("flip");
	char why[128];

	(void)state;
	assert_true(registry_is_up(e)); /* innocent until proven down */
	registry_last_why(e, why, sizeof(why));
	assert_string_equal(why, "");
	registry_report(e, false, "connect: refused", 2, 3);
	registry_report(e, false, "connect: refused", 2, 3);
	assert_true(registry_is_up(e));
	registry_report(e, true, NULL, 2, 3); /* a success resets the failures */
	registry_report(e, false, "connect: refused", 2, 3);
	registry_report(e, false, "connect: refused", 2, 3);
	assert_true(registry_is_up(e));
	registry_report(e, false, "no greeting in time", 2, 3);
	assert_false(registry_is_up(e));
	assert_false(registry_takes_logins(e));
	registry_last_why(e, why, sizeof(why));
	assert_string_equal(why, "no greeting in time");

	registry_report(e, true, NULL, 2, 3);
	assert_false(registry_is_up(e));
	registry_report(e, false, NULL, 2, 3); /* a failure resets the successes */
	registry_report(e, true, NULL, 2, 3);
	assert_false(registry_is_up(e));
	registry_report(e, true, NULL, 2, 3);
	assert_true(registry_is_up(e));
	assert_true(registry_takes_logins(e));
	/* up again, the last failure's reason stays for `backend list` */
	registry_last_why(e, why, sizeof(why));
	assert_string_equal(why, "check failed");
}

static void
the_admin_state_is_kept_and_only_ready_takes_logins(void **state)
{
	struct registry_entry *e = registry_get("admin");

	(void)state;
	assert_int_equal(registry_admin(e), BACKEND_READY);
	assert_true(registry_takes_logins(e));
	registry_set_admin(e, BACKEND_DRAIN);
	assert_int_equal(registry_admin(registry_find("admin")), BACKEND_DRAIN);
	assert_false(registry_takes_logins(e));
	registry_set_admin(e, BACKEND_MAINT);
	assert_int_equal(registry_admin(e), BACKEND_MAINT);
	assert_false(registry_takes_logins(e));
	registry_set_admin(e, BACKEND__COUNT); /* no such state: ignored */
	assert_int_equal(registry_admin(e), BACKEND_MAINT);
	registry_set_admin(e, BACKEND_READY);
	assert_true(registry_takes_logins(e));

	assert_int_equal(backend_admin_parse("drain"), BACKEND_DRAIN);
	assert_int_equal(backend_admin_parse("nope"), BACKEND__COUNT);
	for (int a = 0; a < BACKEND__COUNT; a++)
		assert_int_equal(backend_admin_parse(backend_admin_name((enum backend_admin)a)), a);
	assert_string_equal(backend_admin_name(BACKEND__COUNT), "?");
}

static void
sessions_and_connect_errors_are_counted_per_protocol(void **state)
{
	struct registry_entry *e = registry_get("counts");

	(void)state;
	assert_int_equal(registry_sessions(e, PROTO_IMAP), 0);
	registry_sessions_add(e, PROTO_IMAP, 1);
	registry_sessions_add(e, PROTO_IMAP, 1);
	registry_sessions_add(e, PROTO_POP3, 1);
	assert_int_equal(registry_sessions(e, PROTO_IMAP), 2);
	assert_int_equal(registry_sessions(e, PROTO_POP3), 1);
	registry_sessions_add(e, PROTO_IMAP, -1);
	assert_int_equal(registry_sessions(e, PROTO_IMAP), 1);
	assert_int_equal(registry_connect_errors(e), 0);
	registry_connect_error(e);
	registry_connect_error(e);
	assert_int_equal(registry_connect_errors(e), 2);
	/* no record (a full registry): nothing counted, nothing crashes */
	registry_sessions_add(NULL, PROTO_IMAP, 1);
	registry_connect_error(NULL);
	registry_report(NULL, false, "x", 1, 1);
	assert_int_equal(registry_sessions(NULL, PROTO_IMAP), 0);
	assert_true(registry_takes_logins(NULL));
}

/* Last: it fills the registry. */
static void
a_full_registry_says_null_and_keeps_what_it_has(void **state)
{
	struct registry_entry *first = registry_get("find-a");
	uint32_t n = registry_count();
	char name[32];

	(void)state;
	for (uint32_t i = n; i < REGISTRY_MAX; i++) {
		snprintf(name, sizeof(name), "fill-%u", (unsigned)i);
		assert_non_null(registry_get(name));
	}
	assert_int_equal(registry_count(), REGISTRY_MAX);
	assert_null(registry_get("one-too-many"));
	assert_null(registry_find("one-too-many"));
	assert_int_equal(registry_count(), REGISTRY_MAX);
	/* every name is still found, by the index, as itself */
	for (uint32_t i = 0; i < REGISTRY_MAX; i++) {
		struct registry_entry *e = registry_at(i);
		assert_ptr_equal(registry_find(registry_name(e)), e);
		assert_int_equal(registry_id(e), i);
	}
	assert_ptr_equal(registry_get("find-a"), first);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_name_is_made_once_and_found_by_name),
	    cmocka_unit_test(ids_are_dense_and_stay_when_a_name_comes_back),
	    cmocka_unit_test(names_that_cannot_be_backend_names_get_no_record),
	    cmocka_unit_test(fall_failures_take_it_down_and_rise_successes_bring_it_up),
	    cmocka_unit_test(the_admin_state_is_kept_and_only_ready_takes_logins),
	    cmocka_unit_test(sessions_and_connect_errors_are_counted_per_protocol),
	    cmocka_unit_test(a_full_registry_says_null_and_keeps_what_it_has),
	};
	log_set_level(LOG_ERR); /* backend.down/up/admin lines are not the test */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
