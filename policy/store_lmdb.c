/*
 * store_lmdb.c: the embedded store, LMDB in the `state` directory.  Owns
 * the environment, the record formats and the one store thread that makes
 * every write: it takes queued requests in batches, runs each one's decision
 * inside one write transaction (so a read, its decision and its write are
 * one atomic step against every other thread and process), commits once
 * (LMDB fsyncs the data, then the meta page) and only then hands the
 * answers back.  Worker threads never write and never wait for a disk: they
 * read from a snapshot, and if the decision needs no write, answer from it.
 *
 * Crash safety is LMDB's: copy-on-write pages and a meta page written last,
 * so a kill -9 or a power cut leaves the last committed state.  The admin
 * commands open the same directory from another process; LMDB's lock file
 * (robust mutexes, a reader table) keeps them consistent.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <lmdb.h>

#include "log.h"
#include "store_impl.h"

#define LMDB_MAPSIZE    ((size_t)1 << 30) /* 1 GiB of address space: ~3M locks */
#define LMDB_MAXREADERS 1024              /* workers (<= 256), admin commands, tests */
#define LMDB_QUEUE_MAX  16384             /* requests waiting for the store thread (~10 MB) */
#define LMDB_BATCH_MAX  1024              /* requests per write transaction */

#define LOCK_REC_LEN 24 /* version, proto, origin, 5 zero bytes, created, used */
#define LOCK_REC_V1  1

struct lmdb_store {
	struct store base;
	MDB_env *env;
	MDB_dbi locks;
	MDB_dbi routes; /* user -> backend name (`postern route set`) */
	char *dir;      /* owned, for logs */

	pthread_mutex_t qmu; /* guards the queue and the thread's life */
	pthread_cond_t qcond;
	struct store_req *qhead, *qtail;
	size_t qlen;
	bool stopping;
	bool started;
	pthread_t thread;
};

struct lmdb_worker {
	MDB_txn *rtxn; /* a reset read transaction, renewed for each read */
};

/* Static text for err_out; the details go to the log. */
static const char *
lmdb_err(int rc)
{
	switch (rc) {
	case MDB_MAP_FULL:
		return "the store is full (LMDB map size)";
	case MDB_READERS_FULL:
		return "too many readers of the store";
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return "not an LMDB store this version can read";
	case MDB_PANIC:
	case MDB_CORRUPTED:
		return "the store is damaged";
	case MDB_MAP_RESIZED:
		return "the store was resized by another process; restart";
	case ENOENT:
		return "no such directory";
	case EACCES:
	case EPERM:
		return "permission denied";
	case ENOSPC:
		return "no space left on device";
	case EIO:
		return "I/O error";
	case ENOMEM:
		return "out of memory";
	default:
		return "store error";
	}
}

/* ---- records ------------------------------------------------------------ */

static void
put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void
lock_encode(const struct store_lock *l, unsigned char out[LOCK_REC_LEN])
{
	memset(out, 0, LOCK_REC_LEN);
	out[0] = LOCK_REC_V1;
	out[1] = (unsigned char)l->proto;
	out[2] = (unsigned char)l->origin;
	put64(out + 8, l->created_ms);
	put64(out + 16, l->used_ms);
}

/* 0, or -1 for a record this code does not know (never guessed at). */
static int
lock_decode(const MDB_val *v, struct store_lock *out)
{
	const unsigned char *p = v->mv_data;

	if (v->mv_size != LOCK_REC_LEN || p[0] != LOCK_REC_V1 || p[1] >= PROTO__COUNT || p[2] > 1)
		return -1;
	out->proto = (enum proto_kind)p[1];
	out->origin = (enum store_origin)p[2];
	out->created_ms = get64(p + 8);
	out->used_ms = get64(p + 16);
	return 0;
}

/* ---- the store thread ---------------------------------------------------- */

/*
 * One request (a claim) inside txn.  Returns 0 when r is answered (r->rc
 * set, which may be a failure of r alone), or an LMDB error that spoils txn.
 */
