/*
 * conn_index.c: the worker's indexes of its conns by name (conn_index.h):
 * seeded FNV-1a chains with O(1) removal, doubled when they hold more than
 * half as many conns as buckets.  Reads no conn field but the link; never
 * logs, never fails a conn.
 */
#include <stdlib.h>

#include "conn_index.h"
#include "hash.h"

#define CONN_INDEX_BUCKETS0 256 /* to start with; doubled as conns come */

static inline struct conn_index_link *
link_of(const struct conn_index *ix, const struct conn *c)
{
	return (struct conn_index_link *)((char *)c + ix->link_off);
}

static uint64_t
name_hash(const struct conn_index *ix, const char *name)
{
	uint64_t h = HASH_FNV64_OFFSET ^ ix->seed;

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		/* strcasecmp() in the C locale folds ASCII only: so does this. */
		unsigned char ch =
		    ix->fold && *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
		h ^= ch;
		h *= HASH_FNV64_PRIME;
	}
	return hash_mix64(h);
}

int
conn_index_init(struct conn_index *ix, size_t link_off, bool fold, uint64_t seed)
{
	ix->bucket = calloc(CONN_INDEX_BUCKETS0, sizeof(*ix->bucket));
	if (ix->bucket == NULL)
		return -1;
	ix->mask = CONN_INDEX_BUCKETS0 - 1;
	ix->count = 0;
	ix->link_off = link_off;
	ix->fold = fold;
	ix->seed = seed;
	return 0;
}

void
conn_index_deinit(struct conn_index *ix)
{
	free(ix->bucket);
	ix->bucket = NULL;
	ix->mask = 0;
	ix->count = 0;
}

static void
chain_push(struct conn_index *ix, struct conn **head, struct conn *c)
{
	struct conn_index_link *l = link_of(ix, c);

	l->next = *head;
	if (*head != NULL)
		link_of(ix, *head)->pprev = &l->next;
	l->pprev = head;
	*head = c;
}

/* Twice the buckets, every conn refiled: amortised O(1) a conn. */
static void
grow(struct conn_index *ix)
{
	size_t n = (ix->mask + 1) * 2;
	struct conn **nb;

	if (n > SIZE_MAX / sizeof(*nb) || (nb = calloc(n, sizeof(*nb))) == NULL)
		return; /* longer chains, still right */
	for (size_t i = 0; i <= ix->mask; i++) {
		struct conn *c = ix->bucket[i], *next;

		for (; c != NULL; c = next) {
			struct conn_index_link *l = link_of(ix, c);
			next = l->next;
			chain_push(ix, &nb[l->hash & (n - 1)], c);
		}
	}
	free(ix->bucket);
	ix->bucket = nb;
	ix->mask = n - 1;
}

void
conn_index_remove(struct conn_index *ix, struct conn *c)
{
	struct conn_index_link *l = link_of(ix, c);

	if (l->pprev == NULL)
		return;
	*l->pprev = l->next;
	if (l->next != NULL)
		link_of(ix, l->next)->pprev = l->pprev;
	l->next = NULL;
	l->pprev = NULL;
	ix->count--;
}

void
conn_index_set(struct conn_index *ix, struct conn *c, const char *name)
{
	struct conn_index_link *l = link_of(ix, c);
	uint64_t h;

	if (name == NULL || name[0] == '\0') {
		conn_index_remove(ix, c);
		return;
	}
	h = name_hash(ix, name);
	if (l->pprev != NULL && l->hash == h)
		return; /* filed in that chain already */
	conn_index_remove(ix, c);
	if (ix->count >= (ix->mask + 1) / 2)
		grow(ix);
	l->hash = h;
	chain_push(ix, &ix->bucket[h & ix->mask], c);
	ix->count++;
}

struct conn *
conn_index_first(const struct conn_index *ix, const char *name)
{
	if (ix->bucket == NULL || name == NULL || name[0] == '\0')
		return NULL;
	return ix->bucket[name_hash(ix, name) & ix->mask];
}

struct conn *
conn_index_next(const struct conn_index *ix, const struct conn *c)
{
	return link_of(ix, c)->next;
}
