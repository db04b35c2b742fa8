/*
 * store_redis_worker.c: one hiredis async connection per worker loop: its
 * setup (AUTH, SELECT, SCRIPT LOAD), requests in flight with their
 * deadlines, replies turned into answers, reconnects with backoff, and the
 * worker's open, stop and close.  Never blocks a loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_redis_impl.h"

#define REDIS_INFLIGHT_MAX 4096 /* requests one worker has sent, not yet answered */
#define REDIS_DEAD_MIN_MS  1000 /* no reply this long (and 4 timeouts): the link is dead */

/* ---- worker side: one async connection per loop ------------------------- */

static void rw_connect(struct redis_worker *rw);

static void rcall_fail(struct rcall *c, const char *err);
static void rcall_unlink(struct rcall *c);

/* A request never sent (queued while the Sentinels were asked): answered
 * with err and forgotten; its session, noted when it came, too. */
static void
rcall_drop_queued(struct rcall *c, const char *err)
{
	struct redis_worker *rw = c->rw;

	if (c->r != NULL && c->r->op == STORE_OP_SESSION)
		store_redis_sess_drop(rw, c->r->sess.id);
	rcall_fail(c, err);
	rcall_unlink(c);
	free(c);
}

static void
rcall_unlink(struct rcall *c)
{
	struct redis_worker *rw = c->rw;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		rw->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		rw->tail = c->prev;
	rw->ninflight--;
}

/* Answer c's request (if still unanswered) with an error. */
static void
rcall_fail(struct rcall *c, const char *err)
{
	struct store_req *r = c->r;

	if (r == NULL)
		return;
	if (r->op == STORE_OP_SESSION) {
		/* the policy hears "not registered": forget it here too, and
		 * take it out of Redis if the registration still comes */
		store_redis_sess_drop(c->rw, r->sess.id);
		c->late_sess = true;
		c->late_sid = r->sess.id;
		c->late_len = r->key_len;
		memcpy(c->late_key, r->key, r->key_len);
	}
	c->r = NULL;
	r->rc = -1;
	r->err = err;
	c->rw->outage = true;
	store_req_done(r); /* delivered on the loop's next turn */
}

void
store_redis_rw_log(struct redis_worker *rw, const char *event, const char *what, const char *detail)
{
	ev_tstamp now = ev_now(rw->loop);
	bool warn = strcmp(event, "store.connect") != 0;

	/* each loop warns at most once a second: an outage is one line (a
	 * store.connect is always said, and silences no warning after it) */
	if (warn && now - rw->last_log < 1.0)
		return;
	if (warn)
		rw->last_log = now;
	log_kv(warn ? LOG_WARN : LOG_INFO, event,
	       "store=redis what=\"%s\" err=\"%.160s\" retry_ms=%llu", what, detail ? detail : "",
	       (unsigned long long)rw->backoff_ms);
}

/* Down: answer nothing more on this connection; try again after backoff. */
static void
rw_schedule_retry(struct redis_worker *rw)
{
	if (rw->closing || ev_is_active(&rw->retry))
		return;
	store_redis_backoff(rw->loop, &rw->retry, &rw->backoff_ms);
}

/* rw's link is gone (or going): nothing on it is answered any more. */
static void
rw_link_gone(struct redis_worker *rw)
{
	if (rw->counted) {
		pthread_mutex_lock(&rw->rs->mu);
		rw->rs->nready--;
		pthread_mutex_unlock(&rw->rs->mu);
		rw->counted = false;
	}
	rw->ac = NULL;
	rw->ready = false;
	rw->outage = true;
	rw->reput_next = NULL;
	rw->nnotes = 0;
	rw->reloading = false;
}

/* Drop the connection from our side (dead link, worker closing). */
static void
rw_drop(struct redis_worker *rw, const char *why)
{
	redisAsyncContext *ac = rw->ac;

	if (ac == NULL)
		return;
	rw_link_gone(rw);
	if (why != NULL)
		store_redis_rw_log(rw, "store.disconnect", why, NULL);
	redisAsyncFree(ac); /* runs every pending callback with no reply */
	rw_schedule_retry(rw);
}

