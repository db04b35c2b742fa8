/*
 * route.c: user -> backend.  Owns the rule tables (exact user, domain,
 * default) and the rendezvous ranking of a pool.  Pure: no I/O, no clock, no
 * globals, no floating point; the config builds a table once, lookups only read.
 * Map files (the one part that reads a file) are in route_map.c.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "hash.h"
#include "route.h"
#include "route_impl.h"

/*
 * The hash: FNV-1a over the bytes, then the splitmix64 finaliser (Stafford's
 * Mix13).  FNV-1a alone mixes its last bytes poorly, and rendezvous compares
 * hashes that differ only in a backend name's last character ("mx1", "mx2"),
 * so the finaliser's full avalanche is what makes the rankings independent.
 * Unkeyed on purpose: every proxy in a fleet must rank alike, and only the
 * config inserts keys, so a client cannot flood the index.
 * Changing this function moves every user: route_hash_is_pinned tests it.
 */
uint64_t
route_hash(const char *user, size_t user_len, const char *backend, size_t backend_len)
{
	uint64_t h;

	/* A NUL between the two keeps (user, name) pairs apart: backend names
	 * never contain one, so the last NUL always splits the input alike. */
	h = hash_fnv1a(HASH_FNV64_OFFSET, user, user_len);
	h = hash_fnv1a(h, "", 1);
	h = hash_fnv1a(h, backend, backend_len);
	return hash_mix64(h);
}

uint64_t
rt_key_hash(const void *key, size_t len)
{
	return hash_mix64(hash_fnv1a(HASH_FNV64_OFFSET, key, len));
}

/*
 * -log2(u) for u = (h | 1) / 2^64 in (0, 1), in fixed point with 56
 * fraction bits, by the bit-by-bit squaring method.  Integer arithmetic on
 * purpose: a weighted rank must not depend on the libm or the FPU flags of
 * the machine, or two proxies behind one load balancer could disagree about
 * a user's home.  Result in (0, 64 * 2^56] = (0, 2^62].
 */
#define NEGLOG_FRAC 56

static uint64_t
neglog2_fixed(uint64_t h)
{
	uint64_t x = h | 1, m, frac = 0;
	int lz = __builtin_clzll(x);
	int n = 63 - lz; /* integer part of log2(x) */

	m = x << lz; /* mantissa in [1, 2) as Q1.63 */
	for (int i = 0; i < NEGLOG_FRAC; i++) {
		unsigned __int128 sq = (unsigned __int128)m * m; /* Q2.126 */

		frac <<= 1;
		if (sq >> 127) { /* m^2 >= 2: this bit of the logarithm is 1 */
			frac |= 1;
			m = (uint64_t)(sq >> 64);
		} else {
			m = (uint64_t)(sq >> 63);
		}
	}
	/* -log2(u) = 64 - log2(x) = (64 - n) - 0.frac */
	return ((uint64_t)(64 - n) << NEGLOG_FRAC) - frac;
}

static bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Make room for need elements of size elem in *p; doubles. 0 or -1. */
int
rt_grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return -1;
		ncap *= 2;
	}
	if ((np = realloc(*p, ncap * elem)) == NULL)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

bool
rt_key_eq(const struct route_table *rt, uint32_t ref, const void *key, size_t len)
{
	const char *k = rt->keys + (ref - 1);

	return memcmp(k, key, len) == 0 && k[len] == '\0';
}

static bool
pool_eq(const struct route_table *rt, uint32_t ref, const void *key, size_t len)
{
	const struct rt_pool *p = &rt->pools[ref - 1];

	return p->n * sizeof(struct rt_member) == len &&
	       memcmp(&rt->members[p->first], key, len) == 0;
}

/*
 * The slot holding key, or the empty slot where it would go; NULL while the
 * map is empty.  Linear probing: the map is at most 3/4 full, so it ends.
 */
struct rt_slot *
rt_map_find(const struct route_table *rt, const struct rt_map *m, uint32_t tag, const void *key,
            size_t len, rt_eq_cb eq)
{
	if (m->slots == NULL)
		return NULL;
	for (uint32_t i = tag & m->mask;; i = (i + 1) & m->mask) {
		struct rt_slot *s = &m->slots[i];

		if (s->ref == 0 || (s->tag == tag && eq(rt, s->ref, key, len)))
			return s;
	}
}

