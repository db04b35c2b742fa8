/*
 * store_redis_sync.c: the synchronous side, for admin commands: one
 * blocking connection under the store's mutex; locks read, written, deleted
 * and listed (SCAN, never KEYS), routes, and publishing on the fleet
 * channel.  Never called on a worker loop.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"
#include "store_redis_impl.h"

#define REDIS_SYNC_MIN_MS 2000 /* admin commands wait at least this long */
#define REDIS_LIST_BATCH  256  /* keys per SCAN step and pipelined reads */

/* ---- synchronous: one blocking connection, under a mutex ---------------- */

void
store_redis_sync_close(struct redis_store *rs)
{
	if (rs->sync != NULL)
		redisFree(rs->sync);
	rs->sync = NULL;
}

static uint64_t
sync_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* When one admin call (all its attempts, reconnects and NOSCRIPT reloads
 * together) must be done: state_timeout from now, at least
 * REDIS_SYNC_MIN_MS. */
static uint64_t
sync_until(const struct redis_store *rs)
{
	return sync_now_ms() +
	       (rs->timeout_ms > REDIS_SYNC_MIN_MS ? rs->timeout_ms : REDIS_SYNC_MIN_MS);
}

/* Under rs->mu: a connected, authenticated, selected context whose every
 * wait (connect, each reply) ends by until_ms: a retry never waits a
 * whole timeout again.  0 or -1 (time is up, or no connection). */
static int
sync_open(struct redis_store *rs, uint64_t until_ms, const char **err_out)
{
	uint64_t now = sync_now_ms(), ms = until_ms > now ? until_ms - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	redisContext *c;
	redisReply *rep;
	char host[INET6_ADDRSTRLEN];
	int port = rs->url.port;

	if (ms == 0) {
		*err_out = "the connection to Redis was lost, or it did not answer in time";
		return -1;
	}
	if (rs->sync != NULL) {
		redisSetTimeout(rs->sync, tv);
		return 0;
	}
	memcpy(host, rs->host, sizeof(host));
	if (rs->url.kind == STATE_REDIS_SENTINEL &&
	    store_redis_sentinel_sync_master(rs, until_ms, host, &port, err_out) < 0)
		return -1;
	c = rs->url.kind == STATE_REDIS_UNIX ? redisConnectUnixWithTimeout(rs->url.path, tv)
	                                     : redisConnectWithTimeout(host, port, tv);
	if (c == NULL || c->err) {
		if (c != NULL)
			log_kv(LOG_WARN, "store.error", "store=redis op=connect err=\"%.160s\"",
			       c->errstr);
		*err_out = "cannot connect to Redis";
		if (c != NULL)
			redisFree(c);
		return -1;
	}
	redisSetTimeout(c, tv);
	if (rs->password != NULL) {
		rep = rs->user != NULL ? redisCommand(c, "AUTH %s %s", rs->user, rs->password)
		                       : redisCommand(c, "AUTH %s", rs->password);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			if (rep != NULL)
				log_kv(LOG_WARN, "store.error",
				       "store=redis op=AUTH err=\"%.160s\"", rep->str);
			*err_out = rs->user != NULL
			               ? "Redis refused the user or password (state_user, "
			                 "state_password_file)"
			               : "Redis refused the password (state_password_file)";
			freeReplyObject(rep);
			redisFree(c);
			return -1;
		}
		freeReplyObject(rep);
	}
	if (rs->url.kind == STATE_REDIS_SENTINEL) {
		/* the Sentinels' answer may be stale: ROLE has the last word
		 * (an ACL user not allowed ROLE trusts the Sentinel) */
		rep = redisCommand(c, "ROLE");
		if (rep == NULL ||
		    (rep->type != REDIS_REPLY_ERROR &&
		     (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0 ||
		      !store_redis_str_is(rep->element[0], "master"))) ||
		    (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOPERM", 6) != 0)) {
			*err_out = "the address the Sentinels named is not the master";
			freeReplyObject(rep);
			redisFree(c);
			return -1;
		}
		freeReplyObject(rep);
	}
	if (rs->url.db != 0) {
		rep = redisCommand(c, "SELECT %d", rs->url.db);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			*err_out = "Redis refused the database number (SELECT)";
			freeReplyObject(rep);
			redisFree(c);
			return -1;
		}
		freeReplyObject(rep);
	}
	rs->sync = c;
	return 0;
}

