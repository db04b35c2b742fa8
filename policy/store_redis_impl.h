/*
 * store_redis_impl.h: what the Redis store's files share and nobody else:
 * the store, a worker's connection and its calls, the live sessions, and
 * the helpers each file lends the others.  store_redis.c opens and closes;
 * store_redis_worker.c, store_redis_fleet.c and store_redis_sync.c do the
 * rest; store_redis_sentinel.c finds the master through Sentinels.  Nothing outside
 * policy/store_redis*.c includes it.
 */
#ifndef POSTERN_STORE_REDIS_IMPL_H
#define POSTERN_STORE_REDIS_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "state_url.h"
#include "store_impl.h"

#define REDIS_BACKOFF_MIN 100  /* ms before the first reconnect */
#define REDIS_BACKOFF_MAX 5000 /* ms between reconnects at most */
#define REDIS_PREFIX_MAX  64   /* config.h's STATE_PREFIX_MAX */
/* the longest key: PREFIX "{" IP "}:thr:" IP "|" USER, where IP "|" USER is
 * at most STORE_KEY_MAX bytes and IP shorter still; and a NUL */
#define REDIS_KEY_MAX (REDIS_PREFIX_MAX + 2 * STORE_KEY_MAX + 8)
/* live-session table of one worker (chained): 128 KiB, chains of ~3 at
 * 50k sessions a worker */
#define RSESS_BITS    14
#define RSESS_BUCKETS (1U << RSESS_BITS)
/* TTL of a user's live-sessions hash (state_heartbeat is the liveness;
 * this only ends entries nobody removes: a crashed proxy's, of a user who
 * never logs in again); each session is written again after half of it */
#define REDIS_SESS_TTL_MS (24ULL * 3600 * 1000)
/* re-writes of aging sessions per heartbeat and worker, at least */
#define RSESS_REFRESH_MIN 64
/* A rewrite of every session (a new link, a lost proxy key) goes out a
 * window at a time: at most this many notes unanswered, the next sent as
 * replies come.  Redis stays quick for logins, and a worker with 50k
 * sessions queues no 50k commands (memory here, a backlog there). */
#define RSESS_REPUT_WINDOW 256

struct redis_store {
	struct store base;
	struct state_url url;
	char host[INET6_ADDRSTRLEN]; /* TCP: resolved once at open (no DNS on a loop) */
	char *password;              /* owned; NULL: no AUTH */
	char *user;                  /* owned; Redis 6 ACL user (AUTH USER PASS); NULL: default */
	unsigned wait_replicas;      /* WAIT for this many replicas after a new lock; 0: no */
	/* redis-sentinel: the Sentinels, resolved once at open like host */
	char sentinel_host[STATE_URL_SENTINELS_MAX][INET6_ADDRSTRLEN];
	char *sentinel_password; /* owned; NULL: no AUTH to the Sentinels */
	/* the master in use as the workers last confirmed it (under mu), for
	 * health, stats and the failover count */
	char master[320]; /* "HOST:PORT", "[V6]:PORT" or the socket's path; "" */
	char master_how[96];
	char master_host[INET6_ADDRSTRLEN]; /* TCP: master, apart */
	int master_port;
	struct redis_worker *workers; /* every worker (rw->wnext), to tell of a new master */
	uint64_t failovers;
	int nready; /* workers whose link is ready (under mu) */
	char prefix[REDIS_PREFIX_MAX + 1];
	size_t prefix_len;
	uint64_t timeout_ms, lock_ttl_ms;
	char sha[41]; /* the script's SHA1, hex */
	char proxy_id[STORE_PROXY_ID_LEN + 1];
	uint64_t heartbeat_ms;
	uint64_t sess_ttl_ms;  /* a user's live-sessions hash (REDIS_SESS_TTL_MS) */
	unsigned workers_made; /* workers opened so far: each one's field in the proxy key */

	/* the fleet channel: one subscriber connection, on the first worker
	 * made after store_subscribe() */
	store_event_cb event_cb;
	void *event_arg;
	bool sub_taken; /* under mu */

