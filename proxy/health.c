/*
 * health.c: the active health checker.  A thread with its own libev loop
 * connects to each backend of the current runtime every check_interval and
 * reads its greeting (through TLS for implicit-TLS backends, on the same
 * link code as logins), and reports the result to the backend's registry
 * record.  It never touches a client connection and keeps no backend state
 * of its own beyond the check under way.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "health.h"
#include "link.h"
#include "registry.h"
#include "runtime.h"
#include "tls.h"

#define CHECK_LINE_MAX     512
#define CHECK_TICK_SECONDS 0.25

bool
health_any_up(void)
{
	struct runtime *rt = runtime_get();
	bool up = false;

	/* With no backend configured a lookup service names them at each
	 * login, and only those logins tell whether they are up: up. */
	up = rt != NULL && rt->cfg->nbackends == 0;
	for (size_t bi = 0; rt != NULL && bi < rt->cfg->nbackends && !up; bi++)
		up = registry_is_up(rt->reg[bi]);
	runtime_unref(&rt);
	return up;
}

/* ---- the checker ---------------------------------------------------------- */

/*
 * A check is a small backend connection: the same link and TLS code as a
 * login (so it sends SNI and verifies the certificate the same way), a
 * PROXY header saying "this is the proxy itself", and one greeting line.
 */
enum check_state { CK_IDLE, CK_CONNECT, CK_TLS, CK_GREETING };

struct check {
	struct registry_entry *e; /* what the results go to */
	struct runtime *rt;       /* reference while a check runs */
	size_t bi;
	enum check_state state;
	struct link link;
	ev_timer to;
	ev_tstamp next;
	char line[CHECK_LINE_MAX];
	size_t len;
};

static struct {
	pthread_t thread;
	struct ev_loop *loop;
	ev_timer tick;
	ev_async stop;
	struct check *checks[REGISTRY_MAX]; /* by registry id; made on first use */
	bool running;
} checker;

static void
check_end(struct check *k, bool ok, const char *why)
{
	const struct backend_conf *bc = &k->rt->cfg->backends[k->bi];

	ev_timer_stop(checker.loop, &k->to);
	link_close(&k->link);
	registry_report(k->e, ok, why, bc->rise, bc->fall);
	k->next = ev_now(checker.loop) + (ev_tstamp)bc->check_interval_ms / 1000.0;
	k->state = CK_IDLE;
	runtime_unref(&k->rt);
}

/* Connected: the PROXY header a PROXY backend needs, then TLS or the
 * greeting.  false when the check ended. */
static bool
check_connected(struct check *k)
{
	const struct backend_conf *bc = &k->rt->cfg->backends[k->bi];
	int err = link_connect_error(&k->link);

	if (err != 0) {
		check_end(k, false, strerror(err));
		return false;
	}
	/* A backend that expects a PROXY header says nothing without one: a
	 * LOCAL header (v2) or "UNKNOWN" (v1) says "this is the proxy itself"
	 * (PROXY protocol spec 2.1, 2.2). */
	if (bc->forward & (FORWARD_PROXY_V1 | FORWARD_PROXY_V2)) {
		static const uint8_t v2_local[16] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
		                                     0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
		                                     0x20, 0x00, 0x00, 0x00};
		static const char v1_unknown[] = "PROXY UNKNOWN\r\n";
		bool v2 = (bc->forward & FORWARD_PROXY_V2) != 0;
		if (link_send_all(&k->link, v2 ? (const void *)v2_local : (const void *)v1_unknown,
		                  v2 ? sizeof(v2_local) : sizeof(v1_unknown) - 1) < 0) {
			check_end(k, false, "cannot send the PROXY header");
			return false;
		}
	}
	if (bc->tls == TLSM_IMPLICIT) {
		if (link_tls_client(&k->link, tls_state_backend_ctx(k->rt->tls, k->bi),
		                    tls_backend_verify_name(bc)) < 0) {
			check_end(k, false, "TLS setup failed");
			return false;
		}
		k->state = CK_TLS;
	} else {
		k->state = CK_GREETING;
	}
	return true;
}

/* The port a check greets: IMAP, else POP3, else ManageSieve (a backend
 * with only `sieve = PORT`). */
static enum proto_kind
check_proto(const struct backend_conf *bc)
{
	return bc->port[PROTO_IMAP] ? PROTO_IMAP : bc->port[PROTO_POP3] ? PROTO_POP3 : PROTO_SIEVE;
}

