/*
 * store.h: durable facts (protocol locks), behind one
 * interface that an embedded store (LMDB) and a shared one (Redis) both
 * implement.  The `state` URL's scheme picks the store: "lmdb:DIR",
 * "redis://HOST:PORT/DB" or "redis+unix:PATH"; "mem:" and "mem:N" (N
 * entries at most) are for unit tests only.
 *
 * Two ways in:
 *  - Asynchronous, for worker loops: each worker thread makes its own
 *    store_worker on its loop and issues requests through it; the answer
 *    comes back through a callback on that loop, never before the issuing
 *    call returns, never on another thread.  A request can be cancelled
 *    (its connection closed): its callback then never runs, though a write
 *    it asked for may still happen.
 *  - Synchronous (store_lock_get/put/del/list): blocking, for the admin
 *    commands and tests, never on a worker loop.
 *
 * Every lock write is atomic with the read it depends on (a named
 * operation such as store_lock_claim(), never a callback run inside the
 * store: a remote store cannot run C) and durable before its answer is
 * delivered, as far as the store can promise it (see store_redis.c).  All
 * functions are thread-safe except where a store_worker is named: a
 * store_worker belongs to its loop's thread.
 */
#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"

#define STORE_KEY_MAX 320 /* key bytes: a normalised user name and some */

enum store_origin {
	STORE_ORIGIN_LOGIN = 0, /* a first successful login made it */
	STORE_ORIGIN_ADMIN = 1, /* `postern lock set` made it */
};

/* The protocol lock of one account. */
struct store_lock {
	enum proto_kind proto; /* the protocol the account is locked to */
	enum store_origin origin;
	uint64_t created_ms; /* wall clock, ms since the epoch */
	uint64_t used_ms;    /* last login that used it (coarse: see protolock.h) */
};

/*
 * The named operations a worker loop can ask for.  Each is one atomic
 * read-decide-write in the store: LMDB and the memory store run the C
 * function below inside their atomic section, Redis runs the same decision
 * as a Lua script (store_redis.c); both must agree to the millisecond
 * (the conformance suite in tests/unit/test_store.c runs on every store).
 */

/* store_lock_claim(): a login over proto that the backend accepted. */
struct store_claim {
	enum proto_kind proto; /* the protocol logging in */
	uint64_t now_ms;       /* wall clock: a new lock's created_ms and used_ms */
	uint64_t expire_ms;    /* a lock unused this long is replaced; 0: never */
	uint64_t refresh_ms;   /* a held lock's used_ms older than this moves to now */
};

enum store_claim_outcome {
	STORE_CLAIM_CREATED,   /* there was none: a lock for proto, durable before the answer */
	STORE_CLAIM_REPLACED,  /* the lock had expired: replaced by one for proto, durable */
	STORE_CLAIM_HELD,      /* a lock for proto: nothing written */
	STORE_CLAIM_REFRESHED, /* a lock for proto: used_ms moved to now; the answer does
	                        * not wait for that write, which may be lost to a crash */
	STORE_CLAIM_OTHER,     /* a lock for another protocol: nothing written */
	STORE_CLAIM__COUNT
};

/* Each outcome's word, in logs and in the Redis claim script's reply. */
extern const char *const store_claim_outcome_name[];

/* The answer to a claim: the outcome and the lock in effect after it. */
struct store_claim_answer {
	enum store_claim_outcome outcome;
	struct store_lock lock;
};

/* Has l lain unused for expire_ms (0: never) at now_ms?  A clock that went
 * back (now_ms < used_ms) leaves it alone. */
bool store_lock_expired(const struct store_lock *l, uint64_t now_ms, uint64_t expire_ms);

/*
 * The claim decision, pure: cur is the stored lock or NULL; *next_out is
 * the lock in effect afterwards (for HELD and OTHER: *cur).  Sticky first
 * writer wins: no lock or an expired one -> a new lock for c->proto; a lock
 * for another protocol -> OTHER; the same protocol -> HELD, or REFRESHED
 * when now_ms - used_ms >= refresh_ms (and the clock moved forward).
 */
