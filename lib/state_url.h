/*
 * state_url.h: the `state` setting's URL, parsed.  Pure (no I/O): the
 * config loader validates with it, policy/store.c picks a store with it, so
 * both read the same forms and say the same things about bad ones.
 *
 *   lmdb:DIR                   the embedded store in directory DIR
 *   redis://HOST[:PORT][/DB]   Redis over TCP (port 6379, db 0; [v6] hosts)
 *   redis+unix:PATH[?db=N]     Redis over a unix socket
 *   redis-sentinel://HOST[:PORT],HOST[:PORT],.../MASTER[/DB]
 *                              the master named MASTER, found by asking
 *                              these Sentinels (port 26379 by default)
 *   mem:[N]                    memory, unit tests only (config refuses it)
 *
 * "rediss://" (TLS) is refused: Debian 12's hiredis is built without TLS.
 * A password never goes in the URL (it would reach logs and `ps`): it comes
 * from state_password_file.
 */
#ifndef POSTERN_STATE_URL_H
#define POSTERN_STATE_URL_H

#define STATE_URL_PATH_MAX      256 /* a unix socket path: sun_path is 108 */
#define STATE_URL_HOST_MAX      256
#define STATE_URL_SENTINELS_MAX 16 /* Sentinels in one URL */
#define STATE_URL_MASTER_MAX    64 /* bytes of a master's name */

enum state_kind { STATE_LMDB, STATE_MEM, STATE_REDIS_TCP, STATE_REDIS_UNIX, STATE_REDIS_SENTINEL };

/* One Sentinel of a redis-sentinel:// URL. */
struct state_url_node {
	char host[STATE_URL_HOST_MAX]; /* without brackets */
	int port;                      /* 1..65535 */
};

struct state_url {
	enum state_kind kind;
	const char *arg;               /* lmdb: the directory; mem: "N" or "" (in url) */
	char host[STATE_URL_HOST_MAX]; /* redis://: without brackets */
	int port;                      /* redis://: 1..65535 */
	char path[STATE_URL_PATH_MAX]; /* redis+unix: the socket */
	int db;                        /* redis: 0..65535 (SELECT) */
	/* redis-sentinel: the Sentinels, in the order they are asked, and
	 * the master's name */
	struct state_url_node sentinels[STATE_URL_SENTINELS_MAX];
	int nsentinels;
	char master[STATE_URL_MASTER_MAX + 1];
};

/* Parse url into *out (which borrows url).  0, or -1 and *err_out (static). */
int state_url_parse(const char *url, struct state_url *out, const char **err_out);

/* Is url a Redis one (parsed or not)? */
int state_url_is_redis(const char *url);

#endif
