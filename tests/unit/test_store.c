/*
 * test_store.c: the store interface.  One conformance suite runs through
 * the same calls on the memory store and on LMDB in a temporary directory:
 * locks round-trip, updates are atomic and answered on the asking loop and
 * never before the call returns, cancelled requests stay silent, and
 * threads racing for a key agree on one winner.
 * The Redis runs go through a unix socket and again through a Sentinel
 * (redis_server.h), and a Sentinel form whose Sentinels name no master fails
 * in bounded time.
 * Then LMDB alone: a lock answered is on disk (the writer is killed with
 * SIGKILL, the store reopened), another process sees and makes changes
 * while the store is open, processes racing agree, unknown records fail
 * closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <lmdb.h>

#include "unit.h"

#include "redis_server.h"
#include "store.h"

#define T0 1700000000000ULL

struct fix {
	const char *kind; /* "mem", "lmdb", "redis" or "sentinel" */
	char dir[64];     /* lmdb: the temporary directory */
	char url[160];
	struct store *st;
};

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_rf(const char *dir)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static int
fix_setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	const char *err = NULL;

	f->kind = *state;
	if (strcmp(f->kind, "lmdb") == 0) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/postern-store-XXXXXX");
		if (mkdtemp(f->dir) == NULL)
			return -1;
		snprintf(f->url, sizeof(f->url), "lmdb:%s", f->dir);
	} else if (strcmp(f->kind, "redis") == 0) {
		/* a Redis case with no redis-server fails here: it never skips */
		redis_target = &test_redis;
		if (redis_server_start() < 0 || redis_server_cmd("FLUSHALL") < 0) {
			print_error("no redis-server to test with\n");
			free(f);
			return -1;
		}
		snprintf(f->url, sizeof(f->url), "%s", test_redis.url);
	} else if (strcmp(f->kind, "sentinel") == 0) {
		/* the same, through a Sentinel: a missing one fails here too */
		redis_target = &test_sentinel;
		if (redis_sentinel_start() < 0 || redis_server_cmd("FLUSHALL") < 0) {
			print_error("no redis-server and Sentinel to test with\n");
			free(f);
			return -1;
		}
		snprintf(f->url, sizeof(f->url), "%s", test_sentinel.url);
	} else {
		snprintf(f->url, sizeof(f->url), "mem:");
	}
	if ((f->st = store_open(f->url, STORE_CREATE, &err)) == NULL) {
		print_error("store_open %s: %s\n", f->url, err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
fix_teardown(void **state)
{
	struct fix *f = *state;

	store_close(&f->st);
	if (f->dir[0] != '\0')
		rm_rf(f->dir);
	free(f);
	return 0;
}

/* ---- running a loop until something happened ----------------------------- */

static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run loop until *n reaches want; fail after 10 s instead of hanging. */
static void
run_until(struct ev_loop *loop, const int *n, int want)
{
	ev_timer t;
	ev_tstamp end = ev_time() + 10;

	/* the store's mailbox does not keep a loop running: this timer does */
	ev_timer_init(&t, tick, 0.005, 0.005);
	ev_timer_start(loop, &t);
	while (*n < want && ev_time() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	assert_int_equal(*n, want);
}

/* Run loop for about ms (nothing to wait for). */
static void
run_until_ms(struct ev_loop *loop, const int *n, int ms)
{
	ev_timer t;
	ev_tstamp end = ev_time() + ms / 1000.;

	(void)n;
	ev_timer_init(&t, tick, 0.005, 0.005);
	ev_timer_start(loop, &t);
	while (ev_time() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
}

/* ---- claims used by the tests -------------------------------------------- */

#define DAY 86400000ULL

/* The first writer wins: a claim whose clock is the claimer's id (odd ids
 * over POP3, even ones over IMAP), so a lock's created_ms names its maker. */
static struct store_claim
as(int me)
{
	return (struct store_claim){.proto = me % 2 ? PROTO_POP3 : PROTO_IMAP,
	                            .now_ms = (uint64_t)me,
	                            .expire_ms = 0,
	                            .refresh_ms = DAY};
}

struct answer {
	int n;
	int rc;
	const char *err;
	struct store_claim_answer a;
	int winner; /* created_ms of the lock in effect */
	bool wrote; /* this claim made the lock */
};

static void
on_claim(void *arg, int rc, const char *err, const struct store_claim_answer *ca)
{
	struct answer *a = arg;

	a->rc = rc;
	a->err = err;
	if (rc == 0) {
		a->a = *ca;
		a->winner = (int)ca->lock.created_ms;
		a->wrote =
		    ca->outcome == STORE_CLAIM_CREATED || ca->outcome == STORE_CLAIM_REPLACED;
	} else {
		assert_null(ca);
	}
	a->n++;
}

static void
must_not_run(void *arg, int rc, const char *err, const struct store_claim_answer *ca)
{
	(void)arg;
	(void)rc;
	(void)err;
	(void)ca;
	fail_msg("a cancelled request's callback ran");
}

/* One claim through a fresh worker, waited for. */
static struct answer
claim(struct store *st, const char *key, struct store_claim c)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw = store_worker_new(st, loop, &err);
	struct answer a = {0};

	assert_non_null(sw);
	assert_non_null(store_lock_claim(sw, key, strlen(key), &c, on_claim, &a, &err));
	run_until(loop, &a.n, 1);
	store_worker_free(&sw);
	ev_loop_destroy(loop);
	return a;
}

/* ---- the conformance suite ------------------------------------------------ */

static void
a_lock_round_trips_through_put_get_and_delete(void **state)
{
	struct fix *f = *state;
	struct store_lock l = {.proto = PROTO_POP3,
	                       .origin = STORE_ORIGIN_ADMIN,
	                       .created_ms = T0,
	                       .used_ms = T0 + 5},
	                  got;
	const char *err = NULL;
	bool found = true;

	assert_int_equal(store_lock_get(f->st, "alice", 5, &got, &found, &err), 0);
	assert_false(found);
	assert_int_equal(store_lock_put(f->st, "alice", 5, &l, &err), 0);
	assert_int_equal(store_lock_get(f->st, "alice", 5, &got, &found, &err), 0);
	assert_true(found);
	assert_int_equal(got.proto, PROTO_POP3);
	assert_int_equal(got.origin, STORE_ORIGIN_ADMIN);
	assert_int_equal(got.created_ms, T0);
	assert_int_equal(got.used_ms, T0 + 5);
	/* keys are bytes: no folding here (policy normalises before) */
	assert_int_equal(store_lock_get(f->st, "Alice", 5, &got, &found, &err), 0);
	assert_false(found);
	assert_int_equal(store_lock_get(f->st, "alic", 4, &got, &found, &err), 0);
	assert_false(found);
	l.proto = PROTO_IMAP;
	assert_int_equal(store_lock_put(f->st, "alice", 5, &l, &err), 0);
	assert_int_equal(store_lock_get(f->st, "alice", 5, &got, &found, &err), 0);
	assert_int_equal(got.proto, PROTO_IMAP);
	assert_int_equal(store_lock_del(f->st, "alice", 5, &found, &err), 0);
	assert_true(found);
	assert_int_equal(store_lock_del(f->st, "alice", 5, &found, &err), 0);
	assert_false(found);
	assert_int_equal(store_lock_get(f->st, "alice", 5, &got, &found, &err), 0);
	assert_false(found);
}

static void
bad_keys_and_protocols_are_refused(void **state)
{
	struct fix *f = *state;
	char big[STORE_KEY_MAX + 2];
	struct store_lock l = {.proto = PROTO__COUNT}, got;
	const char *err = NULL;
	bool found;

	memset(big, 'k', sizeof(big));
	assert_int_equal(store_lock_put(f->st, "x", 1, &l, &err), -1);
	assert_string_equal(err, "no such protocol");
	l.proto = PROTO_IMAP;
	assert_int_equal(store_lock_put(f->st, big, STORE_KEY_MAX + 1, &l, &err), -1);
	assert_string_equal(err, "key too long");
	assert_int_equal(store_lock_put(f->st, big, STORE_KEY_MAX, &l, &err), 0);
	assert_int_equal(store_lock_get(f->st, big, STORE_KEY_MAX, &got, &found, &err), 0);
	assert_true(found);
	assert_int_equal(store_lock_get(f->st, "", 0, &got, &found, &err), -1);
	assert_string_equal(err, "empty key");
	assert_int_equal(store_lock_del(f->st, "", 0, &found, &err), -1);
}

static int
collect(void *arg, const char *key, size_t len, const struct store_lock *rec)
{
	char *out = arg;

	strncat(out, key, len);
	strcat(out, rec->proto == PROTO_IMAP ? "=i " : "=p ");
	return strncmp(key, "stop", len) == 0;
}

static void
the_list_walks_every_lock_in_key_order(void **state)
{
	struct fix *f = *state;
	const char *keys[] = {"m", "b", "zz", "a", "ab", "c"};
	struct store_lock l = {.proto = PROTO_IMAP, .created_ms = 1, .used_ms = 1};
	const char *err = NULL;
	char out[256] = "";

	assert_int_equal(store_lock_list(f->st, collect, out, &err), 0);
	assert_string_equal(out, "");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		l.proto = i % 2 ? PROTO_POP3 : PROTO_IMAP;
		assert_int_equal(store_lock_put(f->st, keys[i], strlen(keys[i]), &l, &err), 0);
	}
	assert_int_equal(store_lock_list(f->st, collect, out, &err), 0);
	assert_string_equal(out, "a=p ab=i b=p c=p m=i zz=i ");
	out[0] = '\0';
	assert_int_equal(store_lock_put(f->st, "stop", 4, &l, &err), 0);
	assert_int_equal(store_lock_list(f->st, collect, out, &err), 0);
	assert_string_equal(out, "a=p ab=i b=p c=p m=i stop=p "); /* the callback stopped it */
}

static void
a_claim_is_answered_on_the_loop_never_before_the_call_returns(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw = store_worker_new(f->st, loop, &err);
	struct store_claim c = as(7);
	struct answer a = {0}, b = {0};
	struct store_lock got;
	bool found;

	assert_non_null(sw);
	/* a write, and a decision that needs none */
	assert_non_null(store_lock_claim(sw, "k", 1, &c, on_claim, &a, &err));
	assert_int_equal(a.n, 0);
	run_until(loop, &a.n, 1);
	assert_int_equal(a.rc, 0);
	assert_true(a.wrote);
	assert_int_equal(a.a.outcome, STORE_CLAIM_CREATED);
	assert_int_equal(a.winner, 7);
	/* the caller's claim is copied: changing it now changes nothing */
	c = as(8);
	assert_non_null(store_lock_claim(sw, "k", 1, &c, on_claim, &b, &err));
	c = as(7);
	assert_int_equal(b.n, 0);
	run_until(loop, &b.n, 1);
	assert_false(b.wrote);
	assert_int_equal(b.a.outcome, STORE_CLAIM_OTHER);
	assert_int_equal(b.a.lock.proto, PROTO_POP3);
	assert_int_equal(b.winner, 7);
	/* answered means written */
	assert_int_equal(store_lock_get(f->st, "k", 1, &got, &found, &err), 0);
	assert_true(found);
	assert_int_equal(got.created_ms, 7);
	assert_int_equal(got.used_ms, 7);
	assert_int_equal(got.origin, STORE_ORIGIN_LOGIN);
	assert_int_equal(got.proto, PROTO_POP3);
	store_worker_free(&sw);
	ev_loop_destroy(loop);
}

static void
a_claim_follows_the_lock_through_hold_expiry_and_deletion(void **state)
{
	struct fix *f = *state;
	struct store_claim c = {
	    .proto = PROTO_IMAP, .now_ms = DAY, .expire_ms = 10 * DAY, .refresh_ms = DAY / 4};
	struct store_lock got;
	const char *err = NULL;
	struct answer a;
	bool found;

	a = claim(f->st, "d", c);
	assert_int_equal(a.a.outcome, STORE_CLAIM_CREATED);
	/* the same protocol soon after: held, nothing written */
	c.now_ms = DAY + DAY / 4 - 1;
	a = claim(f->st, "d", c);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.a.outcome, STORE_CLAIM_HELD);
	assert_int_equal(a.a.lock.used_ms, DAY);
	/* the other protocol, one ms before the expiry: refused */
	c.proto = PROTO_POP3;
	c.now_ms = 11 * DAY - 1;
	a = claim(f->st, "d", c);
	assert_int_equal(a.a.outcome, STORE_CLAIM_OTHER);
	assert_int_equal(a.a.lock.proto, PROTO_IMAP);
	assert_int_equal(a.a.lock.created_ms, DAY);
	/* at the expiry, to the millisecond: replaced, durably */
	c.now_ms = 11 * DAY;
	a = claim(f->st, "d", c);
	assert_int_equal(a.a.outcome, STORE_CLAIM_REPLACED);
	assert_int_equal(a.a.lock.proto, PROTO_POP3);
	assert_int_equal(store_lock_get(f->st, "d", 1, &got, &found, &err), 0);
	assert_true(found);
	assert_int_equal(got.proto, PROTO_POP3);
	assert_int_equal(got.created_ms, 11 * DAY);
	assert_int_equal(got.used_ms, 11 * DAY);
	/* a clock that went back neither expires nor refreshes */
	c.proto = PROTO_IMAP;
	c.now_ms = DAY;
	a = claim(f->st, "d", c);
	assert_int_equal(a.a.outcome, STORE_CLAIM_OTHER);
	c.proto = PROTO_POP3;
	a = claim(f->st, "d", c);
	assert_int_equal(a.a.outcome, STORE_CLAIM_HELD);
	/* an admin's lock is claimed like any other */
	got.origin = STORE_ORIGIN_ADMIN;
	got.proto = PROTO_IMAP;
	assert_int_equal(store_lock_put(f->st, "d", 1, &got, &err), 0);
	a = claim(f->st, "d", c);
	assert_int_equal(a.a.outcome, STORE_CLAIM_OTHER);
	assert_int_equal(a.a.lock.origin, STORE_ORIGIN_ADMIN);
	/* deleted: the next claim creates */
	assert_int_equal(store_lock_del(f->st, "d", 1, &found, &err), 0);
	assert_true(found);
	a = claim(f->st, "d", c);
	assert_int_equal(a.a.outcome, STORE_CLAIM_CREATED);
	assert_int_equal(a.a.lock.origin, STORE_ORIGIN_LOGIN);
}

static void
a_lazy_refresh_is_answered_and_lands_soon_after(void **state)
{
	struct fix *f = *state;
	struct store_claim c = as(5);
	struct store_lock got;
	const char *err = NULL;
	struct answer a;
	bool found = false;

	a = claim(f->st, "lazy", c);
	assert_true(a.wrote);
	c.now_ms = T0 + 777;
	c.refresh_ms = 1;
	a = claim(f->st, "lazy", c);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.a.outcome, STORE_CLAIM_REFRESHED);
	assert_int_equal(a.a.lock.used_ms, T0 + 777);
	assert_int_equal(a.a.lock.created_ms, 5);
	/* the answer may come before the write: wait for it a little */
	for (int i = 0; i < 400; i++) {
		assert_int_equal(store_lock_get(f->st, "lazy", 4, &got, &found, &err), 0);
		if (got.used_ms == T0 + 777)
			break;
		usleep(5000);
	}
	assert_true(found);
	assert_int_equal(got.used_ms, T0 + 777);
	assert_int_equal(got.created_ms, 5);
	/* a claim over the other protocol writes nothing */
	c = as(6);
	c.now_ms = T0 + 999;
	c.refresh_ms = 1;
	a = claim(f->st, "lazy", c);
	assert_int_equal(a.a.outcome, STORE_CLAIM_OTHER);
	usleep(20000);
	assert_int_equal(store_lock_get(f->st, "lazy", 4, &got, &found, &err), 0);
	assert_int_equal(got.used_ms, T0 + 777);
	assert_int_equal(got.proto, PROTO_POP3);
}