static void
check_step(struct check *k)
{
	if (k->state == CK_CONNECT && !check_connected(k))
		return;
	if (k->state == CK_TLS) {
		char why[256];
		int r = link_handshake(&k->link, why, sizeof(why));
		if (r == 0) {
			link_watch(&k->link, k->link.rd_wants);
			return;
		}
		if (r < 0) {
			check_end(k, false, why);
			return;
		}
		k->state = CK_GREETING;
	}
	/* CK_GREETING: one line, "* OK" (IMAP) or "+OK" (POP3), or for
	 * ManageSieve its first capability line, a string (RFC 5804 §1.7:
	 * "IMPLEMENTATION" "Dovecot Pigeonhole"). */
	for (;;) {
		ssize_t n = link_read(&k->link, k->line + k->len, sizeof(k->line) - 1 - k->len);
		char *nl;

		if (n == LINK_AGAIN) {
			link_watch(&k->link, k->link.rd_wants);
			return;
		}
		if (n <= 0) {
			check_end(k, false, "closed before the greeting");
			return;
		}
		k->len += (size_t)n;
		k->line[k->len] = '\0';
		if ((nl = strchr(k->line, '\n')) != NULL) {
			bool sieve = check_proto(&k->rt->cfg->backends[k->bi]) == PROTO_SIEVE;
			bool ok = sieve ? k->line[0] == '"' || strncmp(k->line, "OK", 2) == 0
			                : strncmp(k->line, "* OK", 4) == 0 ||
			                      strncmp(k->line, "+OK", 3) == 0;
			check_end(k, ok, ok ? NULL : "unexpected greeting");
			return;
		}
		if (k->len >= sizeof(k->line) - 1) {
			check_end(k, false, "greeting too long");
			return;
		}
	}
}

static void
check_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct check *k = container_of(io, struct check, link.io);

	(void)loop;
	(void)revents;
	check_step(k);
}

static void
check_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct check *k = container_of(t, struct check, to);

	(void)loop;
	(void)revents;
	check_end(k, false, k->state == CK_CONNECT ? "connect timeout" : "no greeting in time");
}

static void
check_start(struct check *k, struct runtime *rt, size_t bi)
{
	const struct backend_conf *bc = &rt->cfg->backends[bi];
	enum proto_kind pk = check_proto(bc);

	k->rt = rt;
	k->bi = bi;
	k->len = 0;
	link_init(&k->link, checker.loop, -1, check_io_cb);
	ev_timer_init(&k->to, check_timeout_cb, (ev_tstamp)bc->check_timeout_ms / 1000.0, 0.);
	if (link_connect(&k->link, (const struct sockaddr *)&bc->addr[pk], bc->addrlen[pk]) < 0) {
		check_end(k, false, strerror(errno));
		return;
	}
	k->state = CK_CONNECT;
	link_watch(&k->link, EV_WRITE);
	ev_timer_start(checker.loop, &k->to);
}

static struct check *
check_for(struct registry_entry *e)
{
	struct check *k;
	uint32_t id;

	/* No record (the registry was full): nothing to report to. */
	if (e == NULL)
		return NULL;
	id = registry_id(e);
	if ((k = checker.checks[id]) != NULL)
		return k;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	k->e = e;
	link_init(&k->link, checker.loop, -1, check_io_cb);
	checker.checks[id] = k;
	return k;
}

static void
tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct runtime *rt = runtime_get();

	(void)t;
	(void)revents;
	if (rt == NULL)
		return;
	for (size_t bi = 0; bi < rt->cfg->nbackends; bi++) {
		const struct backend_conf *bc = &rt->cfg->backends[bi];
		struct check *k;

		if (bc->check_interval_ms == 0 || (k = check_for(rt->reg[bi])) == NULL)
			continue;
		if (k->state != CK_IDLE || ev_now(loop) < k->next)
			continue;
		check_start(k, runtime_get(), bi);
	}
	runtime_unref(&rt);
}

static void
stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)a;
	(void)revents;
	for (size_t i = 0; i < REGISTRY_MAX; i++)
		if (checker.checks[i] != NULL && checker.checks[i]->state != CK_IDLE)
			check_end(checker.checks[i], false, "stopping");
	ev_break(loop, EVBREAK_ALL);
}

static void *
checker_main(void *arg)
{
	(void)arg;
	ev_run(checker.loop, 0);
	/* A tick queued beside the stop may have started checks after
	 * stop_cb: end them, so no runtime reference outlives the thread. */
	for (size_t i = 0; i < REGISTRY_MAX; i++)
		if (checker.checks[i] != NULL && checker.checks[i]->state != CK_IDLE)
			check_end(checker.checks[i], false, "stopping");
	return NULL;
}

int
health_start(void)
{
	checker.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (checker.loop == NULL)
		return -1;
	ev_timer_init(&checker.tick, tick_cb, 0., CHECK_TICK_SECONDS);
	ev_timer_start(checker.loop, &checker.tick);
	ev_async_init(&checker.stop, stop_cb);
	ev_async_start(checker.loop, &checker.stop);
	if (pthread_create(&checker.thread, NULL, checker_main, NULL) != 0)
		return -1;
	checker.running = true;
	return 0;
}

void
health_stop(void)
{
	if (!checker.running)
		return;
	ev_async_send(checker.loop, &checker.stop);
	pthread_join(checker.thread, NULL);
	for (size_t i = 0; i < REGISTRY_MAX; i++) {
		free(checker.checks[i]);
		checker.checks[i] = NULL;
	}
	ev_loop_destroy(checker.loop);
	checker.running = false;
}