/* How long a link may answer nothing while something waits on it before
 * it is taken for dead: 4 timeouts, at least REDIS_DEAD_MIN_MS. */
static ev_tstamp
rw_dead_after(const struct redis_worker *rw)
{
	uint64_t ms = rw->rs->timeout_ms * 4;

	return (ev_tstamp)(ms > REDIS_DEAD_MIN_MS ? ms : REDIS_DEAD_MIN_MS) / 1000.;
}

/* Does anything wait for an answer on rw's link (a request, even one
 * already timed out, a note, the setup)?  Then *since_out: since when
 * the link has been silent with it waiting. */
static bool
rw_waiting(const struct redis_worker *rw, ev_tstamp *since_out)
{
	ev_tstamp oldest;

	if (rw->ac == NULL)
		return false;
	if (rw->head != NULL)
		oldest = rw->head->sent; /* the list is in sending order */
	else if (rw->nnotes > 0)
		oldest = rw->notes_since;
	else if (!rw->ready)
		oldest = rw->last_reply; /* set when the link was made */
	else
		return false;
	if (rw->head != NULL && rw->nnotes > 0 && rw->notes_since < oldest)
		oldest = rw->notes_since;
	*since_out = oldest > rw->last_reply ? oldest : rw->last_reply;
	return true;
}

/* The clock fires at `at` (ev_now's time) unless it is set to fire
 * earlier already: a new request, note or link never waits for a later
 * check than its own. */
static void
rw_clock_by(struct redis_worker *rw, ev_tstamp at)
{
	ev_tstamp now = ev_now(rw->loop);

	if (rw->closing || (ev_is_active(&rw->clock) && rw->clock_at <= at))
		return;
	rw->clock_at = at;
	store_redis_timer_start_unref(rw->loop, &rw->clock, at > now ? at - now + 0.001 : 0.001);
}

/* The clock again from scratch: the earliest deadline of a request still
 * unanswered, or the dead-link check, whichever comes first; stopped when
 * nothing waits.  O(requests in flight). */
static void
rw_arm_clock(struct redis_worker *rw)
{
	ev_tstamp next = 0, since;
	bool any = false;

	if (rw->closing) {
		store_redis_timer_stop_unref(rw->loop, &rw->clock);
		return;
	}
	for (struct rcall *c = rw->head; c != NULL; c = c->next) {
		if (c->r == NULL)
			continue;
		if (!any || c->deadline < next)
			next = c->deadline;
		any = true;
	}
	if (rw_waiting(rw, &since)) {
		if (!any || since + rw_dead_after(rw) < next)
			next = since + rw_dead_after(rw);
		any = true;
	}
	store_redis_timer_stop_unref(rw->loop, &rw->clock);
	if (any)
		rw_clock_by(rw, next);
}

/* Deadlines: a request is answered "timed out" at its own deadline (its
 * late reply, if Redis sends one, decides nothing: on_reply() finds it
 * answered); a link that has answered nothing for 4 timeouts (at least
 * 1 s) while something waits on it is closed and made again. */
static void
rw_clock_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_worker *rw = t->data;
	ev_tstamp now = ev_now(loop), since;

	(void)revents;
	ev_ref(loop); /* the timer stopped itself (no repeat): give back its ref */
	for (struct rcall *c = rw->head, *next; c != NULL; c = next) {
		next = c->next;
		if (c->r != NULL && now >= c->deadline && c->queued) {
			rcall_drop_queued(c, "no master found in time (state_timeout)");
		} else if (c->r != NULL && now >= c->deadline) {
			rcall_fail(c, "the store did not answer in time (state_timeout)");
			rw->stalled = true;
		}
	}
	if (rw_waiting(rw, &since) && now - since >= rw_dead_after(rw)) {
		rw->sn.resolved = false; /* ask the Sentinels again */
		rw_drop(rw, "no answer from Redis: the link is taken for dead");
		return; /* rw_drop answered and freed every call */
	}
	rw_arm_clock(rw);
}

static void
rw_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_worker *rw = t->data;

	(void)revents;
	ev_ref(loop);
	rw_connect(rw);
}