static void
requests_that_cannot_be_taken_are_refused_at_once(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw = store_worker_new(f->st, loop, &err);
	struct store_claim c = as(1);
	char key[STORE_KEY_MAX + 1];
	struct answer a = {0};
	struct store_lock got;
	bool found;

	memset(key, 'k', sizeof(key));
	assert_null(store_lock_claim(sw, key, sizeof(key), &c, on_claim, &a, &err));
	assert_string_equal(err, "key too long");
	assert_null(store_lock_claim(sw, "", 0, &c, on_claim, &a, &err));
	assert_string_equal(err, "empty key");
	c.proto = PROTO__COUNT;
	assert_null(store_lock_claim(sw, "k", 1, &c, on_claim, &a, &err));
	assert_string_equal(err, "no such protocol");
	store_worker_free(&sw);
	ev_loop_destroy(loop);
	assert_int_equal(a.n, 0);
	assert_int_equal(store_lock_get(f->st, "k", 1, &got, &found, &err), 0);
	assert_false(found);
}

static void
a_cancelled_request_stays_silent_though_its_write_may_land(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw = store_worker_new(f->st, loop, &err);
	struct store_claim c = as(3);
	struct answer a = {0};
	struct store_req *r;
	struct store_lock got;
	bool found;

	r = store_lock_claim(sw, "c", 1, &c, must_not_run, NULL, &err);
	assert_non_null(r);
	store_req_cancel(r);
	/* a later request on the same worker still gets its answer */
	c = as(4);
	assert_non_null(store_lock_claim(sw, "c", 1, &c, on_claim, &a, &err));
	run_until(loop, &a.n, 1);
	assert_int_equal(a.winner, 3); /* the cancelled one wrote first */
	assert_int_equal(store_lock_get(f->st, "c", 1, &got, &found, &err), 0);
	assert_true(found);
	/* freeing a worker with a cancelled request outstanding runs nothing */
	c = as(5);
	r = store_lock_claim(sw, "c2", 2, &c, must_not_run, NULL, &err);
	store_req_cancel(r);
	store_req_cancel(NULL);
	store_worker_free(&sw);
	assert_null(sw);
	store_worker_free(&sw);
	ev_loop_destroy(loop);
}

/* ---- threads racing ------------------------------------------------------- */

#define RACERS 8
#define KEYS   64

struct racer {
	struct store *st;
	int id;
	int winner[KEYS];
	int won;
	int failed;
};

static void *
race(void *arg)
{
	struct racer *r = arg;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw = store_worker_new(r->st, loop, &err);
	struct answer a[KEYS];
	int done = 0;

	memset(a, 0, sizeof(a));
	for (int k = 0; k < KEYS; k++) {
		char key[16];
		struct store_claim c = as(r->id);
		int kl = snprintf(key, sizeof(key), "user%d", k);

		if (store_lock_claim(sw, key, (size_t)kl, &c, on_claim, &a[k], &err) == NULL)
			r->failed++;
	}
	/* each answer bumps its own a[k].n: sum them */
	ev_timer t;
	ev_tstamp end = ev_time() + 20;

	ev_timer_init(&t, tick, 0.005, 0.005);
	ev_timer_start(loop, &t);
	while (done < KEYS - r->failed && ev_time() < end) {
		ev_run(loop, EVRUN_ONCE);
		done = 0;
		for (int k = 0; k < KEYS; k++)
			done += a[k].n;
	}
	ev_timer_stop(loop, &t);
	for (int k = 0; k < KEYS; k++) {
		r->winner[k] = a[k].n == 1 && a[k].rc == 0 ? a[k].winner : -1;
		r->won += a[k].n == 1 && a[k].wrote;
	}
	store_worker_free(&sw);
	ev_loop_destroy(loop);
	return NULL;
}

