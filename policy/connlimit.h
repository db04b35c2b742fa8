/*
 * connlimit.h: the limits on live things, as pure decisions over counts the
 * caller keeps (counters.c, under its lock): connections per client address,
 * logged-in sessions per user, and the "concurrent" protocol lock (no IMAP
 * and POP3 sessions of one user at the same time).
 */
#ifndef POSTERN_CONNLIMIT_H
#define POSTERN_CONNLIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "policy_reason.h"

enum connlimit_rc {
	CONNLIMIT_OK,
	CONNLIMIT_IP_FULL,     /* the address has max connections open */
	CONNLIMIT_USER_FULL,   /* the user has max sessions live */
	CONNLIMIT_OTHER_PROTO, /* concurrent mode: a session of the other protocol is live */
	CONNLIMIT_TABLE_FULL,  /* counters.c: no room to count one more (refused, safely) */
};

/* One more connection from an address with live open; max 0: no limit. */
enum connlimit_rc connlimit_conn(uint32_t live, uint32_t max);

/*
 * One more session of proto for a user with live[] sessions per protocol;
 * max 0: no limit; exclusive: the "concurrent" protocol lock.  The lock is
 * checked first: its refusal is the more useful one to hear.
 */
enum connlimit_rc connlimit_session(const uint32_t live[PROTO__COUNT], enum proto_kind proto,
                                    uint32_t max, bool exclusive);

/* The reason= of rc (PR_OK for CONNLIMIT_OK). */
enum policy_reason connlimit_reason(enum connlimit_rc rc);

#endif
