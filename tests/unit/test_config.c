/*
 * test_config.c: the config loader.  A good file becomes the expected
 * struct; each kind of mistake gives its "file:line: message", all of them
 * at once; durations and listen addresses parse as documented; and the
 * sample etc/postern.conf stays true to the code.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/tls1.h>

#include "unit.h"

#include "account.h"
#include "config.h"
#include "state_url.h"
#include "route.h"

static char cert_path[64], key_path[64]; /* readable temp files, made once */

static int
make_temp(char *path, size_t len)
{
	int fd;

	snprintf(path, len, "/tmp/postern-test-XXXXXX");
	if ((fd = mkstemp(path)) < 0)
		return -1;
	if (write(fd, "not parsed here\n", 16) != 16) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int
group_setup(void **state)
{
	(void)state;
	return make_temp(cert_path, sizeof(cert_path)) < 0 ||
	               make_temp(key_path, sizeof(key_path)) < 0
	           ? -1
	           : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	unlink(cert_path);
	unlink(key_path);
	return 0;
}

/* s with every from replaced by to; the caller frees. */
static char *
replace_all(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = s; (p = strstr(p, from)) != NULL; p += fl)
		n++;
	out = malloc(strlen(s) + n * tl + 1);
	assert_non_null(out);
	for (o = out; (p = strstr(s, from)) != NULL; s = p + fl) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, to, tl);
		o += tl;
	}
	strcpy(o, s);
	return out;
}

/* Parse tmpl as "t.conf" with @CERT@ and @KEY@ filled in; *errs_out gets
 * what was printed (the caller frees). */
static struct config *
parse(const char *tmpl, char **errs_out)
{
	char *a = replace_all(tmpl, "@CERT@", cert_path);
	char *text = replace_all(a, "@KEY@", key_path);
	size_t len = 0;
	FILE *f = open_memstream(errs_out, &len);
	struct config *cfg;

	assert_non_null(f);
	cfg = config_parse(text, "t.conf", f);
	fclose(f);
	free(a);
	free(text);
	return cfg;
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Four lines that make a valid file: tls, listeners, backends, routes. */
#define TLS_OK "tls = { certificates = ( { cert = \"@CERT@\"; key = \"@KEY@\"; } ); };\n"
#define LST_OK "listeners = ( { listen = \"127.0.0.1:9993\"; protocol = \"imap\"; } );\n"
#define BE_OK  "backends = ( { name = \"mx1\"; host = \"127.0.0.1\"; imap = 143; pop3 = 110; } );\n"
#define RT_OK  "routes = ( { default = true; backend = \"mx1\"; } );\n"
#define BASE   TLS_OK LST_OK BE_OK RT_OK
/* a line 3 with one backend entry; "%s" goes inside it */
#define BE(x)  "backends = ( { name = \"mx1\"; host = \"127.0.0.1\"; " x " } );\n"
#define LST(x) "listeners = ( { " x " } );\n"
#define RT(x)  "routes = ( { " x " } );\n"
#define TLS(x) "tls = { certificates = ( { cert = \"@CERT@\"; key = \"@KEY@\"; } ); " x " };\n"

static const char full_conf[] =
    "workers = 4;\n"
    "user = \"root\";\n"
    "state = \"lmdb:/var/lib/postern\";\n"
    "log_level = \"debug\";\n"
    "tls = {\n"
    "  certificates = ( { cert = \"@CERT@\"; key = \"@KEY@\"; },\n"
    "                   { cert = \"@KEY@\"; key = \"@CERT@\"; } );\n"
    "  min_version = \"TLSv1.3\";\n"
    "  ciphers = \"ECDHE-RSA-AES128-GCM-SHA256\";\n"
    "  ciphersuites = \"TLS_AES_128_GCM_SHA256\";\n"
    "  groups = \"X25519\";\n"
    "};\n"
    "listeners = (\n"
    "  { listen = \"127.0.0.1:9993\"; protocol = \"imap\"; },\n"
    "  { listen = \"[::1]:9995\"; protocol = \"pop3\"; tls = \"implicit\"; name = \"pop3s-v6\"; "
    "},\n"
    "  { listen = \"9143\"; protocol = \"imap\"; tls = \"starttls\";\n"
    "    allow_plaintext_auth = true; }\n"
    ");\n"
    "backends = (\n"
    "  { name = \"mx1\"; host = \"127.0.0.1\"; imap = 143; pop3 = 110; },\n"
    "  { name = \"mx2\"; host = \"::1\"; imap = 1143; tls = \"none\"; }\n"
    ");\n"
    "routes = (\n"
    "  { user = \"CEO@example.org\"; backend = \"mx2\"; },\n"
    "  { domain = \"example.org\"; pool = [ \"mx1\", \"mx2\" ]; },\n"
    "  { default = true; pool = [ \"mx1\" ]; }\n"
    ");\n"
    "timeouts = { handshake = \"5s\"; login = \"2m\"; idle = \"1h\";\n"
    "             backend_connect = \"3s\"; backend_login = 20; };\n"
    "limits = { max_bad_commands = 5; max_auth_failures = 2; };\n"
    "policy = { protocol_lock = \"sticky\"; lock_expire = \"30d\";\n"
    "  protocols = ( { domain = \"example.org\"; allow = [ \"imap\" ]; },\n"
    "                { user = \"x@y\"; allow = ( \"pop3\", \"imap\" ); } );\n"
    "  protocols_file = \"@CERT@\"; protocols_default = [ \"pop3\" ];\n"
    "  max_connections_per_ip = 20; max_sessions_per_user = 10;\n"
    "  allow = [ \"10.0.0.0/8\", \"2001:db8::/32\" ]; deny = ( \"10.6.0.0/16\" );\n"
    "  ipv6_prefix = 56;\n"
    "  throttle = { ip_user_limit = 3; ip_limit = 30; window = \"10m\";\n"
    "               delay_base = \"500ms\"; delay_max = 10; };\n"
    "};\n";

static const char *
ntop(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *a = ss->ss_family == AF_INET
	                    ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
	                    : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	return inet_ntop(ss->ss_family, a, buf, (socklen_t)len);
}

static unsigned
port_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
	                                : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* The home of user, looked up as a login does: by its account key. */
static size_t
home(const struct config *cfg, const char *user)
{
	char key[ACCOUNT_KEY_MAX + 1];
	size_t len = account_key(user, strlen(user), key, sizeof(key)), out[ROUTE_POOL_MAX];

	return route_lookup(cfg->routes, key, len, out, ROUTE_POOL_MAX) ? out[0] : SIZE_MAX;
}

static void
a_full_config_parses_to_the_expected_struct(void **state)
{
	char *errs = NULL, buf[64];
	struct config *cfg = parse(full_conf, &errs);

	(void)state;
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	assert_int_equal(atomic_load(&cfg->refs), 1);
	assert_string_equal(cfg->path, "t.conf");
	assert_int_equal(cfg->workers, 4);
	assert_string_equal(cfg->user, "root");
	assert_string_equal(cfg->state, "lmdb:/var/lib/postern");
	assert_int_equal(cfg->log_level, LOG_DEBUG);

	assert_int_equal(cfg->tls.ncerts, 2);
	assert_string_equal(cfg->tls.certs[0].cert, cert_path);
	assert_string_equal(cfg->tls.certs[0].key, key_path);
	assert_string_equal(cfg->tls.certs[1].cert, key_path);
	assert_int_equal(cfg->tls.min_version, TLS1_3_VERSION);
	assert_string_equal(cfg->tls.ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
	assert_string_equal(cfg->tls.ciphersuites, "TLS_AES_128_GCM_SHA256");
	assert_string_equal(cfg->tls.groups, "X25519");

	assert_int_equal(cfg->nlisteners, 3);
	assert_string_equal(cfg->listeners[0].listen, "127.0.0.1:9993");
	assert_int_equal(cfg->listeners[0].addr.ss_family, AF_INET);
	assert_int_equal(cfg->listeners[0].addrlen, sizeof(struct sockaddr_in));
	assert_string_equal(ntop(&cfg->listeners[0].addr, buf, sizeof(buf)), "127.0.0.1");
	assert_int_equal(port_of(&cfg->listeners[0].addr), 9993);
	assert_int_equal(cfg->listeners[0].proto, PROTO_IMAP);
	assert_int_equal(cfg->listeners[0].tls, TLSM_IMPLICIT);
	assert_string_equal(cfg->listeners[0].name, "9993");
	assert_int_equal(cfg->listeners[1].addr.ss_family, AF_INET6);
	assert_int_equal(cfg->listeners[1].addrlen, sizeof(struct sockaddr_in6));
	assert_string_equal(ntop(&cfg->listeners[1].addr, buf, sizeof(buf)), "::1");
	assert_int_equal(cfg->listeners[1].proto, PROTO_POP3);
	assert_string_equal(cfg->listeners[1].name, "pop3s-v6");
	assert_string_equal(ntop(&cfg->listeners[2].addr, buf, sizeof(buf)), "0.0.0.0");
	assert_int_equal(port_of(&cfg->listeners[2].addr), 9143);
	assert_int_equal(cfg->listeners[2].tls, TLSM_STARTTLS);
	assert_true(cfg->listeners[2].allow_plaintext_auth);
	assert_false(cfg->listeners[0].allow_plaintext_auth);

	assert_int_equal(cfg->nbackends, 2);
	assert_string_equal(cfg->backends[0].name, "mx1");
	assert_string_equal(cfg->backends[0].host, "127.0.0.1");
	assert_int_equal(cfg->backends[0].port[PROTO_IMAP], 143);
	assert_int_equal(cfg->backends[0].port[PROTO_POP3], 110);
	assert_int_equal(port_of(&cfg->backends[0].addr[PROTO_IMAP]), 143);
	assert_int_equal(port_of(&cfg->backends[0].addr[PROTO_POP3]), 110);
	assert_string_equal(ntop(&cfg->backends[0].addr[PROTO_POP3], buf, sizeof(buf)),
	                    "127.0.0.1");
	assert_int_equal(cfg->backends[0].addrlen[PROTO_IMAP], sizeof(struct sockaddr_in));
	assert_int_equal(cfg->backends[0].tls, TLSM_NONE);
	assert_null(cfg->backends[0].ca);
	assert_int_equal(cfg->backends[1].port[PROTO_POP3], 0);
	assert_int_equal(cfg->backends[1].addrlen[PROTO_POP3], 0);
	assert_string_equal(ntop(&cfg->backends[1].addr[PROTO_IMAP], buf, sizeof(buf)), "::1");
	assert_int_equal(port_of(&cfg->backends[1].addr[PROTO_IMAP]), 1143);

	assert_non_null(cfg->routes);
	assert_int_equal(home(cfg, "ceo@EXAMPLE.org"), 1);
	assert_int_equal(home(cfg, "nobody@example.net"), 0);
	assert_true(home(cfg, "alice@example.org") <= 1);

	assert_int_equal(cfg->timeouts.handshake_ms, 5000);
	assert_int_equal(cfg->timeouts.login_ms, 120000);
	assert_int_equal(cfg->timeouts.idle_ms, 3600000);
	assert_int_equal(cfg->timeouts.backend_connect_ms, 3000);
	assert_int_equal(cfg->timeouts.backend_login_ms, 20000); /* a bare number is seconds */
	assert_int_equal(cfg->limits.max_bad_commands, 5);
	assert_int_equal(cfg->limits.max_auth_failures, 2);

	assert_int_equal(cfg->policy.protocol_lock, PLOCK_STICKY);
	assert_int_equal(cfg->policy.lock_expire_ms, 30ULL * 86400 * 1000);
	assert_int_equal(cfg->policy.nprotocols, 2);
	assert_string_equal(cfg->policy.protocols[0].domain, "example.org");
	assert_null(cfg->policy.protocols[0].user);
	assert_int_equal(cfg->policy.protocols[0].allow, PROTO_MASK(PROTO_IMAP));
	assert_string_equal(cfg->policy.protocols[1].user, "x@y");
	assert_int_equal(cfg->policy.protocols[1].allow, PROTO_MASK_ALL);
	assert_string_equal(cfg->policy.protocols_file, cert_path);
	assert_int_equal(cfg->policy.protocols_default, PROTO_MASK(PROTO_POP3));
	assert_int_equal(cfg->policy.max_connections_per_ip, 20);
	assert_int_equal(cfg->policy.max_sessions_per_user, 10);
	assert_int_equal(cfg->policy.nallow, 2);
	assert_int_equal(cfg->policy.allow[0].family, AF_INET);
	assert_int_equal(cfg->policy.allow[0].prefix, 8);
	assert_int_equal(cfg->policy.allow[0].addr[0], 10);
	assert_int_equal(cfg->policy.allow[1].family, AF_INET6);
	assert_int_equal(cfg->policy.allow[1].prefix, 32);
	assert_int_equal(cfg->policy.ndeny, 1);
	assert_int_equal(cfg->policy.deny[0].prefix, 16);
	assert_int_equal(cfg->policy.deny[0].addr[1], 6);
	assert_int_equal(cfg->policy.ipv6_prefix, 56);
	assert_int_equal(cfg->policy.throttle.ip_user_limit, 3);
	assert_int_equal(cfg->policy.throttle.ip_limit, 30);
	assert_int_equal(cfg->policy.throttle.window_ms, 600000);
	assert_int_equal(cfg->policy.throttle.delay_base_ms, 500);
	assert_int_equal(cfg->policy.throttle.delay_max_ms, 10000); /* a bare number is seconds */

	config_unref(&cfg);
	assert_null(cfg);
	free(errs);
}

static void
redis_state_urls_name_a_host_port_and_db_or_a_socket(void **state)
{
	static const struct {
		const char *url;
		enum state_kind kind;
		const char *host_or_path;
		int port, db;
	} ok[] = {
	    {"redis://127.0.0.1:6380/3", STATE_REDIS_TCP, "127.0.0.1", 6380, 3},
	    {"redis://redis.example", STATE_REDIS_TCP, "redis.example", 6379, 0},
	    {"redis://h:7000", STATE_REDIS_TCP, "h", 7000, 0},
	    {"redis://h/", STATE_REDIS_TCP, "h", 6379, 0},
	    {"redis://[::1]:6379/2", STATE_REDIS_TCP, "::1", 6379, 2},
	    {"redis://[::1]", STATE_REDIS_TCP, "::1", 6379, 0},
	    {"redis+unix:/run/redis/redis.sock", STATE_REDIS_UNIX, "/run/redis/redis.sock", 0, 0},
	    {"redis+unix:/tmp/r.sock?db=5", STATE_REDIS_UNIX, "/tmp/r.sock", 0, 5},
	};
	static const char *const bad[] = {
	    "redis://",          "redis://h:",  "redis://h:70000",  "redis://[::1",
	    "redis://[::1]x",    "redis://u@h", "redis+unix:",      "redis+unix:/s?x=1",
	    "redis+unix:/s?db=", "rediss://h",  "unix:/tmp/r.sock", "redis://h/65536",
	};
	struct state_url u;
	const char *err;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(state_url_parse(ok[i].url, &u, &err), 0);
		assert_int_equal(u.kind, ok[i].kind);
		assert_string_equal(u.kind == STATE_REDIS_TCP ? u.host : u.path,
		                    ok[i].host_or_path);
		if (u.kind == STATE_REDIS_TCP)
			assert_int_equal(u.port, ok[i].port);
		assert_int_equal(u.db, ok[i].db);
		assert_true(state_url_is_redis(ok[i].url));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (state_url_parse(bad[i], &u, &err) == 0)
			fail_msg("\"%s\" parsed", bad[i]);
		assert_non_null(err);
	}
	assert_false(state_url_is_redis("lmdb:/x"));
	assert_false(state_url_is_redis(NULL));
}

/* redis-sentinel://HOST[:PORT],.../MASTER[/DB]: the Sentinels in order
 * (port 26379 unless named), the master's name, the db; host and port are
 * the first Sentinel's. */
static void
sentinel_state_urls_list_the_sentinels_and_name_the_master(void **state)
{
	static const struct {
		const char *url;
		int n;
		const char *hosts[3];
		int ports[3];
		const char *master;
		int db;
	} ok[] = {
	    {"redis-sentinel://127.0.0.1/mymaster", 1, {"127.0.0.1"}, {26379}, "mymaster", 0},
	    {"redis-sentinel://s1:26380/m/3", 1, {"s1"}, {26380}, "m", 3},
	    {"redis-sentinel://s1/m/", 1, {"s1"}, {26379}, "m", 0},
	    {"redis-sentinel://[::1]:26380/postern", 1, {"::1"}, {26380}, "postern", 0},
	    {"redis-sentinel://[::1]/postern/0", 1, {"::1"}, {26379}, "postern", 0},
	    {"redis-sentinel://10.0.0.1:26380,10.0.0.2,[::1]:26381/fleet.a-b_1/65535",
	     3,
	     {"10.0.0.1", "10.0.0.2", "::1"},
	     {26380, 26379, 26381},
	     "fleet.a-b_1",
	     65535},
	};
	static const char no_master[] = "\"redis-sentinel://\" needs the master's name, as in "
	                                "\"redis-sentinel://HOST:26379,HOST:26379/mymaster/0\"",
	                  empty[] = "an empty Sentinel address in the URL",
	                  port[] = "the port must be a number 1..65535",
	                  at[] = "no user or password in the URL: put the password in "
	                         "state_password_file (sentinel_password_file) and the user in "
	                         "state_user",
	                  db[] = "the database must be a number, as in "
	                         "\"redis-sentinel://HOST:26379/mymaster/0\"",
	                  printable[] = "the master's name must be printable ASCII without spaces";
	static const struct {
		const char *url, *want;
	} bad[] = {
	    {"redis-sentinel://h", no_master},
	    {"redis-sentinel://h/", no_master},
	    {"redis-sentinel://h//0", no_master},
	    {"redis-sentinel://", no_master},
	    {"redis-sentinel:///m", "\"redis-sentinel://\" needs at least one Sentinel"},
	    {"redis-sentinel://a,,b/m", empty},
	    {"redis-sentinel://a,/m", empty},
	    {"redis-sentinel://,a/m", empty},
	    {"redis-sentinel://:26379/m", "a Redis URL needs a host"},
	    {"redis-sentinel://a,:26379/m", "a Redis URL needs a host"},
	    {"redis-sentinel://h/my master", printable},
	    {"redis-sentinel://h/my\tmaster", printable},
	    {"redis-sentinel://h/m\xc3\xa9", printable},
	    {"redis-sentinel://h/m\x7f", printable},
	    {"redis-sentinel://u:pw@h/m", at},
	    {"redis-sentinel://a,u@b:26379/m", at},
	    {"redis-sentinel://h:0/m", port},
	    {"redis-sentinel://h:65536/m", port},
	    {"redis-sentinel://h:x/m", port},
	    {"redis-sentinel://h:/m", port},
	    {"redis-sentinel://a,h:26379x/m", port},
	    {"redis-sentinel://[::1/m", "an IPv6 host needs its closing ']'"},
	    {"redis-sentinel://[::1]x/m", "expected \":PORT\" after the host"},
	    {"redis-sentinel://h/m/x", db},
	    {"redis-sentinel://h/m/65536", db},
	    {"redis-sentinel://h/m/-1", db},
	    {"redis-sentinel://h/m/0/1", db},
	    /* the TCP form says the same things about hosts */
	    {"redis://", "a Redis URL needs a host"},
	    {"redis://u@h", at},
	};
	struct state_url u;
	const char *err;
	char url[1024], *p;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		err = NULL;
		if (state_url_parse(ok[i].url, &u, &err) != 0)
			fail_msg("\"%s\": %s", ok[i].url, err);
		assert_int_equal(u.kind, STATE_REDIS_SENTINEL);
		assert_true(state_url_is_redis(ok[i].url));
		assert_int_equal(u.nsentinels, ok[i].n);
		for (int j = 0; j < ok[i].n; j++) {
			assert_string_equal(u.sentinels[j].host, ok[i].hosts[j]);
			assert_int_equal(u.sentinels[j].port, ok[i].ports[j]);
		}
		assert_string_equal(u.host, ok[i].hosts[0]);
		assert_int_equal(u.port, ok[i].ports[0]);
		assert_string_equal(u.master, ok[i].master);
		assert_int_equal(u.db, ok[i].db);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (state_url_parse(bad[i].url, &u, &err) == 0)
			fail_msg("\"%s\" parsed", bad[i].url);
		assert_non_null(err);
		if (strcmp(err, bad[i].want) != 0)
			fail_msg("\"%s\": \"%s\", not \"%s\"", bad[i].url, err, bad[i].want);
	}

	/* 16 Sentinels and no more */
	p = url + sprintf(url, "redis-sentinel://");
	for (int i = 0; i < STATE_URL_SENTINELS_MAX; i++)
		p += sprintf(p, "%s10.0.0.%d:%d", i ? "," : "", i + 1, 26000 + i);
	strcpy(p, "/m");
	assert_int_equal(state_url_parse(url, &u, &err), 0);
	assert_int_equal(u.nsentinels, 16);
	assert_string_equal(u.sentinels[15].host, "10.0.0.16");
	assert_int_equal(u.sentinels[15].port, 26015);
	sprintf(p, ",10.0.0.17/m");
	assert_int_equal(state_url_parse(url, &u, &err), -1);
	assert_string_equal(err, "too many Sentinels in the URL (at most 16)");

	/* a master's name of 64 bytes and no more */
	n = (size_t)sprintf(url, "redis-sentinel://h/");
	memset(url + n, 'm', STATE_URL_MASTER_MAX);
	strcpy(url + n + STATE_URL_MASTER_MAX, "/2");
	assert_int_equal(state_url_parse(url, &u, &err), 0);
	assert_int_equal(strlen(u.master), 64);
	assert_int_equal(u.db, 2);
	memset(url + n, 'm', STATE_URL_MASTER_MAX + 1);
	url[n + STATE_URL_MASTER_MAX + 1] = '\0';
	assert_int_equal(state_url_parse(url, &u, &err), -1);
	assert_string_equal(err, "the master's name is too long (at most 64 bytes)");

	/* the unknown-scheme message names every form */
	assert_int_equal(state_url_parse("sentinel://h/m", &u, &err), -1);
	assert_string_equal(err, "unknown state store (expected \"lmdb:DIR\", "
	                         "\"redis://HOST:PORT/DB\", \"redis+unix:PATH\" or "
	                         "\"redis-sentinel://HOST:PORT,.../MASTER/DB\")");
	assert_false(state_url_is_redis("sentinel://h/m"));
}

