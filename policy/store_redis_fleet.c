/*
 * store_redis_fleet.c: what a worker tells the fleet through Redis and
 * hears from it: the live sessions it registered, the heartbeat that keeps
 * this proxy (and so them) alive, re-registration after an outage, blocks
 * announced on the channel, and the one subscriber per process.  A
 * heartbeat costs one command per worker, whatever the number of sessions:
 * it never walks them all (only a new link or a loss found does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>

#include "log.h"
#include "store_redis_impl.h"

/* ---- live sessions of this worker --------------------------------------- */

static size_t
sess_bucket(uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> (64 - RSESS_BITS)) & (RSESS_BUCKETS - 1);
}

static struct rsess **
sess_find(struct redis_worker *rw, uint64_t id)
{
	struct rsess **pp = &rw->sess[sess_bucket(id)];

	while (*pp != NULL && (*pp)->s.id != id)
		pp = &(*pp)->next;
	return pp;
}

/* Take e out of the age list. */
static void
age_unlink(struct redis_worker *rw, struct rsess *e)
{
	if (rw->reput_next == e)
		rw->reput_next = e->newer; /* the rewrite under way keeps its place */
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		rw->old_head = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		rw->old_tail = e->older;
	e->older = e->newer = NULL;
}

/* e was written now: it goes to the young end. */
static void
age_touch(struct redis_worker *rw, struct rsess *e)
{
	if (rw->old_tail != e) {
		if (e->older != NULL || e->newer != NULL || rw->old_head == e)
			age_unlink(rw, e);
		e->older = rw->old_tail;
		if (rw->old_tail != NULL)
			rw->old_tail->newer = e;
		else
			rw->old_head = e;
		rw->old_tail = e;
	}
	e->put_at = ev_now(rw->loop);
}

void
store_redis_sess_drop(struct redis_worker *rw, uint64_t id)
{
	struct rsess **pp = sess_find(rw, id), *e = *pp;

	if (e == NULL)
		return;
	*pp = e->next;
	age_unlink(rw, e);
	free(e);
	rw->nsess--;
}

/* Register e without a check (nobody waits: a lost one is sent again when
 * the proxy key or the link is found lost; a NOSCRIPT reloads the script
 * and sends every session again). */
static void
sess_put(struct redis_worker *rw, const struct rsess *e)
{
	struct redis_store *rs = rw->rs;
	char key[REDIS_KEY_MAX], pp[REDIS_KEY_MAX], val[STORE_BACKEND_MAX + 32], sid[20], ttl[24],
	    hash_ttl[24];
	const char *argv[14] = {
	    "EVALSHA", rs->sha, "1", key, "sput", sid,     rs->proxy_id, proto_name(e->s.proto),
	    val,       "0",     "0", ttl, pp,     hash_ttl};
	size_t lens[14];

	if (rw->ac == NULL || !rw->ready || e->pending)
		return;
	store_redis_user_key(rs, "sess", e->key, e->key_len, key);
	store_redis_kind_key(rs, "proxy:", "", 0, pp);
	snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)e->s.id);
	snprintf(val, sizeof(val), "%s %llu", e->s.backend[0] ? e->s.backend : "-",
	         (unsigned long long)e->s.since_ms);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)rs->heartbeat_ms * 3);
	snprintf(hash_ttl, sizeof(hash_ttl), "%llu", (unsigned long long)rs->sess_ttl_ms);
	for (int i = 0; i < 14; i++)
		lens[i] = strlen(argv[i]);
	(void)store_redis_rw_note(rw, "sput", 14, argv, lens);
}

bool
store_redis_sess_has(struct redis_worker *rw, uint64_t id)
{
	return *sess_find(rw, id) != NULL;
}

void
store_redis_sess_confirm(struct redis_worker *rw, uint64_t id)
{
	struct rsess *e = *sess_find(rw, id);

	if (e != NULL)
		e->pending = false;
}

struct rsess *
store_redis_sess_add(struct redis_worker *rw, const char *key, size_t len,
                     const struct store_session *s)
{
	struct rsess **pp = sess_find(rw, s->id), *e;

	if (*pp != NULL)
		return *pp;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL; /* not kept: it lapses in Redis with the hash */
	e->s = *s;
	memcpy(e->key, key, len);
	e->key_len = len;
	*pp = e;
	age_touch(rw, e); /* its sreg or sput is sent now */
	rw->nsess++;
	return e;
}

