/*
 * registry.h: one record per backend name for the whole process (HAProxy's
 * struct server): a stable id, up or down (rise/fall), the last failure,
 * the operator's admin state, the sessions relayed there and the logins'
 * connect errors.  Records are made on first use (at load, or at run time
 * for a backend named at login) and kept until exit, so a backend's state
 * and series survive reloads that add or remove others.  It knows nothing
 * of runtimes, workers or metrics: they read it.
 */
#ifndef POSTERN_REGISTRY_H
#define POSTERN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define REGISTRY_MAX      1024 /* backend names remembered; then registry_get() says NULL */
#define REGISTRY_NAME_MAX 64   /* as a backend's name in the config */

struct registry_entry; /* lives until exit: a pointer to one never dangles */

/* What the operator said about a backend (postern backend NAME ...); kept
 * in its record, so it survives reloads, not restarts. */
enum backend_admin {
	BACKEND_READY = 0, /* in rotation */
	BACKEND_DRAIN,     /* no new logins; its sessions stay */
	BACKEND_MAINT,     /* no new logins; its sessions were kicked */
	BACKEND__COUNT
};
/* The word for a, "?" for no state (static). */
const char *backend_admin_name(enum backend_admin a);
/* BACKEND__COUNT for a word that names no state. */
enum backend_admin backend_admin_parse(const char *word);

/*
 * The record for name: found, or made (up until proven down, ready, no
 * sessions) with the next id.  NULL when the registry is full or the name
 * is empty or longer than REGISTRY_NAME_MAX: the caller goes on without one,
 * and nothing about that backend is counted.  Thread-safe; a lock only to make one.
 */
struct registry_entry *registry_get(const char *name);
/* The record for name, or NULL; never makes one.  Lock-free. */
struct registry_entry *registry_find(const char *name);
/* How many records there are: ids are 0 .. registry_count() - 1, in the
 * order they were made.  Lock-free. */
uint32_t registry_count(void);
/* The record with id, or NULL when there is none (yet).  Lock-free. */
struct registry_entry *registry_at(uint32_t id);
uint32_t registry_id(const struct registry_entry *e);
/* The name e was made for (lives as long as e). */
const char *registry_name(const struct registry_entry *e);

/* Up?  (NULL: yes, as a backend with no record is never marked down.) */
bool registry_is_up(const struct registry_entry *e);
/* A check's or a login's result for e: ok, or not with a short reason
 * (copied).  rise/fall from the backend's config.  Logs backend.down and
 * backend.up on a change.  Thread-safe; takes NULL. */
void registry_report(struct registry_entry *e, bool ok, const char *why, int rise, int fall);
/* The last failure's reason into buf ("" when none, or e NULL). */
void registry_last_why(struct registry_entry *e, char *buf, size_t len);

/* May a new login go there: up and ready?  (NULL: yes.)  Lock-free. */
bool registry_takes_logins(const struct registry_entry *e);
enum backend_admin registry_admin(const struct registry_entry *e);
/* Set the operator's state; logs backend.admin on a change.  Takes NULL. */
void registry_set_admin(struct registry_entry *e, enum backend_admin a);

/* Relayed sessions on the backend, by protocol: +1 when one starts, -1
 * when it ends (process-wide, all workers).  Lock-free; takes NULL. */
void registry_sessions_add(struct registry_entry *e, enum proto_kind pk, int delta);
long registry_sessions(const struct registry_entry *e, enum proto_kind pk);

/* A login could not reach the backend (before any credential went out).
 * Lock-free; takes NULL. */
void registry_connect_error(struct registry_entry *e);
uint64_t registry_connect_errors(const struct registry_entry *e);

#endif
