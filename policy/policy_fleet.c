/*
 * policy_fleet.c: the policy's paths when the store is shared (Redis): the
 * fleet channel (kicks, routes, blocks), throttling counted across the
 * fleet, the session registry and degraded mode (state_unavailable) with the
 * write-back of locks granted meanwhile, and routes from the store with
 * their cache.  Decides nothing itself and never touches a client socket.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "counters.h"
#include "hash.h"
#include "log.h"
#include "policy.h"
#include "policy_impl.h"
#include "protolock.h"
#include "route.h"
#include "store.h"

#define PENDING_LOCKS_MAX  65536 /* locks granted while degraded, per worker, to write back */
#define ROUTE_CACHE_TTL_MS 30000 /* ... for this long; `route set` drops them at once */

/* ---- the fleet channel, and the warning of degraded mode ---------------- */

void
policy_set_kick(struct policy *p, policy_kick_cb cb, void *arg)
{
	p->kick = cb;
	p->kick_arg = arg;
}

/* A kick for user (an account key): the daemon's hook ends the sessions;
 * without one there is nothing here to end, so say so. */
static void
policy_kick(struct policy *p, const char *user)
{
	char qu[LOG_QUOTED_MAX];

	if (p->kick != NULL) {
		p->kick(p->kick_arg, user);
		return;
	}
	log_kv(LOG_INFO, "fleet.kick", "user=%s note=\"no local kick in this build\"",
	       log_quote(qu, sizeof(qu), user, strlen(user)));
}

/* FNV-1a: not client-aimable in a way that matters: a collision costs a
 * cache miss */
static uint64_t
rcache_hash(const char *user, size_t len)
{
	return hash_fnv1a(HASH_FNV64_OFFSET, user, len) | 1;
}

static void
route_forget(struct policy *p, const char *user, size_t len)
{
	if (p->routes == NULL)
		return;
	pthread_mutex_lock(&p->route_mu);
	if (len == 0) {
		memset(p->routes, 0, ROUTE_CACHE_SLOTS * sizeof(*p->routes));
	} else {
		uint64_t h = rcache_hash(user, len);

		p->routes[h % ROUTE_CACHE_SLOTS].until_ms = 0;
	}
	pthread_mutex_unlock(&p->route_mu);
}

/*
 * "IUFAILS IPFAILS IULEFT IPLEFT ADDR|user": another proxy saw a key reach
 * its limit; take the fleet's counts, so that this proxy refuses at once
 * rather than after its own next failure.
 */
static void
throttle_learn(struct policy *p, const char *msg, size_t len)
{
	char buf[STORE_KEY_MAX + 96], addr[ACL_ADDR_STRLEN + 1], *bar;
	unsigned long long iu, ip, iul, ipl;
	struct sockaddr_storage ss = {0};
	struct policy_conf *c;
	struct acl_addr a, key;
	int off = 0;

	if (len >= sizeof(buf))
		return;
	memcpy(buf, msg, len);
	buf[len] = '\0';
	if (sscanf(buf, "%llu %llu %llu %llu %n", &iu, &ip, &iul, &ipl, &off) != 4 || off <= 0 ||
	    (bar = strchr(buf + off, '|')) == NULL || (size_t)(bar - (buf + off)) >= sizeof(addr))
		return;
	memcpy(addr, buf + off, (size_t)(bar - (buf + off)));
	addr[bar - (buf + off)] = '\0';
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)(void *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return;
	if (acl_addr_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), &a) < 0)
		return;
	c = policy_conf_get(p);
	key = acl_addr_prefix(&a, c->v6_prefix);
	if (counters_throttle_merge(p->ctr, &key, bar + 1, strlen(bar + 1), &c->rl_ip_user,
	                            &c->rl_ip, (uint32_t)iu, iul, (uint32_t)ip, ipl,
	                            policy_now_ms())) {
		char qu[LOG_QUOTED_MAX];

		log_kv(LOG_INFO, "throttle.block",
		       "client=%s user=%s key=fleet failures=%llu ip_failures=%llu via=channel",
		       addr, log_quote(qu, sizeof(qu), bar + 1, strlen(bar + 1)), iu, ip);
	}
	policy_conf_put(&c);
}