/* Under rs->mu: SCRIPT LOAD after a NOSCRIPT; its reply checked (an error
 * is logged, never dropped).  0 or -1. */
static int
sync_load_script(struct redis_store *rs)
{
	redisReply *rep = redisCommand(rs->sync, "SCRIPT LOAD %s", store_redis_script);
	int rc = 0;

	if (rep == NULL) {
		store_redis_sync_close(rs);
		return -1;
	}
	if (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, rs->sha) != 0) {
		log_kv(LOG_WARN, "store.error", "store=redis op=\"SCRIPT LOAD\" err=\"%.160s\"",
		       rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected script hash");
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

/*
 * Under rs->mu: run the script with KEYS[1] = key's kind key (PREFIX "{"
 * key "}:" kind: "lock" or "route") and argv as ARGV (at most 8); loads it on NOSCRIPT, makes a new
 * connection once on an I/O error.  The reply (free it), or NULL and *err_out.
 */
static redisReply *
sync_script(struct redis_store *rs, const char *kind, const char *key, size_t len, int argc,
            const char **argv, const char **err_out)
{
	char k[REDIS_KEY_MAX];
	const char *av[12] = {"EVALSHA", rs->sha, "1", k};
	size_t lens[12] = {7, 40, 1, store_redis_user_key(rs, kind, key, len, k)};
	redisReply *rep = NULL;
	uint64_t until = sync_until(rs);

	for (int i = 0; i < argc; i++) {
		av[4 + i] = argv[i];
		lens[4 + i] = strlen(argv[i]);
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		if (sync_open(rs, until, err_out) < 0)
			return NULL;
		rep = redisCommandArgv(rs->sync, 4 + argc, av, lens);
		if (rep == NULL) {
			/* a link that broke since the last call: one more try */
			store_redis_sync_close(rs);
			*err_out = "the connection to Redis was lost, or it did not answer in time";
			continue;
		}
		if (store_redis_is_not_master(rep)) {
			/* a demoted master, or one still loading: find it again */
			freeReplyObject(rep);
			rep = NULL;
			store_redis_sync_close(rs);
			*err_out = "Redis is not the master (READONLY or LOADING)";
			continue;
		}
		if (store_redis_is_noscript(rep)) {
			freeReplyObject(rep);
			if (sync_load_script(rs) < 0) {
				*err_out = "Redis would not load the script";
				return NULL;
			}
			rep = NULL;
			*err_out = "Redis would not load the script";
			continue;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			log_kv(LOG_WARN, "store.error", "store=redis op=script err=\"%.160s\"",
			       rep->str);
			freeReplyObject(rep);
			*err_out = "the store refused the request";
			return NULL;
		}
		return rep;
	}
	return NULL;
}

/* A "get" reply -> *found_out and *out.  0, or -1 and *err_out. */
static int
get_answer(const redisReply *rep, struct store_lock *out, bool *found_out, const char **err_out)
{
	*found_out = false;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) {
		*err_out = "the store's answer was malformed";
		return -1;
	}
	if (store_redis_str_is(rep->element[0], "none"))
		return 0;
	if (store_redis_str_is(rep->element[0], "bad")) {
		*err_out = "unreadable lock record";
		return -1;
	}
	if (!store_redis_str_is(rep->element[0], "lock") || store_redis_parse_lock(rep, out) < 0) {
		*err_out = "the store's answer was malformed";
		return -1;
	}
	*found_out = true;
	return 0;
}

static redisReply *sync_cmd(struct redis_store *rs, int argc, const char **argv, const size_t *lens,
                            const char **err_out);

int
store_redis_lock_get(struct store *st, const char *key, size_t len, struct store_lock *out,
                     bool *found_out, const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char old[REDIS_KEY_MAX];
	const char *argv[] = {"get", old};
	redisReply *rep;
	int rc = -1;

	store_redis_kind_key(rs, "lock:", key, len, old); /* the old layout: moved if there */
	pthread_mutex_lock(&rs->mu);
	if ((rep = sync_script(rs, "lock", key, len, 2, argv, err_out)) != NULL) {
		rc = get_answer(rep, out, found_out, err_out);
		freeReplyObject(rep);
	}
	pthread_mutex_unlock(&rs->mu);
	return rc;
}

int
store_redis_lock_put(struct store *st, const char *key, size_t len, const struct store_lock *rec,
                     const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char created[24], used[24], ttl[24], old[REDIS_KEY_MAX];
	const char *argv[] = {"put",
	                      proto_name(rec->proto),
	                      rec->origin == STORE_ORIGIN_ADMIN ? "admin" : "login",
	                      created,
	                      used,
	                      ttl,
	                      old};
	redisReply *rep;

	store_redis_kind_key(rs, "lock:", key, len, old); /* the old layout: deleted */
	snprintf(created, sizeof(created), "%llu", (unsigned long long)rec->created_ms);
	snprintf(used, sizeof(used), "%llu", (unsigned long long)rec->used_ms);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)rs->lock_ttl_ms);
	pthread_mutex_lock(&rs->mu);
	rep = sync_script(rs, "lock", key, len, 7, argv, err_out);
	pthread_mutex_unlock(&rs->mu);
	freeReplyObject(rep);
	return rep != NULL ? 0 : -1;
}

