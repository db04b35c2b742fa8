/*
 * store_redis.c: the shared store, Redis, for a fleet of proxies.  Owns the
 * key layout (PREFIX "lock:" USER, a hash), the one Lua script that makes
 * every read-decide-write atomic inside Redis (loaded once with SCRIPT
 * LOAD, run with EVALSHA, loaded again on NOSCRIPT), one hiredis async
 * connection per worker loop (the libev adapter hiredis ships), and one
 * blocking connection, under a mutex, for the synchronous admin calls.
 * Never reads, decides in C and then writes: a decision is a script.
 *
 * Why one connection per worker loop and no store thread: a store_worker is
 * already one loop's handle, so the answer arrives on the loop that asked
 * with no thread hop and no lock; replies come in order on each connection,
 * so timeouts are per request on that loop; and a slow or dead Redis costs
 * each loop its own reconnect timer, never a blocked thread that every
 * worker queues behind.  N workers make N connections, which Redis handles
 * easily.
 *
 * Durability: an answer means Redis ran the script and replied.  It is on
 * disk before that reply only with `appendonly yes` and `appendfsync
 * always` on the master; with `everysec` up to a second of locks can be
 * lost to a crash of Redis; replicas get it later (no WAIT here).  See the
 * README, "Shared state in Redis".
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "log.h"
#include "state_url.h"
#include "store_impl.h"

#define REDIS_INFLIGHT_MAX 4096 /* requests one worker has sent, not yet answered */
#define REDIS_BACKOFF_MIN  100  /* ms before the first reconnect */
#define REDIS_BACKOFF_MAX  5000 /* ms between reconnects at most */
#define REDIS_DEAD_MIN_MS  1000 /* no reply this long (and 4 timeouts): the link is dead */
#define REDIS_SYNC_MIN_MS  2000 /* admin commands wait at least this long */
#define REDIS_PREFIX_MAX   64   /* config.h's STATE_PREFIX_MAX */
#define REDIS_PASSWORD_MAX 512  /* bytes of the password file's first line */
#define REDIS_KEY_MAX      (REDIS_PREFIX_MAX + 6 + STORE_KEY_MAX + 1)
#define REDIS_LIST_BATCH   256  /* keys per SCAN step and pipelined reads */
#define RSESS_BUCKETS      1024 /* live-session table of one worker (chained) */

/*
 * The script: KEYS[1] is the lock key, ARGV[1] the operation.  A record is
 * a hash {v=1, proto=imap|pop3, origin=login|admin, created=MS, used=MS};
 * anything else at the key is "bad" (fail closed, as LMDB does).  Times
 * are the proxies' wall clocks passed in (as LMDB's records hold), written
 * back as the strings given, never through a Lua number.
 *
 *   claim PROTO NOW EXPIRE REFRESH  store_claim_decide(), the same rules:
 *       none, or expired (EXPIRE > 0, NOW >= used, NOW - used >= EXPIRE):
 *           write a new login lock, PEXPIRE EXPIRE -> created | replaced
 *       another protocol                         -> other (nothing written)
 *       NOW > used and NOW - used >= REFRESH: used = NOW, PEXPIRE again
 *                                                -> refreshed
 *       otherwise                                -> held
 *     and returns {outcome, proto, origin, created, used} of the lock in
 *     effect.  lock_expire is thus also the key's TTL, refreshed on use: a
 *     lock nobody uses leaves Redis by itself.
 *   put PROTO ORIGIN CREATED USED TTL   replace the record; TTL 0: none
 *   get                                 {"lock", ...}, {"none"} or {"bad"}
 *
 * Live sessions: KEYS[1] is PREFIX "sess:" USER, a hash of session id ->
 * "PROXYID PROTO BACKEND SINCE"; PREFIX "proxy:" ID is a proxy's heartbeat
 * (PX 3 * state_heartbeat), which the sessions of a dead proxy outlive by
 * at most that much: they are skipped and dropped by the next check.
 *   sreg SID ME PROTO "BACKEND SINCE" MAX EXCL TTL PROXYPREFIX
 *       count the live sessions of other ids, as connlimit_session() does
 *       (EXCL 1: another protocol live -> {"other", P}; MAX > 0 and as many
 *       live -> {"full"}), else register -> {"ok"}
 *   sput (same arguments)    register without a check (heartbeat, recovery,
 *                            sessions decided while Redis was away)
 * Failed logins: KEYS[1] the (address, user) key, ARGV[2] the address key.
 *   tfail KEY2 WINDOW   INCR both, PEXPIRE WINDOW when a window opens ->
 *                       {n1, pttl1, n2, pttl2}
 * Keys other than KEYS[1] are touched (the proxy keys, KEY2): one Redis,
 * not Redis Cluster.
 */
static const char redis_script[] =
    "local function rd(k)\n"
    "  local t = redis.call('TYPE', k)['ok']\n"
    "  if t == 'none' then return nil end\n"
    "  if t ~= 'hash' then return false end\n"
    "  local f = redis.call('HMGET', k, 'v', 'proto', 'origin', 'created', 'used')\n"
    "  if f[1] ~= '1' or (f[2] ~= 'imap' and f[2] ~= 'pop3') or\n"
    "     (f[3] ~= 'login' and f[3] ~= 'admin') or not tonumber(f[4]) or\n"
    "     not tonumber(f[5]) then return false end\n"
    "  return f\n"
    "end\n"
    "local function wr(k, proto, origin, created, used, ttl)\n"
    "  redis.call('DEL', k)\n"
    "  redis.call('HSET', k, 'v', '1', 'proto', proto, 'origin', origin,\n"
    "             'created', created, 'used', used)\n"
    "  if ttl ~= '0' then redis.call('PEXPIRE', k, ttl) end\n"
    "end\n"
    "local k, op = KEYS[1], ARGV[1]\n"
    "if op == 'claim' then\n"
    "  local proto, now = ARGV[2], tonumber(ARGV[3])\n"
    "  local expire, refresh = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "  local cur = rd(k)\n"
    "  if cur == false then return {'bad'} end\n"
    "  if cur == nil or (expire ~= 0 and now >= tonumber(cur[5]) and\n"
    "                    now - tonumber(cur[5]) >= expire) then\n"
    "    wr(k, proto, 'login', ARGV[3], ARGV[3], ARGV[4])\n"
    "    return {cur == nil and 'created' or 'replaced', proto, 'login', ARGV[3], ARGV[3]}\n"
    "  end\n"
    "  if cur[2] ~= proto then return {'other', cur[2], cur[3], cur[4], cur[5]} end\n"
    "  local used = tonumber(cur[5])\n"
    "  if now > used and now - used >= refresh then\n"
    "    redis.call('HSET', k, 'used', ARGV[3])\n"
    "    if expire ~= 0 then redis.call('PEXPIRE', k, ARGV[4]) end\n"
    "    return {'refreshed', cur[2], cur[3], cur[4], ARGV[3]}\n"
    "  end\n"
    "  return {'held', cur[2], cur[3], cur[4], cur[5]}\n"
    "elseif op == 'put' then\n"
    "  wr(k, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])\n"
    "  return {'ok'}\n"
    "elseif op == 'sreg' or op == 'sput' then\n"
    "  local sid, me, proto, pp, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[9], ARGV[8]\n"
    "  redis.call('SET', pp .. me, '1', 'PX', ttl)\n"
    "  if op == 'sreg' then\n"
    "    local max, excl = tonumber(ARGV[6]), ARGV[7] == '1'\n"
    "    local all = redis.call('HGETALL', k)\n"
    "    local alive, total, other = {}, 0, nil\n"
    "    for i = 1, #all, 2 do\n"
    "      local f, v = all[i], all[i + 1]\n"
    "      local px, pr = string.match(v, '^(%S+) (%S+)')\n"
    "      if px and alive[px] == nil then\n"
    "        alive[px] = redis.call('EXISTS', pp .. px) == 1\n"
    "      end\n"
    "      if not px or not alive[px] then\n"
    "        redis.call('HDEL', k, f)\n"
    "      elseif f ~= sid then\n"
    "        total = total + 1\n"
    "        if excl and pr ~= proto then other = pr end\n"
    "      end\n"
    "    end\n"
    "    if other then return {'other', other} end\n"
    "    if max > 0 and total >= max then return {'full'} end\n"
    "  end\n"
    "  redis.call('HSET', k, sid, me .. ' ' .. proto .. ' ' .. ARGV[5])\n"
    "  redis.call('PEXPIRE', k, ttl)\n"
    "  return {'ok'}\n"
    "elseif op == 'tfail' then\n"
    "  local w = ARGV[3]\n"
    "  local function bump(key)\n"
    "    local n = redis.call('INCR', key)\n"
    "    if n == 1 then redis.call('PEXPIRE', key, w) end\n"
    "    local t = redis.call('PTTL', key)\n"
    "    if t < 0 then\n"
    "      redis.call('PEXPIRE', key, w)\n"
    "      t = tonumber(w)\n"
    "    end\n"
    "    return n, t\n"
    "  end\n"
    "  local n1, t1 = bump(k)\n"
    "  local n2, t2 = bump(ARGV[2])\n"
    "  return {n1, t1, n2, t2}\n"
    "elseif op == 'get' then\n"
    "  local cur = rd(k)\n"
    "  if cur == false then return {'bad'} end\n"
    "  if cur == nil then return {'none'} end\n"
    "  return {'lock', cur[2], cur[3], cur[4], cur[5]}\n"
    "end\n"
    "return redis.error_reply('ERR postern: unknown operation')\n";