	pthread_mutex_t mu; /* guards sync */
	redisContext *sync; /* the admin calls' connection, or NULL */
};

/* A worker's way to the master through the Sentinels (redis-sentinel://):
 * where its link goes, one question to a Sentinel at a time, and a
 * subscription to +switch-master on one of them. */
struct rsentinel {
	bool resolved;          /* host, port: an answer not yet found wrong */
	char how[96];           /* how host was learned (logs, status) */
	int first;              /* the Sentinel asked first (the last that helped) */
	redisAsyncContext *q;   /* a question under way, or NULL */
	int q_idx;              /* whom q asks */
	int q_tried;            /* Sentinels asked in this round */
	ev_timer q_timer;       /* q's deadline (state_timeout) */
	redisAsyncContext *sub; /* +switch-master, or NULL */
	int sub_idx;            /* whom sub listens to */
	bool sub_ever;          /* subscribed once: a new subscription checks the master */
	ev_timer sub_retry;
	uint64_t sub_backoff_ms;
};

/* One request sent on a worker's connection. */
struct rcall {
	struct rcall *prev, *next; /* the worker's in-flight list */
	struct redis_worker *rw;
	struct store_req *r; /* NULL once answered (timed out, worker closing) */
	ev_tstamp sent, deadline;
	bool retried; /* NOSCRIPT: loaded and sent again once */
	bool waiting; /* a new lock written; WAIT (state_wait_replicas) sent after it */
	bool queued;  /* not sent yet: the Sentinels are being asked for the master */
	/* a session registration answered (failed) before Redis did: a late
	 * "ok" registered a session nobody keeps, which is removed again */
	bool late_sess;
	uint64_t late_sid;
	size_t late_len;
	char late_key[STORE_KEY_MAX];
};

struct redis_worker {
	struct redis_store *rs;
	struct store_worker *sw;
	struct ev_loop *loop;
	redisAsyncContext *ac; /* NULL while down */
	bool ready;            /* the setup (AUTH, ROLE, SELECT, SCRIPT LOAD) answered */
	bool counted;          /* counted in rs->nready */
	/* where the link goes: TCP, the configured host; Sentinel, the master
	 * they named (sn.resolved); unix socket: unused */
	char host[INET6_ADDRSTRLEN];
	int port;
	struct rsentinel sn;
	struct redis_worker *wnext; /* rs->workers, under rs->mu */
	ev_async moved;             /* another worker confirmed a new master */
	bool closing;
	ev_timer retry;     /* reconnect, after backoff_ms */
	ev_timer clock;     /* the nearest deadline of a request in flight */
	ev_tstamp clock_at; /* when clock fires (ev_now's time), while it is active */
	uint64_t backoff_ms;
	struct rcall *head, *tail;
	size_t ninflight;
	size_t nnotes;         /* commands nobody waits for (store_redis_rw_note), unanswered */
	ev_tstamp notes_since; /* the oldest of them was sent no earlier than this */
	bool reloading;        /* a SCRIPT LOAD after a NOSCRIPT is on its way */
	ev_tstamp last_reply;
	ev_tstamp last_log;
	bool ever_ready;
	bool outage;   /* lost the link or a request since the last good reply */
	bool new_link; /* the link was lost since every session was last written */
	bool stalled;  /* a request timed out and Redis has answered nothing since */
	ev_timer beat; /* state_heartbeat */
	struct rsess *sess[RSESS_BUCKETS]; /* the live sessions this worker registered */
	size_t nsess;
	/* the same sessions, oldest write first: a heartbeat writes again only
	 * those written more than sess_ttl_ms / 2 ago */
	struct rsess *old_head, *old_tail;
	/* a rewrite of every session under way: the next to write, and when
	 * it began (one written since then is skipped) */
	struct rsess *reput_next;
	ev_tstamp reput_at;
	char field[12]; /* this worker's field in the proxy key */
	bool beat_seen; /* a beat answered: the next one finding the key gone logs it */
	/* the subscriber (one worker of the process) */
	bool subscriber;
	redisAsyncContext *sub; /* NULL while down */
	bool sub_ever;          /* subscribed once: a new subscription resyncs */
	ev_timer sub_retry;
	uint64_t sub_backoff_ms;
};

