/*
 * policy_impl.h: what policy.c (the API, the settings, pre-auth and
 * post-auth) shares with policy_fleet.c (the paths of a shared store) and
 * nobody else: the policy, its settings snapshot, the per-worker state and
 * the requests.  Nothing outside policy/policy*.c includes it.
 */
#ifndef POSTERN_POLICY_IMPL_H
#define POSTERN_POLICY_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "counters.h"
#include "policy.h"
#include "protolock.h"
#include "route.h"
#include "store.h"

#define ROUTE_CACHE_SLOTS 16384 /* route lookups remembered (direct-mapped, per process) */

/* What the settings say, immutable once built; refcounted so that a
 * question asked before a reload finishes under its own settings. */
struct policy_conf {
	atomic_int refs;
	enum protocol_lock_mode mode;
	uint64_t expire_ms;
	struct protolock_rules *rules; /* owned */
	unsigned default_mask;
	uint32_t max_conn_per_ip, max_sess_per_user;
	enum sieve_lock_mode sieve_lock;         /* ManageSieve and the protocol lock */
	enum sieve_sessions_mode sieve_sessions; /* ManageSieve and max_sessions_per_user */
	struct cidr_conf *allow, *deny;          /* owned copies */
	size_t nallow, ndeny;
	unsigned v6_prefix;
	struct ratelimit_conf rl_ip_user, rl_ip;
	uint64_t delay_base_ms, delay_max_ms;
	char *state; /* owned copy, or NULL: a reload may not change it */
};

/* One remembered route lookup (a miss too: backend ""). */
struct route_slot {
	uint64_t hash;
	uint64_t until_ms; /* 0: empty */
	char backend[STORE_BACKEND_MAX + 1];
};

struct policy {
	atomic_uint_least64_t last_store_log_ms; /* store.error at most once a second */
	atomic_uint_least64_t store_log_dropped;
	atomic_uint_least64_t last_degraded_log_ms; /* state.degraded at most once a second */
	atomic_uint_least64_t degraded_dropped;
	struct store *fallback; /* owned: state_fallback, or NULL */
	bool shared;            /* store is shared (Redis): the fleet paths */
	enum state_unavailable_mode unavail;
	uint64_t timeout_ms;
	pthread_mutex_t route_mu;  /* guards routes[] */
	struct route_slot *routes; /* owned; NULL without a store */
	pthread_mutex_t conf_mu;   /* guards the conf pointer, not what it points at */
	struct policy_conf *conf;  /* reference */
	struct counters *ctr;      /* owned */
	struct store *store;       /* owned; NULL without `state` */
	atomic_uint_least64_t last_full_log_ms;
	policy_kick_cb kick; /* policy_set_kick(), before the workers; NULL: log only */
	void *kick_arg;
};

/* A sticky lock granted while the shared store was away: written there on
 * recovery, first writer wins. */
struct pending_lock {
	struct pending_lock *next;
	enum proto_kind proto;
	uint64_t granted_ms;
	size_t len;
	char user[ROUTE_USER_MAX + 1];
};

struct policy_worker {
	struct policy *p;           /* borrowed */
	struct ev_loop *loop;       /* borrowed */
	struct store_worker *sw;    /* owned; NULL without a store */
	struct store_worker *fsw;   /* owned: the state_fallback store's; or NULL */
	struct pending_lock *locks; /* granted while degraded, not yet written back */
	size_t nlocks;
	struct policy_route_req *route_ready; /* cache hits, answered on the next turn */
	ev_async async;                       /* answers known at once go out on the next turn */
	struct policy_req *ready_head, *ready_tail; /* this thread only */
	struct policy_req *pending; /* every request not yet answered or cancelled */
};

struct policy_route_req {
	struct policy_worker *pw;      /* borrowed */
	struct policy_route_req *next; /* pw->route_ready */
	struct store_req *sreq;        /* borrowed from the store until it answers */
	policy_route_cb cb;
	void *arg;
	bool cancelled; /* on the ready list: freed there */
	bool hit;       /* the cache's answer is in backend */
	char backend[STORE_BACKEND_MAX + 1];
	size_t len;
	char user[ROUTE_USER_MAX + 1];
};

