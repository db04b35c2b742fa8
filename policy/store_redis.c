/*
 * store_redis.c: the shared store, Redis, for a fleet of proxies.  Owns the
 * key layout (below), the one Lua script that makes every
 * read-decide-write atomic inside Redis (loaded once with SCRIPT LOAD, run
 * with EVALSHA, loaded again on NOSCRIPT), the small helpers the other
 * store_redis files share, and opening and closing the store.
 * One hiredis async connection per worker loop (the libev adapter hiredis
 * ships) is in store_redis_worker.c, the live sessions, heartbeats and the
 * fleet channel in store_redis_fleet.c, and one blocking connection, under
 * a mutex, for the synchronous admin calls in store_redis_sync.c.
 * Never reads, decides in C and then writes: a decision is a script.
 *
 * Keys (PREFIX is state_prefix, "postern:" by default; it holds no braces):
 *   PREFIX "{" USER "}:lock"            hash, the user's protocol lock
 *   PREFIX "{" USER "}:sess"            hash, the user's live sessions
 *   PREFIX "{" USER "}:route"           string, the user's backend
 *   PREFIX "{" IP "}:thr"               counter, failed logins from IP
 *   PREFIX "{" IP "}:thr:" IP "|" USER  counter, failed logins of USER from IP
 *   PREFIX "proxy:" PROXYID             hash, a proxy's heartbeat (a field per
 *                                       worker; PX 3 * state_heartbeat)
 *   PREFIX "events"                     the fleet's pub/sub channel
 * The braces are a Redis Cluster hash tag: the keys of one user (or one
 * address) hash to one slot, so each script's own keys are in one slot
 * (claim, get, put, route and rput: the user's lock or route key; sreg, sput:
 * the user's sessions key; tfail: the two throttle keys of one address).
 * Two things are not: sreg and sput also make this proxy's PREFIX "proxy:"
 * ID key when it is missing and read the other proxies' ones (liveness of
 * the sessions they registered), which are not passed in KEYS and are in
 * slots of their own (beat's own key is its KEYS[1]);
 * and the old layout below.  So this runs on one Redis (with replicas and
 * Sentinels), not on a Cluster; the layout is the one a Cluster needs, so a
 * later move to one (the heartbeats aside) needs no re-keying.
 *
 * The old layout, before the hash tags: PREFIX "lock:" USER and PREFIX
 * "route:" USER.  They are still read, so an upgrade loses no lock and no
 * provisioned route: claim and get look at the old lock key when the new
 * one is missing and RENAME a lock found there to the new key (RENAME
 * keeps its TTL) before deciding on it; put and del remove the old key
 * too; a route is read at the new key, then at the old one (and left
 * there: a provisioning system may still write it; the new key wins);
 * route put and del remove the old one.  The old names are passed as the
 * scripts' last ARGV, not in KEYS: a Cluster deployment, which has no old
 * keys, would stop passing them.  Sessions and throttle counters live for
 * seconds to minutes: only the new layout.  A user name that begins with
 * "}" makes an empty tag, which a Cluster ignores (the whole name hashes).
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

#include <openssl/evp.h>

#include "log.h"
#include "store_redis_impl.h"

#define REDIS_PASSWORD_MAX 512 /* bytes of the password file's first line */

