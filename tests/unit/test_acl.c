/*
 * test_acl.c: networks and client addresses.  CIDR text parses as written
 * or is refused with a reason; matching holds at the edges of each prefix,
 * for IPv4, IPv6 and IPv4-mapped IPv6 clients; deny wins over allow.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include "unit.h"

#include "acl.h"
#include "config.h"

static struct cidr_conf
net(const char *s)
{
	struct cidr_conf n;
	const char *err = NULL;

	if (config_parse_cidr(s, &n, &err) != 0)
		fail_msg("\"%s\": %s", s, err);
	return n;
}

static struct acl_addr
addr(const char *s)
{
	struct sockaddr_storage ss;
	struct acl_addr a;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		len = sizeof(struct sockaddr_in);
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)&ss)->sin6_addr),
		                 1);
		ss.ss_family = AF_INET6;
		len = sizeof(struct sockaddr_in6);
	}
	assert_int_equal(acl_addr_from_sockaddr((struct sockaddr *)&ss, len, &a), 0);
	return a;
}

static void
networks_parse_as_written_or_are_refused_with_a_reason(void **state)
{
	static const struct {
		const char *in;
		int family; /* 0: refused with err */
		unsigned prefix;
		const char *err;
	} rows[] = {
	    {"192.0.2.0/24", AF_INET, 24, NULL},
	    {"192.0.2.7", AF_INET, 32, NULL},
	    {"192.0.2.7/32", AF_INET, 32, NULL},
	    {"0.0.0.0/0", AF_INET, 0, NULL},
	    {"10.0.0.0/8", AF_INET, 8, NULL},
	    {"2001:db8::/32", AF_INET6, 32, NULL},
	    {"::/0", AF_INET6, 0, NULL},
	    {"::1", AF_INET6, 128, NULL},
	    {"2001:db8::1/128", AF_INET6, 128, NULL},
	    {"::ffff:192.0.2.0/120", AF_INET6, 120, NULL},
	    {"", 0, 0, "empty network"},
	    {"/24", 0, 0, "expected an address or address/prefix"},
	    {"192.0.2.0/", 0, 0, "the prefix length must be a number"},
	    {"192.0.2.0/x", 0, 0, "the prefix length must be a number"},
	    {"192.0.2.0/24x", 0, 0, "the prefix length must be a number"},
	    {"192.0.2.0/-1", 0, 0, "the prefix length must be a number"},
	    {"192.0.2.0/33", 0, 0, "an IPv4 prefix is at most 32"},
	    {"192.0.2.0/99999999999999999999", 0, 0, "an IPv4 prefix is at most 32"},
	    {"2001:db8::/129", 0, 0, "an IPv6 prefix is at most 128"},
	    {"192.0.2.7/24", 0, 0, "host bits are set beyond the prefix length"},
	    {"10.0.0.1/8", 0, 0, "host bits are set beyond the prefix length"},
	    {"2001:db8::1/64", 0, 0, "host bits are set beyond the prefix length"},
	    {"0.0.0.1/0", 0, 0, "host bits are set beyond the prefix length"},
	    {"10.1/16", 0, 0, "not a numeric IPv4 or IPv6 address"},
	    {"example.org/24", 0, 0, "not a numeric IPv4 or IPv6 address"},
	    {" 192.0.2.0/24", 0, 0, "not a numeric IPv4 or IPv6 address"},
	    {"fe80::1%eth0", 0, 0, "not a numeric IPv4 or IPv6 address"},
	    {"256.0.0.0/8", 0, 0, "not a numeric IPv4 or IPv6 address"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct cidr_conf n;
		const char *err = NULL;
		int rc = config_parse_cidr(rows[i].in, &n, &err);

		if (rc != (rows[i].family ? 0 : -1))
			print_message("row %zu: \"%s\" -> %d %s\n", i, rows[i].in, rc,
			              err ? err : "");
		if (rows[i].family == 0) {
			assert_int_equal(rc, -1);
			assert_string_equal(err, rows[i].err);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(n.family, rows[i].family);
		assert_int_equal(n.prefix, rows[i].prefix);
	}
	assert_int_equal(config_parse_cidr(NULL, &(struct cidr_conf){0}, &(const char *){0}), -1);
}

static void
matching_holds_at_the_edges_of_each_prefix(void **state)
{
	static const struct {
		const char *net, *addr;
		bool in;
	} rows[] = {
	    {"192.0.2.0/24", "192.0.2.0", true},
	    {"192.0.2.0/24", "192.0.2.255", true},
	    {"192.0.2.0/24", "192.0.1.255", false},
	    {"192.0.2.0/24", "192.0.3.0", false},
	    {"192.0.2.128/25", "192.0.2.127", false},
	    {"192.0.2.128/25", "192.0.2.128", true},
	    {"192.0.2.128/25", "192.0.2.255", true},
	    {"10.0.0.0/7", "11.255.255.255", true},
	    {"10.0.0.0/7", "12.0.0.0", false},
	    {"10.0.0.0/7", "9.255.255.255", false},
	    {"192.0.2.7", "192.0.2.7", true},
	    {"192.0.2.7", "192.0.2.6", false},
	    {"192.0.2.7", "192.0.2.8", false},
	    {"0.0.0.0/0", "255.255.255.255", true},
	    {"0.0.0.0/0", "0.0.0.0", true},
	    {"0.0.0.0/0", "::1", false}, /* families never mix */
	    {"::/0", "192.0.2.1", false},
	    {"::/0", "2001:db8::1", true},
	    {"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
	    {"2001:db8::/32", "2001:db9::", false},
	    {"2001:db8::/32", "2001:db7:ffff::", false},
	    {"2001:db8:0:0:8000::/65", "2001:db8::7fff:ffff:ffff:ffff", false},
	    {"2001:db8:0:0:8000::/65", "2001:db8::8000:0:0:0", true},
	    {"2001:db8::1", "2001:db8::1", true},
	    {"2001:db8::1", "2001:db8::2", false},
	    {"::1", "::1", true},
	    /* an IPv4 client on a dual-stack socket is an IPv4 client */
	    {"192.0.2.0/24", "::ffff:192.0.2.9", true},
	    {"::ffff:192.0.2.0/120", "::ffff:192.0.2.9", false},
	    {"192.0.2.0/24", "::192.0.2.9", false}, /* IPv4-compatible is not mapped */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct cidr_conf n = net(rows[i].net);
		struct acl_addr a = addr(rows[i].addr);

		if (acl_match(&n, &a) != rows[i].in)
			print_message("row %zu: %s in %s?\n", i, rows[i].addr, rows[i].net);
		assert_int_equal(acl_match(&n, &a), rows[i].in);
	}
}

static void
deny_wins_and_an_empty_allow_list_admits_everybody(void **state)
{
	struct cidr_conf allow[] = {net("10.0.0.0/8"), net("2001:db8::/32")};
	struct cidr_conf deny[] = {net("10.6.0.0/16"), net("192.0.2.66")};
	struct acl_addr a;

	(void)state;
	a = addr("10.1.2.3");
	assert_true(acl_allowed(allow, 2, deny, 2, &a));
	a = addr("10.6.2.3");
	assert_false(acl_allowed(allow, 2, deny, 2, &a));
	a = addr("2001:db8::5");
	assert_true(acl_allowed(allow, 2, deny, 2, &a));
	a = addr("192.0.2.1");
	assert_false(acl_allowed(allow, 2, deny, 2, &a)); /* not in allow */
	assert_true(acl_allowed(NULL, 0, deny, 2, &a));   /* no allow list: everybody */
	a = addr("192.0.2.66");
	assert_false(acl_allowed(NULL, 0, deny, 2, &a));
	assert_true(acl_allowed(NULL, 0, NULL, 0, &a));
	assert_ptr_equal(acl_find(allow, 2, &(struct acl_addr){0}), NULL);
}

static void
addresses_other_than_ip_are_not_taken(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr sa = {.sa_family = AF_UNIX};
	struct acl_addr a;

	(void)state;
	assert_int_equal(acl_addr_from_sockaddr(&sa, sizeof(sa), &a), -1);
	assert_int_equal(acl_addr_from_sockaddr(NULL, 0, &a), -1);
	/* a short length is refused, not read past */
	assert_int_equal(acl_addr_from_sockaddr((struct sockaddr *)&sin, 4, &a), -1);
	assert_int_equal(acl_addr_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &a), 0);
	assert_int_equal(a.family, 4);
}

static void
ipv6_clients_are_keyed_by_their_prefix_and_ipv4_whole(void **state)
{
	struct acl_addr a = addr("2001:db8:1:2:3:4:5:6"), k;
	char buf[ACL_ADDR_STRLEN];

	(void)state;
	k = acl_addr_prefix(&a, 64);
	assert_string_equal(acl_addr_str(&k, buf, sizeof(buf)), "2001:db8:1:2::");
	k = acl_addr_prefix(&a, 56);
	assert_string_equal(acl_addr_str(&k, buf, sizeof(buf)), "2001:db8:1::");
	k = acl_addr_prefix(&a, 60);
	assert_string_equal(acl_addr_str(&k, buf, sizeof(buf)), "2001:db8:1::");
	k = acl_addr_prefix(&a, 63);
	assert_string_equal(acl_addr_str(&k, buf, sizeof(buf)), "2001:db8:1:2::");
	k = acl_addr_prefix(&a, 128);
	assert_memory_equal(&k, &a, sizeof(a));
	a = addr("192.0.2.77");
	k = acl_addr_prefix(&a, 64);
	assert_string_equal(acl_addr_str(&k, buf, sizeof(buf)), "192.0.2.77");
	a = addr("::ffff:192.0.2.77");
	assert_string_equal(acl_addr_str(&a, buf, sizeof(buf)), "192.0.2.77");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(networks_parse_as_written_or_are_refused_with_a_reason),
	    cmocka_unit_test(matching_holds_at_the_edges_of_each_prefix),
	    cmocka_unit_test(deny_wins_and_an_empty_allow_list_admits_everybody),
	    cmocka_unit_test(addresses_other_than_ip_are_not_taken),
	    cmocka_unit_test(ipv6_clients_are_keyed_by_their_prefix_and_ipv4_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