struct policy_req {
	struct policy_worker *pw;       /* borrowed */
	struct policy_req *prev, *next; /* pw->pending */
	struct policy_req *ready_next;
	struct store_req *sreq; /* borrowed from the store until it answers */
	policy_answer_cb cb;
	void *arg;
	struct policy_answer ans;
	char user[ROUTE_USER_MAX + 1]; /* normalised */
	size_t user_len;
	enum proto_kind proto;      /* what the lock decides on (ManageSieve as_imap: IMAP) */
	enum proto_kind sess_proto; /* what the session is counted as: the login's own */
	uint64_t now_ms;            /* the asker's clock */
	uint64_t sid;               /* the session's id in the fleet registry; 0: none */
	char backend[STORE_BACKEND_MAX + 1];
	uint64_t deadline_ms; /* every store question together ends by then */
	bool registered;      /* asked or made a registry entry: end it on release */
	bool degraded;        /* decided without the shared store */
	bool fallback_claim;  /* the pending store request is on the fallback store */
	uint64_t expire_ms;   /* the conf's lock_expire at the time of asking */
	bool reserved;        /* a live session is counted for it, not yet handed over */
	bool on_ready;        /* in the ready list; freed there */
	bool cancelled;       /* on the ready list, cancelled: free without a callback */
	bool delivering;      /* its callback is running */
	bool in_call;         /* inside policy_postauth_sid(): answers wait for the loop */
	bool uses_store;      /* the sticky lock is read and written */
};

/* ---- policy.c ---- */

/* A reference on the settings in force (never NULL); give it back with
 * policy_conf_put(), which sets *cp = NULL and frees the last one. */
struct policy_conf *policy_conf_get(struct policy *p);
void policy_conf_put(struct policy_conf **cp);
/* The account key (key, len) into buf as it is, cut to buflen - 1 and
 * NUL-terminated; its length.  Never normalises: the login did. */
size_t policy_key_copy(const char *key, size_t len, char *buf, size_t buflen);
/* A store failure, logged at most once a second. */
void policy_warn_store(struct policy *p, const char *user, size_t len, const char *err,
                       uint64_t now_ms);
/* End r's reserved session (here and in the registry), if it holds one. */
void policy_release(struct policy_req *r);
/* Run r's callback and free r.  The caller's connection may be freed. */
void policy_deliver(struct policy_req *r);
/* Answer r now (from a callback) or on the loop's next turn (inside the
 * call).  r may be freed. */
void policy_respond(struct policy_req *r);
/* The sticky lock: read, decide, write in one store step.  r may be freed. */
void policy_step_claim(struct policy_req *r);
/* A lock claim's answer (store_claim_cb); arg is the policy_req. */
void policy_on_store_answer(void *arg, int rc, const char *err, const struct store_claim_answer *a);

/* ---- policy_fleet.c ---- */

/* The fleet channel (store_event_cb, on one worker's loop); arg is the policy. */
void policy_on_fleet_event(void *arg, enum store_event ev, const char *user, size_t len);
/* The store keys of a throttle pair: "ADDR|user" into iu, "ADDR" into ipk
 * (STORE_KEY_MAX each), and their lengths. */
void policy_throttle_keys(const struct acl_addr *key, const char *u, size_t ul, char *iu,
                          size_t *iu_len, char *ipk, size_t *ip_len);
/* Remember a lock granted while the shared store was away (written back
 * by policy_on_recovered()). */
void policy_pending_lock_add(struct policy_worker *pw, const char *user, size_t len,
                             enum proto_kind proto, uint64_t now_ms);
/* The shared store could not decide r's lock, or count r's session:
 * state_unavailable decides.  r may be answered and freed. */
void policy_claim_degraded(struct policy_req *r, const char *err);
void policy_session_degraded(struct policy_req *r, const char *err);
/* The session registry's answer (store_session_cb); arg is the policy_req. */
void policy_on_session_answer(void *arg, int rc, const char *err, enum store_sess_outcome o,
                              enum proto_kind other);
/* The shared store is back on pw's link (store_recovered_cb; arg is pw):
 * write back the locks granted meanwhile. */
void policy_on_recovered(void *arg);

#endif