enum store_claim_outcome store_claim_decide(const struct store_claim *c,
                                            const struct store_lock *cur,
                                            struct store_lock *next_out);

/* The answer to store_lock_claim(): rc 0 and *a (valid during the call), or
 * -1 and err (static text; a is NULL; nothing the answer depends on was
 * written). */
typedef void (*store_claim_cb)(void *arg, int rc, const char *err,
                               const struct store_claim_answer *a);

/* One lock of store_lock_list(); return nonzero to stop the walk. */
typedef int (*store_list_cb)(void *arg, const char *key, size_t len, const struct store_lock *rec);

struct store;        /* an open store; one per process is enough; thread-safe */
struct store_worker; /* one loop's way in */
struct store_req;    /* one outstanding request; owned by the store */

#define STORE_CREATE 0x1 /* store_open(): make the directory and files if missing */

/* What a store needs besides its URL (Redis reads these; LMDB and mem
 * none).  Zero or NULL: the default. */
struct store_params {
	const char *password_file; /* AUTH password: the file's first line; NULL: none */
	const char *prefix;        /* every key starts with it; default "postern:" */
	const char *user;          /* Redis 6 ACL user for AUTH; NULL: the default user */
	const char
	    *sentinel_password_file; /* redis-sentinel: the Sentinels' password; NULL: none */
	unsigned wait_replicas;      /* a new lock waits (WAIT) for this many replicas; 0: no */
	uint64_t timeout_ms;         /* a request never waits longer; default 250 */
	uint64_t lock_expire_ms;     /* TTL of a lock store_lock_put() writes; 0: none */
	uint64_t heartbeat_ms;       /* Redis: a proxy's heartbeat; default 10000 */
	uint64_t sess_ttl_ms;        /* Redis: TTL of a user's live-sessions hash, each session
	                              * written again after half of it; default 24 h, at
	                              * least 8 heartbeats (tests shorten it) */
};

/* The store_params of cfg (borrowed strings: keep cfg while opening). */
void store_params_from_config(const struct config *cfg, struct store_params *out);

/*
 * Open the store named by url (lib/state_url.h: "lmdb:DIR",
 * "redis://HOST:PORT/DB", "redis+unix:PATH", "mem:").  Returns NULL and
 * *err_out (static) on failure: a bad URL, "rediss://", a directory that is
 * missing without STORE_CREATE, an unreadable or foreign store, a Redis
 * host that does not resolve or an unreadable password file.  Opening a
 * Redis store does not connect: workers connect on their loops (and keep
 * reconnecting), the synchronous calls on first use.
 */
struct store *store_open_with(const char *url, const struct store_params *sp, int flags,
                              const char **err_out);
/* store_open_with() and default parameters. */
struct store *store_open(const char *url, int flags, const char **err_out);
/* Close; every store_worker must be freed first.  Takes NULL; sets *stp NULL. */
void store_close(struct store **stp);
/* "lmdb", "redis" or "mem". */
const char *store_name(const struct store *st);

/* How the store is doing, for health, stats and metrics. */
struct store_status {
	bool up;            /* answering: Redis: some worker's link is ready; others: open */
	char master[320];   /* Redis: the master in use, "HOST:PORT" or the socket; "" unknown */
	char how[96];       /* how it was learned: "configured", "sentinel HOST:PORT",
	                     * "+switch-master from HOST:PORT"; "" */
	uint64_t failovers; /* Redis: times the master in use changed since the start */
};
/* Fill *out (thread-safe). */
void store_status_get(struct store *st, struct store_status *out);

/* A way in for loop: call on the loop's thread (or before it runs).  Holds
 * no reference on the loop: it does not keep ev_run() going.  NULL and
 * *err_out on failure. */
struct store_worker *store_worker_new(struct store *st, struct ev_loop *loop, const char **err_out);
/*
 * Free sw on its loop's thread, outside its callbacks, after cancelling its
 * requests: waits (briefly: one store commit) until the store is done with
 * them, then drops them; no callback runs.  Takes NULL; sets *swp NULL.
 */
