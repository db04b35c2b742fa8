/*
 * lookup.c: the lookup engine (see lookup.h): one libcurl multi handle per
 * worker, its sockets and its timer tied to the worker's libev loop, a FIFO
 * of questions beyond max_inflight, and the delivery of answers, always
 * from the loop, never from inside lookup_ask().  The words of the two
 * protocols are lookup_msg.c's; the breaker and the cache are
 * lookup_breaker.c's and lookup_cache.c's.  Never blocks the loop.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "lookup.h"
#include "lookup_impl.h"
#include "metrics.h"

#define LOOKUP_DISCARD_MAX (64 * 1024) /* an nginx answer's body, read and dropped */
#define LOOKUP_KEY_MAX     (2048 + 3 + LOOKUP_USER_MAX)
/* a JSON request body: the fixed fields, then the user and the password,
 * each byte escaped at worst as \u00XX */
#define LOOKUP_JSON_FIXED 4096

enum req_state { RQ_QUEUED, RQ_RUNNING, RQ_DONE, RQ_ONCE };

struct lookup_req {
	struct lookup_worker *lw;       /* borrowed; NULL for lookup_once() */
	struct lookup_req *prev, *next; /* in the list of its state */
	enum req_state state;
	lookup_cb cb;
	void *arg;
	char *url; /* owned copy: the config may be reloaded meanwhile */
	enum lookup_protocol protocol;
	uint64_t cache_ttl_ms, negative_ttl_ms, breaker_wait_ms;
	int breaker_failures;
	bool probe;              /* the breaker's half-open probe */
	double asked, deadline;  /* ev_time() */
	ev_timer queue_timer;    /* RQ_QUEUED: its deadline */
	CURL *easy;              /* owned; RQ_RUNNING and RQ_ONCE */
	struct curl_slist *hdrs; /* owned; lines wiped before they are freed */
	char *body;              /* owned: JSON request [body_cap], wiped after */
	size_t body_len, body_cap;
	char *in; /* owned: JSON answer, LOOKUP_BODY_MAX + 1 */
	size_t in_len, discarded, head_bytes;
	const char *abort_why; /* static: why we ended the transfer ourselves */
	char errbuf[CURL_ERROR_SIZE];
	long http_status;
	enum lookup_source src;
	size_t klen; /* 0: not cacheable */
	char key[LOOKUP_KEY_MAX];
	struct lookup_answer a;
};

struct lookup_list {
	struct lookup_req *head, *tail;
	size_t n;
};

/* One curl socket's watcher, kept with curl_multi_assign(). */
struct lookup_sock {
	ev_io io;
	struct lookup_worker *lw;
	struct lookup_sock *prev, *next;
};

struct lookup_worker {
	struct ev_loop *loop; /* borrowed */
	struct metrics *m;    /* borrowed, may be NULL */
	CURLM *multi;         /* owned */
	long maxconnects;     /* CURLMOPT_MAXCONNECTS as last set */
	ev_timer curl_timer;  /* CURLMOPT_TIMERFUNCTION's */
	ev_timer kick;        /* zero delay: start queued questions, deliver answers */
	struct lookup_list queued, running, done;
	struct lookup_sock *socks; /* every watcher, for the last free */
	struct lookup_cache *cache;
	int max_inflight; /* the last question's lc->max_inflight */
};

/* ---- lists ------------------------------------------------------------- */

