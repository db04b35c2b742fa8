/*
 * store.c: the store interface's common half.  Owns the choice of store by
 * URL scheme, the request object and the per-loop mailbox that brings an
 * answer from whatever thread made it back to the asking loop.  Never reads
 * or writes data itself: store_lmdb.c and store_mem.c do.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state_url.h"
#include "store_impl.h"

#define container_of_sw(w)                                                                         \
	((struct store_worker *)(void *)((char *)(w)-offsetof(struct store_worker, async)))

struct store *
store_open(const char *url, int flags, const char **err_out)
{
	return store_open_with(url, NULL, flags, err_out);
}

struct store *
store_open_with(const char *url, const struct store_params *sp, int flags, const char **err_out)
{
	struct state_url u;

	if (state_url_parse(url, &u, err_out) < 0)
		return NULL;
	switch (u.kind) {
	case STATE_LMDB:
		return store_lmdb_open(u.arg, flags, err_out);
	case STATE_MEM:
		return store_mem_open(u.arg, err_out);
	case STATE_REDIS_TCP:
	case STATE_REDIS_UNIX:
	case STATE_REDIS_SENTINEL:
		return store_redis_open(&u, sp, err_out);
	}
	*err_out = "unknown state store";
	return NULL;
}

void
store_params_from_config(const struct config *cfg, struct store_params *out)
{
	memset(out, 0, sizeof(*out)); /* what the config does not set: the defaults */
	out->password_file = cfg->state_password_file;
	out->prefix = cfg->state_prefix;
	out->user = cfg->state_user;
	out->sentinel_password_file = cfg->sentinel_password_file;
	out->wait_replicas = (unsigned)cfg->state_wait_replicas;
	out->timeout_ms = cfg->state_timeout_ms;
	out->lock_expire_ms = cfg->policy.lock_expire_ms;
	out->heartbeat_ms = cfg->state_heartbeat_ms;
}

void
store_status_get(struct store *st, struct store_status *out)
{
	memset(out, 0, sizeof(*out));
	out->up = st != NULL;
	if (st != NULL && st->ops->status != NULL)
		st->ops->status(st, out);
}

void
store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	st->ops->close(st);
}

const char *
store_name(const struct store *st)
{
	return st->ops->name;
}

/* ---- the decisions every store makes -------------------------------------- */

const char *const store_claim_outcome_name[] = {
    [STORE_CLAIM_CREATED] = "created", [STORE_CLAIM_REPLACED] = "replaced",
    [STORE_CLAIM_HELD] = "held",       [STORE_CLAIM_REFRESHED] = "refreshed",
    [STORE_CLAIM_OTHER] = "other",
};
/* Unsized above, so an outcome added without its name fails here. */
_Static_assert(sizeof(store_claim_outcome_name) / sizeof(store_claim_outcome_name[0]) ==
                   STORE_CLAIM__COUNT,
               "store_claim_outcome_name must name every outcome");

bool
store_lock_expired(const struct store_lock *l, uint64_t now_ms, uint64_t expire_ms)
{
	/* a clock that went back leaves the lock alone */
	return expire_ms != 0 && now_ms >= l->used_ms && now_ms - l->used_ms >= expire_ms;
}

/* store_redis.c's Lua script makes this same decision: change both. */
enum store_claim_outcome
store_claim_decide(const struct store_claim *c, const struct store_lock *cur,
                   struct store_lock *next_out)
{
	if (cur == NULL || store_lock_expired(cur, c->now_ms, c->expire_ms)) {
		next_out->proto = c->proto;
		next_out->origin = STORE_ORIGIN_LOGIN;
		next_out->created_ms = c->now_ms;
		next_out->used_ms = c->now_ms;
		return cur == NULL ? STORE_CLAIM_CREATED : STORE_CLAIM_REPLACED;
	}
	*next_out = *cur;
	if (cur->proto != c->proto)
		return STORE_CLAIM_OTHER;
	if (c->now_ms > cur->used_ms && c->now_ms - cur->used_ms >= c->refresh_ms) {
		next_out->used_ms = c->now_ms;
		return STORE_CLAIM_REFRESHED;
	}
	return STORE_CLAIM_HELD;
}

/* ---- the mailbox ------------------------------------------------------- */