/* The fleet channel (one worker's loop). */
void
policy_on_fleet_event(void *arg, enum store_event ev, const char *user, size_t len)
{
	struct policy *p = arg;
	char u[ROUTE_USER_MAX + 1], qu[LOG_QUOTED_MAX];
	size_t ul = len > 0 ? account_key_normalize(user, len, u, sizeof(u)) : 0;

	switch (ev) {
	case STORE_EVENT_KICK:
		if (ul == 0)
			return;
		log_kv(LOG_INFO, "fleet.kick_received", "user=%s",
		       log_quote(qu, sizeof(qu), u, ul));
		policy_kick(p, u);
		break;
	case STORE_EVENT_ROUTE:
		if (ul != 0)
			route_forget(p, u, ul);
		break;
	case STORE_EVENT_RESYNC:
		route_forget(p, "", 0);
		break;
	case STORE_EVENT_BLOCK:
		throttle_learn(p, user, len);
		break;
	}
}

/* Decided without the shared store: said at most once a second. */
static void
warn_degraded(struct policy *p, const char *op, const char *err, uint64_t now_ms)
{
	uint64_t last = atomic_load(&p->last_degraded_log_ms);

	if ((last != 0 && now_ms - last < 1000) ||
	    !atomic_compare_exchange_strong(&p->last_degraded_log_ms, &last, now_ms)) {
		atomic_fetch_add(&p->degraded_dropped, 1);
		return;
	}
	log_kv(LOG_WARN, "state.degraded", "op=%s mode=%s fallback=%s err=\"%s\" not_logged=%llu",
	       op, p->unavail == STATE_UNAVAIL_REFUSE ? "refuse" : "local",
	       p->fallback != NULL ? "lmdb" : "none", err ? err : "?",
	       (unsigned long long)atomic_exchange(&p->degraded_dropped, 0));
}

/* ---- throttling in a fleet ---------------------------------------------- */

/*
 * Throttling in a fleet.  The check before a login stays synchronous and
 * local (policy_login_check() reads this process's table: no round trip,
 * no wait, nothing to time out), and every failure is also counted in the
 * shared store (one script: INCR and PEXPIRE on both keys), whose answer,
 * the fleet's count, is merged into the local table.  So an attacker who
 * sprays across N proxies is counted once, and a proxy learns the fleet's
 * count with its own next failure on the key: at most N - 1 attempts
 * beyond the limit per window in the whole fleet, each one tarpitted.
 */
struct thr_req {
	struct policy *p;
	struct policy_worker *pw; /* its loop answers; freed after its requests */
	struct acl_addr key;
	char user[ROUTE_USER_MAX + 1];
	size_t len;
	uint64_t now_ms;
};

static void
on_throttle_answer(void *arg, int rc, const char *err, const struct store_throttle_answer *a)
{
	struct thr_req *t = arg;
	struct policy *p = t->p;
	struct policy_conf *c;
	char qu[LOG_QUOTED_MAX], ip[ACL_ADDR_STRLEN];

	if (rc != 0) {
		warn_degraded(p, "throttle", err, t->now_ms);
		free(t);
		return;
	}
	c = policy_conf_get(p);
	/* the failure that took a key to its limit tells the whole fleet */
	if ((c->rl_ip_user.limit != 0 && a->ip_user == c->rl_ip_user.limit) ||
	    (c->rl_ip.limit != 0 && a->ip == c->rl_ip.limit)) {
		char msg[STORE_KEY_MAX + 96], ipb[ACL_ADDR_STRLEN];
		int n = snprintf(msg, sizeof(msg), "%u %u %llu %llu %s|%.*s", a->ip_user, a->ip,
		                 (unsigned long long)a->ip_user_left_ms,
		                 (unsigned long long)a->ip_left_ms,
		                 acl_addr_str(&t->key, ipb, sizeof(ipb)), (int)t->len, t->user);

		if (n > 0 && (size_t)n < sizeof(msg) && t->pw->sw != NULL)
			store_announce(t->pw->sw, STORE_EVENT_BLOCK, msg, (size_t)n);
	}
	if (counters_throttle_merge(p->ctr, &t->key, t->user, t->len, &c->rl_ip_user, &c->rl_ip,
	                            a->ip_user, a->ip_user_left_ms, a->ip, a->ip_left_ms,
	                            t->now_ms))
		log_kv(LOG_INFO, "throttle.block",
		       "client=%s user=%s key=fleet failures=%u ip_failures=%u",
		       acl_addr_str(&t->key, ip, sizeof(ip)),
		       log_quote(qu, sizeof(qu), t->user, t->len), a->ip_user, a->ip);
	policy_conf_put(&c);
	free(t);
}