static int
apply(struct lmdb_store *ls, MDB_txn *txn, struct store_req *r)
{
	MDB_val k = {.mv_size = r->key_len, .mv_data = r->key}, v;
	int rc;

	struct store_lock cur;
	unsigned char buf[LOCK_REC_LEN];
	enum store_claim_outcome o;
	bool found;

	r->rc = 0;
	r->err = NULL;
	rc = mdb_get(txn, ls->locks, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	found = rc == 0;
	if (found && lock_decode(&v, &cur) < 0) {
		/* fail closed: a record we cannot read is not "no lock" */
		r->rc = -1;
		r->err = "unreadable lock record";
		return 0;
	}
	o = store_claim_decide(&r->claim, found ? &cur : NULL, &r->claim_ans.lock);
	r->claim_ans.outcome = o;
	if (o == STORE_CLAIM_HELD || o == STORE_CLAIM_OTHER)
		return 0;
	lock_encode(&r->claim_ans.lock, buf);
	v.mv_size = sizeof(buf);
	v.mv_data = buf;
	return mdb_put(txn, ls->locks, &k, &v, 0);
}

/* The body of a write transaction: 0, or the LMDB error that sinks it. */
typedef int (*txn_body_fn)(struct lmdb_store *ls, MDB_txn *txn, void *arg);

/* Run body in one write transaction: committed when it returns 0, else
 * aborted.  The commit is the fsync: nothing is answered before it returns.
 * 0, or the LMDB error that sank it. */
static int
write_txn(struct lmdb_store *ls, txn_body_fn body, void *arg)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(ls->env, NULL, 0, &txn)) != 0)
		return rc;
	if ((rc = body(ls, txn, arg)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

struct batch {
	struct store_req **reqs;
	size_t n;
};

static int
batch_apply(struct lmdb_store *ls, MDB_txn *txn, void *arg)
{
	struct batch *b = arg;
	int rc;

	for (size_t i = 0; i < b->n; i++)
		if ((rc = apply(ls, txn, b->reqs[i])) != 0)
			return rc;
	return 0;
}

/* Run reqs[0..n) in one transaction.  0, or the LMDB error that sank it. */
static int
run_txn(struct lmdb_store *ls, struct store_req **reqs, size_t n)
{
	struct batch b = {reqs, n};

	return write_txn(ls, batch_apply, &b);
}

/* One record written (v.mv_data set) or deleted (NULL; *found_out, when
 * not NULL, says whether it was there; a missing record is no error). */
struct kv_op {
	MDB_dbi dbi;
	MDB_val k, v;
	bool *found_out;
};

static int
kv_apply(struct lmdb_store *ls, MDB_txn *txn, void *arg)
{
	struct kv_op *op = arg;
	int rc;

	(void)ls;
	if (op->v.mv_data != NULL)
		return mdb_put(txn, op->dbi, &op->k, &op->v, 0);
	rc = mdb_del(txn, op->dbi, &op->k, NULL);
	if (op->found_out != NULL)
		*op->found_out = rc == 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* op in a transaction of its own.  0, or -1 with *err_out. */
static int
kv_write(struct lmdb_store *ls, struct kv_op *op, const char **err_out)
{
	int rc = write_txn(ls, kv_apply, op);

	if (rc != 0) {
		*err_out = lmdb_err(rc);
		return -1;
	}
	return 0;
}

static void
run_batch(struct lmdb_store *ls, struct store_req **reqs, size_t n)
{
	int rc = run_txn(ls, reqs, n);

	if (rc != 0 && n > 1) {
		/* one request may have sunk the others (a full map): give each its
		 * own transaction, and its own answer */
		for (size_t i = 0; i < n; i++)
			run_batch(ls, &reqs[i], 1);
		return;
	}
	if (rc != 0) {
		log_kv(LOG_WARN, "store.error", "store=lmdb dir=\"%s\" op=commit err=\"%s\"",
		       ls->dir, mdb_strerror(rc));
		for (size_t i = 0; i < n; i++) {
			reqs[i]->rc = -1;
			reqs[i]->err = lmdb_err(rc);
		}
	}
}

static void *
store_thread(void *arg)
{
	struct lmdb_store *ls = arg;
	struct store_req *batch[LMDB_BATCH_MAX];

	for (;;) {
		size_t n = 0;

		pthread_mutex_lock(&ls->qmu);
		while (ls->qhead == NULL && !ls->stopping)
			pthread_cond_wait(&ls->qcond, &ls->qmu);
		if (ls->qhead == NULL) { /* stopping, and nothing left to do */
			pthread_mutex_unlock(&ls->qmu);
			break;
		}
		/* everything queued so far rides on one commit (group commit) */
		while (ls->qhead != NULL && n < LMDB_BATCH_MAX) {
			batch[n++] = ls->qhead;
			ls->qhead = ls->qhead->next;
		}
		if (ls->qhead == NULL)
			ls->qtail = NULL;
		ls->qlen -= n;
		pthread_mutex_unlock(&ls->qmu);

		run_batch(ls, batch, n);
		for (size_t i = 0; i < n; i++) {
			if (batch[i]->sw == NULL)
				free(batch[i]); /* a lazy write: nobody waits for it */
			else
				store_req_done(batch[i]); /* it may be freed from here on */
		}
	}
	return NULL;
}

/* ---- worker side -------------------------------------------------------- */

static int
lmdb_worker_open(struct store_worker *sw, const char **err_out)
{
	struct lmdb_store *ls = (struct lmdb_store *)(void *)sw->st;
	struct lmdb_worker *lw;
	int rc;

	pthread_mutex_lock(&ls->qmu);
	/* the thread starts with the first worker: admin commands need none */
	if (!ls->started) {
		if (pthread_create(&ls->thread, NULL, store_thread, ls) != 0) {
			pthread_mutex_unlock(&ls->qmu);
			*err_out = "cannot start the store thread";
			return -1;
		}
		ls->started = true;
	}
	pthread_mutex_unlock(&ls->qmu);
	if ((lw = calloc(1, sizeof(*lw))) == NULL) {
		*err_out = "out of memory";
		return -1;
	}
	if ((rc = mdb_txn_begin(ls->env, NULL, MDB_RDONLY, &lw->rtxn)) != 0) {
		free(lw);
		*err_out = lmdb_err(rc);
		return -1;
	}
	mdb_txn_reset(lw->rtxn);
	sw->impl = lw;
	return 0;
}

static void
lmdb_worker_close(struct store_worker *sw)
{
	struct lmdb_worker *lw = sw->impl;

	if (lw == NULL)
		return;
	mdb_txn_abort(lw->rtxn);
	free(lw);
	sw->impl = NULL;
}

/*
 * The optimistic read: run the claim decision on a snapshot, on the
 * worker's thread.  When it needs no write (HELD, OTHER), or only a lazy one
 * (REFRESHED), the snapshot's answer stands (it was the committed state at a
 * moment between the request and its answer): true, with r's answer filled.
 * Never waits for a writer.
 */
static bool
answer_from_snapshot(struct lmdb_store *ls, struct lmdb_worker *lw, struct store_req *r)
{
	MDB_val k = {.mv_size = r->key_len, .mv_data = r->key}, v;
	struct store_lock cur;
	enum store_claim_outcome o;
	bool found;
	int rc;

	if (mdb_txn_renew(lw->rtxn) != 0)
		return false;
	rc = mdb_get(lw->rtxn, ls->locks, &k, &v);
	found = rc == 0;
	if ((rc != 0 && rc != MDB_NOTFOUND) || (found && lock_decode(&v, &cur) < 0)) {
		mdb_txn_reset(lw->rtxn);
		return false; /* the store thread will say what is wrong */
	}
	mdb_txn_reset(lw->rtxn);
	o = store_claim_decide(&r->claim, found ? &cur : NULL, &r->claim_ans.lock);
	r->claim_ans.outcome = o;
	return o == STORE_CLAIM_HELD || o == STORE_CLAIM_OTHER || o == STORE_CLAIM_REFRESHED;
}

/* Queue r for the store thread; false when the queue is full. */
static bool
enqueue(struct lmdb_store *ls, struct store_req *r)
{
	pthread_mutex_lock(&ls->qmu);
	if (ls->qlen >= LMDB_QUEUE_MAX || ls->stopping) {
		pthread_mutex_unlock(&ls->qmu);
		return false;
	}
	r->next = NULL;
	if (ls->qtail != NULL)
		ls->qtail->next = r;
	else
		ls->qhead = r;
	ls->qtail = r;
	ls->qlen++;
	pthread_cond_signal(&ls->qcond);
	pthread_mutex_unlock(&ls->qmu);
	return true;
}

/* A route is read from the worker's snapshot: never a write, never a wait. */
static void
route_from_snapshot(struct lmdb_store *ls, struct lmdb_worker *lw, struct store_req *r)
{
	MDB_val k = {.mv_size = r->key_len, .mv_data = r->key}, v;
	int rc;

	r->rc = -1;
	r->err = "store error";
	if ((rc = mdb_txn_renew(lw->rtxn)) != 0) {
		r->err = lmdb_err(rc);
		return;
	}
	rc = mdb_get(lw->rtxn, ls->routes, &k, &v);
	if (rc == 0 && v.mv_size > 0 && v.mv_size <= STORE_BACKEND_MAX) {
		memcpy(r->route, v.mv_data, v.mv_size);
		r->route[v.mv_size] = '\0';
		r->route_found = true;
		r->rc = 0;
	} else if (rc == MDB_NOTFOUND) {
		r->route_found = false;
		r->rc = 0;
	} else if (rc != 0) {
		r->err = lmdb_err(rc);
	} else {
		r->err = "unreadable route record";
	}
	mdb_txn_reset(lw->rtxn);
}

static int
lmdb_submit(struct store_req *r, const char **err_out)
{
	struct lmdb_store *ls = (struct lmdb_store *)(void *)r->sw->st;

	if (r->op == STORE_OP_ROUTE) {
		route_from_snapshot(ls, r->sw->impl, r);
		store_req_done(r);
		return 0;
	}
	if (r->op != STORE_OP_CLAIM) {
		*err_out = "not a shared store";
		return -1;
	}

	if (answer_from_snapshot(ls, r->sw->impl, r)) {
		if (r->claim_ans.outcome == STORE_CLAIM_REFRESHED) {
			/* a detached copy makes the write; the store thread runs the
			 * decision again on the state it then finds */
			struct store_req *w = malloc(sizeof(*w));

			if (w != NULL) {
				*w = *r;
				w->sw = NULL;
				if (!enqueue(ls, w))
					free(w); /* overloaded: another login will write it */
			}
		}
		r->rc = 0;
		store_req_done(r);
		return 0;
	}
	if (!enqueue(ls, r)) {
		*err_out = "the store is overloaded (queue full)";
		return -1;
	}
	return 0;
}

/* ---- synchronous ---------------------------------------------------------- */

/* Copies a record out while its read transaction holds the page: 0, or -1
 * when the record is unreadable. */
typedef int (*rec_copy_fn)(const MDB_val *v, void *out);

/* The record of key in dbi, copied by copy into out, in a read transaction
 * of its own; *found_out.  0, or -1 with *err_out (unreadable: what). */
static int
kv_read(struct lmdb_store *ls, MDB_dbi dbi, const char *key, size_t len, rec_copy_fn copy,
        void *out, const char *unreadable, bool *found_out, const char **err_out)
{
	MDB_val k = {.mv_size = len, .mv_data = (void *)key}, v;
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(ls->env, NULL, MDB_RDONLY, &txn)) != 0) {
		*err_out = lmdb_err(rc);
		return -1;
	}
	rc = mdb_get(txn, dbi, &k, &v);
	*found_out = rc == 0;
	if (rc == 0 && copy(&v, out) < 0) {
		mdb_txn_abort(txn);
		*err_out = unreadable;
		return -1;
	}
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		*err_out = lmdb_err(rc);
		return -1;
	}
	return 0;
}

