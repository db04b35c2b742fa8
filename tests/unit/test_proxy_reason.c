/*
 * test_proxy_reason.c: the words postern's logs speak are closed sets.
 * Every value of every name table in proxy/ and policy/ has a distinct,
 * non-empty name (a designated initializer with a hole would leave NULL),
 * the verdict -> fail class table says what the logins and the accept
 * path always did, and README lists every log reason and mechanism.
 */
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

#include "conn.h"
#include "policy.h"
#include "policy_reason.h"
#include "reason.h"
#include "store.h"

typedef const char *(*name_fn)(int v);

static const char *
close_name(int v)
{
	return close_reason_name((enum close_reason)v);
}

static const char *
login_name(int v)
{
	return login_reason_name((enum login_reason)v);
}

static const char *
mech_name(int v)
{
	return login_mech_name((enum login_mech)v);
}

static const char *
state_name(int v)
{
	return conn_state_name((enum conn_state)v);
}

static const char *
policy_name(int v)
{
	return policy_reason_name((enum policy_reason)v);
}

static const char *
verdict_name(int v)
{
	return policy_verdict_name[v];
}

static const char *
claim_name(int v)
{
	return store_claim_outcome_name[v];
}

static void
assert_distinct_names(name_fn name, int count)
{
	for (int i = 0; i < count; i++) {
		const char *a = name(i);
		assert_non_null(a);
		assert_true(a[0] != '\0');
		for (int j = 0; j < i; j++)
			assert_string_not_equal(a, name(j));
	}
}

static void
every_close_reason_has_a_distinct_name(void **state)
{
	(void)state;
	assert_distinct_names(close_name, CLOSE__COUNT);
	assert_string_equal(close_reason_name(CLOSE__COUNT), "unknown");
}

static void
every_login_reason_has_a_distinct_name(void **state)
{
	(void)state;
	assert_distinct_names(login_name, LR__COUNT);
	assert_string_equal(login_reason_name(LR_NONE), "-");
	assert_string_equal(login_reason_name(LR__COUNT), "unknown");
}

static void
every_login_mechanism_has_a_distinct_name(void **state)
{
	(void)state;
	assert_distinct_names(mech_name, LM__COUNT);
	assert_string_equal(login_mech_name(LM_SASL_LOGIN), "sasl-login");
	assert_string_equal(login_mech_name(LM__COUNT), "unknown");
}

static void
every_conn_state_has_a_distinct_name(void **state)
{
	(void)state;
	assert_distinct_names(state_name, CS__COUNT);
}

static void
every_policy_reason_verdict_and_claim_has_a_distinct_name(void **state)
{
	(void)state;
	assert_distinct_names(policy_name, PR__COUNT);
	assert_string_equal(policy_reason_name(PR__COUNT), "?");
	assert_distinct_names(verdict_name, POLICY__COUNT);
	assert_distinct_names(claim_name, STORE_CLAIM__COUNT);
}

static void
every_fail_class_has_a_reply_in_both_protocols(void **state)
{
	(void)state;
	for (int i = 0; i < FAIL__COUNT; i++) {
		const struct fail_reply *r = fail_reply((enum fail_class)i);
		assert_non_null(r->imap);
		assert_non_null(r->pop3);
		assert_non_null(r->log);
		assert_true(r->log[0] != '\0');
		/* Only FAIL_NONE is silent. */
		assert_int_equal(r->imap[0] == '\0', i == FAIL_NONE);
		assert_int_equal(r->pop3[0] == '\0', i == FAIL_NONE);
	}
}

static void
a_verdict_maps_to_the_class_each_path_always_used(void **state)
{
	static const struct {
		enum policy_verdict v;
		bool at_login;
		enum fail_class fc;
	} rows[] = {
	    {POLICY_ALLOW, false, FAIL_NONE},
	    {POLICY_ALLOW, true, FAIL_NONE},
	    /* policy_accept(): an ACL or the connection limit */
	    {POLICY_DENY_ACL, false, FAIL_ACL},
	    {POLICY_DENY_LIMIT, false, FAIL_CONN_LIMIT},
	    /* policy_login_check() and the post-login question */
	    {POLICY_DENY_THROTTLE, true, FAIL_THROTTLE},
	    {POLICY_DENY_PROTOCOL, true, FAIL_POLICY},
	    {POLICY_DENY_LIMIT, true, FAIL_LIMIT},
	    {POLICY_DENY_INTERNAL, true, FAIL_INTERNAL},
	    {POLICY__COUNT, true, FAIL_INTERNAL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(fail_class_of_verdict(rows[i].v, rows[i].at_login), rows[i].fc);
}

/* README.md of the source tree. */
static char *
readme(void)
{
	return unit_read_file(SRCDIR "/README.md");
}

static void
assert_readme_lists(const char *text, name_fn name, int from, int count)
{
	for (int i = from; i < count; i++) {
		char quoted[128];

		snprintf(quoted, sizeof(quoted), "`%s`", name(i));
		if (strstr(text, quoted) == NULL)
			fail_msg("README.md does not list %s", quoted);
	}
}

static void
readme_lists_every_log_reason_and_mechanism(void **state)
{
	char *text = readme();

	(void)state;
	assert_readme_lists(text, close_name, 0, CLOSE__COUNT);
	assert_readme_lists(text, login_name, LR_NONE + 1, LR__COUNT);
	assert_readme_lists(text, mech_name, LM_NONE + 1, LM__COUNT);
	assert_readme_lists(text, policy_name, 0, PR__COUNT);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_close_reason_has_a_distinct_name),
	    cmocka_unit_test(every_login_reason_has_a_distinct_name),
	    cmocka_unit_test(every_login_mechanism_has_a_distinct_name),
	    cmocka_unit_test(every_conn_state_has_a_distinct_name),
	    cmocka_unit_test(every_policy_reason_verdict_and_claim_has_a_distinct_name),
	    cmocka_unit_test(every_fail_class_has_a_reply_in_both_protocols),
	    cmocka_unit_test(a_verdict_maps_to_the_class_each_path_always_used),
	    cmocka_unit_test(readme_lists_every_log_reason_and_mechanism),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
