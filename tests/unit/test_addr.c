/* test_addr.c: socket addresses as text (lib/addr.c), the one formatter
 * behind client= in logs, policy keys' text and forwarded addresses. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "unit.h"

#include "addr.h"

static struct sockaddr_storage
v4(const char *ip, unsigned port)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage
v6(const char *ip, unsigned port)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	return ss;
}

static void
ipv4_is_address_colon_port(void **state)
{
	struct sockaddr_storage ss = v4("198.51.100.7", 50122);
	char out[ADDR_TEXT_MAX], ip[64];
	unsigned port;

	(void)state;
	assert_string_equal(addr_format((struct sockaddr *)&ss, out, sizeof(out)),
	                    "198.51.100.7:50122");
	addr_parts((struct sockaddr *)&ss, ip, sizeof(ip), &port);
	assert_string_equal(ip, "198.51.100.7");
	assert_int_equal(port, 50122);
}

static void
ipv6_is_bracketed(void **state)
{
	struct sockaddr_storage ss = v6("2001:db8::1", 993);
	char out[ADDR_TEXT_MAX];

	(void)state;
	assert_string_equal(addr_format((struct sockaddr *)&ss, out, sizeof(out)),
	                    "[2001:db8::1]:993");
}

static void
ipv4_mapped_ipv6_is_shown_as_the_ipv4_client_it_is(void **state)
{
	struct sockaddr_storage ss = v6("::ffff:192.0.2.33", 143);
	char out[ADDR_TEXT_MAX], ip[64];
	unsigned port;

	(void)state;
	/* The same text in logs and in what the backend is told (ID, XCLIENT). */
	assert_string_equal(addr_format((struct sockaddr *)&ss, out, sizeof(out)),
	                    "192.0.2.33:143");
	addr_parts((struct sockaddr *)&ss, ip, sizeof(ip), &port);
	assert_string_equal(ip, "192.0.2.33");
	assert_int_equal(port, 143);
}

static void
other_families_are_unknown(void **state)
{
	struct sockaddr_storage ss = {0};
	char out[ADDR_TEXT_MAX], ip[64];
	unsigned port = 7;

	(void)state;
	ss.ss_family = AF_UNIX;
	assert_string_equal(addr_format((struct sockaddr *)&ss, out, sizeof(out)), "unknown");
	addr_parts((struct sockaddr *)&ss, ip, sizeof(ip), &port);
	assert_string_equal(ip, "unknown");
	assert_int_equal(port, 0);
}

static void
a_short_output_is_cut_not_overrun(void **state)
{
	struct sockaddr_storage ss = v6("2001:db8:1:2:3:4:5:6", 65535);
	char out[8];

	(void)state;
	addr_format((struct sockaddr *)&ss, out, sizeof(out));
	assert_int_equal(strlen(out), sizeof(out) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ipv4_is_address_colon_port),
	    cmocka_unit_test(ipv6_is_bracketed),
	    cmocka_unit_test(ipv4_mapped_ipv6_is_shown_as_the_ipv4_client_it_is),
	    cmocka_unit_test(other_families_are_unknown),
	    cmocka_unit_test(a_short_output_is_cut_not_overrun),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