static int
lock_copy(const MDB_val *v, void *out)
{
	return lock_decode(v, out);
}

static int
lmdb_lock_get(struct store *st, const char *key, size_t len, struct store_lock *out,
              bool *found_out, const char **err_out)
{
	struct lmdb_store *ls = (struct lmdb_store *)(void *)st;

	return kv_read(ls, ls->locks, key, len, lock_copy, out, "unreadable lock record", found_out,
	               err_out);
}

static int
lmdb_lock_put(struct store *st, const char *key, size_t len, const struct store_lock *rec,
              const char **err_out)
{
	struct lmdb_store *ls = (struct lmdb_store *)(void *)st;
	unsigned char buf[LOCK_REC_LEN];
	struct kv_op op = {.dbi = ls->locks,
	                   .k = {.mv_size = len, .mv_data = (void *)key},
	                   .v = {.mv_size = sizeof(buf), .mv_data = buf}};

	lock_encode(rec, buf);
	return kv_write(ls, &op, err_out);
}

static int
lmdb_lock_del(struct store *st, const char *key, size_t len, bool *found_out, const char **err_out)
{
	struct lmdb_store *ls = (struct lmdb_store *)(void *)st;
	struct kv_op op = {.dbi = ls->locks,
	                   .k = {.mv_size = len, .mv_data = (void *)key},
	                   .found_out = found_out};

	return kv_write(ls, &op, err_out);
}