static void
threads_racing_for_a_key_agree_on_one_winner(void **state)
{
	struct fix *f = *state;
	struct racer r[RACERS];
	pthread_t th[RACERS];
	int won = 0;

	for (int i = 0; i < RACERS; i++) {
		r[i] = (struct racer){.st = f->st, .id = i + 1};
		assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	for (int k = 0; k < KEYS; k++) {
		char key[16];
		int kl = snprintf(key, sizeof(key), "user%d", k);
		struct store_lock got;
		const char *err = NULL;
		bool found;

		assert_int_equal(store_lock_get(f->st, key, (size_t)kl, &got, &found, &err), 0);
		assert_true(found);
		for (int i = 0; i < RACERS; i++)
			assert_int_equal(r[i].winner[k], (int)got.created_ms);
	}
	for (int i = 0; i < RACERS; i++) {
		assert_int_equal(r[i].failed, 0);
		won += r[i].won;
	}
	assert_int_equal(won, KEYS); /* one write per key, whoever made it */
}

/* ---- the memory store ------------------------------------------------------ */

static void
a_full_memory_store_refuses_new_keys_only(void **state)
{
	const char *err = NULL;
	struct store *st = store_open("mem:2", 0, &err);
	struct store_lock l = {.proto = PROTO_IMAP};

	(void)state;
	assert_non_null(st);
	assert_string_equal(store_name(st), "mem");
	assert_int_equal(store_lock_put(st, "a", 1, &l, &err), 0);
	assert_int_equal(store_lock_put(st, "b", 1, &l, &err), 0);
	assert_int_equal(store_lock_put(st, "c", 1, &l, &err), -1);
	assert_string_equal(err, "the store is full");
	assert_int_equal(store_lock_put(st, "a", 1, &l, &err), 0);
	store_close(&st);
	assert_null(store_open("mem:0", 0, &err));
	assert_null(store_open("mem:x", 0, &err));
}

static void
store_urls_pick_a_store_or_say_why_not(void **state)
{
	const char *err = NULL;

	(void)state;
	assert_null(store_open("rediss://127.0.0.1:6379/0", 0, &err));
	assert_non_null(strstr(err, "not supported"));
	assert_null(store_open("redis://no-such-host.invalid:6379/0", 0, &err));
	assert_string_equal(err, "cannot resolve the Redis host");
	assert_null(store_open_with("redis://127.0.0.1/0",
	                            &(struct store_params){.password_file = "/no/such/file"}, 0,
	                            &err));
	assert_string_equal(err, "cannot read state_password_file");
	assert_null(store_open("files:/tmp", 0, &err));
	assert_string_equal(err, "unknown state store (expected \"lmdb:DIR\", "
	                         "\"redis://HOST:PORT/DB\", \"redis+unix:PATH\" or "
	                         "\"redis-sentinel://HOST:PORT,.../MASTER/DB\")");
	assert_null(store_open("redis-sentinel://127.0.0.1:26379", 0, &err));
	assert_string_equal(err, "\"redis-sentinel://\" needs the master's name, as in "
	                         "\"redis-sentinel://HOST:26379,HOST:26379/mymaster/0\"");
	assert_null(store_open("redis://", 0, &err));
	assert_string_equal(err, "a Redis URL needs a host");
	assert_null(store_open(NULL, 0, &err));
	assert_null(store_open("lmdb:", 0, &err));
	assert_string_equal(err, "\"lmdb:\" needs a directory");
}

/* ---- LMDB ---------------------------------------------------------------- */

static void
lmdb_opens_only_what_it_should(void **state)
{
	char dir[] = "/tmp/postern-open-XXXXXX", sub[96], url[128], file[96];
	const char *err = NULL;
	struct store *st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/state", dir);
	snprintf(url, sizeof(url), "lmdb:%s", sub);
	/* admin commands never make a store */
	assert_null(store_open(url, 0, &err));
	assert_string_equal(err, "the state directory does not exist");
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_null(store_open(url, 0, &err));
	assert_string_equal(
	    err, "no store in the state directory yet (postern makes it when it starts)");
	rmdir(sub);
	/* the daemon makes it */
	assert_non_null(st = store_open(url, STORE_CREATE, &err));
	assert_string_equal(store_name(st), "lmdb");
	store_close(&st);
	assert_non_null(st = store_open(url, 0, &err));
	store_close(&st);
	/* a file is not a directory; a missing parent is not made */
	snprintf(file, sizeof(file), "%s/file", dir);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	snprintf(url, sizeof(url), "lmdb:%s", file);
	assert_null(store_open(url, STORE_CREATE, &err));
	assert_string_equal(err, "the state path is not a directory");
	snprintf(url, sizeof(url), "lmdb:%s/no/such", dir);
	assert_null(store_open(url, STORE_CREATE, &err));
	assert_string_equal(err, "the state directory does not exist");
	rm_rf(dir);
}

/* In a child: open, write a lock through the asynchronous path, and die by
 * SIGKILL the moment the answer comes: no close, no clean shutdown. */
static void
write_and_die(const char *url)
{
	const char *err = NULL;
	struct store *st = store_open(url, STORE_CREATE, &err);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store_worker *sw = st ? store_worker_new(st, loop, &err) : NULL;
	struct store_claim c = as(42);
	struct answer a = {0};
	ev_timer t;

	if (sw == NULL ||
	    store_lock_claim(sw, "durable@example.org", 19, &c, on_claim, &a, &err) == NULL)
		_exit(3);
	ev_timer_init(&t, tick, 0.005, 0.005);
	ev_timer_start(loop, &t);
	while (a.n == 0)
		ev_run(loop, EVRUN_ONCE);
	if (a.rc != 0 || !a.wrote)
		_exit(4);
	raise(SIGKILL);
	_exit(5);
}

static void
a_lock_answered_survives_a_kill_9_of_its_writer(void **state)
{
	char dir[] = "/tmp/postern-kill-XXXXXX", url[64];
	struct store_lock got;
	const char *err = NULL;
	struct store *st;
	bool found = false;
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "lmdb:%s", dir);
	for (int round = 0; round < 3; round++) {
		if ((pid = fork()) == 0)
			write_and_die(url);
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
		/* reopened: the lock is there, as the killed writer was told */
		assert_non_null(st = store_open(url, 0, &err));
		assert_int_equal(store_lock_get(st, "durable@example.org", 19, &got, &found, &err),
		                 0);
		assert_true(found);
		assert_int_equal(got.created_ms, 42);
		assert_int_equal(got.proto, PROTO_IMAP);
		/* clear it for the next round */
		assert_int_equal(store_lock_del(st, "durable@example.org", 19, &found, &err), 0);
		store_close(&st);
	}
	rm_rf(dir);
}

static void
another_process_sees_and_changes_locks_while_the_store_is_open(void **state)
{
	struct fix *f = *state;
	struct store_lock l = {.proto = PROTO_POP3, .origin = STORE_ORIGIN_ADMIN}, got;
	struct answer a;
	const char *err = NULL;
	bool found;
	int status;
	pid_t pid;

	a = claim(f->st, "shared", as(11));
	assert_true(a.wrote);
	/* the "admin command": a separate process on the same directory */
	if ((pid = fork()) == 0) {
		struct store *st = store_open(f->url, 0, &err);

		if (st == NULL || store_lock_get(st, "shared", 6, &got, &found, &err) < 0 ||
		    !found || got.created_ms != 11)
			_exit(1);
		if (store_lock_put(st, "shared", 6, &l, &err) < 0 ||
		    store_lock_put(st, "fromadmin", 9, &l, &err) < 0)
			_exit(2);
		store_close(&st);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* the open store reads the other process's writes at once */
	assert_int_equal(store_lock_get(f->st, "shared", 6, &got, &found, &err), 0);
	assert_int_equal(got.origin, STORE_ORIGIN_ADMIN);
	assert_int_equal(got.proto, PROTO_POP3);
	a = claim(f->st, "fromadmin", as(12));
	assert_false(a.wrote); /* the optimistic read saw the admin's lock */
}

static void
processes_racing_for_a_key_agree_on_one_winner(void **state)
{
	struct fix *f = *state;
	enum { PROCS = 4 };
	int pipes[PROCS][2];
	pid_t pid[PROCS];

	for (int p = 0; p < PROCS; p++) {
		assert_int_equal(pipe(pipes[p]), 0);
		if ((pid[p] = fork()) == 0) {
			const char *err = NULL;
			struct store *st = store_open(f->url, 0, &err);
			struct racer r = {.st = st, .id = 100 + p};

			if (st == NULL)
				_exit(1);
			race(&r);
			if (write(pipes[p][1], r.winner, sizeof(r.winner)) != sizeof(r.winner))
				_exit(2);
			store_close(&st);
			_exit(r.failed ? 3 : 0);
		}
		close(pipes[p][1]);
	}
	for (int p = 0; p < PROCS; p++) {
		int winner[KEYS], status;

		assert_int_equal(read(pipes[p][0], winner, sizeof(winner)), sizeof(winner));
		close(pipes[p][0]);
		assert_int_equal(waitpid(pid[p], &status, 0), pid[p]);
		assert_int_equal(WEXITSTATUS(status), 0);
		for (int k = 0; k < KEYS; k++) {
			char key[16];
			int kl = snprintf(key, sizeof(key), "user%d", k);
			struct store_lock got;
			const char *err = NULL;
			bool found;

			assert_int_equal(store_lock_get(f->st, key, (size_t)kl, &got, &found, &err),
			                 0);
			assert_true(found);
			assert_int_equal(winner[k], (int)got.created_ms);
		}
	}
}

static void
a_record_the_store_cannot_read_fails_closed(void **state)
{
	struct fix *f = *state;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {.mv_size = 3, .mv_data = "odd"}, v = {.mv_size = 5, .mv_data = "\x09zzzz"};
	struct store_lock got;
	const char *err = NULL;
	struct answer a;
	bool found;
	int status;
	pid_t pid;

	/* written by a "future version", from another process (one LMDB
	 * environment per process) */
	if ((pid = fork()) == 0) {
		if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
		    mdb_env_set_maxreaders(env, 1024) ||
		    mdb_env_set_mapsize(env, (size_t)1 << 30) ||
		    mdb_env_open(env, f->dir, MDB_NOTLS, 0600) ||
		    mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "locks", 0, &dbi) ||
		    mdb_put(txn, dbi, &k, &v, 0) || mdb_txn_commit(txn))
			_exit(1);
		mdb_env_close(env);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	a = claim(f->st, "odd", as(1));
	assert_int_equal(a.rc, -1);
	assert_string_equal(a.err, "unreadable lock record");
	assert_int_equal(store_lock_get(f->st, "odd", 3, &got, &found, &err), -1);
	assert_string_equal(err, "unreadable lock record");
}

/* ---- Redis --------------------------------------------------------------- */

