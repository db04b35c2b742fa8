/*
 * store_redis_sentinel.c: the master of a `redis-sentinel://` store, found
 * and followed the way the Redis Sentinel client specification says:
 *
 *  - ask the Sentinels in turn, each within state_timeout, `SENTINEL
 *    get-master-addr-by-name NAME`; the first that names an address is
 *    asked first next time;
 *  - connect there and confirm with ROLE that it is the master (the
 *    worker's setup, store_redis_worker.c); an address that does not
 *    connect or is not the master sends the next question to the next
 *    Sentinel first (one Sentinel with a stale or wrong view cannot hold
 *    a worker on a wrong address);
 *  - listen for +switch-master on one Sentinel and move at once: a planned
 *    failover leaves the old master writable for a while, and nothing may
 *    be written there after the switch is known;
 *  - ask again after any disconnect, READONLY or LOADING.
 *
 * Every worker does this on its own loop with hiredis' async API (hiredis
 * has no Sentinel support); the admin commands' blocking connection asks
 * the same way (store_redis_sentinel_sync_master()).  The process keeps
 * one view of the master in use for health, stats and the failover count
 * (store_redis_master_seen()), whatever kind of URL it has.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <arpa/inet.h>

#include "log.h"
#include "store_redis_impl.h"

#define SENTINEL_SYNC_EACH_MS 1000 /* the admin connection's wait per Sentinel, at least */

/* ---- the process's view of the master ----------------------------------- */

static void
addr_str(const char *host, int port, char *out, size_t cap)
{
	snprintf(out, cap, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

void
store_redis_master_seen(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	char now[sizeof(rs->master)], old[sizeof(rs->master)], how[sizeof(rs->master_how)];
	bool changed, first;

	if (rs->url.kind == STATE_REDIS_UNIX)
		snprintf(now, sizeof(now), "%s", rs->url.path);
	else
		addr_str(rw->host, rw->port, now, sizeof(now));
	snprintf(how, sizeof(how), "%s",
	         rs->url.kind == STATE_REDIS_SENTINEL ? rw->sn.how : "configured");
	pthread_mutex_lock(&rs->mu);
	changed = strcmp(rs->master, now) != 0;
	first = rs->master[0] == '\0';
	if (changed) {
		memcpy(old, rs->master, sizeof(old));
		memcpy(rs->master, now, sizeof(rs->master));
		memcpy(rs->master_how, how, sizeof(rs->master_how));
		memcpy(rs->master_host, rw->host, sizeof(rs->master_host));
		rs->master_port = rw->port;
		if (!first)
			rs->failovers++;
		/* the other workers may still write to the old one: one worker's
		 * Sentinel said +switch-master first, tell the rest now */
		for (struct redis_worker *w = rs->workers;
		     rs->url.kind == STATE_REDIS_SENTINEL && w != NULL; w = w->wnext)
			if (w != rw)
				ev_async_send(w->loop, &w->moved);
	}
	pthread_mutex_unlock(&rs->mu);
	if (!changed)
		return;
	log_kv(LOG_INFO, "state.master", "store=redis master=%s how=\"%s\"", now, how);
	if (!first)
		log_kv(LOG_WARN, "state.failover", "store=redis from=%s to=%s how=\"%s\"", old, now,
		       how);
}

void
store_redis_status(struct store *st, struct store_status *out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;

	pthread_mutex_lock(&rs->mu);
	out->up = rs->nready > 0;
	snprintf(out->master, sizeof(out->master), "%s", rs->master);
	snprintf(out->how, sizeof(out->how), "%s", rs->master_how);
	out->failovers = rs->failovers;
	pthread_mutex_unlock(&rs->mu);
}

bool
store_redis_is_not_master(const redisReply *rep)
{
	return rep != NULL && rep->type == REDIS_REPLY_ERROR &&
	       ((rep->len >= 8 && memcmp(rep->str, "READONLY", 8) == 0) ||
	        (rep->len >= 7 && memcmp(rep->str, "LOADING", 7) == 0));
}

/* An answer to get-master-addr-by-name -> host (numeric: no DNS on a loop)
 * and port.  NULL, or why it is no answer. */
static const char *
parse_master_addr(const redisReply *rep, char *host, int *port)
{
	unsigned char buf[sizeof(struct in6_addr)];
	long p;
	char *end;

	if (rep->type == REDIS_REPLY_ERROR)
		return rep->str;
	if (rep->type == REDIS_REPLY_NIL)
		return "the Sentinel does not know this master";
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING ||
	    (size_t)rep->element[0]->len >= INET6_ADDRSTRLEN)
		return "a malformed answer";
	memcpy(host, rep->element[0]->str, (size_t)rep->element[0]->len);
	host[rep->element[0]->len] = '\0';
	if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
		return "the Sentinel named a host name, not an address (resolve-hostnames)";
	p = strtol(rep->element[1]->str, &end, 10);
	if (*end != '\0' || p < 1 || p > 65535)
		return "the Sentinel named a bad port";
	*port = (int)p;
	return NULL;
}

/* ---- a worker's questions ------------------------------------------------ */

static void q_ask(struct redis_worker *rw);

static void
sn_log(struct redis_worker *rw, const char *event, const char *what, const char *detail)
{
	store_redis_rw_log(rw, event, what, detail);
}

/* Close the question's link from our side (its callbacks see it is not
 * ours any more). */
static void
q_close(struct redis_worker *rw)
{
	redisAsyncContext *ac = rw->sn.q;

	store_redis_timer_stop_unref(rw->loop, &rw->sn.q_timer);
	if (ac == NULL)
		return;
	rw->sn.q = NULL;
	redisAsyncFree(ac);
}

/* The Sentinel being asked gave no usable answer: say why, ask the next. */
static void
q_next(struct redis_worker *rw, const char *why)
{
	char what[STATE_URL_HOST_MAX + 24];
	const struct state_url_node *n = &rw->rs->url.sentinels[rw->sn.q_idx];

	snprintf(what, sizeof(what), "Sentinel %s:%d", n->host, n->port);
	sn_log(rw, "store.error", what, why);
	q_close(rw);
	rw->sn.q_idx = (rw->sn.q_idx + 1) % rw->rs->url.nsentinels;
	q_ask(rw);
}

static void
q_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	ev_ref(loop);
	q_next(t->data, "no answer in time (state_timeout)");
}