int
store_redis_lock_del(struct store *st, const char *key, size_t len, bool *found_out,
                     const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char k[REDIS_KEY_MAX], old[REDIS_KEY_MAX];
	const char *argv[] = {"DEL", k, old}; /* both layouts */
	size_t lens[] = {3, store_redis_user_key(rs, "lock", key, len, k),
	                 store_redis_kind_key(rs, "lock:", key, len, old)};
	redisReply *rep;

	pthread_mutex_lock(&rs->mu);
	rep = sync_cmd(rs, 3, argv, lens, err_out); /* an error reply is logged there */
	pthread_mutex_unlock(&rs->mu);
	if (rep == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER) {
		*err_out = "the store refused the request";
		freeReplyObject(rep);
		return -1;
	}
	*found_out = rep->integer > 0;
	freeReplyObject(rep);
	return 0;
}

struct list_item {
	char *key; /* owned: the user part */
	size_t len;
	bool old; /* found in the old layout (PREFIX "lock:" USER) */
	struct store_lock lock;
};

/* Key byte order; the new layout's first when a user is in both. */
static int
item_cmp(const void *a, const void *b)
{
	const struct list_item *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return (int)x->old - (int)y->old;
}

/* The SCAN pattern of a layout: the prefix with glob characters escaped,
 * then "{*}:lock" (new) or "lock:*" (old). */
static void
scan_pattern(const struct redis_store *rs, bool old, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < rs->prefix_len && n + 2 < cap; i++) {
		char ch = rs->prefix[i];

		if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\')
			out[n++] = '\\';
		out[n++] = ch;
	}
	snprintf(out + n, cap - n, "%s", old ? "lock:*" : "{*}:lock");
}

/* The user part of a lock key k of a layout, or NULL (not ours). */
static const char *
scan_user(const struct redis_store *rs, bool old, const redisReply *k, size_t *len_out)
{
	/* old: PREFIX "lock:" USER; new: PREFIX "{" USER "}:lock" */
	size_t head = rs->prefix_len + (old ? 5 : 1), tail = old ? 0 : 6;

	if (k->type != REDIS_REPLY_STRING || (size_t)k->len <= head + tail)
		return NULL;
	*len_out = (size_t)k->len - head - tail;
	return k->str + head;
}

/* Add (user, l) to *items.  0, or -1 (out of memory). */
static int
item_add(struct list_item **items, size_t *n, size_t *cap, const char *user, size_t len, bool old,
         const struct store_lock *l)
{
	struct list_item *it;

	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		struct list_item *ni = realloc(*items, nc * sizeof(*ni));

		if (ni == NULL)
			return -1;
		*items = ni;
		*cap = nc;
	}
	it = &(*items)[*n];
	if ((it->key = malloc(len + 1)) == NULL)
		return -1;
	memcpy(it->key, user, len);
	it->key[len] = '\0';
	it->len = len;
	it->old = old;
	it->lock = *l;
	(*n)++;
	return 0;
}

/* Under rs->mu: SCAN (never KEYS: it would stall Redis for every proxy)
 * the lock keys of one layout step by step, each step's records read in
 * place by the script ("get" with no old key: a list moves nothing),
 * pipelined; appended to *items.  0, or -1 and *err_out. */
