/*
 * policy.c: the API proxy/ calls.  Owns the policy settings snapshot (swapped
 * whole on reload), the per-worker mailbox for answers known at once, and
 * the post-auth request: static rule, then the live-session count, then the
 * sticky lock through the store.  Decides nothing itself (acl.c, connlimit.c,
 * ratelimit.c and protolock.c do) and never touches a client socket.  The
 * paths of a shared store (the fleet channel, fleet throttling, degraded
 * mode and its write-back, routes and their cache) are in policy_fleet.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counters.h"
#include "log.h"
#include "policy.h"
#include "policy_impl.h"
#include "protolock.h"
#include "route.h"
#include "store.h"

/*
 * The in-process table (counters.h): live entries are connections and
 * sessions, at most one each per open connection, so this bounds the
 * process at 128 Ki connections before anything is refused; throttle
 * entries are recent failed-login keys.  Entries are allocated as used.
 */
#define POLICY_LIVE_MAX     (128 * 1024)
#define POLICY_THROTTLE_MAX (64 * 1024)
#define FULL_LOG_EVERY_MS   60000 /* "counters table full" at most once a minute */

const char *const policy_verdict_name[] = {
    [POLICY_ALLOW] = "allow",
    [POLICY_DENY_ACL] = "acl",
    [POLICY_DENY_LIMIT] = "limit",
    [POLICY_DENY_THROTTLE] = "throttle",
    [POLICY_DENY_PROTOCOL] = "protocol",
    [POLICY_DENY_INTERNAL] = "internal",
};
_Static_assert(sizeof(policy_verdict_name) / sizeof(policy_verdict_name[0]) == POLICY__COUNT,
               "policy_verdict_name must name every verdict");

uint64_t
policy_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *
policy_state_name(const struct policy *p)
{
	return p != NULL && p->store != NULL ? store_name(p->store) : NULL;
}

bool
policy_state_status(const struct policy *p, struct store_status *out)
{
	/* p->store is set once by policy_new() and kept until policy_free(). */
	if (p == NULL || p->store == NULL)
		return false;
	store_status_get(p->store, out);
	return true;
}

bool
policy_state_up(const struct policy *p)
{
	struct store_status s;

	return policy_state_status(p, &s) && s.up;
}

/* ---- settings ------------------------------------------------------------ */

void
policy_conf_put(struct policy_conf **cp)
{
	struct policy_conf *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	protolock_rules_free(&c->rules);
	free(c->allow);
	free(c->deny);
	free(c->state);
	free(c);
}

struct policy_conf *
policy_conf_get(struct policy *p)
{
	struct policy_conf *c;

	pthread_mutex_lock(&p->conf_mu);
	c = p->conf;
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&p->conf_mu);
	return c;
}

static struct cidr_conf *
dup_nets(const struct cidr_conf *nets, size_t n, bool *oom)
{
	struct cidr_conf *d;

	if (n == 0)
		return NULL;
	if ((d = malloc(n * sizeof(*d))) == NULL) {
		*oom = true;
		return NULL;
	}
	memcpy(d, nets, n * sizeof(*d));
	return d;
}