static void
list_push(struct lookup_list *l, struct lookup_req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static void
list_unlink(struct lookup_list *l, struct lookup_req *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

static struct lookup_list *
list_of(struct lookup_req *r)
{
	switch (r->state) {
	case RQ_QUEUED:
		return &r->lw->queued;
	case RQ_RUNNING:
		return &r->lw->running;
	case RQ_DONE:
		return &r->lw->done;
	default:
		return NULL;
	}
}

/* ---- one request --------------------------------------------------------- */

/* Free r and everything it holds, secrets wiped; the easy handle must be
 * out of the multi already. */
static void
req_free(struct lookup_req *r)
{
	for (struct curl_slist *l = r->hdrs; l != NULL; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(r->hdrs);
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	if (r->body != NULL)
		OPENSSL_cleanse(r->body, r->body_cap);
	free(r->body);
	free(r->in);
	free(r->url);
	lookup_answer_wipe(&r->a);
	OPENSSL_cleanse(r->key, sizeof(r->key));
	free(r);
}

static void
why_set(struct lookup_answer *a, const char *why)
{
	size_t n = strnlen(why, sizeof(a->why) - 1);

	a->status = LOOKUP_TEMP;
	memcpy(a->why, why, n); /* cut: curl's texts may run longer */
	a->why[n] = '\0';
}

static int
add_header(void *arg, const char *line)
{
	struct lookup_req *r = arg;
	struct curl_slist *n = curl_slist_append(r->hdrs, line);

	if (n == NULL)
		return -1;
	r->hdrs = n;
	return 0;
}

static size_t
header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct lookup_req *r = arg;
	size_t len = size * n;

	r->head_bytes += len;
	if (r->head_bytes > LOOKUP_HEADS_MAX) {
		r->abort_why = "answer headers too large";
		return 0; /* CURLE_WRITE_ERROR ends the transfer */
	}
	if (r->protocol == LOOKUP_PROTO_NGINX && lookup_nginx_line(&r->a, data, len) < 0) {
		r->abort_why = ""; /* a->why says it */
		return 0;
	}
	return len;
}

static size_t
body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct lookup_req *r = arg;
	size_t len = size * n;

	if (r->protocol == LOOKUP_PROTO_NGINX) {
		/* nginx reads no body: drop it, within reason */
		if ((r->discarded += len) > LOOKUP_DISCARD_MAX) {
			r->abort_why = "answer too large";
			return 0;
		}
		return len;
	}
	if (len > LOOKUP_BODY_MAX - r->in_len) {
		r->abort_why = "answer too large";
		return 0;
	}
	memcpy(r->in + r->in_len, data, len);
	r->in_len += len;
	return len;
}

/* The easy handle of r with all its options; -1 when out of memory. */
static int
req_easy(struct lookup_req *r, const struct lookup_conf *lc, const struct lookup_query *q0)
{
	struct lookup_query q = *q0;
	CURL *e;

	q.headers = (const char *const *)lc->headers;
	q.nheaders = lc->nheaders;
	if (!lc->send_password) {
		q.pass = NULL;
		q.pass_len = 0;
	}
	if ((r->easy = e = curl_easy_init()) == NULL)
		return -1;
	if (r->protocol == LOOKUP_PROTO_NGINX) {
		if (lookup_nginx_headers(&q, add_header, r) < 0)
			return -1;
	} else {
		r->body_cap = LOOKUP_JSON_FIXED + 6 * (q.user_len + (q.pass ? q.pass_len : 0));
		if ((r->body = malloc(r->body_cap)) == NULL ||
		    (r->in = malloc(LOOKUP_BODY_MAX + 1)) == NULL)
			return -1;
		if ((r->body_len = lookup_json_request(&q, r->body, r->body_cap)) == (size_t)-1)
			return -1;
		if (add_header(r, "Content-Type: application/json") < 0)
			return -1;
		for (size_t i = 0; i < lc->nheaders; i++)
			if (add_header(r, lc->headers[i]) < 0)
				return -1;
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
	}
	/* curl adds an Accept line and, for large bodies, Expect: 100-continue;
	 * neither is the protocol's */
	if (add_header(r, "Accept:") < 0 || add_header(r, "Expect:") < 0)
		return -1;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never http_proxy from the environment */
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (lc->ca != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, lc->ca);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	return 0;
}

/* The timeouts from what is left of r's time; false when none is. */
static bool
req_time_left(struct lookup_req *r, double now)
{
	long ms = (long)((r->deadline - now) * 1000);

	if (ms < 1)
		return false;
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, ms);
	return true;
}

/* The transfer of r ended with rc: its answer and where it came from. */
static void
req_conclude(struct lookup_req *r, CURLcode rc)
{
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->http_status);
	r->src = LOOKUP_FROM_SERVICE;
	if (rc == CURLE_WRITE_ERROR && r->abort_why != NULL) {
		if (r->abort_why[0] != '\0')
			why_set(&r->a, r->abort_why);
		r->a.status = LOOKUP_TEMP;
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		r->src = LOOKUP_FROM_TIMEOUT;
		why_set(&r->a, "timed out");
	} else if (rc != CURLE_OK) {
		r->src = LOOKUP_FROM_TRANSPORT;
		why_set(&r->a, r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(rc));
	} else if (r->protocol == LOOKUP_PROTO_NGINX) {
		lookup_nginx_finish(&r->a);
	} else {
		r->in[r->in_len] = '\0';
		lookup_json_answer(&r->a, r->http_status, r->in, r->in_len);
	}
}

