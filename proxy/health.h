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
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct health; /* lives until exit; never freed while workers run */

/* What the operator said about a backend (postern backend NAME ...); kept
 * by name next to its health, so it survives reloads, not restarts. */
enum backend_admin {
	BACKEND_READY = 0, /* in rotation */
	BACKEND_DRAIN,     /* no new logins; its sessions stay */
	BACKEND_MAINT,     /* no new logins; its sessions were kicked */
	BACKEND__COUNT
};
const char *backend_admin_name(enum backend_admin a);
/* BACKEND__COUNT for a word that names no state. */
enum backend_admin backend_admin_parse(const char *word);

/* The record for a backend name, made on first use (up until proven down).
 * NULL only when out of memory.  Thread-safe. */
struct health *health_get(const char *name);
bool health_is_up(const struct health *h);
/* A result for h: ok, or not with a static or short reason.  rise/fall from
 * the backend's config.  Logs backend.down / backend.up on a change. */
void health_report(struct health *h, bool ok, const char *why, int rise, int fall);

/* May a new login go there: up and ready?  (NULL: yes.)  Thread-safe. */
bool health_takes_logins(const struct health *h);
enum backend_admin health_admin(const struct health *h);
/* Set the operator's state; logs backend.admin on a change.  Thread-safe. */
void health_set_admin(struct health *h, enum backend_admin a);
/* The last failure's reason into buf ("" when none). */
void health_last_why(struct health *h, char *buf, size_t len);

/* Relayed sessions on the backend, by protocol: +1 when one starts, -1
 * when it ends (process-wide, all workers).  Thread-safe. */
void health_sessions_add(struct health *h, enum proto_kind pk, int delta);
long health_sessions(const struct health *h, enum proto_kind pk);

/* Is at least one backend of the current runtime up?  Thread-safe. */
bool health_any_up(void);

/* Start/stop the checker thread; it checks the backends of the current
 * runtime that have a check_interval. */
int health_start(void);
void health_stop(void);

#endif
