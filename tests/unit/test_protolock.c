/*
 * test_protolock.c: the protocol lock.  Every mode's decision table, with
 * the stored lock and the clock as inputs; expiry and its refresh with a
 * test clock; the static rule table (user, then domain, then default) and
 * its map file, each mistake reported with its line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "unit.h"

#include "protolock.h"

#define SEC 1000ULL
#define DAY (86400 * SEC)
#define T0  1700000000000ULL /* a wall-clock time, ms */

#define IMAP PROTO_IMAP
#define POP3 PROTO_POP3
#define NONE PROTO__COUNT
#define M_I  PROTO_MASK(PROTO_IMAP)
#define M_P  PROTO_MASK(PROTO_POP3)
#define M_IP PROTO_MASK_ALL

enum stored { S_NONE, S_IMAP, S_POP3 };

struct row {
	enum protocol_lock_mode mode;
	unsigned allow;
	bool explicit_rule;
	enum stored stored;
	uint64_t used_ago; /* stored lock: now - used_ms */
	enum proto_kind proto;
	enum policy_verdict verdict;
	enum protolock_write write;
	enum proto_kind allowed;
	const char *reason;
};

static void
run_rows(const struct row *rows, size_t n, uint64_t expire)
{
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		struct store_lock st = {.proto = r->stored == S_POP3 ? POP3 : IMAP,
		                        .origin = STORE_ORIGIN_LOGIN,
		                        .created_ms = T0 - 30 * DAY,
		                        .used_ms = T0 - r->used_ago};
		struct protolock_rule rule = {.allow = r->allow, .explicit_rule = r->explicit_rule};
		struct protolock_decision d = protolock_decide(
		    r->mode, rule, r->stored == S_NONE ? NULL : &st, r->proto, T0, expire);

		if (d.verdict != r->verdict || d.write != r->write || d.allowed != r->allowed ||
		    strcmp(policy_reason_name(d.reason), r->reason) != 0)
			print_message("row %zu: verdict %d write %d allowed %d reason %s\n", i,
			              d.verdict, d.write, d.allowed, policy_reason_name(d.reason));
		assert_int_equal(d.verdict, r->verdict);
		assert_int_equal(d.write, r->write);
		assert_int_equal(d.allowed, r->allowed);
		assert_string_equal(policy_reason_name(d.reason), r->reason);
		if (d.write == PROTOLOCK_CREATE || d.write == PROTOLOCK_REPLACE) {
			assert_int_equal(d.rec.proto, r->proto);
			assert_int_equal(d.rec.origin, STORE_ORIGIN_LOGIN);
			assert_int_equal(d.rec.created_ms, T0);
			assert_int_equal(d.rec.used_ms, T0);
		} else if (d.write == PROTOLOCK_REFRESH) {
			assert_int_equal(d.rec.proto, st.proto);
			assert_int_equal(d.rec.created_ms, st.created_ms); /* kept */
			assert_int_equal(d.rec.used_ms, T0);
		}
	}
}

#define ALLOW POLICY_ALLOW
#define DENY  POLICY_DENY_PROTOCOL
#define W0    PROTOLOCK_NONE

static void
off_allows_everything_and_writes_nothing(void **state)
{
	static const struct row rows[] = {
	    {PLOCK_OFF, M_IP, false, S_NONE, 0, IMAP, ALLOW, W0, NONE, "ok"},
	    {PLOCK_OFF, M_I, true, S_NONE, 0, POP3, ALLOW, W0, NONE, "ok"},
	    {PLOCK_OFF, M_IP, false, S_IMAP, 0, POP3, ALLOW, W0, NONE, "ok"},
	    {PLOCK_OFF, 0, false, S_POP3, 0, IMAP, ALLOW, W0, NONE, "ok"},
	};

	(void)state;
	run_rows(rows, sizeof(rows) / sizeof(rows[0]), 90 * DAY);
}