/* ---- the worker's side --------------------------------------------------- */

static uint64_t
now_ms(const struct lookup_worker *lw)
{
	return (uint64_t)(ev_now(lw->loop) * 1000);
}

static void
kick(struct lookup_worker *lw)
{
	if (!ev_is_active(&lw->kick) && !ev_is_pending(&lw->kick)) {
		ev_timer_set(&lw->kick, 0, 0);
		ev_timer_start(lw->loop, &lw->kick);
	}
}

/* r has its answer (r->a, r->src): to the done list, delivered from the loop. */
static void
req_done(struct lookup_req *r)
{
	struct lookup_worker *lw = r->lw;

	list_push(&lw->done, r);
	r->state = RQ_DONE;
	kick(lw);
}

static void
queue_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lookup_req *r =
	    (struct lookup_req *)((char *)t - offsetof(struct lookup_req, queue_timer));

	(void)revents;
	ev_timer_stop(loop, t);
	list_unlink(&r->lw->queued, r);
	if (r->probe)
		lookup_breaker_release(r->url);
	r->probe = false;
	r->src = LOOKUP_FROM_TIMEOUT;
	why_set(&r->a, "timed out waiting for a free request slot");
	req_done(r);
}

/* Start queued questions while there is room. */
static void
dispatch(struct lookup_worker *lw)
{
	while (lw->queued.head != NULL && lw->running.n < (size_t)lw->max_inflight) {
		struct lookup_req *r = lw->queued.head;

		ev_timer_stop(lw->loop, &r->queue_timer);
		list_unlink(&lw->queued, r);
		if (!req_time_left(r, ev_time())) {
			r->src = LOOKUP_FROM_TIMEOUT;
			why_set(&r->a, "timed out waiting for a free request slot");
			if (r->probe)
				lookup_breaker_release(r->url);
			r->probe = false;
			req_done(r);
			continue;
		}
		if (curl_multi_add_handle(lw->multi, r->easy) != CURLM_OK) {
			r->src = LOOKUP_FROM_TRANSPORT;
			why_set(&r->a, "cannot start the request");
			req_done(r);
			continue;
		}
		list_push(&lw->running, r);
		r->state = RQ_RUNNING;
	}
}

static enum metrics_lookup
result_of(const struct lookup_req *r)
{
	static const enum metrics_lookup by_status[] = {
	    [LOOKUP_OK] = METRICS_LOOKUP_OK,
	    [LOOKUP_REFUSED] = METRICS_LOOKUP_REFUSED,
	    [LOOKUP_UNKNOWN] = METRICS_LOOKUP_UNKNOWN,
	    [LOOKUP_TEMP] = METRICS_LOOKUP_TEMPFAIL,
	};

	switch (r->src) {
	case LOOKUP_FROM_CACHE:
		return METRICS_LOOKUP_CACHED;
	case LOOKUP_FROM_TIMEOUT:
		return METRICS_LOOKUP_TIMEOUT;
	case LOOKUP_FROM_TRANSPORT:
		return METRICS_LOOKUP_ERROR;
	case LOOKUP_FROM_BREAKER:
		return METRICS_LOOKUP_BREAKER;
	default:
		return (unsigned)r->a.status <= LOOKUP_TEMP ? by_status[r->a.status]
		                                            : METRICS_LOOKUP_TEMPFAIL;
	}
}

/* Answers to their callers, one at a time: a callback may ask or cancel. */
static void
deliver(struct lookup_worker *lw)
{
	struct lookup_req *r;

	while ((r = lw->done.head) != NULL) {
		double secs = ev_time() - r->asked;

		list_unlink(&lw->done, r);
		metrics_lookup(lw->m, result_of(r), r->src == LOOKUP_FROM_SERVICE, secs);
		r->cb(r->arg, &r->a, r->src, secs);
		req_free(r);
	}
}

static void
kick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lookup_worker *lw = t->data;

	(void)loop, (void)revents;
	dispatch(lw);
	deliver(lw);
}