void
store_redis_rw_connect(struct redis_worker *rw)
{
	if (ev_is_active(&rw->retry))
		store_redis_timer_stop_unref(rw->loop, &rw->retry);
	rw_connect(rw);
}

void
store_redis_rw_retry_later(struct redis_worker *rw)
{
	/* down: what is decided meanwhile (degraded) is written back when a
	 * link is ready (state.recovered) */
	rw->outage = true;
	/* what waited for the Sentinels' answer is answered now */
	for (struct rcall *c = rw->head, *next; c != NULL; c = next) {
		next = c->next;
		if (c->queued)
			rcall_drop_queued(c, "no Sentinel named the master");
	}
	rw_schedule_retry(rw);
}

static int send_req(struct redis_worker *rw, struct rcall *c);

/* A link was just made: send what waited for it, in order. */
static void
rw_send_queued(struct redis_worker *rw)
{
	for (struct rcall *c = rw->head, *next; c != NULL; c = next) {
		next = c->next;
		if (!c->queued)
			continue;
		c->queued = false;
		if (c->r == NULL || send_req(rw, c) < 0) {
			c->queued = true;
			rcall_drop_queued(c, "the store is unreachable");
		}
	}
}

void
store_redis_rw_reconnect_now(struct redis_worker *rw, const char *why)
{
	redisAsyncContext *ac = rw->ac;

	if (rw->closing)
		return;
	if (ac != NULL) {
		rw_link_gone(rw);
		store_redis_rw_log(rw, "store.disconnect", why, NULL);
		redisAsyncFree(ac); /* every pending callback with no reply; deferred inside one */
	}
	/* the fleet channel's link follows the master too */
	store_redis_sub_restart(rw);
	rw->backoff_ms = 0;
	store_redis_rw_connect(rw);
}

/* A reply saying the link does not go to a usable master (READONLY: a
 * demoted master or a replica; LOADING): find the master again now. */