static void
redis_a_record_the_store_cannot_read_fails_closed(void **state)
{
	struct fix *f = *state;
	struct store_lock got;
	const char *err = NULL;
	struct answer a;
	bool found;

	/* another program's string, and a record of a "future version" (in
	 * the old layout: read there too, and no more trusted) */
	assert_int_equal(redis_server_cmd("SET postern:{odd}:lock zzzz"), 0);
	assert_int_equal(redis_server_cmd("HSET postern:lock:odd2 v 9 proto imap"), 0);
	a = claim(f->st, "odd", as(1));
	assert_int_equal(a.rc, -1);
	assert_string_equal(a.err, "unreadable lock record");
	a = claim(f->st, "odd2", as(1));
	assert_int_equal(a.rc, -1);
	assert_string_equal(a.err, "unreadable lock record");
	assert_int_equal(store_lock_get(f->st, "odd", 3, &got, &found, &err), -1);
	assert_string_equal(err, "unreadable lock record");
	/* and lock list leaves them out */
	char out[256] = "";
	struct store_lock l = {.proto = PROTO_IMAP};

	assert_int_equal(store_lock_put(f->st, "a", 1, &l, &err), 0);
	assert_int_equal(store_lock_list(f->st, collect, out, &err), 0);
	assert_string_equal(out, "a=i ");
}

static void
redis_a_lost_script_is_loaded_again(void **state)
{
	struct fix *f = *state;
	struct store_lock got;
	const char *err = NULL;
	struct answer a;
	bool found;

	a = claim(f->st, "s", as(2));
	assert_int_equal(a.a.outcome, STORE_CLAIM_CREATED);
	/* a restart or a failover forgets scripts: NOSCRIPT, then SCRIPT LOAD */
	assert_int_equal(redis_server_cmd("SCRIPT FLUSH"), 0);
	a = claim(f->st, "s", as(4));
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.a.outcome, STORE_CLAIM_HELD);
	assert_int_equal(redis_server_cmd("SCRIPT FLUSH"), 0);
	assert_int_equal(store_lock_get(f->st, "s", 1, &got, &found, &err), 0);
	assert_true(found);
	assert_int_equal(got.created_ms, 2);
}

static long long
redis_int(const char *cmd)
{
	redisContext *c = redis_server_connect();
	redisReply *r;
	long long v = -99;

	assert_non_null(c);
	if ((r = redisCommand(c, cmd)) != NULL && r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	freeReplyObject(r);
	redisFree(c);
	return v;
}

static void
redis_keys_carry_the_prefix_and_lock_expire_is_their_ttl(void **state)
{
	struct fix *f = *state;
	struct store_params sp = {.prefix = "fleet-b:", .lock_expire_ms = 5 * DAY};
	struct store *b;
	struct store_claim c = {
	    .proto = PROTO_IMAP, .now_ms = T0, .expire_ms = 10 * DAY, .refresh_ms = DAY};
	const char *err = NULL;
	struct store_lock l = {.proto = PROTO_POP3, .origin = STORE_ORIGIN_ADMIN}, got;
	char out[256] = "";
	long long ttl;
	bool found;

	assert_non_null(b = store_open_with(f->url, &sp, 0, &err));
	assert_string_equal(store_name(b), "redis");
	assert_int_equal(claim(f->st, "u@x", c).a.outcome, STORE_CLAIM_CREATED);
	/* lock_expire is the key's TTL */
	ttl = redis_int("PTTL postern:{u@x}:lock");
	assert_true(ttl > (long long)(10 * DAY) - 60000 && ttl <= (long long)(10 * DAY));
	/* a refresh sets it again; expire 0 writes no TTL */
	assert_int_equal(redis_server_cmd("PEXPIRE postern:{u@x}:lock 100000"), 0);
	c.now_ms = T0 + DAY;
	assert_int_equal(claim(f->st, "u@x", c).a.outcome, STORE_CLAIM_REFRESHED);
	assert_true(redis_int("PTTL postern:{u@x}:lock") > 100000);
	c.expire_ms = 0;
	assert_int_equal(claim(f->st, "v@x", c).a.outcome, STORE_CLAIM_CREATED);
	assert_int_equal(redis_int("PTTL postern:{v@x}:lock"), -1);
	/* another deployment on the same Redis sees none of it */
	assert_int_equal(store_lock_get(b, "u@x", 3, &got, &found, &err), 0);
	assert_false(found);
	assert_int_equal(store_lock_put(b, "w@x", 3, &l, &err), 0);
	ttl = redis_int("PTTL fleet-b:{w@x}:lock");
	assert_true(ttl > (long long)(5 * DAY) - 60000 && ttl <= (long long)(5 * DAY));
	assert_int_equal(store_lock_list(b, collect, out, &err), 0);
	assert_string_equal(out, "w@x=p ");
	out[0] = '\0';
	assert_int_equal(store_lock_list(f->st, collect, out, &err), 0);
	assert_string_equal(out, "u@x=i v@x=i ");
	/* a prefix with glob characters is matched literally by the SCAN */
	store_close(&b);
	sp.prefix = "f*[x]?:";
	assert_non_null(b = store_open_with(f->url, &sp, 0, &err));
	out[0] = '\0';
	assert_int_equal(store_lock_list(b, collect, out, &err), 0);
	assert_string_equal(out, "");
	assert_int_equal(store_lock_put(b, "z", 1, &l, &err), 0);
	assert_int_equal(store_lock_list(b, collect, out, &err), 0);
	assert_string_equal(out, "z=p ");
	store_close(&b);
}

static void
redis_a_request_waits_no_longer_than_state_timeout(void **state)
{
	struct fix *f = *state;
	struct store_params sp = {.timeout_ms = 100};
	struct store *st;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw;
	struct store_claim c = as(1);
	struct answer a = {0}, b = {0};
	ev_tstamp t0;

	assert_non_null(st = store_open_with(f->url, &sp, 0, &err));
	assert_non_null(sw = store_worker_new(st, loop, &err));
	assert_non_null(store_lock_claim(sw, "w", 1, &c, on_claim, &a, &err));
	run_until(loop, &a.n, 1); /* connected, script loaded */
	assert_int_equal(a.rc, 0);
	/* Redis stops answering for 0.6 s (short of the 1 s that makes a
	 * silent link count as dead) */
	assert_int_equal(redis_server_cmd("CLIENT PAUSE 600 ALL"), 0);
	t0 = ev_time();
	assert_non_null(store_lock_claim(sw, "w", 1, &c, on_claim, &b, &err));
	run_until(loop, &b.n, 1);
	assert_int_equal(b.rc, -1);
	assert_string_equal(b.err, "the store did not answer in time (state_timeout)");
	assert_true(ev_time() - t0 >= 0.09);
	assert_true(ev_time() - t0 < 0.5);
	/* the link stays: once Redis answers again (the late reply, read by
	 * the running loop, ends the stall), so does the store */
	run_until_ms(loop, NULL, 700);
	memset(&b, 0, sizeof(b));
	assert_non_null(store_lock_claim(sw, "w", 1, &c, on_claim, &b, &err));
	run_until(loop, &b.n, 1);
	assert_int_equal(b.rc, 0);
	assert_int_equal(b.a.outcome, STORE_CLAIM_HELD);
	store_worker_free(&sw);
	ev_loop_destroy(loop);
	store_close(&st);
}

/* Requests sent one after the other while Redis is silent: each one sent
 * before the first timed out is answered "timed out" at its own deadline
 * (not at the dead-link check, 4 timeouts, because an earlier one still
 * waits); once one timed out, the next are answered at once until Redis
 * says anything again, so one login's store questions together wait one
 * state_timeout at most.  The late replies answer nobody twice. */
static void
redis_each_request_behind_a_timed_out_one_times_out_at_its_own_deadline(void **state)
{
	struct fix *f = *state;
	struct store_params sp = {.timeout_ms = 200};
	struct store *st;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw;
	struct store_claim c = as(1);
	struct answer a[4] = {{0}};
	ev_tstamp t0, t1;

	assert_non_null(st = store_open_with(f->url, &sp, 0, &err));
	assert_non_null(sw = store_worker_new(st, loop, &err));
	assert_non_null(store_lock_claim(sw, "q", 1, &c, on_claim, &a[0], &err));
	run_until(loop, &a[0].n, 1); /* connected, script loaded */
	assert_int_equal(a[0].rc, 0);
	/* 900 ms of silence: short of the dead-link check (1 s) */
	assert_int_equal(redis_server_cmd("CLIENT PAUSE 900 ALL"), 0);
	t0 = ev_time();
	assert_non_null(store_lock_claim(sw, "q", 1, &c, on_claim, &a[1], &err));
	run_until_ms(loop, NULL, 100);
	t1 = ev_time();
	assert_non_null(store_lock_claim(sw, "q", 1, &c, on_claim, &a[2], &err));
	run_until(loop, &a[1].n, 1);
	assert_true(ev_time() - t0 >= 0.19 && ev_time() - t0 < 0.3);
	assert_int_equal(a[2].n, 0); /* its own deadline is later */
	run_until(loop, &a[2].n, 1);
	assert_true(ev_time() - t1 >= 0.19 && ev_time() - t1 < 0.3);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(a[i].rc, -1);
		assert_string_equal(a[i].err, "the store did not answer in time (state_timeout)");
	}
	/* a request timed out and Redis has said nothing since: at once */
	t0 = ev_time();
	assert_non_null(store_lock_claim(sw, "q", 1, &c, on_claim, &a[3], &err));
	run_until(loop, &a[3].n, 1);
	assert_true(ev_time() - t0 < 0.05);
	assert_int_equal(a[3].rc, -1);
	assert_string_equal(a[3].err, "the store is not answering (a request timed out)");
	/* Redis answers the late ones: nobody is answered again, and the
	 * store answers again */
	run_until_ms(loop, NULL, 800);
	for (int i = 1; i < 4; i++)
		assert_int_equal(a[i].n, 1);
	memset(&a[0], 0, sizeof(a[0]));
	assert_non_null(store_lock_claim(sw, "q", 1, &c, on_claim, &a[0], &err));
	run_until(loop, &a[0].n, 1);
	assert_int_equal(a[0].rc, 0);
	store_worker_free(&sw);
	ev_loop_destroy(loop);
	store_close(&st);
}