static void
a_minimal_config_gets_the_documented_defaults(void **state)
{
	char *errs = NULL;
	struct config *cfg = parse(BASE, &errs);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	assert_int_equal(cfg->workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
	assert_null(cfg->user);
	assert_null(cfg->state);
	assert_null(cfg->state_password_file);
	assert_string_equal(cfg->state_prefix, "postern:");
	assert_int_equal(cfg->state_timeout_ms, 250);
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_int_equal(cfg->tls.min_version, TLS1_2_VERSION);
	assert_string_equal(cfg->tls.ciphers,
	                    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
	                    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384");
	assert_string_equal(cfg->tls.ciphersuites, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
	                                           "TLS_CHACHA20_POLY1305_SHA256");
	assert_string_equal(cfg->tls.groups, "X25519:prime256v1:secp384r1");
	assert_int_equal(cfg->listeners[0].tls, TLSM_IMPLICIT);
	assert_string_equal(cfg->listeners[0].name, "9993");
	assert_int_equal(cfg->backends[0].tls, TLSM_NONE);
	assert_int_equal(cfg->timeouts.handshake_ms, 10 * 1000);
	assert_int_equal(cfg->timeouts.login_ms, 60 * 1000);
	assert_int_equal(cfg->timeouts.idle_ms, 30 * 60 * 1000);
	assert_int_equal(cfg->timeouts.backend_connect_ms, 5 * 1000);
	assert_int_equal(cfg->timeouts.backend_login_ms, 15 * 1000);
	assert_int_equal(cfg->limits.max_bad_commands, 3);
	assert_int_equal(cfg->limits.max_auth_failures, 3);
	assert_int_equal(cfg->policy.protocol_lock, PLOCK_OFF);
	assert_int_equal(cfg->policy.lock_expire_ms, 90ULL * 86400 * 1000);
	assert_int_equal(cfg->policy.nprotocols, 0);
	assert_null(cfg->policy.protocols);
	assert_null(cfg->policy.protocols_file);
	assert_int_equal(cfg->policy.protocols_default, PROTO_MASK_ALL);
	assert_int_equal(cfg->policy.max_connections_per_ip, 0);
	assert_int_equal(cfg->policy.max_sessions_per_user, 0);
	assert_int_equal(cfg->policy.nallow, 0);
	assert_int_equal(cfg->policy.ndeny, 0);
	assert_int_equal(cfg->policy.ipv6_prefix, 64);
	assert_int_equal(cfg->policy.throttle.ip_user_limit, 5);
	assert_int_equal(cfg->policy.throttle.ip_limit, 50);
	assert_int_equal(cfg->policy.throttle.window_ms, 15 * 60 * 1000);
	assert_int_equal(cfg->policy.throttle.delay_base_ms, 1000);
	assert_int_equal(cfg->policy.throttle.delay_max_ms, 15000);
	assert_null(cfg->admin.http);
	config_unref(&cfg);
	free(errs);
}

/* state_user, sentinel_password_file, state_wait_replicas: Redis settings,
 * refused beside a store that would not read them; a brace in state_prefix
 * would move the keys' hash tag. */
static void
redis_user_sentinel_password_and_wait_replicas_are_checked(void **state)
{
#define SENT "state = \"redis-sentinel://127.0.0.1:26379,[::1]/postern/1\";\n"
#define TCP  "state = \"redis://127.0.0.1/0\";\n"
#define LMDB "state = \"lmdb:/var/lib/postern\";\n"
	static const struct {
		const char *text, *want; /* want NULL: loads */
	} rows[] = {
	    {BASE SENT "state_user = \"postern\";\nstate_password_file = \"@CERT@\";\n"
	               "sentinel_password_file = \"@KEY@\";\nstate_wait_replicas = 16;\n",
	     NULL},
	    {BASE TCP "state_user = \"a!b~c\";\nstate_wait_replicas = 0;\n", NULL},
	    {BASE "state = \"redis+unix:/run/redis.sock\";\nstate_user = \"u\";\n"
	          "state_wait_replicas = 1;\n",
	     NULL},
	    {BASE SENT "state_prefix = \"fleet-b:\";\n", NULL},
	    /* state_user */
	    {BASE TCP "state_user = \"\";\n", "t.conf:6: 'state_user' must not be empty\n"},
	    {BASE TCP "state_user = \"a b\";\n",
	     "t.conf:6: 'state_user' must be printable ASCII without spaces\n"},
	    {BASE TCP "state_user = \"a\\tb\";\n",
	     "t.conf:6: 'state_user' must be printable ASCII without spaces\n"},
	    {BASE TCP "state_user = 5;\n", "t.conf:6: 'state_user' must be a string\n"},
	    {BASE LMDB "state_user = \"u\";\n",
	     "t.conf:6: 'state_user' is for a Redis store (state = \"redis://...\")\n"},
	    {BASE "state_user = \"u\";\n",
	     "t.conf:5: 'state_user' is for a Redis store (state = \"redis://...\")\n"},
	    /* sentinel_password_file */
	    {BASE TCP "sentinel_password_file = \"@CERT@\";\n",
	     "t.conf:6: 'sentinel_password_file' is for state = \"redis-sentinel://...\"\n"},
	    {BASE "state = \"redis+unix:/run/redis.sock\";\nsentinel_password_file = \"@CERT@\";\n",
	     "t.conf:6: 'sentinel_password_file' is for state = \"redis-sentinel://...\"\n"},
	    {BASE LMDB "sentinel_password_file = \"@CERT@\";\n",
	     "t.conf:6: 'sentinel_password_file' is for a Redis store (state = "
	     "\"redis://...\")\n"},
	    {BASE SENT "sentinel_password_file = \"/no/such/pw\";\n",
	     "t.conf:6: state password file \"/no/such/pw\" is not readable: No such file or "
	     "directory\n"},
	    /* state_wait_replicas */
	    {BASE SENT "state_wait_replicas = 17;\n",
	     "t.conf:6: 'state_wait_replicas' must be between 0 and 16\n"},
	    {BASE TCP "state_wait_replicas = -1;\n",
	     "t.conf:6: 'state_wait_replicas' must be between 0 and 16\n"},
	    {BASE TCP "state_wait_replicas = \"2\";\n",
	     "t.conf:6: 'state_wait_replicas' must be an integer 0..16\n"},
	    {BASE LMDB "state_wait_replicas = 1;\n",
	     "t.conf:6: 'state_wait_replicas' is for a Redis store (state = \"redis://...\")\n"},
	    {BASE LMDB "state_wait_replicas = 0;\n",
	     "t.conf:6: 'state_wait_replicas' is for a Redis store (state = \"redis://...\")\n"},
	    /* state_prefix: no braces */
	    {BASE SENT "state_prefix = \"p{x}:\";\n",
	     "t.conf:6: 'state_prefix' must be printable ASCII without spaces or braces\n"},
	    {BASE TCP "state_prefix = \"p}\";\n",
	     "t.conf:6: 'state_prefix' must be printable ASCII without spaces or braces\n"},
	    /* the URL itself, through the loader */
	    {BASE "state = \"redis-sentinel://h\";\n",
	     "t.conf:5: 'state' = \"redis-sentinel://h\": \"redis-sentinel://\" needs the "
	     "master's name, as in \"redis-sentinel://HOST:26379,HOST:26379/mymaster/0\"\n"},
	    {BASE "state = \"redis-sentinel://a,,b/m\";\n",
	     "t.conf:5: 'state' = \"redis-sentinel://a,,b/m\": an empty Sentinel address in the "
	     "URL\n"},
	};
#undef SENT
#undef TCP
#undef LMDB

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *errs = NULL;
		struct config *cfg = parse(rows[i].text, &errs);

		if (rows[i].want == NULL ? errs[0] != '\0' : strcmp(errs, rows[i].want) != 0)
			print_message("row %zu printed:\n%s", i, errs);
		if (rows[i].want == NULL) {
			assert_string_equal(errs, "");
			assert_non_null(cfg);
		} else {
			assert_null(cfg);
			assert_string_equal(errs, rows[i].want);
		}
		if (i == 0) { /* the first row's values */
			assert_string_equal(cfg->state_user, "postern");
			assert_string_equal(cfg->state_password_file, cert_path);
			assert_string_equal(cfg->sentinel_password_file, key_path);
			assert_int_equal(cfg->state_wait_replicas, 16);
		}
		config_unref(&cfg);
		free(errs);
	}
	/* a user of 128 bytes and no more */
	for (size_t len = 128; len <= 129; len++) {
		char text[sizeof(BASE) + 256], name[130], *errs = NULL;
		struct config *cfg;

		memset(name, 'u', len);
		name[len] = '\0';
		snprintf(text, sizeof(text), "%sstate = \"redis://h\";\nstate_user = \"%s\";\n",
		         BASE, name);
		cfg = parse(text, &errs);
		if (len == 128) {
			assert_string_equal(errs, "");
			assert_int_equal(strlen(cfg->state_user), 128);
		} else {
			assert_null(cfg);
			assert_string_equal(errs, "t.conf:6: 'state_user' must be 1..128 bytes\n");
		}
		config_unref(&cfg);
		free(errs);
	}
	/* the defaults */
	{
		char *errs = NULL;
		struct config *cfg = parse(BASE, &errs);

		assert_non_null(cfg);
		assert_null(cfg->state_user);
		assert_null(cfg->sentinel_password_file);
		assert_int_equal(cfg->state_wait_replicas, 0);
		config_unref(&cfg);
		free(errs);
	}
}

static void
admin_http_takes_a_numeric_address_and_port(void **state)
{
	static const struct {
		const char *text, *want; /* want NULL: loads */
	} rows[] = {
	    {BASE "admin = { http = \"127.0.0.1:9100\"; };\n", NULL},
	    {BASE "admin = { http = \"[::1]:9100\"; };\n", NULL},
	    {BASE "admin = { http = \"9100\"; };\n", NULL},
	    {BASE "admin = { http = \"localhost:9100\"; };\n",
	     "t.conf:5: 'admin.http': bad address \"localhost:9100\": host must be a numeric IPv4 "
	     "address\n"},
	    {BASE "admin = { http = \"127.0.0.1:0\"; };\n",
	     "t.conf:5: 'admin.http': bad address \"127.0.0.1:0\": port must be a number "
	     "1..65535\n"},
	    {BASE "admin = { http = 9100; };\n", "t.conf:5: 'admin.http' must be a string\n"},
	    {BASE "admin = { htp = \"127.0.0.1:9100\"; };\n",
	     "t.conf:5: unknown setting 'admin.htp'\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *errs = NULL;
		struct config *cfg = parse(rows[i].text, &errs);

		if (rows[i].want == NULL) {
			assert_string_equal(errs, "");
			assert_non_null(cfg);
			assert_non_null(cfg->admin.http);
		} else {
			assert_null(cfg);
			assert_string_equal(errs, rows[i].want);
		}
		config_unref(&cfg);
		free(errs);
	}
}

static void
each_mistake_is_reported_with_its_file_and_line(void **state)
{
	static const struct {
		const char *text;
		const char *want; /* the first line printed */
		size_t nerr;      /* lines printed in all */
	} rows[] = {
	    /* top level */
	    {BASE "workers = 0;\n", "t.conf:5: 'workers' must be \"auto\" or a number 1..256", 1},
	    {BASE "workers = 257;\n", "t.conf:5: 'workers' must be \"auto\" or a number 1..256", 1},
	    {BASE "workers = \"many\";\n",
	     "t.conf:5: 'workers' must be \"auto\" or a number 1..256", 1},
	    {BASE "log_level = \"loud\";\n",
	     "t.conf:5: 'log_level' must be one of \"debug\", \"info\", \"warn\", \"error\"", 1},
	    {BASE "log_level = 1;\n",
	     "t.conf:5: 'log_level' must be one of \"debug\", \"info\", \"warn\", \"error\"", 1},
	    {BASE "user = \"postern-no-such-user\";\n",
	     "t.conf:5: 'user': no such user \"postern-no-such-user\"", 1},
	    {BASE "user = \"\";\n", "t.conf:5: 'user' must not be empty", 1},
	    {BASE "state = 5;\n", "t.conf:5: 'state' must be a string", 1},
	    {BASE "polcy = 1;\n", "t.conf:5: unknown setting 'polcy'", 1},
	    {BASE "state = \"rediss://127.0.0.1:6379/0\";\n",
	     "t.conf:5: 'state' = \"rediss://127.0.0.1:6379/0\": TLS to Redis (\"rediss://\") is "
	     "not supported: this build's hiredis has no TLS; use \"redis+unix:PATH\" or a TLS "
	     "tunnel on loopback",
	     1},
	    {BASE "state = \"redis://:secret@127.0.0.1\";\n",
	     "t.conf:5: 'state' = \"redis://:secret@127.0.0.1\": no user or password in the URL: "
	     "put the password in state_password_file (sentinel_password_file) and the user in "
	     "state_user",
	     1},
	    {BASE "state = \"redis://127.0.0.1:0/0\";\n",
	     "t.conf:5: 'state' = \"redis://127.0.0.1:0/0\": the port must be a number 1..65535",
	     1},
	    {BASE "state = \"redis://h/x\";\n",
	     "t.conf:5: 'state' = \"redis://h/x\": the database must be a number, as in "
	     "\"redis://HOST:PORT/0\"",
	     1},
	    {BASE "state = \"redis+unix:run/r.sock\";\n",
	     "t.conf:5: 'state' = \"redis+unix:run/r.sock\": \"redis+unix:\" needs an absolute "
	     "socket path, as in \"redis+unix:/run/redis/redis.sock\"",
	     1},
	    {BASE "state = \"mem:\";\n",
	     "t.conf:5: 'state' = \"mem:\": the memory store is for unit tests only", 1},
	    {BASE "state_timeout = \"5ms\";\n",
	     "t.conf:5: 'state_timeout' must be between 10ms and 1m", 1},
	    {BASE "state_prefix = \"a b\";\n",
	     "t.conf:5: 'state_prefix' must be printable ASCII without spaces or braces", 1},
	    {BASE "state_prefix = \"p:\";\n",
	     "t.conf:5: 'state_prefix' is for a Redis store (state = \"redis://...\")", 1},
	    {BASE "state = \"redis://127.0.0.1/0\";\nstate_password_file = \"/no/such/pw\";\n",
	     "t.conf:6: state password file \"/no/such/pw\" is not readable: No such file or "
	     "directory",
	     1},
	    {BASE "state = \"lmdb:\";\n",
	     "t.conf:5: 'state' = \"lmdb:\": name a directory, as in \"lmdb:/var/lib/postern\"", 1},
	    {BASE "state = \"/var/lib/postern\";\n",
	     "t.conf:5: 'state' = \"/var/lib/postern\": unknown state store (expected "
	     "\"lmdb:DIR\", \"redis://HOST:PORT/DB\", \"redis+unix:PATH\" or "
	     "\"redis-sentinel://HOST:PORT,.../MASTER/DB\")",
	     1},
	    /* policy */
	    {BASE "policy = { protocol_lock = \"sticky\"; };\n",
	     "t.conf:5: 'policy.protocol_lock' = \"sticky\" needs a state store: set state = "
	     "\"lmdb:DIR\"",
	     1},
	    {BASE "policy = { protocol_lock = \"strict\"; };\n",
	     "t.conf:5: 'policy.protocol_lock' must be one of \"off\", \"concurrent\", \"sticky\", "
	     "\"static\"",
	     1},
	    {BASE "policy = { lock_expire = \"3651d\"; };\n",
	     "t.conf:5: 'policy.lock_expire' must be between 0 and 3650d", 1},
	    {BASE "policy = { protocols = ( { domain = \"x\"; allow = [ \"imap\" ]; } ); };\n",
	     "t.conf:5: 'policy.protocols' has no effect with protocol_lock = \"off\"", 1},
	    {BASE "policy = { protocols_default = [ \"imap\" ]; };\n",
	     "t.conf:5: 'policy.protocols_default' has no effect with protocol_lock = \"off\"", 1},
	    {BASE "policy = { protocol_lock = \"static\";\n"
	          "  protocols = ( { user = \"a\"; domain = \"b\"; allow = [ \"imap\" ]; } ); };\n",
	     "t.conf:6: protocol rule: needs exactly one of 'user' or 'domain'", 1},
	    {BASE "policy = { protocol_lock = \"static\";\n"
	          "  protocols = ( { domain = \"@b\"; allow = [ \"imap\" ]; } ); };\n",
	     "t.conf:6: protocol rule: a domain cannot contain '@'", 1},
	    {BASE "policy = { protocol_lock = \"static\";\n"
	          "  protocols = ( { user = \"\"; allow = [ \"imap\" ]; } ); };\n",
	     "t.conf:6: protocol rule: 'user' must be a non-empty string", 1},
	    {BASE "policy = { protocol_lock = \"static\"; protocols = ( { user = \"a\"; } ); };\n",
	     "t.conf:5: protocol rule: missing 'allow'", 1},
	    {BASE "policy = { protocol_lock = \"static\";\n"
	          "  protocols = ( { user = \"a\"; allow = [ ]; } ); };\n",
	     "t.conf:6: protocol rule: 'allow' is empty: name \"imap\", \"pop3\" or both", 1},
	    {BASE "policy = { protocol_lock = \"static\";\n"
	          "  protocols = ( { user = \"a\"; allow = [ \"smtp\" ]; } ); };\n",
	     "t.conf:6: protocol rule: 'allow': each entry must be \"imap\" or \"pop3\"", 1},
	    {BASE "policy = { protocol_lock = \"static\";\n"
	          "  protocols = ( { user = \"a\"; allow = [ \"imap\", \"imap\" ]; } ); };\n",
	     "t.conf:6: protocol rule: 'allow' names \"imap\" twice", 1},
	    {BASE "policy = { protocol_lock = \"static\";\n"
	          "  protocols = ( { user = \"a\"; allow = \"imap\"; } ); };\n",
	     "t.conf:6: protocol rule: 'allow' must be a list of protocols [ \"imap\", \"pop3\" ]",
	     1},
	    {BASE "policy = { protocol_lock = \"static\"; protocols = (\n"
	          "  { user = \"a@b\"; allow = [ \"imap\" ]; },\n"
	          "  { user = \"A@B\"; allow = [ \"pop3\" ]; } ); };\n",
	     "t.conf:7: protocol rule: user \"A@B\" has a rule already", 1},
	    {BASE "policy = { protocol_lock = \"static\";\n"
	          "  protocols = ( { user = \"a\"; allow = [ \"imap\" ]; weight = 1; } ); };\n",
	     "t.conf:6: unknown setting 'weight' in a protocol rule", 1},
	    {BASE "policy = { protocol_lock = \"static\"; protocols = { }; };\n",
	     "t.conf:5: 'policy.protocols' must be a list ( { ... }, ... )", 1},
	    {BASE "policy = { protocol_lock = \"static\"; protocols = ( \"a\" ); };\n",
	     "t.conf:5: protocol rule: each entry must be a group { user = ...; allow = ...; }", 1},
	    {BASE "policy = { protocol_lock = \"static\"; protocols_default = [ ]; };\n",
	     "t.conf:5: 'policy.protocols_default' is empty: name \"imap\", \"pop3\" or both", 1},
	    {BASE
	     "policy = { protocol_lock = \"static\"; protocols_file = \"/nonexistent/p\"; };\n",
	     "t.conf:5: protocols file \"/nonexistent/p\" is not readable: No such file or "
	     "directory",
	     1},
	    {BASE "policy = { max_connections_per_ip = -1; };\n",
	     "t.conf:5: 'policy.max_connections_per_ip' must be between 0 and 1000000", 1},
	    {BASE "policy = { max_sessions_per_user = 100001; };\n",
	     "t.conf:5: 'policy.max_sessions_per_user' must be between 0 and 100000", 1},
	    {BASE "policy = { allow = [ \"10.0.0.1/8\" ]; };\n",
	     "t.conf:5: 'policy.allow': bad network \"10.0.0.1/8\": host bits are set beyond the "
	     "prefix length",
	     1},
	    {BASE "policy = { allow = [ \"10.0.0.0/8\", \"2001:db8::/129\" ]; };\n",
	     "t.conf:5: 'policy.allow': bad network \"2001:db8::/129\": an IPv6 prefix is at most "
	     "128",
	     1},
	    {BASE "policy = { deny = \"10.0.0.0/8\"; };\n",
	     "t.conf:5: 'policy.deny' must be a list of networks [ \"192.0.2.0/24\", "
	     "\"2001:db8::/32\" ]",
	     1},
	    {BASE "policy = { deny = [ 5 ]; };\n",
	     "t.conf:5: 'policy.deny': each entry must be a string such as \"192.0.2.0/24\"", 1},
	    {BASE "policy = { ipv6_prefix = 16; };\n",
	     "t.conf:5: 'policy.ipv6_prefix' must be between 32 and 128", 1},
	    {BASE "policy = { throttle = { window = \"0\"; }; };\n",
	     "t.conf:5: 'policy.throttle.window' must be between 1s and 1d", 1},
	    {BASE "policy = { throttle = { delay_base = \"10s\"; delay_max = \"5s\"; }; };\n",
	     "t.conf:5: 'policy.throttle.delay_max' must not be below delay_base", 1},
	    {BASE "policy = { throttle = { delay_max = \"2m\"; }; };\n",
	     "t.conf:5: 'policy.throttle.delay_max' must be shorter than timeouts.login", 1},
	    {BASE "policy = { throttle = { ip_limit = 1000001; }; };\n",
	     "t.conf:5: 'policy.throttle.ip_limit' must be between 0 and 1000000", 1},
	    {BASE "policy = { throttle = { burst = 1; }; };\n",
	     "t.conf:5: unknown setting 'policy.throttle.burst'", 1},
	    {BASE "policy = { throttle = 5; };\n",
	     "t.conf:5: 'policy.throttle' must be a group { ... }", 1},
	    {BASE "policy = { lock = \"sticky\"; };\n", "t.conf:5: unknown setting 'policy.lock'",
	     1},
	    {BASE "x = ;\n", "t.conf:5: syntax error", 1},
	    {BASE "workers = 2;\nworkers = 3;\n", "t.conf:6: duplicate setting name", 1},
	    /* timeouts and limits */
	    {BASE "timeouts = { idel = \"5m\"; };\n", "t.conf:5: unknown setting 'timeouts.idel'",
	     1},
	    {BASE "timeouts = { idle = \"5x\"; };\n",
	     "t.conf:5: 'timeouts.idle' must be a duration such as \"500ms\", \"30s\", \"15m\", "
	     "\"2h\" or \"1d\"",
	     1},
	    {BASE "timeouts = { idle = \"500ms\"; };\n",
	     "t.conf:5: 'timeouts.idle' must be between 1s and 1d", 1},
	    {BASE "timeouts = { idle = \"2d\"; };\n",
	     "t.conf:5: 'timeouts.idle' must be between 1s and 1d", 1},
	    {BASE "timeouts = { idle = -5; };\n",
	     "t.conf:5: 'timeouts.idle' must be between 1s and 1d", 1},
	    {BASE "timeouts = { handshake = \"11m\"; };\n",
	     "t.conf:5: 'timeouts.handshake' must be between 1s and 10m", 1},
	    {BASE "timeouts = { login = \"99999999999999999999s\"; };\n",
	     "t.conf:5: 'timeouts.login' must be a duration such as \"500ms\", \"30s\", \"15m\", "
	     "\"2h\" or \"1d\"",
	     1},
	    {BASE "timeouts = 5;\n", "t.conf:5: 'timeouts' must be a group { ... }", 1},
	    {BASE "limits = { max_bad_commands = 0; };\n",
	     "t.conf:5: 'limits.max_bad_commands' must be between 1 and 100", 1},
	    {BASE "limits = { max_bad_commands = 101; };\n",
	     "t.conf:5: 'limits.max_bad_commands' must be between 1 and 100", 1},
	    {BASE "limits = { max_auth_failures = \"3\"; };\n",
	     "t.conf:5: 'limits.max_auth_failures' must be an integer 1..100", 1},
	    /* tls */
	    {TLS("min_version = \"TLSv1.1\";") LST_OK BE_OK RT_OK,
	     "t.conf:1: 'tls.min_version' = \"TLSv1.1\": TLS below 1.2 is not allowed (RFC 8996)",
	     1},
	    {TLS("min_version = \"SSLv3\";") LST_OK BE_OK RT_OK,
	     "t.conf:1: 'tls.min_version' = \"SSLv3\": TLS below 1.2 is not allowed (RFC 8996)", 1},
	    {TLS("min_version = \"TLSv1.4\";") LST_OK BE_OK RT_OK,
	     "t.conf:1: 'tls.min_version' must be one of \"TLSv1.2\", \"TLSv1.3\"", 1},
	    {TLS("ciphers = \"\";") LST_OK BE_OK RT_OK, "t.conf:1: 'tls.ciphers' must not be empty",
	     1},
	    {TLS("sni = true;") LST_OK BE_OK RT_OK, "t.conf:1: unknown setting 'tls.sni'", 1},
	    {"tls = { certificates = ( { cert = \"/nonexistent/c.pem\"; key = \"@KEY@\"; } ); "
	     "};\n" LST_OK BE_OK RT_OK,
	     "t.conf:1: certificate file \"/nonexistent/c.pem\" is not readable: No such file or "
	     "directory",
	     1},
	    {"tls = { certificates = ( { cert = \"@CERT@\"; } ); };\n" LST_OK BE_OK RT_OK,
	     "t.conf:1: certificate: missing 'key'", 1},
	    {"tls = { certificates = ( { cert = \"@CERT@\"; key = \"@KEY@\"; chain = \"x\"; } "
	     "); };\n" LST_OK BE_OK RT_OK,
	     "t.conf:1: unknown setting 'chain' in a certificate", 1},
	    {"tls = { certificates = ( ); };\n" LST_OK BE_OK RT_OK,
	     "t.conf:1: 'tls.certificates' is empty: at least one certificate is required", 1},
	    {"tls = { certificates = ( \"@CERT@\" ); };\n" LST_OK BE_OK RT_OK,
	     "t.conf:1: certificate: each entry must be a group { cert = ...; key = ...; }", 1},
	    {LST_OK BE_OK RT_OK,
	     "t.conf:0: missing 'tls.certificates': at least one certificate is required", 1},
	    /* listeners */
	    {TLS_OK LST("listen = \"localhost:993\"; protocol = \"imap\";") BE_OK RT_OK,
	     "t.conf:2: listener: bad listen address \"localhost:993\": host must be a numeric "
	     "IPv4 address",
	     1},
	    {TLS_OK LST("listen = \"127.0.0.1:993\"; protocol = \"smtp\";") BE_OK RT_OK,
	     "t.conf:2: listener: 'protocol' must be \"imap\", \"pop3\" or \"sieve\"", 1},
	    {TLS_OK LST("listen = \"127.0.0.1:993\"; protocol = \"imap\"; tls = \"none\";")
	         BE_OK RT_OK,
	     "t.conf:2: listener: 'tls' must be \"implicit\" or \"starttls\"", 1},
	    {TLS_OK LST("protocol = \"imap\";") BE_OK RT_OK, "t.conf:2: listener: missing 'listen'",
	     1},
	    {TLS_OK LST("listen = 993; protocol = \"imap\";") BE_OK RT_OK,
	     "t.conf:2: listener: 'listen' must be a string", 1},
	    {TLS_OK LST("listen = \"993\"; protocol = \"imap\"; name = \"my imap\";") BE_OK RT_OK,
	     "t.conf:2: listener: 'name' must be 1..64 of A-Z a-z 0-9 . _ -", 1},
	    {TLS_OK LST("listen = \"993\"; protocol = \"imap\"; port = 993;") BE_OK RT_OK,
	     "t.conf:2: unknown setting 'port' in a listener", 1},
	    {TLS_OK LST("listen = \"993\"; protocol = \"imap\"; allow_plaintext_auth = true;")
	         BE_OK RT_OK,
	     "t.conf:2: listener: 'allow_plaintext_auth' needs tls = \"starttls\"", 1},
	    {TLS_OK LST("listen = \"143\"; protocol = \"imap\"; tls = \"starttls\"; "
	                "allow_plaintext_auth = \"yes\";") BE_OK RT_OK,
	     "t.conf:2: listener: 'allow_plaintext_auth' must be true or false", 1},
	    {TLS_OK "listeners = (\n"
	            "  { listen = \"993\"; protocol = \"imap\"; },\n"
	            "  { listen = \"0.0.0.0:993\"; protocol = \"pop3\"; }\n"
	            ");\n" BE_OK RT_OK,
	     "t.conf:4: listener: duplicate listen address \"0.0.0.0:993\" (first on line 3)", 1},
	    {TLS_OK "listeners = ( );\n" BE_OK RT_OK,
	     "t.conf:2: 'listeners' is empty: at least one listener is required", 1},
	    {TLS_OK "listeners = { listen = \"993\"; protocol = \"imap\"; };\n" BE_OK RT_OK,
	     "t.conf:2: 'listeners' must be a list ( { ... }, ... )", 1},
	    {TLS_OK BE_OK RT_OK, "t.conf:0: missing 'listeners': at least one listener is required",
	     1},
	    {TLS_OK LST("listen = \"127.0.0.1:995\"; protocol = \"pop3\";") BE("imap = 143;") RT_OK,
	     "t.conf:2: listener \"127.0.0.1:995\": no backend serves pop3", 1},
	    /* backends */
	    {TLS_OK LST_OK BE("imap = 143; verify_name = \"mx.test\";") RT_OK,
	     "t.conf:3: backend 'mx1': 'verify_name' needs backend TLS", 1},
	    {TLS_OK LST_OK BE("imap = 143; tls = \"starttls\"; cert = \"@CERT@\";") RT_OK,
	     "t.conf:3: backend 'mx1': a client certificate needs both 'cert' and 'key'", 1},
	    {TLS_OK LST_OK BE("imap = 143; cert = \"@CERT@\"; key = \"@KEY@\";") RT_OK,
	     "t.conf:3: backend 'mx1': 'cert' needs backend TLS", 1},
	    {TLS_OK LST_OK BE("imap = 143; tls = \"plain\";") RT_OK,
	     "t.conf:3: backend 'mx1': 'tls' must be \"none\", \"implicit\" or \"starttls\"", 1},
	    {TLS_OK LST_OK BE("imap = 143; ca = \"@CERT@\";") RT_OK,
	     "t.conf:3: backend 'mx1': 'ca' needs backend TLS, but tls = \"none\"", 1},
	    {TLS_OK LST_OK BE("imap = 143; tls = \"starttls\"; ca = \"/nonexistent/ca.pem\";")
	         RT_OK,
	     "t.conf:3: CA file \"/nonexistent/ca.pem\" is not readable: No such file or directory",
	     1},
	    {TLS_OK LST_OK BE("") RT_OK,
	     "t.conf:3: backend 'mx1': needs an 'imap', a 'pop3' or a 'sieve' port", 1},
	    {TLS_OK LST_OK BE("imap = 0;") RT_OK,
	     "t.conf:3: backend 'mx1': 'imap' must be a port number 1..65535", 1},
	    {TLS_OK LST_OK BE("imap = 143; pop3 = 65536;") RT_OK,
	     "t.conf:3: backend 'mx1': 'pop3' must be a port number 1..65535", 1},
	    {TLS_OK LST_OK BE("imap = \"143\";") RT_OK,
	     "t.conf:3: backend 'mx1': 'imap' must be a port number 1..65535", 1},
	    {TLS_OK LST_OK BE("imap = 143; weight = 2;") RT_OK,
	     "t.conf:3: unknown setting 'weight' in a backend", 1},
	    {TLS_OK LST_OK "backends = ( { name = \"mx1\"; imap = 143; } );\n" RT_OK,
	     "t.conf:3: backend 'mx1': missing 'host'", 1},
	    {TLS_OK LST_OK "backends = ( { name = \"mx1\"; host = \"\"; imap = 143; } );\n" RT_OK,
	     "t.conf:3: backend 'mx1': 'host' must not be empty", 1},
	    {TLS_OK LST_OK
	     "backends = ( { name = \"mx 1\"; host = \"127.0.0.1\"; imap = 143; } );\n" RT_OK,
	     "t.conf:3: backend: 'name' must be 1..64 of A-Z a-z 0-9 . _ -",
	     2 /* and the route names mx1 */},
	    {TLS_OK LST_OK "backends = (\n"
	                   "  { name = \"mx1\"; host = \"127.0.0.1\"; imap = 143; },\n"
	                   "  { name = \"mx1\"; host = \"127.0.0.2\"; imap = 143; }\n"
	                   ");\n" RT_OK,
	     "t.conf:5: duplicate backend name 'mx1' (first on line 4)", 1},
	    {TLS_OK LST_OK "backends = ( );\n" RT_OK,
	     "t.conf:3: 'backends' is empty: at least one backend is required", 1},
	    /* routes */
	    {TLS_OK LST_OK BE_OK RT("default = true; backend = \"mx9\";"),
	     "t.conf:4: route: unknown backend 'mx9'", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; pool = [ \"mx1\", \"mx9\" ];"),
	     "t.conf:4: route: unknown backend 'mx9'", 1},
	    {TLS_OK LST_OK BE_OK RT("user = \"a@b\"; domain = \"b\"; backend = \"mx1\";"),
	     "t.conf:4: route: needs exactly one of 'user', 'domain' or 'default = true'", 1},
	    {TLS_OK LST_OK BE_OK RT("backend = \"mx1\";"),
	     "t.conf:4: route: needs exactly one of 'user', 'domain' or 'default = true'", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\";"),
	     "t.conf:4: route: needs exactly one of 'backend' or 'pool'", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; backend = \"mx1\"; pool = [ \"mx1\" ];"),
	     "t.conf:4: route: needs exactly one of 'backend' or 'pool'", 1},
	    {TLS_OK LST_OK BE_OK RT("default = false; backend = \"mx1\";"),
	     "t.conf:4: route: 'default' can only be true", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; pool = [ ];"),
	     "t.conf:4: route: 'pool' is empty", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; pool = [ \"mx1\", \"mx1\" ];"),
	     "t.conf:4: route: backend 'mx1' is twice in the pool", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; pool = \"mx1\";"),
	     "t.conf:4: route: unknown pool 'mx1' (a pool is a list [ \"a\", \"b\" ] or the name "
	     "of "
	     "one in 'pools')",
	     1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; pool = 5;"),
	     "t.conf:4: route: 'pool' must be a list of backend names [ \"a\", \"b\" ] or a pool's "
	     "name",
	     1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; pool = [ \"mx1\" ]; weights = [ 0 ];"),
	     "t.conf:4: route: a weight is an integer 1..1000", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; pool = [ \"mx1\" ]; weights = [ 1, 2 ];"),
	     "t.conf:4: route: 'weights' needs one weight per backend (1)", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; backend = \"mx1\"; weights = [ 1 ];"),
	     "t.conf:4: route: 'weights' goes with a pool = [ ... ] list", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = 5; backend = \"mx1\";"),
	     "t.conf:4: route: 'domain' must be a string", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"@b\"; backend = \"mx1\";"),
	     "t.conf:4: route for domain \"@b\": a domain cannot contain '@'", 1},
	    {TLS_OK LST_OK BE_OK RT("domain = \"b\"; backend = \"mx1\"; weight = 2;"),
	     "t.conf:4: unknown setting 'weight' in a route", 1},
	    {TLS_OK LST_OK BE_OK "routes = (\n"
	                         "  { user = \"Bob@b\"; backend = \"mx1\"; },\n"
	                         "  { user = \" bob@B\"; backend = \"mx1\"; }\n"
	                         ");\n",
	     "t.conf:6: route for user \" bob@B\": a rule for this user already exists", 1},
	    {TLS_OK LST_OK BE_OK "routes = (\n"
	                         "  { default = true; backend = \"mx1\"; },\n"
	                         "  { default = true; backend = \"mx1\"; }\n"
	                         ");\n",
	     "t.conf:6: route: a default route is already set on line 5", 1},
	    {TLS_OK LST_OK BE_OK "routes = ( );\n",
	     "t.conf:4: 'routes' is empty: at least one route is required", 1},
	    {TLS_OK LST_OK BE_OK, "t.conf:0: missing 'routes': at least one route is required", 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *errs = NULL, *nl;
		struct config *cfg = parse(rows[i].text, &errs);
		size_t n = count_lines(errs);

		if (cfg != NULL || n != rows[i].nerr ||
		    strncmp(errs, rows[i].want, strlen(rows[i].want)) != 0)
			print_message("row %zu printed:\n%s", i, errs);
		assert_null(cfg);
		assert_int_equal(n, rows[i].nerr);
		nl = strchr(errs, '\n');
		assert_non_null(nl);
		*nl = '\0';
		assert_string_equal(errs, rows[i].want);
		free(errs);
	}
}