static void
rw_check_master(struct redis_worker *rw, const redisReply *rep)
{
	if (rw->closing || rw->ac == NULL || !store_redis_is_not_master(rep))
		return;
	if (rw->rs->url.kind == STATE_REDIS_SENTINEL) {
		rw->sn.resolved = false;
		store_redis_rw_reconnect_now(rw, rep->str);
	} else {
		rw_drop(rw, rep->str);
	}
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/*
 * state_wait_replicas: a new lock was written; before the client hears OK,
 * WAIT until that many replicas have it, within what is left of the
 * request's state_timeout (a little less, so that WAIT's own answer comes
 * before the deadline does).  0, or -1: answer the claim as it stands.
 */
static int
send_wait(struct redis_worker *rw, struct rcall *c)
{
	ev_tstamp left = c->deadline - ev_time();
	long long ms = (long long)(left * 1000.);

	ms -= ms / 5 > 5 ? ms / 5 : 5;
	if (rw->ac == NULL || ms < 1) {
		c->r->rc = -1;
		c->r->err = "no time left to wait for the replicas (state_wait_replicas)";
		return -1;
	}
	c->waiting = true;
	if (redisAsyncCommand(rw->ac, on_reply, c, "WAIT %u %lld", rw->rs->wait_replicas, ms) !=
	    REDIS_OK) {
		c->r->rc = -1;
		c->r->err = "the store is unreachable";
		return -1;
	}
	return 0;
}

/* WAIT's answer: the claim stands (claim_ans) when enough replicas have it. */
static void
wait_answer(struct redis_worker *rw, struct store_req *r, const redisReply *rep)
{
	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
	    rep->integer >= (long long)rw->rs->wait_replicas)
		return; /* rc 0 and the answer from the script */
	r->rc = -1;
	r->err = rep == NULL                        ? "the connection to the store was lost"
	         : rep->type == REDIS_REPLY_INTEGER ? "the lock did not reach state_wait_replicas "
	                                              "replicas in time"
	                                            : "the store refused WAIT";
	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER) {
		char d[48];

		snprintf(d, sizeof(d), "%lld of %u replicas", rep->integer, rw->rs->wait_replicas);
		store_redis_rw_log(rw, "store.error", "WAIT", d);
	} else if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		store_redis_rw_log(rw, "store.error", "WAIT", rep->str);
	}
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rcall *c = privdata;
	struct redis_worker *rw = c->rw;
	redisReply *rep = reply;
	/* answered by the clock already: this late reply decides nothing */
	bool live = c->r != NULL;
	ev_tstamp deadline = c->deadline;

	(void)ac;
	if (rep != NULL) {
		rw->last_reply = ev_now(rw->loop);
		rw->stalled = false; /* Redis answers again */
	}
	if (store_redis_is_noscript(rep) && !c->retried && c->r != NULL && rw->ac != NULL) {
		/* Redis lost the script (restart, SCRIPT FLUSH, a failover):
		 * load it and send again; both go in order on this link */
		c->retried = true;
		if (send_req(rw, c) == 0)
			return;
	}
	if (c->r != NULL && c->r->op == STORE_OP_SESSION) {
		store_redis_session_answer(c->r, rep);
		if (c->r->rc != 0 || c->r->sess_ans != STORE_SESS_OK)
			store_redis_sess_drop(rw, c->r->sess.id); /* noted when sent */
		else
			store_redis_sess_confirm(rw, c->r->sess.id);
		store_req_done(c->r);
		c->r = NULL;
	} else if (c->r == NULL && c->late_sess && rep != NULL && rep->type == REDIS_REPLY_ARRAY &&
	           rep->elements > 0 && store_redis_str_is(rep->element[0], "ok") &&
	           !store_redis_sess_has(rw, c->late_sid)) {
		/* registered after its login heard otherwise (timed out) and was
		 * not kept (state_unavailable = "refuse"): nobody would end it */
		struct store_session s = {.id = c->late_sid};

		store_redis_session_note(rw->sw, c->late_key, c->late_len, &s, true);
	} else if (c->r != NULL && c->r->op == STORE_OP_THROTTLE) {
		store_redis_throttle_answer(c->r, rep);
		store_req_done(c->r);
		c->r = NULL;
	} else if (c->r != NULL && c->r->op == STORE_OP_ROUTE) {
		store_redis_route_answer(c->r, rep);
		store_req_done(c->r);
		c->r = NULL;
	}
	bool good = rep != NULL && rep->type != REDIS_REPLY_ERROR;

	if (c->r != NULL && c->waiting) {
		wait_answer(rw, c->r, rep);
		store_req_done(c->r);
		c->r = NULL;
	} else if (c->r != NULL) {
		store_redis_claim_answer(c->r, rep);
		if (c->r->rc != 0 && rep != NULL && rep->type == REDIS_REPLY_ERROR &&
		    !store_redis_is_not_master(rep))
			store_redis_rw_log(rw, "store.error", "the script failed", rep->str);
		if (c->r->rc == 0 && rw->rs->wait_replicas > 0 &&
		    (c->r->claim_ans.outcome == STORE_CLAIM_CREATED ||
		     c->r->claim_ans.outcome == STORE_CLAIM_REPLACED) &&
		    send_wait(rw, c) == 0)
			return; /* answered when the replicas have it (or not in time) */
		store_req_done(c->r);
		c->r = NULL;
	}
	rcall_unlink(c);
	free(c);
	/* the clock may have been set for this one's deadline */
	if ((live && deadline <= rw->clock_at) || rw->head == NULL)
		rw_arm_clock(rw);
	if (good && rw->outage && rw->ready && !rw->closing)
		store_redis_rw_recovered(rw);
	rw_check_master(rw, rep);
}

/* The reload after a NOSCRIPT on a note: its success sends the heartbeat
 * again.  Compared by address. */
static const char note_reload[] = "SCRIPT LOAD (NOSCRIPT)";

