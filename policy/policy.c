/*
 * policy.c: the API proxy/ calls.  Owns the policy settings snapshot (swapped
 * whole on reload), the per-worker mailbox for answers known at once, and
 * the post-auth request: static rule, then the live-session count, then the
 * sticky lock through the store.  Decides nothing itself (acl.c, connlimit.c,
 * ratelimit.c and protolock.c do) and never touches a client socket.
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
#define PENDING_LOCKS_MAX   65536 /* locks granted while degraded, per worker, to write back */
#define ROUTE_CACHE_SLOTS   16384 /* route lookups remembered (direct-mapped, per process) */
#define ROUTE_CACHE_TTL_MS  30000 /* ... for this long; `route set` drops them at once */

const char *const policy_verdict_name[POLICY__COUNT] = {
    [POLICY_ALLOW] = "allow",
    [POLICY_DENY_ACL] = "acl",
    [POLICY_DENY_LIMIT] = "limit",
    [POLICY_DENY_THROTTLE] = "throttle",
    [POLICY_DENY_PROTOCOL] = "protocol",
    [POLICY_DENY_INTERNAL] = "internal",
};

/* What the settings say, immutable once built; refcounted so that a
 * question asked before a reload finishes under its own settings. */
struct policy_conf {
	atomic_int refs;
	enum protocol_lock_mode mode;
	uint64_t expire_ms;
	struct protolock_rules *rules; /* owned */
	unsigned default_mask;
	uint32_t max_conn_per_ip, max_sess_per_user;
	struct cidr_conf *allow, *deny; /* owned copies */
	size_t nallow, ndeny;
	unsigned v6_prefix;
	struct ratelimit_conf rl_ip_user, rl_ip;
	uint64_t delay_base_ms, delay_max_ms;
	char *state; /* owned copy, or NULL: a reload may not change it */
};

/* One remembered route lookup (a miss too: backend ""). */
struct route_slot {
	uint64_t hash;
	uint64_t until_ms; /* 0: empty */
	char backend[STORE_BACKEND_MAX + 1];
};

struct policy {
	atomic_uint_least64_t last_store_log_ms; /* store.error at most once a second */
	atomic_uint_least64_t store_log_dropped;
	atomic_uint_least64_t last_degraded_log_ms; /* state.degraded at most once a second */
	atomic_uint_least64_t degraded_dropped;
	struct store *fallback; /* owned: state_fallback, or NULL */
	bool shared;            /* store is shared (Redis): the fleet paths */
	enum state_unavailable_mode unavail;
	uint64_t timeout_ms;
	pthread_mutex_t route_mu;  /* guards routes[] */
	struct route_slot *routes; /* owned; NULL without a store */
	pthread_mutex_t conf_mu;   /* guards the conf pointer, not what it points at */
	struct policy_conf *conf;  /* reference */
	struct counters *ctr;      /* owned */
	struct store *store;       /* owned; NULL without `state` */
	atomic_uint_least64_t last_full_log_ms;
};

/* A sticky lock granted while the shared store was away: written there on
 * recovery, first writer wins. */
struct pending_lock {
	struct pending_lock *next;
	enum proto_kind proto;
	uint64_t granted_ms;
	size_t len;
	char user[ROUTE_USER_MAX + 1];
};

struct policy_worker {
	struct policy *p;           /* borrowed */
	struct ev_loop *loop;       /* borrowed */
	struct store_worker *sw;    /* owned; NULL without a store */
	struct store_worker *fsw;   /* owned: the state_fallback store's; or NULL */
	struct pending_lock *locks; /* granted while degraded, not yet written back */
	size_t nlocks;
	struct policy_route_req *route_ready; /* cache hits, answered on the next turn */
	ev_async async;                       /* answers known at once go out on the next turn */
	struct policy_req *ready_head, *ready_tail; /* this thread only */
	struct policy_req *pending; /* every request not yet answered or cancelled */
};

struct policy_route_req {
	struct policy_worker *pw;      /* borrowed */
	struct policy_route_req *next; /* pw->route_ready */
	struct store_req *sreq;        /* borrowed from the store until it answers */
	policy_route_cb cb;
	void *arg;
	bool cancelled; /* on the ready list: freed there */
	bool hit;       /* the cache's answer is in backend */
	char backend[STORE_BACKEND_MAX + 1];
	size_t len;
	char user[ROUTE_USER_MAX + 1];
};

