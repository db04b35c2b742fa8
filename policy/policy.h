/*
 * policy.h: the decisions proxy/ asks for, and the only policy names it
 * sees.  Policy code decides; it never does I/O on client sockets.  One
 * struct policy serves the whole process: every function here is
 * thread-safe, except that a policy_worker and its requests belong to the
 * thread of their loop.
 *
 * What the proxy calls, and where:
 *   accept               policy_accept(): ACL, then the per-address
 *                        connection count; keep the struct policy_conn it
 *                        fills and hand it to policy_conn_closed() at close.
 *   before a login       policy_login_check(): refuses an (address, user) or
 *                        address over its failed-login limit, before any
 *                        backend hears of it.
 *   login failed         policy_login_failed() after the backend refused the
 *                        credentials (FAIL_AUTH only, not a backend outage):
 *                        counts the failure, returns the tarpit delay to wait
 *                        before answering the client.
 *   backend said OK      policy_postauth(): the (address, user) throttle is
 *                        cleared, then protocol lock and session limit are
 *                        decided; the answer comes later on the worker's loop.
 *   session end          policy_session_end() once for every session that got
 *                        POLICY_ALLOW, however it ends.
 *
 * A user is named by its account key (account.h): the login makes it once
 * with account_key() and passes it as (key, key_len); nothing here
 * normalises it again, so routing, throttles, session counts, locks and
 * the store all see the same bytes.
 *
 * Time is a parameter (now_ms: wall clock, ms since the epoch, as
 * ev_now(loop) * 1000 gives), so tests move the clock.  Durable lock records
 * store it, so it must be the wall clock, not a monotonic one.
 */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <ev.h>

#include "acl.h"
#include "config.h"
#include "policy_reason.h"

enum policy_verdict {
	POLICY_ALLOW,
	POLICY_DENY_ACL,      /* client address not allowed: close at once */
	POLICY_DENY_LIMIT,    /* a connection or session limit: [UNAVAILABLE] / -ERR [IN-USE] */
	POLICY_DENY_THROTTLE, /* too many failed logins: [UNAVAILABLE] / -ERR [AUTH] */
	POLICY_DENY_PROTOCOL, /* not this protocol for this account: [CONTACTADMIN] / -ERR [AUTH] */
	POLICY_DENY_INTERNAL, /* the store failed: [UNAVAILABLE] / -ERR [SYS/TEMP] */
	POLICY__COUNT
};

/* The verdict= word of each verdict (unsized: policy.c checks the count). */
extern const char *const policy_verdict_name[];

/* A post-auth answer. */
struct policy_answer {
	enum policy_verdict verdict;
	/* why, for reason= in logs (policy_reason_name()) */
	enum policy_reason reason;
	/* POLICY_DENY_PROTOCOL: the one protocol the account may use (static
	 * rule, sticky lock: "this account is used with POP3"), or the one in
	 * use right now (concurrent: "a POP3 session is open"), or PROTO__COUNT
	 * when there is none */
	enum proto_kind allowed;
};

/* Runs on the loop of the policy_worker that asked; a is valid during the
 * call only.  The request is freed right after the callback returns. */
typedef void (*policy_answer_cb)(void *arg, const struct policy_answer *a);

struct policy;           /* one per process; thread-safe */
struct policy_worker;    /* one per worker loop */
struct policy_req;       /* one outstanding post-auth question */
struct policy_route_req; /* one outstanding route lookup */

/* What policy_accept() counted for one connection; kept by the caller. */
struct policy_conn {
	struct acl_addr key; /* the address as counted (IPv6: its prefix) */
	bool counted;
};

/*
 * Build the policy of cfg: rules (policy.protocols and protocols_file),
 * ACLs, limits, the in-process counters, and the state store when cfg->state
 * is set (opened, made if missing: call before dropping privileges, or make
 * the directory the daemon's).  Returns NULL after printing each problem to
 * errs ("file:line: message" for the map file).  Free with policy_free()
 * after every policy_worker is freed.
 */
struct policy *policy_new(const struct config *cfg, FILE *errs);
void policy_free(struct policy **pp);

/* For `postern -t`: read what policy_new() reads except the store; 0, or -1
 * after printing the problems to errs. */
int policy_check(const struct config *cfg, FILE *errs);

/*
 * Take cfg's policy settings for what comes next; live counts, throttles
 * and locks stay.  Refuses (-1, printed to errs; the old settings stay) a
 * changed `state` or a mode that needs a store without one.  Questions
 * already asked finish under the settings they started with.
 */
int policy_reload(struct policy *p, const struct config *cfg, FILE *errs);