static int
lmdb_lock_list(struct store *st, store_list_cb cb, void *arg, const char **err_out)
{
	struct lmdb_store *ls = (struct lmdb_store *)(void *)st;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_txn_begin(ls->env, NULL, MDB_RDONLY, &txn)) != 0) {
		*err_out = lmdb_err(rc);
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, ls->locks, &cur)) != 0) {
		mdb_txn_abort(txn);
		*err_out = lmdb_err(rc);
		return -1;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct store_lock l;

		if (lock_decode(&v, &l) < 0)
			continue; /* a record from elsewhere: not ours to show */
		if (cb(arg, k.mv_data, k.mv_size, &l) != 0)
			break;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		*err_out = lmdb_err(rc);
		return -1;
	}
	return 0;
}

/* ---- routes (admin commands) ---------------------------------------------- */

/* A route record: a backend name, 1 to STORE_BACKEND_MAX bytes; out has
 * room for STORE_BACKEND_MAX and the NUL. */
static int
route_copy(const MDB_val *v, void *out)
{
	char *o = out;

	if (v->mv_size == 0 || v->mv_size > STORE_BACKEND_MAX)
		return -1;
	memcpy(o, v->mv_data, v->mv_size);
	o[v->mv_size] = '\0';
	return 0;
}

static int
lmdb_route_get(struct store *st, const char *key, size_t len, char *out, bool *found_out,
               const char **err_out)
{
	struct lmdb_store *ls = (struct lmdb_store *)(void *)st;

	return kv_read(ls, ls->routes, key, len, route_copy, out, "unreadable route record",
	               found_out, err_out);
}

