/*
 * lookup_cache.c: a worker's cache of lookup answers (route answers for
 * cache_ttl, "no such user" for negative_ttl), no locks: only its worker
 * touches it.  Bounded (LOOKUP_CACHE_MAX); the oldest entry makes room.
 * Never holds a password: only answers without one are put here, and
 * only the routing fields are kept.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "hash.h"
#include "lookup_impl.h"

#define CACHE_BUCKETS 1024 /* chains stay short: at most LOOKUP_CACHE_MAX entries */

/* What a cached answer keeps: the routing, never the rewrite password. */
struct cache_entry {
	struct cache_entry *chain;         /* the bucket's next */
	struct cache_entry *older, *newer; /* the age list */
	uint64_t hash, expires_ms;
	enum lookup_status status;
	char backend[LOOKUP_NAME_MAX + 1];
	char server[LOOKUP_SERVER_MAX + 1];
	uint16_t port;
	char user[LOOKUP_USER_MAX + 1];
	size_t user_len;
	bool has_user;
	int tls;
	size_t klen;
	char key[]; /* klen bytes */
};

struct lookup_cache {
	struct cache_entry *bucket[CACHE_BUCKETS];
	struct cache_entry *oldest, *newest;
	size_t n;
	uint64_t seed; /* random: where a key lands is not known in advance */
};

struct lookup_cache *
lookup_cache_new(void)
{
	struct lookup_cache *c = calloc(1, sizeof(*c));

	if (c != NULL && RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1)
		c->seed = (uint64_t)(uintptr_t)c;
	return c;
}

static void
entry_drop(struct lookup_cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->bucket[e->hash % CACHE_BUCKETS];

	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->n--;
	free(e);
}

void
lookup_cache_free(struct lookup_cache **cp)
{
	struct lookup_cache *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	while (c->oldest != NULL)
		entry_drop(c, c->oldest);
	free(c);
}

size_t
lookup_cache_key(char *key, size_t cap, const char *url, enum lookup_protocol protocol,
                 const struct lookup_query *q)
{
	size_t ul = strlen(url), need = ul + 3 + q->user_len;

	if (need > cap)
		return 0;
	/* url NUL protocol proto user: no two questions share one */
	memcpy(key, url, ul + 1);
	key[ul + 1] = (char)('0' + protocol);
	key[ul + 2] = (char)('0' + q->proto);
	memcpy(key + ul + 3, q->user, q->user_len);
	return need;
}

static struct cache_entry *
entry_find(struct lookup_cache *c, uint64_t h, const char *key, size_t len)
{
	for (struct cache_entry *e = c->bucket[h % CACHE_BUCKETS]; e != NULL; e = e->chain)
		if (e->hash == h && e->klen == len && memcmp(e->key, key, len) == 0)
			return e;
	return NULL;
}

static uint64_t
key_hash(const struct lookup_cache *c, const char *key, size_t len)
{
	return hash_mix64(hash_fnv1a(HASH_FNV64_OFFSET ^ c->seed, key, len));
}

bool
lookup_cache_get(struct lookup_cache *c, const char *key, size_t len, uint64_t now_ms,
                 struct lookup_answer *a_out)
{
	struct cache_entry *e;

	if (c == NULL || len == 0 || (e = entry_find(c, key_hash(c, key, len), key, len)) == NULL)
		return false;
	if (now_ms >= e->expires_ms) {
		entry_drop(c, e);
		return false;
	}
	lookup_answer_init(a_out);
	a_out->status = e->status;
	a_out->why[0] = '\0';
	memcpy(a_out->backend, e->backend, sizeof(a_out->backend));
	memcpy(a_out->server, e->server, sizeof(a_out->server));
	a_out->port = e->port;
	memcpy(a_out->user, e->user, sizeof(a_out->user));
	a_out->user_len = e->user_len;
	a_out->has_user = e->has_user;
	a_out->tls = e->tls;
	return true;
}

void
lookup_cache_put(struct lookup_cache *c, const char *key, size_t len, const struct lookup_answer *a,
                 uint64_t now_ms, uint64_t ttl_ms)
{
	uint64_t h;
	struct cache_entry *e, **bp;

	if (c == NULL || len == 0 || ttl_ms == 0 || a->has_pass)
		return;
	h = key_hash(c, key, len);
	if ((e = entry_find(c, h, key, len)) != NULL)
		entry_drop(c, e);
	/* expired ones first in line: the age list is nearly expiry order */
	while (c->oldest != NULL && (c->n >= LOOKUP_CACHE_MAX || c->oldest->expires_ms <= now_ms))
		entry_drop(c, c->oldest);
	if ((e = calloc(1, sizeof(*e) + len)) == NULL)
		return;
	e->hash = h;
	e->expires_ms = now_ms + ttl_ms;
	e->status = a->status;
	memcpy(e->backend, a->backend, sizeof(e->backend));
	memcpy(e->server, a->server, sizeof(e->server));
	e->port = a->port;
	memcpy(e->user, a->user, sizeof(e->user));
	e->user_len = a->user_len;
	e->has_user = a->has_user;
	e->tls = a->tls;
	e->klen = len;
	memcpy(e->key, key, len);
	bp = &c->bucket[h % CACHE_BUCKETS];
	e->chain = *bp;
	*bp = e;
	e->older = c->newest;
	if (c->newest != NULL)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->n++;
}