static struct policy_conf *
conf_build(const struct config *cfg, FILE *errs)
{
	const char *name = cfg->path ? cfg->path : "config";
	struct policy_conf *c = calloc(1, sizeof(*c));
	bool oom = false;

	if (c == NULL)
		goto oom;
	atomic_init(&c->refs, 1);
	c->mode = (enum protocol_lock_mode)cfg->policy.protocol_lock;
	c->expire_ms = cfg->policy.lock_expire_ms;
	c->default_mask =
	    cfg->policy.protocols_default ? cfg->policy.protocols_default : PROTO_MASK_ALL;
	c->max_conn_per_ip = (uint32_t)cfg->policy.max_connections_per_ip;
	c->max_sess_per_user = (uint32_t)cfg->policy.max_sessions_per_user;
	c->sieve_lock = (enum sieve_lock_mode)cfg->policy.sieve_lock;
	c->sieve_sessions = (enum sieve_sessions_mode)cfg->policy.sieve_sessions;
	c->allow = dup_nets(cfg->policy.allow, cfg->policy.nallow, &oom);
	c->nallow = cfg->policy.nallow;
	c->deny = dup_nets(cfg->policy.deny, cfg->policy.ndeny, &oom);
	c->ndeny = cfg->policy.ndeny;
	c->v6_prefix = cfg->policy.ipv6_prefix ? (unsigned)cfg->policy.ipv6_prefix : 64;
	c->rl_ip_user.limit = (uint32_t)cfg->policy.throttle.ip_user_limit;
	c->rl_ip.limit = (uint32_t)cfg->policy.throttle.ip_limit;
	c->rl_ip_user.window_ms = c->rl_ip.window_ms =
	    cfg->policy.throttle.window_ms ? cfg->policy.throttle.window_ms : 1;
	c->delay_base_ms = cfg->policy.throttle.delay_base_ms;
	c->delay_max_ms = cfg->policy.throttle.delay_max_ms;
	if (cfg->state != NULL && (c->state = strdup(cfg->state)) == NULL)
		oom = true;
	if (oom)
		goto oom;
	/* rules are read whatever the mode: a reload may turn them on */
	if ((c->rules = protolock_rules_from_config(cfg, errs)) == NULL) {
		policy_conf_put(&c);
		return NULL;
	}
	return c;
oom:
	if (errs != NULL)
		fprintf(errs, "%s:0: policy: out of memory\n", name);
	policy_conf_put(&c);
	return NULL;
}

int
policy_check(const struct config *cfg, FILE *errs)
{
	struct policy_conf *c = conf_build(cfg, errs);

	if (c == NULL)
		return -1;
	policy_conf_put(&c);
	return 0;
}

struct policy *
policy_new(const struct config *cfg, FILE *errs)
{
	struct policy *p = calloc(1, sizeof(*p));
	const char *err = NULL;

	if (p == NULL || pthread_mutex_init(&p->conf_mu, NULL) != 0) {
		free(p);
		if (errs != NULL)
			fprintf(errs, "%s:0: policy: out of memory\n",
			        cfg->path ? cfg->path : "config");
		return NULL;
	}
	atomic_init(&p->last_full_log_ms, 0);
	atomic_init(&p->last_store_log_ms, 0);
	atomic_init(&p->store_log_dropped, 0);
	if ((p->conf = conf_build(cfg, errs)) == NULL)
		goto fail;
	if ((p->ctr = counters_new(POLICY_LIVE_MAX, POLICY_THROTTLE_MAX)) == NULL) {
		err = "out of memory";
		goto fail;
	}
	if (cfg->state != NULL) {
		struct store_params sp;

		store_params_from_config(cfg, &sp);
		if ((p->store = store_open_with(cfg->state, &sp, STORE_CREATE, &err)) == NULL)
			goto fail;
	}
	if (p->conf->mode == PLOCK_STICKY && p->store == NULL) {
		err = "protocol_lock = \"sticky\" needs a state store";
		goto fail;
	}
	p->unavail = (enum state_unavailable_mode)cfg->state_unavailable;
	p->timeout_ms = cfg->state_timeout_ms ? cfg->state_timeout_ms : 250;
	if (p->store != NULL) {
		p->shared = store_is_shared(p->store);
		if ((p->routes = calloc(ROUTE_CACHE_SLOTS, sizeof(*p->routes))) == NULL ||
		    pthread_mutex_init(&p->route_mu, NULL) != 0) {
			free(p->routes);
			p->routes = NULL;
			err = "out of memory";
			goto fail;
		}
	}
	if (cfg->state_fallback != NULL &&
	    (p->fallback = store_open(cfg->state_fallback, STORE_CREATE, &err)) == NULL)
		goto fail;
	if (p->shared) {
		store_subscribe(p->store, policy_on_fleet_event, p);
		log_kv(LOG_INFO, "fleet.start",
		       "proxy_id=%s heartbeat_ms=%llu state_unavailable=%s fallback=%s",
		       store_proxy_id(p->store), (unsigned long long)cfg->state_heartbeat_ms,
		       p->unavail == STATE_UNAVAIL_REFUSE ? "refuse" : "local",
		       p->fallback != NULL ? "lmdb" : "none");
	}
	return p;
fail:
	if (err != NULL && errs != NULL)
		fprintf(errs, "%s:0: state \"%s\": %s\n", cfg->path ? cfg->path : "config",
		        cfg->state ? cfg->state : "", err);
	policy_free(&p);
	return NULL;
}