struct redis_store {
	struct store base;
	struct state_url url;
	char host[INET6_ADDRSTRLEN]; /* TCP: resolved once at open (no DNS on a loop) */
	char *password;              /* owned; NULL: no AUTH */
	char prefix[REDIS_PREFIX_MAX + 1];
	size_t prefix_len;
	uint64_t timeout_ms, lock_ttl_ms;
	char sha[41]; /* the script's SHA1, hex */
	char proxy_id[STORE_PROXY_ID_LEN + 1];
	uint64_t heartbeat_ms;

	/* the fleet channel: one subscriber connection, on the first worker
	 * made after store_subscribe() */
	store_event_cb event_cb;
	void *event_arg;
	bool sub_taken; /* under mu */

	pthread_mutex_t mu; /* guards sync */
	redisContext *sync; /* the admin calls' connection, or NULL */
};

/* One request sent on a worker's connection. */
struct rcall {
	struct rcall *prev, *next; /* the worker's in-flight list */
	struct redis_worker *rw;
	struct store_req *r; /* NULL once answered (timed out, worker closing) */
	ev_tstamp sent, deadline;
	bool retried; /* NOSCRIPT: loaded and sent again once */
};

struct redis_worker {
	struct redis_store *rs;
	struct store_worker *sw;
	struct ev_loop *loop;
	redisAsyncContext *ac; /* NULL while down */
	bool ready;            /* the setup (AUTH, SELECT, SCRIPT LOAD) answered */
	bool closing;
	ev_timer retry; /* reconnect, after backoff_ms */
	ev_timer clock; /* the nearest deadline of a request in flight */
	uint64_t backoff_ms;
	struct rcall *head, *tail;
	size_t ninflight;
	ev_tstamp last_reply;
	ev_tstamp last_log;
	bool ever_ready;
	bool outage;   /* lost the link or a request since the last good reply */
	ev_timer beat; /* state_heartbeat */
	struct rsess *sess[RSESS_BUCKETS]; /* the live sessions this worker registered */
	size_t nsess;
	/* the subscriber (one worker of the process) */
	bool subscriber;
	redisAsyncContext *sub; /* NULL while down */
	bool sub_ever;          /* subscribed once: a new subscription resyncs */
	ev_timer sub_retry;
	uint64_t sub_backoff_ms;
};

/* A live session of this worker, for heartbeats and re-registration. */
struct rsess {
	struct rsess *next;
	struct store_session s;
	size_t key_len;
	char key[STORE_KEY_MAX];
};

/* ---- small helpers ------------------------------------------------------- */

/* Timers that must not keep the loop running (store.h: a store_worker holds
 * no reference on its loop). */
static void
timer_start_weak(struct ev_loop *loop, ev_timer *t, ev_tstamp after)
{
	if (ev_is_active(t)) {
		ev_ref(loop);
		ev_timer_stop(loop, t);
	}
	ev_timer_set(t, after, 0.);
	ev_timer_start(loop, t);
	ev_unref(loop);
}

static void
timer_stop_weak(struct ev_loop *loop, ev_timer *t)
{
	if (!ev_is_active(t))
		return;
	ev_ref(loop);
	ev_timer_stop(loop, t);
}

/* PREFIX kind key into buf (REDIS_KEY_MAX); its length.  kind is at most
 * 6 bytes ("lock:", "sess:", "thr:", "route:", "proxy:"). */
static size_t
kind_key(const struct redis_store *rs, const char *kind, const char *key, size_t len, char *buf)
{
	size_t kl = strlen(kind);

	memcpy(buf, rs->prefix, rs->prefix_len);
	memcpy(buf + rs->prefix_len, kind, kl);
	memcpy(buf + rs->prefix_len + kl, key, len);
	buf[rs->prefix_len + kl + len] = '\0';
	return rs->prefix_len + kl + len;
}

/* PREFIX "lock:" key into buf; its length. */
static size_t
lock_key(const struct redis_store *rs, const char *key, size_t len, char *buf)
{
	return kind_key(rs, "lock:", key, len, buf);
}

static int
parse_ms(const redisReply *e, uint64_t *out)
{
	char buf[24], *end;

	if (e->type != REDIS_REPLY_STRING || e->len == 0 || (size_t)e->len >= sizeof(buf))
		return -1;
	memcpy(buf, e->str, (size_t)e->len);
	buf[e->len] = '\0';
	errno = 0;
	*out = strtoull(buf, &end, 10);
	return *end != '\0' || errno != 0 ? -1 : 0;
}

static bool
str_is(const redisReply *e, const char *s)
{
	return e->type == REDIS_REPLY_STRING && (size_t)e->len == strlen(s) &&
	       memcmp(e->str, s, (size_t)e->len) == 0;
}

/* {name, proto, origin, created, used} from element 1 on -> *l.  0 or -1. */
static int
parse_lock(const redisReply *rep, struct store_lock *l)
{
	if (rep->elements != 5)
		return -1;
	if (str_is(rep->element[1], "imap"))
		l->proto = PROTO_IMAP;
	else if (str_is(rep->element[1], "pop3"))
		l->proto = PROTO_POP3;
	else
		return -1;
	if (str_is(rep->element[2], "login"))
		l->origin = STORE_ORIGIN_LOGIN;
	else if (str_is(rep->element[2], "admin"))
		l->origin = STORE_ORIGIN_ADMIN;
	else
		return -1;
	return parse_ms(rep->element[3], &l->created_ms) < 0 ||
	               parse_ms(rep->element[4], &l->used_ms) < 0
	           ? -1
	           : 0;
}

static bool
is_noscript(const redisReply *rep)
{
	return rep != NULL && rep->type == REDIS_REPLY_ERROR && rep->len >= 8 &&
	       memcmp(rep->str, "NOSCRIPT", 8) == 0;
}

/*
 * A claim's reply -> r's answer (rc, err, claim_ans).  The script's own
 * errors and anything unexpected fail the request, never guess a lock.
 */
static void
claim_answer(struct store_req *r, const redisReply *rep)
{
	static const char *const names[STORE_CLAIM__COUNT] = {
	    [STORE_CLAIM_CREATED] = "created", [STORE_CLAIM_REPLACED] = "replaced",
	    [STORE_CLAIM_HELD] = "held",       [STORE_CLAIM_REFRESHED] = "refreshed",
	    [STORE_CLAIM_OTHER] = "other",
	};

	r->rc = -1;
	if (rep == NULL) {
		r->err = "the connection to the store was lost";
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		r->err = "the store refused the request";
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) {
		r->err = "the store's answer was malformed";
		return;
	}
	if (str_is(rep->element[0], "bad")) {
		r->err = "unreadable lock record";
		return;
	}
	for (int o = 0; o < STORE_CLAIM__COUNT; o++) {
		if (!str_is(rep->element[0], names[o]))
			continue;
		if (parse_lock(rep, &r->claim_ans.lock) < 0)
			break;
		r->claim_ans.outcome = (enum store_claim_outcome)o;
		r->rc = 0;
		r->err = NULL;
		return;
	}
	r->err = "the store's answer was malformed";
}