static void
on_note_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	redisReply *rep = reply;
	const char *what = privdata;

	if (rw == NULL || rw->ac != ac)
		return; /* an old link going away */
	if (rw->nnotes > 0)
		rw->nnotes--;
	if (rep == NULL)
		return; /* the link is going: the disconnect callback says why */
	rw->last_reply = ev_now(rw->loop);
	rw->stalled = false;
	if (rw->reput_next != NULL && rw->nnotes < RSESS_REPUT_WINDOW / 2)
		store_redis_rw_reput_more(rw);
	if (what == note_reload)
		rw->reloading = false;
	if (store_redis_is_noscript(rep)) {
		/* Redis lost the script (SCRIPT FLUSH, a restart, a failover):
		 * load it, then write the heartbeat again, so every live
		 * session is back within this heartbeat, not at some login's
		 * NOSCRIPT.  Once per loss: the notes already sent behind this
		 * one come back NOSCRIPT too, while `reloading` is set. */
		if (!rw->reloading && rw->ready && !rw->closing) {
			const char *av[] = {"SCRIPT", "LOAD", store_redis_script};
			size_t al[] = {6, 4, strlen(store_redis_script)};

			if (store_redis_rw_note(rw, note_reload, 3, av, al) == 0)
				rw->reloading = true;
		}
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		if (store_redis_is_not_master(rep))
			rw_check_master(rw, rep);
		else
			store_redis_rw_log(rw, "store.error", what, rep->str);
		return;
	}
	if (what == note_reload) {
		if (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, rw->rs->sha) != 0) {
			store_redis_rw_log(rw, "store.error", what, "unexpected script hash");
			return;
		}
		store_redis_rw_reput(rw);
	}
	if (what == store_redis_note_beat)
		store_redis_rw_beat_reply(rw, rep);
	if (rw->outage && rw->ready && !rw->closing)
		store_redis_rw_recovered(rw);
}

int
store_redis_rw_note(struct redis_worker *rw, const char *what, int argc, const char **argv,
                    const size_t *lens)
{
	ev_tstamp since;

	if (rw->ac == NULL || redisAsyncCommandArgv(rw->ac, on_note_reply, (void *)what, argc, argv,
	                                            lens) != REDIS_OK)
		return -1;
	if (rw->nnotes++ == 0)
		rw->notes_since = ev_time();
	/* nobody waits for a note, but an unanswered one shows a dead link */
	if (rw_waiting(rw, &since))
		rw_clock_by(rw, since + rw_dead_after(rw));
	return 0;
}

static void
on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	redisReply *rep = reply;
	const char *step = privdata;

	if (rw == NULL || rw->ac != ac)
		return; /* an old link going away */
	if (rep == NULL)
		return; /* the disconnect callback says why */
	rw->last_reply = ev_now(rw->loop);
	rw->stalled = false;
	if (strcmp(step, "ROLE") == 0) {
		if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOPERM", 6) == 0) {
			/* an ACL user without ROLE: the Sentinels' word stands, and a
			 * write to a replica still ends in READONLY */
			store_redis_rw_log(rw, "store.error",
			                   "ROLE (not allowed: trusting the Sentinel)", rep->str);
			return;
		}
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
		    store_redis_str_is(rep->element[0], "master"))
			return;
		store_redis_sentinel_bad(rw, "not the master (ROLE)");
		rw_drop(rw, NULL);
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		store_redis_rw_log(rw, "store.error", step, rep->str);
		if (strcmp(step, "AUTH") == 0)
			store_redis_rw_log(rw, "store.error", "AUTH",
			                   "check state_user and state_password_file");
		if (store_redis_is_not_master(rep))
			rw->sn.resolved = false;
		rw_drop(rw, NULL);
		return;
	}
	if (strcmp(step, "SCRIPT LOAD") == 0) {
		if (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, rw->rs->sha) != 0) {
			store_redis_rw_log(rw, "store.error", step, "unexpected script hash");
			rw_drop(rw, NULL);
			return;
		}
		rw->ready = true;
		rw->backoff_ms = 0;
		rw->counted = true;
		pthread_mutex_lock(&rw->rs->mu);
		rw->rs->nready++;
		pthread_mutex_unlock(&rw->rs->mu);
		store_redis_rw_log(rw, "store.connect", "connected", NULL);
		store_redis_master_seen(rw);
		if (rw->subscriber && rw->sub == NULL)
			store_redis_sub_restart(rw); /* not waiting out its backoff */
		if (rw->outage || rw->ever_ready) {
			rw->new_link = true; /* Redis may have restarted empty */
			store_redis_rw_recovered(rw);
		} else
			store_redis_rw_beat(rw);
		rw->ever_ready = true;
	}
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_worker *rw = ac->data;

	if (status == REDIS_OK || rw == NULL || rw->ac != ac)
		return;
	/* hiredis frees ac after this, failing its pending callbacks */
	rw_link_gone(rw);
	store_redis_rw_log(rw, "store.disconnect", "cannot connect", ac->errstr);
	store_redis_sentinel_bad(rw, NULL);
	rw_schedule_retry(rw);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_worker *rw = ac->data;

	(void)status;
	if (rw == NULL || rw->ac != ac)
		return; /* we dropped it ourselves */
	rw_link_gone(rw);
	rw->sn.resolved = false; /* the Sentinel spec: ask again after a disconnect */
	store_redis_rw_log(rw, "store.disconnect", "connection lost", ac->errstr);
	rw_schedule_retry(rw);
}