/* The store keys of the pair: "ADDR|user" and "ADDR". */
void
policy_throttle_keys(const struct acl_addr *key, const char *u, size_t ul, char *iu, size_t *iu_len,
                     char *ipk, size_t *ip_len)
{
	char ip[ACL_ADDR_STRLEN];
	int n;

	acl_addr_str(key, ip, sizeof(ip));
	n = snprintf(ipk, STORE_KEY_MAX, "%s", ip);
	*ip_len = n > 0 ? (size_t)n : 0;
	n = snprintf(iu, STORE_KEY_MAX, "%s|%.*s", ip, (int)ul, u);
	*iu_len = n < 0 ? 0 : (size_t)n >= STORE_KEY_MAX ? STORE_KEY_MAX - 1 : (size_t)n;
}

uint64_t
policy_login_failed_pw(struct policy_worker *pw, const struct sockaddr *sa, socklen_t salen,
                       const char *key, size_t key_len, uint64_t now_ms)
{
	struct policy *p = pw->p;
	uint64_t delay = policy_login_failed(p, sa, salen, key, key_len, now_ms);
	char iu[STORE_KEY_MAX + 1], ipk[STORE_KEY_MAX + 1];
	size_t iul, ipl;
	struct policy_conf *c;
	struct acl_addr a;
	struct thr_req *t;
	const char *err = NULL;

	if (!p->shared || pw->sw == NULL || acl_addr_from_sockaddr(sa, salen, &a) < 0)
		return delay;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return delay;
	c = policy_conf_get(p);
	t->p = p;
	t->pw = pw;
	t->key = acl_addr_prefix(&a, c->v6_prefix);
	t->len = policy_key_copy(key, key_len, t->user, sizeof(t->user));
	t->now_ms = now_ms;
	policy_throttle_keys(&t->key, t->user, t->len, iu, &iul, ipk, &ipl);
	/* the request is never cancelled: t lives until its answer */
	if (store_throttle_fail(pw->sw, iu, iul, ipk, ipl, c->rl_ip.window_ms, on_throttle_answer,
	                        t, &err) == NULL) {
		warn_degraded(p, "throttle", err, now_ms);
		free(t);
	}
	policy_conf_put(&c);
	return delay;
}

/* ---- post-auth in a fleet: the session registry, degraded mode ---------- */

/* Remember a lock granted while the shared store was away. */
void
policy_pending_lock_add(struct policy_worker *pw, const char *user, size_t len,
                        enum proto_kind proto, uint64_t now_ms)
{
	struct pending_lock *l;

	for (l = pw->locks; l != NULL; l = l->next)
		if (l->len == len && memcmp(l->user, user, len) == 0)
			return; /* the first grant is the one to write */
	if (pw->nlocks >= PENDING_LOCKS_MAX || (l = calloc(1, sizeof(*l))) == NULL) {
		log_kv(LOG_WARN, "lock.pending_full",
		       "what=\"a lock granted while degraded is "
		       "not written back\"");
		return;
	}
	memcpy(l->user, user, len);
	l->len = len;
	l->proto = proto;
	l->granted_ms = now_ms;
	l->next = pw->locks;
	pw->locks = l;
	pw->nlocks++;
}