/* The reply to a beat: 1 when this worker's field in the proxy key was
 * new, i.e. the key was gone (Redis restarted or was flushed without our
 * link noticing, a failover to a replica that lacked it, or our beats were
 * late by 3 heartbeats and a check dropped our sessions as a dead proxy's):
 * every session is written again.  The first beat of a worker finds it new
 * too, and writes the sessions noted before the link was ready. */
const char store_redis_note_beat[] = "heartbeat";

void
store_redis_rw_beat_reply(struct redis_worker *rw, const redisReply *rep)
{
	bool first = !rw->beat_seen;

	rw->beat_seen = true;
	if (rep->type != REDIS_REPLY_INTEGER || rep->integer != 1 || rw->outage || !rw->ready ||
	    rw->closing)
		return; /* an outage ends in store_redis_rw_recovered(), which writes them */
	if (rw->nsess > 0 && !first)
		log_kv(LOG_INFO, "state.resync",
		       "store=redis proxy_id=%s sessions=%zu why=\"the proxy key was missing\"",
		       rw->rs->proxy_id, rw->nsess);
	store_redis_rw_reput(rw);
}

/* This worker's field in the proxy key, and the key's TTL: one command
 * whatever the number of sessions. */
static void
beat_send(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	char pk[REDIS_KEY_MAX], ttl[24];
	const char *argv[] = {"EVALSHA", rs->sha, "1", pk, "beat", rw->field, ttl};
	size_t lens[7] = {7, 40, 1, 0, 4, strlen(rw->field), 0};

	lens[3] = store_redis_kind_key(rs, "proxy:", rs->proxy_id, strlen(rs->proxy_id), pk);
	lens[6] =
	    (size_t)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)rs->heartbeat_ms * 3);
	(void)store_redis_rw_note(rw, store_redis_note_beat, 7, argv, lens);
}

/* The heartbeat: this proxy is alive (its key; the liveness of every
 * session it registered), plus the sessions written more than half the
 * hash TTL ago, oldest first, so that a user's hash outlives its idle
 * sessions.  At most max(RSESS_REFRESH_MIN, twice the steady rate) per
 * beat: a burst of logins is spread over a quarter of the TTL, well
 * before it lapses. */
void
store_redis_rw_beat(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	ev_tstamp due = ev_now(rw->loop) - (ev_tstamp)rs->sess_ttl_ms / 2000.;
	size_t cap = (size_t)((uint64_t)rw->nsess * rs->heartbeat_ms / (rs->sess_ttl_ms / 4));

	if (rw->ac == NULL || !rw->ready)
		return;
	beat_send(rw);
	if (cap < RSESS_REFRESH_MIN)
		cap = RSESS_REFRESH_MIN;
	for (size_t n = 0; n < cap && rw->old_head != NULL && rw->old_head->put_at <= due; n++) {
		struct rsess *e = rw->old_head;

		sess_put(rw, e); /* not while pending: its sreg writes it */
		age_touch(rw, e);
	}
}

/* The heartbeat and every live session, written again: on a new link
 * (Redis may have restarted empty, or be a replica promoted without our
 * last writes), when the proxy key was lost, and after the script was.
 * Oldest first, a window at a time (store_redis_rw_reput_more). */
void
store_redis_rw_reput(struct redis_worker *rw)
{
	if (rw->ac == NULL || !rw->ready)
		return;
	beat_send(rw);
	if (rw->nsess > 0)
		log_kv(LOG_INFO, "state.rewrite", "store=redis proxy_id=%s sessions=%zu",
		       rw->rs->proxy_id, rw->nsess);
	rw->reput_next = rw->old_head;
	rw->reput_at = ev_now(rw->loop);
	store_redis_rw_reput_more(rw);
}

void
store_redis_rw_reput_more(struct redis_worker *rw)
{
	if (rw->ac == NULL || !rw->ready) {
		rw->reput_next = NULL; /* the next link's rewrite starts over */
		return;
	}
	while (rw->reput_next != NULL && rw->nnotes < RSESS_REPUT_WINDOW) {
		struct rsess *e = rw->reput_next;

		rw->reput_next = e->newer;
		if (e->put_at >= rw->reput_at)
			continue; /* written since the rewrite began (a new one, a refresh) */
		sess_put(rw, e);
		e->put_at = rw->reput_at; /* in place: the order stays */
	}
}

