/*
 * test_policy.c: the API proxy/ calls, end to end over the real modules and
 * stores.  Accept checks the ACL and counts per address; failed logins are
 * throttled and tarpitted by the test clock and forgiven by a success;
 * post-auth answers come on the loop, never before the call returns, for
 * every mode; cancelled questions stay silent and give back what they
 * reserved; threads racing first logins of one user over both protocols
 * through LMDB agree on one protocol; the admin commands work from another
 * process while the policy runs.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "unit.h"

#include "redis_server.h"

#include "account.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "policy_impl.h" /* policy_on_fleet_event(): the store's channel callback */

#define SEC 1000ULL
#define MIN (60 * SEC)
#define DAY (86400 * SEC)
#define T0  1700000000000ULL

/* ---- fixtures ------------------------------------------------------------ */

/* A user name as a login hands it to the policy: its account key, made once
 * at the login's door.  KEY(name) is the (key, key_len) pair, in one static
 * buffer: one KEY in a call, on the test's thread. */
static char key_buf[ACCOUNT_KEY_MAX + 1];

static size_t
key_of(const char *name)
{
	return account_key(name, strlen(name), key_buf, sizeof(key_buf));
}

#define KEY(name) key_buf, key_of(name)

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

static struct addr
ip(const char *s)
{
	struct addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, s, &((struct sockaddr_in *)&a.ss)->sin_addr) == 1) {
		a.ss.ss_family = AF_INET;
		a.len = sizeof(struct sockaddr_in);
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)&a.ss)->sin6_addr),
		                 1);
		a.ss.ss_family = AF_INET6;
		a.len = sizeof(struct sockaddr_in6);
	}
	return a;
}

#define SA(a) ((const struct sockaddr *)&(a).ss), (a).len

static struct cidr_conf
net(const char *s)
{
	struct cidr_conf n;
	const char *err;

	assert_int_equal(config_parse_cidr(s, &n, &err), 0);
	return n;
}

/* A config with the documented policy defaults, as config.c builds it. */
static struct config *
conf_new(enum protocol_lock_mode mode, const char *state)
{
	struct config *c = calloc(1, sizeof(*c));

	c->path = strdup("t.conf");
	c->state = state ? strdup(state) : NULL;
	c->policy.protocol_lock = mode;
	c->policy.lock_expire_ms = 90 * DAY;
	c->policy.protocols_default = PROTO_MASK_ALL;
	c->policy.ipv6_prefix = 64;
	c->policy.throttle.ip_user_limit = 5;
	c->policy.throttle.ip_limit = 50;
	c->policy.throttle.window_ms = 15 * MIN;
	c->policy.throttle.delay_base_ms = 1 * SEC;
	c->policy.throttle.delay_max_ms = 15 * SEC;
	return c;
}

static void
conf_free(struct config *c)
{
	free(c->path);
	free(c->state);
	free(c);
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct tmpdir {
	char dir[64];
	char url[96];
};

static void
tmpdir_make(struct tmpdir *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/postern-policy-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->url, sizeof(t->url), "lmdb:%s", t->dir);
}