static void
static_follows_user_domain_or_default_and_ignores_stored_locks(void **state)
{
	static const struct row rows[] = {
	    {PLOCK_STATIC, M_IP, false, S_NONE, 0, IMAP, ALLOW, W0, NONE, "ok"},
	    {PLOCK_STATIC, M_IP, false, S_NONE, 0, POP3, ALLOW, W0, NONE, "ok"},
	    {PLOCK_STATIC, M_I, true, S_NONE, 0, IMAP, ALLOW, W0, NONE, "ok"},
	    {PLOCK_STATIC, M_I, true, S_NONE, 0, POP3, DENY, W0, IMAP, "static_rule"},
	    {PLOCK_STATIC, M_P, true, S_NONE, 0, IMAP, DENY, W0, POP3, "static_rule"},
	    {PLOCK_STATIC, M_P, false, S_NONE, 0, IMAP, DENY, W0, POP3, "static_rule"},
	    {PLOCK_STATIC, M_P, false, S_NONE, 0, POP3, ALLOW, W0, NONE, "ok"},
	    /* a stored lock means nothing to static */
	    {PLOCK_STATIC, M_IP, false, S_IMAP, 0, POP3, ALLOW, W0, NONE, "ok"},
	    {PLOCK_STATIC, 0, false, S_NONE, 0, IMAP, DENY, W0, NONE, "static_rule"},
	    {PLOCK_STATIC, M_IP, false, S_NONE, 0, NONE, DENY, W0, NONE, "static_rule"},
	};

	(void)state;
	run_rows(rows, sizeof(rows) / sizeof(rows[0]), 90 * DAY);
}

static void
concurrent_checks_static_rules_and_leaves_live_counts_to_counters(void **state)
{
	static const struct row rows[] = {
	    {PLOCK_CONCURRENT, M_IP, false, S_NONE, 0, IMAP, ALLOW, W0, NONE, "ok"},
	    {PLOCK_CONCURRENT, M_IP, false, S_IMAP, 0, POP3, ALLOW, W0, NONE, "ok"},
	    {PLOCK_CONCURRENT, M_I, true, S_NONE, 0, POP3, DENY, W0, IMAP, "static_rule"},
	    {PLOCK_CONCURRENT, M_P, false, S_NONE, 0, IMAP, DENY, W0, POP3, "static_rule"},
	};

	(void)state;
	run_rows(rows, sizeof(rows) / sizeof(rows[0]), 90 * DAY);
	assert_false(protolock_uses_store(PLOCK_CONCURRENT, (struct protolock_rule){M_IP, false}));
}

static void
sticky_records_the_first_protocol_and_refuses_the_other(void **state)
{
	static const struct row rows[] = {
	    /* first login: allowed, recorded */
	    {PLOCK_STICKY, M_IP, false, S_NONE, 0, IMAP, ALLOW, PROTOLOCK_CREATE, NONE, "ok"},
	    {PLOCK_STICKY, M_IP, false, S_NONE, 0, POP3, ALLOW, PROTOLOCK_CREATE, NONE, "ok"},
	    /* the same protocol again: allowed; used recently, nothing written */
	    {PLOCK_STICKY, M_IP, false, S_IMAP, 0, IMAP, ALLOW, W0, NONE, "ok"},
	    {PLOCK_STICKY, M_IP, false, S_IMAP, DAY - 1, IMAP, ALLOW, W0, NONE, "ok"},
	    /* used a day ago: allowed, the use is recorded */
	    {PLOCK_STICKY, M_IP, false, S_IMAP, DAY, IMAP, ALLOW, PROTOLOCK_REFRESH, NONE, "ok"},
	    /* the other protocol: refused, the lock named */
	    {PLOCK_STICKY, M_IP, false, S_IMAP, 0, POP3, DENY, W0, IMAP, "sticky_lock"},
	    {PLOCK_STICKY, M_IP, false, S_POP3, 0, IMAP, DENY, W0, POP3, "sticky_lock"},
	    {PLOCK_STICKY, M_IP, false, S_POP3, 89 * DAY, IMAP, DENY, W0, POP3, "sticky_lock"},
	    /* unused for lock_expire: the lock lapses and the login takes it */
	    {PLOCK_STICKY, M_IP, false, S_POP3, 90 * DAY, IMAP, ALLOW, PROTOLOCK_REPLACE, NONE,
	     "ok"},
	    {PLOCK_STICKY, M_IP, false, S_IMAP, 90 * DAY, IMAP, ALLOW, PROTOLOCK_REPLACE, NONE,
	     "ok"},
	    {PLOCK_STICKY, M_IP, false, S_IMAP, 400 * DAY, POP3, ALLOW, PROTOLOCK_REPLACE, NONE,
	     "ok"},
	    /* a static rule wins over sticky: no store, no record */
	    {PLOCK_STICKY, M_IP, true, S_IMAP, 0, POP3, ALLOW, W0, NONE, "ok"},
	    {PLOCK_STICKY, M_I, true, S_POP3, 0, IMAP, ALLOW, W0, NONE, "ok"},
	    {PLOCK_STICKY, M_I, true, S_NONE, 0, POP3, DENY, W0, IMAP, "static_rule"},
	    {PLOCK_STICKY, M_I, true, S_NONE, 0, IMAP, ALLOW, W0, NONE, "ok"},
	    /* protocols_default still bounds the unlisted */
	    {PLOCK_STICKY, M_P, false, S_NONE, 0, IMAP, DENY, W0, POP3, "static_rule"},
	    {PLOCK_STICKY, M_P, false, S_NONE, 0, POP3, ALLOW, PROTOLOCK_CREATE, NONE, "ok"},
	};

	(void)state;
	run_rows(rows, sizeof(rows) / sizeof(rows[0]), 90 * DAY);
	assert_true(protolock_uses_store(PLOCK_STICKY, (struct protolock_rule){M_IP, false}));
	assert_false(protolock_uses_store(PLOCK_STICKY, (struct protolock_rule){M_IP, true}));
}