/* ManageSieve: a "sieve" listener takes STARTTLS by default (RFC 5804
 * §1.8), backends a `sieve` port, and the policy its two settings. */
static void
sieve_listeners_backends_and_policy(void **state)
{
	static const char text[] = TLS_OK
	    "listeners = ( { listen = \"127.0.0.1:4190\"; protocol = \"sieve\"; },\n"
	    "  { listen = \"127.0.0.1:5190\"; protocol = \"sieve\"; tls = \"implicit\"; } );\n" BE(
	        "imap = 143; sieve = 4190;") RT_OK
	    "sieve_extensions = \"fileinto vacation\";\n"
	    "policy = { sieve_lock = \"as_imap\"; sieve_sessions = \"count\"; };\n";
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {BASE "sieve_extensions = \"a \\\"b\";\n",
	     "t.conf:5: 'sieve_extensions' must be printable ASCII without '\"' or '\\\\'\n"},
	    {BASE "sieve_extensions = \"\";\n", "t.conf:5: 'sieve_extensions' must not be empty\n"},
	    {BASE "policy = { sieve_lock = \"imap\"; };\n", NULL},
	};
	char *errs = NULL;
	struct config *cfg = parse(text, &errs);

	(void)state;
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	assert_int_equal(cfg->listeners[0].proto, PROTO_SIEVE);
	assert_int_equal(cfg->listeners[0].tls, TLSM_STARTTLS);
	assert_int_equal(cfg->listeners[1].tls, TLSM_IMPLICIT);
	assert_int_equal(cfg->backends[0].port[PROTO_SIEVE], 4190);
	assert_int_equal(cfg->backends[0].port[PROTO_POP3], 0);
	assert_string_equal(cfg->sieve_extensions, "fileinto vacation");
	assert_int_equal(cfg->policy.sieve_lock, SIEVE_LOCK_AS_IMAP);
	assert_int_equal(cfg->policy.sieve_sessions, SIEVE_SESSIONS_COUNT);
	assert_string_equal(proto_name(PROTO_SIEVE), "sieve");
	config_unref(&cfg);
	free(errs);

	/* the defaults: the lock and the session count leave ManageSieve alone */
	cfg = parse(BASE, &errs);
	assert_non_null(cfg);
	assert_null(cfg->sieve_extensions);
	assert_int_equal(cfg->policy.sieve_lock, SIEVE_LOCK_EXEMPT);
	assert_int_equal(cfg->policy.sieve_sessions, SIEVE_SESSIONS_EXEMPT);
	config_unref(&cfg);
	free(errs);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errs = NULL;
		cfg = parse(bad[i].text, &errs);
		if (bad[i].want != NULL)
			assert_string_equal(errs, bad[i].want);
		else
			assert_true(strstr(errs, "sieve_lock") != NULL);
		assert_null(cfg);
		free(errs);
	}
}