static void
redis_a_dropped_link_fails_fast_and_comes_back(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw = store_worker_new(f->st, loop, &err);
	struct store_claim c = as(3);
	struct answer a = {0};
	int failed = 0, ok = 0;
	ev_tstamp end;

	assert_non_null(sw);
	assert_non_null(store_lock_claim(sw, "r", 1, &c, on_claim, &a, &err));
	run_until(loop, &a.n, 1);
	assert_int_equal(a.rc, 0);
	/* Redis closes every client's link (a restart looks the same) */
	assert_int_equal(redis_server_cmd("CLIENT KILL TYPE normal"), 0);
	end = ev_time() + 10;
	while (ok == 0 && ev_time() < end) {
		memset(&a, 0, sizeof(a));
		assert_non_null(store_lock_claim(sw, "r", 1, &c, on_claim, &a, &err));
		run_until(loop, &a.n, 1);
		if (a.rc == 0)
			ok++;
		else
			failed++;
		usleep(20000);
	}
	/* answered, right or wrong, every time; and back within the backoff */
	assert_int_equal(ok, 1);
	assert_int_equal(a.a.outcome, STORE_CLAIM_HELD);
	store_worker_free(&sw);
	ev_loop_destroy(loop);
}

/* ---- Sentinel ------------------------------------------------------------ */

/* Sentinels that refuse the link, keep it silent, or do not know the
 * master: the synchronous calls fail with an error within a bounded time
 * (each Sentinel is asked within state_timeout), never hang. */
static void
sentinel_a_master_no_sentinel_names_fails_in_bounded_time(void **state)
{
	struct store_params sp = {.timeout_ms = 200};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int silent = socket(AF_INET, SOCK_STREAM, 0), refused, unused;
	char url[160];
	const char *err;
	struct store *st;
	struct store_lock got, l = {.proto = PROTO_IMAP};
	bool found;
	ev_tstamp t0;

	(void)state;
	/* one port nobody listens on; one that takes the link and never answers */
	assert_int_equal(redis_free_ports(&refused, &unused), 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(silent >= 0);
	assert_int_equal(bind(silent, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(silent, 8), 0);
	assert_int_equal(getsockname(silent, (struct sockaddr *)&sin, &len), 0);
	snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d/%s", refused,
	         REDIS_SENTINEL_MASTER);
	err = NULL;
	assert_non_null(st = store_open_with(url, &sp, 0, &err));
	t0 = ev_time();
	assert_int_equal(store_lock_get(st, "u", 1, &got, &found, &err), -1);
	assert_non_null(err);
	assert_true(err[0] != '\0');
	assert_true(ev_time() - t0 < 2);
	store_close(&st);

	snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/%s",
	         ntohs(sin.sin_port), refused, REDIS_SENTINEL_MASTER);
	err = NULL;
	assert_non_null(st = store_open_with(url, &sp, 0, &err));
	t0 = ev_time();
	assert_int_equal(store_lock_get(st, "u", 1, &got, &found, &err), -1);
	assert_non_null(err);
	assert_true(err[0] != '\0');
	assert_true(ev_time() - t0 < 3);
	err = NULL;
	t0 = ev_time();
	assert_int_equal(store_lock_put(st, "u", 1, &l, &err), -1);
	assert_non_null(err);
	assert_true(ev_time() - t0 < 3);
	store_close(&st);
	close(silent);

	/* a Sentinel that answers but knows no such master */
	assert_int_equal(redis_sentinel_start(), 0);
	snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d/no-such-master",
	         test_sentinel.sentinel_port);
	err = NULL;
	assert_non_null(st = store_open_with(url, &sp, 0, &err));
	t0 = ev_time();
	assert_int_equal(store_lock_get(st, "u", 1, &got, &found, &err), -1);
	assert_non_null(err);
	assert_true(ev_time() - t0 < 2);
	store_close(&st);
}

/* ---- the fleet: live sessions, throttles, routes, the channel ------------- */

struct sess_answer {
	int n, rc;
	enum store_sess_outcome o;
	enum proto_kind other;
};

static void
on_sess(void *arg, int rc, const char *err, enum store_sess_outcome o, enum proto_kind other)
{
	struct sess_answer *a = arg;

	(void)err;
	a->n++;
	a->rc = rc;
	a->o = o;
	a->other = other;
}

/* Register one session of user through sw; the answer. */
static struct sess_answer
sess_begin(struct ev_loop *loop, struct store_worker *sw, const char *user, uint64_t id,
           enum proto_kind proto, uint32_t max, bool exclusive)
{
	struct store_session s = {.id = id, .proto = proto, .since_ms = T0};
	struct sess_answer a = {0};
	const char *err = NULL;

	snprintf(s.backend, sizeof(s.backend), "mx1");
	assert_non_null(
	    store_session_begin(sw, user, strlen(user), &s, max, exclusive, 0, on_sess, &a, &err));
	assert_int_equal(a.n, 0); /* never before the call returns */
	run_until(loop, &a.n, 1);
	return a;
}

/* Two stores on one Redis are two proxies: each counts the other's sessions,
 * decides like connlimit_session(), and an ended session stops counting at
 * once. */
static void
redis_the_registry_counts_the_fleet_like_the_local_counters(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store *other = store_open(f->url, 0, &err);
	struct store_worker *a, *b;
	struct sess_answer r;

	assert_non_null(other);
	assert_true(store_is_shared(f->st));
	assert_string_not_equal(store_proxy_id(f->st), store_proxy_id(other));
	assert_int_equal(strlen(store_proxy_id(f->st)), STORE_PROXY_ID_LEN);
	a = store_worker_new(f->st, loop, &err);
	b = store_worker_new(other, loop, &err);
	assert_non_null(a);
	assert_non_null(b);
	r = sess_begin(loop, a, "u@x", 1, PROTO_IMAP, 0, true);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.o, STORE_SESS_OK);
	/* the concurrent lock, across proxies */
	r = sess_begin(loop, b, "u@x", 2, PROTO_POP3, 0, true);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.o, STORE_SESS_OTHER_PROTO);
	assert_int_equal(r.other, PROTO_IMAP);
	/* the same protocol is fine; then the session limit (2) bites */
	assert_int_equal(sess_begin(loop, b, "u@x", 3, PROTO_IMAP, 2, true).o, STORE_SESS_OK);
	assert_int_equal(sess_begin(loop, b, "u@x", 4, PROTO_IMAP, 2, true).o,
	                 STORE_SESS_USER_FULL);
	/* not exclusive: another protocol counts toward the limit only */
	assert_int_equal(sess_begin(loop, b, "u@x", 5, PROTO_POP3, 3, false).o, STORE_SESS_OK);
	/* ends take effect at once */
	store_session_end(a, "u@x", 3, 1);
	store_session_end(b, "u@x", 3, 3);
	store_session_end(b, "u@x", 3, 5);
	run_until_ms(loop, &r.n, 100); /* fire and forget: on other links than the next ask */
	r = sess_begin(loop, b, "u@x", 6, PROTO_POP3, 1, true);
	assert_int_equal(r.o, STORE_SESS_OK);
	assert_int_equal(redis_int("HLEN postern:{u@x}:sess"), 1);
	store_worker_free(&a);
	store_worker_free(&b);
	store_close(&other);
	ev_loop_destroy(loop);
}

/* A registration that times out is "not registered" to its login; if Redis
 * runs it after all (it was only slow), the session is taken out again, and
 * the heartbeat never writes it: it would count against the user forever
 * with this live proxy's id (state_unavailable = "refuse" keeps nothing). */
static void
redis_a_registration_answered_late_leaves_no_session_behind(void **state)
{
	struct fix *f = *state;
	struct store_params sp = {.timeout_ms = 100, .heartbeat_ms = 150};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store *st;
	struct store_worker *sw;
	struct sess_answer r;

	assert_non_null(st = store_open_with(f->url, &sp, 0, &err));
	assert_non_null(sw = store_worker_new(st, loop, &err));
	/* a live session of the same user: its heartbeat keeps the user's
	 * sessions hash from expiring, so a stray entry would stay too */
	r = sess_begin(loop, sw, "late@x", 1, PROTO_IMAP, 0, true);
	assert_int_equal(r.rc, 0);
	/* Redis is silent for 0.4 s: the registration times out at 0.1 s, and
	 * Redis runs it when it is back */
	assert_int_equal(redis_server_cmd("CLIENT PAUSE 400 ALL"), 0);
	r = sess_begin(loop, sw, "late@x", 2, PROTO_IMAP, 0, true);
	assert_int_equal(r.rc, -1);
	run_until_ms(loop, NULL, 900); /* the late "ok", then heartbeats */
	assert_int_equal(redis_int("HLEN postern:{late@x}:sess"), 1);
	assert_int_equal(redis_int("HEXISTS postern:{late@x}:sess 0000000000000002"), 0);
	store_worker_free(&sw);
	store_close(&st);
	ev_loop_destroy(loop);
}

/* A proxy that stops beating (its heartbeat key lapses, as after kill -9)
 * stops counting; its entries are dropped by the next check. */
static void
redis_a_proxy_whose_heartbeat_lapsed_stops_counting(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_params sp = {.heartbeat_ms = 100};
	struct store *dead = store_open_with(f->url, &sp, 0, &err), *live;
	struct store_worker *d, *l;
	char cmd[128];

	live = store_open_with(f->url, &sp, 0, &err);
	d = store_worker_new(dead, loop, &err);
	l = store_worker_new(live, loop, &err);
	assert_int_equal(sess_begin(loop, d, "k@x", 1, PROTO_IMAP, 0, true).o, STORE_SESS_OK);
	assert_int_equal(sess_begin(loop, l, "k@x", 2, PROTO_POP3, 0, true).o,
	                 STORE_SESS_OTHER_PROTO);
	/* the dead one's heartbeat key goes (its worker would renew it) */
	store_worker_free(&d);
	snprintf(cmd, sizeof(cmd), "DEL postern:proxy:%s", store_proxy_id(dead));
	assert_int_equal(redis_server_cmd(cmd), 0);
	assert_int_equal(sess_begin(loop, l, "k@x", 2, PROTO_POP3, 0, true).o, STORE_SESS_OK);
	assert_int_equal(redis_int("HLEN postern:{k@x}:sess"), 1);
	/* the sessions key outlives the heartbeats: liveness is the proxy key */
	assert_true(redis_int("PTTL postern:{k@x}:sess") > 300);
	/* a key that lapses by itself (no beat for 3 heartbeats) does the same */
	assert_int_equal(sess_begin(loop, l, "k2@x", 3, PROTO_IMAP, 0, true).o, STORE_SESS_OK);
	store_worker_free(&l);
	assert_non_null(l = store_worker_new(dead, loop, &err)); /* another proxy */
	assert_int_equal(sess_begin(loop, l, "k2@x", 4, PROTO_POP3, 0, true).o,
	                 STORE_SESS_OTHER_PROTO);
	snprintf(cmd, sizeof(cmd), "PTTL postern:proxy:%s", store_proxy_id(live));
	assert_true(redis_int(cmd) > 0);
	run_until_ms(loop, NULL, 450); /* > 3 heartbeats (300 ms) */
	assert_int_equal(redis_int(cmd), -2);
	assert_int_equal(sess_begin(loop, l, "k2@x", 4, PROTO_POP3, 0, true).o, STORE_SESS_OK);
	assert_int_equal(redis_int("HLEN postern:{k2@x}:sess"), 1);
	store_worker_free(&l);
	store_close(&dead);
	store_close(&live);
	ev_loop_destroy(loop);
}

