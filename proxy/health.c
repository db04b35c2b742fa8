/*
 * health.c: backend up/down state for the whole process.  Records are keyed
 * by backend name (stable across reloads) and never freed; workers read the
 * state with one atomic load.  A checker thread with its own libev loop
 * connects to each backend every check_interval and reads its greeting
 * (through TLS for implicit-TLS backends); real logins report connect
 * failures too.  It never touches a client connection.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conn.h"
#include "health.h"
#include "log.h"
#include "runtime.h"

#define HEALTH_MAX         1024 /* backend names remembered */
#define CHECK_LINE_MAX     512
#define CHECK_TICK_SECONDS 0.25

struct health {
	char name[65];
	atomic_bool up;
	pthread_mutex_t lock; /* the counters below */
	int oks, fails;       /* consecutive results */
	char last_why[128];
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct health *table[HEALTH_MAX];
static size_t ntable;

struct health *
health_get(const char *name)
{
	struct health *h = NULL;

	pthread_mutex_lock(&table_lock);
	for (size_t i = 0; i < ntable; i++) {
		if (strcmp(table[i]->name, name) == 0) {
			h = table[i];
			break;
		}
	}
	if (h == NULL && ntable < HEALTH_MAX && (h = calloc(1, sizeof(*h))) != NULL) {
		snprintf(h->name, sizeof(h->name), "%s", name);
		atomic_init(&h->up, true); /* innocent until proven down */
		pthread_mutex_init(&h->lock, NULL);
		table[ntable++] = h;
	}
	pthread_mutex_unlock(&table_lock);
	return h;
}

bool
health_is_up(const struct health *h)
{
	return h == NULL || atomic_load(&h->up);
}

void
health_report(struct health *h, bool ok, const char *why, int rise, int fall)
{
	bool was, now;

	if (h == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	was = atomic_load(&h->up);
	if (ok) {
		h->fails = 0;
		if (h->oks < 1000)
			h->oks++;
	} else {
		h->oks = 0;
		if (h->fails < 1000)
			h->fails++;
		snprintf(h->last_why, sizeof(h->last_why), "%s", why ? why : "check failed");
	}
	now = was;
	if (was && !ok && h->fails >= fall)
		now = false;
	else if (!was && ok && h->oks >= rise)
		now = true;
	atomic_store(&h->up, now);
	pthread_mutex_unlock(&h->lock);
	if (was && !now)
		log_kv(LOG_WARN, "backend.down", "backend=%s fails=%d reason=\"%s\"", h->name, fall,
		       why ? why : "check failed");
	else if (!was && now)
		log_kv(LOG_INFO, "backend.up", "backend=%s oks=%d", h->name, rise);
}

/* ---- the checker ---------------------------------------------------------- */

enum check_state { CK_IDLE, CK_CONNECT, CK_TLS, CK_GREETING };

struct check {
	char name[65];
	struct health *h;
	struct runtime *rt; /* reference while a check runs */
	size_t bi;
	enum check_state state;
	int fd;
	SSL *ssl;
	ev_io io;
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
	struct check *checks[HEALTH_MAX];
	size_t nchecks;
	bool running;
} checker;

static void
check_end(struct check *k, bool ok, const char *why)
{
	const struct backend_conf *bc = &k->rt->cfg->backends[k->bi];

	ev_io_stop(checker.loop, &k->io);
	ev_timer_stop(checker.loop, &k->to);
	if (k->ssl != NULL) {
		SSL_free(k->ssl);
		k->ssl = NULL;
	}
	if (k->fd >= 0) {
		close(k->fd);
		k->fd = -1;
	}
	health_report(k->h, ok, why, bc->rise, bc->fall);
	k->next = ev_now(checker.loop) + (ev_tstamp)bc->check_interval_ms / 1000.0;
	k->state = CK_IDLE;
	runtime_unref(&k->rt);
	ERR_clear_error();
}

static void
check_wait(struct check *k, int events)
{
	ev_io_stop(checker.loop, &k->io);
	ev_io_set(&k->io, k->fd, events);
	ev_io_start(checker.loop, &k->io);
}

static void
check_step(struct check *k)
{
	const struct backend_conf *bc = &k->rt->cfg->backends[k->bi];
	int r;

	if (k->state == CK_CONNECT) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
			check_end(k, false, err ? strerror(err) : "connect failed");
			return;
		}
		/* A backend that expects a PROXY header says nothing without one:
		 * a LOCAL header (v2) or "UNKNOWN" (v1) says "this is the proxy
		 * itself" (PROXY protocol spec 2.1, 2.2). */
		if (bc->forward & (FORWARD_PROXY_V1 | FORWARD_PROXY_V2)) {
			static const uint8_t v2_local[16] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
			                                     0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
			                                     0x20, 0x00, 0x00, 0x00};
			static const char v1_unknown[] = "PROXY UNKNOWN\r\n";
			bool v2 = (bc->forward & FORWARD_PROXY_V2) != 0;
			size_t n = v2 ? sizeof(v2_local) : sizeof(v1_unknown) - 1;
			if (send(k->fd, v2 ? (const void *)v2_local : (const void *)v1_unknown, n,
			         MSG_NOSIGNAL) != (ssize_t)n) {
				check_end(k, false, "cannot send the PROXY header");
				return;
			}
		}
		if (bc->tls == TLSM_IMPLICIT) {
			SSL_CTX *ctx = tls_state_backend_ctx(k->rt->tls, k->bi);
			const char *vn = bc->verify_name ? bc->verify_name : bc->host;
			k->ssl = ctx ? SSL_new(ctx) : NULL;
			if (k->ssl == NULL || SSL_set_fd(k->ssl, k->fd) != 1) {
				check_end(k, false, "TLS setup failed");
				return;
			}
			SSL_set_connect_state(k->ssl);
			SSL_set1_host(k->ssl, vn);
			k->state = CK_TLS;
		} else {
			k->state = CK_GREETING;
		}
	}
	if (k->state == CK_TLS) {
		ERR_clear_error();
		r = SSL_do_handshake(k->ssl);
		if (r != 1) {
			int e = SSL_get_error(k->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				check_wait(k, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
				return;
			}
			check_end(k, false,
			          SSL_get_verify_result(k->ssl) != X509_V_OK
			              ? "certificate verification failed"
			              : "TLS handshake failed");
			return;
		}
		k->state = CK_GREETING;
	}
	/* CK_GREETING: one line, "* OK" (IMAP) or "+OK" (POP3). */
	for (;;) {
		ssize_t n;
		char *nl;
		if (k->ssl != NULL) {
			ERR_clear_error();
			r = SSL_read(k->ssl, k->line + k->len, (int)(sizeof(k->line) - 1 - k->len));
			if (r <= 0) {
				int e = SSL_get_error(k->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
					check_wait(k,
					           e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
					return;
				}
				check_end(k, false, "closed before the greeting");
				return;
			}
			n = r;
		} else {
			n = recv(k->fd, k->line + k->len, sizeof(k->line) - 1 - k->len, 0);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
				check_wait(k, EV_READ);
				return;
			}
			if (n <= 0) {
				check_end(k, false, "closed before the greeting");
				return;
			}
		}
		k->len += (size_t)n;
		k->line[k->len] = '\0';
		if ((nl = strchr(k->line, '\n')) != NULL) {
			bool ok =
			    strncmp(k->line, "* OK", 4) == 0 || strncmp(k->line, "+OK", 3) == 0;
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
	struct check *k = container_of(io, struct check, io);

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
	enum proto_kind pk = bc->port[PROTO_IMAP] ? PROTO_IMAP : PROTO_POP3;

	k->rt = rt;
	k->bi = bi;
	k->len = 0;
	k->fd = socket(bc->addr[pk].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (k->fd < 0 ||
	    (connect(k->fd, (const struct sockaddr *)&bc->addr[pk], bc->addrlen[pk]) < 0 &&
	     errno != EINPROGRESS)) {
		check_end(k, false, strerror(errno));
		return;
	}
	k->state = CK_CONNECT;
	ev_io_init(&k->io, check_io_cb, k->fd, EV_WRITE);
	ev_io_start(checker.loop, &k->io);
	ev_timer_init(&k->to, check_timeout_cb, (ev_tstamp)bc->check_timeout_ms / 1000.0, 0.);
	ev_timer_start(checker.loop, &k->to);
}

static struct check *
check_for(const char *name)
{
	struct check *k;

	for (size_t i = 0; i < checker.nchecks; i++)
		if (strcmp(checker.checks[i]->name, name) == 0)
			return checker.checks[i];
	if (checker.nchecks == HEALTH_MAX || (k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->h = health_get(name);
	k->fd = -1;
	checker.checks[checker.nchecks++] = k;
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

		if (bc->check_interval_ms == 0 || (k = check_for(bc->name)) == NULL)
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
	for (size_t i = 0; i < checker.nchecks; i++)
		if (checker.checks[i]->state != CK_IDLE)
			check_end(checker.checks[i], false, "stopping");
	ev_break(loop, EVBREAK_ALL);
}

static void *
checker_main(void *arg)
{
	(void)arg;
	ev_run(checker.loop, 0);
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
	for (size_t i = 0; i < checker.nchecks; i++)
		free(checker.checks[i]);
	checker.nchecks = 0;
	ev_loop_destroy(checker.loop);
	checker.running = false;
}
