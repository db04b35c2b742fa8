/*
 * policy_reason.c: the names of the policy's reasons (see
 * policy_reason.h); operators grep them, so a name never changes.
 */
#include "policy_reason.h"

static const char *const policy_reason_names[] = {
    [PR_OK] = "ok",
    [PR_OK_DEGRADED] = "ok_degraded",
    [PR_ACL] = "acl",
    [PR_IP_CONNECTION_LIMIT] = "ip_connection_limit",
    [PR_USER_SESSION_LIMIT] = "user_session_limit",
    [PR_CONCURRENT_OTHER_PROTOCOL] = "concurrent_other_protocol",
    [PR_COUNTERS_TABLE_FULL] = "counters_table_full",
    [PR_STATIC_RULE] = "static_rule",
    [PR_STICKY_LOCK] = "sticky_lock",
    [PR_STORE_ERROR] = "store_error",
    [PR_STATE_UNAVAILABLE] = "state_unavailable",
    [PR_BAD_PROTOCOL] = "bad_protocol",
};
/* Unsized above, so a value added without its name fails here. */
_Static_assert(sizeof(policy_reason_names) / sizeof(policy_reason_names[0]) == PR__COUNT,
               "policy_reason_names must name every reason");

const char *
policy_reason_name(enum policy_reason r)
{
	return (unsigned)r < PR__COUNT ? policy_reason_names[r] : "?";
}
