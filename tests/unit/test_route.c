/*
 * test_route.c: rule precedence, lookups by account key, and the properties of
 * rendezvous hashing that operators rely on: stable homes, even spread,
 * minimal movement when a backend goes, weights that mean what they say.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

#include "account.h"
#include "route.h"

#define NUSERS 100000

static const char *const names10[] = {"mx0", "mx1", "mx2", "mx3", "mx4",
                                      "mx5", "mx6", "mx7", "mx8", "mx9"};

/* A table over names[0..n) with one default rule naming all of them. */
static struct route_table *
table_all(const char *const *names, size_t n, const uint32_t *weights)
{
	struct route_table *rt = route_table_new(names, n);
	size_t pool[ROUTE_POOL_MAX];
	const char *err = NULL;

	assert_non_null(rt);
	for (size_t i = 0; i < n; i++)
		pool[i] = i;
	assert_int_equal(route_set_default(rt, pool, weights, n, &err), 0);
	return rt;
}

/* As a login asks: the account key made once at its door, then the lookup. */
static size_t
lookup_s(const struct route_table *rt, const char *user, size_t *out, size_t max)
{
	char key[ACCOUNT_KEY_MAX + 1];
	size_t len = account_key(user, strlen(user), key, sizeof(key));

	return route_lookup(rt, key, len, out, max);
}

/* The home backend of user, or SIZE_MAX when no rule matches. */
static size_t
home(const struct route_table *rt, const char *user)
{
	size_t out[ROUTE_POOL_MAX];

	return lookup_s(rt, user, out, ROUTE_POOL_MAX) ? out[0] : SIZE_MAX;
}

static void
synth_user(char *buf, size_t len, size_t i)
{
	snprintf(buf, len, "user%zu@example%zu.org", i, i % 7);
}

/* mx0 for ceo@, mx1 for example.org, mx2 otherwise. */
static struct route_table *
table_rules(void)
{
	static const char *const names[] = {"mx0", "mx1", "mx2"};
	struct route_table *rt = route_table_new(names, 3);
	const size_t p0 = 0, p1 = 1, p2 = 2;
	const char *err = NULL;

	assert_non_null(rt);
	assert_int_equal(route_add_user(rt, "ceo@example.org", &p0, NULL, 1, &err), 0);
	assert_int_equal(route_add_domain(rt, "example.org", &p1, NULL, 1, &err), 0);
	assert_int_equal(route_set_default(rt, &p2, NULL, 1, &err), 0);
	return rt;
}

static void
an_exact_user_rule_beats_the_domain_and_the_default(void **state)
{
	struct route_table *rt = table_rules();

	(void)state;
	assert_int_equal(home(rt, "ceo@example.org"), 0);
	route_table_free(&rt);
	assert_null(rt);
}

static void
a_domain_rule_beats_the_default(void **state)
{
	struct route_table *rt = table_rules();

	(void)state;
	assert_int_equal(home(rt, "alice@example.org"), 1);
	/* only the part after the last '@' is the domain */
	assert_int_equal(home(rt, "\"a@b\"@example.org"), 1);
	/* a subdomain is another domain */
	assert_int_equal(home(rt, "alice@mail.example.org"), 2);
	route_table_free(&rt);
}

static void
users_matching_no_rule_get_the_default(void **state)
{
	struct route_table *rt = table_rules();

	(void)state;
	assert_int_equal(home(rt, "bob@example.net"), 2);
	assert_int_equal(home(rt, "bob"), 2);         /* no domain at all */
	assert_int_equal(home(rt, "bob@"), 2);        /* empty domain */
	assert_int_equal(home(rt, "example.org"), 2); /* a user, not a domain */
	route_table_free(&rt);
}