static void
q_on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	redisReply *rep = reply;

	(void)privdata;
	if (rw == NULL || rw->sn.q != ac || rep == NULL || rep->type != REDIS_REPLY_ERROR)
		return;
	q_next(rw, rep->str); /* the question's own reply says NOAUTH too: it finds q gone */
}

/* The Sentinel answered: go where it says, or check the link against it. */
static void
q_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	struct rsentinel *sn = &rw->sn;
	const struct state_url_node *n;
	char host[INET6_ADDRSTRLEN];
	const char *why;
	int port = 0;

	(void)privdata;
	if (rw == NULL || sn->q != ac || reply == NULL)
		return;
	if ((why = parse_master_addr(reply, host, &port)) != NULL) {
		q_next(rw, why);
		return;
	}
	n = &rw->rs->url.sentinels[sn->q_idx];
	sn->first = sn->q_idx;
	q_close(rw);
	if (sn->resolved && rw->ac != NULL && strcmp(host, rw->host) == 0 && port == rw->port)
		return; /* the link goes there already */
	memcpy(rw->host, host, sizeof(rw->host));
	rw->port = port;
	sn->resolved = true;
	snprintf(sn->how, sizeof(sn->how), "sentinel %s:%d", n->host, n->port);
	if (rw->ac != NULL)
		store_redis_rw_reconnect_now(rw, "the Sentinels name another master");
	else
		store_redis_rw_connect(rw);
}

static void
q_gone(const redisAsyncContext *ac, const char *err)
{
	struct redis_worker *rw = ac->data;

	if (rw == NULL || rw->sn.q != ac)
		return;
	rw->sn.q = NULL; /* hiredis frees it */
	q_next(rw, err && err[0] ? err : "connection lost");
}

static void
q_on_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		q_gone(ac, ac->errstr);
}

static void
q_on_gone(const redisAsyncContext *ac, int status)
{
	(void)status;
	q_gone(ac, ac->errstr);
}

