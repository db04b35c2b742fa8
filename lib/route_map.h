/*
 * route_map.h: map files of per-user and per-domain routing rules, loaded
 * into a route table (route.h, which includes this header).  Reads a file:
 * call it while loading the config, never on the event loop.
 */
#ifndef POSTERN_ROUTE_MAP_H
#define POSTERN_ROUTE_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ROUTE_MAP_LINE_MAX 4096 /* one map file line, comment included */

struct route_table;

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
