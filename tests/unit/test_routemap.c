/*
 * test_routemap.c: route map files (route_map_load() in lib/route_map.c): the
 * format, errors with their line numbers (all of them), duplicates, the rule
 * that a map may not repeat a config key, pools by name, and a big map.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "unit.h"

#include "account.h"
#include "route.h"

static const char *const names[] = {"mx0", "mx1", "mx2", "mx3"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

/* What config.c would pass: backends by name, and two named pools. */
struct resolver {
	size_t calls;
};

static int
resolve(void *arg, const char *name, size_t *pool_out, uint32_t *weights_out, size_t *n_out)
{
	struct resolver *r = arg;

	r->calls++;
	for (size_t i = 0; i < NNAMES; i++) {
		assert_int_equal(weights_out[i], 1); /* preset, as the header says */
		if (strcmp(name, names[i]) == 0) {
			pool_out[0] = i;
			*n_out = 1;
			return 0;
		}
	}
	if (strcmp(name, "pool:all") == 0) {
		for (size_t i = 0; i < NNAMES; i++)
			pool_out[i] = i;
		*n_out = NNAMES;
		return 0;
	}
	if (strcmp(name, "pool:heavy") == 0) {
		pool_out[0] = 2;
		pool_out[1] = 3;
		weights_out[1] = 3;
		*n_out = 2;
		return 0;
	}
	if (strcmp(name, "pool:broken") == 0) {
		pool_out[0] = 99; /* a resolver bug: the table refuses it */
		*n_out = 1;
		return 0;
	}
	return -1;
}