static void
tmpdir_remove(struct tmpdir *t)
{
	nftw(t->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* A policy on its own loop, as one worker has it. */
struct env {
	struct config *cfg;
	struct policy *p;
	struct ev_loop *loop;
	struct policy_worker *pw;
};

static void
env_open(struct env *e, struct config *cfg)
{
	const char *err = NULL;

	e->cfg = cfg;
	e->p = policy_new(cfg, stderr);
	assert_non_null(e->p);
	e->loop = ev_loop_new(EVFLAG_AUTO);
	e->pw = policy_worker_new(e->p, e->loop, &err);
	assert_non_null(e->pw);
}

static void
env_close(struct env *e)
{
	policy_worker_free(&e->pw);
	ev_loop_destroy(e->loop);
	policy_free(&e->p);
	assert_null(e->p);
	conf_free(e->cfg);
}

struct ans {
	int n;
	struct policy_answer a;
};

static void
on_answer(void *arg, const struct policy_answer *a)
{
	struct ans *x = arg;

	x->a = *a;
	x->n++;
}

static void
never(void *arg, const struct policy_answer *a)
{
	(void)arg;
	(void)a;
	fail_msg("a cancelled question was answered");
}

static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void
run_until(struct ev_loop *loop, const int *n, int want)
{
	ev_timer t;
	ev_tstamp end = ev_time() + 10;

	ev_timer_init(&t, tick, 0.005, 0.005);
	ev_timer_start(loop, &t);
	while (*n < want && ev_time() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	assert_int_equal(*n, want);
}

/* Ask post-auth for user (by its key, as a login does) and wait; the answer
 * must not come before the call returns. */
static struct policy_answer
postauth(struct env *e, const char *from, const char *user, enum proto_kind proto, uint64_t now)
{
	struct addr a = ip(from);
	struct ans x = {0};
	struct policy_req *r = policy_postauth(e->pw, SA(a), KEY(user), proto, now, on_answer, &x);

	assert_non_null(r);
	assert_int_equal(x.n, 0);
	run_until(e->loop, &x.n, 1);
	return x.a;
}

#define IMAP PROTO_IMAP
#define POP3 PROTO_POP3

/* ---- the state store, as metrics see it ------------------------------------ */

static void
the_state_store_is_named_and_up_only_when_configured(void **state)
{
	struct tmpdir t;
	struct policy *p;
	struct config *cfg;

	(void)state;
	cfg = conf_new(PLOCK_OFF, NULL);
	p = policy_new(cfg, stderr);
	assert_non_null(p);
	assert_null(policy_state_name(p));
	assert_false(policy_state_up(p));
	policy_free(&p);
	conf_free(cfg);

	tmpdir_make(&t);
	cfg = conf_new(PLOCK_STICKY, t.url);
	p = policy_new(cfg, stderr);
	assert_non_null(p);
	assert_string_equal(policy_state_name(p), "lmdb");
	assert_true(policy_state_up(p));
	policy_free(&p);
	conf_free(cfg);
	tmpdir_remove(&t);

	assert_null(policy_state_name(NULL));
	assert_false(policy_state_up(NULL));
}

/* ---- accept --------------------------------------------------------------- */

static void
accept_applies_the_acl_then_counts_per_address(void **state)
{
	struct cidr_conf allow[] = {net("192.0.2.0/24"), net("2001:db8::/32")};
	struct cidr_conf deny[] = {net("192.0.2.66")};
	struct config *cfg = conf_new(PLOCK_OFF, NULL);
	struct policy_conn pc[4], bad;
	struct addr a = ip("192.0.2.1"), d = ip("192.0.2.66"), o = ip("198.51.100.1");
	struct addr v6a = ip("2001:db8:0:1::1"), v6b = ip("2001:db8:0:1::2"),
	            v6c = ip("2001:db8:0:2::1");
	enum policy_reason why;
	struct policy *p;

	(void)state;
	cfg->policy.allow = allow;
	cfg->policy.nallow = 2;
	cfg->policy.deny = deny;
	cfg->policy.ndeny = 1;
	cfg->policy.max_connections_per_ip = 2;
	p = policy_new(cfg, stderr);
	assert_non_null(p);
	cfg->policy.allow = cfg->policy.deny = NULL; /* the policy made its own copies */

	assert_int_equal(policy_accept(p, SA(d), &bad, &why), POLICY_DENY_ACL);
	assert_string_equal(policy_reason_name(why), "acl");
	assert_false(bad.counted);
	assert_int_equal(policy_accept(p, SA(o), &bad, &why), POLICY_DENY_ACL);
	assert_int_equal(policy_accept(p, SA(a), &pc[0], &why), POLICY_ALLOW);
	assert_true(pc[0].counted);
	assert_int_equal(policy_accept(p, SA(a), &pc[1], &why), POLICY_ALLOW);
	assert_int_equal(policy_accept(p, SA(a), &bad, &why), POLICY_DENY_LIMIT);
	assert_string_equal(policy_reason_name(why), "ip_connection_limit");
	assert_false(bad.counted);
	policy_conn_closed(p, &bad); /* not counted: nothing happens */
	policy_conn_closed(p, &pc[0]);
	policy_conn_closed(p, &pc[0]); /* twice: nothing more */
	assert_int_equal(policy_accept(p, SA(a), &pc[0], &why), POLICY_ALLOW);
	/* IPv6 clients of one /64 share one count; the next /64 has its own */
	assert_int_equal(policy_accept(p, SA(v6a), &pc[2], &why), POLICY_ALLOW);
	assert_int_equal(policy_accept(p, SA(v6b), &pc[3], &why), POLICY_ALLOW);
	assert_int_equal(policy_accept(p, SA(v6a), &bad, &why), POLICY_DENY_LIMIT);
	assert_int_equal(policy_accept(p, SA(v6c), &bad, &why), POLICY_ALLOW);
	policy_conn_closed(p, &bad);
	/* a local socket is neither checked nor counted */
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	assert_int_equal(policy_accept(p, (struct sockaddr *)&un, sizeof(un), &bad, &why),
	                 POLICY_ALLOW);
	assert_false(bad.counted);
	for (int i = 0; i < 4; i++)
		policy_conn_closed(p, &pc[i]);
	policy_free(&p);
	conf_free(cfg);
}

/* ---- throttling ------------------------------------------------------------ */

static void
failed_logins_are_tarpitted_then_refused_until_the_window_ends(void **state)
{
	struct env e;
	struct addr a = ip("198.51.100.7"), b = ip("203.0.113.9");
	uint64_t delay = 99, now = T0;
	static const uint64_t want[] = {1 * SEC, 2 * SEC, 4 * SEC, 8 * SEC, 15 * SEC};

	(void)state;
	env_open(&e, conf_new(PLOCK_OFF, NULL));
	for (int i = 0; i < 5; i++) {
		assert_int_equal(
		    policy_login_check(e.p, SA(a), KEY("Alice@Example.org"), now, &delay),
		    POLICY_ALLOW);
		assert_int_equal(delay, 0);
		assert_int_equal(policy_login_failed(e.p, SA(a), "alice@example.org", 17, now),
		                 want[i]);
		now += 10 * SEC;
	}
	/* the sixth try never reaches a backend, and is answered slowly */
	assert_int_equal(policy_login_check(e.p, SA(a), "alice@example.org", 17, now, &delay),
	                 POLICY_DENY_THROTTLE);
	assert_int_equal(delay, 15 * SEC);
	/* names are matched as routing matches them */
	assert_int_equal(policy_login_check(e.p, SA(a), KEY(" ALICE@example.org"), now, &delay),
	                 POLICY_DENY_THROTTLE);
	/* the real user from elsewhere, and another user from here, may try */
	assert_int_equal(policy_login_check(e.p, SA(b), "alice@example.org", 17, now, &delay),
	                 POLICY_ALLOW);
	assert_int_equal(policy_login_check(e.p, SA(a), "bob@example.org", 15, now, &delay),
	                 POLICY_ALLOW);
	/* the window opened with the first failure: 15 minutes later, free */
	assert_int_equal(
	    policy_login_check(e.p, SA(a), "alice@example.org", 17, T0 + 15 * MIN - 1, &delay),
	    POLICY_DENY_THROTTLE);
	assert_int_equal(
	    policy_login_check(e.p, SA(a), "alice@example.org", 17, T0 + 15 * MIN, &delay),
	    POLICY_ALLOW);
	env_close(&e);
}

static void
a_successful_login_forgives_its_pair_but_not_its_address(void **state)
{
	struct env e;
	struct addr a = ip("198.51.100.7");
	uint64_t delay;
	char u[16];

	(void)state;
	env_open(&e, conf_new(PLOCK_OFF, NULL));
	for (int i = 0; i < 4; i++)
		(void)policy_login_failed(e.p, SA(a), "alice", 5, T0);
	/* the password was right after all */
	assert_int_equal(postauth(&e, "198.51.100.7", "alice", IMAP, T0 + 1).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "alice", 5, IMAP);
	/* the pair starts again: one failure costs the base delay, and five
	 * more are needed to block it */
	assert_int_equal(policy_login_failed(e.p, SA(a), "alice", 5, T0 + 2), 1 * SEC);
	for (int i = 0; i < 3; i++)
		(void)policy_login_failed(e.p, SA(a), "alice", 5, T0 + 3);
	assert_int_equal(policy_login_check(e.p, SA(a), "alice", 5, T0 + 4, &delay), POLICY_ALLOW);
	(void)policy_login_failed(e.p, SA(a), "alice", 5, T0 + 4);
	assert_int_equal(policy_login_check(e.p, SA(a), "alice", 5, T0 + 5, &delay),
	                 POLICY_DENY_THROTTLE);
	/* the address remembers all nine: 40 more make 49, one more 50 */
	for (int i = 0; i < 40; i++) {
		int n = snprintf(u, sizeof(u), "u%d", i);

		(void)policy_login_failed(e.p, SA(a), u, (size_t)n, T0 + 6);
	}
	assert_int_equal(policy_login_check(e.p, SA(a), "carol", 5, T0 + 7, &delay), POLICY_ALLOW);
	(void)policy_login_failed(e.p, SA(a), "mallory", 7, T0 + 7);
	assert_int_equal(policy_login_check(e.p, SA(a), "carol", 5, T0 + 8, &delay),
	                 POLICY_DENY_THROTTLE);
	env_close(&e);
}

static void
spraying_users_from_one_address_meets_the_address_limit(void **state)
{
	struct env e;
	struct addr a = ip("2001:db8:5:5::1"), same64 = ip("2001:db8:5:5::ffff"),
	            other64 = ip("2001:db8:5:6::1");
	uint64_t delay, d = 0;
	char u[32];

	(void)state;
	env_open(&e, conf_new(PLOCK_OFF, NULL));
	for (int i = 0; i < 50; i++) {
		int n = snprintf(u, sizeof(u), "user%d@example.org", i);

		d = policy_login_failed(e.p, SA(a), u, (size_t)n, T0 + (uint64_t)i);
	}
	/* fifty single failures weigh like five of one pair: the cap */
	assert_int_equal(d, 15 * SEC);
	assert_int_equal(policy_login_check(e.p, SA(a), "fresh@example.org", 17, T0 + 60, &delay),
	                 POLICY_DENY_THROTTLE);
	/* an IPv6 client is keyed by its /64: changing the low bits is no escape */
	assert_int_equal(
	    policy_login_check(e.p, SA(same64), "fresh@example.org", 17, T0 + 60, &delay),
	    POLICY_DENY_THROTTLE);
	assert_int_equal(
	    policy_login_check(e.p, SA(other64), "fresh@example.org", 17, T0 + 60, &delay),
	    POLICY_ALLOW);
	env_close(&e);
}

/* ---- post-auth, by mode ---------------------------------------------------- */

struct kicks {
	int n;
	char user[64];
};

static void
on_kick(void *arg, const char *user)
{
	struct kicks *k = arg;

	k->n++;
	snprintf(k->user, sizeof(k->user), "%s", user);
}

static void
a_fleet_kick_reaches_the_hook_main_registered_by_account_key(void **state)
{
	struct env e;
	struct kicks k = {0};

	(void)state;
	env_open(&e, conf_new(PLOCK_OFF, NULL));
	/* no hook: the kick is only logged (event=fleet.kick) */
	policy_on_fleet_event(e.p, STORE_EVENT_KICK, "alice@example.org", 17);
	policy_set_kick(e.p, on_kick, &k);
	/* what the channel carries is normalised at this door */
	policy_on_fleet_event(e.p, STORE_EVENT_KICK, " Alice@Example.ORG", 18);
	assert_int_equal(k.n, 1);
	assert_string_equal(k.user, "alice@example.org");
	/* a blank or empty name kicks nobody; other events are no kick */
	policy_on_fleet_event(e.p, STORE_EVENT_KICK, "  ", 2);
	policy_on_fleet_event(e.p, STORE_EVENT_KICK, "", 0);
	policy_on_fleet_event(e.p, STORE_EVENT_ROUTE, "alice@example.org", 17);
	assert_int_equal(k.n, 1);
	policy_set_kick(e.p, NULL, NULL);
	policy_on_fleet_event(e.p, STORE_EVENT_KICK, "alice@example.org", 17);
	assert_int_equal(k.n, 1);
	env_close(&e);
}

static void
off_allows_both_protocols_and_counts_sessions(void **state)
{
	struct env e;

	(void)state;
	env_open(&e, conf_new(PLOCK_OFF, NULL));
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", IMAP, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", POP3, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "u@x", 3, IMAP);
	policy_session_end(e.p, KEY("U@X"), POP3); /* the same user, as routing sees it */
	env_close(&e);
}

static void
static_rules_refuse_the_protocol_they_leave_out(void **state)
{
	struct protocol_rule_conf rules[] = {{.domain = "example.org", .allow = PROTO_MASK(IMAP)},
	                                     {.user = "x@y", .allow = PROTO_MASK(POP3)}};
	struct config *cfg = conf_new(PLOCK_STATIC, NULL);
	struct policy_answer a;
	struct env e;

	(void)state;
	cfg->policy.protocols = rules;
	cfg->policy.nprotocols = 2;
	cfg->policy.protocols_default = PROTO_MASK(POP3);
	env_open(&e, cfg);
	a = postauth(&e, "192.0.2.1", "alice@example.org", POP3, T0);
	assert_int_equal(a.verdict, POLICY_DENY_PROTOCOL);
	assert_string_equal(policy_reason_name(a.reason), "static_rule");
	assert_int_equal(a.allowed, IMAP);
	assert_int_equal(postauth(&e, "192.0.2.1", "alice@example.org", IMAP, T0).verdict,
	                 POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "X@Y", POP3, T0).verdict, POLICY_ALLOW);
	a = postauth(&e, "192.0.2.1", "x@y", IMAP, T0);
	assert_int_equal(a.verdict, POLICY_DENY_PROTOCOL);
	assert_int_equal(a.allowed, POP3);
	/* unlisted: protocols_default */
	assert_int_equal(postauth(&e, "192.0.2.1", "z@z", IMAP, T0).verdict, POLICY_DENY_PROTOCOL);
	assert_int_equal(postauth(&e, "192.0.2.1", "z@z", POP3, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "alice@example.org", 17, IMAP);
	policy_session_end(e.p, "x@y", 3, POP3);
	policy_session_end(e.p, "z@z", 3, POP3);
	cfg->policy.protocols = NULL;
	env_close(&e);
}

static void
concurrent_refuses_pop3_while_an_imap_session_is_live(void **state)
{
	struct env e;
	struct policy_answer a;

	(void)state;
	env_open(&e, conf_new(PLOCK_CONCURRENT, NULL));
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", IMAP, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.2", "u@x", IMAP, T0).verdict, POLICY_ALLOW);
	a = postauth(&e, "192.0.2.3", "u@x", POP3, T0);
	assert_int_equal(a.verdict, POLICY_DENY_PROTOCOL);
	assert_string_equal(policy_reason_name(a.reason), "concurrent_other_protocol");
	assert_int_equal(a.allowed, IMAP); /* the protocol in use */
	policy_session_end(e.p, "u@x", 3, IMAP);
	assert_int_equal(postauth(&e, "192.0.2.3", "u@x", POP3, T0).verdict, POLICY_DENY_PROTOCOL);
	policy_session_end(e.p, "u@x", 3, IMAP);
	/* every IMAP session ended: POP3 may log in, and now IMAP waits */
	assert_int_equal(postauth(&e, "192.0.2.3", "u@x", POP3, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", IMAP, T0).verdict, POLICY_DENY_PROTOCOL);
	policy_session_end(e.p, "u@x", 3, POP3);
	env_close(&e);
}

static void
the_session_limit_counts_live_sessions_of_both_protocols(void **state)
{
	struct config *cfg = conf_new(PLOCK_OFF, NULL);
	struct policy_answer a;
	struct env e;

	(void)state;
	cfg->policy.max_sessions_per_user = 2;
	env_open(&e, cfg);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", POP3, T0).verdict, POLICY_ALLOW);
	a = postauth(&e, "192.0.2.1", "u", IMAP, T0);
	assert_int_equal(a.verdict, POLICY_DENY_LIMIT);
	assert_string_equal(policy_reason_name(a.reason), "user_session_limit");
	/* a refusal reserved nothing: ending one session makes room for one */
	policy_session_end(e.p, "u", 1, POP3);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0).verdict, POLICY_DENY_LIMIT);
	policy_session_end(e.p, "u", 1, IMAP);
	policy_session_end(e.p, "u", 1, IMAP);
	env_close(&e);
}

