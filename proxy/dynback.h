/*
 * dynback.h: backends named by address.  A lookup service may answer with
 * an address rather than a configured backend's name (nginx's Auth-Server
 * and Auth-Port, the JSON "server" and "port").  An address a configured
 * backend has for the protocol is that backend (its health, admin state
 * and pool apply); any other becomes a backend of its own, named
 * "ADDRESS:PORT", with lookup.backend_defaults' settings and a registry
 * record like a configured one, so its health, sessions and admin state
 * show in `backend list` and in the metrics.  At most lookup.max_backends
 * of them per config generation; they live as long as the runtime.
 */
#ifndef POSTERN_DYNBACK_H
#define POSTERN_DYNBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define DYNBACK_NAME_MAX 64 /* "[v6]:port" fits; REGISTRY_NAME_MAX */

struct registry_entry;
struct dynback_table; /* one per runtime, thread-safe */

/* One backend named by address: read-only once made. */
struct dynback {
	struct backend_conf bc; /* name and host point into this record */
	struct registry_entry *reg;
	char name[DYNBACK_NAME_MAX + 1];
	char host[DYNBACK_NAME_MAX + 1];
};

/* For cfg (its lookup section: max_backends, backend_defaults); NULL on
 * allocation failure. */
struct dynback_table *dynback_table_new(const struct config *cfg);
void dynback_table_free(struct dynback_table **tp);

/* What an address names. */
enum dynback_kind {
	DYNBACK_CONFIGURED = 0, /* a configured backend: *index_out */
	DYNBACK_DYNAMIC,        /* a backend of its own: *dyn_out */
	DYNBACK_BAD,            /* not an IP literal, or port 0 */
	DYNBACK_FULL,           /* max_backends reached */
};

/*
 * The backend at ip:port for protocol pk: a configured backend whose
 * address for pk is that one, else the dynamic one (found or made with
 * tls, or backend_defaults' tls when tls < 0).
 */
enum dynback_kind dynback_resolve(struct dynback_table *t, const struct config *cfg,
                                  enum proto_kind pk, const char *ip, uint16_t port, int tls,
                                  size_t *index_out, const struct dynback **dyn_out);

/* How many there are, and each (0 .. count - 1), for listings. */
size_t dynback_count(struct dynback_table *t);
const struct dynback *dynback_at(struct dynback_table *t, size_t i);

#endif
