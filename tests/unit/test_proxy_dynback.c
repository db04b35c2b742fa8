/*
 * test_proxy_dynback.c: backends named by address.  An address a
 * configured backend has for the protocol is that backend; any other is a
 * record of its own, found again for the same address (and TLS mode),
 * with lookup.backend_defaults' settings and a registry record named
 * "ADDRESS:PORT"; no more than lookup.max_backends; no name, no port 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "dynback.h"
#include "registry.h"

/* the certificate and key only need to be readable files here */
static const char conf_fmt[] =
    "listeners = ( { listen = \"127.0.0.1:9993\"; protocol = \"imap\"; tls = \"implicit\"; } );\n"
    "tls = { certificates = ( { cert = \"%s\"; key = \"%s\"; } ); };\n"
    "backends = ( { name = \"mx1\"; host = \"127.0.0.1\"; imap = 1143; pop3 = 1110; } );\n"
    "routes = ( { default = true; backend = \"mx1\"; } );\n"
    "lookup = { url = \"http://127.0.0.1:9/auth\"; max_backends = 2;\n"
    "  backend_defaults = { tls = \"starttls\"; forward = \"proxy-v2\"; }; };\n";

static char pem_path[64];

static struct config *
load(void)
{
	char conf[1024];
	struct config *cfg;

	snprintf(conf, sizeof(conf), conf_fmt, pem_path, pem_path);
	cfg = config_parse(conf, "t.conf", stderr);
	assert_non_null(cfg);
	return cfg;
}

static int
setup(void **state)
{
	int fd;

	(void)state;
	snprintf(pem_path, sizeof(pem_path), "/tmp/postern-dynback-XXXXXX");
	fd = mkstemp(pem_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(pem_path);
	return 0;
}

static void
an_address_a_configured_backend_has_is_that_backend(void **state)
{
	struct config *cfg = load();
	struct dynback_table *t = dynback_table_new(cfg);
	const struct dynback *d = NULL;
	size_t idx = 99;

	(void)state;
	assert_int_equal(dynback_resolve(t, cfg, PROTO_IMAP, "127.0.0.1", 1143, -1, &idx, &d),
	                 DYNBACK_CONFIGURED);
	assert_int_equal(idx, 0);
	assert_int_equal(dynback_resolve(t, cfg, PROTO_POP3, "127.0.0.1", 1110, -1, &idx, &d),
	                 DYNBACK_CONFIGURED);
	/* mx1's IMAP port is no POP3 backend: a record of its own */
	assert_int_equal(dynback_resolve(t, cfg, PROTO_POP3, "127.0.0.1", 1143, -1, &idx, &d),
	                 DYNBACK_DYNAMIC);
	assert_int_equal(dynback_count(t), 1);
	dynback_table_free(&t);
	config_unref(&cfg);
}

static void
other_addresses_are_records_of_their_own_up_to_max_backends(void **state)
{
	struct config *cfg = load();
	struct dynback_table *t = dynback_table_new(cfg);
	const struct dynback *d = NULL, *d2 = NULL, *d6 = NULL;
	size_t idx;

	(void)state;
	assert_int_equal(dynback_resolve(t, cfg, PROTO_IMAP, "10.0.0.5", 143, -1, &idx, &d),
	                 DYNBACK_DYNAMIC);
	assert_string_equal(d->name, "10.0.0.5:143");
	assert_string_equal(d->bc.name, "10.0.0.5:143");
	assert_string_equal(d->bc.host, "10.0.0.5");
	assert_int_equal(d->bc.port[PROTO_IMAP], 143);
	assert_int_equal(d->bc.port[PROTO_POP3], 0);
	assert_int_equal(d->bc.tls, TLSM_STARTTLS); /* backend_defaults */
	assert_int_equal(d->bc.forward, FORWARD_PROXY_V2);
	assert_int_equal(d->bc.check_interval_ms, 0);
	assert_non_null(d->reg);
	assert_ptr_equal(registry_find("10.0.0.5:143"), d->reg);
	/* the same address again: the same record */
	assert_int_equal(dynback_resolve(t, cfg, PROTO_IMAP, "10.0.0.5", 143, -1, &idx, &d2),
	                 DYNBACK_DYNAMIC);
	assert_ptr_equal(d, d2);
	assert_ptr_equal(dynback_at(t, 0), d);
	/* IPv6, and a TLS mode the answer asks for */
	assert_int_equal(
	    dynback_resolve(t, cfg, PROTO_IMAP, "2001:db8::5", 993, TLSM_IMPLICIT, &idx, &d6),
	    DYNBACK_DYNAMIC);
	assert_string_equal(d6->name, "[2001:db8::5]:993");
	assert_int_equal(d6->bc.tls, TLSM_IMPLICIT);
	/* max_backends = 2: full */
	assert_int_equal(dynback_resolve(t, cfg, PROTO_IMAP, "10.0.0.6", 143, -1, &idx, &d2),
	                 DYNBACK_FULL);
	assert_int_equal(dynback_count(t), 2);
	assert_null(dynback_at(t, 2));
	dynback_table_free(&t);
	config_unref(&cfg);
}

static void
names_and_port_zero_are_no_address(void **state)
{
	struct config *cfg = load();
	struct dynback_table *t = dynback_table_new(cfg);
	const struct dynback *d = NULL;
	size_t idx;
	static const char *const bad[] = {"mail.example.org", "", "10.0.0", "[::1]", "1.2.3.4 "};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dynback_resolve(t, cfg, PROTO_IMAP, bad[i], 143, -1, &idx, &d),
		                 DYNBACK_BAD);
	assert_int_equal(dynback_resolve(t, cfg, PROTO_IMAP, "10.0.0.5", 0, -1, &idx, &d),
	                 DYNBACK_BAD);
	assert_int_equal(dynback_count(t), 0);
	dynback_table_free(&t);
	config_unref(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(an_address_a_configured_backend_has_is_that_backend),
	    cmocka_unit_test(other_addresses_are_records_of_their_own_up_to_max_backends),
	    cmocka_unit_test(names_and_port_zero_are_no_address),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