static void
sticky_checks(struct env *e)
{
	struct policy_answer a;

	/* first login records IMAP; POP3 is refused from then on */
	a = postauth(e, "192.0.2.1", "alice@example.org", IMAP, T0);
	assert_int_equal(a.verdict, POLICY_ALLOW);
	policy_session_end(e->p, "alice@example.org", 17, IMAP);
	a = postauth(e, "192.0.2.1", "Alice@Example.ORG", POP3, T0 + 1);
	assert_int_equal(a.verdict, POLICY_DENY_PROTOCOL);
	assert_string_equal(policy_reason_name(a.reason), "sticky_lock");
	assert_int_equal(a.allowed, IMAP);
	/* still refused after 89 days unused; used on day 60, it holds to day 150 */
	assert_int_equal(postauth(e, "192.0.2.1", "alice@example.org", POP3, T0 + 89 * DAY).verdict,
	                 POLICY_DENY_PROTOCOL);
	assert_int_equal(postauth(e, "192.0.2.1", "alice@example.org", IMAP, T0 + 89 * DAY).verdict,
	                 POLICY_ALLOW);
	policy_session_end(e->p, "alice@example.org", 17, IMAP);
	assert_int_equal(
	    postauth(e, "192.0.2.1", "alice@example.org", POP3, T0 + 178 * DAY).verdict,
	    POLICY_DENY_PROTOCOL);
	/* 90 days unused: the lock lapses and POP3 takes it */
	a = postauth(e, "192.0.2.1", "alice@example.org", POP3, T0 + 179 * DAY);
	assert_int_equal(a.verdict, POLICY_ALLOW);
	policy_session_end(e->p, "alice@example.org", 17, POP3);
	assert_int_equal(
	    postauth(e, "192.0.2.1", "alice@example.org", IMAP, T0 + 179 * DAY + 1).verdict,
	    POLICY_DENY_PROTOCOL);
	/* a static rule wins over sticky, and writes no lock */
	assert_int_equal(postauth(e, "192.0.2.1", "free@example.net", POP3, T0).verdict,
	                 POLICY_ALLOW);
	assert_int_equal(postauth(e, "192.0.2.1", "free@example.net", IMAP, T0).verdict,
	                 POLICY_ALLOW);
	policy_session_end(e->p, "free@example.net", 16, POP3);
	policy_session_end(e->p, "free@example.net", 16, IMAP);
}