static void
without_a_default_an_unmatched_user_gets_no_backend(void **state)
{
	static const char *const names[] = {"mx0"};
	struct route_table *rt = route_table_new(names, 1);
	const size_t p0 = 0;
	const char *err = NULL;
	size_t out[4];

	(void)state;
	assert_non_null(rt);
	assert_int_equal(lookup_s(rt, "anyone@example.org", out, 4), 0);
	assert_int_equal(route_add_domain(rt, "example.org", &p0, NULL, 1, &err), 0);
	assert_int_equal(lookup_s(rt, "anyone@example.org", out, 4), 1);
	assert_int_equal(lookup_s(rt, "anyone@example.com", out, 4), 0);
	assert_int_equal(lookup_s(rt, "", out, 4), 0);
	assert_int_equal(lookup_s(rt, "   ", out, 4), 0);
	route_table_free(&rt);
	route_table_free(&rt); /* takes NULL */
}

static void
lookups_ignore_case_and_surrounding_space(void **state)
{
	static const struct {
		const char *user;
		size_t want;
	} rows[] = {
	    {"CEO@EXAMPLE.ORG", 0},        {"  Ceo@Example.Org\t", 0},
	    {"\r\nceo@example.org \n", 0}, {"Alice@EXAMPLE.org", 1},
	    {"alice@Example.Org  ", 1},    {"c eo@example.org", 1}, /* inner space stays */
	    {"ceo@example.org.", 2},
	};
	struct route_table *rt = table_rules();

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t got = home(rt, rows[i].user);

		if (got != rows[i].want)
			print_message("row %zu: \"%s\"\n", i, rows[i].user);
		assert_int_equal(got, rows[i].want);
	}
	route_table_free(&rt);
}