/* One write transaction: put (backend) or delete (NULL). */
static int
route_write(struct lmdb_store *ls, const char *key, size_t len, const char *backend,
            bool *found_out, const char **err_out)
{
	struct kv_op op = {.dbi = ls->routes,
	                   .k = {.mv_size = len, .mv_data = (void *)key},
	                   .found_out = found_out};

	if (backend != NULL) {
		op.v.mv_size = strlen(backend);
		op.v.mv_data = (void *)backend;
	}
	return kv_write(ls, &op, err_out);
}

static int
lmdb_route_put(struct store *st, const char *key, size_t len, const char *backend,
               const char **err_out)
{
	return route_write((struct lmdb_store *)(void *)st, key, len, backend, NULL, err_out);
}

static int
lmdb_route_del(struct store *st, const char *key, size_t len, bool *found_out, const char **err_out)
{
	return route_write((struct lmdb_store *)(void *)st, key, len, NULL, found_out, err_out);
}

/* ---- open and close ----------------------------------------------------- */

static void
lmdb_close(struct store *st)
{
	struct lmdb_store *ls = (struct lmdb_store *)(void *)st;

	pthread_mutex_lock(&ls->qmu);
	ls->stopping = true;
	pthread_cond_signal(&ls->qcond);
	pthread_mutex_unlock(&ls->qmu);
	if (ls->started)
		pthread_join(ls->thread, NULL); /* it empties the queue first */
	if (ls->env != NULL)
		mdb_env_close(ls->env);
	pthread_cond_destroy(&ls->qcond);
	pthread_mutex_destroy(&ls->qmu);
	free(ls->dir);
	free(ls);
}