/* A live session of this worker, for heartbeats and re-registration. */
struct rsess {
	struct rsess *next;
	struct rsess *older, *newer; /* rw->old_head .. old_tail, by put_at */
	ev_tstamp put_at;            /* last written to Redis (or noted), ev_now() */
	struct store_session s;
	bool pending; /* its sreg is unanswered: the heartbeat must not register it
	               * unchecked (a refused one would count after all) */
	size_t key_len;
	char key[STORE_KEY_MAX];
};

/* ---- store_redis.c: the script, keys, replies ---- */

/* The Lua script (store_redis.c describes it); NUL-terminated. */
extern const char store_redis_script[];

/* Timers that must not keep the loop running (store.h: a store_worker
 * holds no reference on its loop): start (or restart) once after `after`
 * seconds; stop.  A callback of such a timer calls ev_ref() first. */
void store_redis_timer_start_unref(struct ev_loop *loop, ev_timer *t, ev_tstamp after);
void store_redis_timer_stop_unref(struct ev_loop *loop, ev_timer *t);
/* Start t after the next backoff: *backoff_ms doubled (REDIS_BACKOFF_MIN
 * the first time, REDIS_BACKOFF_MAX at most), jittered down to half. */
void store_redis_backoff(struct ev_loop *loop, ev_timer *t, uint64_t *backoff_ms);
/* PREFIX kind key into buf (REDIS_KEY_MAX); its length.  kind is at most
 * 6 bytes ("proxy:", "events"; the old layout's "lock:" and "route:"). */
size_t store_redis_kind_key(const struct redis_store *rs, const char *kind, const char *key,
                            size_t len, char *buf);
/* PREFIX "{" user "}:" kind into buf (REDIS_KEY_MAX); its length.  kind is
 * "lock", "sess" or "route" (store_redis.c has the layout). */
size_t store_redis_user_key(const struct redis_store *rs, const char *kind, const char *user,
                            size_t len, char *buf);
/* A throttle counter's key into buf (REDIS_KEY_MAX); its length: key an
 * address, PREFIX "{" IP "}:thr"; key IP "|" USER, PREFIX "{" IP "}:thr:"
 * key (the tag is key up to its first "|"). */
size_t store_redis_thr_key(const struct redis_store *rs, const char *key, size_t len, char *buf);
/* Is e the string s? */
bool store_redis_str_is(const redisReply *e, const char *s);
/* {name, proto, origin, created, used} from element 1 on -> *l.  0 or -1. */
int store_redis_parse_lock(const redisReply *rep, struct store_lock *l);
/* Is rep Redis saying it does not have the script (NOSCRIPT)? */
bool store_redis_is_noscript(const redisReply *rep);

/* ---- store_redis_worker.c: one async connection per worker loop ---- */

/*
 * A new async link on loop (a worker's) to host:port (numeric), or to rs's
 * unix socket when host is NULL: connecting (never blocks), attached with
 * watchers that do not keep the loop running, ac->data = data, the two
 * callbacks set, and AUTH [user] password queued first when password is
 * not NULL (its reply to on_auth(auth_arg); on_auth may be NULL).  Returns the context (hiredis
 * frees it after on_gone), or NULL: *connect_failed_out tells a failed connect (the cause in err,
 * errlen) from the adapter refusing to attach.
 */
redisAsyncContext *store_redis_async_open(const struct redis_store *rs, struct ev_loop *loop,
                                          const char *host, int port, const char *user,
                                          const char *password, void *data,
                                          redisConnectCallback *on_connect,
                                          redisDisconnectCallback *on_gone,
                                          redisCallbackFn *on_auth, void *auth_arg,
                                          bool *connect_failed_out, char *err, size_t errlen);