/* A way in for one worker's loop: make it on the loop's thread (or before
 * ev_run); it never keeps the loop alive.  NULL and *err_out on failure. */
struct policy_worker *policy_worker_new(struct policy *p, struct ev_loop *loop,
                                        const char **err_out);
/* On the loop's thread, after its connections are closed or at least
 * outside any policy callback: outstanding requests are cancelled (no
 * callback; their reserved sessions released).  Takes NULL; sets *pwp NULL. */
void policy_worker_free(struct policy_worker **pwp);

/* ---- pre-auth --------------------------------------------------------- */

/* May the peer at sa speak for clients on listener lc (a PROXY listener's
 * trusted list)?  Pure; any thread. */
bool policy_proxy_trusted(const struct listener_conf *lc, const struct sockaddr *sa,
                          socklen_t salen);

/*
 * A connection from sa was accepted.  POLICY_ALLOW: it passed policy.allow
 * and policy.deny and is counted in *pc (call policy_conn_closed(pc) once
 * when it closes); POLICY_DENY_ACL (close without a word, nothing counted);
 * POLICY_DENY_LIMIT (max_connections_per_ip, or the counters table is full:
 * a one-line refusal, then close; nothing counted).  *reason_out: why.
 * A non-IP address (AF_UNIX) is allowed and not counted.
 */
enum policy_verdict policy_accept(struct policy *p, const struct sockaddr *sa, socklen_t salen,
                                  struct policy_conn *pc, enum policy_reason *reason_out);
/* The connection counted in *pc closed; safe to call twice (the second does
 * nothing) and on a pc that was not counted. */
void policy_conn_closed(struct policy *p, struct policy_conn *pc);

/*
 * May a login as the account key from sa be tried now?  POLICY_ALLOW (*delay_ms_out 0)
 * or POLICY_DENY_THROTTLE: do not contact a backend; answer after
 * *delay_ms_out (the capped tarpit), as for a failed login.  Reads only.
 */
enum policy_verdict policy_login_check(struct policy *p, const struct sockaddr *sa, socklen_t salen,
                                       const char *key, size_t key_len, uint64_t now_ms,
                                       uint64_t *delay_ms_out);

/* The backend refused the credentials of the account key from sa: count
 * the failure on the (address, user) and address keys.  Returns the delay (ms) to wait before
 * answering the client: delay_base doubling per failure, up to delay_max. */
uint64_t policy_login_failed(struct policy *p, const struct sockaddr *sa, socklen_t salen,
                             const char *key, size_t key_len, uint64_t now_ms);

/* ---- post-auth ------------------------------------------------------- */

/*
 * The backend accepted the password of the account key over proto from sa: clears the
 * (address, user) throttle key, then decides, in this order: a static rule
 * (policy.protocols / protocols_file / protocols_default) that excludes
 * proto; the concurrent lock and max_sessions_per_user (the session is
 * counted as live from here, atomically with the check); the sticky lock,
 * read, decided and recorded in one atomic store step, durable (fsync'ed)
 * before the answer.
 *
 * The answer always comes through cb on pw's loop, never before this call
 * returns, exactly once unless the request is cancelled.  POLICY_ALLOW: the
 * session is live and counted; the caller owes one policy_session_end(key,
 * proto).  Any other verdict: nothing to undo.
 *
 * Returns the request, to keep until cb runs (cancel it if the connection
 * closes first), or NULL when out of memory: then no callback comes; treat
 * it as POLICY_DENY_INTERNAL.  On pw's thread only.
 */
struct policy_req *policy_postauth(struct policy_worker *pw, const struct sockaddr *sa,
                                   socklen_t salen, const char *key, size_t key_len,
                                   enum proto_kind proto, uint64_t now_ms, policy_answer_cb cb,
                                   void *arg);

/*
 * Cancel *reqp (the connection closed first): cb will not run, the session
 * it reserved is released.  A lock write already under way may still land:
 * the account is then locked to proto, as after a login the client gave up
 * on.  On pw's thread; takes NULL; sets *reqp NULL; inside the request's own
 * callback it does nothing.
 */
void policy_req_cancel(struct policy_req **reqp);

/* A session that got POLICY_ALLOW ended, for any reason. */
void policy_session_end(struct policy *p, const char *key, size_t key_len, enum proto_kind proto);

/* The state store (`state`): its kind ("lmdb", ...), or NULL when none is
 * configured; and whether it is usable now.  An LMDB store is opened by
 * policy_new() or the process does not start, so it stays up; Redis is up
 * while a worker's link to the master is ready.  Thread-safe. */