struct policy_req {
	struct policy_worker *pw;       /* borrowed */
	struct policy_req *prev, *next; /* pw->pending */
	struct policy_req *ready_next;
	struct store_req *sreq; /* borrowed from the store until it answers */
	policy_answer_cb cb;
	void *arg;
	struct policy_answer ans;
	char user[ROUTE_USER_MAX + 1]; /* normalised */
	size_t user_len;
	enum proto_kind proto;
	uint64_t now_ms; /* the asker's clock */
	uint64_t sid;    /* the session's id in the fleet registry; 0: none */
	char backend[STORE_BACKEND_MAX + 1];
	uint64_t deadline_ms; /* every store question together ends by then */
	bool registered;      /* asked or made a registry entry: end it on release */
	bool degraded;        /* decided without the shared store */
	bool fallback_claim;  /* the pending store request is on the fallback store */
	uint64_t expire_ms;   /* the conf's lock_expire at the time of asking */
	bool reserved;        /* a live session is counted for it, not yet handed over */
	bool on_ready;        /* in the ready list; freed there */
	bool cancelled;       /* on the ready list, cancelled: free without a callback */
	bool delivering;      /* its callback is running */
	bool in_call;         /* inside policy_postauth_sid(): answers wait for the loop */
	bool uses_store;      /* the sticky lock is read and written */
};

static void on_fleet_event(void *arg, enum store_event ev, const char *user, size_t len);

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
policy_state_up(const struct policy *p)
{
	/* p->store is set once by policy_new() and kept until policy_free(). */
	return p != NULL && p->store != NULL;
}

/* ---- settings ------------------------------------------------------------ */

static void
conf_put(struct policy_conf **cp)
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

static struct policy_conf *
conf_get(struct policy *p)
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
		conf_put(&c);
		return NULL;
	}
	return c;
oom:
	if (errs != NULL)
		fprintf(errs, "%s:0: policy: out of memory\n", name);
	conf_put(&c);
	return NULL;
}

int
policy_check(const struct config *cfg, FILE *errs)
{
	struct policy_conf *c = conf_build(cfg, errs);

	if (c == NULL)
		return -1;
	conf_put(&c);
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
		store_subscribe(p->store, on_fleet_event, p);
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
	conf_put(&p->conf);
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
	old = conf_get(p);
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
	conf_put(&old);
	pthread_mutex_lock(&p->conf_mu);
	old = p->conf;
	p->conf = c;
	pthread_mutex_unlock(&p->conf_mu);
	conf_put(&old);
	return 0;
fail:
	conf_put(&old);
	conf_put(&c);
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
static void
warn_store(struct policy *p, const char *user, size_t len, const char *err, uint64_t now_ms)
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

/* user normalised into buf (as routing does); the raw bytes, cut, if that
 * leaves nothing, so that a key always exists. */
static size_t
user_key(const char *user, size_t len, char *buf, size_t buflen)
{
	size_t n = route_normalize(user, len, buf, buflen);

	if (n == 0) {
		n = len < buflen - 1 ? len : buflen - 1;
		memcpy(buf, user, n);
		buf[n] = '\0';
	}
	return n;
}

/* ---- the fleet ----------------------------------------------------------- */

/* The default: the daemon that has a local kick defines its own. */
__attribute__((weak)) void
fleet_kick_local(const char *user)
{
	char qu[LOG_QUOTED_MAX];

	log_kv(LOG_INFO, "fleet.kick", "user=%s note=\"no local kick in this build\"",
	       log_quote(qu, sizeof(qu), user, strlen(user)));
}

static uint64_t
rcache_hash(const char *user, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a: not client-aimable in a way that
	                                      * matters: a collision costs a cache miss */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)user[i]) * 1099511628211ULL;
	return h | 1;
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
	c = conf_get(p);
	key = acl_addr_prefix(&a, c->v6_prefix);
	if (counters_throttle_merge(p->ctr, &key, bar + 1, strlen(bar + 1), &c->rl_ip_user,
	                            &c->rl_ip, (uint32_t)iu, iul, (uint32_t)ip, ipl,
	                            policy_now_ms())) {
		char qu[LOG_QUOTED_MAX];

		log_kv(LOG_INFO, "throttle.block",
		       "client=%s user=%s key=fleet failures=%llu ip_failures=%llu via=channel",
		       addr, log_quote(qu, sizeof(qu), bar + 1, strlen(bar + 1)), iu, ip);
	}
	conf_put(&c);
}

