/*
 * conn_index.h: a worker's index of its conns by a name (the user, the
 * backend): a hash table of intrusive chains, so that the admin's
 * `sessions --user U` or `kick --user U` visits U's conns, not all of
 * them.  Touched only on its worker's thread; the links live in the conn,
 * nothing is allocated per conn but the bucket array's growth.
 */
#ifndef POSTERN_CONN_INDEX_H
#define POSTERN_CONN_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* Embedded in a conn, one per index. */
struct conn_index_link {
	struct conn *next;   /* borrowed: the next in the same bucket */
	struct conn **pprev; /* what points at this conn; NULL: not in the index */
	uint64_t hash;       /* of the name it is filed under */
};

struct conn_index {
	struct conn **bucket; /* owned: mask + 1 chains */
	size_t mask;
	size_t count;    /* conns filed */
	size_t link_off; /* offsetof(struct conn, <its struct conn_index_link>) */
	bool fold;       /* names compare ASCII case-insensitively (strcasecmp) */
	uint64_t seed;   /* random per index: names a client picks spread */
};

/* Set ix up empty, for the link at link_off in a conn; names compared
 * case-insensitively when fold.  -1 when out of memory. */
int conn_index_init(struct conn_index *ix, size_t link_off, bool fold, uint64_t seed);
/* Free the buckets (the conns are not touched). */
void conn_index_deinit(struct conn_index *ix);

/* File c under name (NULL or "": c leaves the index), moving it if it was
 * filed under another name.  Never fails: when the buckets cannot grow,
 * the chains get longer. */
void conn_index_set(struct conn_index *ix, struct conn *c, const char *name);
/* Take c out of ix (if it is in). */
void conn_index_remove(struct conn_index *ix, struct conn *c);

/* The chain that holds every conn filed under name (and maybe a few filed
 * under names hashing alike: the caller compares the names itself):
 * the first, then conn_index_next() to NULL.  A caller that may remove
 * the conn it holds asks for the next one first. */
struct conn *conn_index_first(const struct conn_index *ix, const char *name);
struct conn *conn_index_next(const struct conn_index *ix, const struct conn *c);

#endif
