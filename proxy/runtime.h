/*
 * runtime.h: what new connections start with: a config snapshot and the TLS
 * state built from it.  main publishes a new pair on reload; workers take a
 * reference per connection, so open sessions keep the pair they began with.
 * One mutex guards the current pointer; the pairs themselves are immutable.
 */
#ifndef POSTERN_RUNTIME_H
#define POSTERN_RUNTIME_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "dynback.h"
#include "registry.h"
#include "tls.h"

struct runtime {
	atomic_int refs;
	struct config *cfg;    /* reference */
	struct tls_state *tls; /* reference */
	/* [cfg->nbackends]: each backend's registry record, found by name once
	 * here; NULL when the registry was full (then nothing is counted) */
	struct registry_entry **reg;
	/* backends a lookup named by address (dynback.h); owned */
	struct dynback_table *dyn;
	unsigned generation; /* 1 at start, +1 per reload */
};

/* Wrap cfg and tls (taking over the caller's references) and find or make
 * each backend's registry record.  NULL on allocation failure (the
 * references are dropped). */
struct runtime *runtime_new(struct config *cfg, struct tls_state *tls, unsigned generation);
/* A reference to the current pair (never NULL once published). */
struct runtime *runtime_get(void);
void runtime_unref(struct runtime **rtp);
/* Make rt current (taking over the caller's reference). */
void runtime_publish(struct runtime *rt);

#endif