static void
all_mistakes_are_reported_at_once_in_file_order(void **state)
{
	static const char text[] =
	    "polcy = 1;\n"
	    "workers = 0;\n"
	    "tls = { certificates = ( { cert = \"/nonexistent/c.pem\"; key = \"@KEY@\"; } );\n"
	    "        min_version = \"SSLv3\"; };\n"
	    "listeners = ( { listen = \"[::1]\"; protocol = \"imap\"; } );\n"
	    "backends = ( { name = \"mx1\"; host = \"127.0.0.1\"; imap = 143; tls = \"tls\"; "
	    "} );\n"
	    "routes = ( { domain = \"example.org\"; backend = \"mx2\"; } );\n"
	    "timeouts = { idle = \"0s\"; };\n";
	static const char want[] =
	    "t.conf:1: unknown setting 'polcy'\n"
	    "t.conf:2: 'workers' must be \"auto\" or a number 1..256\n"
	    "t.conf:3: certificate file \"/nonexistent/c.pem\" is not readable: No such file or "
	    "directory\n"
	    "t.conf:4: 'tls.min_version' = \"SSLv3\": TLS below 1.2 is not allowed (RFC 8996)\n"
	    "t.conf:5: listener: bad listen address \"[::1]\": expected [IPv6]:port\n"
	    "t.conf:6: backend 'mx1': 'tls' must be \"none\", \"implicit\" or \"starttls\"\n"
	    "t.conf:7: route: unknown backend 'mx2'\n"
	    "t.conf:8: 'timeouts.idle' must be between 1s and 1d\n";
	char *errs = NULL;
	struct config *cfg = parse(text, &errs);

	(void)state;
	assert_null(cfg);
	assert_string_equal(errs, want);
	free(errs);
}