/*
 * Send a command nobody waits for (heartbeat, session note, HDEL, DEL,
 * PUBLISH) on rw's link, with a reply handler: NOSCRIPT loads the script
 * and writes every live session again (store_redis_rw_reput), any other
 * error is logged (at most once a second), and an unanswered note counts
 * for the dead-link check.  `what` is a static string naming it in logs.
 * 0, or -1 (no link, or hiredis refused it).  Never calls back at once.
 */
int store_redis_rw_note(struct redis_worker *rw, const char *what, int argc, const char **argv,
                        const size_t *lens);
/* A warning (store.error, store.disconnect) or store.connect of rw's link,
 * at most one warning a second per loop.  detail may be NULL. */
void store_redis_rw_log(struct redis_worker *rw, const char *event, const char *what,
                        const char *detail);
/* (Re)connect rw's link now if it is down and no retry is due sooner
 * (the Sentinel resolver calls it with the master found). */
void store_redis_rw_connect(struct redis_worker *rw);
/* Down: try again after the backoff (the Sentinel resolver, all asked). */
void store_redis_rw_retry_later(struct redis_worker *rw);
/* Drop rw's link at once (why is logged) and connect again without the
 * backoff: +switch-master, READONLY, LOADING. */
void store_redis_rw_reconnect_now(struct redis_worker *rw, const char *why);
/* ---- store_redis_reply.c: replies -> answers ---- */

/* A claim's, a session registration's, a failed login's reply (rep NULL:
 * the link was lost) -> r's answer. */
void store_redis_claim_answer(struct store_req *r, const redisReply *rep);
void store_redis_session_answer(struct store_req *r, const redisReply *rep);
void store_redis_throttle_answer(struct store_req *r, const redisReply *rep);
/* A route's reply (GET; rep NULL: the link was lost) -> r's answer: rc,
 * err, route_found, route. */
void store_redis_route_answer(struct store_req *r, const redisReply *rep);
/* store_ops: worker_open, worker_stop, worker_close, submit (store_impl.h). */
int store_redis_worker_open(struct store_worker *sw, const char **err_out);
void store_redis_worker_stop(struct store_worker *sw);
void store_redis_worker_close(struct store_worker *sw);
int store_redis_submit(struct store_req *r, const char **err_out);

/* ---- store_redis_fleet.c: live sessions, heartbeat, the fleet channel ---- */

/* Forget session id of rw (no-op if unknown). */
void store_redis_sess_drop(struct redis_worker *rw, uint64_t id);
/* Session id's sreg said ok: the heartbeat keeps it from now on. */
void store_redis_sess_confirm(struct redis_worker *rw, uint64_t id);
/* Does rw keep session id (registered, pending or kept while degraded)? */
bool store_redis_sess_has(struct redis_worker *rw, uint64_t id);
/* Note session s of user key in rw's table (the existing entry if it is
 * there); NULL when out of memory. */
struct rsess *store_redis_sess_add(struct redis_worker *rw, const char *key, size_t len,
                                   const struct store_session *s);
/* The heartbeat: this worker's field in the proxy key (one command), and
 * the sessions written more than sess_ttl_ms / 2 ago (a bounded number). */
void store_redis_rw_beat(struct redis_worker *rw);
void store_redis_rw_beat_cb(struct ev_loop *loop, ev_timer *t, int revents);
/* The heartbeat now, and every live session written again (a new link, a
 * lost proxy key, a lost script), RSESS_REPUT_WINDOW at a time;
 * store_redis_rw_reput_more() sends the next ones as notes are answered. */
void store_redis_rw_reput(struct redis_worker *rw);
void store_redis_rw_reput_more(struct redis_worker *rw);
/* The `what` of a heartbeat's note (compared by address), and its reply:
 * the proxy key found missing writes every session again. */
