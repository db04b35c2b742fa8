/*
 * health.h: the active health checker and the process's answer to "is any
 * backend up?".  The checker is a thread with its own loop that checks the
 * backends of the current runtime (connect, greeting, optionally TLS) and
 * reports to their registry records (registry.h), where the up/down state,
 * rise/fall and admin state live; logins report there too.
 */
#ifndef POSTERN_HEALTH_H
#define POSTERN_HEALTH_H

#include <stdbool.h>

/* Is at least one backend of the current runtime up?  Thread-safe; never
 * calls back. */
bool health_any_up(void);

/* Start the checker thread: it checks the backends of the current runtime
 * that have a check_interval, as each reload changes them.  0, or -1 when
 * the loop or the thread cannot be made.  Once, before the workers run. */
int health_start(void);
/* End the checks under way and join the thread; frees what it made.  No-op
 * when not started. */
void health_stop(void);

#endif