void
policy_free(struct policy **pp)
{
	struct policy *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	store_close(&p->store);
	store_close(&p->fallback);
	if (p->routes != NULL) {
		free(p->routes);
		pthread_mutex_destroy(&p->route_mu);
	}
	counters_free(&p->ctr);
	policy_conf_put(&p->conf);
	pthread_mutex_destroy(&p->conf_mu);
	free(p);
}

int
policy_reload(struct policy *p, const struct config *cfg, FILE *errs)
{
	struct policy_conf *c, *old;
	const char *name = cfg->path ? cfg->path : "config";

	if ((c = conf_build(cfg, errs)) == NULL)
		return -1;
	old = policy_conf_get(p);
	if ((c->state == NULL) != (old->state == NULL) ||
	    (c->state != NULL && strcmp(c->state, old->state) != 0)) {
		if (errs != NULL)
			fprintf(errs, "%s:0: 'state' cannot change on reload: restart postern\n",
			        name);
		goto fail;
	}
	if (c->mode == PLOCK_STICKY && p->store == NULL) {
		if (errs != NULL)
			fprintf(errs, "%s:0: protocol_lock = \"sticky\" needs a state store\n",
			        name);
		goto fail;
	}
	policy_conf_put(&old);
	pthread_mutex_lock(&p->conf_mu);
	old = p->conf;
	p->conf = c;
	pthread_mutex_unlock(&p->conf_mu);
	policy_conf_put(&old);
	return 0;
fail:
	policy_conf_put(&old);
	policy_conf_put(&c);
	return -1;
}

/* Say once a minute that the table is full, not once per refusal. */
static void
warn_full(struct policy *p, uint64_t now_ms)
{
	uint64_t last = atomic_load(&p->last_full_log_ms);
	struct counters_stats s;

	if (now_ms - last < FULL_LOG_EVERY_MS && last != 0)
		return;
	if (!atomic_compare_exchange_strong(&p->last_full_log_ms, &last, now_ms))
		return;
	counters_stats(p->ctr, &s);
	log_kv(LOG_WARN, "policy.table_full", "live=%zu live_max=%zu refused=%llu", s.live,
	       s.live_max, (unsigned long long)s.refused_full);
}

/* A store failure: logged at most once a second (an overload would
 * otherwise log once per login), with the count of those not logged. */
void
policy_warn_store(struct policy *p, const char *user, size_t len, const char *err, uint64_t now_ms)
{
	uint64_t last = atomic_load(&p->last_store_log_ms);
	char qu[LOG_QUOTED_MAX];

	if ((last != 0 && now_ms - last < 1000) ||
	    !atomic_compare_exchange_strong(&p->last_store_log_ms, &last, now_ms)) {
		atomic_fetch_add(&p->store_log_dropped, 1);
		return;
	}
	log_kv(LOG_WARN, "store.error", "op=lock_update user=%s err=\"%s\" not_logged=%llu",
	       log_quote(qu, sizeof(qu), user, len), err ? err : "?",
	       (unsigned long long)atomic_exchange(&p->store_log_dropped, 0));
}

/* The account key into buf, cut to buflen - 1 (a key from account_key()
 * always fits ACCOUNT_KEY_MAX + 1): copied as it is, never normalised
 * again. */
size_t
policy_key_copy(const char *key, size_t len, char *buf, size_t buflen)
{
	size_t n = len < buflen - 1 ? len : buflen - 1;

	memcpy(buf, key, n);
	buf[n] = '\0';
	return n;
}

/* ---- pre-auth ------------------------------------------------------------ */

