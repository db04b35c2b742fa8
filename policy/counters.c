/*
 * counters.c: the in-process table of live counts and throttle windows, and
 * its one mutex.  Owns every count that workers share; decides nothing itself
 * (connlimit.c and ratelimit.c do, called here under the lock so that a check
 * and the count after it are one step).  Never blocks on anything but its
 * mutex, which is held for a hash lookup and a few stores, never across I/O.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include "counters.h"

enum ctr_kind {
	CK_CONN = 1, /* connections per address */
	CK_SESS,     /* live sessions per user */
	CK_TIP,      /* throttle: failures per address */
	CK_TIPUSER,  /* throttle: failures per (address, user) */
};

#define KEY_MAX        (1 + 1 + 16 + COUNTERS_USER_MAX) /* kind, family, address, user */
#define PRUNE_PER_CALL 8 /* expired throttle entries dropped per throttle call */

struct ctr_entry {
	struct ctr_entry *hnext;               /* bucket chain */
	struct ctr_entry *lru_prev, *lru_next; /* throttle entries only; head = most recent */
	uint64_t hash;
	union {
		uint32_t conns;
		uint32_t live[PROTO__COUNT];
		struct ratelimit_state rl;
	} u;
	uint16_t klen;
	uint8_t key[]; /* key[0] is the kind */
};

struct counters {
	pthread_mutex_t mu; /* guards everything below */
	struct ctr_entry **buckets;
	size_t mask;
	size_t nlive, live_max;
	size_t nthrottle, throttle_max;
	struct ctr_entry *lru_head, *lru_tail;
	uint64_t sipkey[2];
	uint64_t evicted, refused_full;
};

/* ---- SipHash-2-4 (Aumasson, Bernstein): keyed, so clients cannot aim
 * collisions at one bucket ---------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

static uint64_t
siphash24(const uint64_t k[2], const uint8_t *in, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
	uint64_t b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t m = 0;

		for (int j = 0; j < 8; j++)
			m |= (uint64_t)in[i + (size_t)j] << (8 * j);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; j < (len & 7); j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table --------------------------------------------------------- */

