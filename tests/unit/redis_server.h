/*
 * redis_server.h: redis-servers of the test's own, for the Redis runs of
 * the store and policy suites.
 *   - test_redis: a redis-server on a unix socket in a temporary directory
 *     only (no TCP port); its url is "redis+unix:SOCK".
 *   - test_sentinel: a redis-server on a free 127.0.0.1 TCP port and one
 *     Sentinel (redis-server SENTINEL.conf --sentinel) on another, which
 *     monitors it as "postern-test"; its url is
 *     "redis-sentinel://127.0.0.1:SPORT/postern-test".
 * Neither reads the system's redis.conf (the Sentinel reads the file the
 * test writes in its temporary directory) and neither keeps anything on
 * disk outside that directory.  A missing redis-server FAILS the tests that
 * need it (make test installs it): it never skips them.  Each is started
 * once per process and stopped by its pids at the end of the run.
 */
#ifndef POSTERN_TEST_REDIS_SERVER_H
#define POSTERN_TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define REDIS_SENTINEL_MASTER "postern-test"

struct redis_server {
	pid_t pid; /* the data server */
	char dir[64];
	char sock[96];      /* test_redis: the socket; test_sentinel: "" */
	int port;           /* test_sentinel: the data server's TCP port */
	pid_t sentinel_pid; /* test_sentinel: its Sentinel */
	int sentinel_port;
	char url[128]; /* "redis+unix:SOCK" or "redis-sentinel://127.0.0.1:SPORT/postern-test" */
};

static struct redis_server test_redis;    /* one per test process */
static struct redis_server test_sentinel; /* one per test process */
/* the server redis_server_cmd() and redis_server_connect() speak to */
static struct redis_server *redis_target = &test_redis;

static int
redis_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A link to s's data server (2 s timeouts), or NULL. */
static redisContext *
redis_connect_to(const struct redis_server *s)
{
	struct timeval tv = {2, 0};
	redisContext *c = s->sock[0] != '\0' ? redisConnectUnixWithTimeout(s->sock, tv)
	                                     : redisConnectWithTimeout("127.0.0.1", s->port, tv);

	if (c != NULL && c->err) {
		redisFree(c);
		return NULL;
	}
	if (c != NULL)
		redisSetTimeout(c, tv);
	return c;
}

/* A link to the target server, or NULL; the caller redisFree()s it. */
static inline redisContext *
redis_server_connect(void)
{
	return redis_connect_to(redis_target);
}

static int
redis_cmd_on(const struct redis_server *s, const char *cmd)
{
	redisContext *c = redis_connect_to(s);
	redisReply *r;
	int rc = -1;

	if (c == NULL)
		return -1;
	if ((r = redisCommand(c, cmd)) != NULL && r->type != REDIS_REPLY_ERROR)
		rc = 0;
	freeReplyObject(r);
	redisFree(c);
	return rc;
}

/* Run one command on the target server (FLUSHALL, CONFIG SET, ...); 0 or -1. */
static int
redis_server_cmd(const char *cmd)
{
	return redis_cmd_on(redis_target, cmd);
}

/* Start bin with the data server's arguments and extra (NULL-ended, at
 * most 8); the pid, or -1. */
static pid_t
redis_spawn(const char *bin, const char *dir, const char *const *extra)
{
	static const char *const common[] = {"--save",      "",         "--appendonly", "no",
	                                     "--daemonize", "no",       "--loglevel",   "warning",
	                                     "--logfile",   "/dev/null"};
	pid_t pid = fork();

	if (pid == 0) {
		const char *argv[32] = {bin};
		int n = 1;

		/* arguments only: no redis.conf is read; nothing on disk */
		for (; extra[n - 1] != NULL; n++)
			argv[n] = extra[n - 1];
		for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
			argv[n++] = common[i];
		argv[n++] = "--dir";
		argv[n++] = dir;
		argv[n] = NULL;
		execvp(bin, (char *const *)argv);
		fprintf(stderr, "cannot run %s: %m (make deps installs redis-server)\n", bin);
		_exit(127);
	}
	return pid;
}

/* Wait (up to 5 s) until s's data server answers PING; 0, or -1 after
 * printing why. */
static int
redis_wait_ping(struct redis_server *s, const char *bin, const char *where)
{
	for (int i = 0; i < 500; i++) { /* up to 5 s on a busy machine */
		int status;

		if (redis_cmd_on(s, "PING") == 0)
			return 0;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			fprintf(stderr, "%s exited at once (status %d): is it installed?\n", bin,
			        status);
			s->pid = 0;
			return -1;
		}
		usleep(10000);
	}
	fprintf(stderr, "redis-server did not answer on %s\n", where);
	return -1;
}

/* Stop s's processes by pid and remove its directory (also after a start
 * that failed half-way). */
static void
redis_stop_one(struct redis_server *s)
{
	pid_t pids[2] = {s->sentinel_pid, s->pid};

	for (int i = 0; i < 2; i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGTERM);
			waitpid(pids[i], NULL, 0);
		}
	s->pid = s->sentinel_pid = 0;
	if (s->dir[0] != '\0')
		nftw(s->dir, redis_rm_one, 8, FTW_DEPTH | FTW_PHYS);
	s->dir[0] = '\0';
}

/* Start the unix-socket server once per process; later calls only check it
 * runs.  0, or -1 after printing why. */