bool
policy_proxy_trusted(const struct listener_conf *lc, const struct sockaddr *sa, socklen_t salen)
{
	struct acl_addr a;

	return acl_addr_from_sockaddr(sa, salen, &a) == 0 &&
	       acl_find(lc->trusted, lc->ntrusted, &a) != NULL;
}

enum policy_verdict
policy_accept(struct policy *p, const struct sockaddr *sa, socklen_t salen, struct policy_conn *pc,
              enum policy_reason *reason_out)
{
	struct policy_conf *c;
	struct acl_addr a, key;
	enum connlimit_rc rc;
	enum policy_verdict v = POLICY_ALLOW;

	memset(pc, 0, sizeof(*pc));
	*reason_out = PR_OK;
	if (acl_addr_from_sockaddr(sa, salen, &a) < 0)
		return POLICY_ALLOW; /* not an IP client (a local socket): nothing to check */
	c = policy_conf_get(p);
	if (!acl_allowed(c->allow, c->nallow, c->deny, c->ndeny, &a)) {
		*reason_out = PR_ACL;
		v = POLICY_DENY_ACL;
		goto out;
	}
	key = acl_addr_prefix(&a, c->v6_prefix);
	rc = counters_conn_open(p->ctr, &key, c->max_conn_per_ip);
	if (rc == CONNLIMIT_OK) {
		pc->key = key;
		pc->counted = true;
	} else {
		*reason_out = connlimit_reason(rc);
		v = POLICY_DENY_LIMIT;
		if (rc == CONNLIMIT_TABLE_FULL)
			warn_full(p, policy_now_ms());
	}
out:
	policy_conf_put(&c);
	return v;
}

void
policy_conn_closed(struct policy *p, struct policy_conn *pc)
{
	if (pc == NULL || !pc->counted)
		return;
	pc->counted = false;
	if (!counters_conn_close(p->ctr, &pc->key))
		log_kv(LOG_WARN, "policy.bug", "what=conn_closed_uncounted");
}

enum policy_verdict
policy_login_check(struct policy *p, const struct sockaddr *sa, socklen_t salen, const char *ukey,
                   size_t ukey_len, uint64_t now_ms, uint64_t *delay_ms_out)
{
	char u[ROUTE_USER_MAX + 1];
	struct counters_throttle t;
	struct policy_conf *c;
	struct acl_addr a, key;
	size_t ul;
	enum policy_verdict v = POLICY_ALLOW;

	*delay_ms_out = 0;
	if (acl_addr_from_sockaddr(sa, salen, &a) < 0)
		return POLICY_ALLOW;
	ul = policy_key_copy(ukey, ukey_len, u, sizeof(u));
	c = policy_conf_get(p);
	key = acl_addr_prefix(&a, c->v6_prefix);
	counters_throttle_check(p->ctr, &key, u, ul, &c->rl_ip_user, &c->rl_ip, now_ms, &t);
	if (t.ip_user_blocked || t.ip_blocked) {
		/* refused attempts wait as long as the slowest failure: a
		 * blocked client gains nothing by hammering */
		*delay_ms_out = c->delay_max_ms;
		v = POLICY_DENY_THROTTLE;
	}
	policy_conf_put(&c);
	return v;
}

