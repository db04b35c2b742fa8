/* lookup.c: placeholder until the engine lands (see lookup.h). */
#include <stdlib.h>

#include "lookup.h"

int
lookup_global_init(void)
{
	return 0;
}

struct lookup_worker *
lookup_worker_new(struct ev_loop *loop, struct metrics *m)
{
	(void)loop;
	(void)m;
	return NULL;
}

void
lookup_worker_free(struct lookup_worker **lwp)
{
	*lwp = NULL;
}

struct lookup_req *
lookup_ask(struct lookup_worker *lw, const struct lookup_conf *lc, const char *url,
           const struct lookup_query *q, lookup_cb cb, void *arg)
{
	(void)lw, (void)lc, (void)url, (void)q, (void)cb, (void)arg;
	return NULL;
}

void
lookup_cancel(struct lookup_req **rp)
{
	if (rp != NULL)
		*rp = NULL;
}

enum lookup_source
lookup_once(const struct lookup_conf *lc, const char *url, const struct lookup_query *q,
            struct lookup_answer *a, long *http_status)
{
	(void)lc, (void)url, (void)q;
	lookup_answer_init(a);
	*http_status = 0;
	return LOOKUP_FROM_TRANSPORT;
}

int
lookup_breakers_open(void)
{
	return 0;
}