/* Ask Sentinel q_idx, unless every one was asked in this round. */
static void
q_ask(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	struct rsentinel *sn = &rw->sn;
	const struct state_url_node *n;
	redisAsyncContext *ac;
	char err[128];
	bool failed;

	for (;;) {
		if (rw->closing)
			return;
		if (sn->q_tried >= rs->url.nsentinels) {
			/* with a link up this is a check that failed, not an outage */
			sn_log(rw, rw->ac == NULL ? "store.disconnect" : "store.error",
			       "no Sentinel named the master", rs->url.master);
			if (rw->ac == NULL)
				store_redis_rw_retry_later(rw);
			return;
		}
		sn->q_tried++;
		n = &rs->url.sentinels[sn->q_idx];
		ac = store_redis_async_open(rs, rw->loop, rs->sentinel_host[sn->q_idx], n->port,
		                            NULL, rs->sentinel_password, rw, q_on_connect,
		                            q_on_gone, q_on_auth, NULL, &failed, err, sizeof(err));
		if (ac != NULL)
			break;
		sn_log(rw, "store.error", "Sentinel", failed ? err : "cannot attach");
		sn->q_idx = (sn->q_idx + 1) % rs->url.nsentinels;
	}
	sn->q = ac;
	redisAsyncCommand(ac, q_on_reply, NULL, "SENTINEL get-master-addr-by-name %s",
	                  rs->url.master);
	store_redis_timer_start_unref(rw->loop, &sn->q_timer, (ev_tstamp)rs->timeout_ms / 1000.);
}

void
store_redis_sentinel_resolve(struct redis_worker *rw)
{
	struct rsentinel *sn = &rw->sn;

	if (rw->closing || sn->q != NULL)
		return; /* a question is under way: its answer connects */
	sn->q_tried = 0;
	sn->q_idx = sn->first;
	q_ask(rw);
}

void
store_redis_sentinel_bad(struct redis_worker *rw, const char *why)
{
	struct rsentinel *sn = &rw->sn;

	if (rw->rs->url.kind != STATE_REDIS_SENTINEL)
		return;
	if (sn->resolved && why != NULL) {
		char what[INET6_ADDRSTRLEN + sizeof(sn->how) + 16];

		snprintf(what, sizeof(what), "master %s:%d (%s)", rw->host, rw->port, sn->how);
		sn_log(rw, "store.error", what, why);
	}
	sn->resolved = false;
	sn->first = (sn->first + 1) % rw->rs->url.nsentinels;
}

/* ---- +switch-master ------------------------------------------------------ */

static void sub_connect(struct redis_worker *rw);

static void
sub_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	ev_ref(loop);
	sub_connect(t->data);
}

/* The subscription is gone: the next Sentinel, after the backoff. */
static void
sub_again(struct redis_worker *rw)
{
	struct rsentinel *sn = &rw->sn;
	if (rw->closing || ev_is_active(&sn->sub_retry))
		return;
	sn->sub_idx = (sn->sub_idx + 1) % rw->rs->url.nsentinels;
	store_redis_backoff(rw->loop, &sn->sub_retry, &sn->sub_backoff_ms);
}

static void
sub_drop(struct redis_worker *rw)
{
	redisAsyncContext *ac = rw->sn.sub;

	if (ac == NULL)
		return;
	rw->sn.sub = NULL;
	redisAsyncFree(ac);
	sub_again(rw);
}