static int
scan_layout(struct redis_store *rs, bool old, struct list_item **items, size_t *n, size_t *cap,
            const char **err_out)
{
	char pattern[2 * REDIS_PREFIX_MAX + 16], cursor[32] = "0";

	scan_pattern(rs, old, pattern, sizeof(pattern));
	do {
		redisReply *rep;
		redisReply *keys;

		/* each step (SCAN and its reads) waits state_timeout at most */
		if (sync_open(rs, sync_until(rs), err_out) < 0)
			return -1;
		rep = redisCommand(rs->sync, "SCAN %s MATCH %s COUNT %d", cursor, pattern,
		                   REDIS_LIST_BATCH);

		if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_STRING ||
		    rep->element[1]->type != REDIS_REPLY_ARRAY) {
			if (rep == NULL)
				store_redis_sync_close(rs);
			else if (rep->type == REDIS_REPLY_ERROR)
				log_kv(LOG_WARN, "store.error",
				       "store=redis op=SCAN err=\"%.160s\"", rep->str);
			freeReplyObject(rep);
			*err_out = "SCAN failed";
			return -1;
		}
		snprintf(cursor, sizeof(cursor), "%.*s", (int)rep->element[0]->len,
		         rep->element[0]->str);
		keys = rep->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			const char *av[] = {"EVALSHA", rs->sha, "1", keys->element[i]->str, "get"};
			size_t lens[] = {7, 40, 1, (size_t)keys->element[i]->len, 3};

			redisAppendCommandArgv(rs->sync, 5, av, lens);
		}
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *g = NULL;
			struct store_lock l;
			const char *e, *user;
			size_t ulen = 0;
			bool found = false;

			if (redisGetReply(rs->sync, (void **)&g) != REDIS_OK || g == NULL) {
				store_redis_sync_close(rs);
				freeReplyObject(rep);
				*err_out = "the connection to Redis was lost";
				return -1;
			}
			if (store_redis_is_noscript(g)) {
				/* load it; this step's records are read on the next try */
				freeReplyObject(g);
				freeReplyObject(rep);
				/* the rest of this step's replies are NOSCRIPT too */
				store_redis_sync_close(rs);
				if (sync_open(rs, sync_until(rs), err_out) == 0)
					(void)sync_load_script(rs);
				*err_out = "Redis had lost the script: try again";
				return -1;
			}
			if (g->type == REDIS_REPLY_ERROR) {
				/* never skipped as if the lock were gone: a list
				 * that hides locks would be a lie */
				log_kv(LOG_WARN, "store.error",
				       "store=redis op=list err=\"%.160s\"", g->str);
				freeReplyObject(g);
				freeReplyObject(rep);
				store_redis_sync_close(rs); /* replies of this step remain */
				*err_out = "the store refused the request";
				return -1;
			}
			/* gone since the SCAN, or not ours to show: skipped, as LMDB does */
			if (get_answer(g, &l, &found, &e) == 0 && found &&
			    (user = scan_user(rs, old, keys->element[i], &ulen)) != NULL &&
			    item_add(items, n, cap, user, ulen, old, &l) < 0) {
				freeReplyObject(g);
				freeReplyObject(rep);
				*err_out = "out of memory";
				return -1;
			}
			freeReplyObject(g);
		}
		freeReplyObject(rep);
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

int
store_redis_lock_list(struct store *st, store_list_cb cb, void *arg, const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	struct list_item *items = NULL;
	size_t n = 0, cap = 0;
	int rc;

	/* both layouts: a lock not yet moved from the old one is a lock */
	pthread_mutex_lock(&rs->mu);
	rc = scan_layout(rs, false, &items, &n, &cap, err_out);
	if (rc == 0)
		rc = scan_layout(rs, true, &items, &n, &cap, err_out);
	pthread_mutex_unlock(&rs->mu);
	/* SCAN has no order; the interface promises key byte order, each user
	 * once: the new layout's lock when there are two (the one a claim
	 * decides on) */
	if (rc == 0 && n > 1)
		qsort(items, n, sizeof(*items), item_cmp);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (i > 0 && items[i].len == items[i - 1].len &&
		    memcmp(items[i].key, items[i - 1].key, items[i].len) == 0)
			continue;
		if (cb(arg, items[i].key, items[i].len, &items[i].lock) != 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(items[i].key);
	free(items);
	return rc;
}

/* ---- routes and the fleet channel, synchronous -------------------------- */

/* Under rs->mu: one command (argv), a new connection once on an I/O error.
 * The reply (free it), or NULL and *err_out. */
static redisReply *
sync_cmd(struct redis_store *rs, int argc, const char **argv, const size_t *lens,
         const char **err_out)
{
	redisReply *rep = NULL;
	uint64_t until = sync_until(rs);

	for (int attempt = 0; attempt < 2 && rep == NULL; attempt++) {
		if (sync_open(rs, until, err_out) < 0)
			return NULL;
		if ((rep = redisCommandArgv(rs->sync, argc, argv, lens)) == NULL) {
			store_redis_sync_close(rs);
			*err_out = "the connection to Redis was lost, or it did not answer in time";
		} else if (store_redis_is_not_master(rep)) {
			freeReplyObject(rep);
			rep = NULL;
			store_redis_sync_close(rs);
			*err_out = "Redis is not the master (READONLY or LOADING)";
		}
	}
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		log_kv(LOG_WARN, "store.error", "store=redis op=%s err=\"%.160s\"", argv[0],
		       rep->str);
		freeReplyObject(rep);
		*err_out = "the store refused the request";
		return NULL;
	}
	return rep;
}