/* ---- worker side: one async connection per loop --------------------------- */

static void rw_connect(struct redis_worker *rw);

/* The libev adapter's watchers, made weak like every other store watcher:
 * the adapter's own functions do the work, these only keep the loop's
 * reference count straight. */
static void
weak_add_read(void *p)
{
	redisLibevEvents *e = p;
	int was = e->reading;

	redisLibevAddRead(p);
	if (!was && e->reading)
		ev_unref(e->loop);
}

static void
weak_del_read(void *p)
{
	redisLibevEvents *e = p;

	if (e->reading)
		ev_ref(e->loop);
	redisLibevDelRead(p);
}

static void
weak_add_write(void *p)
{
	redisLibevEvents *e = p;
	int was = e->writing;

	redisLibevAddWrite(p);
	if (!was && e->writing)
		ev_unref(e->loop);
}

static void
weak_del_write(void *p)
{
	redisLibevEvents *e = p;

	if (e->writing)
		ev_ref(e->loop);
	redisLibevDelWrite(p);
}

static void
weak_cleanup(void *p)
{
	weak_del_read(p);
	weak_del_write(p);
	free(p);
}

static void
rcall_unlink(struct rcall *c)
{
	struct redis_worker *rw = c->rw;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		rw->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		rw->tail = c->prev;
	rw->ninflight--;
}

/* Answer c's request (if still unanswered) with an error. */
static void
rcall_fail(struct rcall *c, const char *err)
{
	struct store_req *r = c->r;

	if (r == NULL)
		return;
	c->r = NULL;
	r->rc = -1;
	r->err = err;
	c->rw->outage = true;
	store_req_done(r); /* delivered on the loop's next turn */
}

static void
rw_log(struct redis_worker *rw, const char *event, const char *what, const char *detail)
{
	ev_tstamp now = ev_now(rw->loop);

	/* each loop says it at most once a second: an outage is one line */
	if (now - rw->last_log < 1.0 && strcmp(event, "store.connect") != 0)
		return;
	rw->last_log = now;
	log_kv(strcmp(event, "store.connect") == 0 ? LOG_INFO : LOG_WARN, event,
	       "store=redis what=\"%s\" err=\"%.160s\" retry_ms=%llu", what, detail ? detail : "",
	       (unsigned long long)rw->backoff_ms);
}

/* Down: answer nothing more on this connection; try again after backoff. */
static void
rw_schedule_retry(struct redis_worker *rw)
{
	uint64_t ms;

	if (rw->closing || ev_is_active(&rw->retry))
		return;
	rw->backoff_ms = rw->backoff_ms == 0 ? REDIS_BACKOFF_MIN : rw->backoff_ms * 2;
	if (rw->backoff_ms > REDIS_BACKOFF_MAX)
		rw->backoff_ms = REDIS_BACKOFF_MAX;
	/* spread the workers (and the fleet) so they do not reconnect in step */
	ms = rw->backoff_ms / 2 + (uint64_t)random() % (rw->backoff_ms / 2 + 1);
	timer_start_weak(rw->loop, &rw->retry, (ev_tstamp)ms / 1000.);
}

/* Drop the connection from our side (dead link, worker closing). */
static void
rw_drop(struct redis_worker *rw, const char *why)
{
	redisAsyncContext *ac = rw->ac;

	if (ac == NULL)
		return;
	rw->ac = NULL;
	rw->ready = false;
	rw->outage = true;
	if (why != NULL)
		rw_log(rw, "store.disconnect", why, NULL);
	redisAsyncFree(ac); /* runs every pending callback with no reply */
	rw_schedule_retry(rw);
}

static void
rw_arm_clock(struct redis_worker *rw)
{
	ev_tstamp next = 0, now = ev_now(rw->loop);
	bool any = false;

	for (struct rcall *c = rw->head; c != NULL; c = c->next) {
		if (c->r == NULL)
			continue;
		if (!any || c->deadline < next)
			next = c->deadline;
		any = true;
	}
	if (rw->head != NULL) {
		/* also look again when the oldest would make the link dead */
		ev_tstamp dead =
		    (ev_tstamp)(rw->rs->timeout_ms * 4 > REDIS_DEAD_MIN_MS ? rw->rs->timeout_ms * 4
		                                                           : REDIS_DEAD_MIN_MS) /
		    1000.;
		ev_tstamp since = rw->head->sent > rw->last_reply ? rw->head->sent : rw->last_reply;

		if (!any || since + dead < next)
			next = since + dead;
		any = true;
	}
	if (!any) {
		timer_stop_weak(rw->loop, &rw->clock);
		return;
	}
	timer_start_weak(rw->loop, &rw->clock, next > now ? next - now + 0.001 : 0.001);
}

/* Deadlines: a request never waits longer than state_timeout; a link that
 * has answered nothing for 4 timeouts (at least 1 s) is closed and made
 * again. */
static void
rw_clock_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_worker *rw = t->data;
	ev_tstamp now = ev_now(loop), dead;

	(void)revents;
	ev_ref(loop); /* the timer stopped itself (no repeat): give back its ref */
	for (struct rcall *c = rw->head; c != NULL; c = c->next)
		if (c->r != NULL && now >= c->deadline)
			rcall_fail(c, "the store did not answer in time (state_timeout)");
	dead = (ev_tstamp)(rw->rs->timeout_ms * 4 > REDIS_DEAD_MIN_MS ? rw->rs->timeout_ms * 4
	                                                              : REDIS_DEAD_MIN_MS) /
	       1000.;
	if (rw->head != NULL &&
	    now - (rw->head->sent > rw->last_reply ? rw->head->sent : rw->last_reply) >= dead) {
		rw_drop(rw, "no answer from Redis: the link is taken for dead");
		return; /* rw_drop answered and freed every call */
	}
	rw_arm_clock(rw);
}

static void
rw_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_worker *rw = t->data;

	(void)revents;
	ev_ref(loop);
	rw_connect(rw);
}

static int send_req(struct redis_worker *rw, struct rcall *c);
static void rw_recovered(struct redis_worker *rw);
static void rw_beat(struct redis_worker *rw);
static void sess_drop(struct redis_worker *rw, uint64_t id);

