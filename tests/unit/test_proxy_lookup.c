/*
 * test_proxy_lookup.c: the lookup engine on a real libev loop against a
 * small HTTP server run by this test (a thread per connection on
 * 127.0.0.1): keep-alive, the max_inflight queue, timeouts, transport
 * errors, bounds on the answer, the breaker, the cache and cancelling.
 * Relies only on lookup_msg.h's documented reading of nginx answers.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "lookup.h"

/* ---- the service ---------------------------------------------------- */

enum srv_mode { SRV_OK, SRV_REFUSE, SRV_NO_STATUS, SRV_BIG, SRV_SILENT, SRV_JSON_404 };

static struct {
	int fd;
	uint16_t port;
	pthread_t thread;
	atomic_int mode, delay_ms;
	atomic_int accepted, requests, now, peak;
	atomic_bool stop;
} srv;

static void
srv_answer(int fd)
{
	static char big[100 * 1024];
	char head[512];
	int n = 0;

	switch (atomic_load(&srv.mode)) {
	case SRV_OK:
		n = snprintf(head, sizeof(head),
		             "HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
		             "Auth-Port: 143\r\nContent-Length: 0\r\n\r\n");
		break;
	case SRV_REFUSE:
		n = snprintf(head, sizeof(head),
		             "HTTP/1.1 200 OK\r\nAuth-Status: Invalid login\r\nAuth-Wait: 3\r\n"
		             "Content-Length: 0\r\n\r\n");
		break;
	case SRV_NO_STATUS:
		n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
		break;
	case SRV_BIG:
		memset(big, 'x', sizeof(big));
		n = snprintf(head, sizeof(head),
		             "HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
		             "Auth-Port: 143\r\nContent-Length: %zu\r\n\r\n",
		             sizeof(big));
		break;
	case SRV_JSON_404:
		n = snprintf(head, sizeof(head),
		             "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
		             "Content-Length: 2\r\n\r\n{}");
		break;
	}
	if (write(fd, head, (size_t)n) != n)
		return;
	if (atomic_load(&srv.mode) == SRV_BIG && write(fd, big, sizeof(big)) < 0)
		return;
}

/* One connection: requests one after the other (keep-alive). */
static void *
srv_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[8192];
	size_t have = 0;

	for (;;) {
		char *end;
		ssize_t n;
		long body = 0;

		while ((end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
			if (have == sizeof(buf) ||
			    (n = read(fd, buf + have, sizeof(buf) - have)) <= 0)
				goto out;
			have += (size_t)n;
		}
		for (char *p = buf; p < end; p++)
			if (strncasecmp(p, "\r\nContent-Length:", 17) == 0)
				body = strtol(p + 17, NULL, 10);
		end += 4;
		while ((size_t)(end - buf) + (size_t)body > have) {
			if (have == sizeof(buf) ||
			    (n = read(fd, buf + have, sizeof(buf) - have)) <= 0)
				goto out;
			have += (size_t)n;
		}
		end += body;
		memmove(buf, end, have - (size_t)(end - buf));
		have -= (size_t)(end - buf);
		atomic_fetch_add(&srv.requests, 1);
		int now = atomic_fetch_add(&srv.now, 1) + 1, peak = atomic_load(&srv.peak);
		while (now > peak && !atomic_compare_exchange_weak(&srv.peak, &peak, now))
			;
		if (atomic_load(&srv.mode) == SRV_SILENT) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			while (!atomic_load(&srv.stop) && poll(&p, 1, 50) == 0)
				;
			atomic_fetch_sub(&srv.now, 1);
			goto out;
		}
		if (atomic_load(&srv.delay_ms) > 0)
			usleep((useconds_t)atomic_load(&srv.delay_ms) * 1000);
		atomic_fetch_sub(&srv.now, 1);
		srv_answer(fd);
	}
out:
	close(fd);
	return NULL;
}

static void *
srv_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&srv.stop)) {
		struct pollfd p = {.fd = srv.fd, .events = POLLIN};
		pthread_t t;
		int c;

		if (poll(&p, 1, 50) <= 0 || (c = accept(srv.fd, NULL, NULL)) < 0)
			continue;
		atomic_fetch_add(&srv.accepted, 1);
		pthread_create(&t, NULL, srv_conn, (void *)(intptr_t)c);
		pthread_detach(t);
	}
	return NULL;
}