int
store_redis_route_get(struct store *st, const char *key, size_t len, char *out, bool *found_out,
                      const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char old[REDIS_KEY_MAX];
	const char *argv[] = {"route", old};
	struct store_req r = {.rc = -1};
	redisReply *rep;

	store_redis_kind_key(rs, "route:", key, len, old); /* the old layout, read if no new */
	pthread_mutex_lock(&rs->mu);
	rep = sync_script(rs, "route", key, len, 2, argv, err_out);
	pthread_mutex_unlock(&rs->mu);
	if (rep == NULL)
		return -1;
	store_redis_route_answer(&r, rep);
	freeReplyObject(rep);
	if (r.rc != 0) {
		*err_out = r.err;
		return -1;
	}
	*found_out = r.route_found;
	if (r.route_found)
		memcpy(out, r.route, sizeof(r.route));
	return 0;
}

int
store_redis_route_put(struct store *st, const char *key, size_t len, const char *backend,
                      const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char old[REDIS_KEY_MAX];
	const char *argv[] = {"rput", backend, old};
	redisReply *rep;

	store_redis_kind_key(rs, "route:", key, len, old); /* the old layout: deleted */
	pthread_mutex_lock(&rs->mu);
	rep = sync_script(rs, "route", key, len, 3, argv, err_out);
	pthread_mutex_unlock(&rs->mu);
	freeReplyObject(rep);
	return rep != NULL ? 0 : -1;
}

int
store_redis_route_del(struct store *st, const char *key, size_t len, bool *found_out,
                      const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char k[REDIS_KEY_MAX], old[REDIS_KEY_MAX];
	const char *argv[] = {"DEL", k, old}; /* both layouts */
	size_t lens[] = {3, store_redis_user_key(rs, "route", key, len, k),
	                 store_redis_kind_key(rs, "route:", key, len, old)};
	redisReply *rep;

	pthread_mutex_lock(&rs->mu);
	rep = sync_cmd(rs, 3, argv, lens, err_out);
	pthread_mutex_unlock(&rs->mu);
	if (rep == NULL)
		return -1;
	*found_out = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
	freeReplyObject(rep);
	return 0;
}

int
store_redis_publish(struct store *st, enum store_event ev, const char *user, size_t len,
                    const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char ch[REDIS_KEY_MAX], msg[STORE_KEY_MAX + 8];
	const char *argv[] = {"PUBLISH", ch, msg};
	size_t lens[3];
	redisReply *rep;
	int n;

	if (ev == STORE_EVENT_RESYNC) {
		*err_out = "not an event to publish";
		return -1;
	}
	if (ev == STORE_EVENT_BLOCK) {
		*err_out = "announced by workers only";
		return -1;
	}
	n = snprintf(msg, sizeof(msg), "%s %.*s", ev == STORE_EVENT_KICK ? "kick" : "route",
	             (int)len, user);
	lens[0] = 7;
	lens[1] = store_redis_kind_key(rs, "events", "", 0, ch);
	lens[2] = (size_t)n;
	pthread_mutex_lock(&rs->mu);
	rep = sync_cmd(rs, 3, argv, lens, err_out);
	pthread_mutex_unlock(&rs->mu);
	freeReplyObject(rep);
	return rep != NULL ? 0 : -1;
}