extern const char store_redis_note_beat[];
void store_redis_rw_beat_reply(struct redis_worker *rw, const redisReply *rep);
/* Back after an outage or on a new link: log it, tell the policy; on a new
 * link (Redis may have restarted empty) register every session again.  A
 * request that only timed out on a link that stayed up writes nothing
 * again: every note went out on that link meanwhile. */
void store_redis_rw_recovered(struct redis_worker *rw);
/* The subscriber's connection (rw->sub), and its reconnect timer's callback. */
void store_redis_sub_connect(struct redis_worker *rw);
/* The master moved: the subscriber's link (if rw has one) is made again,
 * to rw->host, at once. */
void store_redis_sub_restart(struct redis_worker *rw);
void store_redis_sub_retry_cb(struct ev_loop *loop, ev_timer *t, int revents);
/* store_ops: session_note, announce, throttle_clear, subscribe. */
void store_redis_session_note(struct store_worker *sw, const char *key, size_t len,
                              const struct store_session *s, bool end);
void store_redis_announce(struct store_worker *sw, enum store_event ev, const char *msg,
                          size_t len);
void store_redis_throttle_clear(struct store_worker *sw, const char *key, size_t len);
void store_redis_subscribe(struct store *st, store_event_cb cb, void *arg);

/* ---- store_redis_sentinel.c: the master, through the Sentinels ---- */

/* Worker side, on rw's loop.  start: subscribe to +switch-master (at
 * worker open); stop: close both Sentinel links (worker close).  resolve:
 * ask the Sentinels in turn (each within state_timeout) for the master's
 * address, then rw->host, rw->port, sn.resolved and store_redis_rw_connect();
 * all failing, store_redis_rw_retry_later().  bad: the address named
 * turned out wrong (no connection, not the master): resolve again, asking
 * the next Sentinel first. */
void store_redis_sentinel_start(struct redis_worker *rw);
void store_redis_sentinel_stop(struct redis_worker *rw);
void store_redis_sentinel_resolve(struct redis_worker *rw);
void store_redis_sentinel_bad(struct redis_worker *rw, const char *why);
/* Blocking, for the admin connection: the master's address within
 * until_ms (monotonic ms), confirmed by nobody yet.  0, or -1 and *err_out. */
int store_redis_sentinel_sync_master(struct redis_store *rs, uint64_t until_ms, char *host_out,
                                     int *port_out, const char **err_out);
/* rw's link to host:port was confirmed the master (ROLE): record it for the
 * process (status; state.master, and state.failover when it changed). */
void store_redis_master_seen(struct redis_worker *rw);
/* A READONLY or LOADING error: the link does not go to a usable master. */
bool store_redis_is_not_master(const redisReply *rep);
/* store_ops.status */
void store_redis_status(struct store *st, struct store_status *out);

/* ---- store_redis_sync.c: the blocking connection, under rs->mu ---- */

/* Close the blocking connection (the caller holds rs->mu, or is the last
 * user of rs). */
void store_redis_sync_close(struct redis_store *rs);
/* store_ops: lock_get, lock_put, lock_del, lock_list, route_get,
 * route_put, route_del, publish. */
int store_redis_lock_get(struct store *st, const char *key, size_t len, struct store_lock *out,
                         bool *found_out, const char **err_out);
int store_redis_lock_put(struct store *st, const char *key, size_t len,
                         const struct store_lock *rec, const char **err_out);
int store_redis_lock_del(struct store *st, const char *key, size_t len, bool *found_out,
                         const char **err_out);
int store_redis_lock_list(struct store *st, store_list_cb cb, void *arg, const char **err_out);
int store_redis_route_get(struct store *st, const char *key, size_t len, char *out, bool *found_out,
                          const char **err_out);
int store_redis_route_put(struct store *st, const char *key, size_t len, const char *backend,
                          const char **err_out);
int store_redis_route_del(struct store *st, const char *key, size_t len, bool *found_out,
                          const char **err_out);
int store_redis_publish(struct store *st, enum store_event ev, const char *user, size_t len,
                        const char **err_out);

#endif