static int
srv_start(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	(void)state;
	memset(&srv, 0, sizeof(srv));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(srv.fd, 64) < 0 || getsockname(srv.fd, (struct sockaddr *)&sin, &len) < 0)
		return -1;
	srv.port = ntohs(sin.sin_port);
	return pthread_create(&srv.thread, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

static int
srv_stop(void **state)
{
	(void)state;
	atomic_store(&srv.stop, true);
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	usleep(100 * 1000); /* the connection threads see stop */
	return 0;
}

/* ---- the asking side ---------------------------------------------------- */

#define ANSWERS_MAX 64

struct got {
	int n;
	enum lookup_status status[ANSWERS_MAX];
	enum lookup_source src[ANSWERS_MAX];
	int wait_s[ANSWERS_MAX];
	char why[ANSWERS_MAX][LOOKUP_WHY_MAX + 1];
	double seconds[ANSWERS_MAX];
};

static struct ev_loop *loop;
static struct lookup_worker *lw;
static struct got got;
static char url[64];
static int want;

static void
on_answer(void *arg, const struct lookup_answer *a, enum lookup_source src, double seconds)
{
	int i = got.n++;

	(void)arg;
	assert_true(i < ANSWERS_MAX);
	got.status[i] = a->status;
	got.src[i] = src;
	got.wait_s[i] = a->wait_s;
	snprintf(got.why[i], sizeof(got.why[i]), "%s", a->why);
	got.seconds[i] = seconds;
	if (got.n >= want)
		ev_break(loop, EVBREAK_ONE);
}

static void
give_up(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)t, (void)revents;
	ev_break(l, EVBREAK_ONE);
}

/* Run the loop until n answers came or secs passed. */
static void
run_for(int n, double secs)
{
	ev_timer t;

	want = n;
	ev_timer_init(&t, give_up, secs, 0);
	ev_timer_start(loop, &t);
	if (got.n < want)
		ev_run(loop, 0);
	ev_timer_stop(loop, &t);
}

static struct lookup_conf
conf(void)
{
	struct lookup_conf lc = {
	    .protocol = LOOKUP_PROTO_NGINX,
	    .timeout_ms = 2000,
	    .send_password = true,
	    .max_inflight = 32,
	    .breaker_failures = 100,
	    .breaker_wait_ms = 10000,
	};
	return lc;
}

static const struct lookup_query query = {
    .proto = PROTO_IMAP,
    .user = "alice",
    .user_len = 5,
    .pass = "s3cret",
    .pass_len = 6,
    .attempt = 1,
    .client_ip = "192.0.2.1",
    .client_port = 50000,
    .client_host = "[UNAVAILABLE]",
};

static struct lookup_req *
ask(const struct lookup_conf *lc)
{
	struct lookup_req *r = lookup_ask(lw, lc, url, &query, on_answer, NULL);

	assert_non_null(r);
	return r;
}