static struct config *
sticky_conf(const char *url)
{
	static struct protocol_rule_conf rules[] = {
	    {.domain = "example.net", .allow = PROTO_MASK_ALL}};
	struct config *cfg = conf_new(PLOCK_STICKY, url);

	cfg->policy.protocols = rules;
	cfg->policy.nprotocols = 1;
	return cfg;
}

static void
sticky_records_the_first_protocol_in_memory(void **state)
{
	struct env e;

	(void)state;
	env_open(&e, sticky_conf("mem:"));
	sticky_checks(&e);
	env_close(&e);
}

static void
sticky_records_the_first_protocol_in_lmdb(void **state)
{
	struct tmpdir t;
	struct env e;

	(void)state;
	tmpdir_make(&t);
	env_open(&e, sticky_conf(t.url));
	sticky_checks(&e);
	env_close(&e);
	/* and the lock is there for the next start */
	env_open(&e, sticky_conf(t.url));
	assert_int_equal(
	    postauth(&e, "192.0.2.1", "alice@example.org", IMAP, T0 + 180 * DAY).verdict,
	    POLICY_DENY_PROTOCOL);
	env_close(&e);
	tmpdir_remove(&t);
}

/* ManageSieve edits filters, it reads no mail: by default neither the
 * lock nor the session limit counts it; "as_imap" makes it an IMAP login
 * to the static rules and the sticky lock, "count" one of the user's
 * sessions.  It never takes part in the concurrent lock. */