static void
deliver(struct store_req *r)
{
	switch (r->op) {
	case STORE_OP_CLAIM:
		r->claim_cb(r->arg, r->rc, r->rc == 0 ? NULL : r->err,
		            r->rc == 0 ? &r->claim_ans : NULL);
		break;
	case STORE_OP_SESSION:
		r->sess_cb(r->arg, r->rc, r->rc == 0 ? NULL : r->err, r->sess_ans, r->sess_other);
		break;
	case STORE_OP_THROTTLE:
		r->thr_cb(r->arg, r->rc, r->rc == 0 ? NULL : r->err,
		          r->rc == 0 ? &r->thr_ans : NULL);
		break;
	case STORE_OP_ROUTE:
		r->route_cb(r->arg, r->rc, r->rc == 0 ? NULL : r->err,
		            r->rc == 0 && r->route_found ? r->route : NULL);
		break;
	}
}

/* On sw's loop: run the answers that arrived, in arrival order. */
static void
sw_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct store_worker *sw = container_of_sw(w);
	struct store_req *r, *next;

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&sw->mu);
	r = sw->done_head;
	sw->done_head = sw->done_tail = NULL;
	pthread_mutex_unlock(&sw->mu);
	for (; r != NULL; r = next) {
		next = r->next;
		/* a callback may cancel a later request of this same list:
		 * cancelled is read now, not before the loop */
		if (!r->cancelled)
			deliver(r);
		free(r);
	}
}

struct store_worker *
store_worker_new(struct store *st, struct ev_loop *loop, const char **err_out)
{
	struct store_worker *sw = calloc(1, sizeof(*sw));
	bool mu = false;

	if (sw == NULL) {
		*err_out = "out of memory";
		return NULL;
	}
	sw->st = st;
	sw->loop = loop;
	if (pthread_mutex_init(&sw->mu, NULL) != 0 || !(mu = true) ||
	    pthread_cond_init(&sw->idle, NULL) != 0) {
		*err_out = "cannot make a mutex";
		goto fail;
	}
	if (st->ops->worker_open(sw, err_out) < 0) {
		pthread_cond_destroy(&sw->idle);
		goto fail;
	}
	ev_async_init(&sw->async, sw_async_cb);
	ev_async_start(loop, &sw->async);
	/* the mailbox alone must not keep the loop running */
	ev_unref(loop);
	return sw;
fail:
	if (mu)
		pthread_mutex_destroy(&sw->mu);
	free(sw);
	return NULL;
}