/* A session registration's reply -> r's answer. */
static void
session_answer(struct store_req *r, const redisReply *rep)
{
	r->rc = -1;
	r->err = "the store's answer was malformed";
	if (rep == NULL) {
		r->err = "the connection to the store was lost";
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		r->err = "the store refused the request";
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
		return;
	if (str_is(rep->element[0], "ok")) {
		r->sess_ans = STORE_SESS_OK;
	} else if (str_is(rep->element[0], "full")) {
		r->sess_ans = STORE_SESS_USER_FULL;
	} else if (str_is(rep->element[0], "other") && rep->elements == 2) {
		r->sess_ans = STORE_SESS_OTHER_PROTO;
		r->sess_other = str_is(rep->element[1], "pop3") ? PROTO_POP3 : PROTO_IMAP;
	} else {
		return;
	}
	r->rc = 0;
	r->err = NULL;
}

static void
throttle_answer(struct store_req *r, const redisReply *rep)
{
	r->rc = -1;
	r->err = rep == NULL ? "the connection to the store was lost"
	                     : "the store's answer was malformed";
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
		return;
	for (size_t i = 0; i < 4; i++)
		if (rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer < 0)
			return;
	r->thr_ans.ip_user = (uint32_t)rep->element[0]->integer;
	r->thr_ans.ip_user_left_ms = (uint64_t)rep->element[1]->integer;
	r->thr_ans.ip = (uint32_t)rep->element[2]->integer;
	r->thr_ans.ip_left_ms = (uint64_t)rep->element[3]->integer;
	r->rc = 0;
	r->err = NULL;
}

static void
route_answer(struct store_req *r, const redisReply *rep)
{
	r->rc = -1;
	r->err = rep == NULL ? "the connection to the store was lost"
	                     : "the store's answer was malformed";
	if (rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_NIL) {
		r->route_found = false;
	} else if (rep->type == REDIS_REPLY_STRING && rep->len > 0 &&
	           (size_t)rep->len <= STORE_BACKEND_MAX) {
		memcpy(r->route, rep->str, (size_t)rep->len);
		r->route[rep->len] = '\0';
		r->route_found = true;
	} else {
		return;
	}
	r->rc = 0;
	r->err = NULL;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rcall *c = privdata;
	struct redis_worker *rw = c->rw;
	redisReply *rep = reply;

	(void)ac;
	if (rep != NULL)
		rw->last_reply = ev_now(rw->loop);
	if (is_noscript(rep) && !c->retried && c->r != NULL && rw->ac != NULL) {
		/* Redis lost the script (restart, SCRIPT FLUSH, a failover):
		 * load it and send again; both go in order on this link */
		c->retried = true;
		if (send_req(rw, c) == 0)
			return;
	}
	if (c->r != NULL && c->r->op == STORE_OP_SESSION) {
		session_answer(c->r, rep);
		if (c->r->rc != 0 || c->r->sess_ans != STORE_SESS_OK)
			sess_drop(rw, c->r->sess.id); /* noted when sent */
		store_req_done(c->r);
		c->r = NULL;
	} else if (c->r != NULL && c->r->op == STORE_OP_THROTTLE) {
		throttle_answer(c->r, rep);
		store_req_done(c->r);
		c->r = NULL;
	} else if (c->r != NULL && c->r->op == STORE_OP_ROUTE) {
		route_answer(c->r, rep);
		store_req_done(c->r);
		c->r = NULL;
	}
	bool good = rep != NULL && rep->type != REDIS_REPLY_ERROR;

	if (c->r != NULL) {
		claim_answer(c->r, rep);
		if (c->r->rc != 0 && rep != NULL && rep->type == REDIS_REPLY_ERROR)
			rw_log(rw, "store.error", "the script failed", rep->str);
		store_req_done(c->r);
		c->r = NULL;
	}
	rcall_unlink(c);
	free(c);
	if (good && rw->outage && rw->ready && !rw->closing)
		rw_recovered(rw);
}

static void
on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	redisReply *rep = reply;
	const char *step = privdata;

	if (rw == NULL || rw->ac != ac)
		return; /* an old link going away */
	if (rep == NULL)
		return; /* the disconnect callback says why */
	rw->last_reply = ev_now(rw->loop);
	if (rep->type == REDIS_REPLY_ERROR) {
		rw_log(rw, "store.error", step, rep->str);
		rw_drop(rw, NULL);
		return;
	}
	if (strcmp(step, "SCRIPT LOAD") == 0) {
		if (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, rw->rs->sha) != 0) {
			rw_log(rw, "store.error", step, "unexpected script hash");
			rw_drop(rw, NULL);
			return;
		}
		rw->ready = true;
		rw->backoff_ms = 0;
		rw_log(rw, "store.connect", "connected", NULL);
		if (rw->outage || rw->ever_ready)
			rw_recovered(rw);
		else
			rw_beat(rw);
		rw->ever_ready = true;
	}
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_worker *rw = ac->data;

	if (status == REDIS_OK || rw == NULL || rw->ac != ac)
		return;
	/* hiredis frees ac after this, failing its pending callbacks */
	rw->ac = NULL;
	rw->ready = false;
	rw->outage = true;
	rw_log(rw, "store.disconnect", "cannot connect", ac->errstr);
	rw_schedule_retry(rw);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_worker *rw = ac->data;

	(void)status;
	if (rw == NULL || rw->ac != ac)
		return; /* we dropped it ourselves */
	rw->ac = NULL;
	rw->ready = false;
	rw->outage = true;
	rw_log(rw, "store.disconnect", "connection lost", ac->errstr);
	rw_schedule_retry(rw);
}

/* A new link: connect (never blocks: the host is numeric), then AUTH,
 * SELECT and SCRIPT LOAD, pipelined; requests may follow at once, Redis
 * answers them in order after the setup. */
static void
rw_connect(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	redisAsyncContext *ac;

	if (rw->closing || rw->ac != NULL)
		return;
	ac = rs->url.kind == STATE_REDIS_UNIX ? redisAsyncConnectUnix(rs->url.path)
	                                      : redisAsyncConnect(rs->host, rs->url.port);
	if (ac == NULL || ac->err) {
		rw->outage = true;
		rw_log(rw, "store.disconnect", "cannot connect", ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		rw_schedule_retry(rw);
		return;
	}
	if (redisLibevAttach(rw->loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		rw_schedule_retry(rw);
		return;
	}
	ac->ev.addRead = weak_add_read;
	ac->ev.delRead = weak_del_read;
	ac->ev.addWrite = weak_add_write;
	ac->ev.delWrite = weak_del_write;
	ac->ev.cleanup = weak_cleanup;
	ac->data = rw;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rw->ac = ac;
	rw->ready = false;
	rw->last_reply = ev_now(rw->loop);
	if (rs->password != NULL) {
		const char *argv[] = {"AUTH", rs->password};
		size_t lens[] = {4, strlen(rs->password)};

		redisAsyncCommandArgv(ac, on_setup_reply, (void *)"AUTH", 2, argv, lens);
	}
	if (rs->url.db != 0)
		redisAsyncCommand(ac, on_setup_reply, (void *)"SELECT", "SELECT %d", rs->url.db);
	redisAsyncCommand(ac, on_setup_reply, (void *)"SCRIPT LOAD", "SCRIPT LOAD %s",
	                  redis_script);
}

/* Send c's request (a script after SCRIPT LOAD when it is a retry).  0, or -1. */
static int
send_req(struct redis_worker *rw, struct rcall *c)
{
	struct redis_store *rs = rw->rs;
	struct store_req *r = c->r;
	char key[REDIS_KEY_MAX], key2[REDIS_KEY_MAX], pp[REDIS_KEY_MAX], a[4][48];
	const char *argv[14];
	size_t lens[14];
	int n = 0;

	if (r->op == STORE_OP_ROUTE) {
		argv[0] = "GET";
		argv[1] = key;
		lens[0] = 3;
		lens[1] = kind_key(rs, "route:", r->key, r->key_len, key);
		return redisAsyncCommandArgv(rw->ac, on_reply, c, 2, argv, lens) == REDIS_OK ? 0
		                                                                             : -1;
	}
	if (c->retried &&
	    redisAsyncCommand(rw->ac, NULL, NULL, "SCRIPT LOAD %s", redis_script) != REDIS_OK)
		return -1;
	argv[n++] = "EVALSHA";
	argv[n++] = rs->sha;
	argv[n++] = "1";
	argv[n++] = key;
	switch (r->op) {
	case STORE_OP_CLAIM:
		lock_key(rs, r->key, r->key_len, key);
		argv[n++] = "claim";
		argv[n++] = proto_name(r->claim.proto);
		snprintf(a[0], sizeof(a[0]), "%llu", (unsigned long long)r->claim.now_ms);
		snprintf(a[1], sizeof(a[1]), "%llu", (unsigned long long)r->claim.expire_ms);
		snprintf(a[2], sizeof(a[2]), "%llu", (unsigned long long)r->claim.refresh_ms);
		argv[n++] = a[0];
		argv[n++] = a[1];
		argv[n++] = a[2];
		break;
	case STORE_OP_SESSION:
		kind_key(rs, "sess:", r->key, r->key_len, key);
		kind_key(rs, "proxy:", "", 0, pp);
		snprintf(a[0], sizeof(a[0]), "%016llx", (unsigned long long)r->sess.id);
		snprintf(a[1], sizeof(a[1]), "%u", r->sess_max);
		snprintf(a[2], sizeof(a[2]), "%llu", (unsigned long long)rs->heartbeat_ms * 3);
		argv[n++] = "sreg";
		argv[n++] = a[0];
		argv[n++] = rs->proxy_id;
		argv[n++] = proto_name(r->sess.proto);
		argv[n++] = key2;
		snprintf(key2, sizeof(key2), "%s %llu", r->sess.backend[0] ? r->sess.backend : "-",
		         (unsigned long long)r->sess.since_ms);
		argv[n++] = a[1];
		argv[n++] = r->sess_exclusive ? "1" : "0";
		argv[n++] = a[2];
		argv[n++] = pp;
		break;
	case STORE_OP_THROTTLE:
		kind_key(rs, "thr:", r->key, r->key_len, key);
		kind_key(rs, "thr:", r->key2, r->key2_len, key2);
		snprintf(a[0], sizeof(a[0]), "%llu", (unsigned long long)r->window_ms);
		argv[n++] = "tfail";
		argv[n++] = key2;
		argv[n++] = a[0];
		break;
	case STORE_OP_ROUTE:
		return -1;
	}
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]); /* keys are NUL-free: normalised names */
	return redisAsyncCommandArgv(rw->ac, on_reply, c, n, argv, lens) == REDIS_OK ? 0 : -1;
}