static void
sieve_is_left_out_of_the_lock_and_the_count_unless_configured(void **state)
{
	struct config *cfg = conf_new(PLOCK_STICKY, "mem:");
	struct policy_answer a;
	struct env e;

	(void)state;
	cfg->policy.max_sessions_per_user = 1;
	env_open(&e, cfg);
	/* POP3 takes the lock and the one session: ManageSieve still goes */
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", POP3, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", PROTO_SIEVE, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", PROTO_SIEVE, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "u@x", 3, PROTO_SIEVE); /* uncounted: no complaint */
	policy_session_end(e.p, "u@x", 3, POP3);
	/* and no ManageSieve login locks a fresh account */
	assert_int_equal(postauth(&e, "192.0.2.1", "v@x", PROTO_SIEVE, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "v@x", POP3, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "v@x", 3, POP3);
	env_close(&e);

	cfg = conf_new(PLOCK_STICKY, "mem:");
	cfg->policy.max_sessions_per_user = 1;
	cfg->policy.sieve_lock = SIEVE_LOCK_AS_IMAP;
	cfg->policy.sieve_sessions = SIEVE_SESSIONS_COUNT;
	env_open(&e, cfg);
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", POP3, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "u@x", 3, POP3);
	a = postauth(&e, "192.0.2.1", "u@x", PROTO_SIEVE, T0);
	assert_int_equal(a.verdict, POLICY_DENY_PROTOCOL);
	assert_int_equal(a.allowed, POP3);
	/* as an IMAP login it takes a fresh account's lock for IMAP */
	assert_int_equal(postauth(&e, "192.0.2.1", "w@x", PROTO_SIEVE, T0).verdict, POLICY_ALLOW);
	a = postauth(&e, "192.0.2.1", "w@x", IMAP, T0);
	assert_int_equal(a.verdict, POLICY_DENY_LIMIT); /* the ManageSieve session counts */
	policy_session_end(e.p, "w@x", 3, PROTO_SIEVE);
	assert_int_equal(postauth(&e, "192.0.2.1", "w@x", IMAP, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "w@x", 3, IMAP);
	assert_int_equal(postauth(&e, "192.0.2.1", "w@x", POP3, T0).verdict, POLICY_DENY_PROTOCOL);
	env_close(&e);

	/* concurrent: a live ManageSieve session is no "other protocol" */
	cfg = conf_new(PLOCK_CONCURRENT, NULL);
	cfg->policy.sieve_sessions = SIEVE_SESSIONS_COUNT;
	env_open(&e, cfg);
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", PROTO_SIEVE, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", POP3, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u@x", PROTO_SIEVE, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "u@x", 3, PROTO_SIEVE);
	policy_session_end(e.p, "u@x", 3, PROTO_SIEVE);
	policy_session_end(e.p, "u@x", 3, POP3);
	env_close(&e);
}

/* ---- cancelling ------------------------------------------------------------ */

static void
a_question_cancelled_before_its_answer_gives_back_its_session(void **state)
{
	struct config *cfg = conf_new(PLOCK_OFF, NULL);
	struct addr a = ip("192.0.2.1");
	struct policy_req *r;
	struct env e;

	(void)state;
	cfg->policy.max_sessions_per_user = 1;
	env_open(&e, cfg);
	/* known at once (allowed, counted), cancelled before the loop ran */
	r = policy_postauth(e.pw, SA(a), "u", 1, IMAP, T0, never, NULL);
	assert_non_null(r);
	policy_req_cancel(&r);
	assert_null(r);
	policy_req_cancel(&r); /* takes NULL */
	/* the limit is 1 and nothing is held: one goes, the next does not */
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0).verdict, POLICY_DENY_LIMIT);
	policy_session_end(e.p, "u", 1, IMAP);
	/* a worker freed with questions outstanding answers none of them and
	 * gives back what they held */
	r = policy_postauth(e.pw, SA(a), "u", 1, IMAP, T0, never, NULL);
	(void)r;
	policy_worker_free(&e.pw);
	assert_null(e.pw);
	policy_worker_free(&e.pw);
	e.pw = policy_worker_new(e.p, e.loop, &(const char *){0});
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "u", 1, IMAP);
	env_close(&e);
}

static void
a_question_cancelled_while_the_store_writes_stays_silent_but_may_lock(void **state)
{
	struct tmpdir t;
	struct config *cfg;
	struct addr a = ip("192.0.2.1");
	struct policy_req *r;
	struct env e;

	(void)state;
	tmpdir_make(&t);
	cfg = conf_new(PLOCK_STICKY, t.url);
	cfg->policy.max_sessions_per_user = 1;
	env_open(&e, cfg);
	/* a first login: its lock is being written when the client goes */
	r = policy_postauth(e.pw, SA(a), "u", 1, IMAP, T0, never, NULL);
	assert_non_null(r);
	policy_req_cancel(&r);
	/* its session is free at once; its write lands all the same (the
	 * account is locked to IMAP, as after a login the client gave up on) */
	assert_int_equal(postauth(&e, "192.0.2.1", "u", POP3, T0 + 1).verdict,
	                 POLICY_DENY_PROTOCOL);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0 + 1).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0 + 1).verdict, POLICY_DENY_LIMIT);
	policy_session_end(e.p, "u", 1, IMAP);
	/* freed with store questions outstanding: silent, sessions given back */
	r = policy_postauth(e.pw, SA(a), "v", 1, POP3, T0, never, NULL);
	r = policy_postauth(e.pw, SA(a), "u", 1, IMAP, T0, never, NULL);
	(void)r;
	policy_worker_free(&e.pw);
	e.pw = policy_worker_new(e.p, e.loop, &(const char *){0});
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0 + 3).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "u", 1, IMAP);
	env_close(&e);
	tmpdir_remove(&t);
}

struct self_cancel {
	struct policy_req *req;
	int n;
};