/* A new link: connect (never blocks: the host is numeric), then AUTH,
 * SELECT and SCRIPT LOAD, pipelined; requests may follow at once, Redis
 * answers them in order after the setup. */
static void
rw_connect(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	redisAsyncContext *ac;
	char err[128];
	bool failed;

	if (rw->closing || rw->ac != NULL)
		return;
	if (rs->url.kind == STATE_REDIS_SENTINEL && !rw->sn.resolved) {
		store_redis_sentinel_resolve(rw); /* connects here again with the answer */
		return;
	}
	ac =
	    store_redis_async_open(rs, rw->loop, rs->url.kind == STATE_REDIS_UNIX ? NULL : rw->host,
	                           rw->port, rs->user, rs->password, rw, on_connect, on_disconnect,
	                           on_setup_reply, (void *)"AUTH", &failed, err, sizeof(err));
	if (ac == NULL) {
		if (failed) {
			rw->outage = true;
			store_redis_rw_log(rw, "store.disconnect", "cannot connect", err);
		}
		rw_schedule_retry(rw);
		return;
	}
	rw->ac = ac;
	rw->ready = false;
	rw->stalled = false;
	rw->last_reply = ev_now(rw->loop);
	if (rs->url.kind == STATE_REDIS_SENTINEL)
		redisAsyncCommand(ac, on_setup_reply, (void *)"ROLE", "ROLE");
	if (rs->url.db != 0)
		redisAsyncCommand(ac, on_setup_reply, (void *)"SELECT", "SELECT %d", rs->url.db);
	redisAsyncCommand(ac, on_setup_reply, (void *)"SCRIPT LOAD", "SCRIPT LOAD %s",
	                  store_redis_script);
	rw_send_queued(rw);
}