/* The shared store could not decide the lock: state_unavailable. */
void
policy_claim_degraded(struct policy_req *r, const char *err)
{
	struct policy_worker *pw = r->pw;
	struct policy *p = pw->p;

	warn_degraded(p, "lock", err, r->now_ms);
	r->degraded = true;
	if (p->unavail == STATE_UNAVAIL_REFUSE) {
		r->ans = (struct policy_answer){POLICY_DENY_INTERNAL, PR_STATE_UNAVAILABLE,
		                                PROTO__COUNT};
		policy_respond(r);
		return;
	}
	if (pw->fsw != NULL) {
		struct store_claim claim = protolock_claim(r->proto, r->now_ms, r->expire_ms);
		const char *e = NULL;

		r->fallback_claim = true;
		if ((r->sreq = store_lock_claim(pw->fsw, r->user, r->user_len, &claim,
		                                policy_on_store_answer, r, &e)) != NULL)
			return;
		policy_warn_store(p, r->user, r->user_len, e, r->now_ms);
	}
	/* no fallback store: this proxy grants it, and writes it back later */
	policy_pending_lock_add(pw, r->user, r->user_len, r->proto, r->now_ms);
	r->ans = (struct policy_answer){POLICY_ALLOW, PR_OK_DEGRADED, PROTO__COUNT};
	policy_respond(r);
}

/* The registry could not count: state_unavailable. */
void
policy_session_degraded(struct policy_req *r, const char *err)
{
	struct policy_worker *pw = r->pw;
	struct policy *p = pw->p;
	struct store_session ss = {.id = r->sid, .proto = r->sess_proto, .since_ms = r->now_ms};

	warn_degraded(p, "session", err, r->now_ms);
	if (p->unavail == STATE_UNAVAIL_REFUSE) {
		policy_release(r);
		r->ans = (struct policy_answer){POLICY_DENY_INTERNAL, PR_STATE_UNAVAILABLE,
		                                PROTO__COUNT};
		policy_respond(r);
		return;
	}
	/* this proxy's own count allowed it; the fleet learns of it later */
	r->degraded = true;
	memcpy(ss.backend, r->backend, sizeof(ss.backend));
	store_session_keep(pw->sw, r->user, r->user_len, &ss);
	r->registered = true;
	policy_step_claim(r);
}

void
policy_on_session_answer(void *arg, int rc, const char *err, enum store_sess_outcome o,
                         enum proto_kind other)
{
	struct policy_req *r = arg;

	r->sreq = NULL;
	if (rc != 0) {
		r->registered = false; /* the store dropped its note */
		policy_session_degraded(r, err);
		return;
	}
	switch (o) {
	case STORE_SESS_OK:
		policy_step_claim(r);
		return;
	case STORE_SESS_OTHER_PROTO:
		r->registered = false;
		r->ans = (struct policy_answer){POLICY_DENY_PROTOCOL, PR_CONCURRENT_OTHER_PROTOCOL,
		                                other};
		break;
	case STORE_SESS_USER_FULL:
		r->registered = false;
		r->ans =
		    (struct policy_answer){POLICY_DENY_LIMIT, PR_USER_SESSION_LIMIT, PROTO__COUNT};
		break;
	}
	policy_deliver(r);
}

/* ---- routes from the store ---------------------------------------------- */

static void
on_route_answer(void *arg, int rc, const char *err, const char *backend)
{
	struct policy_route_req *rr = arg;
	struct policy *p = rr->pw->p;
	struct policy_route_answer a = {NULL, false};

	rr->sreq = NULL;
	if (rc != 0) {
		warn_degraded(p, "route", err, policy_now_ms());
		a.degraded = true;
	} else {
		a.backend = backend;
		if (p->shared) {
			uint64_t h = rcache_hash(rr->user, rr->len);
			struct route_slot *sl = &p->routes[h % ROUTE_CACHE_SLOTS];

			pthread_mutex_lock(&p->route_mu);
			sl->hash = h;
			sl->until_ms = policy_now_ms() + ROUTE_CACHE_TTL_MS;
			snprintf(sl->backend, sizeof(sl->backend), "%s", backend ? backend : "");
			pthread_mutex_unlock(&p->route_mu);
		}
	}
	rr->cancelled = true;
	rr->cb(rr->arg, &a);
	free(rr);
}