/*
 * The script: KEYS[1] is the user's (or address') key, ARGV[1] the
 * operation.  A record is
 * a hash {v=1, proto=imap|pop3, origin=login|admin, created=MS, used=MS};
 * anything else at the key is "bad" (fail closed, as LMDB does).  Times
 * are the proxies' wall clocks passed in (as LMDB's records hold), written
 * back as the strings given, never through a Lua number.
 *
 * Locks: KEYS[1] is PREFIX "{" USER "}:lock"; OLD, the last argument, is
 * the old layout's PREFIX "lock:" USER: when KEYS[1] does not exist and
 * OLD holds a lock, it is renamed to KEYS[1] (TTL and all) and decided on
 * (OLD holding something else: "bad", as at KEYS[1]).
 *   claim PROTO NOW EXPIRE REFRESH OLD  store_claim_decide(), the same rules:
 *       none, or expired (EXPIRE > 0, NOW >= used, NOW - used >= EXPIRE):
 *           write a new login lock, PEXPIRE EXPIRE -> created | replaced
 *       another protocol                         -> other (nothing written)
 *       NOW > used and NOW - used >= REFRESH: used = NOW, PEXPIRE again
 *                                                -> refreshed
 *       otherwise                                -> held
 *     and returns {outcome, proto, origin, created, used} of the lock in
 *     effect.  lock_expire is thus also the key's TTL, refreshed on use: a
 *     lock nobody uses leaves Redis by itself.
 *   put PROTO ORIGIN CREATED USED TTL OLD  replace the record (TTL 0:
 *                                       none); OLD is deleted
 *   get OLD                             {"lock", ...}, {"none"} or {"bad"}
 *     (OLD may be left out: no look at the old layout; `lock list` reads
 *     each layout's keys in place so)
 * Routes: KEYS[1] is PREFIX "{" USER "}:route", OLD PREFIX "route:" USER.
 *   route OLD          the backend at KEYS[1], else at OLD, else nil
 *   rput BACKEND OLD   SET KEYS[1] BACKEND, DEL OLD -> {"ok"}
 *
 * Live sessions: KEYS[1] is PREFIX "{" USER "}:sess", a hash of session id ->
 * "PROXYID PROTO BACKEND SINCE"; PREFIX "proxy:" ID is a proxy's heartbeat
 * (PX 3 * state_heartbeat): an entry counts while its proxy's key exists,
 * so the sessions of a dead proxy stop counting within 3 heartbeats; they
 * are skipped and dropped by the next check of their user.  The hash's own
 * TTL (HTTL, 24 h by default) only ends the entries nobody checks again;
 * every sreg and sput sets it, and each worker writes its sessions again
 * after half of it (store_redis_fleet.c), so it never lapses under a live
 * one.
 *   sreg SID ME PROTO "BACKEND SINCE" MAX EXCL TTL PROXYPREFIX HTTL
 *       count the live sessions of other ids, as connlimit_session() does
 *       (EXCL 1: another protocol live -> {"other", P}; MAX > 0 and as many
 *       live -> {"full"}), else register -> {"ok"}; TTL is the proxy key's,
 *       set when the key is missing (the heartbeat keeps it)
 *   sput (same arguments)    register without a check (a session aging
 *                            toward HTTL, recovery, sessions decided while
 *                            Redis was away)
 *   beat WORKER TTL          KEYS[1] is PREFIX "proxy:" ME: HSET the
 *                            worker's field, PEXPIRE TTL -> 1 when the
 *                            field was new (the key was lost: the worker
 *                            writes its sessions again), else 0
 * Failed logins: KEYS[1] the (address, user) key, ARGV[2] the address key
 * (the same hash tag: the address).
 *   tfail KEY2 WINDOW   INCR both, PEXPIRE WINDOW when a window opens ->
 *                       {n1, pttl1, n2, pttl2}
 * Keys other than KEYS[1] are touched (KEY2, OLD, the proxy keys): see the
 * top of this file for which of them share KEYS[1]'s slot.
 */