/* ---- live sessions of this worker --------------------------------------- */

static size_t
sess_bucket(uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 54) & (RSESS_BUCKETS - 1);
}

static struct rsess **
sess_find(struct redis_worker *rw, uint64_t id)
{
	struct rsess **pp = &rw->sess[sess_bucket(id)];

	while (*pp != NULL && (*pp)->s.id != id)
		pp = &(*pp)->next;
	return pp;
}

static void
sess_drop(struct redis_worker *rw, uint64_t id)
{
	struct rsess **pp = sess_find(rw, id), *e = *pp;

	if (e == NULL)
		return;
	*pp = e->next;
	free(e);
	rw->nsess--;
}

/* Register e without a check (fire and forget: a lost one is sent again by
 * the next heartbeat). */
static void
sess_put(struct redis_worker *rw, const struct rsess *e)
{
	struct redis_store *rs = rw->rs;
	char key[REDIS_KEY_MAX], pp[REDIS_KEY_MAX], val[STORE_BACKEND_MAX + 32], sid[20], ttl[24];
	const char *argv[13] = {
	    "EVALSHA", rs->sha, "1", key, "sput", sid, rs->proxy_id, proto_name(e->s.proto),
	    val,       "0",     "0", ttl, pp};
	size_t lens[13];

	if (rw->ac == NULL || !rw->ready)
		return;
	kind_key(rs, "sess:", e->key, e->key_len, key);
	kind_key(rs, "proxy:", "", 0, pp);
	snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)e->s.id);
	snprintf(val, sizeof(val), "%s %llu", e->s.backend[0] ? e->s.backend : "-",
	         (unsigned long long)e->s.since_ms);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)rs->heartbeat_ms * 3);
	for (int i = 0; i < 13; i++)
		lens[i] = strlen(argv[i]);
	(void)redisAsyncCommandArgv(rw->ac, NULL, NULL, 13, argv, lens);
}

static struct rsess *
sess_add(struct redis_worker *rw, const char *key, size_t len, const struct store_session *s)
{
	struct rsess **pp = sess_find(rw, s->id), *e;

	if (*pp != NULL)
		return *pp;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL; /* the heartbeat will not know it: it lapses in Redis */
	e->s = *s;
	memcpy(e->key, key, len);
	e->key_len = len;
	*pp = e;
	rw->nsess++;
	return e;
}

/* The heartbeat: this proxy is alive, and so are its sessions.  Every
 * session is written again (not only its TTL moved), so a Redis that lost
 * them without our noticing has them back within one heartbeat. */
static void
rw_beat(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	char pk[REDIS_KEY_MAX], ttl[24];

	if (rw->ac == NULL || !rw->ready)
		return;
	kind_key(rs, "proxy:", rs->proxy_id, strlen(rs->proxy_id), pk);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)rs->heartbeat_ms * 3);
	(void)redisAsyncCommand(rw->ac, NULL, NULL, "SET %s 1 PX %s", pk, ttl);
	for (size_t b = 0; b < RSESS_BUCKETS; b++)
		for (struct rsess *e = rw->sess[b]; e != NULL; e = e->next)
			sess_put(rw, e);
}

static void
rw_beat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_worker *rw = t->data;

	(void)loop;
	(void)revents;
	rw_beat(rw);
}

/* Back after an outage: say so once, register every live session again
 * (Redis may have restarted empty), then tell the policy (its locks
 * granted meanwhile). */
static void
rw_recovered(struct redis_worker *rw)
{
	rw->outage = false;
	rw_beat(rw);
	log_kv(LOG_INFO, "state.recovered", "store=redis proxy_id=%s sessions=%zu",
	       rw->rs->proxy_id, rw->nsess);
	if (rw->sw->recovered_cb != NULL)
		rw->sw->recovered_cb(rw->sw->recovered_arg);
}

static void
redis_session_note(struct store_worker *sw, const char *key, size_t len,
                   const struct store_session *s, bool end)
{
	struct redis_worker *rw = sw->impl;
	char k[REDIS_KEY_MAX], sid[20];
	struct rsess *e;

	if (end) {
		sess_drop(rw, s->id);
		if (rw->ac == NULL)
			return; /* it lapses with this proxy's entries, or the next check drops it
			         */
		size_t kl = kind_key(rw->rs, "sess:", key, len, k);

		snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)s->id);
		/* %b: a user name may hold spaces, which a format would split at */
		(void)redisAsyncCommand(rw->ac, NULL, NULL, "HDEL %b %s", k, kl, sid);
		return;
	}
	if ((e = sess_add(rw, key, len, s)) != NULL)
		sess_put(rw, e);
}

static void
redis_announce(struct store_worker *sw, enum store_event ev, const char *msg, size_t len)
{
	struct redis_worker *rw = sw->impl;
	char ch[REDIS_KEY_MAX], m[STORE_KEY_MAX + 96];

	if (rw->ac == NULL || ev != STORE_EVENT_BLOCK || len + 6 > sizeof(m))
		return;
	kind_key(rw->rs, "events", "", 0, ch);
	memcpy(m, "block ", 6);
	memcpy(m + 6, msg, len);
	/* one argument: hiredis splits a format at spaces */
	(void)redisAsyncCommand(rw->ac, NULL, NULL, "PUBLISH %s %b", ch, m, len + 6);
}

static void
redis_throttle_clear(struct store_worker *sw, const char *key, size_t len)
{
	struct redis_worker *rw = sw->impl;
	char k[REDIS_KEY_MAX];

	if (rw->ac == NULL)
		return;
	size_t kl = kind_key(rw->rs, "thr:", key, len, k);

	(void)redisAsyncCommand(rw->ac, NULL, NULL, "DEL %b", k, kl);
}

static int
redis_submit(struct store_req *r, const char **err_out)
{
	struct redis_worker *rw = r->sw->impl;
	struct rcall *c;

	if (rw->ac == NULL) {
		/* down, reconnecting: say so at once rather than wait */
		r->rc = -1;
		r->err = "the store is unreachable (reconnecting)";
		store_req_done(r);
		return 0;
	}
	if (rw->ninflight >= REDIS_INFLIGHT_MAX) {
		*err_out = "the store is overloaded (too many requests in flight)";
		return -1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		*err_out = "out of memory";
		return -1;
	}
	c->rw = rw;
	c->r = r;
	/* ev_now() may be stale by one loop turn: the wall clock is exact */
	c->sent = ev_time();
	c->deadline = c->sent + (ev_tstamp)rw->rs->timeout_ms / 1000.;
	if (r->deadline_ms != 0 && (ev_tstamp)r->deadline_ms / 1000. < c->deadline)
		c->deadline = (ev_tstamp)r->deadline_ms / 1000.;
	/* noted before the answer: an end that comes first finds it */
	if (r->op == STORE_OP_SESSION)
		(void)sess_add(rw, r->key, r->key_len, &r->sess);
	if (send_req(rw, c) < 0) {
		if (r->op == STORE_OP_SESSION)
			sess_drop(rw, r->sess.id);
		free(c);
		*err_out = "the store is unreachable";
		return -1;
	}
	c->prev = rw->tail;
	if (rw->tail != NULL)
		rw->tail->next = c;
	else
		rw->head = c;
	rw->tail = c;
	rw->ninflight++;
	if (!ev_is_active(&rw->clock) || rw->ninflight == 1)
		rw_arm_clock(rw);
	return 0;
}