/* Send c's request (a script after SCRIPT LOAD when it is a retry).  0, or -1. */
static int
send_req(struct redis_worker *rw, struct rcall *c)
{
	struct redis_store *rs = rw->rs;
	struct store_req *r = c->r;
	char key[REDIS_KEY_MAX], key2[REDIS_KEY_MAX], pp[REDIS_KEY_MAX], a[4][48];
	const char *argv[14];
	size_t lens[14];
	int n = 0;

	if (c->retried) {
		const char *av[] = {"SCRIPT", "LOAD", store_redis_script};
		size_t al[] = {6, 4, strlen(store_redis_script)};

		/* its reply is checked: an error there is logged, not lost */
		if (store_redis_rw_note(rw, "SCRIPT LOAD", 3, av, al) < 0)
			return -1;
	}
	argv[n++] = "EVALSHA";
	argv[n++] = rs->sha;
	argv[n++] = "1";
	argv[n++] = key;
	switch (r->op) {
	case STORE_OP_CLAIM:
		store_redis_user_key(rs, "lock", r->key, r->key_len, key);
		store_redis_kind_key(rs, "lock:", r->key, r->key_len, key2); /* the old layout */
		argv[n++] = "claim";
		argv[n++] = proto_name(r->claim.proto);
		snprintf(a[0], sizeof(a[0]), "%llu", (unsigned long long)r->claim.now_ms);
		snprintf(a[1], sizeof(a[1]), "%llu", (unsigned long long)r->claim.expire_ms);
		snprintf(a[2], sizeof(a[2]), "%llu", (unsigned long long)r->claim.refresh_ms);
		argv[n++] = a[0];
		argv[n++] = a[1];
		argv[n++] = a[2];
		argv[n++] = key2;
		break;
	case STORE_OP_SESSION:
		store_redis_user_key(rs, "sess", r->key, r->key_len, key);
		store_redis_kind_key(rs, "proxy:", "", 0, pp);
		snprintf(a[0], sizeof(a[0]), "%016llx", (unsigned long long)r->sess.id);
		snprintf(a[1], sizeof(a[1]), "%u", r->sess_max);
		snprintf(a[2], sizeof(a[2]), "%llu", (unsigned long long)rs->heartbeat_ms * 3);
		snprintf(a[3], sizeof(a[3]), "%llu", (unsigned long long)rs->sess_ttl_ms);
		argv[n++] = "sreg";
		argv[n++] = a[0];
		argv[n++] = rs->proxy_id;
		argv[n++] = proto_name(r->sess.proto);
		argv[n++] = key2;
		snprintf(key2, sizeof(key2), "%s %llu", r->sess.backend[0] ? r->sess.backend : "-",
		         (unsigned long long)r->sess.since_ms);
		argv[n++] = a[1];
		argv[n++] = r->sess_exclusive ? "1" : "0";
		argv[n++] = a[2];
		argv[n++] = pp;
		argv[n++] = a[3];
		break;
	case STORE_OP_THROTTLE:
		store_redis_thr_key(rs, r->key, r->key_len, key);
		store_redis_thr_key(rs, r->key2, r->key2_len, key2);
		snprintf(a[0], sizeof(a[0]), "%llu", (unsigned long long)r->window_ms);
		argv[n++] = "tfail";
		argv[n++] = key2;
		argv[n++] = a[0];
		break;
	case STORE_OP_ROUTE:
		store_redis_user_key(rs, "route", r->key, r->key_len, key);
		store_redis_kind_key(rs, "route:", r->key, r->key_len, key2); /* the old layout */
		argv[n++] = "route";
		argv[n++] = key2;
		break;
	}
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]); /* keys are NUL-free: normalised names */
	return redisAsyncCommandArgv(rw->ac, on_reply, c, n, argv, lens) == REDIS_OK ? 0 : -1;
}

int
store_redis_submit(struct store_req *r, const char **err_out)
{
	struct redis_worker *rw = r->sw->impl;
	struct rcall *c;
	/* the Sentinels are being asked where the master is (at start, after
	 * a disconnect): wait for that, within the request's own deadline,
	 * as a request waits for a link being made */
	bool queue = rw->ac == NULL && rw->sn.q != NULL;

	if ((rw->ac == NULL && !queue) || rw->stalled) {
		/* down, reconnecting, or a request timed out and Redis has said
		 * nothing since: say so at once rather than wait, so that one
		 * login's store questions together wait state_timeout at most
		 * (the next answer, the late one included, ends the stall; the
		 * dead-link check ends a stall that lasts) */
		r->rc = -1;
		r->err = rw->ac == NULL ? "the store is unreachable (reconnecting)"
		                        : "the store is not answering (a request timed out)";
		store_req_done(r);
		return 0;
	}
	if (rw->ninflight >= REDIS_INFLIGHT_MAX) {
		*err_out = "the store is overloaded (too many requests in flight)";
		return -1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		*err_out = "out of memory";
		return -1;
	}
	c->rw = rw;
	c->r = r;
	/* ev_now() may be stale by one loop turn: the wall clock is exact */
	c->sent = ev_time();
	c->deadline = c->sent + (ev_tstamp)rw->rs->timeout_ms / 1000.;
	if (r->deadline_ms != 0 && (ev_tstamp)r->deadline_ms / 1000. < c->deadline)
		c->deadline = (ev_tstamp)r->deadline_ms / 1000.;
	/* noted before the answer: an end that comes first finds it */
	if (r->op == STORE_OP_SESSION) {
		struct rsess *e = store_redis_sess_add(rw, r->key, r->key_len, &r->sess);

		if (e != NULL)
			e->pending = true;
	}
	c->queued = queue;
	if (!queue && send_req(rw, c) < 0) {
		if (r->op == STORE_OP_SESSION)
			store_redis_sess_drop(rw, r->sess.id);
		free(c);
		*err_out = "the store is unreachable";
		return -1;
	}
	c->prev = rw->tail;
	if (rw->tail != NULL)
		rw->tail->next = c;
	else
		rw->head = c;
	rw->tail = c;
	rw->ninflight++;
	/* its own deadline, even behind requests that timed out and still
	 * wait for Redis (the clock may be set for the dead-link check) */
	rw_clock_by(rw, c->deadline);
	return 0;
}