void
store_redis_rw_beat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_worker *rw = t->data;

	(void)loop;
	(void)revents;
	store_redis_rw_beat(rw);
	/* a switch the subscription missed (its Sentinel silent, not closed)
	 * is found within one heartbeat: ask whether the master moved */
	if (rw->rs->url.kind == STATE_REDIS_SENTINEL && rw->ready && rw->sn.resolved)
		store_redis_sentinel_resolve(rw);
}

/* Back after an outage, or on a new link: say so once, register every
 * live session again (Redis may have restarted empty), then tell the
 * policy (its locks granted meanwhile). */
void
store_redis_rw_recovered(struct redis_worker *rw)
{
	rw->outage = false;
	if (rw->new_link) {
		rw->new_link = false;
		store_redis_rw_reput(rw);
	} else {
		beat_send(rw);
	}
	log_kv(LOG_INFO, "state.recovered", "store=redis proxy_id=%s sessions=%zu",
	       rw->rs->proxy_id, rw->nsess);
	if (rw->sw->recovered_cb != NULL)
		rw->sw->recovered_cb(rw->sw->recovered_arg);
}

void
store_redis_session_note(struct store_worker *sw, const char *key, size_t len,
                         const struct store_session *s, bool end)
{
	struct redis_worker *rw = sw->impl;
	char k[REDIS_KEY_MAX], sid[20];
	struct rsess *e;

	if (end) {
		store_redis_sess_drop(rw, s->id);
		if (rw->ac == NULL)
			return; /* it lapses with this proxy's entries, or the next check drops it
			         */
		const char *argv[] = {"HDEL", k, sid};
		size_t lens[3] = {4, store_redis_user_key(rw->rs, "sess", key, len, k), 16};

		/* argv: a user name may hold spaces, which a format would split at */
		snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)s->id);
		(void)store_redis_rw_note(rw, "session end", 3, argv, lens);
		return;
	}
	if ((e = store_redis_sess_add(rw, key, len, s)) != NULL) {
		e->pending = false; /* decided without the registry: registered unchecked */
		sess_put(rw, e);
	}
}

void
store_redis_announce(struct store_worker *sw, enum store_event ev, const char *msg, size_t len)
{
	struct redis_worker *rw = sw->impl;
	char ch[REDIS_KEY_MAX], m[STORE_KEY_MAX + 96];
	const char *argv[] = {"PUBLISH", ch, m};
	size_t lens[3] = {7, 0, len + 6};

	if (rw->ac == NULL || ev != STORE_EVENT_BLOCK || len + 6 > sizeof(m))
		return;
	lens[1] = store_redis_kind_key(rw->rs, "events", "", 0, ch);
	memcpy(m, "block ", 6);
	memcpy(m + 6, msg, len);
	/* one argument: hiredis splits a format at spaces */
	(void)store_redis_rw_note(rw, "announce", 3, argv, lens);
}

void
store_redis_throttle_clear(struct store_worker *sw, const char *key, size_t len)
{
	struct redis_worker *rw = sw->impl;
	char k[REDIS_KEY_MAX];
	const char *argv[] = {"DEL", k};
	size_t lens[2] = {3, 0};

	if (rw->ac == NULL)
		return;
	lens[1] = store_redis_thr_key(rw->rs, key, len, k);
	(void)store_redis_rw_note(rw, "throttle clear", 2, argv, lens);
}

/* ---- the fleet channel: one subscriber per process ---------------------- */

static void
sub_schedule_retry(struct redis_worker *rw)
{
	if (rw->closing || ev_is_active(&rw->sub_retry))
		return;
	store_redis_backoff(rw->loop, &rw->sub_retry, &rw->sub_backoff_ms);
}

void
store_redis_sub_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	ev_ref(loop);
	store_redis_sub_connect(t->data);
}

/* Close the subscriber's link from our side and make it again later. */
static void
sub_drop(struct redis_worker *rw)
{
	redisAsyncContext *ac = rw->sub;

	if (ac == NULL)
		return;
	rw->sub = NULL;
	redisAsyncFree(ac); /* safe inside its reply callback: hiredis defers it */
	sub_schedule_retry(rw);
}

/* The subscriber's AUTH: refused, the link is dropped and made again after
 * the backoff (hiredis 0.14 hands SUBSCRIBE's own error to nobody). */