void store_worker_free(struct store_worker **swp);

/*
 * Claim key's lock for a login (store_claim_decide() in one atomic store
 * step); a new lock is durable before cb runs.  Returns the request (cancel
 * with store_req_cancel() until cb runs; the store frees it after cb
 * returns), or NULL and *err_out (static: queue full, out of memory, key
 * too long, no such protocol): then no callback comes.  A store that cannot
 * answer within its timeout (Redis: state_timeout) answers rc -1.
 */
struct store_req *store_lock_claim(struct store_worker *sw, const char *key, size_t len,
                                   const struct store_claim *c, store_claim_cb cb, void *arg,
                                   const char **err_out);

/* store_lock_claim() answered by deadline_ms (wall clock) at the latest,
 * when that comes before state_timeout does. */
struct store_req *store_lock_claim_until(struct store_worker *sw, const char *key, size_t len,
                                         const struct store_claim *c, uint64_t deadline_ms,
                                         store_claim_cb cb, void *arg, const char **err_out);

/* Cancel r on its worker's thread: its callback never runs.  The caller
 * forgets r; the store frees it.  Not from inside r's own callback. */
void store_req_cancel(struct store_req *r);

/* ---- the fleet: live sessions, shared throttles, routes, events ---------- */

#define STORE_BACKEND_MAX  63 /* bytes of a backend name in a route or a session */
#define STORE_PROXY_ID_LEN 16 /* hex digits of a proxy id */

/* Does st keep a live-session registry and shared throttles for a fleet
 * (Redis)?  Without one (LMDB, mem) the process counts alone (counters.h). */
bool store_is_shared(const struct store *st);

/* This process's proxy id (random per start, hex), "" for a store that is
 * not shared.  Valid while st is open. */
const char *store_proxy_id(const struct store *st);

/* One live session in the registry. */
struct store_session {
	uint64_t id; /* the connection's cid: unique in the fleet (random) */
	enum proto_kind proto;
	char backend[STORE_BACKEND_MAX + 1];
	uint64_t since_ms; /* wall clock */
};

enum store_sess_outcome {
	STORE_SESS_OK,          /* counted and registered */
	STORE_SESS_OTHER_PROTO, /* exclusive, and a live session of another protocol */
	STORE_SESS_USER_FULL,   /* max live sessions reached */
};

/* rc 0 and o (other: the protocol in use for OTHER_PROTO), or rc -1 and err
 * (unreachable, timeout: nothing was registered). */
typedef void (*store_session_cb)(void *arg, int rc, const char *err, enum store_sess_outcome o,
                                 enum proto_kind other);

/*
 * A shared store only: count key's live sessions of each protocol in the
 * fleet, leaving out those of proxies whose heartbeat lapsed (3 missed
 * state_heartbeat), decide as connlimit_session() does (exclusive: the
 * concurrent lock; max 0: no limit) and register s, in one atomic step.
 * Until store_session_end() it counts while this proxy's heartbeat goes
 * on; the worker writes it again after half the hash's TTL (24 h), after a
 * reconnect, and when it finds Redis lost the proxy's heartbeat key.
 * deadline_ms (wall clock, 0: none) shortens state_timeout.  Returns the
 * request as store_lock_claim() does.
 */
struct store_req *store_session_begin(struct store_worker *sw, const char *key, size_t len,
                                      const struct store_session *s, uint32_t max, bool exclusive,
                                      uint64_t deadline_ms, store_session_cb cb, void *arg,
                                      const char **err_out);
/* A session decided without the registry (degraded): registered now if the
 * store is reachable, else when it is back.  No answer. */
void store_session_keep(struct store_worker *sw, const char *key, size_t len,
                        const struct store_session *s);
/* The session ended: removed from the registry at once (no answer). */
void store_session_end(struct store_worker *sw, const char *key, size_t len, uint64_t id);