/* The calls of one command in INFO commandstats ("evalsha"), or -1. */
static long long
redis_calls(const char *cmd)
{
	redisContext *c = redis_server_connect();
	redisReply *r;
	char pat[64];
	const char *at;
	long long v = -1;

	assert_non_null(c);
	snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", cmd);
	if ((r = redisCommand(c, "INFO commandstats")) != NULL && r->type == REDIS_REPLY_STRING)
		v = (at = strstr(r->str, pat)) != NULL ? strtoll(at + strlen(pat), NULL, 10) : 0;
	freeReplyObject(r);
	redisFree(c);
	return v;
}

/* Sessions 1..n kept unchecked (as a login decided without the registry
 * does), spread over the nw workers, 500 users named PREFIX<i % 500>@x. */
static void
keep_sessions(struct store_worker **w, int nw, const char *prefix, uint64_t n)
{
	char user[32];

	for (uint64_t id = 1; id <= n; id++) {
		struct store_session s = {.id = id, .proto = PROTO_IMAP, .since_ms = T0};
		int len = snprintf(user, sizeof(user), "%s%llu@x", prefix,
		                   (unsigned long long)(id % 500));

		store_session_keep(w[id % (uint64_t)nw], user, (size_t)len, &s);
	}
}

/* A heartbeat costs each worker one command whatever the number of its
 * sessions (3000 here): the proxy key, never every session again.  The
 * sessions still count: their hash has a long TTL (24 h by default). */
static void
redis_a_heartbeat_costs_one_command_per_worker_whatever_the_sessions(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_params sp = {.heartbeat_ms = 100};
	struct store *st = store_open_with(f->url, &sp, 0, &err);
	struct store_worker *w[2];
	long long before, after, set0, set1, beats = 10;

	assert_non_null(st);
	for (int i = 0; i < 2; i++)
		assert_non_null(w[i] = store_worker_new(st, loop, &err));
	run_until_ms(loop, NULL, 200); /* both links ready */
	keep_sessions(w, 2, "u", 3000);
	run_until_ms(loop, NULL, 500); /* every write answered */
	assert_int_equal(redis_int("HLEN postern:{u0@x}:sess"), 6);
	assert_true(redis_int("PTTL postern:{u0@x}:sess") > 23LL * 3600 * 1000);
	before = redis_calls("evalsha");
	set0 = redis_calls("set");
	run_until_ms(loop, NULL, (int)beats * 100);
	after = redis_calls("evalsha");
	set1 = redis_calls("set");
	print_message("3000 sessions, 2 workers, heartbeat 100 ms: %lld EVALSHA + %lld SET "
	              "in %lld heartbeats\n",
	              after - before, set1 - set0, beats);
	/* 2 a beat (one per worker), a beat more for the timer's slack */
	assert_true(after - before + (set1 - set0) <= 2 * (beats + 2));
	assert_true(after - before >= beats); /* the beats did go */
	/* and a session of u0 still counts for the fleet */
	assert_int_equal(sess_begin(loop, w[0], "u0@x", 9000, PROTO_IMAP, 6, true).o,
	                 STORE_SESS_USER_FULL);
	for (int i = 0; i < 2; i++)
		store_worker_free(&w[i]);
	store_close(&st);
	ev_loop_destroy(loop);
}

/* The parameters a config gives leave every other one at its default
 * (zero): a store opened from a config once got stack garbage as its
 * session-hash TTL, and with it every session written again every few
 * heartbeats. */
static void
params_from_a_config_leave_the_rest_at_their_defaults(void **state)
{
	struct config cfg;
	struct store_params sp;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_heartbeat_ms = 10000;
	memset(&sp, 0xaa, sizeof(sp));
	store_params_from_config(&cfg, &sp);
	assert_int_equal(sp.heartbeat_ms, 10000);
	assert_int_equal(sp.sess_ttl_ms, 0);
}

/* A request that timed out on a link that stayed up (Redis busy for a
 * moment) ends an outage, but writes no session again: every note went out
 * on that link.  Before, each such timeout sent all of a worker's sessions
 * again at once, and a Redis slowed by them timed out the next requests:
 * a fleet of 100k sessions kept Redis at 100k commands a second. */
static void
redis_a_timeout_on_a_live_link_writes_no_session_again(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_params sp = {.heartbeat_ms = 1000, .timeout_ms = 100};
	struct store *st = store_open_with(f->url, &sp, 0, &err);
	struct store_worker *sw;
	struct store_claim c = as(1);
	struct answer a = {0};
	long long before, after;

	assert_non_null(st);
	assert_non_null(sw = store_worker_new(st, loop, &err));
	run_until_ms(loop, NULL, 200);
	keep_sessions(&sw, 1, "t", 3000);
	run_until_ms(loop, NULL, 500);
	before = redis_calls("evalsha");
	assert_int_equal(redis_server_cmd("CLIENT PAUSE 400 ALL"), 0);
	assert_non_null(store_lock_claim(sw, "paused", 6, &c, on_claim, &a, &err));
	run_until(loop, &a.n, 1);
	assert_int_equal(a.rc, -1);     /* timed out: an outage */
	run_until_ms(loop, NULL, 1000); /* Redis answers again: recovered */
	after = redis_calls("evalsha");
	print_message("3000 sessions, a request timed out: %lld EVALSHA after it\n",
	              after - before);
	/* the claim, a beat at the recovery, a heartbeat or two (1 s: the
	 * proxy key, 3 s, outlives the pause): not 3000 */
	assert_true(after - before < 100);
	assert_int_equal(redis_int("HLEN postern:{t0@x}:sess"), 6);
	store_worker_free(&sw);
	store_close(&st);
	ev_loop_destroy(loop);
}

/* A new link writes every session again (a window of RSESS_REPUT_WINDOW
 * unanswered at a time, sent on as replies come): each arrives, once. */
static void
redis_a_new_link_writes_every_session_again_once(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_params sp = {.heartbeat_ms = 100};
	struct store *st = store_open_with(f->url, &sp, 0, &err);
	struct store_worker *sw;
	long long before;
	int waited = 0;

	assert_non_null(st);
	assert_non_null(sw = store_worker_new(st, loop, &err));
	run_until_ms(loop, NULL, 200);
	keep_sessions(&sw, 1, "n", 3000);
	run_until_ms(loop, NULL, 500);
	assert_int_equal(redis_server_cmd("DEL postern:{n0@x}:sess"), 0);
	before = redis_calls("evalsha");
	assert_int_equal(redis_server_cmd("CLIENT KILL TYPE normal"), 0);
	while (redis_int("HLEN postern:{n0@x}:sess") != 6 && waited < 3000) {
		run_until_ms(loop, NULL, 50);
		waited += 50;
	}
	assert_int_equal(redis_int("HLEN postern:{n0@x}:sess"), 6);
	assert_true(redis_calls("evalsha") - before >= 3000); /* all of them, once */
	assert_true(redis_calls("evalsha") - before < 3000 + 200);
	store_worker_free(&sw);
	store_close(&st);
	ev_loop_destroy(loop);
}

/* An idle session still counts after the hash's TTL (shortened to 8
 * heartbeats here) has gone by many heartbeats over: its worker writes it
 * again after half the TTL, bounded per heartbeat. */
static void
redis_an_idle_session_outlives_its_hash_ttl(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_params sp = {.heartbeat_ms = 100, .sess_ttl_ms = 800};
	struct store *st = store_open_with(f->url, &sp, 0, &err);
	struct store_worker *sw;

	assert_non_null(st);
	assert_non_null(sw = store_worker_new(st, loop, &err));
	assert_int_equal(sess_begin(loop, sw, "idle@x", 1, PROTO_IMAP, 0, true).o, STORE_SESS_OK);
	assert_true(redis_int("PTTL postern:{idle@x}:sess") > 300);
	assert_true(redis_int("PTTL postern:{idle@x}:sess") <= 800);
	run_until_ms(loop, NULL, 2000); /* 20 heartbeats, 2.5 TTLs */
	assert_int_equal(redis_int("HLEN postern:{idle@x}:sess"), 1);
	assert_int_equal(sess_begin(loop, sw, "idle@x", 2, PROTO_POP3, 0, true).o,
	                 STORE_SESS_OTHER_PROTO);
	store_worker_free(&sw);
	store_close(&st);
	ev_loop_destroy(loop);
}

/* Redis lost this proxy's sessions without the link noticing: the proxy
 * key gone (FLUSHALL, or our beats late and a check dropped them as a dead
 * proxy's), the next beat finds its field new and writes them all; the
 * key still there but the link new (a restart, a failover), the new link
 * writes them all. */
static void
redis_lost_sessions_are_written_again_by_the_next_beat_or_link(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_params sp = {.heartbeat_ms = 100};
	struct store *st = store_open_with(f->url, &sp, 0, &err);
	struct store_worker *sw;
	char cmd[128];
	int waited = 0;

	assert_non_null(st);
	assert_non_null(sw = store_worker_new(st, loop, &err));
	assert_int_equal(sess_begin(loop, sw, "lost@x", 1, PROTO_IMAP, 0, true).o, STORE_SESS_OK);
	snprintf(cmd, sizeof(cmd), "DEL postern:proxy:%s postern:{lost@x}:sess",
	         store_proxy_id(st));
	assert_int_equal(redis_server_cmd(cmd), 0);
	while (redis_int("HLEN postern:{lost@x}:sess") != 1 && waited < 1000) {
		run_until_ms(loop, NULL, 20);
		waited += 20;
	}
	assert_int_equal(redis_int("HLEN postern:{lost@x}:sess"), 1);
	assert_true(waited <= 500);
	/* the proxy key stays: only a new link tells */
	assert_int_equal(redis_server_cmd("DEL postern:{lost@x}:sess"), 0);
	run_until_ms(loop, NULL, 300);
	assert_int_equal(redis_int("HLEN postern:{lost@x}:sess"), 0); /* the beat does not */
	assert_int_equal(redis_server_cmd("CLIENT KILL TYPE normal"), 0);
	waited = 0;
	while (redis_int("HLEN postern:{lost@x}:sess") != 1 && waited < 3000) {
		run_until_ms(loop, NULL, 20);
		waited += 20;
	}
	assert_int_equal(redis_int("HLEN postern:{lost@x}:sess"), 1);
	store_worker_free(&sw);
	store_close(&st);
	ev_loop_destroy(loop);
}

