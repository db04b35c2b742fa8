/*
 * policy.h: the decisions proxy/ asks for, and the only policy names it
 * sees.  Policy code decides; it never does I/O on client sockets.  A store
 * that is remote answers later, through a callback on the asking worker's
 * loop, never before the asking call returns.
 *
 * Interface only for now: the protocol lock, limits, throttling and their
 * stores (LMDB, Redis) implement it next.  proxy/ calls:
 *   - policy_preauth()   at accept and before contacting a backend: may this
 *                        client address connect / try a login?  (ACL,
 *                        per-IP limits, failed-login throttling)
 *   - policy_postauth()  after the backend accepted the password: may this
 *                        user use this protocol now?  (protocol lock,
 *                        per-user session limit); a lock it records is
 *                        durable before the verdict is delivered
 *   - policy_session_end() when a logged-in session ends, for live counts.
 */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum policy_verdict {
	POLICY_ALLOW,
	POLICY_DENY_ACL,     /* client address not allowed */
	POLICY_DENY_LIMIT,   /* a connection or session limit */
	POLICY_DENY_THROTTLE, /* too many failed logins */
	POLICY_DENY_PROTOCOL, /* the account is locked to the other protocol */
};

struct policy_req; /* one outstanding question; cancelled when its conn closes */

typedef void (*policy_answer_cb)(void *arg, enum policy_verdict v, const char *detail);

#endif