int
store_redis_worker_open(struct store_worker *sw, const char **err_out)
{
	struct redis_worker *rw = calloc(1, sizeof(*rw));

	if (rw == NULL) {
		*err_out = "out of memory";
		return -1;
	}
	rw->rs = (struct redis_store *)(void *)sw->st;
	rw->sw = sw;
	rw->loop = sw->loop;
	memcpy(rw->host, rw->rs->host, sizeof(rw->host));
	rw->port = rw->rs->url.port;
	ev_timer_init(&rw->retry, rw_retry_cb, 0., 0.);
	rw->retry.data = rw;
	ev_timer_init(&rw->clock, rw_clock_cb, 0., 0.);
	rw->clock.data = rw;
	rw->last_log = -10;
	ev_timer_init(&rw->beat, store_redis_rw_beat_cb, (ev_tstamp)rw->rs->heartbeat_ms / 1000.,
	              (ev_tstamp)rw->rs->heartbeat_ms / 1000.);
	rw->beat.data = rw;
	ev_timer_start(rw->loop, &rw->beat);
	ev_unref(rw->loop);
	ev_timer_init(&rw->sub_retry, store_redis_sub_retry_cb, 0., 0.);
	rw->sub_retry.data = rw;
	sw->impl = rw;
	pthread_mutex_lock(&rw->rs->mu);
	snprintf(rw->field, sizeof(rw->field), "w%u", rw->rs->workers_made++);
	if (rw->rs->event_cb != NULL && !rw->rs->sub_taken)
		rw->subscriber = rw->rs->sub_taken = true;
	pthread_mutex_unlock(&rw->rs->mu);
	store_redis_sentinel_start(rw);
	rw_connect(rw); /* a failure here only schedules a retry */
	if (rw->subscriber)
		store_redis_sub_connect(rw);
	return 0;
}

/* Before store_worker_free() waits for the store: every request still in
 * flight is answered now (nobody will see it: the worker is going). */
void
store_redis_worker_stop(struct store_worker *sw)
{
	struct redis_worker *rw = sw->impl;

	if (rw == NULL)
		return;
	for (struct rcall *c = rw->head; c != NULL; c = c->next)
		rcall_fail(c, "the worker is closing");
}

void
store_redis_worker_close(struct store_worker *sw)
{
	struct redis_worker *rw = sw->impl;

	if (rw == NULL)
		return;
	rw->closing = true;
	store_redis_timer_stop_unref(rw->loop, &rw->retry);
	store_redis_timer_stop_unref(rw->loop, &rw->clock);
	store_redis_timer_stop_unref(rw->loop, &rw->sub_retry);
	ev_ref(rw->loop);
	ev_timer_stop(rw->loop, &rw->beat);
	store_redis_sentinel_stop(rw);
	rw_drop(rw, NULL); /* frees every call through its callback */
	while (rw->head != NULL)
		rcall_drop_queued(rw->head, "the worker is closing"); /* never sent */
	if (rw->sub != NULL) {
		redisAsyncContext *ac = rw->sub;

		rw->sub = NULL;
		redisAsyncFree(ac);
	}
	if (rw->subscriber) {
		pthread_mutex_lock(&rw->rs->mu);
		rw->rs->sub_taken = false;
		pthread_mutex_unlock(&rw->rs->mu);
	}
	for (size_t b = 0; b < RSESS_BUCKETS; b++) {
		struct rsess *e = rw->sess[b], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(rw);
	sw->impl = NULL;
}