const char *policy_state_name(const struct policy *p);
bool policy_state_up(const struct policy *p);
/* The store's status (store.h: up, the master in use, failovers); false
 * when there is no store.  Thread-safe. */
struct store_status;
bool policy_state_status(const struct policy *p, struct store_status *out);
/* ---- the fleet (a shared store: Redis) ------------------------------------ */

/*
 * policy_postauth() with the session's identity for the fleet's registry:
 * sid (the connection's random cid) and the backend it logged in at.
 * Without a shared store it is policy_postauth().  With one, the
 * concurrent lock and max_sessions_per_user count the whole fleet's live
 * sessions (one atomic store step after this process's own count), and
 * the session must be ended with policy_session_end_sid().  Everything the
 * store is asked is bounded by state_timeout in all; when the store is
 * slow or down, state_unavailable decides: "local" (this process's counts
 * and the state_fallback LMDB; logged as state.degraded) or "refuse".
 */
struct policy_req *policy_postauth_sid(struct policy_worker *pw, const struct sockaddr *sa,
                                       socklen_t salen, const char *key, size_t key_len,
                                       enum proto_kind proto, uint64_t sid, const char *backend,
                                       uint64_t now_ms, policy_answer_cb cb, void *arg);
/* The session allowed by policy_postauth_sid() ended; on pw's thread. */
void policy_session_end_sid(struct policy_worker *pw, const char *key, size_t key_len,
                            enum proto_kind proto, uint64_t sid);

/* policy_login_failed(), and with a shared store the failure is counted in
 * the fleet too (asynchronously: see policy.c, "Throttling in a fleet"). */
uint64_t policy_login_failed_pw(struct policy_worker *pw, const struct sockaddr *sa,
                                socklen_t salen, const char *key, size_t key_len, uint64_t now_ms);

/* The route of an account key from the state store (`postern route set`, or the
 * table a provisioning system keeps with route_lookup = "state"). */
struct policy_route_answer {
	/* the backend the store names, or NULL: use the config's rules */
	const char *backend;
	bool degraded; /* the store did not answer (in time): config rules */
};
/* Runs on pw's loop, never before policy_route_lookup() returns; a is valid
 * during the call; the request is freed after it returns. */
typedef void (*policy_route_cb)(void *arg, const struct policy_route_answer *a);
/* Ask; NULL when there is nothing to ask (no store: use the config) or
 * out of memory; then no callback comes.  Cancel with
 * policy_route_cancel() until cb runs. */
struct policy_route_req *policy_route_lookup(struct policy_worker *pw, const char *key,
                                             size_t key_len, policy_route_cb cb, void *arg);
void policy_route_cancel(struct policy_route_req **rp);

/*
 * End user's sessions on this proxy (a kick from the fleet channel, sent by
 * `postern kick --user U` or `route set ... --kick` on any proxy).  user is
 * the account key, valid during the call; runs on the loop of the one
 * worker that holds the channel's connection, and must not call back into
 * the policy.  The policy cannot reach the connections itself (they live
 * above it), so the daemon hands it this hook.
 */
typedef void (*policy_kick_cb)(void *arg, const char *user);
/* Register the kick (NULL: none; a kick is then only logged as
 * `event=fleet.kick`).  Not locked: call before the workers' loops run. */
void policy_set_kick(struct policy *p, policy_kick_cb cb, void *arg);

/* Wall clock in ms, for callers without a loop at hand. */
uint64_t policy_now_ms(void);

/* ---- admin commands (policy_admin.c) ------------------------------------- */

/*
 * `postern -c FILE lock show USER | set USER imap|pop3 | clear USER | list`:
 * argv[0] is "lock".  Works on the store of cfg->state, also while the
 * daemon runs (another process); writes are durable when it returns.
 * Prints results to out, problems to err.  Returns the exit code: 0 done,
 * 1 failed, 2 usage.
 */
int policy_admin_main(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);
/* The same with the clock given (tests). */
int policy_admin_run(const struct config *cfg, int argc, char **argv, uint64_t now_ms, FILE *out,
                     FILE *err);

/*
 * `postern -c FILE route set USER BACKEND [--kick] | clear USER | show USER`
 * and `kick --user USER`: argv[0] is "route" or "kick".  Routes go into the
 * store of cfg->state (a backend cfg does not name is refused); on a
 * shared store every proxy is told (its cached lookup of USER dropped; with
 * --kick, or for `kick`, USER's sessions ended everywhere).  Exit code as
 * policy_admin_main().
 */
int policy_admin_fleet(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);

#endif