struct counters *
counters_new(size_t live_max, size_t throttle_max)
{
	struct counters *c;
	size_t want, n = 16;

	/* two throttle entries at least: a failure touches two keys at once */
	if (live_max == 0 || throttle_max < 2 || live_max > SIZE_MAX / 4 ||
	    throttle_max > SIZE_MAX / 4)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	/* chains of about two at worst: the table never holds more than this */
	want = (live_max + throttle_max) / 2;
	while (n < want && n < ((size_t)1 << 24))
		n *= 2;
	if ((c->buckets = calloc(n, sizeof(*c->buckets))) == NULL)
		goto fail;
	c->mask = n - 1;
	c->live_max = live_max;
	c->throttle_max = throttle_max;
	if (getrandom(c->sipkey, sizeof(c->sipkey), 0) != (ssize_t)sizeof(c->sipkey)) {
		/* no entropy this early is unlikely; a guessable key only weakens
		 * the hash spread, never a count */
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		c->sipkey[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
		c->sipkey[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)c;
	}
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		goto fail;
	return c;
fail:
	free(c->buckets);
	free(c);
	return NULL;
}

void
counters_free(struct counters **cp)
{
	struct counters *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	for (size_t i = 0; i <= c->mask; i++) {
		struct ctr_entry *e = c->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->hnext;
			free(e);
		}
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static bool
is_throttle(const struct ctr_entry *e)
{
	return e->key[0] == CK_TIP || e->key[0] == CK_TIPUSER;
}

/* kind, then the address (family and 16 bytes) if any, then the user if any. */
static size_t
make_key(uint8_t *k, enum ctr_kind kind, const struct acl_addr *ip, const char *user, size_t len)
{
	size_t n = 0;

	k[n++] = (uint8_t)kind;
	if (ip != NULL) {
		k[n++] = ip->family;
		memcpy(k + n, ip->a, sizeof(ip->a));
		n += sizeof(ip->a);
	}
	if (user != NULL) {
		if (len > COUNTERS_USER_MAX)
			len = COUNTERS_USER_MAX;
		memcpy(k + n, user, len);
		n += len;
	}
	return n;
}

static struct ctr_entry *
find(struct counters *c, const uint8_t *key, size_t klen, uint64_t h)
{
	for (struct ctr_entry *e = c->buckets[h & c->mask]; e != NULL; e = e->hnext)
		if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	return NULL;
}

static void
lru_unlink(struct counters *c, struct ctr_entry *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void
lru_push(struct counters *c, struct ctr_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head != NULL)
		c->lru_head->lru_prev = e;
	c->lru_head = e;
	if (c->lru_tail == NULL)
		c->lru_tail = e;
}

static void
lru_touch(struct counters *c, struct ctr_entry *e)
{
	if (c->lru_head == e)
		return;
	lru_unlink(c, e);
	lru_push(c, e);
}

static void
remove_entry(struct counters *c, struct ctr_entry *e)
{
	struct ctr_entry **pp = &c->buckets[e->hash & c->mask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (is_throttle(e)) {
		lru_unlink(c, e);
		c->nthrottle--;
	} else {
		c->nlive--;
	}
	free(e);
}

/* A new, zeroed entry for key, or NULL: the live part is full (counted in
 * refused_full), or out of memory.  A full throttle part forgets its least
 * recently touched entry instead. */
static struct ctr_entry *
insert(struct counters *c, const uint8_t *key, size_t klen, uint64_t h)
{
	bool throttle = key[0] == CK_TIP || key[0] == CK_TIPUSER;
	struct ctr_entry *e;

	if (throttle && c->nthrottle >= c->throttle_max) {
		remove_entry(c, c->lru_tail);
		c->evicted++;
	} else if (!throttle && c->nlive >= c->live_max) {
		c->refused_full++;
		return NULL;
	}
	if ((e = calloc(1, sizeof(*e) + klen)) == NULL) {
		if (!throttle)
			c->refused_full++;
		return NULL;
	}
	e->hash = h;
	e->klen = (uint16_t)klen;
	memcpy(e->key, key, klen);
	e->hnext = c->buckets[h & c->mask];
	c->buckets[h & c->mask] = e;
	if (throttle) {
		lru_push(c, e);
		c->nthrottle++;
	} else {
		c->nlive++;
	}
	return e;
}

/* ---- connections --------------------------------------------------------- */

enum connlimit_rc
counters_conn_open(struct counters *c, const struct acl_addr *ip, uint32_t max)
{
	uint8_t k[KEY_MAX];
	size_t kl = make_key(k, CK_CONN, ip, NULL, 0);
	uint64_t h = siphash24(c->sipkey, k, kl);
	struct ctr_entry *e;
	enum connlimit_rc rc;

	pthread_mutex_lock(&c->mu);
	e = find(c, k, kl, h);
	rc = connlimit_conn(e ? e->u.conns : 0, max);
	if (rc == CONNLIMIT_OK && e == NULL && (e = insert(c, k, kl, h)) == NULL)
		rc = CONNLIMIT_TABLE_FULL;
	if (rc == CONNLIMIT_OK)
		e->u.conns++;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

bool
counters_conn_close(struct counters *c, const struct acl_addr *ip)
{
	uint8_t k[KEY_MAX];
	size_t kl = make_key(k, CK_CONN, ip, NULL, 0);
	uint64_t h = siphash24(c->sipkey, k, kl);
	struct ctr_entry *e;
	bool ok = false;

	pthread_mutex_lock(&c->mu);
	if ((e = find(c, k, kl, h)) != NULL) {
		ok = true;
		/* the last one out frees the entry: the table holds live things only */
		if (--e->u.conns == 0)
			remove_entry(c, e);
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

uint32_t
counters_conn_count(struct counters *c, const struct acl_addr *ip)
{
	uint8_t k[KEY_MAX];
	size_t kl = make_key(k, CK_CONN, ip, NULL, 0);
	uint64_t h = siphash24(c->sipkey, k, kl);
	struct ctr_entry *e;
	uint32_t n;

	pthread_mutex_lock(&c->mu);
	n = (e = find(c, k, kl, h)) ? e->u.conns : 0;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* ---- sessions ------------------------------------------------------------ */

enum connlimit_rc
counters_session_begin(struct counters *c, const char *user, size_t len, enum proto_kind proto,
                       uint32_t max, bool exclusive)
{
	static const uint32_t none[PROTO__COUNT];
	uint8_t k[KEY_MAX];
	size_t kl = make_key(k, CK_SESS, NULL, user, len);
	uint64_t h = siphash24(c->sipkey, k, kl);
	struct ctr_entry *e;
	enum connlimit_rc rc;

	if ((unsigned)proto >= PROTO__COUNT)
		return CONNLIMIT_TABLE_FULL;
	pthread_mutex_lock(&c->mu);
	e = find(c, k, kl, h);
	rc = connlimit_session(e ? e->u.live : none, proto, max, exclusive);
	if (rc == CONNLIMIT_OK && e == NULL && (e = insert(c, k, kl, h)) == NULL)
		rc = CONNLIMIT_TABLE_FULL;
	if (rc == CONNLIMIT_OK)
		e->u.live[proto]++;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

bool
counters_session_end(struct counters *c, const char *user, size_t len, enum proto_kind proto)
{
	uint8_t k[KEY_MAX];
	size_t kl = make_key(k, CK_SESS, NULL, user, len);
	uint64_t h = siphash24(c->sipkey, k, kl);
	struct ctr_entry *e;
	bool ok = false;

	if ((unsigned)proto >= PROTO__COUNT)
		return false;
	pthread_mutex_lock(&c->mu);
	if ((e = find(c, k, kl, h)) != NULL && e->u.live[proto] > 0) {
		ok = true;
		e->u.live[proto]--;
		bool idle = true;

		for (int p = 0; p < PROTO__COUNT; p++)
			idle = idle && e->u.live[p] == 0;
		if (idle)
			remove_entry(c, e);
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

void
counters_session_count(struct counters *c, const char *user, size_t len,
                       uint32_t live_out[PROTO__COUNT])
{
	uint8_t k[KEY_MAX];
	size_t kl = make_key(k, CK_SESS, NULL, user, len);
	uint64_t h = siphash24(c->sipkey, k, kl);
	struct ctr_entry *e;

	pthread_mutex_lock(&c->mu);
	e = find(c, k, kl, h);
	for (int p = 0; p < PROTO__COUNT; p++)
		live_out[p] = e ? e->u.live[p] : 0;
	pthread_mutex_unlock(&c->mu);
}

/* ---- throttle ------------------------------------------------------------ */

/* Drop a few expired entries from the cold end; under the lock. */
static void
prune(struct counters *c, const struct ratelimit_conf *ip_user, const struct ratelimit_conf *ip,
      uint64_t now_ms)
{
	for (int i = 0; i < PRUNE_PER_CALL && c->lru_tail != NULL; i++) {
		struct ctr_entry *e = c->lru_tail;

		if (!ratelimit_expired(&e->u.rl, e->key[0] == CK_TIP ? ip : ip_user, now_ms))
			break; /* the tail is the least recently touched: later ones are younger */
		remove_entry(c, e);
	}
}

static void
fill(struct counters_throttle *out, const struct ctr_entry *iu, const struct ctr_entry *ipe,
     const struct ratelimit_conf *ip_user, const struct ratelimit_conf *ip, uint64_t now_ms)
{
	uint64_t u;

	out->ip_user_failures =
	    iu && !ratelimit_expired(&iu->u.rl, ip_user, now_ms) ? iu->u.rl.failures : 0;
	out->ip_failures =
	    ipe && !ratelimit_expired(&ipe->u.rl, ip, now_ms) ? ipe->u.rl.failures : 0;
	out->ip_user_blocked = iu && ratelimit_blocked(&iu->u.rl, ip_user, now_ms);
	out->ip_blocked = ipe && ratelimit_blocked(&ipe->u.rl, ip, now_ms);
	out->until_ms = 0;
	if (out->ip_user_blocked)
		out->until_ms = ratelimit_until(&iu->u.rl, ip_user);
	if (out->ip_blocked && (u = ratelimit_until(&ipe->u.rl, ip)) > out->until_ms)
		out->until_ms = u;
}

void
counters_throttle_check(struct counters *c, const struct acl_addr *ip, const char *user, size_t len,
                        const struct ratelimit_conf *ip_user, const struct ratelimit_conf *ip_conf,
                        uint64_t now_ms, struct counters_throttle *out)
{
	uint8_t k1[KEY_MAX], k2[KEY_MAX];
	size_t l1 = make_key(k1, CK_TIPUSER, ip, user, len), l2 = make_key(k2, CK_TIP, ip, NULL, 0);
	uint64_t h1 = siphash24(c->sipkey, k1, l1), h2 = siphash24(c->sipkey, k2, l2);

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->mu);
	prune(c, ip_user, ip_conf, now_ms);
	fill(out, find(c, k1, l1, h1), find(c, k2, l2, h2), ip_user, ip_conf, now_ms);
	pthread_mutex_unlock(&c->mu);
}

void
counters_throttle_fail(struct counters *c, const struct acl_addr *ip, const char *user, size_t len,
                       const struct ratelimit_conf *ip_user, const struct ratelimit_conf *ip_conf,
                       uint64_t now_ms, struct counters_throttle *out)
{
	uint8_t k1[KEY_MAX], k2[KEY_MAX];
	size_t l1 = make_key(k1, CK_TIPUSER, ip, user, len), l2 = make_key(k2, CK_TIP, ip, NULL, 0);
	uint64_t h1 = siphash24(c->sipkey, k1, l1), h2 = siphash24(c->sipkey, k2, l2);
	struct ctr_entry *iu, *ipe;
	bool newly = false;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->mu);
	prune(c, ip_user, ip_conf, now_ms);
	/* the address first, touched to the head: making the pair's entry may
	 * evict the tail, which is then some other key (throttle_max >= 2) */
	if ((ipe = find(c, k2, l2, h2)) == NULL)
		ipe = insert(c, k2, l2, h2);
	if (ipe != NULL) {
		lru_touch(c, ipe);
		newly |= ratelimit_fail(&ipe->u.rl, ip_conf, now_ms);
	}
	if ((iu = find(c, k1, l1, h1)) == NULL)
		iu = insert(c, k1, l1, h1);
	if (iu != NULL) {
		lru_touch(c, iu);
		newly |= ratelimit_fail(&iu->u.rl, ip_user, now_ms);
	}
	fill(out, iu, ipe, ip_user, ip_conf, now_ms);
	out->newly_blocked = newly;
	pthread_mutex_unlock(&c->mu);
}

void
counters_throttle_clear(struct counters *c, const struct acl_addr *ip, const char *user, size_t len)
{
	uint8_t k[KEY_MAX];
	size_t kl = make_key(k, CK_TIPUSER, ip, user, len);
	uint64_t h = siphash24(c->sipkey, k, kl);
	struct ctr_entry *e;

	pthread_mutex_lock(&c->mu);
	if ((e = find(c, k, kl, h)) != NULL)
		remove_entry(c, e);
	pthread_mutex_unlock(&c->mu);
}

/* Under the lock: e takes n failures in a window with left_ms to go. */
static bool
merge_one(struct ratelimit_state *st, const struct ratelimit_conf *rc, uint32_t n, uint64_t left_ms,
          uint64_t now_ms)
{
	bool was = ratelimit_blocked(st, rc, now_ms);
	uint64_t w = rc->window_ms, left = left_ms < w ? left_ms : w;

	if (!ratelimit_expired(st, rc, now_ms) && st->failures >= n)
		return false;
	st->failures = n;
	st->start_ms = now_ms - (w - left);
	return !was && ratelimit_blocked(st, rc, now_ms);
}

bool
counters_throttle_merge(struct counters *c, const struct acl_addr *ip, const char *user, size_t len,
                        const struct ratelimit_conf *ip_user, const struct ratelimit_conf *ip_conf,
                        uint32_t n_iu, uint64_t left_iu, uint32_t n_ip, uint64_t left_ip,
                        uint64_t now_ms)
{
	uint8_t k1[KEY_MAX], k2[KEY_MAX];
	size_t l1 = make_key(k1, CK_TIPUSER, ip, user, len), l2 = make_key(k2, CK_TIP, ip, NULL, 0);
	uint64_t h1 = siphash24(c->sipkey, k1, l1), h2 = siphash24(c->sipkey, k2, l2);
	struct ctr_entry *e;
	bool newly = false;

	pthread_mutex_lock(&c->mu);
	if ((e = find(c, k2, l2, h2)) != NULL || (e = insert(c, k2, l2, h2)) != NULL) {
		lru_touch(c, e);
		newly |= merge_one(&e->u.rl, ip_conf, n_ip, left_ip, now_ms);
	}
	if ((e = find(c, k1, l1, h1)) != NULL || (e = insert(c, k1, l1, h1)) != NULL) {
		lru_touch(c, e);
		newly |= merge_one(&e->u.rl, ip_user, n_iu, left_iu, now_ms);
	}
	pthread_mutex_unlock(&c->mu);
	return newly;
}

void
counters_stats(struct counters *c, struct counters_stats *out)
{
	pthread_mutex_lock(&c->mu);
	out->live = c->nlive;
	out->live_max = c->live_max;
	out->throttle = c->nthrottle;
	out->throttle_max = c->throttle_max;
	out->evicted = c->evicted;
	out->refused_full = c->refused_full;
	pthread_mutex_unlock(&c->mu);
}