static void
durations_parse_to_milliseconds(void **state)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t ms;
	} rows[] = {
	    {"500ms", 0, 500},
	    {"30s", 0, 30000},
	    {"15m", 0, 900000},
	    {"2h", 0, 7200000},
	    {"90d", 0, 7776000000ULL},
	    {"10", 0, 10000}, /* a bare number is seconds */
	    {"0", 0, 0},
	    {"0ms", 0, 0},
	    {"007s", 0, 7000},
	    {"18446744073709551615ms", 0, UINT64_MAX},
	    {"213503982334d", 0, 213503982334ULL * 86400000ULL},
	    {"18446744073709551616ms", -1, 0}, /* UINT64_MAX + 1 */
	    {"18446744073709552s", -1, 0},     /* fits as a number, not as ms */
	    {"213503982335d", -1, 0},
	    {"99999999999999999999999999", -1, 0},
	    {"", -1, 0},
	    {"s", -1, 0},
	    {"ms", -1, 0},
	    {"10x", -1, 0},
	    {"10w", -1, 0},
	    {"10S", -1, 0},
	    {"10 s", -1, 0},
	    {" 10s", -1, 0},
	    {"10s ", -1, 0},
	    {"-5s", -1, 0},
	    {"+5s", -1, 0},
	    {"1.5s", -1, 0},
	    {"1h30m", -1, 0},
	    {"10mss", -1, 0},
	    {"0x10", -1, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t ms = 12345;
		int rc = config_duration_ms(rows[i].in, &ms);

		if (rc != rows[i].rc || (rc == 0 && ms != rows[i].ms))
			print_message("row %zu: \"%s\" -> %d, %llu\n", i, rows[i].in, rc,
			              (unsigned long long)ms);
		assert_int_equal(rc, rows[i].rc);
		if (rc == 0)
			assert_int_equal(ms, rows[i].ms);
		else
			assert_int_equal(ms, 12345); /* untouched on failure */
	}
	assert_int_equal(config_duration_ms(NULL, &(uint64_t){0}), -1);
}