/* The fleet channel (one worker's loop). */
static void
on_fleet_event(void *arg, enum store_event ev, const char *user, size_t len)
{
	struct policy *p = arg;
	char u[ROUTE_USER_MAX + 1], qu[LOG_QUOTED_MAX];
	size_t ul = len > 0 ? route_normalize(user, len, u, sizeof(u)) : 0;

	switch (ev) {
	case STORE_EVENT_KICK:
		if (ul == 0)
			return;
		log_kv(LOG_INFO, "fleet.kick_received", "user=%s",
		       log_quote(qu, sizeof(qu), u, ul));
		fleet_kick_local(u);
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
              const char **reason_out)
{
	struct policy_conf *c;
	struct acl_addr a, key;
	enum connlimit_rc rc;
	enum policy_verdict v = POLICY_ALLOW;

	memset(pc, 0, sizeof(*pc));
	*reason_out = "ok";
	if (acl_addr_from_sockaddr(sa, salen, &a) < 0)
		return POLICY_ALLOW; /* not an IP client (a local socket): nothing to check */
	c = conf_get(p);
	if (!acl_allowed(c->allow, c->nallow, c->deny, c->ndeny, &a)) {
		*reason_out = "acl";
		v = POLICY_DENY_ACL;
		goto out;
	}
	key = acl_addr_prefix(&a, c->v6_prefix);
	rc = counters_conn_open(p->ctr, &key, c->max_conn_per_ip);
	if (rc == CONNLIMIT_OK) {
		pc->key = key;
		pc->counted = true;
	} else {
		*reason_out = connlimit_name(rc);
		v = POLICY_DENY_LIMIT;
		if (rc == CONNLIMIT_TABLE_FULL)
			warn_full(p, policy_now_ms());
	}
out:
	conf_put(&c);
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
policy_login_check(struct policy *p, const struct sockaddr *sa, socklen_t salen, const char *user,
                   size_t len, uint64_t now_ms, uint64_t *delay_ms_out)
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
	ul = user_key(user, len, u, sizeof(u));
	c = conf_get(p);
	key = acl_addr_prefix(&a, c->v6_prefix);
	counters_throttle_check(p->ctr, &key, u, ul, &c->rl_ip_user, &c->rl_ip, now_ms, &t);
	if (t.ip_user_blocked || t.ip_blocked) {
		/* refused attempts wait as long as the slowest failure: a
		 * blocked client gains nothing by hammering */
		*delay_ms_out = c->delay_max_ms;
		v = POLICY_DENY_THROTTLE;
	}
	conf_put(&c);
	return v;
}

uint64_t
policy_login_failed(struct policy *p, const struct sockaddr *sa, socklen_t salen, const char *user,
                    size_t len, uint64_t now_ms)
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
	ul = user_key(user, len, u, sizeof(u));
	c = conf_get(p);
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
	conf_put(&c);
	return delay;
}

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
	c = conf_get(p);
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
	conf_put(&c);
	free(t);
}

/* The store keys of the pair: "ADDR|user" and "ADDR". */
static void
throttle_keys(const struct acl_addr *key, const char *u, size_t ul, char *iu, size_t *iu_len,
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
                       const char *user, size_t len, uint64_t now_ms)
{
	struct policy *p = pw->p;
	uint64_t delay = policy_login_failed(p, sa, salen, user, len, now_ms);
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
	c = conf_get(p);
	t->p = p;
	t->pw = pw;
	t->key = acl_addr_prefix(&a, c->v6_prefix);
	t->len = user_key(user, len, t->user, sizeof(t->user));
	t->now_ms = now_ms;
	throttle_keys(&t->key, t->user, t->len, iu, &iul, ipk, &ipl);
	/* the request is never cancelled: t lives until its answer */
	if (store_throttle_fail(pw->sw, iu, iul, ipk, ipl, c->rl_ip.window_ms, on_throttle_answer,
	                        t, &err) == NULL) {
		warn_degraded(p, "throttle", err, now_ms);
		free(t);
	}
	conf_put(&c);
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

static void
release(struct policy_req *r)
{
	if (!r->reserved)
		return;
	r->reserved = false;
	counters_session_end(r->pw->p->ctr, r->user, r->user_len, r->proto);
	if (r->registered && r->pw->sw != NULL)
		store_session_end(r->pw->sw, r->user, r->user_len, r->sid);
	r->registered = false;
}

/* Run r's callback and free r.  The session, if allowed, is the caller's now. */
static void
deliver(struct policy_req *r)
{
	pending_unlink(r);
	if (r->ans.verdict == POLICY_ALLOW)
		r->reserved = false; /* handed over: policy_session_end() ends it */
	else
		release(r);
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
			deliver(r);
	}
}