static const struct store_ops lmdb_ops = {
    .name = "lmdb",
    .close = lmdb_close,
    .worker_open = lmdb_worker_open,
    .worker_close = lmdb_worker_close,
    .submit = lmdb_submit,
    .lock_get = lmdb_lock_get,
    .lock_put = lmdb_lock_put,
    .lock_del = lmdb_lock_del,
    .lock_list = lmdb_lock_list,
    .route_get = lmdb_route_get,
    .route_put = lmdb_route_put,
    .route_del = lmdb_route_del,
};

/* A new file's name is durable only once its directory is synced. */
static void
sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* The open's transaction: the two databases, made if missing. */
static int
open_dbis(struct lmdb_store *ls, MDB_txn *txn, void *arg)
{
	int rc;

	(void)arg;
	if ((rc = mdb_dbi_open(txn, "locks", MDB_CREATE, &ls->locks)) != 0)
		return rc;
	return mdb_dbi_open(txn, "routes", MDB_CREATE, &ls->routes);
}

struct store *
store_lmdb_open(const char *dir, int flags, const char **err_out)
{
	struct lmdb_store *ls;
	char data[4096];
	struct stat sb;
	bool made = false;
	int rc, dead = 0;

	if (*dir == '\0') {
		*err_out = "\"lmdb:\" needs a directory";
		return NULL;
	}
	if (stat(dir, &sb) < 0) {
		if (errno != ENOENT || !(flags & STORE_CREATE) || mkdir(dir, 0700) < 0) {
			*err_out = errno == ENOENT ? "the state directory does not exist"
			                           : lmdb_err(errno);
			return NULL;
		}
		made = true;
	} else if (!S_ISDIR(sb.st_mode)) {
		*err_out = "the state path is not a directory";
		return NULL;
	}
	/* without STORE_CREATE (admin commands) never make a store, which
	 * would be owned by whoever ran the command, not by the daemon */
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	if (!(flags & STORE_CREATE) && access(data, F_OK) != 0) {
		*err_out = "no store in the state directory yet (postern makes it when it starts)";
		return NULL;
	}
	if ((ls = calloc(1, sizeof(*ls))) == NULL || (ls->dir = strdup(dir)) == NULL) {
		free(ls);
		*err_out = "out of memory";
		return NULL;
	}
	ls->base.ops = &lmdb_ops;
	if (pthread_mutex_init(&ls->qmu, NULL) != 0 || pthread_cond_init(&ls->qcond, NULL) != 0) {
		free(ls->dir);
		free(ls);
		*err_out = "cannot make a mutex";
		return NULL;
	}
	if ((rc = mdb_env_create(&ls->env)) != 0) {
		ls->env = NULL;
		goto fail;
	}
	/* MDB_NOTLS: a read transaction belongs to its worker, not to a thread
	 * slot, so it can be reset and renewed; no MDB_NOSYNC, ever */
	if ((rc = mdb_env_set_maxdbs(ls->env, 4)) != 0 ||
	    (rc = mdb_env_set_maxreaders(ls->env, LMDB_MAXREADERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(ls->env, LMDB_MAPSIZE)) != 0 ||
	    (rc = mdb_env_open(ls->env, dir, MDB_NOTLS, 0600)) != 0)
		goto fail;
	/* slots of readers that died (a kill -9) would pin old pages forever */
	(void)mdb_reader_check(ls->env, &dead);
	if ((rc = write_txn(ls, open_dbis, NULL)) != 0)
		goto fail;
	if (made || (flags & STORE_CREATE))
		sync_dir(dir);
	return &ls->base;
fail:
	*err_out = lmdb_err(rc);
	log_kv(LOG_WARN, "store.error", "store=lmdb dir=\"%s\" op=open err=\"%s\"", dir,
	       mdb_strerror(rc));
	lmdb_close(&ls->base);
	return NULL;
}