static void
listen_addresses_parse_as_v4_v6_or_a_port_alone(void **state)
{
	static const struct {
		const char *in;
		int family; /* 0: refused with err */
		const char *host;
		unsigned port;
		const char *err;
	} rows[] = {
	    {"127.0.0.1:993", AF_INET, "127.0.0.1", 993, NULL},
	    {"0.0.0.0:143", AF_INET, "0.0.0.0", 143, NULL},
	    {"993", AF_INET, "0.0.0.0", 993, NULL},
	    {"1", AF_INET, "0.0.0.0", 1, NULL},
	    {"65535", AF_INET, "0.0.0.0", 65535, NULL},
	    {"[::]:993", AF_INET6, "::", 993, NULL},
	    {"[::1]:110", AF_INET6, "::1", 110, NULL},
	    {"[2001:db8::7]:995", AF_INET6, "2001:db8::7", 995, NULL},
	    {"[::ffff:192.0.2.1]:993", AF_INET6, "::ffff:192.0.2.1", 993, NULL},
	    {"", 0, NULL, 0, "empty address"},
	    {":993", 0, NULL, 0, "empty host before ':'"},
	    {"127.0.0.1:", 0, NULL, 0, "port must be a number 1..65535"},
	    {"127.0.0.1:0", 0, NULL, 0, "port must be a number 1..65535"},
	    {"0", 0, NULL, 0, "port must be a number 1..65535"},
	    {"127.0.0.1:65536", 0, NULL, 0, "port must be a number 1..65535"},
	    {"127.0.0.1:99999999999999999999", 0, NULL, 0, "port must be a number 1..65535"},
	    {"127.0.0.1:99a", 0, NULL, 0, "port must be a number 1..65535"},
	    {"127.0.0.1:+993", 0, NULL, 0, "port must be a number 1..65535"},
	    {"127.0.0.1: 993", 0, NULL, 0, "port must be a number 1..65535"},
	    {"993 ", 0, NULL, 0, "port must be a number 1..65535"},
	    {"localhost:993", 0, NULL, 0, "host must be a numeric IPv4 address"},
	    {"127.1:993", 0, NULL, 0, "host must be a numeric IPv4 address"},
	    {"256.0.0.1:993", 0, NULL, 0, "host must be a numeric IPv4 address"},
	    {" 127.0.0.1:993", 0, NULL, 0, "host must be a numeric IPv4 address"},
	    {"::1:993", 0, NULL, 0, "an IPv6 address needs brackets, as in [::1]:993"},
	    {"[::1]", 0, NULL, 0, "expected [IPv6]:port"},
	    {"[::1]993", 0, NULL, 0, "expected [IPv6]:port"},
	    {"[::1:993", 0, NULL, 0, "expected [IPv6]:port"},
	    {"[]:993", 0, NULL, 0, "not a numeric IPv6 address"},
	    {"[127.0.0.1]:993", 0, NULL, 0, "not a numeric IPv6 address"},
	    {"[fe80::1%eth0]:993", 0, NULL, 0, "not a numeric IPv6 address"},
	    {"[::1]:0", 0, NULL, 0, "port must be a number 1..65535"},
	    {"imap", 0, NULL, 0, "expected host:port, [IPv6]:port or port"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		const char *err = NULL;
		char buf[64];
		int rc = config_parse_listen(rows[i].in, &ss, &len, &err);

		if (rc != (rows[i].family ? 0 : -1))
			print_message("row %zu: \"%s\" -> %d %s\n", i, rows[i].in, rc,
			              err ? err : "");
		if (rows[i].family == 0) {
			assert_int_equal(rc, -1);
			assert_string_equal(err, rows[i].err);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(ss.ss_family, rows[i].family);
		assert_int_equal(len, rows[i].family == AF_INET ? sizeof(struct sockaddr_in)
		                                                : sizeof(struct sockaddr_in6));
		assert_string_equal(ntop(&ss, buf, sizeof(buf)), rows[i].host);
		assert_int_equal(port_of(&ss), rows[i].port);
	}
}

static void
a_backend_host_name_is_resolved_at_load(void **state)
{
	char *errs = NULL;
	struct config *cfg =
	    parse(TLS_OK LST_OK "backends = ( { name = \"mx1\"; host = \"localhost\"; imap = 143; "
	                        "} );\n" RT_OK,
	          &errs);
	const struct backend_conf *be;

	(void)state;
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	be = &cfg->backends[0];
	assert_true(be->addr[PROTO_IMAP].ss_family == AF_INET ||
	            be->addr[PROTO_IMAP].ss_family == AF_INET6);
	assert_true(be->addrlen[PROTO_IMAP] > 0);
	assert_int_equal(port_of(&be->addr[PROTO_IMAP]), 143);
	config_unref(&cfg);
	free(errs);
}

static void
routes_in_the_file_are_built_with_backends_by_position(void **state)
{
	static const char text[] =
	    TLS_OK LST_OK "backends = ( { name = \"a\"; host = \"127.0.0.1\"; imap = 143; },\n"
	                  "             { name = \"b\"; host = \"127.0.0.1\"; imap = 144; },\n"
	                  "             { name = \"c\"; host = \"127.0.0.1\"; imap = 145; } );\n"
	                  "routes = ( { user = \"VIP@Example.org\"; backend = \"c\"; },\n"
	                  "           { domain = \"Example.ORG\"; pool = [ \"a\", \"b\" ]; },\n"
	                  "           { domain = \"example.net\"; pool = ( \"b\", \"c\" ); } );\n";
	char *errs = NULL;
	struct config *cfg = parse(text, &errs);
	size_t out[ROUTE_POOL_MAX];

	(void)state;
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	assert_int_equal(home(cfg, "vip@example.org"), 2);
	assert_int_equal(route_lookup(cfg->routes, "x@example.org", 13, out, ROUTE_POOL_MAX), 2);
	assert_true((out[0] == 0 && out[1] == 1) || (out[0] == 1 && out[1] == 0));
	assert_int_equal(route_lookup(cfg->routes, "x@example.net", 13, out, ROUTE_POOL_MAX), 2);
	assert_true(out[0] >= 1 && out[1] >= 1);
	/* no default rule: others have no backend */
	assert_int_equal(home(cfg, "x@example.com"), SIZE_MAX);
	config_unref(&cfg);
	free(errs);
}

static void
references_keep_the_snapshot_alive_until_the_last_unref(void **state)
{
	char *errs = NULL;
	struct config *cfg = parse(BASE, &errs), *a, *b;

	(void)state;
	assert_non_null(cfg);
	a = config_ref(cfg);
	b = config_ref(cfg);
	assert_ptr_equal(a, cfg);
	assert_int_equal(atomic_load(&cfg->refs), 3);
	config_unref(&a);
	assert_null(a);
	config_unref(&cfg);
	assert_null(cfg);
	/* b still reads a live snapshot (ASan would object otherwise) */
	assert_int_equal(atomic_load(&b->refs), 1);
	assert_string_equal(b->backends[0].name, "mx1");
	config_unref(&b);
	config_unref(&b); /* takes NULL */
	free(errs);
}

static void
proto_names_are_lower_case(void **state)
{
	(void)state;
	assert_string_equal(proto_name(PROTO_IMAP), "imap");
	assert_string_equal(proto_name(PROTO_POP3), "pop3");
	assert_string_equal(proto_name(PROTO__COUNT), "?");
}

static void
loading_a_file_reports_errors_under_its_path(void **state)
{
	char dir[] = "/tmp/postern-conf-XXXXXX", path[128], inc[128], want[512], *errs = NULL;
	size_t len = 0;
	struct config *cfg;
	FILE *f, *ef;
	char *a, *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/postern.conf", dir);
	snprintf(inc, sizeof(inc), "%s/routes.inc", dir);

	/* a good file, with @include relative to its own directory */
	a = replace_all(TLS_OK LST_OK BE_OK "@include \"routes.inc\"\n", "@CERT@", cert_path);
	text = replace_all(a, "@KEY@", key_path);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	assert_non_null(f = fopen(inc, "w"));
	fputs(RT_OK, f);
	fclose(f);
	assert_non_null(ef = open_memstream(&errs, &len));
	cfg = config_load(path, ef);
	fclose(ef);
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	assert_string_equal(cfg->path, path);
	assert_int_equal(home(cfg, "anyone"), 0);
	config_unref(&cfg);
	free(errs);

	/* a mistake in the included file names that file */
	assert_non_null(f = fopen(inc, "w"));
	fputs("\n" RT("default = true; backend = \"mx7\";"), f);
	fclose(f);
	assert_non_null(ef = open_memstream(&errs, &len));
	assert_null(config_load(path, ef));
	fclose(ef);
	snprintf(want, sizeof(want), "%s:2: route: unknown backend 'mx7'\n", inc);
	assert_string_equal(errs, want);
	free(errs);

	/* so does a syntax error there */
	assert_non_null(f = fopen(inc, "w"));
	fputs("\nroutes = ;\n", f);
	fclose(f);
	assert_non_null(ef = open_memstream(&errs, &len));
	assert_null(config_load(path, ef));
	fclose(ef);
	snprintf(want, sizeof(want), "%s:2: syntax error\n", inc);
	assert_string_equal(errs, want);
	free(errs);

	/* a mistake in the file itself names it */
	assert_non_null(f = fopen(inc, "w"));
	fputs(RT_OK, f);
	fclose(f);
	assert_non_null(f = fopen(path, "w"));
	fputs("workers = 0;\n", f);
	fputs(text, f);
	fclose(f);
	assert_non_null(ef = open_memstream(&errs, &len));
	assert_null(config_load(path, ef));
	fclose(ef);
	snprintf(want, sizeof(want), "%s:1: 'workers' must be \"auto\" or a number 1..256\n", path);
	assert_string_equal(errs, want);
	free(errs);

	unlink(inc);
	unlink(path);
	/* and a file that is not there */
	assert_non_null(ef = open_memstream(&errs, &len));
	assert_null(config_load(path, ef));
	fclose(ef);
	snprintf(want, sizeof(want), "%s:0: cannot read: No such file or directory\n", path);
	assert_string_equal(errs, want);
	free(errs);
	rmdir(dir);
	free(a);
	free(text);
}

/*
 * etc/postern.conf must parse, and must show the defaults: with its paths
 * and user swapped for ones that exist here, it gives the same values as
 * a file that leaves everything out.
 */
static void
the_sample_config_parses_and_shows_the_defaults(void **state)
{
	const char *paths[] = {"etc/postern.conf", "../etc/postern.conf", "../../etc/postern.conf"};
	struct config *cfg, *def;
	char *text = NULL, *a, *b, *c, *errs = NULL;
	FILE *f = NULL;
	long n;

	(void)state;
	for (size_t i = 0; f == NULL && i < sizeof(paths) / sizeof(paths[0]); i++)
		f = fopen(paths[i], "r");
	if (f == NULL)
		skip();
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	a = replace_all(text, "/etc/postern/tls/fullchain.pem", "@CERT@");
	b = replace_all(a, "/etc/postern/tls/key.pem", "@KEY@");
	c = replace_all(b, "user = \"postern\";", "user = \"root\";");
	cfg = parse(c, &errs);
	if (cfg == NULL)
		print_message("%s", errs);
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	free(errs);
	def = parse(BASE, &errs);
	assert_non_null(def);

	assert_int_equal(cfg->workers, def->workers);
	assert_int_equal(cfg->log_level, def->log_level);
	assert_int_equal(cfg->tls.min_version, def->tls.min_version);
	assert_string_equal(cfg->tls.ciphers, def->tls.ciphers);
	assert_string_equal(cfg->tls.ciphersuites, def->tls.ciphersuites);
	assert_string_equal(cfg->tls.groups, def->tls.groups);
	assert_memory_equal(&cfg->timeouts, &def->timeouts, sizeof(cfg->timeouts));
	assert_memory_equal(&cfg->limits, &def->limits, sizeof(cfg->limits));
	assert_int_equal(cfg->policy.protocol_lock, def->policy.protocol_lock);
	assert_int_equal(cfg->policy.lock_expire_ms, def->policy.lock_expire_ms);
	assert_int_equal(cfg->policy.nprotocols, 0);
	assert_null(cfg->policy.protocols_file);
	assert_int_equal(cfg->policy.protocols_default, def->policy.protocols_default);
	assert_int_equal(cfg->policy.max_connections_per_ip, def->policy.max_connections_per_ip);
	assert_int_equal(cfg->policy.max_sessions_per_user, def->policy.max_sessions_per_user);
	assert_int_equal(cfg->policy.nallow, 0);
	assert_int_equal(cfg->policy.ndeny, 0);
	assert_int_equal(cfg->policy.ipv6_prefix, def->policy.ipv6_prefix);
	assert_int_equal(cfg->policy.throttle.ip_user_limit, def->policy.throttle.ip_user_limit);
	assert_int_equal(cfg->policy.throttle.ip_limit, def->policy.throttle.ip_limit);
	assert_int_equal(cfg->policy.throttle.window_ms, def->policy.throttle.window_ms);
	assert_int_equal(cfg->policy.throttle.delay_base_ms, def->policy.throttle.delay_base_ms);
	assert_int_equal(cfg->policy.throttle.delay_max_ms, def->policy.throttle.delay_max_ms);
	assert_null(cfg->state);
	assert_null(cfg->admin.http);
	assert_int_equal(cfg->nlisteners, 2);
	assert_int_equal(port_of(&cfg->listeners[0].addr), 993);
	assert_int_equal(port_of(&cfg->listeners[1].addr), 995);
	assert_int_equal(cfg->nbackends, 2);
	assert_int_equal(home(cfg, "ceo@example.org"), 1);
	assert_int_equal(home(cfg, "someone@example.com"), 0);

	config_unref(&cfg);
	config_unref(&def);
	free(errs);
	free(text);
	free(a);
	free(b);
	free(c);
}

static void
auth_mechanisms_default_global_and_per_listener(void **state)
{
	char *errs = NULL;
	struct config *cfg;
	(void)state;

	cfg = parse(BASE, &errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->auth_mechanisms, AUTHM_PLAIN | AUTHM_LOGIN);
	assert_int_equal(cfg->listeners[0].auth_mechanisms, AUTHM_PLAIN | AUTHM_LOGIN);
	config_unref(&cfg);
	free(errs);

	cfg = parse(TLS_OK BE_OK RT_OK
	            "auth_mechanisms = [ \"xoauth2\", \"PLAIN\" ];\n"
	            "listeners = ( { listen = \"127.0.0.1:9993\"; protocol = \"imap\"; },\n"
	            "  { listen = \"127.0.0.1:9995\"; protocol = \"pop3\"; "
	            "auth_mechanisms = [ \"oauthbearer\" ]; } );\n",
	            &errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->auth_mechanisms, AUTHM_XOAUTH2 | AUTHM_PLAIN);
	assert_int_equal(cfg->listeners[0].auth_mechanisms, AUTHM_XOAUTH2 | AUTHM_PLAIN);
	assert_int_equal(cfg->listeners[1].auth_mechanisms, AUTHM_OAUTHBEARER);
	config_unref(&cfg);
	free(errs);
}

static void
auth_mechanisms_unknown_empty_or_twice_are_errors(void **state)
{
	static const char *const bad[] = {
	    BASE "auth_mechanisms = [ \"cram-md5\" ];\n",
	    BASE "auth_mechanisms = [ ];\n",
	    BASE "auth_mechanisms = [ \"plain\", \"PLAIN\" ];\n",
	    BASE "auth_mechanisms = \"plain\";\n",
	    TLS_OK BE_OK RT_OK LST("listen = \"127.0.0.1:9993\"; protocol = \"imap\"; "
	                           "auth_mechanisms = [ \"digest-md5\" ];"),
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *errs = NULL;
		struct config *cfg = parse(bad[i], &errs);
		assert_null(cfg);
		assert_non_null(strstr(errs, "auth_mechanisms"));
		free(errs);
	}
}

static void
compress_is_pass_or_strip_on_imap_listeners_only(void **state)
{
	static const char *const bad[] = {
	    TLS_OK BE_OK RT_OK LST("listen = \"127.0.0.1:9993\"; protocol = \"imap\"; "
	                           "compress = \"deflate\";"),
	    TLS_OK BE_OK RT_OK LST("listen = \"127.0.0.1:9993\"; protocol = \"imap\"; "
	                           "compress = true;"),
	    TLS_OK BE_OK RT_OK LST("listen = \"127.0.0.1:9995\"; protocol = \"pop3\"; "
	                           "compress = \"strip\";"),
	};
	char *errs = NULL;
	struct config *cfg;
	(void)state;

	cfg = parse(BASE, &errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->listeners[0].compress, COMPRESS_PASS);
	config_unref(&cfg);
	free(errs);
	errs = NULL;
	cfg = parse(TLS_OK BE_OK RT_OK LST("listen = \"127.0.0.1:9993\"; protocol = \"imap\"; "
	                                   "compress = \"strip\";"),
	            &errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->listeners[0].compress, COMPRESS_STRIP);
	config_unref(&cfg);
	free(errs);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errs = NULL;
		cfg = parse(bad[i], &errs);
		assert_null(cfg);
		assert_non_null(strstr(errs, "'compress'"));
		free(errs);
	}
}

static void
lookup_is_off_by_default_and_every_key_has_its_default(void **state)
{
	char *errs = NULL;
	struct config *cfg = parse(BASE, &errs);
	const struct lookup_conf *lc;

	(void)state;
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	lc = &cfg->lookup;
	assert_null(lc->url);
	assert_null(config_lookup_url(cfg, &cfg->listeners[0]));
	{
		const uint64_t got_want[][2] = {
		    {lc->protocol, LOOKUP_PROTO_NGINX},
		    {lc->timeout_ms, 2000},
		    {lc->nheaders, 0},
		    {lc->send_password, true},
		    {lc->cache_ttl_ms, 0},
		    {lc->negative_ttl_ms, 0},
		    {(uint64_t)lc->max_inflight, 32},
		    {(uint64_t)lc->on_failure, LOOKUP_FAIL_UNAVAILABLE},
		    {(uint64_t)lc->breaker_failures, 5},
		    {lc->breaker_wait_ms, 10000},
		    {(uint64_t)lc->max_backends, 64},
		    {lc->backend_defaults.tls, TLSM_NONE},
		    {(uint64_t)lc->backend_defaults.rise, 2},
		    {(uint64_t)lc->backend_defaults.fall, 3},
		    {lc->backend_defaults.forward, 0},
		};
		for (size_t i = 0; i < sizeof(got_want) / sizeof(got_want[0]); i++)
			if (got_want[i][0] != got_want[i][1])
				fail_msg("row %zu: %llu, wanted %llu", i,
				         (unsigned long long)got_want[i][0],
				         (unsigned long long)got_want[i][1]);
	}
	assert_null(lc->ca);
	assert_null(lc->backend_defaults.ca);
	config_unref(&cfg);
	free(errs);
}

static void
lookup_section_reads_every_key(void **state)
{
	char *errs = NULL;
	struct config *cfg = parse(
	    TLS_OK BE_OK RT_OK
	    "listeners = ( { listen = \"127.0.0.1:9993\"; protocol = \"imap\"; },\n"
	    "  { listen = \"127.0.0.1:9994\"; protocol = \"imap\"; lookup = false; },\n"
	    "  { listen = \"127.0.0.1:9995\"; protocol = \"pop3\"; lookup = \"https://b/x\"; },\n"
	    "  { listen = \"127.0.0.1:9996\"; protocol = \"imap\"; lookup = true; } );\n"
	    "lookup = { url = \"http://127.0.0.1:9000/auth\"; protocol = \"json\";\n"
	    "  timeout = \"500ms\"; headers = [ \"X-Auth-Key: secret\", \"X-B:\" ];\n"
	    "  send_password = true; cache_ttl = \"30s\"; negative_ttl = 5;\n"
	    "  max_inflight = 4; on_failure = \"rules\"; breaker_failures = 2;\n"
	    "  breaker_wait = \"200ms\"; ca = \"@CERT@\"; max_backends = 512;\n"
	    "  backend_defaults = { tls = \"implicit\"; ca = \"@CERT@\"; verify_name = \"mx\";\n"
	    "    cert = \"@CERT@\"; key = \"@KEY@\"; forward = [ \"id\", \"proxy-v2\" ];\n"
	    "    rise = 1; fall = 7; }; };\n",
	    &errs);
	const struct lookup_conf *lc;

	(void)state;
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	lc = &cfg->lookup;
	assert_string_equal(lc->url, "http://127.0.0.1:9000/auth");
	assert_int_equal(lc->protocol, LOOKUP_PROTO_JSON);
	assert_int_equal(lc->timeout_ms, 500);
	assert_int_equal(lc->nheaders, 2);
	assert_string_equal(lc->headers[0], "X-Auth-Key: secret");
	assert_string_equal(lc->headers[1], "X-B:");
	assert_true(lc->send_password);
	assert_int_equal(lc->cache_ttl_ms, 30000);
	assert_int_equal(lc->negative_ttl_ms, 5000);
	assert_int_equal(lc->max_inflight, 4);
	assert_int_equal(lc->on_failure, LOOKUP_FAIL_RULES);
	assert_int_equal(lc->breaker_failures, 2);
	assert_int_equal(lc->breaker_wait_ms, 200);
	assert_string_equal(lc->ca, cert_path);
	assert_int_equal(lc->max_backends, 512);
	assert_int_equal(lc->backend_defaults.tls, TLSM_IMPLICIT);
	assert_string_equal(lc->backend_defaults.ca, cert_path);
	assert_string_equal(lc->backend_defaults.verify_name, "mx");
	assert_string_equal(lc->backend_defaults.cert, cert_path);
	assert_string_equal(lc->backend_defaults.key, key_path);
	assert_int_equal(lc->backend_defaults.forward, FORWARD_ID | FORWARD_PROXY_V2);
	assert_int_equal(lc->backend_defaults.rise, 1);
	assert_int_equal(lc->backend_defaults.fall, 7);
	assert_string_equal(config_lookup_url(cfg, &cfg->listeners[0]), lc->url);
	assert_int_equal(cfg->listeners[1].lookup, LISTENER_LOOKUP_OFF);
	assert_null(config_lookup_url(cfg, &cfg->listeners[1]));
	assert_int_equal(cfg->listeners[2].lookup, LISTENER_LOOKUP_URL);
	assert_string_equal(config_lookup_url(cfg, &cfg->listeners[2]), "https://b/x");
	assert_int_equal(cfg->listeners[3].lookup, LISTENER_LOOKUP_GLOBAL);
	assert_string_equal(config_lookup_url(cfg, NULL), lc->url);
	config_unref(&cfg);
	free(errs);
}

static void
send_password_defaults_by_protocol_and_a_listener_url_needs_no_section(void **state)
{
	char *errs = NULL;
	struct config *cfg;

	(void)state;
	cfg = parse(BASE "lookup = { url = \"http://h/\"; protocol = \"json\"; };\n", &errs);
	assert_non_null(cfg);
	assert_false(cfg->lookup.send_password);
	config_unref(&cfg);
	free(errs);
	cfg = parse(BASE "lookup = { url = \"http://h/\"; protocol = \"nginx\"; "
	                 "send_password = false; };\n",
	            &errs);
	assert_non_null(cfg);
	assert_false(cfg->lookup.send_password);
	config_unref(&cfg);
	free(errs);
	cfg = parse(TLS_OK BE_OK RT_OK LST("listen = \"127.0.0.1:9993\"; protocol = \"imap\"; "
	                                   "lookup = \"HTTP://10.0.0.1:81/a?b=c\";"),
	            &errs);
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	assert_null(cfg->lookup.url);
	assert_string_equal(config_lookup_url(cfg, &cfg->listeners[0]), "HTTP://10.0.0.1:81/a?b=c");
	assert_int_equal(cfg->lookup.timeout_ms, 2000);
	config_unref(&cfg);
	free(errs);
}

/* nginx mail's drop-in: listeners and a lookup, no backend, no route. */
static void
a_lookup_for_every_listener_makes_backends_and_routes_optional(void **state)
{
	size_t out[ROUTE_POOL_MAX];
	char *errs = NULL;
	struct config *cfg;

	(void)state;
	cfg = parse(TLS_OK LST_OK "lookup = { url = \"http://127.0.0.1:8080/auth\"; };\n", &errs);
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	assert_int_equal(cfg->nbackends, 0);
	assert_non_null(cfg->routes); /* empty: routes nobody */
	assert_int_equal(route_lookup(cfg->routes, "a@b", 3, out, ROUTE_POOL_MAX), 0);
	config_unref(&cfg);
	free(errs);
	cfg = parse(TLS_OK "listeners = ( { listen = \"127.0.0.1:9993\"; protocol = \"imap\"; "
	                   "lookup = \"http://h/\"; } );\nbackends = ( );\nroutes = ( );\n",
	            &errs);
	assert_string_equal(errs, "");
	assert_non_null(cfg);
	config_unref(&cfg);
	free(errs);
}

static void
lookup_mistakes_are_reported_with_their_line(void **state)
{
	static const struct {
		const char *conf, *msg;
	} bad[] = {
	    {BASE "lookup = { url = \"ftp://h/\"; };\n",
	     "t.conf:5: 'lookup.url': the URL must start"},
	    {BASE "lookup = { url = \"file:///etc/passwd\"; };\n", "must start with http://"},
	    {BASE "lookup = { url = \"http:///x\"; };\n",
	     "t.conf:5: 'lookup.url': the URL names no host"},
	    {BASE "lookup = { url = \"http://h/a b\"; };\n", "space or a control character"},
	    {BASE "lookup = { url = \"\"; };\n", "'lookup.url' must not be empty"},
	    {BASE "lookup = { url = 1; };\n", "'lookup.url' must be a string"},
	    {BASE "lookup = { url = \"http://h/\"; protocol = \"xml\"; };\n",
	     "'lookup.protocol' must be one of \"nginx\", \"json\""},
	    {BASE "lookup = { timeout = \"0\"; };\n",
	     "'lookup.timeout' must be between 1ms and 1m"},
	    {BASE "lookup = { timeout = \"61s\"; };\n", "'lookup.timeout' must be between"},
	    {BASE "lookup = { timeout = \"soon\"; };\n", "'lookup.timeout' must be a duration"},
	    {BASE "lookup = { headers = \"X: y\"; };\n", "'lookup.headers' must be a list"},
	    {BASE "lookup = { headers = [ \"X y\" ]; };\n",
	     "t.conf:5: 'lookup.headers': each line"},
	    {BASE "lookup = { headers = [ \": y\" ]; };\n", "'lookup.headers': each line"},
	    {BASE "lookup = { headers = [ \"X: a\\r\\nY: b\" ]; };\n",
	     "'lookup.headers': each line"},
	    {BASE "lookup = { headers = [ \"X(: y\" ]; };\n", "'lookup.headers': each line"},
	    {BASE "lookup = { headers = [ 1 ]; };\n", "'lookup.headers': each line"},
	    {BASE "lookup = { send_password = \"yes\"; };\n",
	     "'lookup.send_password' must be true or false"},
	    {BASE "lookup = { cache_ttl = \"2d\"; };\n",
	     "'lookup.cache_ttl' must be between 0 and 1d"},
	    {BASE "lookup = { negative_ttl = \"x\"; };\n",
	     "'lookup.negative_ttl' must be a duration"},
	    {BASE "lookup = { max_inflight = 0; };\n",
	     "'lookup.max_inflight' must be between 1 and 1024"},
	    {BASE "lookup = { max_inflight = 1025; };\n", "'lookup.max_inflight' must be between"},
	    {BASE "lookup = { on_failure = \"open\"; };\n",
	     "'lookup.on_failure' must be one of \"unavailable\", \"rules\""},
	    {BASE "lookup = { breaker_failures = 0; };\n",
	     "'lookup.breaker_failures' must be between"},
	    {BASE "lookup = { breaker_wait = \"50ms\"; };\n",
	     "'lookup.breaker_wait' must be between 100ms and 1h"},
	    {BASE "lookup = { ca = \"/nonexistent/ca.pem\"; };\n", "/nonexistent/ca.pem"},
	    {BASE "lookup = { max_backends = 513; };\n",
	     "'lookup.max_backends' must be between 1 and 512"},
	    {BASE "lookup = { backend_defaults = 1; };\n",
	     "'lookup.backend_defaults' must be a group"},
	    {BASE "lookup = { backend_defaults = { tls = \"tls\"; }; };\n",
	     "lookup.backend_defaults: 'tls' must be \"none\", \"implicit\" or \"starttls\""},
	    {BASE "lookup = { backend_defaults = { ca = \"@CERT@\"; }; };\n",
	     "lookup.backend_defaults: 'ca' needs backend TLS"},
	    {BASE "lookup = { backend_defaults = { host = \"x\"; }; };\n", "host"},
	    {BASE "lookup = { backend_defaults = { tls = \"implicit\"; cert = \"@CERT@\"; }; };\n",
	     "needs both 'cert' and 'key'"},
	    {BASE "lookup = { backend_defaults = { forward = \"smtp\"; }; };\n", "'forward' takes"},
	    {BASE "lookup = { backend_defaults = { rise = 0; }; };\n",
	     "'rise' must be an integer 1..100"},
	    {BASE "lookup = { colour = \"red\"; };\n", "unknown setting 'lookup.colour'"},
	    {BASE "lookup = \"http://h/\";\n", "'lookup' must be a group"},
	    {TLS_OK BE_OK RT_OK LST(
	         "listen = \"127.0.0.1:9993\"; protocol = \"imap\"; lookup = 1;"),
	     "listener: 'lookup' must be true, false or a URL"},
	    {TLS_OK BE_OK RT_OK LST("listen = \"127.0.0.1:9993\"; protocol = \"imap\"; "
	                            "lookup = \"redis://h\";"),
	     "t.conf:4: listener: 'lookup': the URL must start with http:// or https://"},
	    {TLS_OK BE_OK RT_OK LST("listen = \"127.0.0.1:9993\"; protocol = \"imap\"; "
	                            "lookup = true;"),
	     "listener: 'lookup = true' needs the top-level lookup.url"},
	    /* without backends or routes every listener needs a lookup */
	    {TLS_OK "listeners = ( { listen = \"127.0.0.1:9993\"; protocol = \"imap\"; },\n"
	            "  { listen = \"127.0.0.1:9994\"; protocol = \"imap\"; lookup = false; } );\n"
	            "lookup = { url = \"http://h/\"; };\n",
	     "t.conf:0: missing 'backends': at least one backend is required (a listener "
	     "without a lookup needs one)"},
	    {TLS_OK LST_OK "missing_backends = 1;\n", "missing 'backends'"},
	    {TLS_OK LST_OK RT_OK "lookup = { url = \"http://h/\"; };\n",
	     "t.conf:3: 'routes' name backends, but 'backends' is missing or empty"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *errs = NULL;
		struct config *cfg = parse(bad[i].conf, &errs);

		if (strstr(errs, bad[i].msg) == NULL)
			fail_msg("case %zu: wanted \"%s\", got \"%s\"", i, bad[i].msg, errs);
		assert_null(cfg);
		free(errs);
	}
}

static void
lookup_headers_take_at_most_their_bound(void **state)
{
	char conf[4096] = BASE "lookup = { headers = [ ", *errs = NULL;
	struct config *cfg;

	(void)state;
	for (int i = 0; i < LOOKUP_HEADERS_MAX; i++)
		strcat(conf, i ? ", \"X-A: 1\"" : "\"X-A: 1\"");
	strcat(conf, " ]; };\n");
	cfg = parse(conf, &errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->lookup.nheaders, LOOKUP_HEADERS_MAX);
	config_unref(&cfg);
	free(errs);
	strcpy(strstr(conf, " ]; };\n"), ", \"X-B: 2\" ]; };\n");
	cfg = parse(conf, &errs);
	assert_null(cfg);
	assert_non_null(strstr(errs, "'lookup.headers' holds more than 32 lines"));
	free(errs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_full_config_parses_to_the_expected_struct),
	    cmocka_unit_test(compress_is_pass_or_strip_on_imap_listeners_only),
	    cmocka_unit_test(a_minimal_config_gets_the_documented_defaults),
	    cmocka_unit_test(redis_state_urls_name_a_host_port_and_db_or_a_socket),
	    cmocka_unit_test(sentinel_state_urls_list_the_sentinels_and_name_the_master),
	    cmocka_unit_test(redis_user_sentinel_password_and_wait_replicas_are_checked),
	    cmocka_unit_test(admin_http_takes_a_numeric_address_and_port),
	    cmocka_unit_test(each_mistake_is_reported_with_its_file_and_line),
	    cmocka_unit_test(all_mistakes_are_reported_at_once_in_file_order),
	    cmocka_unit_test(durations_parse_to_milliseconds),
	    cmocka_unit_test(listen_addresses_parse_as_v4_v6_or_a_port_alone),
	    cmocka_unit_test(a_backend_host_name_is_resolved_at_load),
	    cmocka_unit_test(routes_in_the_file_are_built_with_backends_by_position),
	    cmocka_unit_test(references_keep_the_snapshot_alive_until_the_last_unref),
	    cmocka_unit_test(proto_names_are_lower_case),
	    cmocka_unit_test(loading_a_file_reports_errors_under_its_path),
	    cmocka_unit_test(the_sample_config_parses_and_shows_the_defaults),
	    cmocka_unit_test(auth_mechanisms_default_global_and_per_listener),
	    cmocka_unit_test(auth_mechanisms_unknown_empty_or_twice_are_errors),
	    cmocka_unit_test(lookup_is_off_by_default_and_every_key_has_its_default),
	    cmocka_unit_test(lookup_section_reads_every_key),
	    cmocka_unit_test(
	        send_password_defaults_by_protocol_and_a_listener_url_needs_no_section),
	    cmocka_unit_test(lookup_mistakes_are_reported_with_their_line),
	    cmocka_unit_test(a_lookup_for_every_listener_makes_backends_and_routes_optional),
	    cmocka_unit_test(lookup_headers_take_at_most_their_bound),
	    cmocka_unit_test(sieve_listeners_backends_and_policy),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