/* A fresh worker and counts; the URL's path p makes its own breaker. */
static void
setup(const char *p, int mode)
{
	memset(&got, 0, sizeof(got));
	atomic_store(&srv.mode, mode);
	atomic_store(&srv.delay_ms, 0);
	atomic_store(&srv.accepted, 0);
	atomic_store(&srv.requests, 0);
	atomic_store(&srv.peak, 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/%s", (unsigned)srv.port, p);
	loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(loop);
	lw = lookup_worker_new(loop, NULL);
	assert_non_null(lw);
}

static void
teardown(void)
{
	lookup_worker_free(&lw);
	assert_null(lw);
	ev_loop_destroy(loop);
}

/* ---- the tests ---------------------------------------------------------- */

static void
sequential_lookups_share_one_kept_alive_connection(void **state)
{
	struct lookup_conf lc = conf();

	(void)state;
	setup("keepalive", SRV_OK);
	for (int i = 0; i < 5; i++) {
		ask(&lc);
		assert_int_equal(got.n, i); /* never from inside lookup_ask() */
		run_for(i + 1, 2);
		assert_int_equal(got.n, i + 1);
		assert_int_equal(got.status[i], LOOKUP_OK);
		assert_int_equal(got.src[i], LOOKUP_FROM_SERVICE);
	}
	assert_int_equal(atomic_load(&srv.requests), 5);
	assert_int_equal(atomic_load(&srv.accepted), 1);
	teardown();
}

static void
refusal_carries_its_wait_and_no_status_is_a_temporary_failure(void **state)
{
	struct lookup_conf lc = conf();

	(void)state;
	setup("refuse", SRV_REFUSE);
	ask(&lc);
	run_for(1, 2);
	assert_int_equal(got.status[0], LOOKUP_REFUSED);
	assert_int_equal(got.wait_s[0], 3);
	atomic_store(&srv.mode, SRV_NO_STATUS);
	ask(&lc);
	run_for(2, 2);
	assert_int_equal(got.status[1], LOOKUP_TEMP);
	assert_int_equal(got.src[1], LOOKUP_FROM_SERVICE);
	teardown();
}

static void
no_more_than_max_inflight_questions_are_under_way(void **state)
{
	struct lookup_conf lc = conf();

	(void)state;
	lc.max_inflight = 2;
	setup("inflight", SRV_OK);
	atomic_store(&srv.delay_ms, 100);
	for (int i = 0; i < 6; i++)
		ask(&lc);
	run_for(6, 3);
	assert_int_equal(got.n, 6);
	for (int i = 0; i < 6; i++)
		assert_int_equal(got.status[i], LOOKUP_OK);
	assert_int_equal(atomic_load(&srv.peak), 2);
	assert_true(atomic_load(&srv.accepted) <= 2);
	teardown();
}

static void
a_silent_service_times_out_within_the_timeout(void **state)
{
	struct lookup_conf lc = conf();

	(void)state;
	lc.timeout_ms = 300;
	lc.max_inflight = 1;
	setup("silent", SRV_SILENT);
	ask(&lc);
	ask(&lc); /* queued behind the first: its time runs all the same */
	run_for(2, 3);
	assert_int_equal(got.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(got.status[i], LOOKUP_TEMP);
		assert_int_equal(got.src[i], LOOKUP_FROM_TIMEOUT);
		assert_true(got.seconds[i] >= 0.29 && got.seconds[i] < 0.5);
	}
	teardown();
}

static void
a_closed_port_is_a_transport_error(void **state)
{
	struct lookup_conf lc = conf();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	(void)state;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	setup("closed", SRV_OK);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", (unsigned)ntohs(sin.sin_port));
	ask(&lc);
	run_for(1, 2);
	close(fd);
	assert_int_equal(got.status[0], LOOKUP_TEMP);
	assert_int_equal(got.src[0], LOOKUP_FROM_TRANSPORT);
	assert_true(got.why[0][0] != '\0');
	assert_null(strstr(got.why[0], "s3cret"));
	teardown();
}

static void
an_answer_too_large_is_cut_off(void **state)
{
	struct lookup_conf lc = conf();

	(void)state;
	setup("big", SRV_BIG);
	ask(&lc);
	run_for(1, 2);
	assert_int_equal(got.status[0], LOOKUP_TEMP);
	assert_int_equal(got.src[0], LOOKUP_FROM_SERVICE);
	assert_string_equal(got.why[0], "answer too large");
	teardown();
}

static void
the_breaker_opens_fails_fast_probes_and_closes(void **state)
{
	struct lookup_conf lc = conf();

	(void)state;
	lc.breaker_failures = 3;
	lc.breaker_wait_ms = 200;
	setup("breaker", SRV_NO_STATUS);
	for (int i = 0; i < 3; i++) {
		ask(&lc);
		run_for(i + 1, 2);
		assert_int_equal(got.src[i], LOOKUP_FROM_SERVICE);
	}
	assert_int_equal(lookup_breakers_open(), 1);
	ask(&lc);
	run_for(4, 2);
	assert_int_equal(got.src[3], LOOKUP_FROM_BREAKER);
	assert_true(got.seconds[3] < 0.05);
	assert_int_equal(atomic_load(&srv.requests), 3);

	usleep(250 * 1000);
	atomic_store(&srv.mode, SRV_OK);
	atomic_store(&srv.delay_ms, 100);
	ask(&lc); /* the probe */
	ask(&lc); /* fails fast while the probe is out */
	run_for(6, 2);
	assert_int_equal(got.src[4], LOOKUP_FROM_BREAKER);
	assert_int_equal(got.src[5], LOOKUP_FROM_SERVICE);
	assert_int_equal(got.status[5], LOOKUP_OK);
	assert_int_equal(lookup_breakers_open(), 0);
	atomic_store(&srv.delay_ms, 0);
	ask(&lc);
	run_for(7, 2);
	assert_int_equal(got.src[6], LOOKUP_FROM_SERVICE);
	teardown();
}

static void
route_answers_and_unknown_users_are_cached_refusals_are_not(void **state)
{
	struct lookup_conf lc = conf();

	(void)state;
	lc.cache_ttl_ms = 10000;
	setup("cache", SRV_OK);
	ask(&lc);
	run_for(1, 2);
	ask(&lc);
	run_for(2, 2);
	assert_int_equal(got.src[1], LOOKUP_FROM_CACHE);
	assert_int_equal(got.status[1], LOOKUP_OK);
	assert_int_equal(atomic_load(&srv.requests), 1);
	teardown();

	setup("refusals", SRV_REFUSE);
	lc.negative_ttl_ms = 10000;
	for (int i = 0; i < 2; i++) {
		ask(&lc);
		run_for(i + 1, 2);
		assert_int_equal(got.src[i], LOOKUP_FROM_SERVICE);
	}
	assert_int_equal(atomic_load(&srv.requests), 2);
	teardown();

	setup("negative", SRV_JSON_404);
	lc.protocol = LOOKUP_PROTO_JSON;
	for (int i = 0; i < 2; i++) {
		ask(&lc);
		run_for(i + 1, 2);
		assert_int_equal(got.status[i], LOOKUP_UNKNOWN);
	}
	assert_int_equal(got.src[0], LOOKUP_FROM_SERVICE);
	assert_int_equal(got.src[1], LOOKUP_FROM_CACHE);
	assert_int_equal(atomic_load(&srv.requests), 1);
	teardown();
}

static void
a_cancelled_question_is_never_answered(void **state)
{
	struct lookup_conf lc = conf();
	struct lookup_req *r1, *r2, *r3;

	(void)state;
	lc.max_inflight = 1;
	setup("cancel", SRV_OK);
	atomic_store(&srv.delay_ms, 100);
	r1 = ask(&lc);
	run_for(1, 0.03); /* r1 is in flight */
	r2 = ask(&lc);    /* queued */
	r3 = ask(&lc);
	lookup_cancel(&r1);
	lookup_cancel(&r2);
	assert_null(r1);
	assert_null(r2);
	lookup_cancel(&r2); /* NULL is fine */
	run_for(1, 2);
	assert_int_equal(got.n, 1); /* r3 only */
	assert_int_equal(got.status[0], LOOKUP_OK);
	(void)r3;
	/* and one dropped with its worker */
	ask(&lc);
	run_for(2, 0.03);
	teardown();
	assert_int_equal(got.n, 1);
}

static void
lookup_once_asks_without_a_loop(void **state)
{
	struct lookup_conf lc = conf();
	struct lookup_answer a;
	long status = 0;

	(void)state;
	setup("once", SRV_OK);
	assert_int_equal(lookup_once(&lc, url, &query, &a, &status), LOOKUP_FROM_SERVICE);
	assert_int_equal(a.status, LOOKUP_OK);
	assert_int_equal(status, 200);
	assert_int_equal(a.port, 143);
	teardown();
}

static void
lookups_per_second_on_one_worker(void **state)
{
	struct lookup_conf lc = conf();
	struct timespec t0, t1;
	double secs;
	const int n = 2000;

	(void)state;
	setup("bench", SRV_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int done = 0; done < n;) {
		memset(&got, 0, sizeof(got));
		for (int i = 0; i < 32; i++)
			ask(&lc);
		run_for(32, 5);
		assert_int_equal(got.n, 32);
		done += 32;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("lookups: %d in %.3fs, %.0f/s, %d connections\n", n, secs, (double)n / secs,
	              atomic_load(&srv.accepted));
	teardown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sequential_lookups_share_one_kept_alive_connection),
	    cmocka_unit_test(refusal_carries_its_wait_and_no_status_is_a_temporary_failure),
	    cmocka_unit_test(no_more_than_max_inflight_questions_are_under_way),
	    cmocka_unit_test(a_silent_service_times_out_within_the_timeout),
	    cmocka_unit_test(a_closed_port_is_a_transport_error),
	    cmocka_unit_test(an_answer_too_large_is_cut_off),
	    cmocka_unit_test(the_breaker_opens_fails_fast_probes_and_closes),
	    cmocka_unit_test(route_answers_and_unknown_users_are_cached_refusals_are_not),
	    cmocka_unit_test(a_cancelled_question_is_never_answered),
	    cmocka_unit_test(lookup_once_asks_without_a_loop),
	    cmocka_unit_test(lookups_per_second_on_one_worker),
	};

	if (lookup_global_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, srv_start, srv_stop);
}