/* Make room for one more entry; rehashing needs only the stored tags. */
static int
map_reserve(struct rt_map *m)
{
	uint64_t cap = m->slots ? (uint64_t)m->mask + 1 : 0, ncap;
	struct rt_slot *ns;

	if ((uint64_t)(m->used + 1) * 4 <= cap * 3)
		return 0;
	ncap = cap ? cap * 2 : 64;
	if (ncap > (uint64_t)1 << 31)
		return -1;
	if ((ns = calloc(ncap, sizeof(*ns))) == NULL)
		return -1;
	for (uint64_t i = 0; i < cap; i++) {
		const struct rt_slot *s = &m->slots[i];
		uint32_t j;

		if (s->ref == 0)
			continue;
		for (j = s->tag & (uint32_t)(ncap - 1); ns[j].ref != 0; j = (j + 1) & (ncap - 1))
			;
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->mask = (uint32_t)(ncap - 1);
	return 0;
}

static void
map_free(struct rt_map *m)
{
	free(m->slots);
	m->slots = NULL;
	m->mask = m->used = 0;
}

struct route_table *
route_table_new(const char *const *names, size_t nbackends)
{
	struct route_table *rt;
	size_t total = 0, off = 0;

	if (nbackends > UINT32_MAX)
		return NULL;
	for (size_t i = 0; i < nbackends; i++) {
		if (names[i] == NULL)
			return NULL;
		total += strlen(names[i]) + 1;
	}
	if (total > UINT32_MAX)
		return NULL;
	if ((rt = calloc(1, sizeof(*rt))) == NULL)
		return NULL;
	rt->names = malloc(total ? total : 1);
	rt->name_off = calloc(nbackends ? nbackends : 1, sizeof(*rt->name_off));
	rt->name_len = calloc(nbackends ? nbackends : 1, sizeof(*rt->name_len));
	if (rt->names == NULL || rt->name_off == NULL || rt->name_len == NULL)
		goto fail;
	for (size_t i = 0; i < nbackends; i++) {
		size_t len = strlen(names[i]);

		memcpy(rt->names + off, names[i], len + 1);
		rt->name_off[i] = (uint32_t)off;
		rt->name_len[i] = (uint32_t)len;
		off += len + 1;
	}
	rt->nbackends = nbackends;
	return rt;
fail:
	route_table_free(&rt);
	return NULL;
}

void
route_table_free(struct route_table **rtp)
{
	struct route_table *rt = *rtp;

	if (rt == NULL)
		return;
	free(rt->names);
	free(rt->name_off);
	free(rt->name_len);
	free(rt->keys);
	map_free(&rt->users);
	map_free(&rt->domains);
	map_free(&rt->pool_index);
	free(rt->members);
	free(rt->pools);
	free(rt);
	*rtp = NULL;
}

/*
 * Check a pool and write it in canonical form (sorted by backend index) to
 * m, so the same pool written in another order is interned once: the rank
 * never depends on the order anyway.  0 or -1 with *err_out.
 */
static int
pool_canon(const struct route_table *rt, const size_t *pool, const uint32_t *weights, size_t n,
           struct rt_member *m, const char **err_out)
{
	if (n == 0) {
		*err_out = "empty pool";
		return -1;
	}
	if (n > ROUTE_POOL_MAX) {
		*err_out = "too many backends in one pool";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct rt_member cur;
		size_t j = i;

		if (pool[i] >= rt->nbackends) {
			*err_out = "backend index out of range";
			return -1;
		}
		if (weights != NULL && weights[i] == 0) {
			*err_out = "a weight must be at least 1";
			return -1;
		}
		cur.backend = (uint32_t)pool[i];
		cur.weight = weights ? weights[i] : 1;
		/* insertion sort: n <= ROUTE_POOL_MAX */
		while (j > 0 && m[j - 1].backend > cur.backend) {
			m[j] = m[j - 1];
			j--;
		}
		if (j > 0 && m[j - 1].backend == cur.backend) {
			*err_out = "a backend appears twice in one pool";
			return -1;
		}
		m[j] = cur;
	}
	return 0;
}

/* The id of pool m[0..n), added if new; -1 on allocation failure. */
static int64_t
pool_intern(struct route_table *rt, const struct rt_member *m, size_t n)
{
	size_t bytes = n * sizeof(*m);
	uint32_t tag = (uint32_t)(rt_key_hash(m, bytes) >> 32);
	struct rt_slot *s = rt_map_find(rt, &rt->pool_index, tag, m, bytes, pool_eq);
	struct rt_pool *p;

	if (s != NULL && s->ref != 0)
		return s->ref - 1;
	if (rt->npools >= UINT32_MAX - 1 || rt->nmembers + n > UINT32_MAX)
		return -1;
	if (map_reserve(&rt->pool_index) < 0 ||
	    rt_grow((void **)&rt->pools, &rt->pools_cap, rt->npools + 1, sizeof(*rt->pools)) < 0 ||
	    rt_grow((void **)&rt->members, &rt->members_cap, rt->nmembers + n, sizeof(*m)) < 0)
		return -1;
	memcpy(&rt->members[rt->nmembers], m, bytes);
	p = &rt->pools[rt->npools];
	p->first = (uint32_t)rt->nmembers;
	p->n = (uint32_t)n;
	p->uniform = true;
	for (size_t i = 1; i < n; i++)
		if (m[i].weight != m[0].weight)
			p->uniform = false;
	rt->nmembers += n;
	rt->npools++;
	/* the reserve may have moved the slots: look again */
	s = rt_map_find(rt, &rt->pool_index, tag, m, bytes, pool_eq);
	s->tag = tag;
	s->ref = (uint32_t)rt->npools;
	rt->pool_index.used++;
	return (int64_t)rt->npools - 1;
}

int
rt_add_rule(struct route_table *rt, struct rt_map *map, bool domain, const char *key,
            const size_t *pool, const uint32_t *weights, size_t n, const char **err_out)
{
	char k[ROUTE_USER_MAX];
	struct rt_member m[ROUTE_POOL_MAX];
	size_t len = account_key_normalize(key, strlen(key), k, sizeof(k));
	uint32_t tag;
	struct rt_slot *s;
	int64_t id;

	if (len == 0) {
		*err_out = domain ? "empty or over-long domain" : "empty or over-long user name";
		return -1;
	}
	/* lookups take the domain after the last '@': such a rule never matches */
	if (domain && memchr(k, '@', len) != NULL) {
		*err_out = "a domain cannot contain '@'";
		return -1;
	}
	if (pool_canon(rt, pool, weights, n, m, err_out) < 0)
		return -1;
	tag = (uint32_t)(rt_key_hash(k, len) >> 32);
	s = rt_map_find(rt, map, tag, k, len, rt_key_eq);
	if (s != NULL && s->ref != 0) {
		*err_out = domain ? "a rule for this domain already exists"
		                  : "a rule for this user already exists";
		return -1;
	}
	if (rt->keys_len + len + 1 >= UINT32_MAX || map_reserve(map) < 0 ||
	    rt_grow((void **)&rt->keys, &rt->keys_cap, rt->keys_len + len + 1, 1) < 0 ||
	    (id = pool_intern(rt, m, n)) < 0) {
		*err_out = "out of memory";
		return -1;
	}
	memcpy(rt->keys + rt->keys_len, k, len + 1);
	s = rt_map_find(rt, map, tag, k, len, rt_key_eq);
	s->tag = tag;
	s->ref = (uint32_t)rt->keys_len + 1;
	s->pool = (uint32_t)id;
	rt->keys_len += len + 1;
	map->used++;
	return 0;
}

int
route_add_user(struct route_table *rt, const char *user, const size_t *pool,
               const uint32_t *weights, size_t n, const char **err_out)
{
	return rt_add_rule(rt, &rt->users, false, user, pool, weights, n, err_out);
}

int
route_add_domain(struct route_table *rt, const char *domain, const size_t *pool,
                 const uint32_t *weights, size_t n, const char **err_out)
{
	return rt_add_rule(rt, &rt->domains, true, domain, pool, weights, n, err_out);
}

int
route_set_default(struct route_table *rt, const size_t *pool, const uint32_t *weights, size_t n,
                  const char **err_out)
{
	struct rt_member m[ROUTE_POOL_MAX];
	int64_t id;

	if (rt->default_pool != 0) {
		*err_out = "a default rule already exists";
		return -1;
	}
	if (pool_canon(rt, pool, weights, n, m, err_out) < 0)
		return -1;
	if ((id = pool_intern(rt, m, n)) < 0) {
		*err_out = "out of memory";
		return -1;
	}
	rt->default_pool = (uint32_t)id + 1;
	return 0;
}

/* The pool of the rule for key in map, or -1. */
static int64_t
rule_find(const struct route_table *rt, const struct rt_map *map, const char *key, size_t len)
{
	uint32_t tag = (uint32_t)(rt_key_hash(key, len) >> 32);
	const struct rt_slot *s = rt_map_find(rt, map, tag, key, len, rt_key_eq);

	return (s != NULL && s->ref != 0) ? (int64_t)s->pool : -1;
}

struct rt_cand {
	uint32_t backend;
	uint32_t weight;
	uint64_t h;    /* route_hash(user, name) */
	uint64_t nlog; /* -log2(u) in fixed point; only for weighted pools */
};

/* Is a a better home than b?  Highest score first; ties by hash, then name. */
static bool
cand_better(const struct route_table *rt, const struct rt_cand *a, const struct rt_cand *b,
            bool uniform)
{
	if (!uniform) {
		/* score = w / -ln(u); the base of the logarithm cancels, so
		 * compare w_a * L_b with w_b * L_a (L > 0) without dividing. */
		unsigned __int128 sa = (unsigned __int128)a->weight * b->nlog;
		unsigned __int128 sb = (unsigned __int128)b->weight * a->nlog;

		if (sa != sb)
			return sa > sb;
	}
	/* Equal weights: -w/ln(u) grows with u, so the hash alone ranks. */
	if (a->h != b->h)
		return a->h > b->h;
	return strcmp(rt->names + rt->name_off[a->backend], rt->names + rt->name_off[b->backend]) <
	       0;
}

size_t
route_lookup(const struct route_table *rt, const char *key, size_t len, size_t *out, size_t max)
{
	struct rt_cand c[ROUTE_POOL_MAX];
	const struct rt_pool *p;
	const char *u = key, *at;
	int64_t id;

	/* No rule's key is as long (they fit ROUTE_USER_MAX with their NUL) or
	 * starts with white space (account_key() of a blank name). */
	if (len == 0 || len >= ROUTE_USER_MAX || is_space((unsigned char)key[0]) || max == 0)
		return 0;
	id = rule_find(rt, &rt->users, u, len);
	for (at = u + len; at > u && at[-1] != '@'; at--)
		; /* at: just after the last '@', or u when there is none */
	if (id < 0 && at > u && at < u + len)
		id = rule_find(rt, &rt->domains, at, (size_t)(u + len - at));
	if (id < 0 && rt->default_pool != 0)
		id = (int64_t)rt->default_pool - 1;
	if (id < 0)
		return 0;
	p = &rt->pools[id];

	/* Rendezvous: every backend of the pool gets a score from (user, its
	 * name); the ranking is the user's home and then its failover order.
	 * Removing a backend leaves everybody else's ranking as it was. */
	for (uint32_t i = 0; i < p->n; i++) {
		const struct rt_member *m = &rt->members[p->first + i];
		struct rt_cand cur;
		size_t j = i;

		cur.backend = m->backend;
		cur.weight = m->weight;
		cur.h = route_hash(u, len, rt->names + rt->name_off[m->backend],
		                   rt->name_len[m->backend]);
		cur.nlog = p->uniform ? 0 : neglog2_fixed(cur.h);
		while (j > 0 && cand_better(rt, &cur, &c[j - 1], p->uniform)) {
			c[j] = c[j - 1];
			j--;
		}
		c[j] = cur;
	}
	if (max > p->n)
		max = p->n;
	for (size_t i = 0; i < max; i++)
		out[i] = c[i].backend;
	return max;
}