uint64_t
policy_login_failed(struct policy *p, const struct sockaddr *sa, socklen_t salen, const char *ukey,
                    size_t ukey_len, uint64_t now_ms)
{
	char u[ROUTE_USER_MAX + 1], qu[LOG_QUOTED_MAX], ip[ACL_ADDR_STRLEN];
	struct counters_throttle t;
	struct policy_conf *c;
	struct acl_addr a, key;
	uint64_t delay;
	uint32_t n;
	size_t ul;

	if (acl_addr_from_sockaddr(sa, salen, &a) < 0)
		return 0;
	ul = policy_key_copy(ukey, ukey_len, u, sizeof(u));
	c = policy_conf_get(p);
	key = acl_addr_prefix(&a, c->v6_prefix);
	counters_throttle_fail(p->ctr, &key, u, ul, &c->rl_ip_user, &c->rl_ip, now_ms, &t);
	/* the tarpit grows with the key nearest its limit: the address's
	 * failures count in units of the (address, user) limit, so spraying
	 * many users from one address slows down too */
	n = t.ip_user_failures;
	if (c->rl_ip.limit != 0 && c->rl_ip_user.limit != 0) {
		uint64_t scaled = (uint64_t)t.ip_failures * c->rl_ip_user.limit / c->rl_ip.limit;

		if (scaled > n)
			n = (uint32_t)scaled;
	}
	delay = ratelimit_delay(n, c->delay_base_ms, c->delay_max_ms);
	if (t.newly_blocked)
		log_kv(LOG_INFO, "throttle.block",
		       "client=%s user=%s key=%s failures=%u ip_failures=%u for_ms=%llu",
		       acl_addr_str(&key, ip, sizeof(ip)), log_quote(qu, sizeof(qu), u, ul),
		       t.ip_user_blocked ? "ip_user" : "ip", t.ip_user_failures, t.ip_failures,
		       (unsigned long long)(t.until_ms > now_ms ? t.until_ms - now_ms : 0));
	policy_conf_put(&c);
	return delay;
}

/* ---- post-auth ----------------------------------------------------------- */

static void
pending_unlink(struct policy_req *r)
{
	struct policy_worker *pw = r->pw;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else if (pw->pending == r)
		pw->pending = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

void
policy_release(struct policy_req *r)
{
	if (!r->reserved)
		return;
	r->reserved = false;
	counters_session_end(r->pw->p->ctr, r->user, r->user_len, r->sess_proto);
	if (r->registered && r->pw->sw != NULL)
		store_session_end(r->pw->sw, r->user, r->user_len, r->sid);
	r->registered = false;
}

/* Run r's callback and free r.  The session, if allowed, is the caller's now. */
void
policy_deliver(struct policy_req *r)
{
	pending_unlink(r);
	if (r->ans.verdict == POLICY_ALLOW)
		r->reserved = false; /* handed over: policy_session_end() ends it */
	else
		policy_release(r);
	r->delivering = true;
	r->cb(r->arg, &r->ans); /* the caller's connection may be freed here */
	free(r);
}

static void
pw_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct policy_worker *pw =
	    (struct policy_worker *)(void *)((char *)w - offsetof(struct policy_worker, async));
	struct policy_req *r = pw->ready_head, *next;

	struct policy_route_req *rr = pw->route_ready, *rnext;

	(void)loop;
	(void)revents;
	pw->route_ready = NULL;
	for (; rr != NULL; rr = rnext) {
		rnext = rr->next;
		if (!rr->cancelled) {
			struct policy_route_answer a = {rr->backend[0] ? rr->backend : NULL, false};

			rr->cancelled = true; /* a cancel from inside the callback does nothing */
			rr->cb(rr->arg, &a);
		}
		free(rr);
	}
	pw->ready_head = pw->ready_tail = NULL;
	for (; r != NULL; r = next) {
		next = r->ready_next;
		/* a callback may cancel a later request of this list: look now */
		if (r->cancelled)
			free(r);
		else
			policy_deliver(r);
	}
}

/* Answer r on the loop's next turn, never from inside policy_postauth(). */
static void
answer_soon(struct policy_req *r, enum policy_verdict v, enum policy_reason reason,
            enum proto_kind allowed)
{
	struct policy_worker *pw = r->pw;

	r->ans.verdict = v;
	r->ans.reason = reason;
	r->ans.allowed = allowed;
	r->on_ready = true;
	r->ready_next = NULL;
	if (pw->ready_tail != NULL)
		pw->ready_tail->ready_next = r;
	else
		pw->ready_head = r;
	pw->ready_tail = r;
	ev_async_send(pw->loop, &pw->async);
}

static void answer_soon(struct policy_req *r, enum policy_verdict v, enum policy_reason reason,
                        enum proto_kind allowed);

/* Answer r now (from a callback) or on the next loop turn (inside the call). */
void
policy_respond(struct policy_req *r)
{
	if (r->in_call)
		answer_soon(r, r->ans.verdict, r->ans.reason, r->ans.allowed);
	else
		policy_deliver(r);
}