/* Answer r on the loop's next turn, never from inside policy_postauth(). */
static void
answer_soon(struct policy_req *r, enum policy_verdict v, const char *reason,
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

/* Remember a lock granted while the shared store was away. */
static void
pending_lock_add(struct policy_worker *pw, const char *user, size_t len, enum proto_kind proto,
                 uint64_t now_ms)
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

static void on_store_answer(void *arg, int rc, const char *err, const struct store_claim_answer *a);
static void answer_soon(struct policy_req *r, enum policy_verdict v, const char *reason,
                        enum proto_kind allowed);

/* Answer r now (from a callback) or on the next loop turn (inside the call). */
static void
respond(struct policy_req *r)
{
	if (r->in_call)
		answer_soon(r, r->ans.verdict, r->ans.reason, r->ans.allowed);
	else
		deliver(r);
}

/* The shared store could not decide the lock: state_unavailable. */
static void
claim_degraded(struct policy_req *r, const char *err)
{
	struct policy_worker *pw = r->pw;
	struct policy *p = pw->p;

	warn_degraded(p, "lock", err, r->now_ms);
	r->degraded = true;
	if (p->unavail == STATE_UNAVAIL_REFUSE) {
		r->ans =
		    (struct policy_answer){POLICY_DENY_INTERNAL, "state_unavailable", PROTO__COUNT};
		respond(r);
		return;
	}
	if (pw->fsw != NULL) {
		struct store_claim claim = protolock_claim(r->proto, r->now_ms, r->expire_ms);
		const char *e = NULL;

		r->fallback_claim = true;
		if ((r->sreq = store_lock_claim(pw->fsw, r->user, r->user_len, &claim,
		                                on_store_answer, r, &e)) != NULL)
			return;
		warn_store(p, r->user, r->user_len, e, r->now_ms);
	}
	/* no fallback store: this proxy grants it, and writes it back later */
	pending_lock_add(pw, r->user, r->user_len, r->proto, r->now_ms);
	r->ans = (struct policy_answer){POLICY_ALLOW, "ok_degraded", PROTO__COUNT};
	respond(r);
}

static void
on_store_answer(void *arg, int rc, const char *err, const struct store_claim_answer *a)
{
	struct policy_req *r = arg;
	struct protolock_decision d;
	char qu[LOG_QUOTED_MAX];

	r->sreq = NULL;
	if (rc != 0 && r->pw->p->shared && !r->fallback_claim) {
		claim_degraded(r, err);
		return;
	}
	if (rc != 0) {
		warn_store(r->pw->p, r->user, r->user_len, err, r->now_ms);
		r->ans = (struct policy_answer){POLICY_DENY_INTERNAL, "store_error", PROTO__COUNT};
	} else {
		if (r->fallback_claim &&
		    (a->outcome == STORE_CLAIM_CREATED || a->outcome == STORE_CLAIM_REPLACED ||
		     a->outcome == STORE_CLAIM_HELD || a->outcome == STORE_CLAIM_REFRESHED))
			pending_lock_add(r->pw, r->user, r->user_len, r->proto, r->now_ms);
		d = protolock_from_claim(a);
		r->ans = (struct policy_answer){d.verdict, d.reason, d.allowed};
		if (d.write == PROTOLOCK_CREATE || d.write == PROTOLOCK_REPLACE)
			log_kv(LOG_INFO, "lock.create", "user=%s proto=%s replaced=%s",
			       log_quote(qu, sizeof(qu), r->user, r->user_len),
			       proto_name(d.rec.proto),
			       d.write == PROTOLOCK_REPLACE ? "expired" : "none");
	}
	deliver(r);
}

/* 3. the sticky lock: read, decide, write in one store step */
static void
step_claim(struct policy_req *r)
{
	struct policy_worker *pw = r->pw;
	struct policy *p = pw->p;
	struct store_claim claim;
	const char *err = "no state store";

	if (!r->uses_store) {
		r->ans = (struct policy_answer){POLICY_ALLOW, r->degraded ? "ok_degraded" : "ok",
		                                PROTO__COUNT};
		respond(r);
		return;
	}
	if (r->degraded && p->shared) {
		/* the registry did not answer in time: no second wait */
		claim_degraded(r, "the store did not answer the session check");
		return;
	}
	claim = protolock_claim(r->proto, r->now_ms, r->expire_ms);
	if (pw->sw != NULL)
		r->sreq = store_lock_claim_until(pw->sw, r->user, r->user_len, &claim,
		                                 r->deadline_ms, on_store_answer, r, &err);
	if (r->sreq != NULL)
		return;
	if (p->shared) {
		claim_degraded(r, err);
		return;
	}
	warn_store(p, r->user, r->user_len, err, r->now_ms);
	r->ans = (struct policy_answer){POLICY_DENY_INTERNAL, "store_error", PROTO__COUNT};
	respond(r);
}

/* The registry could not count: state_unavailable. */
static void
session_degraded(struct policy_req *r, const char *err)
{
	struct policy_worker *pw = r->pw;
	struct policy *p = pw->p;
	struct store_session ss = {.id = r->sid, .proto = r->proto, .since_ms = r->now_ms};

	warn_degraded(p, "session", err, r->now_ms);
	if (p->unavail == STATE_UNAVAIL_REFUSE) {
		release(r);
		r->ans =
		    (struct policy_answer){POLICY_DENY_INTERNAL, "state_unavailable", PROTO__COUNT};
		respond(r);
		return;
	}
	/* this proxy's own count allowed it; the fleet learns of it later */
	r->degraded = true;
	memcpy(ss.backend, r->backend, sizeof(ss.backend));
	store_session_keep(pw->sw, r->user, r->user_len, &ss);
	r->registered = true;
	step_claim(r);
}

static void
on_session_answer(void *arg, int rc, const char *err, enum store_sess_outcome o,
                  enum proto_kind other)
{
	struct policy_req *r = arg;

	r->sreq = NULL;
	if (rc != 0) {
		r->registered = false; /* the store dropped its note */
		session_degraded(r, err);
		return;
	}
	switch (o) {
	case STORE_SESS_OK:
		step_claim(r);
		return;
	case STORE_SESS_OTHER_PROTO:
		r->registered = false;
		r->ans = (struct policy_answer){POLICY_DENY_PROTOCOL,
		                                connlimit_name(CONNLIMIT_OTHER_PROTO), other};
		break;
	case STORE_SESS_USER_FULL:
		r->registered = false;
		r->ans = (struct policy_answer){POLICY_DENY_LIMIT,
		                                connlimit_name(CONNLIMIT_USER_FULL), PROTO__COUNT};
		break;
	}
	deliver(r);
}

struct policy_req *
policy_postauth(struct policy_worker *pw, const struct sockaddr *sa, socklen_t salen,
                const char *user, size_t len, enum proto_kind proto, uint64_t now_ms,
                policy_answer_cb cb, void *arg)
{
	return policy_postauth_sid(pw, sa, salen, user, len, proto, 0, NULL, now_ms, cb, arg);
}

struct policy_req *
policy_postauth_sid(struct policy_worker *pw, const struct sockaddr *sa, socklen_t salen,
                    const char *user, size_t len, enum proto_kind proto, uint64_t sid,
                    const char *backend, uint64_t now_ms, policy_answer_cb cb, void *arg)
{
	struct policy *p = pw->p;
	struct policy_req *r = calloc(1, sizeof(*r));
	struct protolock_decision d;
	struct protolock_rule rule;
	struct policy_conf *c;
	struct acl_addr a;
	enum connlimit_rc rc;

	if (r == NULL)
		return NULL;
	r->pw = pw;
	r->cb = cb;
	r->arg = arg;
	r->proto = proto;
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
	r->user_len = user_key(user, len, r->user, sizeof(r->user));
	c = conf_get(p);
	r->expire_ms = c->expire_ms;

	/* the password was right: this pair's failures are forgiven */
	if (acl_addr_from_sockaddr(sa, salen, &a) == 0) {
		struct acl_addr key = acl_addr_prefix(&a, c->v6_prefix);

		counters_throttle_clear(p->ctr, &key, r->user, r->user_len);
		if (p->shared && pw->sw != NULL) {
			char iu[STORE_KEY_MAX + 1], ipk[STORE_KEY_MAX + 1];
			size_t iul, ipl;

			throttle_keys(&key, r->user, r->user_len, iu, &iul, ipk, &ipl);
			store_throttle_clear(pw->sw, iu, iul);
		}
	}
	if ((unsigned)proto >= PROTO__COUNT) {
		answer_soon(r, POLICY_DENY_INTERNAL, "bad_protocol", PROTO__COUNT);
		goto out;
	}

	/* 1. a static rule: no count, no store */
	rule = protolock_rules_lookup(c->rules, r->user, r->user_len, c->default_mask);
	d = protolock_decide(c->mode, rule, NULL, proto, now_ms, c->expire_ms);
	if (d.verdict != POLICY_ALLOW) {
		answer_soon(r, d.verdict, d.reason, d.allowed);
		goto out;
	}
	r->uses_store = protolock_uses_store(c->mode, rule);

	/* 2. count the session, checked and counted in one step: here first
	 * (this proxy's sessions are among the fleet's, so a refusal here is
	 * one there too), then in the fleet's registry */
	rc = counters_session_begin(p->ctr, r->user, r->user_len, proto, c->max_sess_per_user,
	                            c->mode == PLOCK_CONCURRENT);
	if (rc == CONNLIMIT_OTHER_PROTO) {
		answer_soon(r, POLICY_DENY_PROTOCOL, connlimit_name(rc),
		            proto == PROTO_IMAP ? PROTO_POP3 : PROTO_IMAP);
		goto out;
	}
	if (rc != CONNLIMIT_OK) {
		if (rc == CONNLIMIT_TABLE_FULL)
			warn_full(p, now_ms);
		answer_soon(r, POLICY_DENY_LIMIT, connlimit_name(rc), PROTO__COUNT);
		goto out;
	}
	r->reserved = true;
	if (p->shared && pw->sw != NULL && sid != 0 &&
	    (c->mode == PLOCK_CONCURRENT || c->max_sess_per_user != 0)) {
		struct store_session ss = {.id = sid, .proto = proto, .since_ms = now_ms};
		const char *err = NULL;

		memcpy(ss.backend, r->backend, sizeof(ss.backend));
		r->registered = true;
		r->sreq = store_session_begin(pw->sw, r->user, r->user_len, &ss,
		                              c->max_sess_per_user, c->mode == PLOCK_CONCURRENT,
		                              r->deadline_ms, on_session_answer, r, &err);
		if (r->sreq == NULL) {
			r->registered = false;
			session_degraded(r, err);
		}
		goto out;
	}

	/* 3. the sticky lock */
	step_claim(r);
out:
	r->in_call = false;
	conf_put(&c);
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
	release(r);
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
policy_session_end_sid(struct policy_worker *pw, const char *user, size_t len,
                       enum proto_kind proto, uint64_t sid)
{
	char u[ROUTE_USER_MAX + 1];
	size_t ul = user_key(user, len, u, sizeof(u));

	policy_session_end(pw->p, user, len, proto);
	if (pw->p->shared && pw->sw != NULL && sid != 0)
		store_session_end(pw->sw, u, ul, sid);
}

void
policy_session_end(struct policy *p, const char *user, size_t len, enum proto_kind proto)
{
	char u[ROUTE_USER_MAX + 1];
	size_t ul = user_key(user, len, u, sizeof(u));

	if (!counters_session_end(p->ctr, u, ul, proto))
		log_kv(LOG_WARN, "policy.bug", "what=session_end_uncounted proto=%s",
		       proto_name(proto));
}

/* ---- routes from the store ------------------------------------------------ */

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
policy_route_lookup(struct policy_worker *pw, const char *user, size_t len, policy_route_cb cb,
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
	rr->len = user_key(user, len, rr->user, sizeof(rr->user));
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

/* ---- recovery: locks granted while the shared store was away ---------------- */

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
static void
on_recovered(void *arg)
{
	struct policy_worker *pw = arg;
	struct pending_lock *l = pw->locks, *next;
	struct policy_conf *c = conf_get(pw->p);
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
	conf_put(&c);
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
		store_worker_on_recovered(pw->sw, on_recovered, pw);
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