static int
redis_server_start(void)
{
	const char *bin = getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "redis-server";

	if (test_redis.pid > 0)
		return 0;
	snprintf(test_redis.dir, sizeof(test_redis.dir), "/tmp/postern-redis-XXXXXX");
	if (mkdtemp(test_redis.dir) == NULL) {
		test_redis.dir[0] = '\0';
		return -1;
	}
	snprintf(test_redis.sock, sizeof(test_redis.sock), "%s/redis.sock", test_redis.dir);
	snprintf(test_redis.url, sizeof(test_redis.url), "redis+unix:%s", test_redis.sock);
	/* no port */
	test_redis.pid =
	    redis_spawn(bin, test_redis.dir,
	                (const char *const[]){"--port", "0", "--unixsocket", test_redis.sock,
	                                      "--unixsocketperm", "700", NULL});
	if (test_redis.pid < 0 || redis_wait_ping(&test_redis, bin, test_redis.sock) < 0) {
		redis_stop_one(&test_redis);
		return -1;
	}
	return 0;
}

/* Two distinct free TCP ports on 127.0.0.1 (free when asked: the servers
 * bind them a moment later).  0, or -1. */
static int
redis_free_ports(int *a, int *b)
{
	int fd[2] = {-1, -1}, rc = -1, *out[2] = {a, b};

	for (int i = 0; i < 2; i++) {
		struct sockaddr_in sin = {.sin_family = AF_INET};
		socklen_t len = sizeof(sin);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if ((fd[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    bind(fd[i], (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
		    getsockname(fd[i], (struct sockaddr *)&sin, &len) < 0)
			goto out;
		*out[i] = ntohs(sin.sin_port);
	}
	rc = 0;
out:
	for (int i = 0; i < 2; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return rc;
}

/* Does the Sentinel name the data server as the master?  1, or 0. */
static int
redis_sentinel_knows_master(void)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", test_sentinel.sentinel_port, tv);
	redisReply *r = NULL;
	int ok = 0;
	char port[16];

	if (c == NULL || c->err)
		goto out;
	redisSetTimeout(c, tv);
	snprintf(port, sizeof(port), "%d", test_sentinel.port);
	r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", REDIS_SENTINEL_MASTER);
	ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	     r->element[0]->type == REDIS_REPLY_STRING &&
	     strcmp(r->element[0]->str, "127.0.0.1") == 0 &&
	     r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, port) == 0;
out:
	freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return ok;
}

/* Start the TCP server and its Sentinel once per process; later calls only
 * check they run.  0, or -1 after printing why. */
static inline int
redis_sentinel_start(void)
{
	const char *bin = getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "redis-server";
	struct redis_server *s = &test_sentinel;
	char port[16], sport[16], conf[512];
	FILE *f;

	if (s->pid > 0 && s->sentinel_pid > 0)
		return 0;
	snprintf(s->dir, sizeof(s->dir), "/tmp/postern-sentinel-XXXXXX");
	if (mkdtemp(s->dir) == NULL) {
		s->dir[0] = '\0';
		return -1;
	}
	if (redis_free_ports(&s->port, &s->sentinel_port) < 0)
		goto fail;
	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(sport, sizeof(sport), "%d", s->sentinel_port);
	snprintf(s->url, sizeof(s->url), "redis-sentinel://127.0.0.1:%d/%s", s->sentinel_port,
	         REDIS_SENTINEL_MASTER);
	s->pid = redis_spawn(bin, s->dir,
	                     (const char *const[]){"--port", port, "--bind", "127.0.0.1", NULL});
	if (s->pid < 0 || redis_wait_ping(s, bin, port) < 0)
		goto fail;
	/* the Sentinel's own file (it rewrites it), in the temporary directory */
	snprintf(conf, sizeof(conf), "%s/sentinel.conf", s->dir);
	if ((f = fopen(conf, "w")) == NULL)
		goto fail;
	fprintf(f,
	        "sentinel monitor %s 127.0.0.1 %d 1\n"
	        "sentinel down-after-milliseconds %s 1000\n",
	        REDIS_SENTINEL_MASTER, s->port, REDIS_SENTINEL_MASTER);
	if (fclose(f) != 0)
		goto fail;
	if ((s->sentinel_pid = fork()) == 0) {
		execlp(bin, bin, conf, "--sentinel", "--port", sport, "--bind", "127.0.0.1",
		       "--dir", s->dir, "--daemonize", "no", "--loglevel", "warning", "--logfile",
		       "/dev/null", (char *)NULL);
		fprintf(stderr, "cannot run %s --sentinel: %m (make deps installs redis-server)\n",
		        bin);
		_exit(127);
	}
	if (s->sentinel_pid < 0)
		goto fail;
	for (int i = 0; i < 1000; i++) { /* up to 10 s */
		int status;

		if (redis_sentinel_knows_master())
			return 0;
		if (waitpid(s->sentinel_pid, &status, WNOHANG) == s->sentinel_pid) {
			fprintf(stderr, "%s --sentinel exited at once (status %d)\n", bin, status);
			s->sentinel_pid = 0;
			goto fail;
		}
		usleep(10000);
	}
	fprintf(stderr, "the Sentinel on 127.0.0.1:%s does not name the master\n", sport);
fail:
	redis_stop_one(s);
	return -1;
}

/* Stop whichever servers this process started. */
static void
redis_server_stop(void)
{
	redis_stop_one(&test_redis);
	redis_stop_one(&test_sentinel);
}

#endif