static void
bad_rules_are_refused_with_a_reason(void **state)
{
	enum kind { USER, DOMAIN, DEFAULT };
	static const size_t big[ROUTE_POOL_MAX + 1] = {0};
	static const struct {
		enum kind kind;
		const char *key;
		size_t pool[3];
		uint32_t weights[3]; /* all 0: pass NULL */
		size_t n;
		const char *err;
	} rows[] = {
	    {USER, "taken@example.org", {0}, {0}, 1, "a rule for this user already exists"},
	    {USER, " TAKEN@Example.org", {1}, {0}, 1, "a rule for this user already exists"},
	    {DOMAIN, "Example.ORG", {1}, {0}, 1, "a rule for this domain already exists"},
	    {DEFAULT, NULL, {0}, {0}, 1, "a default rule already exists"},
	    {USER, "new@example.org", {0}, {0}, 0, "empty pool"},
	    {USER, "new@example.org", {3}, {0}, 1, "backend index out of range"},
	    {USER, "new@example.org", {0, 1}, {1, 0}, 2, "a weight must be at least 1"},
	    {USER, "new@example.org", {0, 1, 0}, {0}, 3, "a backend appears twice in one pool"},
	    {USER, "", {0}, {0}, 1, "empty or over-long user name"},
	    {USER, "   ", {0}, {0}, 1, "empty or over-long user name"},
	    {DOMAIN, "", {0}, {0}, 1, "empty or over-long domain"},
	    {DOMAIN, "@example.net", {0}, {0}, 1, "a domain cannot contain '@'"},
	};
	static const char *const names[] = {"a", "b", "c"};
	struct route_table *rt = route_table_new(names, 3);
	const size_t p0 = 0;
	const char *err = NULL;
	char longkey[ROUTE_USER_MAX + 8];

	(void)state;
	assert_non_null(rt);
	assert_int_equal(route_add_user(rt, "taken@example.org", &p0, NULL, 1, &err), 0);
	assert_int_equal(route_add_domain(rt, "example.org", &p0, NULL, 1, &err), 0);
	assert_int_equal(route_set_default(rt, &p0, NULL, 1, &err), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const uint32_t *w = rows[i].weights[0] ? rows[i].weights : NULL;
		int rc;

		err = NULL;
		switch (rows[i].kind) {
		case USER:
			rc = route_add_user(rt, rows[i].key, rows[i].pool, w, rows[i].n, &err);
			break;
		case DOMAIN:
			rc = route_add_domain(rt, rows[i].key, rows[i].pool, w, rows[i].n, &err);
			break;
		default:
			rc = route_set_default(rt, rows[i].pool, w, rows[i].n, &err);
			break;
		}
		if (rc != -1 || err == NULL || strcmp(err, rows[i].err) != 0)
			print_message("row %zu: %s\n", i, rows[i].err);
		assert_int_equal(rc, -1);
		assert_string_equal(err, rows[i].err);
	}
	assert_int_equal(route_add_user(rt, "new@example.org", big, NULL, ROUTE_POOL_MAX + 1, &err),
	                 -1);
	assert_string_equal(err, "too many backends in one pool");
	memset(longkey, 'a', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_int_equal(route_add_user(rt, longkey, &p0, NULL, 1, &err), -1);
	assert_string_equal(err, "empty or over-long user name");
	/* the refusals left the table as it was */
	assert_int_equal(home(rt, "taken@example.org"), 0);
	assert_int_equal(home(rt, "new@example.org"), 0);
	route_table_free(&rt);
}

static void
a_user_lands_on_the_same_backend_on_every_call(void **state)
{
	struct route_table *rt = table_all(names10, 10, NULL);
	char u[64];

	(void)state;
	for (size_t i = 0; i < 1000; i++) {
		size_t first;

		synth_user(u, sizeof(u), i);
		first = home(rt, u);
		assert_true(first < 10);
		for (int k = 0; k < 3; k++)
			assert_int_equal(home(rt, u), first);
	}
	route_table_free(&rt);
}

static void
reordering_the_backends_moves_no_user(void **state)
{
	static const char *const rev[] = {"mx9", "mx8", "mx7", "mx6", "mx5",
	                                  "mx4", "mx3", "mx2", "mx1", "mx0"};
	struct route_table *a = table_all(names10, 10, NULL);
	struct route_table *b = table_all(rev, 10, NULL);
	char u[64];

	(void)state;
	for (size_t i = 0; i < NUSERS; i++) {
		size_t oa[10], ob[10];

		synth_user(u, sizeof(u), i);
		assert_int_equal(lookup_s(a, u, oa, 10), 10);
		assert_int_equal(lookup_s(b, u, ob, 10), 10);
		/* the whole failover order, by name, not just the home */
		for (size_t k = 0; k < 10; k++)
			assert_string_equal(names10[oa[k]], rev[ob[k]]);
	}
	route_table_free(&a);
	route_table_free(&b);
}

static void
ten_backends_each_get_about_a_tenth_of_the_users(void **state)
{
	struct route_table *rt = table_all(names10, 10, NULL);
	size_t count[10] = {0}, worst = 0;
	char u[64];

	(void)state;
	for (size_t i = 0; i < NUSERS; i++) {
		synth_user(u, sizeof(u), i);
		count[home(rt, u)]++;
	}
	for (size_t b = 0; b < 10; b++) {
		size_t dev =
		    count[b] > NUSERS / 10 ? count[b] - NUSERS / 10 : NUSERS / 10 - count[b];

		if (dev > worst)
			worst = dev;
		/* within 5% of the expected 10000 (the binomial sigma is 95) */
		assert_in_range(count[b], NUSERS / 10 * 95 / 100, NUSERS / 10 * 105 / 100);
	}
	print_message("spread over 10: worst deviation %zu of %d (%.2f%%)\n", worst, NUSERS / 10,
	              100.0 * (double)worst / (NUSERS / 10));
	route_table_free(&rt);
}

static void
removing_one_of_ten_backends_moves_only_its_users(void **state)
{
	static const char *const nine[] = {"mx0", "mx1", "mx2", "mx4", "mx5",
	                                   "mx6", "mx7", "mx8", "mx9"};
	struct route_table *a = table_all(names10, 10, NULL);
	struct route_table *b = table_all(nine, 9, NULL);
	size_t moved = 0, orphans = 0, landed[10] = {0};
	char u[64];

	(void)state;
	for (size_t i = 0; i < NUSERS; i++) {
		size_t oa[10];
		const char *after;

		synth_user(u, sizeof(u), i);
		assert_int_equal(lookup_s(a, u, oa, 10), 10);
		after = nine[home(b, u)];
		if (strcmp(names10[oa[0]], after) != 0)
			moved++;
		if (oa[0] == 3) {
			/* mx3's users go where their failover order said */
			orphans++;
			assert_string_equal(after, names10[oa[1]]);
			landed[oa[1]]++;
		} else {
			assert_string_equal(after, names10[oa[0]]);
		}
	}
	assert_int_equal(moved, orphans);
	/* and they spread over the nine that are left */
	for (size_t k = 0; k < 10; k++) {
		if (k == 3)
			continue;
		assert_in_range(landed[k], orphans / 9 * 85 / 100, orphans / 9 * 115 / 100);
	}
	print_message("remove 1 of 10: moved %zu of %d users (%.2f%%), all of them mx3's\n", moved,
	              NUSERS, 100.0 * (double)moved / NUSERS);
	route_table_free(&a);
	route_table_free(&b);
}

static void
adding_an_eleventh_backend_moves_users_only_onto_it(void **state)
{
	static const char *const eleven[] = {"mx0", "mx1", "mx2", "mx3", "mx4", "mx5",
	                                     "mx6", "mx7", "mx8", "mx9", "mx10"};
	struct route_table *a = table_all(names10, 10, NULL);
	struct route_table *b = table_all(eleven, 11, NULL);
	size_t moved = 0;
	char u[64];

	(void)state;
	for (size_t i = 0; i < NUSERS; i++) {
		size_t before, after;

		synth_user(u, sizeof(u), i);
		before = home(a, u);
		after = home(b, u);
		if (after == 10)
			moved++;
		else
			assert_int_equal(after, before);
	}
	assert_in_range(moved, NUSERS / 11 * 95 / 100, NUSERS / 11 * 105 / 100);
	print_message("add an 11th: moved %zu of %d users (%.2f%%, ideal 9.09%%)\n", moved, NUSERS,
	              100.0 * (double)moved / NUSERS);
	route_table_free(&a);
	route_table_free(&b);
}

static void
a_weight_two_backend_gets_about_twice_the_users(void **state)
{
	static const uint32_t w[10] = {1, 1, 1, 1, 2, 1, 1, 1, 1, 1};
	struct route_table *rt = table_all(names10, 10, w);
	size_t count[10] = {0}, others = 0;
	double ratio;
	char u[64];

	(void)state;
	for (size_t i = 0; i < NUSERS; i++) {
		synth_user(u, sizeof(u), i);
		count[home(rt, u)]++;
	}
	for (size_t b = 0; b < 10; b++) {
		if (b == 4)
			continue;
		others += count[b];
		/* each weight-1 backend expects 1/11 */
		assert_in_range(count[b], NUSERS / 11 * 93 / 100, NUSERS / 11 * 107 / 100);
	}
	ratio = (double)count[4] / ((double)others / 9);
	print_message("weight 2 of 10: %zu users, %.3fx the mean of the others\n", count[4], ratio);
	assert_true(ratio > 1.9 && ratio < 2.1);
	route_table_free(&rt);
}

static void
equal_weights_rank_exactly_like_no_weights(void **state)
{
	static const uint32_t w[10] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
	struct route_table *a = table_all(names10, 10, NULL);
	struct route_table *b = table_all(names10, 10, w);
	char u[64];

	(void)state;
	for (size_t i = 0; i < 10000; i++) {
		size_t oa[10], ob[10];

		synth_user(u, sizeof(u), i);
		assert_int_equal(lookup_s(a, u, oa, 10), 10);
		assert_int_equal(lookup_s(b, u, ob, 10), 10);
		assert_memory_equal(oa, ob, sizeof(oa));
	}
	route_table_free(&a);
	route_table_free(&b);
}

static void
the_failover_order_is_a_permutation_of_the_pool(void **state)
{
	static const uint32_t w[10] = {1, 3, 1, 1, 2, 1, 5, 1, 1, 1};
	struct route_table *rt[2] = {table_all(names10, 10, NULL), table_all(names10, 10, w)};
	char u[64];

	(void)state;
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < 10000; i++) {
			size_t out[ROUTE_POOL_MAX];
			bool seen[10] = {false};

			synth_user(u, sizeof(u), i);
			assert_int_equal(lookup_s(rt[t], u, out, ROUTE_POOL_MAX), 10);
			for (size_t k = 0; k < 10; k++) {
				assert_true(out[k] < 10);
				assert_false(seen[out[k]]);
				seen[out[k]] = true;
			}
		}
		route_table_free(&rt[t]);
	}
}

