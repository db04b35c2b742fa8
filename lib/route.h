/*
 * route.h: user -> backend.  Pure code: rules (exact user, domain, default),
 * each naming one backend or a pool, and rendezvous (highest-random-weight)
 * hashing within a pool, so a user always lands on the same backend and
 * removing one backend moves only its own users.  No I/O, no clock, except
 * route_map_load(), which reads a map file of per-user and per-domain rules.
 */
#ifndef POSTERN_ROUTE_H
#define POSTERN_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ROUTE_POOL_MAX     64   /* backends in one pool */
#define ROUTE_USER_MAX     256  /* normalised user name */
#define ROUTE_MAP_LINE_MAX 4096 /* one map file line, comment included */

struct route_table; /* opaque */

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
 * Keys are normalised like user names.
 */
int route_add_user(struct route_table *rt, const char *user, const size_t *pool,
                   const uint32_t *weights, size_t n, const char **err_out);
int route_add_domain(struct route_table *rt, const char *domain, const size_t *pool,
                     const uint32_t *weights, size_t n, const char **err_out);
int route_set_default(struct route_table *rt, const size_t *pool, const uint32_t *weights, size_t n,
                      const char **err_out);

/*
 * Normalise a user name for routing and keys: lower-case ASCII, surrounding
 * white space removed.  Returns the length written (NUL-terminated), or 0 if
 * the result would be empty or does not fit outlen.
 */
size_t route_normalize(const char *user, size_t len, char *out, size_t outlen);

/*
 * The backends for user, best first: an exact user rule, else a rule for the
 * domain after the last '@', else the default.  Within the matching rule's
 * pool the order is by rendezvous score (weighted: -w / ln(u)), so
 * out[0] is the user's home and out[1..] its failover order.  Returns the
 * count written to out (at most max), 0 when no rule matches.
 */
size_t route_lookup(const struct route_table *rt, const char *user, size_t user_len, size_t *out,
                    size_t max);

/* The score rendezvous hashing gives (user, backend name); exposed for tests. */
uint64_t route_hash(const char *user, size_t user_len, const char *backend, size_t backend_len);

/*
 * Resolve a map target, a backend name ("mx1") or "pool:NAME" (a pool the
 * config defines), into pool_out[0..*n_out) backend indices and their
 * weights; both arrays have room for ROUTE_POOL_MAX and weights_out comes
 * filled with 1.  Returns 0, or -1 when the name is unknown.  Called during
 * route_map_load() only, for any line (consecutive equal targets once): keep
 * it cheap and without side effects.
 */
typedef int (*route_resolve_cb)(void *arg, const char *name, size_t *pool_out,
                                uint32_t *weights_out, size_t *n_out);

/*
 * Add the rules of the map file at path, one a line:
 *	alice@example.org   mx1          # a user to a backend
 *	@example.net        mx2          # a domain to a backend
 *	@example.com        pool:big     # a domain to a named pool
 * '#' starts a comment (a whole line, or after the target); blank lines are
 * ignored; fields are separated by spaces or tabs; keys are normalised like
 * user names.  Map rules join the rules already in rt and lookups rank them
 * as usual: user, then domain, then default.  Call it once, after the config's
 * rules: a key that the config or an earlier line already has is an error
 * (the map never overrides the config silently).  Every error is printed to
 * errs (NULL: none printed) as "path:LINE: message", all of them.  Returns
 * 0, or -1 on any error, with the good lines' rules added: the caller drops
 * the table.  Reads in 1 MiB chunks; no allocation per line.
 */
int route_map_load(struct route_table *rt, const char *path, route_resolve_cb resolve, void *arg,
                   FILE *errs);

#endif
