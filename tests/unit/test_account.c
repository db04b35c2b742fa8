/*
 * test_account.c: the account key.  Normalising is pinned byte for byte
 * (locks, routes and counters are stored under it); a login's key falls
 * back to the raw bytes only for a blank name; and a route lookup by the
 * key made once answers as the lookup by the normalised name did when every
 * room normalised again.
 */
#include <stdio.h>
#include <string.h>

#include "unit.h"

#include "account.h"
#include "route.h"

static void
normalise_lowers_ascii_trims_space_and_refuses_what_does_not_fit(void **state)
{
	static const struct {
		const char *in;
		size_t outlen;
		const char *want; /* NULL: returns 0 */
	} rows[] = {
	    {"Alice@Example.ORG", 64, "alice@example.org"},
	    {" \t alice \r\n", 64, "alice"},
	    {"ÄLICE", 64, "\xc3\x84lice"}, /* bytes above 127 stay as they are */
	    {"abc", 4, "abc"},             /* exactly fits with its NUL */
	    {"abcd", 4, NULL},             /* one too long */
	    {"  abc  ", 4, "abc"},         /* trimmed before measuring */
	    {"", 64, NULL},
	    {" \t\r\n\v\f", 64, NULL},
	    {"x", 1, NULL}, /* no room even for one byte and the NUL */
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t n =
		    account_key_normalize(rows[i].in, strlen(rows[i].in), out, rows[i].outlen);

		if (rows[i].want == NULL ? n != 0 : n != strlen(rows[i].want))
			print_message("row %zu: \"%s\"\n", i, rows[i].in);
		if (rows[i].want == NULL) {
			assert_int_equal(n, 0);
		} else {
			assert_int_equal(n, strlen(rows[i].want));
			assert_string_equal(out, rows[i].want);
		}
	}
	/* a NUL inside the name cannot be a key */
	assert_int_equal(account_key_normalize("al\0ce", 5, out, sizeof(out)), 0);
	/* the length given counts, not a NUL after it */
	assert_int_equal(account_key_normalize("alice@x", 5, out, sizeof(out)), 5);
	assert_string_equal(out, "alice");
}

static void
a_login_key_is_the_normalised_name_or_for_a_blank_name_its_raw_bytes(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} rows[] = {
	    {"Alice@Example.ORG", "alice@example.org"},
	    {" \t alice \r\n", "alice"},
	    {"   ", "   "}, /* nothing left: the raw bytes, so failures count */
	    {"", ""},
	};
	char out[ACCOUNT_KEY_MAX + 1], longest[ACCOUNT_KEY_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t n = account_key(rows[i].in, strlen(rows[i].in), out, sizeof(out));

		assert_int_equal(n, strlen(rows[i].want));
		assert_string_equal(out, rows[i].want);
	}
	/* the longest name a login takes (CREDS_USER_MAX) fits whole */
	memset(longest, 'A', ACCOUNT_KEY_MAX);
	assert_int_equal(account_key(longest, ACCOUNT_KEY_MAX, out, sizeof(out)), ACCOUNT_KEY_MAX);
	assert_int_equal(out[0], 'a');
	/* a normalised key is its own key: making it again changes nothing */
	assert_int_equal(account_key("alice@example.org", 17, out, sizeof(out)), 17);
	assert_string_equal(out, "alice@example.org");
}

/* The home of key, or SIZE_MAX. */
static size_t
home(const struct route_table *rt, const char *key, size_t len)
{
	size_t out[ROUTE_POOL_MAX];

	return route_lookup(rt, key, len, out, ROUTE_POOL_MAX) ? out[0] : SIZE_MAX;
}

static void
routing_by_the_login_key_agrees_with_routing_by_the_normalised_name(void **state)
{
	static const char *const names[] = {"mx0", "mx1", "mx2"};
	static const char *const users[] = {
	    "ceo@example.org",
	    "CEO@Example.Org",
	    "  ceo@example.org\t",
	    "Alice@EXAMPLE.org",
	    "bob@example.net",
	    "c eo@example.org",
	    "x",
	    "   ",
	    "",
	    "@example.org",
	};
	const size_t p0 = 0, p1 = 1, pall[] = {0, 1, 2};
	struct route_table *rt = route_table_new(names, 3);
	const char *err = NULL;
	char longest[ACCOUNT_KEY_MAX + 1];

	(void)state;
	assert_non_null(rt);
	assert_int_equal(route_add_user(rt, "ceo@example.org", &p0, NULL, 1, &err), 0);
	assert_int_equal(route_add_domain(rt, "example.org", &p1, NULL, 1, &err), 0);
	assert_int_equal(route_set_default(rt, pall, NULL, 3, &err), 0);
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		char key[ACCOUNT_KEY_MAX + 1], norm[ACCOUNT_KEY_MAX + 1];
		size_t kl = account_key(users[i], strlen(users[i]), key, sizeof(key));
		size_t nl = account_key_normalize(users[i], strlen(users[i]), norm, sizeof(norm));
		/* before: normalised once by the backend, again by the lookup;
		 * nothing left meant no route */
		size_t want = nl == 0 ? SIZE_MAX : home(rt, norm, nl);

		if (home(rt, key, kl) != want)
			print_message("user \"%s\"\n", users[i]);
		assert_int_equal(home(rt, key, kl), want);
	}
	/* a blank name has a key (for the throttle) but no route, even with a
	 * default rule */
	assert_int_equal(home(rt, "   ", 3), SIZE_MAX);
	/* a key as long as ACCOUNT_KEY_MAX is longer than any rule's: no route,
	 * as when the lookup's own buffer refused it */
	memset(longest, 'a', ACCOUNT_KEY_MAX);
	assert_int_equal(home(rt, longest, ACCOUNT_KEY_MAX), SIZE_MAX);
	/* one byte shorter is a key a rule could have: the default takes it */
	assert_int_not_equal(home(rt, longest, ACCOUNT_KEY_MAX - 1), SIZE_MAX);
	route_table_free(&rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(normalise_lowers_ascii_trims_space_and_refuses_what_does_not_fit),
	    cmocka_unit_test(a_login_key_is_the_normalised_name_or_for_a_blank_name_its_raw_bytes),
	    cmocka_unit_test(routing_by_the_login_key_agrees_with_routing_by_the_normalised_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