static void
all_six_failover_orders_of_three_backends_are_equally_likely(void **state)
{
	static const char *const names[] = {"mx1", "mx2", "mx3"};
	struct route_table *rt = table_all(names, 3, NULL);
	size_t perm[3][3][3] = {{{0}}};
	char u[64];

	(void)state;
	for (size_t i = 0; i < 60000; i++) {
		size_t out[3];

		synth_user(u, sizeof(u), i);
		assert_int_equal(lookup_s(rt, u, out, 3), 3);
		perm[out[0]][out[1]][out[2]]++;
	}
	size_t lo = SIZE_MAX, hi = 0;

	for (size_t a = 0; a < 3; a++) {
		for (size_t b = 0; b < 3; b++) {
			for (size_t c = 0; c < 3; c++) {
				if (a == b || b == c || a == c)
					continue;
				lo = perm[a][b][c] < lo ? perm[a][b][c] : lo;
				hi = perm[a][b][c] > hi ? perm[a][b][c] : hi;
			}
		}
	}
	print_message("orders of 3: each seen %zu..%zu times of 10000 expected\n", lo, hi);
	assert_in_range(lo, 9500, 10500);
	assert_in_range(hi, 9500, 10500);
	route_table_free(&rt);
}

static void
a_lookup_writes_at_most_max_backends(void **state)
{
	struct route_table *rt = table_all(names10, 10, NULL);
	size_t all[10], some[4] = {99, 99, 99, 99};

	(void)state;
	assert_int_equal(lookup_s(rt, "alice@example.org", all, 10), 10);
	assert_int_equal(lookup_s(rt, "alice@example.org", some, 3), 3);
	assert_memory_equal(some, all, 3 * sizeof(size_t));
	assert_int_equal(some[3], 99);
	assert_int_equal(lookup_s(rt, "alice@example.org", some, 0), 0);
	route_table_free(&rt);
}