/* ---- the fleet channel: one subscriber per process ------------------------ */

static void sub_connect(struct redis_worker *rw);

static void
sub_schedule_retry(struct redis_worker *rw)
{
	uint64_t ms;

	if (rw->closing || ev_is_active(&rw->sub_retry))
		return;
	rw->sub_backoff_ms = rw->sub_backoff_ms == 0 ? REDIS_BACKOFF_MIN : rw->sub_backoff_ms * 2;
	if (rw->sub_backoff_ms > REDIS_BACKOFF_MAX)
		rw->sub_backoff_ms = REDIS_BACKOFF_MAX;
	ms = rw->sub_backoff_ms / 2 + (uint64_t)random() % (rw->sub_backoff_ms / 2 + 1);
	timer_start_weak(rw->loop, &rw->sub_retry, (ev_tstamp)ms / 1000.);
}

static void
sub_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	ev_ref(loop);
	sub_connect(t->data);
}

/* "kick USER" / "route USER" on PREFIX "events". */
static void
on_sub_message(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_worker *rw = ac->data;
	struct redis_store *rs;
	redisReply *rep = reply, *kind, *msg;

	(void)privdata;
	if (rw == NULL || rw->sub != ac || rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 3)
		return;
	rs = rw->rs;
	kind = rep->element[0];
	msg = rep->element[2];
	if (str_is(kind, "subscribe")) {
		rw->sub_backoff_ms = 0;
		/* messages sent while we were away are lost: forget what they
		 * would have changed */
		if (rw->sub_ever && rs->event_cb != NULL)
			rs->event_cb(rs->event_arg, STORE_EVENT_RESYNC, "", 0);
		rw->sub_ever = true;
		return;
	}
	if (!str_is(kind, "message") || msg->type != REDIS_REPLY_STRING || rs->event_cb == NULL)
		return;
	if (msg->len > 5 && memcmp(msg->str, "kick ", 5) == 0)
		rs->event_cb(rs->event_arg, STORE_EVENT_KICK, msg->str + 5, (size_t)msg->len - 5);
	else if (msg->len > 6 && memcmp(msg->str, "block ", 6) == 0)
		rs->event_cb(rs->event_arg, STORE_EVENT_BLOCK, msg->str + 6, (size_t)msg->len - 6);
	else if (msg->len > 6 && memcmp(msg->str, "route ", 6) == 0)
		rs->event_cb(rs->event_arg, STORE_EVENT_ROUTE, msg->str + 6, (size_t)msg->len - 6);
}

static void
on_sub_gone(const redisAsyncContext *ac, int status)
{
	struct redis_worker *rw = ac->data;

	if (rw == NULL || rw->sub != ac)
		return;
	if (ac->c.flags & REDIS_CONNECTED || status != REDIS_OK) {
		rw->sub = NULL;
		sub_schedule_retry(rw);
	}
}

static void
on_sub_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		on_sub_gone(ac, status);
}

static void
sub_connect(struct redis_worker *rw)
{
	struct redis_store *rs = rw->rs;
	char ch[REDIS_KEY_MAX];
	redisAsyncContext *ac;

	if (rw->closing || rw->sub != NULL)
		return;
	ac = rs->url.kind == STATE_REDIS_UNIX ? redisAsyncConnectUnix(rs->url.path)
	                                      : redisAsyncConnect(rs->host, rs->url.port);
	if (ac == NULL || ac->err || redisLibevAttach(rw->loop, ac) != REDIS_OK) {
		if (ac != NULL)
			redisAsyncFree(ac);
		sub_schedule_retry(rw);
		return;
	}
	ac->ev.addRead = weak_add_read;
	ac->ev.delRead = weak_del_read;
	ac->ev.addWrite = weak_add_write;
	ac->ev.delWrite = weak_del_write;
	ac->ev.cleanup = weak_cleanup;
	ac->data = rw;
	redisAsyncSetConnectCallback(ac, on_sub_connect);
	redisAsyncSetDisconnectCallback(ac, on_sub_gone);
	rw->sub = ac;
	if (rs->password != NULL) {
		const char *argv[] = {"AUTH", rs->password};
		size_t lens[] = {4, strlen(rs->password)};

		redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, lens);
	}
	kind_key(rs, "events", "", 0, ch);
	redisAsyncCommand(ac, on_sub_message, NULL, "SUBSCRIBE %s", ch);
}

static void
redis_subscribe(struct store *st, store_event_cb cb, void *arg)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;

	pthread_mutex_lock(&rs->mu);
	rs->event_cb = cb;
	rs->event_arg = arg;
	pthread_mutex_unlock(&rs->mu);
}

static int
redis_worker_open(struct store_worker *sw, const char **err_out)
{
	struct redis_worker *rw = calloc(1, sizeof(*rw));

	if (rw == NULL) {
		*err_out = "out of memory";
		return -1;
	}
	rw->rs = (struct redis_store *)(void *)sw->st;
	rw->sw = sw;
	rw->loop = sw->loop;
	ev_timer_init(&rw->retry, rw_retry_cb, 0., 0.);
	rw->retry.data = rw;
	ev_timer_init(&rw->clock, rw_clock_cb, 0., 0.);
	rw->clock.data = rw;
	rw->last_log = -10;
	ev_timer_init(&rw->beat, rw_beat_cb, (ev_tstamp)rw->rs->heartbeat_ms / 1000.,
	              (ev_tstamp)rw->rs->heartbeat_ms / 1000.);
	rw->beat.data = rw;
	ev_timer_start(rw->loop, &rw->beat);
	ev_unref(rw->loop);
	ev_timer_init(&rw->sub_retry, sub_retry_cb, 0., 0.);
	rw->sub_retry.data = rw;
	sw->impl = rw;
	pthread_mutex_lock(&rw->rs->mu);
	if (rw->rs->event_cb != NULL && !rw->rs->sub_taken)
		rw->subscriber = rw->rs->sub_taken = true;
	pthread_mutex_unlock(&rw->rs->mu);
	rw_connect(rw); /* a failure here only schedules a retry */
	if (rw->subscriber)
		sub_connect(rw);
	return 0;
}

/* Before store_worker_free() waits for the store: every request still in
 * flight is answered now (nobody will see it: the worker is going). */
static void
redis_worker_stop(struct store_worker *sw)
{
	struct redis_worker *rw = sw->impl;

	if (rw == NULL)
		return;
	for (struct rcall *c = rw->head; c != NULL; c = c->next)
		rcall_fail(c, "the worker is closing");
}