/* Redis loses its scripts and its data (SCRIPT FLUSH, FLUSHALL): the
 * heartbeat's own NOSCRIPT loads the script and beats again, so the live
 * sessions are back within one heartbeat with no request needed. */
static void
redis_sessions_are_back_within_a_heartbeat_after_script_flush_and_flushall(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_params sp = {.heartbeat_ms = 150};
	struct store *st = store_open_with(f->url, &sp, 0, &err);
	struct store_worker *sw;
	int waited = 0;

	assert_non_null(st);
	assert_non_null(sw = store_worker_new(st, loop, &err));
	assert_int_equal(sess_begin(loop, sw, "h@x", 7, PROTO_IMAP, 0, false).o, STORE_SESS_OK);
	assert_int_equal(redis_int("HLEN postern:{h@x}:sess"), 1);
	assert_int_equal(redis_server_cmd("SCRIPT FLUSH"), 0);
	assert_int_equal(redis_server_cmd("FLUSHALL"), 0);
	while (redis_int("HLEN postern:{h@x}:sess") != 1 && waited < 1000) {
		run_until_ms(loop, NULL, 50);
		waited += 50;
	}
	/* one heartbeat (150 ms), plus slack for a busy machine */
	assert_int_equal(redis_int("HLEN postern:{h@x}:sess"), 1);
	assert_true(waited <= 600);
	store_worker_free(&sw);
	store_close(&st);
	ev_loop_destroy(loop);
}

struct thr_answer {
	int n, rc;
	struct store_throttle_answer a;
};

static void
on_thr(void *arg, int rc, const char *err, const struct store_throttle_answer *a)
{
	struct thr_answer *t = arg;

	(void)err;
	t->n++;
	t->rc = rc;
	if (a != NULL)
		t->a = *a;
}

static void
redis_failed_logins_are_counted_once_for_the_fleet(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store *other = store_open(f->url, 0, &err);
	struct store_worker *sws[2];
	struct thr_answer t = {0};

	sws[0] = store_worker_new(f->st, loop, &err);
	sws[1] = store_worker_new(other, loop, &err);
	for (int i = 0; i < 3; i++) {
		memset(&t, 0, sizeof(t));
		assert_non_null(store_throttle_fail(sws[i % 2], "10.0.0.1|u", 10, "10.0.0.1", 8,
		                                    60000, on_thr, &t, &err));
		run_until(loop, &t.n, 1);
		assert_int_equal(t.rc, 0);
	}
	assert_int_equal(t.a.ip_user, 3);
	assert_int_equal(t.a.ip, 3);
	/* both counters carry the address as their hash tag */
	assert_int_equal(redis_int("EXISTS postern:{10.0.0.1}:thr"), 1);
	assert_int_equal(redis_int("EXISTS postern:{10.0.0.1}:thr:10.0.0.1|u"), 1);
	assert_true(t.a.ip_user_left_ms > 0 && t.a.ip_user_left_ms <= 60000);
	/* a success forgets the pair, never the address */
	store_throttle_clear(sws[1], "10.0.0.1|u", 10);
	run_until_ms(loop, &t.n, 100);
	memset(&t, 0, sizeof(t));
	assert_non_null(
	    store_throttle_fail(sws[0], "10.0.0.1|u", 10, "10.0.0.1", 8, 60000, on_thr, &t, &err));
	run_until(loop, &t.n, 1);
	assert_int_equal(t.a.ip_user, 1);
	assert_int_equal(t.a.ip, 4);
	assert_int_equal(redis_int("EXISTS postern:thr:10.0.0.1"), 0); /* no old layout */
	store_worker_free(&sws[0]);
	store_worker_free(&sws[1]);
	store_close(&other);
	ev_loop_destroy(loop);
}

struct route_answer {
	int n, rc;
	bool found;
	char b[STORE_BACKEND_MAX + 1];
};

static void
on_route(void *arg, int rc, const char *err, const char *backend)
{
	struct route_answer *r = arg;

	(void)err;
	r->n++;
	r->rc = rc;
	r->found = backend != NULL;
	if (backend != NULL)
		snprintf(r->b, sizeof(r->b), "%s", backend);
}

/* Routes: put, get (sync and on a loop), delete; LMDB and Redis. */
static void
a_route_round_trips_through_put_lookup_and_delete(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char b[STORE_BACKEND_MAX + 1];
	struct route_answer r = {0};
	struct store_worker *sw;
	const char *err = NULL;
	bool found = true;

	assert_int_equal(store_route_get(f->st, "al@x", 4, b, &found, &err), 0);
	assert_false(found);
	assert_int_equal(store_route_put(f->st, "al@x", 4, "mx2", &err), 0);
	assert_int_equal(store_route_get(f->st, "al@x", 4, b, &found, &err), 0);
	assert_true(found);
	assert_string_equal(b, "mx2");
	sw = store_worker_new(f->st, loop, &err);
	assert_non_null(store_route_lookup(sw, "al@x", 4, 0, on_route, &r, &err));
	assert_int_equal(r.n, 0);
	run_until(loop, &r.n, 1);
	assert_int_equal(r.rc, 0);
	assert_true(r.found);
	assert_string_equal(r.b, "mx2");
	assert_int_equal(store_route_del(f->st, "al@x", 4, &found, &err), 0);
	assert_true(found);
	memset(&r, 0, sizeof(r));
	assert_non_null(store_route_lookup(sw, "al@x", 4, 0, on_route, &r, &err));
	run_until(loop, &r.n, 1);
	assert_int_equal(r.rc, 0);
	assert_false(r.found);
	assert_int_equal(store_route_put(f->st, "al@x", 4, "", &err), -1);
	store_worker_free(&sw);
	ev_loop_destroy(loop);
}

/* Route lookups on a loop: the answer (n, rc, found, b) in *r. */
static void
route_lookup(struct store_worker *sw, struct ev_loop *loop, const char *user,
             struct route_answer *r)
{
	const char *err = NULL;

	memset(r, 0, sizeof(*r));
	assert_non_null(store_route_lookup(sw, user, strlen(user), 0, on_route, r, &err));
	run_until(loop, &r->n, 1);
	assert_int_equal(r->rc, 0);
}

/* An upgrade from the layout before the hash tags (PREFIX "lock:" USER,
 * PREFIX "route:" USER) loses no lock and no route: they are read, a lock
 * is moved to the new key when touched, and writes clear the old keys. */
