/*
 * dynback.c: backends named by address (see dynback.h).  A table of
 * lookup.max_backends records made on first use; a mutex guards the
 * search and the making, and a made record never changes or moves.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "dynback.h"
#include "log.h"
#include "registry.h"

struct dynback_table {
	pthread_mutex_t lock;
	size_t n, max;
	struct dynback *v; /* [max] */
};

struct dynback_table *
dynback_table_new(const struct config *cfg)
{
	struct dynback_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->max = cfg->lookup.max_backends > 0 ? (size_t)cfg->lookup.max_backends : 0;
	if (t->max > 0 && (t->v = calloc(t->max, sizeof(*t->v))) == NULL) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void
dynback_table_free(struct dynback_table **tp)
{
	struct dynback_table *t = *tp;

	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->v);
	free(t);
	*tp = NULL;
}

/* A new record at sa for pk, with cfg's backend_defaults and tls. */
static void
dynback_make(struct dynback *d, const struct config *cfg, enum proto_kind pk,
             const struct sockaddr_storage *sa, socklen_t len, int tls)
{
	unsigned port;

	d->bc = cfg->lookup.backend_defaults; /* strings borrowed from cfg */
	addr_parts((const struct sockaddr *)sa, d->host, sizeof(d->host), &port);
	addr_format((const struct sockaddr *)sa, d->name, sizeof(d->name));
	d->bc.name = d->name;
	d->bc.host = d->host;
	memset(d->bc.port, 0, sizeof(d->bc.port));
	memset(d->bc.addrlen, 0, sizeof(d->bc.addrlen));
	d->bc.port[pk] = (uint16_t)port;
	d->bc.addr[pk] = *sa;
	d->bc.addrlen[pk] = len;
	if (tls >= 0)
		d->bc.tls = (enum tls_mode)tls;
	d->bc.check_interval_ms = 0; /* checked by the logins that go there */
	d->reg = registry_get(d->name);
}

enum dynback_kind
dynback_resolve(struct dynback_table *t, const struct config *cfg, enum proto_kind pk,
                const char *ip, uint16_t port, int tls, size_t *index_out,
                const struct dynback **dyn_out)
{
	struct sockaddr_storage sa;
	socklen_t len;
	enum dynback_kind kind = DYNBACK_FULL;

	if (addr_from_literal(ip, port, &sa, &len) < 0)
		return DYNBACK_BAD;
	for (size_t i = 0; i < cfg->nbackends; i++)
		if (cfg->backends[i].port[pk] != 0 && addr_same(&cfg->backends[i].addr[pk], &sa)) {
			*index_out = i;
			return DYNBACK_CONFIGURED;
		}
	if (t == NULL)
		return DYNBACK_FULL;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->n; i++) {
		const struct dynback *d = &t->v[i];
		if (d->bc.port[pk] != 0 && addr_same(&d->bc.addr[pk], &sa) &&
		    (tls < 0 || d->bc.tls == (enum tls_mode)tls)) {
			*dyn_out = d;
			kind = DYNBACK_DYNAMIC;
			break;
		}
	}
	if (kind != DYNBACK_DYNAMIC && t->n < t->max) {
		struct dynback *d = &t->v[t->n];

		dynback_make(d, cfg, pk, &sa, len, tls);
		t->n++;
		*dyn_out = d;
		kind = DYNBACK_DYNAMIC;
		log_kv(LOG_INFO, "backend.dynamic", "backend=%s proto=%s tls=%s", d->name,
		       proto_name(pk),
		       d->bc.tls == TLSM_NONE       ? "none"
		       : d->bc.tls == TLSM_IMPLICIT ? "implicit"
		                                    : "starttls");
	}
	pthread_mutex_unlock(&t->lock);
	return kind;
}

size_t
dynback_count(struct dynback_table *t)
{
	size_t n;

	if (t == NULL)
		return 0;
	pthread_mutex_lock(&t->lock);
	n = t->n;
	pthread_mutex_unlock(&t->lock);
	return n;
}

const struct dynback *
dynback_at(struct dynback_table *t, size_t i)
{
	return t != NULL && i < dynback_count(t) ? &t->v[i] : NULL;
}