static void
a_lock_that_never_expires_stays_however_old(void **state)
{
	static const struct row rows[] = {
	    {PLOCK_STICKY, M_IP, false, S_IMAP, 3650 * DAY, POP3, DENY, W0, IMAP, "sticky_lock"},
	    {PLOCK_STICKY, M_IP, false, S_IMAP, 3650 * DAY, IMAP, ALLOW, PROTOLOCK_REFRESH, NONE,
	     "ok"},
	};

	(void)state;
	run_rows(rows, sizeof(rows) / sizeof(rows[0]), 0);
}

static void
expiry_moves_with_the_test_clock_and_each_use(void **state)
{
	const uint64_t expire = 10 * DAY;
	struct store_lock l = {.proto = IMAP, .created_ms = T0, .used_ms = T0};
	struct protolock_rule rule = {M_IP, false};
	struct protolock_decision d;
	uint64_t now = T0;

	(void)state;
	assert_int_equal(protolock_refresh_ms(expire), expire / 64);
	assert_int_equal(protolock_refresh_ms(90 * DAY), DAY);
	assert_int_equal(protolock_refresh_ms(0), DAY);
	/* used every 9 days, it never lapses: each use moves it on */
	for (int i = 0; i < 20; i++) {
		now += 9 * DAY;
		d = protolock_decide(PLOCK_STICKY, rule, &l, POP3, now, expire);
		assert_int_equal(d.verdict, DENY);
		d = protolock_decide(PLOCK_STICKY, rule, &l, IMAP, now, expire);
		assert_int_equal(d.verdict, ALLOW);
		assert_int_equal(d.write, PROTOLOCK_REFRESH);
		l = d.rec;
	}
	assert_int_equal(l.created_ms, T0);
	assert_int_equal(l.used_ms, now);
	/* left alone for exactly the expiry: lapsed, to the millisecond */
	assert_false(protolock_expired(&l, now + expire - 1, expire));
	assert_true(protolock_expired(&l, now + expire, expire));
	d = protolock_decide(PLOCK_STICKY, rule, &l, POP3, now + expire - 1, expire);
	assert_int_equal(d.verdict, DENY);
	d = protolock_decide(PLOCK_STICKY, rule, &l, POP3, now + expire, expire);
	assert_int_equal(d.verdict, ALLOW);
	assert_int_equal(d.write, PROTOLOCK_REPLACE);
	assert_int_equal(d.rec.proto, POP3);
	/* a clock that went back neither expires nor refreshes */
	d = protolock_decide(PLOCK_STICKY, rule, &l, IMAP, now - 5 * DAY, expire);
	assert_int_equal(d.verdict, ALLOW);
	assert_int_equal(d.write, PROTOLOCK_NONE);
	assert_false(protolock_expired(&l, now - 100 * DAY, expire));
}

