/*
 * store_redis_impl.h: what the Redis store's files share and nobody else:
 * the store, a worker's connection and its calls, the live sessions, and
 * the helpers each file lends the others.  store_redis.c opens and closes;
 * store_redis_worker.c, store_redis_fleet.c and store_redis_sync.c do the
 * rest.  Nothing outside policy/store_redis*.c includes it.
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
#define REDIS_KEY_MAX     (REDIS_PREFIX_MAX + 6 + STORE_KEY_MAX + 1)
#define RSESS_BUCKETS     1024 /* live-session table of one worker (chained) */

struct redis_store {
	struct store base;
	struct state_url url;
	char host[INET6_ADDRSTRLEN]; /* TCP: resolved once at open (no DNS on a loop) */
	char *password;              /* owned; NULL: no AUTH */
	char prefix[REDIS_PREFIX_MAX + 1];
	size_t prefix_len;
	uint64_t timeout_ms, lock_ttl_ms;
	char sha[41]; /* the script's SHA1, hex */
	char proxy_id[STORE_PROXY_ID_LEN + 1];
	uint64_t heartbeat_ms;

	/* the fleet channel: one subscriber connection, on the first worker
	 * made after store_subscribe() */
	store_event_cb event_cb;
	void *event_arg;
	bool sub_taken; /* under mu */

	pthread_mutex_t mu; /* guards sync */
	redisContext *sync; /* the admin calls' connection, or NULL */
};

/* One request sent on a worker's connection. */
struct rcall {
	struct rcall *prev, *next; /* the worker's in-flight list */
	struct redis_worker *rw;
	struct store_req *r; /* NULL once answered (timed out, worker closing) */
	ev_tstamp sent, deadline;
	bool retried; /* NOSCRIPT: loaded and sent again once */
};

struct redis_worker {
	struct redis_store *rs;
	struct store_worker *sw;
	struct ev_loop *loop;
	redisAsyncContext *ac; /* NULL while down */
	bool ready;            /* the setup (AUTH, SELECT, SCRIPT LOAD) answered */
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
	bool stalled;  /* a request timed out and Redis has answered nothing since */
	ev_timer beat; /* state_heartbeat */
	struct rsess *sess[RSESS_BUCKETS]; /* the live sessions this worker registered */
	size_t nsess;
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
	struct store_session s;
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
/* PREFIX kind key into buf (REDIS_KEY_MAX); its length.  kind is at most
 * 6 bytes ("lock:", "sess:", "thr:", "route:", "proxy:", "events"). */
size_t store_redis_kind_key(const struct redis_store *rs, const char *kind, const char *key,
                            size_t len, char *buf);
/* PREFIX "lock:" key into buf (REDIS_KEY_MAX); its length. */
size_t store_redis_lock_key(const struct redis_store *rs, const char *key, size_t len, char *buf);
/* Is e the string s? */
bool store_redis_str_is(const redisReply *e, const char *s);
/* {name, proto, origin, created, used} from element 1 on -> *l.  0 or -1. */
int store_redis_parse_lock(const redisReply *rep, struct store_lock *l);
/* Is rep Redis saying it does not have the script (NOSCRIPT)? */
bool store_redis_is_noscript(const redisReply *rep);

/* ---- store_redis_worker.c: one async connection per worker loop ---- */

/*
 * A new async link to rs on loop (a worker's): connecting (never blocks: the
 * host is numeric), attached with watchers that do not keep the loop
 * running, ac->data = data, the two callbacks set, and AUTH queued first
 * when rs has a password (its reply to on_auth(auth_arg); on_auth may be
 * NULL).  Returns the context (hiredis frees it after on_gone), or NULL:
 * *connect_failed_out tells a failed connect (the cause in err, errlen)
 * from the adapter refusing to attach.
 */
redisAsyncContext *store_redis_async_open(const struct redis_store *rs, struct ev_loop *loop,
                                          void *data, redisConnectCallback *on_connect,
                                          redisDisconnectCallback *on_gone,
                                          redisCallbackFn *on_auth, void *auth_arg,
                                          bool *connect_failed_out, char *err, size_t errlen);
/*
 * Send a command nobody waits for (heartbeat, session note, HDEL, DEL,
 * PUBLISH) on rw's link, with a reply handler: NOSCRIPT loads the script
 * and sends the heartbeat again (every live session with it), any other
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
/* Note session s of user key in rw's table (the existing entry if it is
 * there); NULL when out of memory. */
struct rsess *store_redis_sess_add(struct redis_worker *rw, const char *key, size_t len,
                                   const struct store_session *s);
/* The heartbeat: this proxy's key, and every live session written again. */
void store_redis_rw_beat(struct redis_worker *rw);
void store_redis_rw_beat_cb(struct ev_loop *loop, ev_timer *t, int revents);
/* Back after an outage: log it, register again, tell the policy. */
void store_redis_rw_recovered(struct redis_worker *rw);
/* The subscriber's connection (rw->sub), and its reconnect timer's callback. */
void store_redis_sub_connect(struct redis_worker *rw);
void store_redis_sub_retry_cb(struct ev_loop *loop, ev_timer *t, int revents);
/* store_ops: session_note, announce, throttle_clear, subscribe. */
void store_redis_session_note(struct store_worker *sw, const char *key, size_t len,
                              const struct store_session *s, bool end);
void store_redis_announce(struct store_worker *sw, enum store_event ev, const char *msg,
                          size_t len);
void store_redis_throttle_clear(struct store_worker *sw, const char *key, size_t len);
void store_redis_subscribe(struct store *st, store_event_cb cb, void *arg);

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