static void
redis_worker_close(struct store_worker *sw)
{
	struct redis_worker *rw = sw->impl;

	if (rw == NULL)
		return;
	rw->closing = true;
	timer_stop_weak(rw->loop, &rw->retry);
	timer_stop_weak(rw->loop, &rw->clock);
	timer_stop_weak(rw->loop, &rw->sub_retry);
	ev_ref(rw->loop);
	ev_timer_stop(rw->loop, &rw->beat);
	rw_drop(rw, NULL); /* frees every call through its callback */
	if (rw->sub != NULL) {
		redisAsyncContext *ac = rw->sub;

		rw->sub = NULL;
		redisAsyncFree(ac);
	}
	if (rw->subscriber) {
		pthread_mutex_lock(&rw->rs->mu);
		rw->rs->sub_taken = false;
		pthread_mutex_unlock(&rw->rs->mu);
	}
	for (size_t b = 0; b < RSESS_BUCKETS; b++) {
		struct rsess *e = rw->sess[b], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(rw);
	sw->impl = NULL;
}

/* ---- synchronous: one blocking connection, under a mutex ------------------ */

static void
sync_close(struct redis_store *rs)
{
	if (rs->sync != NULL)
		redisFree(rs->sync);
	rs->sync = NULL;
}

/* Under rs->mu: a connected, authenticated, selected context.  0 or -1. */
static int
sync_open(struct redis_store *rs, const char **err_out)
{
	uint64_t ms = rs->timeout_ms > REDIS_SYNC_MIN_MS ? rs->timeout_ms : REDIS_SYNC_MIN_MS;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	redisContext *c;
	redisReply *rep;

	if (rs->sync != NULL)
		return 0;
	c = rs->url.kind == STATE_REDIS_UNIX ? redisConnectUnixWithTimeout(rs->url.path, tv)
	                                     : redisConnectWithTimeout(rs->host, rs->url.port, tv);
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
		rep = redisCommand(c, "AUTH %s", rs->password);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			*err_out = "Redis refused the password (state_password_file)";
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

/*
 * Under rs->mu: run the script with KEYS[1] = the lock key of key and
 * argv as ARGV; loads it on NOSCRIPT, makes a new connection once on an
 * I/O error.  The reply (free it), or NULL and *err_out.
 */
static redisReply *
sync_script(struct redis_store *rs, const char *key, size_t len, int argc, const char **argv,
            const char **err_out)
{
	char k[REDIS_KEY_MAX];
	const char *av[12] = {"EVALSHA", rs->sha, "1", k};
	size_t lens[12] = {7, 40, 1, lock_key(rs, key, len, k)};
	redisReply *rep = NULL;

	for (int i = 0; i < argc; i++) {
		av[4 + i] = argv[i];
		lens[4 + i] = strlen(argv[i]);
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		if (sync_open(rs, err_out) < 0)
			return NULL;
		rep = redisCommandArgv(rs->sync, 4 + argc, av, lens);
		if (rep == NULL) {
			/* a link that broke since the last call: one more try */
			sync_close(rs);
			*err_out = "the connection to Redis was lost, or it did not answer in time";
			continue;
		}
		if (is_noscript(rep)) {
			freeReplyObject(rep);
			rep = redisCommand(rs->sync, "SCRIPT LOAD %s", redis_script);
			freeReplyObject(rep);
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
	if (str_is(rep->element[0], "none"))
		return 0;
	if (str_is(rep->element[0], "bad")) {
		*err_out = "unreadable lock record";
		return -1;
	}
	if (!str_is(rep->element[0], "lock") || parse_lock(rep, out) < 0) {
		*err_out = "the store's answer was malformed";
		return -1;
	}
	*found_out = true;
	return 0;
}

static int
redis_lock_get(struct store *st, const char *key, size_t len, struct store_lock *out,
               bool *found_out, const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	const char *argv[] = {"get"};
	redisReply *rep;
	int rc = -1;

	pthread_mutex_lock(&rs->mu);
	if ((rep = sync_script(rs, key, len, 1, argv, err_out)) != NULL) {
		rc = get_answer(rep, out, found_out, err_out);
		freeReplyObject(rep);
	}
	pthread_mutex_unlock(&rs->mu);
	return rc;
}

static int
redis_lock_put(struct store *st, const char *key, size_t len, const struct store_lock *rec,
               const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char created[24], used[24], ttl[24];
	const char *argv[] = {"put",
	                      proto_name(rec->proto),
	                      rec->origin == STORE_ORIGIN_ADMIN ? "admin" : "login",
	                      created,
	                      used,
	                      ttl};
	redisReply *rep;

	snprintf(created, sizeof(created), "%llu", (unsigned long long)rec->created_ms);
	snprintf(used, sizeof(used), "%llu", (unsigned long long)rec->used_ms);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)rs->lock_ttl_ms);
	pthread_mutex_lock(&rs->mu);
	rep = sync_script(rs, key, len, 6, argv, err_out);
	pthread_mutex_unlock(&rs->mu);
	freeReplyObject(rep);
	return rep != NULL ? 0 : -1;
}

static int
redis_lock_del(struct store *st, const char *key, size_t len, bool *found_out, const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char k[REDIS_KEY_MAX];
	const char *argv[] = {"DEL", k};
	size_t lens[] = {3, lock_key(rs, key, len, k)};
	redisReply *rep = NULL;

	pthread_mutex_lock(&rs->mu);
	for (int attempt = 0; attempt < 2 && rep == NULL; attempt++) {
		if (sync_open(rs, err_out) < 0)
			break;
		if ((rep = redisCommandArgv(rs->sync, 2, argv, lens)) == NULL) {
			sync_close(rs);
			*err_out = "the connection to Redis was lost, or it did not answer in time";
		}
	}
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
	struct store_lock lock;
};

static int
item_cmp(const void *a, const void *b)
{
	const struct list_item *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : x->len < y->len ? -1 : x->len > y->len;
}

/* The SCAN pattern: the prefix with glob characters escaped, then "lock:*". */
static void
scan_pattern(const struct redis_store *rs, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < rs->prefix_len && n + 2 < cap; i++) {
		char ch = rs->prefix[i];

		if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\')
			out[n++] = '\\';
		out[n++] = ch;
	}
	snprintf(out + n, cap - n, "lock:*");
}

/* Under rs->mu: SCAN (never KEYS: it would stall Redis for every proxy)
 * step by step, each step's records read by the script, pipelined. */
static int
scan_all(struct redis_store *rs, struct list_item **items_out, size_t *n_out, const char **err_out)
{
	char pattern[2 * REDIS_PREFIX_MAX + 8], cursor[32] = "0";
	size_t plen = rs->prefix_len + 5, n = 0, cap = 0;
	struct list_item *items = NULL;

	scan_pattern(rs, pattern, sizeof(pattern));
	if (sync_open(rs, err_out) < 0)
		return -1;
	do {
		redisReply *rep = redisCommand(rs->sync, "SCAN %s MATCH %s COUNT %d", cursor,
		                               pattern, REDIS_LIST_BATCH);
		redisReply *keys;

		if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_STRING ||
		    rep->element[1]->type != REDIS_REPLY_ARRAY) {
			if (rep == NULL)
				sync_close(rs);
			freeReplyObject(rep);
			*err_out = "SCAN failed";
			goto fail;
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
			redisReply *g = NULL, *k = keys->element[i];
			struct store_lock l;
			const char *e;
			bool found = false;

			if (redisGetReply(rs->sync, (void **)&g) != REDIS_OK || g == NULL) {
				sync_close(rs);
				freeReplyObject(rep);
				*err_out = "the connection to Redis was lost";
				goto fail;
			}
			if (is_noscript(g)) {
				/* load it; this step's records are read on the next try */
				freeReplyObject(g);
				freeReplyObject(rep);
				g = redisCommand(rs->sync, "SCRIPT LOAD %s", redis_script);
				freeReplyObject(g);
				*err_out = "Redis had lost the script: try again";
				goto fail;
			}
			/* gone since the SCAN, or not ours to show: skipped, as LMDB does */
			if (get_answer(g, &l, &found, &e) == 0 && found && (size_t)k->len > plen) {
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 256;
					struct list_item *ni = realloc(items, nc * sizeof(*ni));

					if (ni == NULL) {
						freeReplyObject(g);
						freeReplyObject(rep);
						*err_out = "out of memory";
						goto fail;
					}
					items = ni;
					cap = nc;
				}
				items[n].len = (size_t)k->len - plen;
				if ((items[n].key = malloc(items[n].len + 1)) == NULL) {
					freeReplyObject(g);
					freeReplyObject(rep);
					*err_out = "out of memory";
					goto fail;
				}
				memcpy(items[n].key, k->str + plen, items[n].len);
				items[n].key[items[n].len] = '\0';
				items[n].lock = l;
				n++;
			}
			freeReplyObject(g);
		}
		freeReplyObject(rep);
	} while (strcmp(cursor, "0") != 0);
	*items_out = items;
	*n_out = n;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		free(items[i].key);
	free(items);
	return -1;
}

