/*
 * registry.c: the process's backend records (see registry.h) and their
 * name index.  Records sit in one static array, made in id order and never
 * freed or moved; the index is an insert-only open-addressing table of
 * pointers into it.  A record and its slot are written before they are
 * published (release), so readers find, count and read records without a
 * lock; only making a record takes one.  Must never reach above config/log.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "registry.h"

/* Twice the records, a power of two: probes stay short and always meet an
 * empty slot, which ends a search. */
#define REGISTRY_SLOTS (2 * REGISTRY_MAX)
_Static_assert((REGISTRY_SLOTS & (REGISTRY_SLOTS - 1)) == 0, "slots must be a power of two");

struct registry_entry {
	uint32_t id;                        /* its index in entries[] */
	char name[REGISTRY_NAME_MAX + 1];   /* written once, before it is published */
	atomic_bool up;                     /* read by every login: one load */
	atomic_int admin;                   /* enum backend_admin */
	atomic_long sessions[PROTO__COUNT]; /* relayed sessions now */
	atomic_uint_fast64_t connect_errors;
	pthread_mutex_t lock; /* the results below */
	int oks, fails;       /* consecutive results */
	char last_why[128];
};

static pthread_mutex_t make_lock = PTHREAD_MUTEX_INITIALIZER;
static struct registry_entry entries[REGISTRY_MAX];
static atomic_uint nentries;
static _Atomic(struct registry_entry *) slots[REGISTRY_SLOTS];

static const char *const admin_names[] = {
    [BACKEND_READY] = "ready",
    [BACKEND_DRAIN] = "drain",
    [BACKEND_MAINT] = "maint",
};
_Static_assert(sizeof(admin_names) / sizeof(admin_names[0]) == BACKEND__COUNT,
               "admin_names must name every admin state");

const char *
backend_admin_name(enum backend_admin a)
{
	return (unsigned)a < BACKEND__COUNT ? admin_names[a] : "?";
}

enum backend_admin
backend_admin_parse(const char *word)
{
	for (int a = 0; a < BACKEND__COUNT; a++)
		if (strcmp(admin_names[a], word) == 0)
			return (enum backend_admin)a;
	return BACKEND__COUNT;
}

/* ---- the index ------------------------------------------------------------- */

/* FNV-1a: names are short and chosen by the operator, not by clients. */
static uint32_t
name_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static bool
name_fits(const char *name)
{
	return name != NULL && name[0] != '\0' && strlen(name) <= REGISTRY_NAME_MAX;
}