void
policy_on_store_answer(void *arg, int rc, const char *err, const struct store_claim_answer *a)
{
	struct policy_req *r = arg;
	struct protolock_decision d;
	char qu[LOG_QUOTED_MAX];

	r->sreq = NULL;
	if (rc != 0 && r->pw->p->shared && !r->fallback_claim) {
		policy_claim_degraded(r, err);
		return;
	}
	if (rc != 0) {
		policy_warn_store(r->pw->p, r->user, r->user_len, err, r->now_ms);
		r->ans = (struct policy_answer){POLICY_DENY_INTERNAL, PR_STORE_ERROR, PROTO__COUNT};
	} else {
		if (r->fallback_claim &&
		    (a->outcome == STORE_CLAIM_CREATED || a->outcome == STORE_CLAIM_REPLACED ||
		     a->outcome == STORE_CLAIM_HELD || a->outcome == STORE_CLAIM_REFRESHED))
			policy_pending_lock_add(r->pw, r->user, r->user_len, r->proto, r->now_ms);
		d = protolock_from_claim(a);
		r->ans = (struct policy_answer){d.verdict, d.reason, d.allowed};
		if (d.write == PROTOLOCK_CREATE || d.write == PROTOLOCK_REPLACE)
			log_kv(LOG_INFO, "lock.create", "user=%s proto=%s replaced=%s",
			       log_quote(qu, sizeof(qu), r->user, r->user_len),
			       proto_name(d.rec.proto),
			       d.write == PROTOLOCK_REPLACE ? "expired" : "none");
	}
	policy_deliver(r);
}

/* 3. the sticky lock: read, decide, write in one store step */
void
policy_step_claim(struct policy_req *r)
{
	struct policy_worker *pw = r->pw;
	struct policy *p = pw->p;
	struct store_claim claim;
	const char *err = "no state store";

	if (!r->uses_store) {
		r->ans = (struct policy_answer){POLICY_ALLOW, r->degraded ? PR_OK_DEGRADED : PR_OK,
		                                PROTO__COUNT};
		policy_respond(r);
		return;
	}
	if (r->degraded && p->shared) {
		/* the registry did not answer in time: no second wait */
		policy_claim_degraded(r, "the store did not answer the session check");
		return;
	}
	claim = protolock_claim(r->proto, r->now_ms, r->expire_ms);
	if (pw->sw != NULL)
		r->sreq = store_lock_claim_until(pw->sw, r->user, r->user_len, &claim,
		                                 r->deadline_ms, policy_on_store_answer, r, &err);
	if (r->sreq != NULL)
		return;
	if (p->shared) {
		policy_claim_degraded(r, err);
		return;
	}
	policy_warn_store(p, r->user, r->user_len, err, r->now_ms);
	r->ans = (struct policy_answer){POLICY_DENY_INTERNAL, PR_STORE_ERROR, PROTO__COUNT};
	policy_respond(r);
}

struct policy_req *
policy_postauth(struct policy_worker *pw, const struct sockaddr *sa, socklen_t salen,
                const char *key, size_t key_len, enum proto_kind proto, uint64_t now_ms,
                policy_answer_cb cb, void *arg)
{
	return policy_postauth_sid(pw, sa, salen, key, key_len, proto, 0, NULL, now_ms, cb, arg);
}