const char store_redis_script[] =
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
    "local function rdl(k, old)\n"
    "  local cur = rd(k)\n"
    "  if cur ~= nil or not old then return cur end\n"
    "  cur = rd(old)\n"
    "  if cur then redis.call('RENAME', old, k) end\n"
    "  return cur\n"
    "end\n"
    "local k, op = KEYS[1], ARGV[1]\n"
    "if op == 'claim' then\n"
    "  local proto, now = ARGV[2], tonumber(ARGV[3])\n"
    "  local expire, refresh = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "  local cur = rdl(k, ARGV[6])\n"
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
    "  if ARGV[7] then redis.call('DEL', ARGV[7]) end\n"
    "  return {'ok'}\n"
    "elseif op == 'route' then\n"
    "  local v = redis.call('GET', k)\n"
    "  if not v and ARGV[2] then v = redis.call('GET', ARGV[2]) end\n"
    "  return v\n"
    "elseif op == 'rput' then\n"
    "  redis.call('SET', k, ARGV[2])\n"
    "  if ARGV[3] then redis.call('DEL', ARGV[3]) end\n"
    "  return {'ok'}\n"
    "elseif op == 'sreg' or op == 'sput' then\n"
    "  local sid, me, proto, pp, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[9], ARGV[8]\n"
    "  if redis.call('EXISTS', pp .. me) == 0 then\n"
    "    redis.call('HSET', pp .. me, '-', '1')\n"
    "    redis.call('PEXPIRE', pp .. me, ttl)\n"
    "  end\n"
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
    "        if excl and pr ~= proto and pr ~= 'sieve' then other = pr end\n"
    "      end\n"
    "    end\n"
    "    if other then return {'other', other} end\n"
    "    if max > 0 and total >= max then return {'full'} end\n"
    "  end\n"
    "  redis.call('HSET', k, sid, me .. ' ' .. proto .. ' ' .. ARGV[5])\n"
    "  redis.call('PEXPIRE', k, ARGV[10])\n"
    "  return {'ok'}\n"
    "elseif op == 'beat' then\n"
    "  local new = redis.call('HSET', k, ARGV[2], '1')\n"
    "  redis.call('PEXPIRE', k, ARGV[3])\n"
    "  return new\n"
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
    "  local cur = rdl(k, ARGV[2])\n"
    "  if cur == false then return {'bad'} end\n"
    "  if cur == nil then return {'none'} end\n"
    "  return {'lock', cur[2], cur[3], cur[4], cur[5]}\n"
    "end\n"
    "return redis.error_reply('ERR postern: unknown operation')\n";

/* ---- small helpers ------------------------------------------------------ */

/* Timers that must not keep the loop running (store.h: a store_worker holds
 * no reference on its loop). */
void
store_redis_timer_start_unref(struct ev_loop *loop, ev_timer *t, ev_tstamp after)
{
	if (ev_is_active(t)) {
		ev_ref(loop);
		ev_timer_stop(loop, t);
	}
	ev_timer_set(t, after, 0.);
	ev_timer_start(loop, t);
	ev_unref(loop);
}

void
store_redis_backoff(struct ev_loop *loop, ev_timer *t, uint64_t *backoff_ms)
{
	uint64_t ms;

	*backoff_ms = *backoff_ms == 0 ? REDIS_BACKOFF_MIN : *backoff_ms * 2;
	if (*backoff_ms > REDIS_BACKOFF_MAX)
		*backoff_ms = REDIS_BACKOFF_MAX;
	/* spread the workers (and the fleet) so they do not reconnect in step */
	ms = *backoff_ms / 2 + (uint64_t)random() % (*backoff_ms / 2 + 1);
	store_redis_timer_start_unref(loop, t, (ev_tstamp)ms / 1000.);
}

void
store_redis_timer_stop_unref(struct ev_loop *loop, ev_timer *t)
{
	if (!ev_is_active(t))
		return;
	ev_ref(loop);
	ev_timer_stop(loop, t);
}

/* PREFIX kind key into buf (REDIS_KEY_MAX); its length.  kind is at most
 * 6 bytes ("proxy:", "events"; the old layout's "lock:", "route:"). */
size_t
store_redis_kind_key(const struct redis_store *rs, const char *kind, const char *key, size_t len,
                     char *buf)
{
	size_t kl = strlen(kind);

	memcpy(buf, rs->prefix, rs->prefix_len);
	memcpy(buf + rs->prefix_len, kind, kl);
	memcpy(buf + rs->prefix_len + kl, key, len);
	buf[rs->prefix_len + kl + len] = '\0';
	return rs->prefix_len + kl + len;
}