static void
the_store_claim_writes_only_what_the_decision_says(void **state)
{
	struct store_claim c = protolock_claim(POP3, T0, 90 * DAY);
	struct store_lock cur = {.proto = IMAP, .used_ms = T0};
	struct store_claim_answer a;
	struct protolock_decision d;

	(void)state;
	assert_int_equal(c.refresh_ms, protolock_refresh_ms(90 * DAY));
	assert_int_equal(a.outcome = store_claim_decide(&c, NULL, &a.lock), STORE_CLAIM_CREATED);
	assert_int_equal(a.lock.proto, POP3);
	d = protolock_from_claim(&a);
	assert_int_equal(d.write, PROTOLOCK_CREATE);
	assert_int_equal(a.outcome = store_claim_decide(&c, &cur, &a.lock), STORE_CLAIM_OTHER);
	d = protolock_from_claim(&a);
	assert_int_equal(d.verdict, DENY);
	assert_int_equal(d.allowed, IMAP);
	/* a refresh need not be on disk before the answer: it promises nothing */
	c = protolock_claim(IMAP, T0 + 2 * DAY, 90 * DAY);
	assert_int_equal(a.outcome = store_claim_decide(&c, &cur, &a.lock), STORE_CLAIM_REFRESHED);
	d = protolock_from_claim(&a);
	assert_int_equal(d.write, PROTOLOCK_REFRESH);
	assert_int_equal(d.rec.used_ms, T0 + 2 * DAY);
	/* a lock past its expiry is replaced, and that one must be durable */
	c = protolock_claim(IMAP, T0 + 90 * DAY, 90 * DAY);
	assert_int_equal(a.outcome = store_claim_decide(&c, &cur, &a.lock), STORE_CLAIM_REPLACED);
	d = protolock_from_claim(&a);
	assert_int_equal(d.write, PROTOLOCK_REPLACE);
	assert_int_equal(d.rec.created_ms, T0 + 90 * DAY);
}

/* ---- rules --------------------------------------------------------------- */

static void
rules_match_user_then_domain_then_default(void **state)
{
	struct protolock_rules *r = protolock_rules_new();
	const char *err = NULL;
	struct protolock_rule x;

	(void)state;
	assert_non_null(r);
	x = protolock_rules_lookup(r, "a@b", 3, M_IP);
	assert_int_equal(x.allow, M_IP);
	assert_false(x.explicit_rule);
	assert_int_equal(protolock_rules_add(r, true, "Example.ORG", 11, M_I, false, &err), 0);
	assert_int_equal(protolock_rules_add(r, false, " Boss@Example.org", 17, M_P, false, &err),
	                 0);
	x = protolock_rules_lookup(r, "alice@example.org", 17, M_IP);
	assert_int_equal(x.allow, M_I);
	assert_true(x.explicit_rule);
	x = protolock_rules_lookup(r, "boss@example.org", 16, M_IP);
	assert_int_equal(x.allow, M_P);
	x = protolock_rules_lookup(r, "alice@sub.example.org", 21, M_P);
	assert_int_equal(x.allow, M_P); /* not a subdomain rule */
	assert_false(x.explicit_rule);
	x = protolock_rules_lookup(r, "example.org", 11, M_IP); /* no '@': no domain */
	assert_false(x.explicit_rule);
	x = protolock_rules_lookup(r, "odd@x@example.org", 17, M_IP); /* the last '@' */
	assert_int_equal(x.allow, M_I);
	x = protolock_rules_lookup(r, "alice@", 6, M_IP);
	assert_false(x.explicit_rule);
	/* duplicates: refused unless replacing */
	assert_int_equal(protolock_rules_add(r, true, "example.org", 11, M_P, false, &err), -1);
	assert_string_equal(err, "a rule for this domain already exists");
	assert_int_equal(protolock_rules_add(r, false, "BOSS@example.org", 16, M_I, false, &err),
	                 -1);
	assert_string_equal(err, "a rule for this user already exists");
	assert_int_equal(protolock_rules_add(r, true, "example.org", 11, M_P, true, &err), 0);
	x = protolock_rules_lookup(r, "alice@example.org", 17, M_IP);
	assert_int_equal(x.allow, M_P);
	assert_int_equal(protolock_rules_count(r), 2);
	/* nonsense is refused */
	assert_int_equal(protolock_rules_add(r, true, "a@b", 3, M_I, false, &err), -1);
	assert_string_equal(err, "a domain cannot contain '@'");
	assert_int_equal(protolock_rules_add(r, false, "  ", 2, M_I, false, &err), -1);
	assert_string_equal(err, "empty name");
	assert_int_equal(protolock_rules_add(r, false, "x", 1, 0, false, &err), -1);
	assert_int_equal(protolock_rules_add(r, false, "x", 1, 8, false, &err), -1);
	protolock_rules_free(&r);
	assert_null(r);
	protolock_rules_free(&r);
}