void
store_worker_free(struct store_worker **swp)
{
	struct store_worker *sw = *swp;
	struct store_req *r, *next;

	if (sw == NULL)
		return;
	*swp = NULL;
	if (sw->st->ops->worker_stop != NULL)
		sw->st->ops->worker_stop(sw);
	pthread_mutex_lock(&sw->mu);
	/* the store thread touches sw until it has put the last answer here */
	while (sw->inflight > 0)
		pthread_cond_wait(&sw->idle, &sw->mu);
	r = sw->done_head;
	sw->done_head = sw->done_tail = NULL;
	pthread_mutex_unlock(&sw->mu);
	for (; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
	ev_ref(sw->loop);
	ev_async_stop(sw->loop, &sw->async);
	sw->st->ops->worker_close(sw);
	pthread_cond_destroy(&sw->idle);
	pthread_mutex_destroy(&sw->mu);
	free(sw);
}

void
store_req_done(struct store_req *r)
{
	struct store_worker *sw = r->sw;

	pthread_mutex_lock(&sw->mu);
	r->next = NULL;
	if (sw->done_tail != NULL)
		sw->done_tail->next = r;
	else
		sw->done_head = r;
	sw->done_tail = r;
	/* under the lock: store_worker_free() cannot free sw between these */
	ev_async_send(sw->loop, &sw->async);
	if (--sw->inflight == 0)
		pthread_cond_signal(&sw->idle);
	pthread_mutex_unlock(&sw->mu);
}

static struct store_req *
req_new(struct store_worker *sw, const char *key, size_t len, const char **err_out)
{
	struct store_req *r;

	if (len == 0 || len > STORE_KEY_MAX) {
		*err_out = len == 0 ? "empty key" : "key too long";
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		*err_out = "out of memory";
		return NULL;
	}
	r->sw = sw;
	memcpy(r->key, key, len);
	r->key_len = len;
	return r;
}

/* Hand r to the store; NULL (r freed) if it would not take it. */
static struct store_req *
req_submit(struct store_req *r, const char **err_out)
{
	struct store_worker *sw = r->sw;

	pthread_mutex_lock(&sw->mu);
	sw->inflight++;
	pthread_mutex_unlock(&sw->mu);
	if (sw->st->ops->submit(r, err_out) == 0)
		return r;
	pthread_mutex_lock(&sw->mu);
	if (--sw->inflight == 0)
		pthread_cond_signal(&sw->idle);
	pthread_mutex_unlock(&sw->mu);
	free(r);
	return NULL;
}

struct store_req *
store_lock_claim(struct store_worker *sw, const char *key, size_t len, const struct store_claim *c,
                 store_claim_cb cb, void *arg, const char **err_out)
{
	return store_lock_claim_until(sw, key, len, c, 0, cb, arg, err_out);
}

struct store_req *
store_lock_claim_until(struct store_worker *sw, const char *key, size_t len,
                       const struct store_claim *c, uint64_t deadline_ms, store_claim_cb cb,
                       void *arg, const char **err_out)
{
	struct store_req *r;

	if ((unsigned)c->proto >= PROTO__COUNT) {
		*err_out = "no such protocol";
		return NULL;
	}
	if ((r = req_new(sw, key, len, err_out)) == NULL)
		return NULL;
	r->op = STORE_OP_CLAIM;
	r->deadline_ms = deadline_ms;
	r->claim = *c;
	r->claim_cb = cb;
	r->arg = arg;
	return req_submit(r, err_out);
}

/* ---- the fleet ------------------------------------------------------------ */

bool
store_is_shared(const struct store *st)
{
	return st->ops->session_note != NULL;
}

const char *
store_proxy_id(const struct store *st)
{
	return st->ops->proxy_id != NULL ? st->ops->proxy_id(st) : "";
}

struct store_req *
store_session_begin(struct store_worker *sw, const char *key, size_t len,
                    const struct store_session *s, uint32_t max, bool exclusive,
                    uint64_t deadline_ms, store_session_cb cb, void *arg, const char **err_out)
{
	struct store_req *r;

	if (!store_is_shared(sw->st)) {
		*err_out = "not a shared store";
		return NULL;
	}
	if ((unsigned)s->proto >= PROTO__COUNT) {
		*err_out = "no such protocol";
		return NULL;
	}
	if ((r = req_new(sw, key, len, err_out)) == NULL)
		return NULL;
	r->op = STORE_OP_SESSION;
	r->sess = *s;
	r->sess_max = max;
	r->sess_exclusive = exclusive;
	r->deadline_ms = deadline_ms;
	r->sess_cb = cb;
	r->arg = arg;
	return req_submit(r, err_out);
}

void
store_session_keep(struct store_worker *sw, const char *key, size_t len,
                   const struct store_session *s)
{
	if (sw->st->ops->session_note != NULL && len > 0 && len <= STORE_KEY_MAX)
		sw->st->ops->session_note(sw, key, len, s, false);
}

void
store_session_end(struct store_worker *sw, const char *key, size_t len, uint64_t id)
{
	struct store_session s = {.id = id};

	if (sw->st->ops->session_note != NULL && len > 0 && len <= STORE_KEY_MAX)
		sw->st->ops->session_note(sw, key, len, &s, true);
}

struct store_req *
store_throttle_fail(struct store_worker *sw, const char *ip_user, size_t iu_len, const char *ip,
                    size_t ip_len, uint64_t window_ms, store_throttle_cb cb, void *arg,
                    const char **err_out)
{
	struct store_req *r;

	if (!store_is_shared(sw->st)) {
		*err_out = "not a shared store";
		return NULL;
	}
	if (ip_len == 0 || ip_len > STORE_KEY_MAX) {
		*err_out = "bad key";
		return NULL;
	}
	if ((r = req_new(sw, ip_user, iu_len, err_out)) == NULL)
		return NULL;
	r->op = STORE_OP_THROTTLE;
	memcpy(r->key2, ip, ip_len);
	r->key2_len = ip_len;
	r->window_ms = window_ms;
	r->thr_cb = cb;
	r->arg = arg;
	return req_submit(r, err_out);
}

void
store_throttle_clear(struct store_worker *sw, const char *ip_user, size_t iu_len)
{
	if (sw->st->ops->throttle_clear != NULL && iu_len > 0 && iu_len <= STORE_KEY_MAX)
		sw->st->ops->throttle_clear(sw, ip_user, iu_len);
}

void
store_announce(struct store_worker *sw, enum store_event ev, const char *msg, size_t len)
{
	if (sw->st->ops->announce != NULL && len <= STORE_KEY_MAX + 64)
		sw->st->ops->announce(sw, ev, msg, len);
}

struct store_req *
store_route_lookup(struct store_worker *sw, const char *key, size_t len, uint64_t deadline_ms,
                   store_route_cb cb, void *arg, const char **err_out)
{
	struct store_req *r;

	if (sw->st->ops->route_get == NULL) {
		*err_out = "this store keeps no routes";
		return NULL;
	}
	if ((r = req_new(sw, key, len, err_out)) == NULL)
		return NULL;
	r->op = STORE_OP_ROUTE;
	r->deadline_ms = deadline_ms;
	r->route_cb = cb;
	r->arg = arg;
	return req_submit(r, err_out);
}

void
store_subscribe(struct store *st, store_event_cb cb, void *arg)
{
	if (st->ops->subscribe != NULL)
		st->ops->subscribe(st, cb, arg);
}

void
store_worker_on_recovered(struct store_worker *sw, store_recovered_cb cb, void *arg)
{
	sw->recovered_cb = cb;
	sw->recovered_arg = arg;
}

void
store_req_cancel(struct store_req *r)
{
	if (r != NULL)
		r->cancelled = true;
}

/* ---- synchronous ---------------------------------------------------------- */

int
store_lock_get(struct store *st, const char *key, size_t len, struct store_lock *out,
               bool *found_out, const char **err_out)
{
	if (len == 0 || len > STORE_KEY_MAX) {
		*err_out = len == 0 ? "empty key" : "key too long";
		return -1;
	}
	return st->ops->lock_get(st, key, len, out, found_out, err_out);
}

int
store_lock_put(struct store *st, const char *key, size_t len, const struct store_lock *rec,
               const char **err_out)
{
	if (len == 0 || len > STORE_KEY_MAX) {
		*err_out = len == 0 ? "empty key" : "key too long";
		return -1;
	}
	if ((unsigned)rec->proto >= PROTO__COUNT) {
		*err_out = "no such protocol";
		return -1;
	}
	return st->ops->lock_put(st, key, len, rec, err_out);
}

int
store_lock_del(struct store *st, const char *key, size_t len, bool *found_out, const char **err_out)
{
	if (len == 0 || len > STORE_KEY_MAX) {
		*err_out = len == 0 ? "empty key" : "key too long";
		return -1;
	}
	return st->ops->lock_del(st, key, len, found_out, err_out);
}

int
store_lock_list(struct store *st, store_list_cb cb, void *arg, const char **err_out)
{
	return st->ops->lock_list(st, cb, arg, err_out);
}

static int
key_ok(size_t len, const char **err_out)
{
	if (len == 0 || len > STORE_KEY_MAX) {
		*err_out = len == 0 ? "empty key" : "key too long";
		return -1;
	}
	return 0;
}

int
store_route_get(struct store *st, const char *key, size_t len,
                char backend_out[STORE_BACKEND_MAX + 1], bool *found_out, const char **err_out)
{
	if (key_ok(len, err_out) < 0)
		return -1;
	if (st->ops->route_get == NULL) {
		*err_out = "this store keeps no routes";
		return -1;
	}
	return st->ops->route_get(st, key, len, backend_out, found_out, err_out);
}

int
store_route_put(struct store *st, const char *key, size_t len, const char *backend,
                const char **err_out)
{
	size_t bl = strlen(backend);

	if (key_ok(len, err_out) < 0)
		return -1;
	if (bl == 0 || bl > STORE_BACKEND_MAX) {
		*err_out = "bad backend name";
		return -1;
	}
	if (st->ops->route_put == NULL) {
		*err_out = "this store keeps no routes";
		return -1;
	}
	return st->ops->route_put(st, key, len, backend, err_out);
}

int
store_route_del(struct store *st, const char *key, size_t len, bool *found_out,
                const char **err_out)
{
	if (key_ok(len, err_out) < 0)
		return -1;
	if (st->ops->route_del == NULL) {
		*err_out = "this store keeps no routes";
		return -1;
	}
	return st->ops->route_del(st, key, len, found_out, err_out);
}

int
store_publish(struct store *st, enum store_event ev, const char *user, size_t len,
              const char **err_out)
{
	if (st->ops->publish == NULL) {
		*err_out = "not a shared store";
		return -1;
	}
	if (len > STORE_KEY_MAX) {
		*err_out = "key too long";
		return -1;
	}
	return st->ops->publish(st, ev, user, len, err_out);
}