/* A file with text in it; *path_out is malloc'ed, unlink and free it. */
static char *
write_map(const char *text, size_t len)
{
	char *path = strdup("/tmp/test_routemap.XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

struct load {
	int rc;
	char *errs; /* malloc'ed: what was printed */
	size_t calls;
	char path[64];
};

/* Load text as a map into rt; the errors printed come back in ld->errs. */
static void
load_text(struct route_table *rt, const char *text, size_t len, struct load *ld)
{
	char *path = write_map(text, len);
	struct resolver r = {0};
	size_t elen = 0;
	FILE *errs = open_memstream(&ld->errs, &elen);

	assert_non_null(errs);
	ld->rc = route_map_load(rt, path, resolve, &r, errs);
	fclose(errs);
	ld->calls = r.calls;
	snprintf(ld->path, sizeof(ld->path), "%s", path);
	unlink(path);
	free(path);
}

static void
load_s(struct route_table *rt, const char *text, struct load *ld)
{
	load_text(rt, text, strlen(text), ld);
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* errs has "path:line: <want...>" as one of its lines. */
static void
assert_error(const struct load *ld, unsigned line, const char *want)
{
	char prefix[96];
	const char *p = ld->errs;

	snprintf(prefix, sizeof(prefix), "%s:%u: ", ld->path, line);
	while ((p = strstr(p, prefix)) != NULL) {
		const char *eol = strchr(p, '\n');
		const char *msg = p + strlen(prefix);

		assert_non_null(eol);
		if ((size_t)(eol - msg) >= strlen(want) && memcmp(msg, want, strlen(want)) == 0)
			return;
		p = eol;
	}
	fail_msg("no \"%s%s\" in:\n%s", prefix, want, ld->errs);
}

static struct route_table *
table(void)
{
	struct route_table *rt = route_table_new(names, NNAMES);

	assert_non_null(rt);
	return rt;
}

/* The home of user, looked up as a login does: by its account key. */
static size_t
home(const struct route_table *rt, const char *user)
{
	char key[ACCOUNT_KEY_MAX + 1];
	size_t len = account_key(user, strlen(user), key, sizeof(key)), out[ROUTE_POOL_MAX];

	return route_lookup(rt, key, len, out, ROUTE_POOL_MAX) ? out[0] : SIZE_MAX;
}

static void
a_map_routes_users_and_domains_to_backends_and_pools(void **state)
{
	static const char map[] = "alice@example.org mx1\n"
	                          "@example.net mx2\n"
	                          "@example.com pool:all\n";
	struct route_table *rt = table(), *ref = table();
	size_t all[NNAMES] = {0, 1, 2, 3}, got[ROUTE_POOL_MAX], want[ROUTE_POOL_MAX];
	const char *err;
	struct load ld;

	(void)state;
	load_s(rt, map, &ld);
	assert_string_equal(ld.errs, "");
	assert_int_equal(ld.rc, 0);
	assert_int_equal(home(rt, "alice@example.org"), 1);
	assert_int_equal(home(rt, "bob@example.net"), 2);
	assert_int_equal(home(rt, "bob@example.org"), SIZE_MAX); /* no default */

	/* a pool by name ranks exactly like the same pool written in the config */
	assert_int_equal(route_add_domain(ref, "example.com", all, NULL, NNAMES, &err), 0);
	for (int i = 0; i < 1000; i++) {
		char u[64];

		snprintf(u, sizeof(u), "user%d@example.com", i);
		assert_int_equal(route_lookup(rt, u, strlen(u), got, ROUTE_POOL_MAX), NNAMES);
		assert_int_equal(route_lookup(ref, u, strlen(u), want, ROUTE_POOL_MAX), NNAMES);
		assert_memory_equal(got, want, sizeof(got[0]) * NNAMES);
	}
	free(ld.errs);
	route_table_free(&rt);
	route_table_free(&ref);
}

static void
a_weighted_pool_keeps_its_weights(void **state)
{
	struct route_table *rt = table(), *ref = table();
	const size_t pool[2] = {2, 3};
	const uint32_t w[2] = {1, 3};
	const char *err;
	struct load ld;

	(void)state;
	load_s(rt, "@example.org pool:heavy\n", &ld);
	assert_int_equal(ld.rc, 0);
	assert_int_equal(route_add_domain(ref, "example.org", pool, w, 2, &err), 0);
	for (int i = 0; i < 2000; i++) {
		char u[64];

		snprintf(u, sizeof(u), "user%d@example.org", i);
		assert_int_equal(home(rt, u), home(ref, u));
	}
	free(ld.errs);
	route_table_free(&rt);
	route_table_free(&ref);
}

static void
comments_blank_lines_and_surrounding_space_are_ignored(void **state)
{
	static const char map[] = "# users moved in March\n"
	                          "\n"
	                          "   \t  \n"
	                          "  # an indented comment\n"
	                          "\talice@example.org \t mx1   \n"
	                          "Bob@Example.ORG mx2 # a trailing comment\n"
	                          "carol@example.org mx3\r\n" /* CRLF */
	                          "@Example.NET\tmx0\t#\n"
	                          "dave@example.org mx1"; /* no LF at the end */
	struct route_table *rt = table();
	struct load ld;

	(void)state;
	load_s(rt, map, &ld);
	assert_string_equal(ld.errs, "");
	assert_int_equal(ld.rc, 0);
	assert_int_equal(home(rt, "alice@example.org"), 1);
	assert_int_equal(home(rt, "bob@example.org"), 2); /* keys are normalised */
	assert_int_equal(home(rt, "carol@example.org"), 3);
	assert_int_equal(home(rt, "x@example.net"), 0);
	assert_int_equal(home(rt, "dave@example.org"), 1);
	free(ld.errs);
	route_table_free(&rt);
}

static void
an_empty_file_loads_nothing_and_succeeds(void **state)
{
	struct route_table *rt = table();
	struct load ld;

	(void)state;
	load_s(rt, "", &ld);
	assert_int_equal(ld.rc, 0);
	assert_string_equal(ld.errs, "");
	free(ld.errs);
	load_s(rt, "\n\n# only comments\n", &ld);
	assert_int_equal(ld.rc, 0);
	free(ld.errs);
	route_table_free(&rt);
}

static void
every_format_error_is_reported_with_its_line_number(void **state)
{
	static const struct {
		const char *line;
		const char *error; /* NULL: a good line */
	} rows[] = {
	    {"ok1@example.org mx0", NULL},
	    {"lonely@example.org", "\"lonely@example.org\" has no target"},
	    {"nocomment@example.org # mx1", "\"nocomment@example.org\" has no target"},
	    {"three@example.org mx1 mx2", "unexpected \"mx2\" after the target"},
	    {"ghost@example.org mx9", "unknown backend \"mx9\""},
	    {"@example.org pool:none", "unknown pool \"none\""},
	    {"@ mx1", "empty domain after '@'"},
	    {"@a@example.org mx1", "domain \"a@example.org\": a domain cannot contain '@'"},
	    {"broken@example.org pool:broken", "user \"broken@example.org\": backend index out"},
	    {"mx1", "\"mx1\" has no target"},
	    {"ok2@example.org mx1", NULL},
	    {"dup@example.org mx1", NULL},
	    {"DUP@example.org mx2", "duplicate user \"dup@example.org\" (first on line 12)"},
	    {"@dup.example mx1", NULL},
	    {"@Dup.Example mx1", "duplicate domain \"dup.example\" (first on line 14)"},
	    {"nul@example.org mx1\0junk", "NUL byte in the line"},
	    {"ok3@example.org mx2", NULL},
	};
	struct route_table *rt = table();
	char text[4096];
	size_t len = 0, nerr = 0;
	struct load ld;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		/* the NUL row: its bytes up to the end of the literal */
		size_t n = strlen(rows[i].line);

		if (strstr(rows[i].line, "nul@") == rows[i].line)
			n += 1 + strlen(rows[i].line + n + 1);
		memcpy(text + len, rows[i].line, n);
		len += n;
		text[len++] = '\n';
		nerr += rows[i].error != NULL;
	}
	load_text(rt, text, len, &ld);
	assert_int_equal(ld.rc, -1);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (rows[i].error != NULL)
			assert_error(&ld, (unsigned)(i + 1), rows[i].error);
	assert_int_equal(count_lines(ld.errs), nerr); /* each once, nothing more */
	/* the good lines were added all the same */
	assert_int_equal(home(rt, "ok1@example.org"), 0);
	assert_int_equal(home(rt, "ok3@example.org"), 2);
	assert_int_equal(home(rt, "dup@example.org"), 1); /* the first one stays */
	free(ld.errs);
	route_table_free(&rt);
}

static void
a_map_may_not_repeat_a_config_key_but_may_refine_a_config_domain(void **state)
{
	static const char map[] = "ceo@example.org mx3\n"   /* also a config user rule */
	                          "@example.org mx3\n"      /* also a config domain rule */
	                          "alice@example.org mx2\n" /* a user under a config domain */
	                          "@example.net mx1\n"      /* a domain above a config user */
	                          "CEO@EXAMPLE.ORG mx3\n";  /* normalised before comparing */
	struct route_table *rt = table();
	const size_t p0 = 0, p1 = 1, p3 = 3;
	const char *err;
	struct load ld;

	(void)state;
	assert_int_equal(route_add_user(rt, "ceo@example.org", &p0, NULL, 1, &err), 0);
	assert_int_equal(route_add_user(rt, "boss@example.net", &p0, NULL, 1, &err), 0);
	assert_int_equal(route_add_domain(rt, "example.org", &p1, NULL, 1, &err), 0);
	assert_int_equal(route_set_default(rt, &p3, NULL, 1, &err), 0);
	load_s(rt, map, &ld);
	assert_int_equal(ld.rc, -1);
	assert_error(&ld, 1, "user \"ceo@example.org\" already has a route in the config");
	assert_error(&ld, 2, "domain \"example.org\" already has a route in the config");
	assert_error(&ld, 5, "user \"ceo@example.org\" already has a route in the config");
	assert_int_equal(count_lines(ld.errs), 3);

	/* the config's rules stand; map rules take their usual precedence */
	assert_int_equal(home(rt, "ceo@example.org"), 0);
	assert_int_equal(home(rt, "bob@example.org"), 1);
	assert_int_equal(home(rt, "alice@example.org"), 2); /* map user > config domain */
	assert_int_equal(home(rt, "boss@example.net"), 0);  /* config user > map domain */
	assert_int_equal(home(rt, "other@example.net"), 1); /* map domain > default */
	assert_int_equal(home(rt, "other@example.com"), 3); /* the default */
	free(ld.errs);
	route_table_free(&rt);
}

static void
an_over_long_line_is_reported_once_and_the_next_lines_still_load(void **state)
{
	/* 5000 bytes, then one over the 1 MiB read buffer, then good lines */
	const size_t big = (1u << 20) + 100;
	char *text = malloc(5000 + big + 256);
	size_t len = 0;
	struct route_table *rt = table();
	struct load ld;

	(void)state;
	assert_non_null(text);
	len += (size_t)sprintf(text + len, "a@example.org mx1\n");
	memset(text + len, 'x', 5000);
	len += 5000;
	text[len++] = '\n';
	len += (size_t)sprintf(text + len, "b@example.org mx2\n");
	memset(text + len, 'y', big);
	len += big;
	len += (size_t)sprintf(text + len, " mx1\nc@example.org mx3\nd@example.org mx9\n");
	load_text(rt, text, len, &ld);
	assert_int_equal(ld.rc, -1);
	assert_error(&ld, 2, "line longer than 4096 bytes");
	assert_error(&ld, 4, "line longer than 4096 bytes");
	assert_error(&ld, 6, "unknown backend \"mx9\"");
	assert_int_equal(count_lines(ld.errs), 3);
	assert_int_equal(home(rt, "a@example.org"), 1);
	assert_int_equal(home(rt, "b@example.org"), 2);
	assert_int_equal(home(rt, "c@example.org"), 3);
	free(ld.errs);
	free(text);
	route_table_free(&rt);
}

static void
a_line_of_exactly_the_limit_is_accepted(void **state)
{
	char text[ROUTE_MAP_LINE_MAX + 64];
	size_t len = (size_t)sprintf(text, "e@example.org mx1 #");
	struct route_table *rt = table();
	struct load ld;

	(void)state;
	memset(text + len, 'c', ROUTE_MAP_LINE_MAX - len);
	len = ROUTE_MAP_LINE_MAX;
	text[len++] = '\n';
	load_text(rt, text, len, &ld);
	assert_string_equal(ld.errs, "");
	assert_int_equal(home(rt, "e@example.org"), 1);
	free(ld.errs);
	route_table_free(&rt);
}

static void
keys_over_255_bytes_are_refused(void **state)
{
	char text[2 * ROUTE_USER_MAX + 64], key[ROUTE_USER_MAX + 1];
	struct route_table *rt = table();
	struct load ld;

	(void)state;
	memset(key, 'k', ROUTE_USER_MAX - 1);
	key[ROUTE_USER_MAX - 1] = '\0'; /* 255: fits */
	snprintf(text, sizeof(text), "%s mx1\n%sk mx1\n", key, key);
	load_s(rt, text, &ld);
	assert_int_equal(ld.rc, -1);
	assert_error(&ld, 2, "user \"kkkk");
	assert_non_null(strstr(ld.errs, "...\" is longer than 255 bytes")); /* cut for the log */
	assert_int_equal(count_lines(ld.errs), 1);
	assert_int_equal(home(rt, key), 1);
	free(ld.errs);
	route_table_free(&rt);
}

static void
a_missing_file_is_one_error_on_line_zero(void **state)
{
	struct route_table *rt = table();
	struct resolver r = {0};
	char *buf = NULL;
	size_t blen = 0;
	FILE *errs = open_memstream(&buf, &blen);

	(void)state;
	assert_int_equal(route_map_load(rt, "/nonexistent/postern.map", resolve, &r, errs), -1);
	fclose(errs);
	assert_string_equal(buf,
	                    "/nonexistent/postern.map:0: cannot open: No such file or directory\n");
	/* errs may be NULL: nothing printed, the result the same */
	assert_int_equal(route_map_load(rt, "/nonexistent/postern.map", resolve, &r, NULL), -1);
	free(buf);
	route_table_free(&rt);
}

static void
a_run_of_equal_targets_is_resolved_once(void **state)
{
	static const char map[] = "a@x mx1\nb@x mx1\nc@x mx1\n# comment\nd@x mx1\n"
	                          "e@x mx2\nf@x mx2\ng@x mx1\n";
	struct route_table *rt = table();
	struct load ld;

	(void)state;
	load_s(rt, map, &ld);
	assert_int_equal(ld.rc, 0);
	assert_int_equal(ld.calls, 3); /* mx1, mx2, mx1 */
	assert_int_equal(home(rt, "g@x"), 1);
	assert_int_equal(home(rt, "f@x"), 2);
	free(ld.errs);
	route_table_free(&rt);
}

static void
a_map_of_100k_users_routes_each_to_its_backend(void **state)
{
	enum { N = 100000 };
	char *text = malloc((size_t)N * 48), u[64];
	size_t len = 0;
	struct route_table *rt = table();
	const size_t fallback = 0;
	const char *err;
	struct load ld;

	(void)state;
	assert_non_null(text);
	assert_int_equal(route_set_default(rt, &fallback, NULL, 1, &err), 0);
	for (size_t i = 0; i < N; i++)
		len += (size_t)sprintf(text + len, "user%zu@example%zu.org mx%zu\n", i, i % 7,
		                       1 + i % 3);
	load_text(rt, text, len, &ld);
	assert_string_equal(ld.errs, "");
	assert_int_equal(ld.rc, 0);
	for (size_t i = 0; i < N; i++) {
		snprintf(u, sizeof(u), "User%zu@Example%zu.org", i, i % 7);
		assert_int_equal(home(rt, u), 1 + i % 3);
	}
	assert_int_equal(home(rt, "user100000@example0.org"), fallback);
	free(ld.errs);
	free(text);
	route_table_free(&rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_map_routes_users_and_domains_to_backends_and_pools),
	    cmocka_unit_test(a_weighted_pool_keeps_its_weights),
	    cmocka_unit_test(comments_blank_lines_and_surrounding_space_are_ignored),
	    cmocka_unit_test(an_empty_file_loads_nothing_and_succeeds),
	    cmocka_unit_test(every_format_error_is_reported_with_its_line_number),
	    cmocka_unit_test(a_map_may_not_repeat_a_config_key_but_may_refine_a_config_domain),
	    cmocka_unit_test(an_over_long_line_is_reported_once_and_the_next_lines_still_load),
	    cmocka_unit_test(a_line_of_exactly_the_limit_is_accepted),
	    cmocka_unit_test(keys_over_255_bytes_are_refused),
	    cmocka_unit_test(a_missing_file_is_one_error_on_line_zero),
	    cmocka_unit_test(a_run_of_equal_targets_is_resolved_once),
	    cmocka_unit_test(a_map_of_100k_users_routes_each_to_its_backend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