/* A transfer of the multi ended: its answer, the breaker, the cache. */
static void
req_finished(struct lookup_worker *lw, struct lookup_req *r, CURLcode rc)
{
	bool failed;

	curl_multi_remove_handle(lw->multi, r->easy);
	list_unlink(&lw->running, r);
	req_conclude(r, rc);
	failed =
	    r->src != LOOKUP_FROM_SERVICE || r->a.status == LOOKUP_TEMP || r->http_status >= 500;
	lookup_breaker_report(r->url, r->probe, failed, r->breaker_failures, r->breaker_wait_ms,
	                      r->a.why);
	r->probe = false;
	if (r->src == LOOKUP_FROM_SERVICE && r->a.status == LOOKUP_OK && !r->a.has_pass)
		lookup_cache_put(lw->cache, r->key, r->klen, &r->a, now_ms(lw), r->cache_ttl_ms);
	else if (r->src == LOOKUP_FROM_SERVICE && r->a.status == LOOKUP_UNKNOWN)
		lookup_cache_put(lw->cache, r->key, r->klen, &r->a, now_ms(lw), r->negative_ttl_ms);
	req_done(r);
}

static void
check_done(struct lookup_worker *lw)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(lw->multi, &left)) != NULL) {
		struct lookup_req *r = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		req_finished(lw, r, msg->data.result);
	}
	dispatch(lw);
	deliver(lw);
}

static void
sock_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct lookup_sock *s = (struct lookup_sock *)io;
	struct lookup_worker *lw = s->lw;
	int action =
	    (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;

	(void)loop;
	/* s may be freed here (CURL_POLL_REMOVE) */
	curl_multi_socket_action(lw->multi, io->fd, action, &running);
	check_done(lw);
}

static void
curl_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lookup_worker *lw = t->data;
	int running;

	(void)loop, (void)revents;
	curl_multi_socket_action(lw->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(lw);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants, or stop. */
static int
socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct lookup_worker *lw = userp;
	struct lookup_sock *s = socketp;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			ev_io_stop(lw->loop, &s->io);
			if (s->prev != NULL)
				s->prev->next = s->next;
			else
				lw->socks = s->next;
			if (s->next != NULL)
				s->next->prev = s->prev;
			free(s);
			curl_multi_assign(lw->multi, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->lw = lw;
		s->next = lw->socks;
		if (lw->socks != NULL)
			lw->socks->prev = s;
		lw->socks = s;
		ev_init(&s->io, sock_io_cb);
		curl_multi_assign(lw->multi, fd, s);
	}
	ev_io_stop(lw->loop, &s->io);
	ev_io_set(&s->io, fd,
	          (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0));
	ev_io_start(lw->loop, &s->io);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer; -1 stops it. */
static int
timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct lookup_worker *lw = userp;

	(void)multi;
	ev_timer_stop(lw->loop, &lw->curl_timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&lw->curl_timer, (double)timeout_ms / 1000.0, 0);
		ev_timer_start(lw->loop, &lw->curl_timer);
	}
	return 0;
}

int
lookup_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