/* PREFIX "{" user "}:" kind into buf (REDIS_KEY_MAX); its length.  kind is
 * "lock", "sess" or "route". */
size_t
store_redis_user_key(const struct redis_store *rs, const char *kind, const char *user, size_t len,
                     char *buf)
{
	size_t n = rs->prefix_len, kl = strlen(kind);

	memcpy(buf, rs->prefix, n);
	buf[n++] = '{';
	memcpy(buf + n, user, len);
	n += len;
	memcpy(buf + n, "}:", 2);
	n += 2;
	memcpy(buf + n, kind, kl);
	n += kl;
	buf[n] = '\0';
	return n;
}

/* A throttle counter's key into buf (REDIS_KEY_MAX); its length.  key is an
 * address (PREFIX "{" IP "}:thr") or an address, "|" and a user (PREFIX
 * "{" IP "}:thr:" key): the tag is key up to its first "|". */
size_t
store_redis_thr_key(const struct redis_store *rs, const char *key, size_t len, char *buf)
{
	const char *bar = memchr(key, '|', len);
	size_t n = rs->prefix_len, tl = bar != NULL ? (size_t)(bar - key) : len;

	memcpy(buf, rs->prefix, n);
	buf[n++] = '{';
	memcpy(buf + n, key, tl);
	n += tl;
	memcpy(buf + n, "}:thr", 5);
	n += 5;
	if (bar != NULL) {
		buf[n++] = ':';
		memcpy(buf + n, key, len);
		n += len;
	}
	buf[n] = '\0';
	return n;
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

bool
store_redis_str_is(const redisReply *e, const char *s)
{
	return e->type == REDIS_REPLY_STRING && (size_t)e->len == strlen(s) &&
	       memcmp(e->str, s, (size_t)e->len) == 0;
}

/* {name, proto, origin, created, used} from element 1 on -> *l.  0 or -1. */
int
store_redis_parse_lock(const redisReply *rep, struct store_lock *l)
{
	if (rep->elements != 5)
		return -1;
	if (store_redis_str_is(rep->element[1], "imap"))
		l->proto = PROTO_IMAP;
	else if (store_redis_str_is(rep->element[1], "pop3"))
		l->proto = PROTO_POP3;
	else
		return -1;
	if (store_redis_str_is(rep->element[2], "login"))
		l->origin = STORE_ORIGIN_LOGIN;
	else if (store_redis_str_is(rep->element[2], "admin"))
		l->origin = STORE_ORIGIN_ADMIN;
	else
		return -1;
	return parse_ms(rep->element[3], &l->created_ms) < 0 ||
	               parse_ms(rep->element[4], &l->used_ms) < 0
	           ? -1
	           : 0;
}

bool
store_redis_is_noscript(const redisReply *rep)
{
	return rep != NULL && rep->type == REDIS_REPLY_ERROR && rep->len >= 8 &&
	       memcmp(rep->str, "NOSCRIPT", 8) == 0;
}

/* ---- open and close ----------------------------------------------------- */

static const char *
redis_proxy_id(const struct store *st)
{
	return ((const struct redis_store *)(const void *)st)->proxy_id;
}

static void
redis_close(struct store *st)
{
	struct redis_store *rs = (struct redis_store *)(void *)st;

	store_redis_sync_close(rs);
	if (rs->password != NULL) {
		explicit_bzero(rs->password, strlen(rs->password));
		free(rs->password);
	}
	if (rs->sentinel_password != NULL) {
		explicit_bzero(rs->sentinel_password, strlen(rs->sentinel_password));
		free(rs->sentinel_password);
	}
	free(rs->user);
	pthread_mutex_destroy(&rs->mu);
	free(rs);
}

static const struct store_ops redis_ops = {
    .name = "redis",
    .close = redis_close,
    .worker_open = store_redis_worker_open,
    .worker_stop = store_redis_worker_stop,
    .worker_close = store_redis_worker_close,
    .submit = store_redis_submit,
    .lock_get = store_redis_lock_get,
    .lock_put = store_redis_lock_put,
    .lock_del = store_redis_lock_del,
    .lock_list = store_redis_lock_list,
    .route_get = store_redis_route_get,
    .route_put = store_redis_route_put,
    .route_del = store_redis_route_del,
    .publish = store_redis_publish,
    .session_note = store_redis_session_note,
    .throttle_clear = store_redis_throttle_clear,
    .announce = store_redis_announce,
    .proxy_id = redis_proxy_id,
    .subscribe = store_redis_subscribe,
    .status = store_redis_status,
};

/* The first line of path, without its line end.  NULL and *err_out
 * (sentinel: the messages name sentinel_password_file). */
static char *
read_password(const char *path, bool sentinel, const char **err_out)
{
	char buf[REDIS_PASSWORD_MAX + 2], *p;
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL) {
		*err_out = sentinel ? "cannot read sentinel_password_file"
		                    : "cannot read state_password_file";
		return NULL;
	}
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (n = strcspn(buf, "\r\n")) == 0) {
		*err_out =
		    sentinel ? "sentinel_password_file is empty" : "state_password_file is empty";
		return NULL;
	}
	if (n > REDIS_PASSWORD_MAX) {
		*err_out = sentinel ? "the password in sentinel_password_file is too long"
		                    : "the password in state_password_file is too long";
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

	if (EVP_Digest(store_redis_script, sizeof(store_redis_script) - 1, md, &len, EVP_sha1(),
	               NULL) != 1 ||
	    len != 20)
		return -1;
	for (unsigned i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* host's first address, numeric, into out (INET6_ADDRSTRLEN).  0 or -1. */
static int
resolve_host(const char *host, char *out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	const void *a;

	if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
		return -1;
	a = res->ai_family == AF_INET6
	        ? (const void *)&((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr
	        : (const void *)&((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr;
	inet_ntop(res->ai_family, a, out, INET6_ADDRSTRLEN);
	freeaddrinfo(res);
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
	rs->sess_ttl_ms = sp && sp->sess_ttl_ms ? sp->sess_ttl_ms : REDIS_SESS_TTL_MS;
	if (rs->sess_ttl_ms < 8 * rs->heartbeat_ms)
		rs->sess_ttl_ms = 8 * rs->heartbeat_ms; /* refreshed at half, a beat late at most */
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
	    (rs->password = read_password(sp->password_file, false, err_out)) == NULL)
		goto fail;
	if (sp != NULL && sp->sentinel_password_file != NULL &&
	    (rs->sentinel_password = read_password(sp->sentinel_password_file, true, err_out)) ==
	        NULL)
		goto fail;
	if (sp != NULL && sp->user != NULL) {
		if (rs->password == NULL) {
			*err_out = "state_user needs its password in state_password_file";
			goto fail;
		}
		if ((rs->user = strdup(sp->user)) == NULL) {
			*err_out = "out of memory";
			goto fail;
		}
	}
	rs->wait_replicas = sp ? sp->wait_replicas : 0;
	/* resolved once, here: a worker loop must never wait for DNS */
	if (u->kind == STATE_REDIS_TCP && resolve_host(u->host, rs->host) < 0) {
		*err_out = "cannot resolve the Redis host";
		goto fail;
	}
	for (int i = 0; u->kind == STATE_REDIS_SENTINEL && i < u->nsentinels; i++)
		if (resolve_host(u->sentinels[i].host, rs->sentinel_host[i]) < 0) {
			*err_out = "cannot resolve a Sentinel's host";
			goto fail;
		}
	return &rs->base;
fail:
	redis_close(&rs->base);
	return NULL;
}