/* The fleet's count for one failed-login key pair after a failure. */
struct store_throttle_answer {
	uint32_t ip_user, ip;                 /* failures in each key's window, this one included */
	uint64_t ip_user_left_ms, ip_left_ms; /* time left in each window */
};
typedef void (*store_throttle_cb)(void *arg, int rc, const char *err,
                                  const struct store_throttle_answer *a);
/* A shared store only: count a failure on the keys ip_user and ip (INCR,
 * and PEXPIRE window_ms when a window opens: one script). */
struct store_req *store_throttle_fail(struct store_worker *sw, const char *ip_user, size_t iu_len,
                                      const char *ip, size_t ip_len, uint64_t window_ms,
                                      store_throttle_cb cb, void *arg, const char **err_out);
/* A successful login: forget the ip_user key in the fleet (no answer). */
void store_throttle_clear(struct store_worker *sw, const char *ip_user, size_t iu_len);

/* A route lookup: rc 0 and backend (NULL: no route in the store), or -1. */
typedef void (*store_route_cb)(void *arg, int rc, const char *err, const char *backend);
/* key's route (PREFIX "route:" USER in Redis, the "routes" table in LMDB). */
struct store_req *store_route_lookup(struct store_worker *sw, const char *key, size_t len,
                                     uint64_t deadline_ms, store_route_cb cb, void *arg,
                                     const char **err_out);

/* What the fleet channel carries (PREFIX "events", Redis pub/sub). */
enum store_event {
	STORE_EVENT_KICK,   /* end user's sessions on every proxy */
	STORE_EVENT_ROUTE,  /* user's route changed: forget cached lookups */
	STORE_EVENT_RESYNC, /* the channel was down: forget every cached lookup (user "") */
	STORE_EVENT_BLOCK,  /* a failed-login key reached its limit in the fleet: the
	                     * payload is the announcer's text (store_announce()) */
};
typedef void (*store_event_cb)(void *arg, enum store_event ev, const char *user, size_t len);
/* Subscribe this process to the fleet channel (a shared store; one
 * connection, on the loop of the first worker made after this call); cb
 * runs on that loop.  Call before making workers. */
void store_subscribe(struct store *st, store_event_cb cb, void *arg);

/* Tell the fleet on sw's link, without waiting (lost while the link is
 * down): STORE_EVENT_BLOCK with msg, which subscribers get as "user". */
void store_announce(struct store_worker *sw, enum store_event ev, const char *msg, size_t len);

/* The worker's link came back after an outage: cb runs on sw's loop after
 * the live sessions were registered again. */
typedef void (*store_recovered_cb)(void *arg);
void store_worker_on_recovered(struct store_worker *sw, store_recovered_cb cb, void *arg);

/* ---- synchronous: admin commands and tests ------------------------------ */

/* Routes: 0, or -1 and *err_out ("not supported" for the memory store). */
int store_route_get(struct store *st, const char *key, size_t len,
                    char backend_out[STORE_BACKEND_MAX + 1], bool *found_out, const char **err_out);
int store_route_put(struct store *st, const char *key, size_t len, const char *backend,
                    const char **err_out);
int store_route_del(struct store *st, const char *key, size_t len, bool *found_out,
                    const char **err_out);
/* Tell every proxy of the fleet (a shared store): 0, or -1 and *err_out;
 * a store that is not shared answers -1 "not a shared store". */
int store_publish(struct store *st, enum store_event ev, const char *user, size_t len,
                  const char **err_out);

/* 0 and *found_out (and *out when found), or -1 and *err_out. */
int store_lock_get(struct store *st, const char *key, size_t len, struct store_lock *out,
                   bool *found_out, const char **err_out);
/* Write rec for key, durably.  0, or -1 and *err_out. */
int store_lock_put(struct store *st, const char *key, size_t len, const struct store_lock *rec,
                   const char **err_out);
/* Delete key's lock, durably; *found_out says whether there was one. */
int store_lock_del(struct store *st, const char *key, size_t len, bool *found_out,
                   const char **err_out);
/* Every lock, in key byte order.  0 (also when cb stopped it), or -1. */
int store_lock_list(struct store *st, store_list_cb cb, void *arg, const char **err_out);

#endif