struct lookup_worker *
lookup_worker_new(struct ev_loop *loop, struct metrics *m)
{
	struct lookup_worker *lw = calloc(1, sizeof(*lw));

	if (lw == NULL)
		return NULL;
	lw->loop = loop;
	lw->m = m;
	lw->max_inflight = 1;
	if ((lw->multi = curl_multi_init()) == NULL || (lw->cache = lookup_cache_new()) == NULL) {
		lookup_worker_free(&lw);
		return NULL;
	}
	curl_multi_setopt(lw->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
	curl_multi_setopt(lw->multi, CURLMOPT_SOCKETDATA, lw);
	curl_multi_setopt(lw->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(lw->multi, CURLMOPT_TIMERDATA, lw);
	ev_init(&lw->curl_timer, curl_timer_cb);
	lw->curl_timer.data = lw;
	ev_init(&lw->kick, kick_cb);
	lw->kick.data = lw;
	return lw;
}

/* Drop r wherever it is, without a callback. */
static void
req_drop(struct lookup_req *r)
{
	struct lookup_worker *lw = r->lw;

	if (r->state == RQ_QUEUED)
		ev_timer_stop(lw->loop, &r->queue_timer);
	if (r->state == RQ_RUNNING)
		curl_multi_remove_handle(lw->multi, r->easy);
	list_unlink(list_of(r), r);
	if (r->probe)
		lookup_breaker_release(r->url);
	req_free(r);
}

void
lookup_worker_free(struct lookup_worker **lwp)
{
	struct lookup_worker *lw = *lwp;

	if (lw == NULL)
		return;
	*lwp = NULL;
	while (lw->queued.head != NULL)
		req_drop(lw->queued.head);
	while (lw->running.head != NULL)
		req_drop(lw->running.head);
	while (lw->done.head != NULL)
		req_drop(lw->done.head);
	if (lw->multi != NULL)
		curl_multi_cleanup(lw->multi); /* closes the kept connections */
	while (lw->socks != NULL) {
		struct lookup_sock *s = lw->socks;

		lw->socks = s->next;
		ev_io_stop(lw->loop, &s->io);
		free(s);
	}
	ev_timer_stop(lw->loop, &lw->curl_timer);
	ev_timer_stop(lw->loop, &lw->kick);
	lookup_cache_free(&lw->cache);
	free(lw);
}

static struct lookup_req *
req_new(const struct lookup_conf *lc, const char *url)
{
	struct lookup_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if ((r->url = strdup(url)) == NULL) {
		free(r);
		return NULL;
	}
	lookup_answer_init(&r->a);
	r->protocol = lc->protocol;
	r->cache_ttl_ms = lc->cache_ttl_ms;
	r->negative_ttl_ms = lc->negative_ttl_ms;
	r->breaker_failures = lc->breaker_failures;
	r->breaker_wait_ms = lc->breaker_wait_ms;
	return r;
}

struct lookup_req *
lookup_ask(struct lookup_worker *lw, const struct lookup_conf *lc, const char *url,
           const struct lookup_query *q, lookup_cb cb, void *arg)
{
	struct lookup_req *r = req_new(lc, url);
	enum breaker_verdict bv;

	if (r == NULL)
		return NULL;
	r->lw = lw;
	r->cb = cb;
	r->arg = arg;
	r->asked = ev_time();
	r->deadline = r->asked + (double)lc->timeout_ms / 1000.0;
	lw->max_inflight = lc->max_inflight > 0 ? lc->max_inflight : 1;
	if (lw->maxconnects != lw->max_inflight) {
		lw->maxconnects = lw->max_inflight;
		curl_multi_setopt(lw->multi, CURLMOPT_MAXCONNECTS, lw->maxconnects);
	}
	if (lc->cache_ttl_ms > 0 || lc->negative_ttl_ms > 0)
		r->klen = lookup_cache_key(r->key, sizeof(r->key), url, lc->protocol, q);
	if (lookup_cache_get(lw->cache, r->key, r->klen, now_ms(lw), &r->a)) {
		r->src = LOOKUP_FROM_CACHE;
		req_done(r);
		return r;
	}
	if ((bv = lookup_breaker_admit(url)) == BREAKER_REFUSE) {
		r->src = LOOKUP_FROM_BREAKER;
		why_set(&r->a, "the lookup service is failing (circuit breaker open)");
		req_done(r);
		return r;
	}
	r->probe = bv == BREAKER_PROBE;
	if (req_easy(r, lc, q) < 0) {
		if (r->probe)
			lookup_breaker_release(url);
		req_free(r);
		return NULL;
	}
	/* through the queue always: the kick starts it, after this call returns */
	r->state = RQ_QUEUED;
	list_push(&lw->queued, r);
	ev_timer_init(&r->queue_timer, queue_timeout_cb, (double)lc->timeout_ms / 1000.0, 0);
	ev_timer_start(lw->loop, &r->queue_timer);
	kick(lw);
	return r;
}

void
lookup_cancel(struct lookup_req **rp)
{
	struct lookup_worker *lw;

	if (rp == NULL || *rp == NULL)
		return;
	lw = (*rp)->lw;
	req_drop(*rp);
	*rp = NULL;
	kick(lw); /* a slot may be free now */
}

enum lookup_source
lookup_once(const struct lookup_conf *lc, const char *url, const struct lookup_query *q,
            struct lookup_answer *a, long *http_status)
{
	struct lookup_req *r = req_new(lc, url);
	enum lookup_source src = LOOKUP_FROM_TRANSPORT;

	lookup_answer_init(a);
	*http_status = 0;
	if (r == NULL) {
		why_set(a, "out of memory");
		return src;
	}
	r->state = RQ_ONCE;
	r->deadline = ev_time() + (double)lc->timeout_ms / 1000.0;
	if (req_easy(r, lc, q) < 0 || !req_time_left(r, ev_time())) {
		why_set(a, "cannot make the request");
	} else {
		req_conclude(r, curl_easy_perform(r->easy));
		*a = r->a;
		*http_status = r->http_status;
		src = r->src;
	}
	req_free(r);
	return src;
}
