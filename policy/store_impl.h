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
};

enum store_op {
	STORE_OP_CLAIM, /* store_lock_claim() */
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