static void
redis_old_layout_locks_and_routes_are_still_read(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store_claim c = {
	    .proto = PROTO_IMAP, .now_ms = T0 + 1000, .expire_ms = 10 * DAY, .refresh_ms = DAY};
	struct store_lock got, l = {.proto = PROTO_IMAP, .created_ms = T0, .used_ms = T0};
	char cmd[256], b[STORE_BACKEND_MAX + 1], out[256] = "";
	struct route_answer r;
	struct store_worker *sw;
	const char *err = NULL;
	bool found = false;
	struct answer a;

	snprintf(cmd, sizeof(cmd),
	         "HSET postern:lock:old@x v 1 proto pop3 origin login created %llu used %llu",
	         (unsigned long long)T0, (unsigned long long)T0);
	assert_int_equal(redis_server_cmd(cmd), 0);
	assert_int_equal(redis_server_cmd("PEXPIRE postern:lock:old@x 600000"), 0);
	/* listed in place (a list moves nothing) */
	assert_int_equal(store_lock_list(f->st, collect, out, &err), 0);
	assert_string_equal(out, "old@x=p ");
	assert_int_equal(redis_int("EXISTS postern:lock:old@x"), 1);
	/* found, and moved with its TTL */
	assert_int_equal(store_lock_get(f->st, "old@x", 5, &got, &found, &err), 0);
	assert_true(found);
	assert_int_equal(got.proto, PROTO_POP3);
	assert_int_equal(got.origin, STORE_ORIGIN_LOGIN);
	assert_int_equal(got.created_ms, T0);
	assert_int_equal(got.used_ms, T0);
	a = claim(f->st, "old@x", c);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.a.outcome, STORE_CLAIM_OTHER);
	assert_int_equal(a.a.lock.proto, PROTO_POP3);
	assert_int_equal(redis_int("EXISTS postern:lock:old@x"), 0);
	assert_int_equal(redis_int("EXISTS postern:{old@x}:lock"), 1);
	assert_true(redis_int("PTTL postern:{old@x}:lock") > 0);
	assert_true(redis_int("PTTL postern:{old@x}:lock") <= 600000);
	/* a claim is the first to touch one: it moves it and decides on it */
	snprintf(cmd, sizeof(cmd),
	         "HSET postern:lock:old2@x v 1 proto pop3 origin admin created %llu used %llu",
	         (unsigned long long)T0, (unsigned long long)T0);
	assert_int_equal(redis_server_cmd(cmd), 0);
	a = claim(f->st, "old2@x", c);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.a.outcome, STORE_CLAIM_OTHER);
	assert_int_equal(a.a.lock.origin, STORE_ORIGIN_ADMIN);
	assert_int_equal(redis_int("EXISTS postern:lock:old2@x"), 0);
	assert_int_equal(redis_int("EXISTS postern:{old2@x}:lock"), 1);
	/* in both layouts (an old proxy wrote one since): the new one counts,
	 * listed once; put and del clear the old one */
	snprintf(cmd, sizeof(cmd),
	         "HSET postern:lock:old@x v 1 proto imap origin login created %llu used %llu",
	         (unsigned long long)T0, (unsigned long long)T0);
	assert_int_equal(redis_server_cmd(cmd), 0);
	assert_int_equal(redis_server_cmd("HSET postern:lock:only@x v 1 proto imap origin login "
	                                  "created 5 used 5"),
	                 0);
	out[0] = '\0';
	assert_int_equal(store_lock_list(f->st, collect, out, &err), 0);
	assert_string_equal(out, "old2@x=p old@x=p only@x=i ");
	assert_int_equal(store_lock_get(f->st, "old@x", 5, &got, &found, &err), 0);
	assert_int_equal(got.proto, PROTO_POP3);
	assert_int_equal(store_lock_put(f->st, "old@x", 5, &l, &err), 0);
	assert_int_equal(redis_int("EXISTS postern:lock:old@x"), 0);
	assert_int_equal(store_lock_del(f->st, "only@x", 6, &found, &err), 0);
	assert_true(found);
	assert_int_equal(redis_int("EXISTS postern:lock:only@x"), 0);
	assert_int_equal(redis_server_cmd("HSET postern:lock:old@x v 1"), 0);
	assert_int_equal(store_lock_del(f->st, "old@x", 5, &found, &err), 0);
	assert_int_equal(redis_int("EXISTS postern:lock:old@x postern:{old@x}:lock"), 0);

	/* a route a provisioning system wrote in the old layout */
	assert_int_equal(redis_server_cmd("SET postern:route:r@x mx9"), 0);
	assert_int_equal(store_route_get(f->st, "r@x", 3, b, &found, &err), 0);
	assert_true(found);
	assert_string_equal(b, "mx9");
	sw = store_worker_new(f->st, loop, &err);
	assert_non_null(sw);
	route_lookup(sw, loop, "r@x", &r);
	assert_true(r.found);
	assert_string_equal(r.b, "mx9");
	/* the new key wins; a put writes it and drops the old one */
	assert_int_equal(redis_server_cmd("SET postern:{r@x}:route mx1"), 0);
	route_lookup(sw, loop, "r@x", &r);
	assert_string_equal(r.b, "mx1");
	assert_int_equal(store_route_get(f->st, "r@x", 3, b, &found, &err), 0);
	assert_string_equal(b, "mx1");
	assert_int_equal(store_route_put(f->st, "r@x", 3, "mx2", &err), 0);
	assert_int_equal(redis_int("EXISTS postern:route:r@x"), 0);
	route_lookup(sw, loop, "r@x", &r);
	assert_string_equal(r.b, "mx2");
	/* del drops both */
	assert_int_equal(redis_server_cmd("SET postern:route:r@x mx9"), 0);
	assert_int_equal(store_route_del(f->st, "r@x", 3, &found, &err), 0);
	assert_true(found);
	assert_int_equal(redis_int("EXISTS postern:route:r@x postern:{r@x}:route"), 0);
	route_lookup(sw, loop, "r@x", &r);
	assert_false(r.found);
	/* a route lookup after Redis lost the script loads it again */
	assert_int_equal(redis_server_cmd("SET postern:route:r@x mx9"), 0);
	assert_int_equal(redis_server_cmd("SCRIPT FLUSH"), 0);
	route_lookup(sw, loop, "r@x", &r);
	assert_string_equal(r.b, "mx9");
	assert_int_equal(redis_server_cmd("SCRIPT FLUSH"), 0);
	assert_int_equal(store_route_get(f->st, "r@x", 3, b, &found, &err), 0);
	assert_string_equal(b, "mx9");
	store_worker_free(&sw);
	ev_loop_destroy(loop);
}

struct events {
	int n;
	enum store_event ev[8];
	char user[8][64];
};

static void
on_event(void *arg, enum store_event ev, const char *user, size_t len)
{
	struct events *e = arg;

	if (e->n >= 8)
		return;
	e->ev[e->n] = ev;
	snprintf(e->user[e->n], sizeof(e->user[0]), "%.*s", (int)len, user);
	e->n++;
}

/* A kick published by one process reaches the subscriber of another. */
static void
redis_the_fleet_channel_carries_kicks_and_route_changes(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store *admin = store_open(f->url, 0, &err);
	struct events e = {0};
	struct store_worker *sw;
	ev_tstamp end;

	store_subscribe(f->st, on_event, &e);
	sw = store_worker_new(f->st, loop, &err);
	/* probe until the subscription is up (messages before it are lost) */
	end = ev_time() + 5;
	while (e.n == 0 && ev_time() < end) {
		assert_int_equal(store_publish(admin, STORE_EVENT_KICK, "probe", 5, &err), 0);
		run_until_ms(loop, &e.n, 50);
	}
	run_until_ms(loop, &e.n, 100);
	memset(&e, 0, sizeof(e));
	assert_int_equal(store_publish(admin, STORE_EVENT_KICK, "bob@x", 5, &err), 0);
	assert_int_equal(store_publish(admin, STORE_EVENT_ROUTE, "al@x", 4, &err), 0);
	run_until(loop, &e.n, 2);
	assert_int_equal(e.ev[0], STORE_EVENT_KICK);
	assert_string_equal(e.user[0], "bob@x");
	assert_int_equal(e.ev[1], STORE_EVENT_ROUTE);
	assert_string_equal(e.user[1], "al@x");
	store_worker_free(&sw);
	store_close(&admin);
	ev_loop_destroy(loop);
}

/* The stores that are not shared say so, and keep no registry. */
static void
stores_that_are_not_shared_refuse_the_fleet_operations(void **state)
{
	struct fix *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *err = NULL;
	struct store_worker *sw = store_worker_new(f->st, loop, &err);
	struct store_session s = {.id = 1, .proto = PROTO_IMAP};

	assert_false(store_is_shared(f->st));
	assert_string_equal(store_proxy_id(f->st), "");
	assert_null(store_session_begin(sw, "u", 1, &s, 0, true, 0, on_sess, NULL, &err));
	assert_int_equal(store_publish(f->st, STORE_EVENT_KICK, "u", 1, &err), -1);
	store_session_end(sw, "u", 1, 1); /* nothing to do, no harm */
	store_worker_free(&sw);
	ev_loop_destroy(loop);
}

#define CONFORM(t)                                                                                 \
	cmocka_unit_test_prestate_setup_teardown(t, fix_setup, fix_teardown, "mem"),               \
	    cmocka_unit_test_prestate_setup_teardown(t, fix_setup, fix_teardown, "lmdb"),          \
	    cmocka_unit_test_prestate_setup_teardown(t, fix_setup, fix_teardown, "redis"),         \
	    cmocka_unit_test_prestate_setup_teardown(t, fix_setup, fix_teardown, "sentinel")
/* a Redis case runs on both forms: the socket and the master a Sentinel names */
#define REDIS(t)                                                                                   \
	cmocka_unit_test_prestate_setup_teardown(t, fix_setup, fix_teardown, "redis"),             \
	    cmocka_unit_test_prestate_setup_teardown(t, fix_setup, fix_teardown, "sentinel")
#define LMDB(t) cmocka_unit_test_prestate_setup_teardown(t, fix_setup, fix_teardown, "lmdb")

int
main(void)
{
	/* as the daemon does: a write to a link Redis closed is an error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    CONFORM(a_lock_round_trips_through_put_get_and_delete),
	    CONFORM(bad_keys_and_protocols_are_refused),
	    CONFORM(the_list_walks_every_lock_in_key_order),
	    CONFORM(a_claim_is_answered_on_the_loop_never_before_the_call_returns),
	    CONFORM(a_claim_follows_the_lock_through_hold_expiry_and_deletion),
	    CONFORM(a_lazy_refresh_is_answered_and_lands_soon_after),
	    CONFORM(requests_that_cannot_be_taken_are_refused_at_once),
	    CONFORM(a_cancelled_request_stays_silent_though_its_write_may_land),
	    CONFORM(threads_racing_for_a_key_agree_on_one_winner),
	    LMDB(a_route_round_trips_through_put_lookup_and_delete),
	    REDIS(a_route_round_trips_through_put_lookup_and_delete),
	    LMDB(stores_that_are_not_shared_refuse_the_fleet_operations),
	    REDIS(redis_the_registry_counts_the_fleet_like_the_local_counters),
	    REDIS(redis_a_proxy_whose_heartbeat_lapsed_stops_counting),
	    REDIS(redis_a_heartbeat_costs_one_command_per_worker_whatever_the_sessions),
	    REDIS(redis_an_idle_session_outlives_its_hash_ttl),
	    cmocka_unit_test(params_from_a_config_leave_the_rest_at_their_defaults),
	    REDIS(redis_a_timeout_on_a_live_link_writes_no_session_again),
	    REDIS(redis_a_new_link_writes_every_session_again_once),
	    REDIS(redis_lost_sessions_are_written_again_by_the_next_beat_or_link),
	    REDIS(redis_sessions_are_back_within_a_heartbeat_after_script_flush_and_flushall),
	    REDIS(redis_failed_logins_are_counted_once_for_the_fleet),
	    REDIS(redis_old_layout_locks_and_routes_are_still_read),
	    REDIS(redis_the_fleet_channel_carries_kicks_and_route_changes),
	    cmocka_unit_test(a_full_memory_store_refuses_new_keys_only),
	    cmocka_unit_test(store_urls_pick_a_store_or_say_why_not),
	    cmocka_unit_test(lmdb_opens_only_what_it_should),
	    cmocka_unit_test(a_lock_answered_survives_a_kill_9_of_its_writer),
	    LMDB(another_process_sees_and_changes_locks_while_the_store_is_open),
	    LMDB(processes_racing_for_a_key_agree_on_one_winner),
	    LMDB(a_record_the_store_cannot_read_fails_closed),
	    REDIS(another_process_sees_and_changes_locks_while_the_store_is_open),
	    REDIS(processes_racing_for_a_key_agree_on_one_winner),
	    REDIS(redis_a_record_the_store_cannot_read_fails_closed),
	    REDIS(redis_a_lost_script_is_loaded_again),
	    REDIS(redis_keys_carry_the_prefix_and_lock_expire_is_their_ttl),
	    REDIS(redis_a_request_waits_no_longer_than_state_timeout),
	    REDIS(redis_a_registration_answered_late_leaves_no_session_behind),
	    REDIS(redis_each_request_behind_a_timed_out_one_times_out_at_its_own_deadline),
	    REDIS(redis_a_dropped_link_fails_fast_and_comes_back),
	    cmocka_unit_test(sentinel_a_master_no_sentinel_names_fails_in_bounded_time),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	redis_server_stop();
	return rc;
}