struct registry_entry *
registry_find(const char *name)
{
	uint32_t h;

	if (!name_fits(name))
		return NULL;
	h = name_hash(name);
	for (uint32_t i = 0; i < REGISTRY_SLOTS; i++) {
		struct registry_entry *e = atomic_load_explicit(
		    &slots[(h + i) & (REGISTRY_SLOTS - 1)], memory_order_acquire);
		if (e == NULL)
			return NULL;
		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

struct registry_entry *
registry_get(const char *name)
{
	struct registry_entry *e;
	unsigned n;
	uint32_t h;

	if ((e = registry_find(name)) != NULL || !name_fits(name))
		return e;
	pthread_mutex_lock(&make_lock);
	/* Another thread may have made it between the search and the lock. */
	n = atomic_load_explicit(&nentries, memory_order_relaxed);
	if ((e = registry_find(name)) == NULL && n < REGISTRY_MAX) {
		e = &entries[n];
		e->id = n;
		snprintf(e->name, sizeof(e->name), "%s", name);
		atomic_init(&e->up, true); /* innocent until proven down */
		atomic_init(&e->admin, BACKEND_READY);
		for (int p = 0; p < PROTO__COUNT; p++)
			atomic_init(&e->sessions[p], 0);
		atomic_init(&e->connect_errors, 0);
		pthread_mutex_init(&e->lock, NULL);
		h = name_hash(name);
		while (atomic_load_explicit(&slots[h & (REGISTRY_SLOTS - 1)],
		                            memory_order_relaxed) != NULL)
			h++;
		atomic_store_explicit(&slots[h & (REGISTRY_SLOTS - 1)], e, memory_order_release);
		atomic_store_explicit(&nentries, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&make_lock);
	return e;
}

uint32_t
registry_count(void)
{
	return atomic_load_explicit(&nentries, memory_order_acquire);
}

struct registry_entry *
registry_at(uint32_t id)
{
	return id < registry_count() ? &entries[id] : NULL;
}

uint32_t
registry_id(const struct registry_entry *e)
{
	return e->id;
}

const char *
registry_name(const struct registry_entry *e)
{
	return e->name;
}

/* ---- health -------------------------------------------------------------------- */

bool
registry_is_up(const struct registry_entry *e)
{
	return e == NULL || atomic_load(&e->up);
}

void
registry_report(struct registry_entry *e, bool ok, const char *why, int rise, int fall)
{
	bool was, now;

	if (e == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	was = atomic_load(&e->up);
	if (ok) {
		e->fails = 0;
		if (e->oks < 1000)
			e->oks++;
	} else {
		e->oks = 0;
		if (e->fails < 1000)
			e->fails++;
		snprintf(e->last_why, sizeof(e->last_why), "%s", why ? why : "check failed");
	}
	now = was;
	if (was && !ok && e->fails >= fall)
		now = false;
	else if (!was && ok && e->oks >= rise)
		now = true;
	atomic_store(&e->up, now);
	pthread_mutex_unlock(&e->lock);
	if (was && !now)
		log_kv(LOG_WARN, "backend.down", "backend=%s fails=%d reason=\"%s\"", e->name, fall,
		       why ? why : "check failed");
	else if (!was && now)
		log_kv(LOG_INFO, "backend.up", "backend=%s oks=%d", e->name, rise);
}

void
registry_last_why(struct registry_entry *e, char *buf, size_t len)
{
	if (e == NULL) {
		snprintf(buf, len, "%s", "");
		return;
	}
	pthread_mutex_lock(&e->lock);
	snprintf(buf, len, "%s", e->last_why);
	pthread_mutex_unlock(&e->lock);
}

/* ---- the operator's state ------------------------------------------------------ */

enum backend_admin
registry_admin(const struct registry_entry *e)
{
	return e == NULL ? BACKEND_READY : (enum backend_admin)atomic_load(&e->admin);
}

bool
registry_takes_logins(const struct registry_entry *e)
{
	return registry_is_up(e) && registry_admin(e) == BACKEND_READY;
}

void
registry_set_admin(struct registry_entry *e, enum backend_admin a)
{
	int was;

	if (e == NULL || (unsigned)a >= BACKEND__COUNT)
		return;
	was = atomic_exchange(&e->admin, (int)a);
	if (was != (int)a)
		log_kv(LOG_INFO, "backend.admin", "backend=%s state=%s was=%s", e->name,
		       backend_admin_name(a), backend_admin_name((enum backend_admin)was));
}

/* ---- counts ------------------------------------------------------------------------ */

void
registry_sessions_add(struct registry_entry *e, enum proto_kind pk, int delta)
{
	if (e != NULL && (unsigned)pk < PROTO__COUNT)
		atomic_fetch_add(&e->sessions[pk], delta);
}

long
registry_sessions(const struct registry_entry *e, enum proto_kind pk)
{
	return e != NULL && (unsigned)pk < PROTO__COUNT ? atomic_load(&e->sessions[pk]) : 0;
}

void
registry_connect_error(struct registry_entry *e)
{
	if (e != NULL)
		atomic_fetch_add_explicit(&e->connect_errors, 1, memory_order_relaxed);
}

uint64_t
registry_connect_errors(const struct registry_entry *e)
{
	return e != NULL ? atomic_load_explicit(&e->connect_errors, memory_order_relaxed) : 0;
}