static void
many_rules_grow_the_table_and_all_stay_found(void **state)
{
	struct protolock_rules *r = protolock_rules_new();
	const char *err;
	char u[32];

	(void)state;
	for (int i = 0; i < 20000; i++) {
		int n = snprintf(u, sizeof(u), "user%d@example.org", i);

		assert_int_equal(
		    protolock_rules_add(r, false, u, (size_t)n, i % 2 ? M_I : M_P, false, &err), 0);
	}
	for (int i = 0; i < 20000; i++) {
		int n = snprintf(u, sizeof(u), "user%d@example.org", i);
		struct protolock_rule x = protolock_rules_lookup(r, u, (size_t)n, M_IP);

		assert_true(x.explicit_rule);
		assert_int_equal(x.allow, i % 2 ? M_I : M_P);
	}
	assert_false(protolock_rules_lookup(r, "user20000@example.org", 21, M_IP).explicit_rule);
	protolock_rules_free(&r);
}

static char *
write_temp(const char *text)
{
	char *path = strdup("/tmp/postern-map-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void
the_map_file_reads_users_and_domains(void **state)
{
	static const char text[] = "# protocols per account\n"
	                           "\n"
	                           "alice@example.org   imap\n"
	                           "Bob@Example.org\tPOP3   # a comment\n"
	                           "@example.net imap,pop3\n"
	                           "@pop.example  pop3,imap\n"
	                           "   carol@example.org pop3";
	char *path = write_temp(text), *errs = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&errs, &len);
	struct protolock_rules *r = protolock_rules_new();

	(void)state;
	assert_int_equal(protolock_rules_load(r, path, f), 0);
	fclose(f);
	assert_string_equal(errs, "");
	assert_int_equal(protolock_rules_count(r), 5);
	assert_int_equal(protolock_rules_lookup(r, "alice@example.org", 17, 0).allow, M_I);
	assert_int_equal(protolock_rules_lookup(r, "bob@example.org", 15, 0).allow, M_P);
	assert_int_equal(protolock_rules_lookup(r, "carol@example.org", 17, 0).allow, M_P);
	assert_int_equal(protolock_rules_lookup(r, "x@example.net", 13, 0).allow, M_IP);
	assert_int_equal(protolock_rules_lookup(r, "x@pop.example", 13, 0).allow, M_IP);
	protolock_rules_free(&r);
	unlink(path);
	free(path);
	free(errs);
}

static void
each_map_file_mistake_is_reported_with_its_line(void **state)
{
	char longline[PROTOLOCK_LINE_MAX + 40];
	char *text, *path, *errs = NULL;
	size_t len = 0;
	FILE *f;
	struct protolock_rules *r = protolock_rules_new();

	(void)state;
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	assert_true(asprintf(&text,
	                     "ok@x imap\n"      /* 1 */
	                     "lonely@x\n"       /* 2 */
	                     "a@x imap pop3\n"  /* 3 */
	                     "b@x smtp\n"       /* 4 */
	                     "c@x imap,imap\n"  /* 5 */
	                     "d@x imap,\n"      /* 6 */
	                     "@ imap\n"         /* 7 */
	                     "@a@b pop3\n"      /* 8 */
	                     "OK@x pop3\n"      /* 9 */
	                     "%s imap\n"        /* 10 */
	                     "e@x imap\n"       /* 11 */
	                     "nul\\0@x imap\n", /* 12: written below */
	                     longline) > 0);
	/* a real NUL byte on line 12 */
	char *nul = strstr(text, "\\0");
	memmove(nul + 1, nul + 2, strlen(nul + 2) + 1);
	*nul = '\0';
	size_t tlen = strlen(text) + 1 + strlen(nul + 1);
	path = strdup("/tmp/postern-map-XXXXXX");
	int fd = mkstemp(path);
	assert_int_equal(write(fd, text, tlen), (ssize_t)tlen);
	close(fd);

	f = open_memstream(&errs, &len);
	assert_int_equal(protolock_rules_load(r, path, f), 10);
	fclose(f);
	char *want;
	assert_true(asprintf(&want,
	                     "%1$s:2: expected \"user protocols\" or \"@domain protocols\"\n"
	                     "%1$s:3: extra text after the protocols (they take no spaces: "
	                     "\"imap,pop3\")\n"
	                     "%1$s:4: protocols must be \"imap\", \"pop3\" or \"imap,pop3\"\n"
	                     "%1$s:5: protocols must be \"imap\", \"pop3\" or \"imap,pop3\"\n"
	                     "%1$s:6: protocols must be \"imap\", \"pop3\" or \"imap,pop3\"\n"
	                     "%1$s:7: empty name\n"
	                     "%1$s:8: a domain cannot contain '@'\n"
	                     "%1$s:9: a rule for this user already exists\n"
	                     "%1$s:10: line too long\n"
	                     "%1$s:12: NUL byte in line\n",
	                     path) > 0);
	assert_string_equal(errs, want);
	/* the good lines are in all the same */
	assert_int_equal(protolock_rules_count(r), 2);
	free(want);
	free(errs);
	unlink(path);

	/* a file that is not there */
	errs = NULL;
	f = open_memstream(&errs, &len);
	assert_int_equal(protolock_rules_load(r, path, f), -1);
	fclose(f);
	assert_non_null(strstr(errs, ":0: cannot read: No such file or directory"));
	free(errs);
	free(path);
	free(text);
	protolock_rules_free(&r);
}

static void
a_flood_of_mistakes_is_cut_short_with_a_count(void **state)
{
	char *text = malloc(200 * 10 + 1), *path, *errs = NULL;
	size_t len = 0;
	FILE *f;
	struct protolock_rules *r = protolock_rules_new();

	(void)state;
	text[0] = '\0';
	for (int i = 0; i < 200; i++)
		strcat(text, "bad line\n");
	path = write_temp(text);
	f = open_memstream(&errs, &len);
	assert_int_equal(protolock_rules_load(r, path, f), 200);
	fclose(f);
	size_t lines = 0;
	for (char *p = errs; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 51);
	assert_non_null(strstr(errs, ":0: 150 more problems not shown\n"));
	unlink(path);
	free(path);
	free(text);
	free(errs);
	protolock_rules_free(&r);
}

static void
config_rules_win_over_the_file(void **state)
{
	char *path = write_temp("alice@example.org pop3\n@example.org pop3\n");
	struct protocol_rule_conf rules[] = {{.user = "ALICE@example.org", .allow = M_I},
	                                     {.domain = "example.com", .allow = M_IP}};
	struct config cfg = {.path = "t.conf"};
	struct protolock_rules *r;

	(void)state;
	cfg.policy.protocols = rules;
	cfg.policy.nprotocols = 2;
	cfg.policy.protocols_file = path;
	r = protolock_rules_from_config(&cfg, stderr);
	assert_non_null(r);
	assert_int_equal(protolock_rules_lookup(r, "alice@example.org", 17, 0).allow, M_I);
	assert_int_equal(protolock_rules_lookup(r, "bob@example.org", 15, 0).allow, M_P);
	assert_int_equal(protolock_rules_lookup(r, "bob@example.com", 15, 0).allow, M_IP);
	protolock_rules_free(&r);
	unlink(path);
	/* a file that cannot be read fails the whole table */
	assert_null(protolock_rules_from_config(&cfg, NULL));
	free(path);
	assert_string_equal(protolock_mask_name(M_I), "imap");
	assert_string_equal(protolock_mask_name(M_P), "pop3");
	assert_string_equal(protolock_mask_name(M_IP), "imap,pop3");
	assert_string_equal(protolock_mask_name(0), "none");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(off_allows_everything_and_writes_nothing),
	    cmocka_unit_test(static_follows_user_domain_or_default_and_ignores_stored_locks),
	    cmocka_unit_test(concurrent_checks_static_rules_and_leaves_live_counts_to_counters),
	    cmocka_unit_test(sticky_records_the_first_protocol_and_refuses_the_other),
	    cmocka_unit_test(a_lock_that_never_expires_stays_however_old),
	    cmocka_unit_test(expiry_moves_with_the_test_clock_and_each_use),
	    cmocka_unit_test(the_store_claim_writes_only_what_the_decision_says),
	    cmocka_unit_test(rules_match_user_then_domain_then_default),
	    cmocka_unit_test(many_rules_grow_the_table_and_all_stay_found),
	    cmocka_unit_test(the_map_file_reads_users_and_domains),
	    cmocka_unit_test(each_map_file_mistake_is_reported_with_its_line),
	    cmocka_unit_test(a_flood_of_mistakes_is_cut_short_with_a_count),
	    cmocka_unit_test(config_rules_win_over_the_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