static void
cancel_in_callback(void *arg, const struct policy_answer *a)
{
	struct self_cancel *s = arg;

	(void)a;
	s->n++;
	policy_req_cancel(&s->req); /* as conn_close() would: a no-op here */
}

static void
cancelling_inside_the_callback_does_nothing(void **state)
{
	struct env e;
	struct addr a = ip("192.0.2.1");
	struct self_cancel s = {0};

	(void)state;
	env_open(&e, conf_new(PLOCK_OFF, NULL));
	s.req = policy_postauth(e.pw, SA(a), "u", 1, IMAP, T0, cancel_in_callback, &s);
	run_until(e.loop, &s.n, 1);
	assert_null(s.req);
	policy_session_end(e.p, "u", 1, IMAP); /* the answer was ALLOW: the session is ours */
	env_close(&e);
}

/* ---- threads racing first logins through LMDB ------------------------------ */

#define WORKERS 8
#define USERS   600

struct worker_run {
	struct policy *p;
	int id;
	int round;
	enum policy_verdict verdict[USERS];
	enum proto_kind proto[USERS];
	int answered;
};

static void
on_race_answer(void *arg, const struct policy_answer *a)
{
	int *slot = arg;

	*slot = (int)a->verdict;
}

static void *
worker_race(void *arg)
{
	struct worker_run *w = arg;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct policy_worker *pw = policy_worker_new(w->p, loop, &err);
	struct addr a = ip("192.0.2.10");
	int got[USERS];
	ev_timer t;
	ev_tstamp end = ev_time() + 30;

	for (int u = 0; u < USERS; u++) {
		char user[64];
		int n = snprintf(user, sizeof(user), "r%d-user%d@example.org", w->round, u);

		got[u] = -1;
		/* half the workers come over IMAP, half over POP3, each user
		 * starting with a different half */
		w->proto[u] = (w->id + u) % 2 ? PROTO_POP3 : PROTO_IMAP;
		if (policy_postauth(pw, SA(a), user, (size_t)n, w->proto[u], T0, on_race_answer,
		                    &got[u]) == NULL)
			return NULL;
	}
	ev_timer_init(&t, tick, 0.005, 0.005);
	ev_timer_start(loop, &t);
	for (;;) {
		int n = 0;

		for (int u = 0; u < USERS; u++)
			n += got[u] >= 0;
		w->answered = n;
		if (n == USERS || ev_time() > end)
			break;
		ev_run(loop, EVRUN_ONCE);
	}
	ev_timer_stop(loop, &t);
	for (int u = 0; u < USERS; u++)
		w->verdict[u] = (enum policy_verdict)got[u];
	policy_worker_free(&pw);
	ev_loop_destroy(loop);
	return NULL;
}

static void
race_first_logins(const char *url, uint64_t store_timeout_ms)
{
	struct config *cfg;
	struct policy *p;
	struct worker_run w[WORKERS];
	pthread_t th[WORKERS];

	cfg = conf_new(PLOCK_STICKY, url);
	cfg->state_timeout_ms = store_timeout_ms;
	p = policy_new(cfg, stderr);
	assert_non_null(p);
	/* the record is read back in a worker of its own */
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct policy_worker *pw = policy_worker_new(p, loop, &(const char *){0});
	struct env e = {.cfg = cfg, .p = p, .loop = loop, .pw = pw};

	/* rounds of fresh users: how requests fall into store batches varies,
	 * and a store that is not atomic loses in some round */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < WORKERS; i++) {
			w[i] = (struct worker_run){.p = p, .id = i, .round = round};
			assert_int_equal(pthread_create(&th[i], NULL, worker_race, &w[i]), 0);
		}
		for (int i = 0; i < WORKERS; i++)
			pthread_join(th[i], NULL);

		for (int u = 0; u < USERS; u++) {
			char user[64];
			int allowed[PROTO__COUNT] = {0};
			enum proto_kind locked;

			snprintf(user, sizeof(user), "r%d-user%d@example.org", round, u);
			for (int i = 0; i < WORKERS; i++) {
				assert_int_equal(w[i].answered, USERS);
				assert_true(w[i].verdict[u] == POLICY_ALLOW ||
				            w[i].verdict[u] == POLICY_DENY_PROTOCOL);
				if (w[i].verdict[u] == POLICY_ALLOW)
					allowed[w[i].proto[u]]++;
			}
			/* exactly one protocol won, and every worker that asked with it */
			assert_true((allowed[PROTO_IMAP] == 0) != (allowed[PROTO_POP3] == 0));
			locked = allowed[PROTO_IMAP] ? PROTO_IMAP : PROTO_POP3;
			assert_int_equal(allowed[locked], WORKERS / 2);
			/* the store says the same: the other protocol is refused */
			assert_int_equal(postauth(&e, "192.0.2.10", user,
			                          locked == PROTO_IMAP ? POP3 : IMAP, T0 + 1)
			                     .verdict,
			                 POLICY_DENY_PROTOCOL);
			for (int i = 0; i < WORKERS / 2; i++)
				policy_session_end(p, user, strlen(user), locked);
		}
	}
	policy_worker_free(&pw);
	ev_loop_destroy(loop);
	policy_free(&p);
	conf_free(cfg);
}

static void
racing_first_logins_over_both_protocols_agree_on_one(void **state)
{
	struct tmpdir t;

	(void)state;
	tmpdir_make(&t);
	race_first_logins(t.url, 0);
	tmpdir_remove(&t);
}

/* The same race through Redis: the Lua claim is the atomic step.  A test
 * redis-server of its own (a missing one fails the test). */
static void
racing_first_logins_through_redis_agree_on_one(void **state)
{
	(void)state;
	assert_int_equal(redis_server_start(), 0);
	assert_int_equal(redis_server_cmd("FLUSHALL"), 0);
	/* 4800 claims at once on two busy cores: this is about atomicity, so
	 * a generous timeout (a timed-out claim answers store_error) */
	race_first_logins(test_redis.url, 20000);
}

/* ---- admin commands, from another process ---------------------------------- */

struct admin_out {
	int rc;
	char out[4096];
	char err[1024];
};