static void
on_sub_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	redisReply *rep = reply;

	(void)privdata;
	if (rw == NULL || rw->sub != ac || rep == NULL || rep->type != REDIS_REPLY_ERROR)
		return;
	store_redis_rw_log(rw, "store.error", "AUTH (subscriber)", rep->str);
	sub_drop(rw);
}

/* "kick USER" / "route USER" on PREFIX "events". */
static void
on_sub_message(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	struct redis_store *rs;
	redisReply *rep = reply, *kind, *msg;

	(void)privdata;
	if (rw == NULL || rw->sub != ac || rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		/* refused (NOAUTH, a wrong password, ACL): say so, and try
		 * again after the backoff rather than stay deaf */
		store_redis_rw_log(rw, "store.error", "SUBSCRIBE", rep->str);
		sub_drop(rw);
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
		return;
	rs = rw->rs;
	kind = rep->element[0];
	msg = rep->element[2];
	if (store_redis_str_is(kind, "subscribe")) {
		rw->sub_backoff_ms = 0;
		/* messages sent while we were away are lost: forget what they
		 * would have changed */
		if (rw->sub_ever && rs->event_cb != NULL)
			rs->event_cb(rs->event_arg, STORE_EVENT_RESYNC, "", 0);
		rw->sub_ever = true;
		return;
	}
	if (!store_redis_str_is(kind, "message") || msg->type != REDIS_REPLY_STRING ||
	    rs->event_cb == NULL)
		return;
	if (msg->len > 5 && memcmp(msg->str, "kick ", 5) == 0)
		rs->event_cb(rs->event_arg, STORE_EVENT_KICK, msg->str + 5, (size_t)msg->len - 5);
	else if (msg->len > 6 && memcmp(msg->str, "block ", 6) == 0)
		rs->event_cb(rs->event_arg, STORE_EVENT_BLOCK, msg->str + 6, (size_t)msg->len - 6);
	else if (msg->len > 6 && memcmp(msg->str, "route ", 6) == 0)
		rs->event_cb(rs->event_arg, STORE_EVENT_ROUTE, msg->str + 6, (size_t)msg->len - 6);
}

static void
on_sub_gone(const redisAsyncContext *ac, int status)
{
	struct redis_worker *rw = ac->data;

	if (rw == NULL || rw->sub != ac)
		return;
	if (ac->c.flags & REDIS_CONNECTED || status != REDIS_OK) {
		rw->sub = NULL;
		sub_schedule_retry(rw);
	}
}

static void
on_sub_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		on_sub_gone(ac, status);
}

void
store_redis_sub_connect(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	char ch[REDIS_KEY_MAX], err[128];
	redisAsyncContext *ac;
	bool failed;

	if (rw->closing || rw->sub != NULL)
		return;
	if (rs->url.kind == STATE_REDIS_SENTINEL && !rw->sn.resolved) {
		/* no master known yet: its link, once made, starts this one */
		sub_schedule_retry(rw);
		return;
	}
	ac =
	    store_redis_async_open(rs, rw->loop, rs->url.kind == STATE_REDIS_UNIX ? NULL : rw->host,
	                           rw->port, rs->user, rs->password, rw, on_sub_connect,
	                           on_sub_gone, on_sub_auth, NULL, &failed, err, sizeof(err));
	if (ac == NULL) {
		sub_schedule_retry(rw);
		return;
	}
	rw->sub = ac;
	store_redis_kind_key(rs, "events", "", 0, ch);
	redisAsyncCommand(ac, on_sub_message, NULL, "SUBSCRIBE %s", ch);
}

void
store_redis_sub_restart(struct redis_worker *rw)
{
	redisAsyncContext *ac = rw->sub;

	if (!rw->subscriber || rw->closing)
		return;
	if (ac != NULL) {
		rw->sub = NULL;
		redisAsyncFree(ac);
	}
	store_redis_timer_stop_unref(rw->loop, &rw->sub_retry);
	rw->sub_backoff_ms = 0;
	store_redis_sub_connect(rw);
}

void
store_redis_subscribe(struct store *st, store_event_cb cb, void *arg)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;

	pthread_mutex_lock(&rs->mu);
	rs->event_cb = cb;
	rs->event_arg = arg;
	pthread_mutex_unlock(&rs->mu);
}
