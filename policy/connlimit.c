/*
 * connlimit.c: decisions on live connection and session counts.  Pure: the
 * counts come from counters.c, which calls this under its lock, so the
 * check and the count that follows it are one step.
 */
#include "connlimit.h"

enum connlimit_rc
connlimit_conn(uint32_t live, uint32_t max)
{
	return max != 0 && live >= max ? CONNLIMIT_IP_FULL : CONNLIMIT_OK;
}

enum connlimit_rc
connlimit_session(const uint32_t live[PROTO__COUNT], enum proto_kind proto, uint32_t max,
                  bool exclusive)
{
	uint64_t total = 0;

	for (int p = 0; p < PROTO__COUNT; p++) {
		total += live[p];
		/* ManageSieve is not mail access: never the "other protocol" */
		if (exclusive && p != (int)proto && p != PROTO_SIEVE && live[p] > 0)
			return CONNLIMIT_OTHER_PROTO;
	}
	return max != 0 && total >= max ? CONNLIMIT_USER_FULL : CONNLIMIT_OK;
}

enum policy_reason
connlimit_reason(enum connlimit_rc rc)
{
	switch (rc) {
	case CONNLIMIT_OK:
		return PR_OK;
	case CONNLIMIT_IP_FULL:
		return PR_IP_CONNECTION_LIMIT;
	case CONNLIMIT_USER_FULL:
		return PR_USER_SESSION_LIMIT;
	case CONNLIMIT_OTHER_PROTO:
		return PR_CONCURRENT_OTHER_PROTOCOL;
	case CONNLIMIT_TABLE_FULL:
		return PR_COUNTERS_TABLE_FULL;
	}
	return PR__COUNT; /* named "?" */
}
