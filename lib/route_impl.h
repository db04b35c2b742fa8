/*
 * route_impl.h: the route table's insides, shared by route.c (rules,
 * lookups) and route_map.c (map files).  Private to those two files.
 */
#ifndef POSTERN_ROUTE_IMPL_H
#define POSTERN_ROUTE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route.h"

/*
 * Memory is what matters for a million-user map: a rule costs its key bytes
 * (NUL-terminated, back to back in one arena) plus one 12-byte slot in an
 * open-addressing index.  Pools are interned, so a million users sharing
 * three pools store three pools.
 */
struct rt_slot {
	uint32_t tag;  /* high half of the key's hash: picks the bucket, cheap compare */
	uint32_t ref;  /* key offset + 1 (users, domains) or pool id + 1; 0: empty */
	uint32_t pool; /* pool id (users, domains); unused in the pool index */
};

struct rt_map {
	struct rt_slot *slots; /* owned; NULL until the first insert */
	uint32_t mask;         /* capacity - 1; capacity is a power of two */
	uint32_t used;
};

struct rt_member {
	uint32_t backend; /* index into the table's names */
	uint32_t weight;  /* >= 1 */
};

struct rt_pool {
	uint32_t first; /* into members[] */
	uint32_t n;     /* 1..ROUTE_POOL_MAX */
	bool uniform;   /* all weights equal: rank by hash alone, no logarithm */
};

struct route_table {
	char *names;        /* owned: backend names, NUL-terminated, back to back */
	uint32_t *name_off; /* owned: [nbackends] */
	uint32_t *name_len; /* owned: [nbackends] */
	size_t nbackends;

	char *keys; /* owned: normalised user and domain keys */
	size_t keys_len, keys_cap;
	struct rt_map users, domains;

	struct rt_member *members; /* owned: the pools' members, pool after pool */
	size_t nmembers, members_cap;
	struct rt_pool *pools; /* owned */
	size_t npools, pools_cap;
	struct rt_map pool_index; /* interning: identical pools are stored once */
	uint32_t default_pool;    /* pool id + 1; 0: no default rule */
};

/* The 64-bit hash of a key (unkeyed on purpose: see route.c). */
uint64_t rt_key_hash(const void *key, size_t len);

/* Does the entry ref refer to key[0..len)?  One per kind of index. */
typedef bool (*rt_eq_cb)(const struct route_table *rt, uint32_t ref, const void *key, size_t len);

/* rt_eq_cb for the user and domain indices. */
bool rt_key_eq(const struct route_table *rt, uint32_t ref, const void *key, size_t len);

/* The slot holding key (hash tag), or the empty slot where it would go;
 * NULL while the map is empty.  Borrowed: an insert may move the slots. */
struct rt_slot *rt_map_find(const struct route_table *rt, const struct rt_map *m, uint32_t tag,
                            const void *key, size_t len, rt_eq_cb eq);

/* Make room for need elements of size elem in *p (capacity *cap); doubles.
 * Returns 0, or -1 with *p untouched. */
int rt_grow(void **p, size_t *cap, size_t need, size_t elem);

/* Add a rule for key (normalised here) to map (rt->users or rt->domains).
 * Returns 0, or -1 with *err_out static text; rt is unchanged then. */
int rt_add_rule(struct route_table *rt, struct rt_map *map, bool domain, const char *key,
                const size_t *pool, const uint32_t *weights, size_t n, const char **err_out);

#endif
