/*
 * lifecycle.c: the process's phase (see lifecycle.h), one atomic flag.
 */
#include <stdatomic.h>

#include "lifecycle.h"

static atomic_bool draining;

void
lifecycle_set_draining(void)
{
	atomic_store(&draining, true);
}

bool
lifecycle_draining(void)
{
	return atomic_load(&draining);
}