struct policy_route_req *
policy_route_lookup(struct policy_worker *pw, const char *key, size_t key_len, policy_route_cb cb,
                    void *arg)
{
	struct policy *p = pw->p;
	struct policy_route_req *rr;
	const char *err = NULL;

	if (pw->sw == NULL || p->routes == NULL || (rr = calloc(1, sizeof(*rr))) == NULL)
		return NULL;
	rr->pw = pw;
	rr->cb = cb;
	rr->arg = arg;
	rr->len = policy_key_copy(key, key_len, rr->user, sizeof(rr->user));
	if (p->shared) {
		/* a small direct-mapped cache: a hit costs no round trip */
		uint64_t h = rcache_hash(rr->user, rr->len), now = policy_now_ms();
		struct route_slot *sl = &p->routes[h % ROUTE_CACHE_SLOTS];

		pthread_mutex_lock(&p->route_mu);
		if (sl->hash == h && sl->until_ms > now) {
			rr->hit = true;
			memcpy(rr->backend, sl->backend, sizeof(rr->backend));
		}
		pthread_mutex_unlock(&p->route_mu);
		if (rr->hit) {
			rr->next = pw->route_ready;
			pw->route_ready = rr;
			ev_async_send(pw->loop, &pw->async);
			return rr;
		}
	}
	rr->sreq = store_route_lookup(pw->sw, rr->user, rr->len, policy_now_ms() + p->timeout_ms,
	                              on_route_answer, rr, &err);
	if (rr->sreq == NULL) {
		/* answered on the next turn, from the config */
		warn_degraded(p, "route", err, policy_now_ms());
		rr->backend[0] = '\0';
		rr->next = pw->route_ready;
		pw->route_ready = rr;
		ev_async_send(pw->loop, &pw->async);
	}
	return rr;
}

void
policy_route_cancel(struct policy_route_req **rp)
{
	struct policy_route_req *rr = *rp;

	if (rr == NULL)
		return;
	*rp = NULL;
	if (rr->cancelled)
		return;
	if (rr->sreq != NULL) {
		store_req_cancel(rr->sreq);
		free(rr);
	} else {
		rr->cancelled = true; /* the ready list frees it */
	}
}

/* ---- recovery: locks granted while the shared store was away ------------ */

struct writeback {
	struct policy_worker *pw;
	struct pending_lock *l; /* owned */
};

static void
on_writeback(void *arg, int rc, const char *err, const struct store_claim_answer *a)
{
	struct writeback *wb = arg;
	struct pending_lock *l = wb->l;
	char qu[LOG_QUOTED_MAX];

	log_quote(qu, sizeof(qu), l->user, l->len);
	if (rc != 0) {
		log_kv(LOG_WARN, "lock.writeback_failed", "user=%s proto=%s err=\"%s\"", qu,
		       proto_name(l->proto), err ? err : "?");
		l->next = wb->pw->locks; /* tried again at the next recovery */
		wb->pw->locks = l;
		wb->pw->nlocks++;
	} else {
		if (a->outcome == STORE_CLAIM_OTHER)
			log_kv(LOG_WARN, "lock.conflict",
			       "user=%s granted=%s kept=%s note=\"the shared store's lock was "
			       "first: it stays\"",
			       qu, proto_name(l->proto), proto_name(a->lock.proto));
		else
			log_kv(LOG_INFO, "lock.writeback", "user=%s proto=%s outcome=%s", qu,
			       proto_name(l->proto), store_claim_outcome_name[a->outcome]);
		free(l);
	}
	free(wb);
}

/* The shared store is back on this worker's link: write the locks granted
 * meanwhile, each as a claim made at its grant time (first writer wins). */
void
policy_on_recovered(void *arg)
{
	struct policy_worker *pw = arg;
	struct pending_lock *l = pw->locks, *next;
	struct policy_conf *c = policy_conf_get(pw->p);
	size_t n = pw->nlocks;

	pw->locks = NULL;
	pw->nlocks = 0;
	if (n > 0)
		log_kv(LOG_INFO, "lock.writeback_start", "locks=%zu", n);
	for (; l != NULL; l = next) {
		struct store_claim claim = protolock_claim(l->proto, l->granted_ms, c->expire_ms);
		struct writeback *wb = malloc(sizeof(*wb));
		const char *err = NULL;

		next = l->next;
		if (wb != NULL) {
			wb->pw = pw;
			wb->l = l;
			if (store_lock_claim(pw->sw, l->user, l->len, &claim, on_writeback, wb,
			                     &err) != NULL)
				continue;
			free(wb);
		}
		l->next = pw->locks;
		pw->locks = l;
		pw->nlocks++;
	}
	policy_conf_put(&c);
}
