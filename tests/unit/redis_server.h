/*
 * redis_server.h: a redis-server of the test's own, for the Redis runs of
 * the store and policy suites.  It listens on a unix socket in a temporary
 * directory only (no TCP port), reads no configuration file (so nothing
 * from the system's redis.conf) and keeps nothing on disk.  A missing
 * redis-server FAILS the tests that need it (make test installs it): it
 * never skips them.  Stopped by its pid at the end of the run.
 */
#ifndef POSTERN_TEST_REDIS_SERVER_H
#define POSTERN_TEST_REDIS_SERVER_H

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

struct redis_server {
	pid_t pid;
	char dir[64];
	char sock[96];
	char url[128]; /* "redis+unix:SOCK" */
};

static struct redis_server test_redis; /* one per test process */

static int
redis_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Run one command on the test's server (FLUSHALL, CONFIG SET, ...); 0 or -1. */
static int
redis_server_cmd(const char *cmd)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectUnixWithTimeout(test_redis.sock, tv);
	redisReply *r;
	int rc = -1;

	if (c == NULL || c->err) {
		if (c != NULL)
			redisFree(c);
		return -1;
	}
	if ((r = redisCommand(c, cmd)) != NULL && r->type != REDIS_REPLY_ERROR)
		rc = 0;
	freeReplyObject(r);
	redisFree(c);
	return rc;
}

/* Start the server once per process; later calls only check it runs.
 * 0, or -1 after printing why. */
static int
redis_server_start(void)
{
	const char *bin = getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "redis-server";

	if (test_redis.pid > 0)
		return 0;
	snprintf(test_redis.dir, sizeof(test_redis.dir), "/tmp/postern-redis-XXXXXX");
	if (mkdtemp(test_redis.dir) == NULL)
		return -1;
	snprintf(test_redis.sock, sizeof(test_redis.sock), "%s/redis.sock", test_redis.dir);
	snprintf(test_redis.url, sizeof(test_redis.url), "redis+unix:%s", test_redis.sock);
	if ((test_redis.pid = fork()) == 0) {
		/* arguments only: no redis.conf is read; no port, no disk */
		execlp(bin, bin, "--port", "0", "--unixsocket", test_redis.sock, "--unixsocketperm",
		       "700", "--dir", test_redis.dir, "--save", "", "--appendonly", "no",
		       "--daemonize", "no", "--loglevel", "warning", "--logfile", "/dev/null",
		       (char *)NULL);
		fprintf(stderr, "cannot run %s: %m (make deps installs redis-server)\n", bin);
		_exit(127);
	}
	if (test_redis.pid < 0)
		return -1;
	for (int i = 0; i < 500; i++) { /* up to 5 s on a busy machine */
		int status;

		if (redis_server_cmd("PING") == 0)
			return 0;
		if (waitpid(test_redis.pid, &status, WNOHANG) == test_redis.pid) {
			fprintf(stderr,
			        "redis-server exited at once (status %d): is it installed?\n",
			        status);
			test_redis.pid = 0;
			return -1;
		}
		usleep(10000);
	}
	fprintf(stderr, "redis-server did not answer on %s\n", test_redis.sock);
	return -1;
}

static void
redis_server_stop(void)
{
	if (test_redis.pid > 0) {
		kill(test_redis.pid, SIGTERM);
		waitpid(test_redis.pid, NULL, 0);
		test_redis.pid = 0;
	}
	if (test_redis.dir[0] != '\0')
		nftw(test_redis.dir, redis_rm_one, 8, FTW_DEPTH | FTW_PHYS);
	test_redis.dir[0] = '\0';
}

#endif
