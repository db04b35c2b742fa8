/*
 * store_mem.c: the store in memory, for unit tests only: nothing survives
 * the process.  One mutex makes each request atomic; entries are bounded
 * ("mem:N", default 65536), and a full store refuses new keys.  Answers go
 * through the same mailbox as the LMDB store's, so tests see the real
 * asynchronous contract.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

#define MEM_DEFAULT_MAX 65536

struct mem_entry {
	struct mem_entry *next; /* sorted by key bytes, as LMDB walks */
	struct store_lock lock;
	size_t klen;
	char key[STORE_KEY_MAX];
};

struct mem_store {
	struct store base;
	pthread_mutex_t mu; /* guards the list */
	struct mem_entry *head;
	size_t n, max;
};

static int
key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c != 0 ? c : al < bl ? -1 : al > bl;
}

/* The link that points at key's entry, or where it would go. */
static struct mem_entry **
slot(struct mem_store *ms, const char *key, size_t len)
{
	struct mem_entry **pp = &ms->head;

	for (; *pp != NULL; pp = &(*pp)->next)
		if (key_cmp((*pp)->key, (*pp)->klen, key, len) >= 0)
			break;
	return pp;
}

static struct mem_entry *
get(struct mem_store *ms, const char *key, size_t len, struct mem_entry ***pp_out)
{
	struct mem_entry **pp = slot(ms, key, len);

	*pp_out = pp;
	if (*pp != NULL && (*pp)->klen == len && memcmp((*pp)->key, key, len) == 0)
		return *pp;
	return NULL;
}

static int
add(struct mem_store *ms, struct mem_entry **pp, const char *key, size_t len,
    struct mem_entry **e_out, const char **err_out)
{
	struct mem_entry *e;

	if (ms->n >= ms->max) {
		*err_out = "the store is full";
		return -1;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		*err_out = "out of memory";
		return -1;
	}
	memcpy(e->key, key, len);
	e->klen = len;
	e->next = *pp;
	*pp = e;
	ms->n++;
	*e_out = e;
	return 0;
}

static void
del(struct mem_store *ms, struct mem_entry **pp)
{
	struct mem_entry *e = *pp;

	*pp = e->next;
	free(e);
	ms->n--;
}

/* Under ms->mu: a claim, as one step. */
static void
apply_claim(struct mem_store *ms, struct store_req *r)
{
	struct mem_entry **pp, *e = get(ms, r->key, r->key_len, &pp);
	enum store_claim_outcome o;

	r->rc = 0;
	o = store_claim_decide(&r->claim, e ? &e->lock : NULL, &r->claim_ans.lock);
	r->claim_ans.outcome = o;
	if (o == STORE_CLAIM_HELD || o == STORE_CLAIM_OTHER)
		return;
	if (e == NULL && add(ms, pp, r->key, r->key_len, &e, &r->err) < 0) {
		r->rc = -1;
		return;
	}
	e->lock = r->claim_ans.lock;
}

static int
mem_submit(struct store_req *r, const char **err_out)
{
	struct mem_store *ms = (struct mem_store *)(void *)r->sw->st;

	if (r->op != STORE_OP_CLAIM) {
		*err_out = "not supported by the memory store";
		return -1;
	}
	pthread_mutex_lock(&ms->mu);
	apply_claim(ms, r);
	pthread_mutex_unlock(&ms->mu);
	store_req_done(r); /* delivered on the loop's next turn, not now */
	return 0;
}

static int
mem_worker_open(struct store_worker *sw, const char **err_out)
{
	(void)sw;
	(void)err_out;
	return 0;
}

static void
mem_worker_close(struct store_worker *sw)
{
	(void)sw;
}

static int
mem_lock_get(struct store *st, const char *key, size_t len, struct store_lock *out, bool *found_out,
             const char **err_out)
{
	struct mem_store *ms = (struct mem_store *)(void *)st;
	struct mem_entry **pp, *e;

	(void)err_out;
	pthread_mutex_lock(&ms->mu);
	if ((e = get(ms, key, len, &pp)) != NULL)
		*out = e->lock;
	*found_out = e != NULL;
	pthread_mutex_unlock(&ms->mu);
	return 0;
}

static int
mem_lock_put(struct store *st, const char *key, size_t len, const struct store_lock *rec,
             const char **err_out)
{
	struct mem_store *ms = (struct mem_store *)(void *)st;
	struct mem_entry **pp, *e;
	int rc = 0;

	pthread_mutex_lock(&ms->mu);
	if ((e = get(ms, key, len, &pp)) == NULL)
		rc = add(ms, pp, key, len, &e, err_out);
	if (rc == 0)
		e->lock = *rec;
	pthread_mutex_unlock(&ms->mu);
	return rc;
}

static int
mem_lock_del(struct store *st, const char *key, size_t len, bool *found_out, const char **err_out)
{
	struct mem_store *ms = (struct mem_store *)(void *)st;
	struct mem_entry **pp, *e;

	(void)err_out;
	pthread_mutex_lock(&ms->mu);
	if ((e = get(ms, key, len, &pp)) != NULL)
		del(ms, pp);
	*found_out = e != NULL;
	pthread_mutex_unlock(&ms->mu);
	return 0;
}

static int
mem_lock_list(struct store *st, store_list_cb cb, void *arg, const char **err_out)
{
	struct mem_store *ms = (struct mem_store *)(void *)st;

	(void)err_out;
	/* the callback runs under the lock: it must not call back into the store */
	pthread_mutex_lock(&ms->mu);
	for (struct mem_entry *e = ms->head; e != NULL; e = e->next)
		if (cb(arg, e->key, e->klen, &e->lock) != 0)
			break;
	pthread_mutex_unlock(&ms->mu);
	return 0;
}

static void
mem_close(struct store *st)
{
	struct mem_store *ms = (struct mem_store *)(void *)st;
	struct mem_entry *e, *next;

	for (e = ms->head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	pthread_mutex_destroy(&ms->mu);
	free(ms);
}

static const struct store_ops mem_ops = {
    .name = "mem",
    .close = mem_close,
    .worker_open = mem_worker_open,
    .worker_close = mem_worker_close,
    .submit = mem_submit,
    .lock_get = mem_lock_get,
    .lock_put = mem_lock_put,
    .lock_del = mem_lock_del,
    .lock_list = mem_lock_list,
};

struct store *
store_mem_open(const char *arg, const char **err_out)
{
	struct mem_store *ms;
	size_t max = MEM_DEFAULT_MAX;

	if (*arg != '\0') {
		char *end;
		unsigned long long v = strtoull(arg, &end, 10);

		if (*end != '\0' || v == 0 || v > (1u << 24)) {
			*err_out = "\"mem:N\" needs N in 1..16777216";
			return NULL;
		}
		max = (size_t)v;
	}
	if ((ms = calloc(1, sizeof(*ms))) == NULL) {
		*err_out = "out of memory";
		return NULL;
	}
	if (pthread_mutex_init(&ms->mu, NULL) != 0) {
		free(ms);
		*err_out = "cannot make a mutex";
		return NULL;
	}
	ms->base.ops = &mem_ops;
	ms->max = max;
	return &ms->base;
}
