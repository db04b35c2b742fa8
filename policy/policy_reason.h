/*
 * policy_reason.h: why the policy answered as it did, the reason= of
 * policy.deny and of a login.fail the policy refused.  A closed set: every
 * word is in policy_reason.c's one table, and README lists them.
 */
#ifndef POSTERN_POLICY_REASON_H
#define POSTERN_POLICY_REASON_H

enum policy_reason {
	PR_OK,                        /* allowed */
	PR_OK_DEGRADED,               /* allowed without the fleet's state store */
	PR_ACL,                       /* the address is not in policy.allow or is denied */
	PR_IP_CONNECTION_LIMIT,       /* max_connections_per_ip */
	PR_USER_SESSION_LIMIT,        /* max_sessions_per_user */
	PR_CONCURRENT_OTHER_PROTOCOL, /* protocol_lock concurrent: the other one is open */
	PR_COUNTERS_TABLE_FULL,       /* no room to count one more (refused, safely) */
	PR_STATIC_RULE,               /* policy.protocols / protocols_file */
	PR_STICKY_LOCK,               /* protocol_lock sticky: set to the other protocol */
	PR_STORE_ERROR,               /* the state store failed */
	PR_STATE_UNAVAILABLE,         /* the fleet's store is out and unavailable = refuse */
	PR_BAD_PROTOCOL,              /* asked for a protocol postern does not speak */
	PR__COUNT
};

/* The reason= word of r; "?" for a value outside the set.  Static. */
const char *policy_reason_name(enum policy_reason r);

#endif
