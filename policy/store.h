/*
 * store.h: durable facts (protocol locks), behind one
 * interface that an embedded store (LMDB) and a remote one (Redis, next)
 * both implement.  The `state` URL's scheme picks the store: "lmdb:DIR";
 * "mem:" and "mem:N" (N entries at most) are for unit tests only.
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
 * Every lock write is atomic with the read it depends on
 * (store_lock_update()) and durable before its answer is delivered.  All
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

#define STORE_KEY_MAX  320 /* key bytes: a normalised user name and some */
#define STORE_DCTX_MAX 160 /* decision context bytes carried by one request */

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

enum store_action {
	STORE_KEEP,     /* nothing to write */
	STORE_PUT,      /* write *next_out; durable before the answer */
	STORE_DEL,      /* delete; durable before the answer */
	STORE_PUT_LAZY, /* write *next_out, but the answer does not depend on it:
	                 * it may come first, and the write may be lost to a
	                 * crash or dropped under overload (a lock's "last used") */
};

/*
 * Decide, inside the store's atomic section, what becomes of one key's lock:
 * cur is the present record or NULL; for STORE_PUT fill *next_out.  dctx is
 * the request's own copy of the context given to store_lock_update(); write
 * the outcome there.  Must be pure (no I/O, no locks, no globals): it runs
 * on any thread, and may run more than once for one request (a retried
 * batch, an optimistic read first); the last run is the one that counts.
 */
typedef enum store_action (*store_decide_cb)(void *dctx, const struct store_lock *cur,
                                             struct store_lock *next_out);

/* The answer to store_lock_update(): rc 0 (dctx holds the last decision, in
 * effect and durable), or -1 and err (static text; nothing was written). */
typedef void (*store_update_cb)(void *arg, int rc, const char *err, void *dctx);

/* One lock of store_lock_list(); return nonzero to stop the walk. */
typedef int (*store_list_cb)(void *arg, const char *key, size_t len, const struct store_lock *rec);

struct store;        /* an open store; one per process is enough; thread-safe */
struct store_worker; /* one loop's way in */
struct store_req;    /* one outstanding request; owned by the store */

#define STORE_CREATE 0x1 /* store_open(): make the directory and files if missing */

/*
 * Open the store named by url.  Returns NULL and *err_out (static) on
 * failure: unknown scheme, "redis://" (not supported yet), a directory that
 * is missing without STORE_CREATE, an unreadable or foreign store.
 */
struct store *store_open(const char *url, int flags, const char **err_out);
/* Close; every store_worker must be freed first.  Takes NULL; sets *stp NULL. */
void store_close(struct store **stp);
/* "lmdb" or "mem". */
const char *store_name(const struct store *st);

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
 * Atomically read key's lock, run decide on it (with a copy of dctx,
 * dctx_len <= STORE_DCTX_MAX) and apply its action; durable before cb runs.
 * Returns the request (cancel with store_req_cancel() until cb runs; the
 * store frees it after cb returns), or NULL and *err_out (static: queue
 * full, out of memory, key too long): then no callback comes.
 */
struct store_req *store_lock_update(struct store_worker *sw, const char *key, size_t len,
                                    store_decide_cb decide, const void *dctx, size_t dctx_len,
                                    store_update_cb cb, void *arg, const char **err_out);

/* Cancel r on its worker's thread: its callback never runs.  The caller
 * forgets r; the store frees it.  Not from inside r's own callback. */
void store_req_cancel(struct store_req *r);

/* ---- synchronous: admin commands and tests ------------------------------ */

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