/* "+switch-master NAME OLDIP OLDPORT NEWIP NEWPORT": ours, go now. */
static void
on_switch(struct redis_worker *rw, const char *msg, size_t len)
{
	struct rsentinel *sn = &rw->sn;
	const struct state_url_node *n = &rw->rs->url.sentinels[sn->sub_idx];
	char buf[STATE_URL_MASTER_MAX + 4 * INET6_ADDRSTRLEN], name[STATE_URL_MASTER_MAX + 1];
	char oldh[INET6_ADDRSTRLEN], newh[INET6_ADDRSTRLEN];
	unsigned char a[sizeof(struct in6_addr)];
	int oldp, newp;

	if (len >= sizeof(buf))
		return;
	memcpy(buf, msg, len);
	buf[len] = '\0';
	if (sscanf(buf, "%64s %45s %d %45s %d", name, oldh, &oldp, newh, &newp) != 5 ||
	    strcmp(name, rw->rs->url.master) != 0 || newp < 1 || newp > 65535 ||
	    (inet_pton(AF_INET, newh, a) != 1 && inet_pton(AF_INET6, newh, a) != 1))
		return;
	sn->first = sn->sub_idx;
	if (sn->resolved && rw->ac != NULL && strcmp(newh, rw->host) == 0 && newp == rw->port)
		return;
	memcpy(rw->host, newh, sizeof(rw->host));
	rw->port = newp;
	sn->resolved = true;
	snprintf(sn->how, sizeof(sn->how), "+switch-master from %s:%d", n->host, n->port);
	store_redis_rw_reconnect_now(rw, "+switch-master: the Sentinels moved the master");
}

static void
sub_on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	redisReply *rep = reply, *kind, *msg;

	(void)privdata;
	if (rw == NULL || rw->sn.sub != ac || rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		sn_log(rw, "store.error", "SUBSCRIBE +switch-master", rep->str);
		sub_drop(rw);
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
		return;
	kind = rep->element[0];
	msg = rep->element[2];
	if (store_redis_str_is(kind, "subscribe")) {
		rw->sn.sub_backoff_ms = 0;
		/* a switch may have come while nobody listened: ask */
		if (rw->sn.sub_ever && rw->sn.resolved)
			store_redis_sentinel_resolve(rw);
		rw->sn.sub_ever = true;
		return;
	}
	if (store_redis_str_is(kind, "message") && msg->type == REDIS_REPLY_STRING)
		on_switch(rw, msg->str, (size_t)msg->len);
}

static void
sub_on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	redisReply *rep = reply;

	(void)privdata;
	if (rw == NULL || rw->sn.sub != ac || rep == NULL || rep->type != REDIS_REPLY_ERROR)
		return;
	sn_log(rw, "store.error", "AUTH (Sentinel)", rep->str);
	sub_drop(rw);
}

static void
sub_on_gone(const redisAsyncContext *ac, int status)
{
	struct redis_worker *rw = ac->data;

	(void)status;
	if (rw == NULL || rw->sn.sub != ac)
		return;
	rw->sn.sub = NULL; /* hiredis frees it */
	sub_again(rw);
}

static void
sub_on_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		sub_on_gone(ac, status);
}

static void
sub_connect(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	struct rsentinel *sn = &rw->sn;
	redisAsyncContext *ac;
	char err[128];
	bool failed;

	if (rw->closing || sn->sub != NULL)
		return;
	ac = store_redis_async_open(rs, rw->loop, rs->sentinel_host[sn->sub_idx],
	                            rs->url.sentinels[sn->sub_idx].port, NULL,
	                            rs->sentinel_password, rw, sub_on_connect, sub_on_gone,
	                            sub_on_auth, NULL, &failed, err, sizeof(err));
	if (ac == NULL) {
		sub_again(rw);
		return;
	}
	sn->sub = ac;
	redisAsyncCommand(ac, sub_on_message, NULL, "SUBSCRIBE +switch-master");
}

/* Another worker confirmed a new master (ROLE): go there too. */
static void
moved_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct redis_worker *rw = w->data;
	struct redis_store *rs = rw->rs;
	char host[INET6_ADDRSTRLEN], how[sizeof(rs->master_how)];
	int port;

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&rs->mu);
	memcpy(host, rs->master_host, sizeof(host));
	memcpy(how, rs->master_how, sizeof(how));
	port = rs->master_port;
	pthread_mutex_unlock(&rs->mu);
	if (rw->closing || host[0] == '\0' ||
	    (rw->sn.resolved && strcmp(host, rw->host) == 0 && port == rw->port))
		return;
	memcpy(rw->host, host, sizeof(rw->host));
	rw->port = port;
	rw->sn.resolved = true;
	memcpy(rw->sn.how, how, sizeof(rw->sn.how));
	store_redis_rw_reconnect_now(rw, "another worker found the new master");
}