static void
the_order_of_a_pool_in_the_config_does_not_matter(void **state)
{
	struct route_table *rt = route_table_new(names10, 10);
	const size_t p1[] = {1, 5, 7}, p2[] = {7, 1, 5};
	const char *err = NULL;
	char u[64];

	(void)state;
	assert_non_null(rt);
	assert_int_equal(route_add_domain(rt, "a.example", p1, NULL, 3, &err), 0);
	assert_int_equal(route_add_domain(rt, "b.example", p2, NULL, 3, &err), 0);
	for (size_t i = 0; i < 1000; i++) {
		size_t oa[3], ob[3];

		snprintf(u, sizeof(u), "u%zu@a.example", i);
		assert_int_equal(lookup_s(rt, u, oa, 3), 3);
		snprintf(u, sizeof(u), "u%zu@b.example", i);
		assert_int_equal(lookup_s(rt, u, ob, 3), 3);
		/* different domains, different users: only check membership */
		for (size_t k = 0; k < 3; k++) {
			assert_true(oa[k] == 1 || oa[k] == 5 || oa[k] == 7);
			assert_true(ob[k] == 1 || ob[k] == 5 || ob[k] == 7);
		}
	}
	route_table_free(&rt);
}

/*
 * Pinned values: a change to route_hash() silently moves users between
 * mailbox servers, and proxies of two versions in one fleet would disagree.
 */
