/*
 * route.h: user -> backend.  Pure code: rules (exact user, domain, default),
 * each naming one backend or a pool, and rendezvous (highest-random-weight)
 * hashing within a pool, so a user always lands on the same backend and
 * removing one backend moves only its own users.  No I/O, no clock.  Map
 * files of per-user and per-domain rules: route_map.h (included here).
 */
#ifndef POSTERN_ROUTE_H
#define POSTERN_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "account.h"

#define ROUTE_POOL_MAX 64              /* backends in one pool */
#define ROUTE_USER_MAX ACCOUNT_KEY_MAX /* an account key (account.h) */

struct route_table; /* opaque */

#include "route_map.h" /* route_map_load(): map files into a table */

/*
 * A table over nbackends backends whose stable names are names[i]: the
 * hash uses the name, never the index, so reordering the config moves no
 * user.  Copies the names.  Returns NULL on allocation failure.
 */
struct route_table *route_table_new(const char *const *names, size_t nbackends);
void route_table_free(struct route_table **rtp);

/*
 * Add a rule.  pool[0..n) are backend indices, weights[i] >= 1 (NULL means
 * all 1).  A rule for a key already present, an empty pool, an index out of
 * range or n > ROUTE_POOL_MAX fails: returns -1 with *err_out static text.
 * Keys are normalised like user names (account_key_normalize()).
 */
int route_add_user(struct route_table *rt, const char *user, const size_t *pool,
                   const uint32_t *weights, size_t n, const char **err_out);
int route_add_domain(struct route_table *rt, const char *domain, const size_t *pool,
                     const uint32_t *weights, size_t n, const char **err_out);
int route_set_default(struct route_table *rt, const size_t *pool, const uint32_t *weights, size_t n,
                      const char **err_out);

/*
 * The backends for the account key (account_key(): already normalised;
 * never normalised again here), best first: an exact user rule, else a rule
 * for the domain after the last '@', else the default.  Within the matching
 * rule's pool the order is by rendezvous score (weighted: -w / ln(u)), so
 * out[0] is the user's home and out[1..] its failover order.  Returns the
 * count written to out (at most max), 0 when no rule matches.
 */
size_t route_lookup(const struct route_table *rt, const char *key, size_t len, size_t *out,
                    size_t max);

/* The score rendezvous hashing gives (user, backend name); exposed for tests. */
uint64_t route_hash(const char *user, size_t user_len, const char *backend, size_t backend_len);

#endif
