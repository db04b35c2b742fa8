/*
 * counters.h: the one in-process table of shared, short-lived counts, behind
 * one mutex: connections per client address, live sessions per user and
 * protocol, and the failed-login throttle per (address, user) and address.
 * Every worker thread uses the same table; nothing here touches a disk.
 *
 * Bounded: at most live_max connection and session entries (when full, one
 * more connection or session is refused with CONNLIMIT_TABLE_FULL: counts
 * stay exact, and nothing counted is ever forgotten) and at most
 * throttle_max throttle entries (when full, the least recently touched one
 * is forgotten: an attacker who floods the table with keys gains a reset of
 * the oldest key, never a lock-out of anybody; evictions are counted).
 * Keys are hashed with a random per-process SipHash key, so clients cannot
 * aim collisions.  User names are account keys (account.h), normalised by
 * the caller.
 */
#ifndef POSTERN_COUNTERS_H
#define POSTERN_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "config.h"
#include "connlimit.h"
#include "ratelimit.h"

#define COUNTERS_USER_MAX 256 /* longer user names are cut for keys (route.h: 256) */

struct counters; /* opaque; thread-safe */

struct counters_stats {
	size_t live, live_max;         /* connection and session entries */
	size_t throttle, throttle_max; /* throttle entries */
	uint64_t evicted;              /* throttle entries forgotten to make room */
	uint64_t refused_full;         /* connections/sessions refused: live table full */
};

/* A table for live_max (>= 1) + throttle_max (>= 2) entries.  Allocates as
 * entries come, never more.  NULL on failure.  Free with counters_free(). */
struct counters *counters_new(size_t live_max, size_t throttle_max);
/* Takes NULL; sets *cp to NULL. */
void counters_free(struct counters **cp);

/* ---- connections per address (the caller passes the prefixed address) -- */

/* Count one more connection from ip if connlimit_conn(live, max) allows.
 * CONNLIMIT_OK: counted; call counters_conn_close() once when it closes. */
enum connlimit_rc counters_conn_open(struct counters *c, const struct acl_addr *ip, uint32_t max);
/* One connection from ip closed.  False if none was counted (a caller bug;
 * the count stays at zero). */
bool counters_conn_close(struct counters *c, const struct acl_addr *ip);
uint32_t counters_conn_count(struct counters *c, const struct acl_addr *ip);

/* ---- live sessions per user and protocol ------------------------------- */

/* Count one more session of proto for user if connlimit_session() allows;
 * the check and the count are one step.  CONNLIMIT_OK: counted; call
 * counters_session_end() once when the session ends. */
enum connlimit_rc counters_session_begin(struct counters *c, const char *user, size_t len,
                                         enum proto_kind proto, uint32_t max, bool exclusive);
/* False if no such session was counted (the counts stay at zero). */
bool counters_session_end(struct counters *c, const char *user, size_t len, enum proto_kind proto);
/* live_out[p]: sessions of user counted for each protocol. */
void counters_session_count(struct counters *c, const char *user, size_t len,
                            uint32_t live_out[PROTO__COUNT]);

/* ---- failed-login throttle ---------------------------------------------- */

struct counters_throttle {
	uint32_t ip_user_failures; /* in the (address, user) key's window, after the call */
	uint32_t ip_failures;      /* in the address key's window */
	bool ip_user_blocked;      /* that key is over its limit */
	bool ip_blocked;
	bool newly_blocked; /* fail: this failure took a key to its limit */
	uint64_t until_ms;  /* when the later of the blocking windows ends; 0 */
};

/* Read both keys at now_ms (no entry is made).  Fills *out. */
void counters_throttle_check(struct counters *c, const struct acl_addr *ip, const char *user,
                             size_t len, const struct ratelimit_conf *ip_user,
                             const struct ratelimit_conf *ip_conf, uint64_t now_ms,
                             struct counters_throttle *out);
/* Count a failed login on both keys (making them as needed).  Fills *out. */
void counters_throttle_fail(struct counters *c, const struct acl_addr *ip, const char *user,
                            size_t len, const struct ratelimit_conf *ip_user,
                            const struct ratelimit_conf *ip_conf, uint64_t now_ms,
                            struct counters_throttle *out);
/* A successful login: forget the (address, user) key; the address key stays. */
void counters_throttle_clear(struct counters *c, const struct acl_addr *ip, const char *user,
                             size_t len);

/* The fleet's counts after a failure was counted in a shared store too
 * (n failures, left_ms of the window left, per key): each local key takes
 * the fleet's count when it is larger, with the fleet's window.  Returns
 * true when that blocked a key that was not blocked here. */
bool counters_throttle_merge(struct counters *c, const struct acl_addr *ip, const char *user,
                             size_t len, const struct ratelimit_conf *ip_user,
                             const struct ratelimit_conf *ip_conf, uint32_t n_iu, uint64_t left_iu,
                             uint32_t n_ip, uint64_t left_ip, uint64_t now_ms);

void counters_stats(struct counters *c, struct counters_stats *out);

#endif