static int
redis_lock_list(struct store *st, store_list_cb cb, void *arg, const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	struct list_item *items = NULL;
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&rs->mu);
	rc = scan_all(rs, &items, &n, err_out);
	pthread_mutex_unlock(&rs->mu);
	if (rc < 0)
		return -1;
	/* SCAN has no order; the interface promises key byte order */
	if (n > 1)
		qsort(items, n, sizeof(*items), item_cmp);
	for (size_t i = 0; i < n; i++)
		if (cb(arg, items[i].key, items[i].len, &items[i].lock) != 0)
			break;
	for (size_t i = 0; i < n; i++)
		free(items[i].key);
	free(items);
	return 0;
}

/* ---- routes and the fleet channel, synchronous ------------------------------ */

/* Under rs->mu: one command (argv), a new connection once on an I/O error.
 * The reply (free it), or NULL and *err_out. */
static redisReply *
sync_cmd(struct redis_store *rs, int argc, const char **argv, const size_t *lens,
         const char **err_out)
{
	redisReply *rep = NULL;

	for (int attempt = 0; attempt < 2 && rep == NULL; attempt++) {
		if (sync_open(rs, err_out) < 0)
			return NULL;
		if ((rep = redisCommandArgv(rs->sync, argc, argv, lens)) == NULL) {
			sync_close(rs);
			*err_out = "the connection to Redis was lost, or it did not answer in time";
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

static int
redis_route_get(struct store *st, const char *key, size_t len, char *out, bool *found_out,
                const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char k[REDIS_KEY_MAX];
	const char *argv[] = {"GET", k};
	size_t lens[] = {3, kind_key(rs, "route:", key, len, k)};
	struct store_req r = {.rc = -1};
	redisReply *rep;

	pthread_mutex_lock(&rs->mu);
	rep = sync_cmd(rs, 2, argv, lens, err_out);
	pthread_mutex_unlock(&rs->mu);
	if (rep == NULL)
		return -1;
	route_answer(&r, rep);
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

static int
redis_route_put(struct store *st, const char *key, size_t len, const char *backend,
                const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char k[REDIS_KEY_MAX];
	const char *argv[] = {"SET", k, backend};
	size_t lens[] = {3, kind_key(rs, "route:", key, len, k), strlen(backend)};
	redisReply *rep;

	pthread_mutex_lock(&rs->mu);
	rep = sync_cmd(rs, 3, argv, lens, err_out);
	pthread_mutex_unlock(&rs->mu);
	freeReplyObject(rep);
	return rep != NULL ? 0 : -1;
}

static int
redis_route_del(struct store *st, const char *key, size_t len, bool *found_out,
                const char **err_out)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;
	char k[REDIS_KEY_MAX];
	const char *argv[] = {"DEL", k};
	size_t lens[] = {3, kind_key(rs, "route:", key, len, k)};
	redisReply *rep;

	pthread_mutex_lock(&rs->mu);
	rep = sync_cmd(rs, 2, argv, lens, err_out);
	pthread_mutex_unlock(&rs->mu);
	if (rep == NULL)
		return -1;
	*found_out = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
	freeReplyObject(rep);
	return 0;
}

static int
redis_publish(struct store *st, enum store_event ev, const char *user, size_t len,
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
	lens[1] = kind_key(rs, "events", "", 0, ch);
	lens[2] = (size_t)n;
	pthread_mutex_lock(&rs->mu);
	rep = sync_cmd(rs, 3, argv, lens, err_out);
	pthread_mutex_unlock(&rs->mu);
	freeReplyObject(rep);
	return rep != NULL ? 0 : -1;
}

static const char *
redis_proxy_id(const struct store *st)
{
	return ((const struct redis_store *)(const void *)st)->proxy_id;
}

/* ---- open and close ----------------------------------------------------- */

static void
redis_close(struct store *st)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;

	sync_close(rs);
	if (rs->password != NULL) {
		explicit_bzero(rs->password, strlen(rs->password));
		free(rs->password);
	}
	pthread_mutex_destroy(&rs->mu);
	free(rs);
}

static const struct store_ops redis_ops = {
    .name = "redis",
    .close = redis_close,
    .worker_open = redis_worker_open,
    .worker_stop = redis_worker_stop,
    .worker_close = redis_worker_close,
    .submit = redis_submit,
    .lock_get = redis_lock_get,
    .lock_put = redis_lock_put,
    .lock_del = redis_lock_del,
    .lock_list = redis_lock_list,
    .route_get = redis_route_get,
    .route_put = redis_route_put,
    .route_del = redis_route_del,
    .publish = redis_publish,
    .session_note = redis_session_note,
    .throttle_clear = redis_throttle_clear,
    .announce = redis_announce,
    .proxy_id = redis_proxy_id,
    .subscribe = redis_subscribe,
};

/* The first line of path, without its line end.  NULL and *err_out. */
static char *
read_password(const char *path, const char **err_out)
{
	char buf[REDIS_PASSWORD_MAX + 2], *p;
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL) {
		*err_out = "cannot read state_password_file";
		return NULL;
	}
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (n = strcspn(buf, "\r\n")) == 0) {
		*err_out = "state_password_file is empty";
		return NULL;
	}
	if (n > REDIS_PASSWORD_MAX) {
		*err_out = "the password in state_password_file is too long";
		return NULL;
	}
	buf[n] = '\0';
	p = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (p == NULL)
		*err_out = "out of memory";
	return p;
}

static int
script_sha(char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	if (EVP_Digest(redis_script, sizeof(redis_script) - 1, md, &len, EVP_sha1(), NULL) != 1 ||
	    len != 20)
		return -1;
	for (unsigned i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

struct store *
store_redis_open(const struct state_url *u, const struct store_params *sp, const char **err_out)
{
	struct redis_store *rs = calloc(1, sizeof(*rs));
	const char *prefix = sp && sp->prefix ? sp->prefix : "postern:";

	if (rs == NULL) {
		*err_out = "out of memory";
		return NULL;
	}
	rs->base.ops = &redis_ops;
	rs->url = *u;
	rs->url.arg = NULL;
	rs->timeout_ms = sp && sp->timeout_ms ? sp->timeout_ms : 250;
	rs->lock_ttl_ms = sp ? sp->lock_expire_ms : 0;
	rs->heartbeat_ms = sp && sp->heartbeat_ms ? sp->heartbeat_ms : 10000;
	{
		/* random per process start: a restarted proxy is a new one, and
		 * its predecessor's sessions lapse with the old id's heartbeat */
		unsigned char id[STORE_PROXY_ID_LEN / 2];

		if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
			free(rs);
			*err_out = "no random bytes for the proxy id";
			return NULL;
		}
		for (size_t i = 0; i < sizeof(id); i++)
			snprintf(rs->proxy_id + 2 * i, 3, "%02x", id[i]);
	}
	if (pthread_mutex_init(&rs->mu, NULL) != 0) {
		free(rs);
		*err_out = "cannot make a mutex";
		return NULL;
	}
	if (strlen(prefix) > REDIS_PREFIX_MAX) {
		*err_out = "state_prefix is too long";
		goto fail;
	}
	rs->prefix_len = strlen(prefix);
	memcpy(rs->prefix, prefix, rs->prefix_len);
	if (script_sha(rs->sha) < 0) {
		*err_out = "cannot hash the script (SHA1)";
		goto fail;
	}
	if (sp != NULL && sp->password_file != NULL &&
	    (rs->password = read_password(sp->password_file, err_out)) == NULL)
		goto fail;
	if (u->kind == STATE_REDIS_TCP) {
		/* resolved once, here: a worker loop must never wait for DNS */
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM},
		                *res = NULL;
		const void *a;

		if (getaddrinfo(u->host, NULL, &hints, &res) != 0 || res == NULL) {
			*err_out = "cannot resolve the Redis host";
			goto fail;
		}
		a = res->ai_family == AF_INET6
		        ? (const void *)&((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr
		        : (const void *)&((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr;
		inet_ntop(res->ai_family, a, rs->host, sizeof(rs->host));
		freeaddrinfo(res);
	}
	return &rs->base;
fail:
	redis_close(&rs->base);
	return NULL;
}
