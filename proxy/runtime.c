/*
 * runtime.c: the current config + TLS pair, swapped atomically on reload.
 * The only lock is around taking a reference to the current pointer.
 */
#include <pthread.h>
#include <stdlib.h>

#include "runtime.h"

static pthread_mutex_t runtime_lock = PTHREAD_MUTEX_INITIALIZER;
static struct runtime *runtime_current;

struct runtime *
runtime_new(struct config *cfg, struct tls_state *tls, unsigned generation)
{
	struct runtime *rt = calloc(1, sizeof(*rt));

	if (rt == NULL) {
		config_unref(&cfg);
		tls_state_unref(&tls);
		return NULL;
	}
	rt->reg = calloc(cfg->nbackends + 1, sizeof(*rt->reg));
	rt->dyn = dynback_table_new(cfg);
	if (rt->reg == NULL || rt->dyn == NULL) {
		free(rt->reg);
		dynback_table_free(&rt->dyn);
		free(rt);
		config_unref(&cfg);
		tls_state_unref(&tls);
		return NULL;
	}
	for (size_t i = 0; i < cfg->nbackends; i++)
		rt->reg[i] = registry_get(cfg->backends[i].name);
	atomic_init(&rt->refs, 1);
	rt->cfg = cfg;
	rt->tls = tls;
	rt->generation = generation;
	return rt;
}

struct runtime *
runtime_get(void)
{
	struct runtime *rt;

	pthread_mutex_lock(&runtime_lock);
	rt = runtime_current;
	if (rt != NULL)
		atomic_fetch_add(&rt->refs, 1);
	pthread_mutex_unlock(&runtime_lock);
	return rt;
}

void
runtime_unref(struct runtime **rtp)
{
	struct runtime *rt = *rtp;

	*rtp = NULL;
	if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
		return;
	config_unref(&rt->cfg);
	tls_state_unref(&rt->tls);
	free(rt->reg);
	dynback_table_free(&rt->dyn);
	free(rt);
}

void
runtime_publish(struct runtime *rt)
{
	struct runtime *old;

	pthread_mutex_lock(&runtime_lock);
	old = runtime_current;
	runtime_current = rt;
	pthread_mutex_unlock(&runtime_lock);
	runtime_unref(&old);
}