void
store_redis_sentinel_start(struct redis_worker *rw)
{
	struct rsentinel *sn = &rw->sn;
	struct redis_store *rs = rw->rs;

	ev_async_init(&rw->moved, moved_cb);
	rw->moved.data = rw;
	ev_async_start(rw->loop, &rw->moved);
	ev_unref(rw->loop);
	pthread_mutex_lock(&rs->mu);
	rw->wnext = rs->workers;
	rs->workers = rw;
	pthread_mutex_unlock(&rs->mu);

	ev_timer_init(&sn->q_timer, q_timer_cb, 0., 0.);
	sn->q_timer.data = rw;
	ev_timer_init(&sn->sub_retry, sub_retry_cb, 0., 0.);
	sn->sub_retry.data = rw;
	if (rw->rs->url.kind != STATE_REDIS_SENTINEL)
		return;
	/* the workers of a process start on different Sentinels */
	sn->sub_idx = (int)((unsigned)random() % (unsigned)rw->rs->url.nsentinels);
	sub_connect(rw);
}

void
store_redis_sentinel_stop(struct redis_worker *rw)
{
	redisAsyncContext *ac = rw->sn.sub;
	struct redis_store *rs = rw->rs;

	pthread_mutex_lock(&rs->mu);
	for (struct redis_worker **pp = &rs->workers; *pp != NULL; pp = &(*pp)->wnext)
		if (*pp == rw) {
			*pp = rw->wnext;
			break;
		}
	pthread_mutex_unlock(&rs->mu);
	ev_ref(rw->loop);
	ev_async_stop(rw->loop, &rw->moved);

	q_close(rw);
	store_redis_timer_stop_unref(rw->loop, &rw->sn.sub_retry);
	if (ac != NULL) {
		rw->sn.sub = NULL;
		redisAsyncFree(ac);
	}
}

/* ---- the admin connection: blocking ------------------------------------- */

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
store_redis_sentinel_sync_master(struct redis_store *rs, uint64_t until_ms, char *host_out,
                                 int *port_out, const char **err_out)
{
	*err_out = "no Sentinel named the master";
	for (int i = 0; i < rs->url.nsentinels; i++) {
		const struct state_url_node *n = &rs->url.sentinels[i];
		uint64_t now = mono_ms(), ms = until_ms > now ? until_ms - now : 0;
		struct timeval tv;
		redisContext *c;
		redisReply *rep;
		const char *why = NULL;

		if (ms == 0) {
			*err_out = "no Sentinel named the master in time";
			return -1;
		}
		if (ms > SENTINEL_SYNC_EACH_MS && ms > rs->timeout_ms)
			ms = rs->timeout_ms > SENTINEL_SYNC_EACH_MS ? rs->timeout_ms
			                                            : SENTINEL_SYNC_EACH_MS;
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		c = redisConnectWithTimeout(rs->sentinel_host[i], n->port, tv);
		if (c == NULL || c->err) {
			why = c != NULL ? c->errstr : "out of memory";
		} else {
			redisSetTimeout(c, tv);
			if (rs->sentinel_password != NULL) {
				rep = redisCommand(c, "AUTH %s", rs->sentinel_password);
				if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
					why = rep ? "the Sentinel refused the password "
					            "(sentinel_password_file)"
					          : "no answer";
				freeReplyObject(rep);
			}
			if (why == NULL) {
				rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s",
				                   rs->url.master);
				why = rep == NULL ? "no answer"
				                  : parse_master_addr(rep, host_out, port_out);
				if (why == NULL) {
					freeReplyObject(rep);
					redisFree(c);
					return 0;
				}
				log_kv(LOG_WARN, "store.error",
				       "store=redis what=\"Sentinel %s:%d\" err=\"%.160s\"",
				       n->host, n->port, why);
				why = NULL; /* said */
				freeReplyObject(rep);
			}
		}
		if (why != NULL)
			log_kv(LOG_WARN, "store.error",
			       "store=redis what=\"Sentinel %s:%d\" err=\"%.160s\"", n->host,
			       n->port, why);
		if (c != NULL)
			redisFree(c);
	}
	return -1;
}