struct policy_req *
policy_postauth_sid(struct policy_worker *pw, const struct sockaddr *sa, socklen_t salen,
                    const char *ukey, size_t ukey_len, enum proto_kind proto, uint64_t sid,
                    const char *backend, uint64_t now_ms, policy_answer_cb cb, void *arg)
{
	struct policy *p = pw->p;
	struct policy_req *r = calloc(1, sizeof(*r));
	struct protolock_decision d;
	struct protolock_rule rule;
	struct policy_conf *c;
	struct acl_addr a;
	enum connlimit_rc rc;
	bool sieve, lock, count;

	if (r == NULL)
		return NULL;
	r->pw = pw;
	r->cb = cb;
	r->arg = arg;
	r->proto = proto;
	r->sess_proto = proto;
	r->now_ms = now_ms;
	r->sid = sid;
	r->in_call = true;
	if (backend != NULL)
		snprintf(r->backend, sizeof(r->backend), "%s", backend);
	/* every store question of this login together: one state_timeout */
	r->deadline_ms = policy_now_ms() + p->timeout_ms;
	r->next = pw->pending;
	if (pw->pending != NULL)
		pw->pending->prev = r;
	pw->pending = r;
	r->user_len = policy_key_copy(ukey, ukey_len, r->user, sizeof(r->user));
	c = policy_conf_get(p);
	r->expire_ms = c->expire_ms;

	/* the password was right: this pair's failures are forgiven */
	if (acl_addr_from_sockaddr(sa, salen, &a) == 0) {
		struct acl_addr key = acl_addr_prefix(&a, c->v6_prefix);

		counters_throttle_clear(p->ctr, &key, r->user, r->user_len);
		if (p->shared && pw->sw != NULL) {
			char iu[STORE_KEY_MAX + 1], ipk[STORE_KEY_MAX + 1];
			size_t iul, ipl;

			policy_throttle_keys(&key, r->user, r->user_len, iu, &iul, ipk, &ipl);
			store_throttle_clear(pw->sw, iu, iul);
		}
	}
	if ((unsigned)proto >= PROTO__COUNT) {
		answer_soon(r, POLICY_DENY_INTERNAL, PR_BAD_PROTOCOL, PROTO__COUNT);
		goto out;
	}

	/* ManageSieve edits filters, it reads no mail: the lock leaves it
	 * alone unless sieve_lock = "as_imap" (then it is an IMAP login to the
	 * static rules and the sticky lock), and it counts among the user's
	 * sessions only with sieve_sessions = "count".  The concurrent lock is
	 * about mail sessions: a ManageSieve session never takes part in it. */
	sieve = proto == PROTO_SIEVE;
	lock = !sieve || c->sieve_lock == SIEVE_LOCK_AS_IMAP;
	count = !sieve || c->sieve_sessions == SIEVE_SESSIONS_COUNT;
	if (sieve && lock)
		r->proto = PROTO_IMAP;

	/* 1. a static rule: no count, no store */
	if (lock) {
		rule = protolock_rules_lookup(c->rules, r->user, r->user_len, c->default_mask);
		d = protolock_decide(c->mode, rule, NULL, r->proto, now_ms, c->expire_ms);
		if (d.verdict != POLICY_ALLOW) {
			answer_soon(r, d.verdict, d.reason, d.allowed);
			goto out;
		}
		r->uses_store = protolock_uses_store(c->mode, rule);
	}
	if (!count)
		goto claim;

	/* 2. count the session, checked and counted in one step: here first
	 * (this proxy's sessions are among the fleet's, so a refusal here is
	 * one there too), then in the fleet's registry */
	rc = counters_session_begin(p->ctr, r->user, r->user_len, proto, c->max_sess_per_user,
	                            c->mode == PLOCK_CONCURRENT && !sieve);
	if (rc == CONNLIMIT_OTHER_PROTO) {
		answer_soon(r, POLICY_DENY_PROTOCOL, connlimit_reason(rc),
		            proto == PROTO_IMAP ? PROTO_POP3 : PROTO_IMAP);
		goto out;
	}
	if (rc != CONNLIMIT_OK) {
		if (rc == CONNLIMIT_TABLE_FULL)
			warn_full(p, now_ms);
		answer_soon(r, POLICY_DENY_LIMIT, connlimit_reason(rc), PROTO__COUNT);
		goto out;
	}
	r->reserved = true;
	if (p->shared && pw->sw != NULL && sid != 0 &&
	    (c->mode == PLOCK_CONCURRENT || c->max_sess_per_user != 0)) {
		struct store_session ss = {.id = sid, .proto = proto, .since_ms = now_ms};
		const char *err = NULL;

		memcpy(ss.backend, r->backend, sizeof(ss.backend));
		r->registered = true;
		r->sreq =
		    store_session_begin(pw->sw, r->user, r->user_len, &ss, c->max_sess_per_user,
		                        c->mode == PLOCK_CONCURRENT && !sieve, r->deadline_ms,
		                        policy_on_session_answer, r, &err);
		if (r->sreq == NULL) {
			r->registered = false;
			policy_session_degraded(r, err);
		}
		goto out;
	}

claim:
	/* 3. the sticky lock */
	policy_step_claim(r);
out:
	r->in_call = false;
	policy_conf_put(&c);
	return r;
}

