/* config_lookup.c: placeholder until the `lookup` section's reader lands. */
#include "config_impl.h"

const char *
config_lookup_url(const struct config *cfg, const struct listener_conf *lc)
{
	if (lc != NULL && lc->lookup == LISTENER_LOOKUP_OFF)
		return NULL;
	if (lc != NULL && lc->lookup == LISTENER_LOOKUP_URL)
		return lc->lookup_url;
	return cfg->lookup.url;
}
