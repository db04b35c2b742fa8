/*
 * stats_fallback.c: TEMPORARY.  A weak metrics_write() for `postern stats`
 * until branch metrics brings proxy/metrics.{c,h} and the real counters;
 * its strong definition replaces this one at link time.  On merge: delete
 * this file and its line in the Makefile, and include "metrics.h" in
 * admin.c.  It prints only what can be counted without metrics.c: live
 * relayed sessions per protocol and per backend (proxy/health.c).
 */
#include <stdbool.h>
#include <stdio.h>

#include "health.h"
#include "runtime.h"

int metrics_write(FILE *f, bool prometheus) __attribute__((weak));

int
metrics_write(FILE *f, bool prometheus)
{
	struct runtime *rt = runtime_get();
	long total[PROTO__COUNT] = {0};

	if (rt == NULL)
		return -1;
	if (prometheus)
		fputs("# TYPE postern_sessions gauge\n", f);
	for (size_t bi = 0; bi < rt->cfg->nbackends; bi++) {
		const char *name = rt->cfg->backends[bi].name;
		for (int p = 0; p < PROTO__COUNT; p++) {
			long n = health_sessions(rt->health[bi], (enum proto_kind)p);
			total[p] += n;
			if (prometheus)
				fprintf(f, "postern_sessions{proto=\"%s\",backend=\"%s\"} %ld\n",
				        proto_name((enum proto_kind)p), name, n);
		}
		if (!prometheus)
			fprintf(f, "sessions backend=%s imap=%ld pop3=%ld\n", name,
			        health_sessions(rt->health[bi], PROTO_IMAP),
			        health_sessions(rt->health[bi], PROTO_POP3));
	}
	if (!prometheus)
		fprintf(f, "sessions total imap=%ld pop3=%ld\n", total[PROTO_IMAP],
		        total[PROTO_POP3]);
	runtime_unref(&rt);
	return ferror(f) ? -1 : 0;
}