static void
slurp(FILE *f, char *buf, size_t len)
{
	size_t n;

	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* Run `postern lock ARGS` in a child process, as the admin would. */
static struct admin_out
admin(const struct config *cfg, uint64_t now, const char *a0, const char *a1, const char *a2,
      const char *a3)
{
	char *argv[5] = {(char *)a0, (char *)a1, (char *)a2, (char *)a3, NULL};
	int argc = a0 == NULL ? 0 : a1 == NULL ? 1 : a2 == NULL ? 2 : a3 == NULL ? 3 : 4;
	FILE *out = tmpfile(), *err = tmpfile();
	struct admin_out r;
	int status;
	pid_t pid;

	assert_non_null(out);
	assert_non_null(err);
	if ((pid = fork()) == 0) {
		int rc = policy_admin_run(cfg, argc, argv, now, out, err);

		fflush(out);
		fflush(err);
		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	r.rc = WEXITSTATUS(status);
	slurp(out, r.out, sizeof(r.out));
	slurp(err, r.err, sizeof(r.err));
	return r;
}

static void
admin_commands_work_on_the_store_while_the_daemon_runs(void **state)
{
	static struct protocol_rule_conf rules[] = {
	    {.user = "vip@example.org", .allow = PROTO_MASK(POP3)}};
	struct tmpdir t;
	struct env e;
	struct admin_out r;
	uint64_t now = 1714550400000ULL; /* 2024-05-01T08:00:00Z */

	(void)state;
	tmpdir_make(&t);
	env_open(&e, conf_new(PLOCK_STICKY, t.url));
	e.cfg->policy.protocols = rules;
	e.cfg->policy.nprotocols = 1;
	e.cfg->policy.lock_expire_ms = 10 * DAY;
	r = admin(e.cfg, now, "lock", "list", NULL, NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "");

	/* the daemon records a lock; the admin sees it */
	assert_int_equal(postauth(&e, "192.0.2.1", "alice@example.org", IMAP, now).verdict,
	                 POLICY_ALLOW);
	policy_session_end(e.p, "alice@example.org", 17, IMAP);
	r = admin(e.cfg, now, "lock", "show", "Alice@Example.org", NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "user=\"alice@example.org\" lock=imap origin=login "
	                           "created=2024-05-01T08:00:00Z used=2024-05-01T08:00:00Z "
	                           "expires=2024-05-11T08:00:00Z\n");
	r = admin(e.cfg, now + 11 * DAY, "lock", "show", "alice@example.org", NULL);
	assert_non_null(strstr(r.out, " expired=yes\n"));

	/* the admin moves it to POP3; the running daemon follows at once */
	r = admin(e.cfg, now, "lock", "set", "alice@example.org", "pop3");
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "user=\"alice@example.org\" lock=pop3 origin=admin "
	                           "created=2024-05-01T08:00:00Z used=2024-05-01T08:00:00Z "
	                           "expires=2024-05-11T08:00:00Z\n");
	assert_string_equal(r.err, "");
	assert_int_equal(postauth(&e, "192.0.2.1", "alice@example.org", IMAP, now + 1).verdict,
	                 POLICY_DENY_PROTOCOL);

	/* cleared: the next login takes the lock again */
	r = admin(e.cfg, now, "lock", "clear", "alice@example.org", NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "user=\"alice@example.org\" lock=none\n");
	r = admin(e.cfg, now, "lock", "clear", "alice@example.org", NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.err, "postern: lock clear: there was no lock\n");
	assert_int_equal(postauth(&e, "192.0.2.1", "alice@example.org", IMAP, now + 2).verdict,
	                 POLICY_ALLOW);
	policy_session_end(e.p, "alice@example.org", 17, IMAP);

	/* a static rule is shown beside the lock it overrides */
	r = admin(e.cfg, now, "lock", "set", "vip@example.org", "imap");
	r = admin(e.cfg, now, "lock", "list", NULL, NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "user=\"alice@example.org\" lock=imap origin=login "
	                           "created=2024-05-01T08:00:00Z used=2024-05-01T08:00:00Z "
	                           "expires=2024-05-11T08:00:00Z\n"
	                           "user=\"vip@example.org\" lock=imap origin=admin "
	                           "created=2024-05-01T08:00:00Z used=2024-05-01T08:00:00Z "
	                           "expires=2024-05-11T08:00:00Z static=pop3\n");
	r = admin(e.cfg, now, "lock", "show", "nobody@example.org", NULL);
	assert_string_equal(r.out, "user=\"nobody@example.org\" lock=none\n");

	/* mistakes: usage is exit 2, a failure exit 1 */
	assert_int_equal(admin(e.cfg, now, "lock", NULL, NULL, NULL).rc, 2);
	assert_int_equal(admin(e.cfg, now, "lock", "show", NULL, NULL).rc, 2);
	assert_int_equal(admin(e.cfg, now, "lock", "drop", "a", NULL).rc, 2);
	assert_int_equal(admin(e.cfg, now, "lock", "list", "a", NULL).rc, 2);
	assert_int_equal(admin(e.cfg, now, "locks", "list", NULL, NULL).rc, 2);
	r = admin(e.cfg, now, "lock", "set", "a", "smtp");
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.err, "postern: lock set: the protocol must be imap or pop3\n");
	r = admin(e.cfg, now, "lock", "show", "  ", NULL);
	assert_int_equal(r.rc, 2);
	e.cfg->policy.protocols = NULL;
	e.cfg->policy.nprotocols = 0;
	env_close(&e);

	/* without a state store, or with none made yet */
	struct config *cfg = conf_new(PLOCK_STATIC, NULL);

	r = admin(cfg, now, "lock", "list", NULL, NULL);
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.err,
	                    "postern: lock: no state store: set state = \"lmdb:DIR\" in t.conf\n");
	free(cfg->state);
	cfg->state = strdup("lmdb:/nonexistent/postern");
	r = admin(cfg, now, "lock", "list", NULL, NULL);
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.err, "postern: lock: state \"lmdb:/nonexistent/postern\": the state "
	                           "directory does not exist\n");
	free(cfg->state);
	cfg->state = strdup(t.url);
	r = admin(cfg, now, "lock", "set", "bob", "pop3");
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.err, "postern: lock set: note: protocol_lock is \"static\": stored "
	                           "locks are enforced only with \"sticky\"\n");
	conf_free(cfg);
	tmpdir_remove(&t);
}

