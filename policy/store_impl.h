/*
 * store_impl.h: what store implementations share, and nobody else sees:
 * the ops table, the request, and the per-loop mailbox that carries answers
 * from any thread back to the loop that asked.
 */
#ifndef POSTERN_STORE_IMPL_H
#define POSTERN_STORE_IMPL_H

#include <pthread.h>

#include "store.h"

struct store_ops {
	const char *name;
	void (*close)(struct store *st);
	/* Set up sw->impl (sw->st, sw->loop are set).  0 or -1. */
	int (*worker_open)(struct store_worker *sw, const char **err_out);
	/* Optional: answer (store_req_done()) every request sw still has out,
	 * on sw's thread, before store_worker_free() waits for them: for a
	 * store that answers on that same thread (Redis). */
	void (*worker_stop)(struct store_worker *sw);
	void (*worker_close)(struct store_worker *sw);
	/* Take r, answer it later with store_req_done() from any thread (even
	 * before returning: delivery waits for the loop anyway).  -1: not
	 * taken, *err_out says why; the caller frees r. */
	int (*submit)(struct store_req *r, const char **err_out);
	int (*lock_get)(struct store *st, const char *key, size_t len, struct store_lock *out,
	                bool *found_out, const char **err_out);
	int (*lock_put)(struct store *st, const char *key, size_t len, const struct store_lock *rec,
	                const char **err_out);
	int (*lock_del)(struct store *st, const char *key, size_t len, bool *found_out,
	                const char **err_out);
	int (*lock_list)(struct store *st, store_list_cb cb, void *arg, const char **err_out);
	/* Optional (NULL: the operation is not supported). */
	int (*route_get)(struct store *st, const char *key, size_t len, char *out, bool *found_out,
	                 const char **err_out);
	int (*route_put)(struct store *st, const char *key, size_t len, const char *backend,
	                 const char **err_out);
	int (*route_del)(struct store *st, const char *key, size_t len, bool *found_out,
	                 const char **err_out);
	/* A shared store only (NULL otherwise). */
	int (*publish)(struct store *st, enum store_event ev, const char *user, size_t len,
	               const char **err_out);
	void (*session_note)(struct store_worker *sw, const char *key, size_t len,
	                     const struct store_session *s, bool end);
	void (*throttle_clear)(struct store_worker *sw, const char *key, size_t len);
	void (*announce)(struct store_worker *sw, enum store_event ev, const char *msg, size_t len);
	const char *(*proxy_id)(const struct store *st);
	void (*subscribe)(struct store *st, store_event_cb cb, void *arg);
	/* Optional: the store's status (store_status_get()); without it: up. */
	void (*status)(struct store *st, struct store_status *out);
};

/* The first member of every implementation's store. */
struct store {
	const struct store_ops *ops;
};

struct store_worker {
	struct store *st;     /* borrowed */
	struct ev_loop *loop; /* borrowed */
	ev_async async;       /* woken when answers are in done */
	pthread_mutex_t mu;   /* guards the done list and inflight */
	pthread_cond_t idle;  /* inflight reached 0 */
	struct store_req *done_head, *done_tail;
	unsigned inflight; /* issued, not yet in done */
	void *impl;        /* owned by the implementation */
	store_recovered_cb recovered_cb;
	void *recovered_arg;
};

enum store_op {
	STORE_OP_CLAIM,    /* store_lock_claim() */
	STORE_OP_SESSION,  /* store_session_begin() */
	STORE_OP_THROTTLE, /* store_throttle_fail() */
	STORE_OP_ROUTE,    /* store_route_lookup() */
};

struct store_req {
	struct store_worker *sw; /* borrowed: where the answer goes; NULL for a
	                          * detached lazy write nobody waits for */
	struct store_req *next;  /* a store's queue, then sw's done list */
	enum store_op op;
	size_t key_len;
	char key[STORE_KEY_MAX];
	struct store_claim claim; /* STORE_OP_CLAIM: the question */
	store_claim_cb claim_cb;
	uint64_t deadline_ms; /* wall clock; 0: state_timeout only */
	/* STORE_OP_SESSION */
	struct store_session sess;
	uint32_t sess_max;
	bool sess_exclusive;
	store_session_cb sess_cb;
	enum store_sess_outcome sess_ans;
	enum proto_kind sess_other;
	/* STORE_OP_THROTTLE: key is the (address, user) key, key2 the address */
	size_t key2_len;
	char key2[STORE_KEY_MAX];
	uint64_t window_ms;
	store_throttle_cb thr_cb;
	struct store_throttle_answer thr_ans;
	/* STORE_OP_ROUTE */
	store_route_cb route_cb;
	bool route_found;
	char route[STORE_BACKEND_MAX + 1];
	/* the answer */
	int rc;
	const char *err;
	struct store_claim_answer claim_ans; /* rc 0 */
	void *arg;
	bool cancelled; /* sw's thread only */
};

/* Hand r's answer (rc, err, the op's answer filled) to its loop; any thread. */
void store_req_done(struct store_req *r);

/* The implementations' openers: for LMDB and mem, what follows the
 * scheme's colon. */
struct store *store_lmdb_open(const char *dir, int flags, const char **err_out);
struct store *store_mem_open(const char *arg, const char **err_out);
struct state_url;
struct store *store_redis_open(const struct state_url *u, const struct store_params *sp,
                               const char **err_out);

#endif
