/*
 * store_redis_link.c: one async hiredis link on a worker's loop, made the
 * way every Redis and Sentinel link of the store is: connected without
 * blocking, attached to the loop with watchers that do not keep it running
 * (a store_worker holds no reference on its loop), AUTH queued first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>

#include "store_redis_impl.h"

/* The libev adapter's watchers, made to hold no reference on the loop like
 * every other store watcher: the adapter's own functions do the work, these
 * only keep the loop's reference count straight. */
static void
noref_add_read(void *p)
{
	redisLibevEvents *e = p;
	int was = e->reading;

	redisLibevAddRead(p);
	if (!was && e->reading)
		ev_unref(e->loop);
}

static void
noref_del_read(void *p)
{
	redisLibevEvents *e = p;

	if (e->reading)
		ev_ref(e->loop);
	redisLibevDelRead(p);
}

static void
noref_add_write(void *p)
{
	redisLibevEvents *e = p;
	int was = e->writing;

	redisLibevAddWrite(p);
	if (!was && e->writing)
		ev_unref(e->loop);
}

static void
noref_del_write(void *p)
{
	redisLibevEvents *e = p;

	if (e->writing)
		ev_ref(e->loop);
	redisLibevDelWrite(p);
}

static void
noref_cleanup(void *p)
{
	noref_del_read(p);
	noref_del_write(p);
	free(p);
}

redisAsyncContext *
store_redis_async_open(const struct redis_store *rs, struct ev_loop *loop, const char *host,
                       int port, const char *user, const char *password, void *data,
                       redisConnectCallback *on_connect, redisDisconnectCallback *on_gone,
                       redisCallbackFn *on_auth, void *auth_arg, bool *connect_failed_out,
                       char *err, size_t errlen)
{
	redisAsyncContext *ac;

	ac = host == NULL ? redisAsyncConnectUnix(rs->url.path) : redisAsyncConnect(host, port);
	*connect_failed_out = ac == NULL || ac->err;
	if (*connect_failed_out)
		snprintf(err, errlen, "%s", ac ? ac->errstr : "out of memory");
	if (*connect_failed_out || redisLibevAttach(loop, ac) != REDIS_OK) {
		if (ac != NULL)
			redisAsyncFree(ac);
		return NULL;
	}
	ac->ev.addRead = noref_add_read;
	ac->ev.delRead = noref_del_read;
	ac->ev.addWrite = noref_add_write;
	ac->ev.delWrite = noref_del_write;
	ac->ev.cleanup = noref_cleanup;
	ac->data = data;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_gone);
	if (password != NULL) {
		const char *argv[] = {"AUTH", user ? user : password, password};
		size_t lens[] = {4, strlen(argv[1]), strlen(password)};

		redisAsyncCommandArgv(ac, on_auth, auth_arg, user ? 3 : 2, argv, lens);
	}
	return ac;
}