/* ---- building, checking, reloading ------------------------------------------ */

static void
a_bad_rule_file_or_store_stops_the_policy_with_a_message(void **state)
{
	char path[] = "/tmp/postern-rules-XXXXXX", *errs = NULL, want[256];
	size_t len = 0;
	struct config *cfg = conf_new(PLOCK_STATIC, NULL);
	FILE *f;
	int fd = mkstemp(path);

	(void)state;
	assert_int_equal(write(fd, "ok@x imap\nbad@x smtp\n", 21), 21);
	close(fd);
	cfg->policy.protocols_file = path;
	f = open_memstream(&errs, &len);
	assert_null(policy_new(cfg, f));
	assert_int_equal(policy_check(cfg, f), -1);
	fclose(f);
	snprintf(want, sizeof(want),
	         "%1$s:2: protocols must be \"imap\", \"pop3\" or \"imap,pop3\"\n"
	         "%1$s:2: protocols must be \"imap\", \"pop3\" or \"imap,pop3\"\n",
	         path);
	assert_string_equal(errs, want);
	free(errs);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "ok@x imap\n", 10), 10);
	close(fd);
	assert_int_equal(policy_check(cfg, stderr), 0);
	cfg->policy.protocols_file = NULL;
	unlink(path);

	/* sticky without a store; a store that cannot be opened */
	cfg->policy.protocol_lock = PLOCK_STICKY;
	errs = NULL;
	f = open_memstream(&errs, &len);
	assert_null(policy_new(cfg, f));
	cfg->state = strdup("lmdb:/nonexistent/dir/x");
	assert_null(policy_new(cfg, f));
	fclose(f);
	assert_string_equal(errs, "t.conf:0: state \"\": protocol_lock = \"sticky\" needs a state "
	                          "store\n"
	                          "t.conf:0: state \"lmdb:/nonexistent/dir/x\": the state "
	                          "directory does not exist\n");
	free(errs);
	conf_free(cfg);
}

static void
a_reload_changes_the_rules_and_keeps_the_counts(void **state)
{
	struct config *c2 = conf_new(PLOCK_CONCURRENT, "mem:");
	struct tmpdir t;
	struct env e;
	char *errs = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	env_open(&e, conf_new(PLOCK_OFF, "mem:"));
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", POP3, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "u", 1, POP3);
	/* concurrent from now on; the IMAP session counted under "off" counts */
	assert_int_equal(policy_reload(e.p, c2, stderr), 0);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", POP3, T0).verdict, POLICY_DENY_PROTOCOL);
	policy_session_end(e.p, "u", 1, IMAP);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", POP3, T0).verdict, POLICY_ALLOW);
	policy_session_end(e.p, "u", 1, POP3);
	/* the store cannot change under a running daemon */
	tmpdir_make(&t);
	free(c2->state);
	c2->state = strdup(t.url);
	f = open_memstream(&errs, &len);
	assert_int_equal(policy_reload(e.p, c2, f), -1);
	free(c2->state);
	c2->state = NULL;
	assert_int_equal(policy_reload(e.p, c2, f), -1);
	fclose(f);
	assert_string_equal(errs, "t.conf:0: 'state' cannot change on reload: restart postern\n"
	                          "t.conf:0: 'state' cannot change on reload: restart postern\n");
	free(errs);
	/* the old settings stay */
	assert_int_equal(postauth(&e, "192.0.2.1", "u", IMAP, T0).verdict, POLICY_ALLOW);
	assert_int_equal(postauth(&e, "192.0.2.1", "u", POP3, T0).verdict, POLICY_DENY_PROTOCOL);
	policy_session_end(e.p, "u", 1, IMAP);
	conf_free(c2);
	env_close(&e);
	tmpdir_remove(&t);
	assert_true(policy_now_ms() > T0);
	assert_string_equal(policy_verdict_name[POLICY_DENY_THROTTLE], "throttle");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_state_store_is_named_and_up_only_when_configured),
	    cmocka_unit_test(accept_applies_the_acl_then_counts_per_address),
	    cmocka_unit_test(failed_logins_are_tarpitted_then_refused_until_the_window_ends),
	    cmocka_unit_test(a_successful_login_forgives_its_pair_but_not_its_address),
	    cmocka_unit_test(spraying_users_from_one_address_meets_the_address_limit),
	    cmocka_unit_test(off_allows_both_protocols_and_counts_sessions),
	    cmocka_unit_test(a_fleet_kick_reaches_the_hook_main_registered_by_account_key),
	    cmocka_unit_test(static_rules_refuse_the_protocol_they_leave_out),
	    cmocka_unit_test(concurrent_refuses_pop3_while_an_imap_session_is_live),
	    cmocka_unit_test(the_session_limit_counts_live_sessions_of_both_protocols),
	    cmocka_unit_test(sticky_records_the_first_protocol_in_memory),
	    cmocka_unit_test(sticky_records_the_first_protocol_in_lmdb),
	    cmocka_unit_test(sieve_is_left_out_of_the_lock_and_the_count_unless_configured),
	    cmocka_unit_test(a_question_cancelled_before_its_answer_gives_back_its_session),
	    cmocka_unit_test(a_question_cancelled_while_the_store_writes_stays_silent_but_may_lock),
	    cmocka_unit_test(cancelling_inside_the_callback_does_nothing),
	    cmocka_unit_test(racing_first_logins_over_both_protocols_agree_on_one),
	    cmocka_unit_test(racing_first_logins_through_redis_agree_on_one),
	    cmocka_unit_test(admin_commands_work_on_the_store_while_the_daemon_runs),
	    cmocka_unit_test(a_bad_rule_file_or_store_stops_the_policy_with_a_message),
	    cmocka_unit_test(a_reload_changes_the_rules_and_keeps_the_counts),
	};

	log_set_level(LOG_WARN); /* lock.create and throttle.block would fill the output */
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	redis_server_stop();
	return rc;
}