static void
route_hash_is_pinned(void **state)
{
	static const struct {
		const char *user, *backend;
		uint64_t want;
	} rows[] = {
	    {"alice@example.org", "mx1", 0x058c5d0a2e409d70ULL},
	    {"alice@example.org", "mx2", 0x832df4a66a619a50ULL},
	    {"bob@example.org", "mx1", 0x7bcf2f8b87e974d2ULL},
	    {"", "", 0x25fc6dd36ce04b20ULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t h = route_hash(rows[i].user, strlen(rows[i].user), rows[i].backend,
		                        strlen(rows[i].backend));

		if (h != rows[i].want)
			print_message("row %zu: 0x%016llx\n", i, (unsigned long long)h);
		assert_int_equal(h, rows[i].want);
	}
	/* the separator keeps ("ab", "c") and ("a", "bc") apart */
	assert_int_not_equal(route_hash("ab", 2, "c", 1), route_hash("a", 1, "bc", 2));
}

static void
a_map_of_many_users_keeps_every_rule(void **state)
{
	enum { N = 200000 };
	struct route_table *rt = route_table_new(names10, 10);
	const size_t fallback = 9;
	const char *err = NULL;
	char u[64];

	(void)state;
	assert_non_null(rt);
	assert_int_equal(route_set_default(rt, &fallback, NULL, 1, &err), 0);
	for (size_t i = 0; i < N; i++) {
		size_t b = i % 9;

		snprintf(u, sizeof(u), "User%zu@Example.org", i);
		assert_int_equal(route_add_user(rt, u, &b, NULL, 1, &err), 0);
	}
	for (size_t i = 0; i < N; i++) {
		snprintf(u, sizeof(u), "user%zu@example.org", i);
		assert_int_equal(home(rt, u), i % 9);
	}
	for (size_t i = N; i < N + 1000; i++) {
		snprintf(u, sizeof(u), "user%zu@example.org", i);
		assert_int_equal(home(rt, u), fallback);
	}
	route_table_free(&rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(an_exact_user_rule_beats_the_domain_and_the_default),
	    cmocka_unit_test(a_domain_rule_beats_the_default),
	    cmocka_unit_test(users_matching_no_rule_get_the_default),
	    cmocka_unit_test(without_a_default_an_unmatched_user_gets_no_backend),
	    cmocka_unit_test(lookups_ignore_case_and_surrounding_space),
	    cmocka_unit_test(bad_rules_are_refused_with_a_reason),
	    cmocka_unit_test(a_user_lands_on_the_same_backend_on_every_call),
	    cmocka_unit_test(reordering_the_backends_moves_no_user),
	    cmocka_unit_test(ten_backends_each_get_about_a_tenth_of_the_users),
	    cmocka_unit_test(removing_one_of_ten_backends_moves_only_its_users),
	    cmocka_unit_test(adding_an_eleventh_backend_moves_users_only_onto_it),
	    cmocka_unit_test(a_weight_two_backend_gets_about_twice_the_users),
	    cmocka_unit_test(equal_weights_rank_exactly_like_no_weights),
	    cmocka_unit_test(the_failover_order_is_a_permutation_of_the_pool),
	    cmocka_unit_test(all_six_failover_orders_of_three_backends_are_equally_likely),
	    cmocka_unit_test(a_lookup_writes_at_most_max_backends),
	    cmocka_unit_test(the_order_of_a_pool_in_the_config_does_not_matter),
	    cmocka_unit_test(route_hash_is_pinned),
	    cmocka_unit_test(a_map_of_many_users_keeps_every_rule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
