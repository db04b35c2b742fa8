/*
 * health.h: is a backend up?  One record per backend name for the whole
 * process, fed by active checks (a checker thread with its own loop:
 * connect, greeting, optionally TLS) and by real logins (connect failures
 * and timeouts).  rise/fall consecutive results flip the state; workers
 * only read it (atomically) when they pick a backend.
 */
#ifndef POSTERN_HEALTH_H
#define POSTERN_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

struct health; /* lives until exit; never freed while workers run */

/* The record for a backend name, made on first use (up until proven down).
 * NULL only when out of memory.  Thread-safe. */
struct health *health_get(const char *name);
bool health_is_up(const struct health *h);
/* A result for h: ok, or not with a static or short reason.  rise/fall from
 * the backend's config.  Logs backend.down / backend.up on a change. */
void health_report(struct health *h, bool ok, const char *why, int rise, int fall);

/* Is at least one backend of the current runtime up?  Thread-safe. */
bool health_any_up(void);

/* Start/stop the checker thread; it checks the backends of the current
 * runtime that have a check_interval. */
int health_start(void);
void health_stop(void);

#endif