void
policy_req_cancel(struct policy_req **reqp)
{
	struct policy_req *r = *reqp;

	if (r == NULL)
		return;
	*reqp = NULL;
	if (r->delivering || r->cancelled)
		return;
	policy_release(r);
	pending_unlink(r);
	if (r->sreq != NULL) {
		/* the store frees its request; its callback will not come */
		store_req_cancel(r->sreq);
		free(r);
	} else {
		r->cancelled = true; /* the ready list frees it */
	}
}

void
policy_session_end_sid(struct policy_worker *pw, const char *key, size_t key_len,
                       enum proto_kind proto, uint64_t sid)
{
	char u[ROUTE_USER_MAX + 1];
	size_t ul = policy_key_copy(key, key_len, u, sizeof(u));

	policy_session_end(pw->p, key, key_len, proto);
	if (pw->p->shared && pw->sw != NULL && sid != 0)
		store_session_end(pw->sw, u, ul, sid);
}

void
policy_session_end(struct policy *p, const char *key, size_t key_len, enum proto_kind proto)
{
	char u[ROUTE_USER_MAX + 1];
	size_t ul = policy_key_copy(key, key_len, u, sizeof(u));

	/* a ManageSieve session is counted only under sieve_sessions = "count" */
	if (!counters_session_end(p->ctr, u, ul, proto) && proto != PROTO_SIEVE)
		log_kv(LOG_WARN, "policy.bug", "what=session_end_uncounted proto=%s",
		       proto_name(proto));
}

/* ---- workers ------------------------------------------------------------- */

struct policy_worker *
policy_worker_new(struct policy *p, struct ev_loop *loop, const char **err_out)
{
	struct policy_worker *pw = calloc(1, sizeof(*pw));

	if (pw == NULL) {
		*err_out = "out of memory";
		return NULL;
	}
	pw->p = p;
	pw->loop = loop;
	if (p->store != NULL && (pw->sw = store_worker_new(p->store, loop, err_out)) == NULL) {
		free(pw);
		return NULL;
	}
	if (p->fallback != NULL &&
	    (pw->fsw = store_worker_new(p->fallback, loop, err_out)) == NULL) {
		store_worker_free(&pw->sw);
		free(pw);
		return NULL;
	}
	if (p->shared)
		store_worker_on_recovered(pw->sw, policy_on_recovered, pw);
	ev_async_init(&pw->async, pw_async_cb);
	ev_async_start(loop, &pw->async);
	ev_unref(loop); /* pending answers alone do not keep the loop running */
	return pw;
}

void
policy_worker_free(struct policy_worker **pwp)
{
	struct policy_worker *pw = *pwp;
	struct policy_req *r, *next;

	if (pw == NULL)
		return;
	*pwp = NULL;
	while ((r = pw->pending) != NULL) {
		struct policy_req *tmp = r;

		policy_req_cancel(&tmp);
	}
	for (r = pw->ready_head; r != NULL; r = next) {
		next = r->ready_next;
		free(r); /* every one is cancelled by now */
	}
	pw->ready_head = pw->ready_tail = NULL;
	for (struct policy_route_req *rr = pw->route_ready, *rn; rr != NULL; rr = rn) {
		rn = rr->next;
		free(rr);
	}
	pw->route_ready = NULL;
	store_worker_free(&pw->sw);
	store_worker_free(&pw->fsw);
	while (pw->locks != NULL) {
		struct pending_lock *l = pw->locks;

		pw->locks = l->next;
		free(l);
	}
	ev_ref(pw->loop);
	ev_async_stop(pw->loop, &pw->async);
	free(pw);
}
