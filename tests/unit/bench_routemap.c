/*
 * bench_routemap.c: how long a big route map takes to load and what it costs
 * per entry.  Not part of `make test`.  Build and run:
 *	cc -std=c11 -D_GNU_SOURCE -O2 -Ilib -o /tmp/bench_routemap \
 *	   tests/unit/bench_routemap.c lib/route.c lib/route_map.c
 *	/tmp/bench_routemap [users (1000000)] [map path (/tmp/postern_bench.map)]
 * Writes the map (user%d@example%d.org over ten backends, one domain line per
 * hundred users), loads it into a fresh table, then looks every user up.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "route.h"

static const char *const names[] = {"mx0", "mx1", "mx2", "mx3", "mx4",
                                    "mx5", "mx6", "mx7", "mx8", "mx9"};
#define NNAMES 10

static int
resolve(void *arg, const char *name, size_t *pool_out, uint32_t *weights_out, size_t *n_out)
{
	(void)arg;
	(void)weights_out;
	if (strcmp(name, "pool:all") == 0) {
		for (size_t i = 0; i < NNAMES; i++)
			pool_out[i] = i;
		*n_out = NNAMES;
		return 0;
	}
	for (size_t i = 0; i < NNAMES; i++) {
		if (strcmp(name, names[i]) == 0) {
			pool_out[0] = i;
			*n_out = 1;
			return 0;
		}
	}
	return -1;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A user's backend: scattered, so the resolver cache does not help much. */
static size_t
backend_of(size_t i)
{
	return (i * 2654435761u >> 7) % NNAMES;
}

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int
main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	const char *path = argc > 2 ? argv[2] : "/tmp/postern_bench.map";
	struct route_table *rt;
	struct mallinfo2 m0, m1;
	struct rusage ru;
	size_t entries = 0, bad = 0, out[ROUTE_POOL_MAX];
	long file_bytes, rss0, rss1;
	double t0, t1, t2;
	char u[64];
	FILE *f;

	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		return 1;
	}
	fprintf(f, "# bench map: %zu users\n", n);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "user%zu@example%zu.org %s\n", i, i % 5000, names[backend_of(i)]);
		entries++;
		if (i % 100 == 0) {
			fprintf(f, "@dom%zu.example pool:all\n", i / 100);
			entries++;
		}
	}
	file_bytes = ftell(f);
	fclose(f);

	if ((rt = route_table_new(names, NNAMES)) == NULL)
		return 1;
	malloc_trim(0);
	m0 = mallinfo2();
	rss0 = rss_kib();
	t0 = now_s();
	if (route_map_load(rt, path, resolve, NULL, stderr) < 0)
		return 1;
	t1 = now_s();
	m1 = mallinfo2();
	rss1 = rss_kib();

	for (size_t i = 0; i < n; i++) {
		snprintf(u, sizeof(u), "user%zu@example%zu.org", i, i % 5000);
		if (route_lookup(rt, u, strlen(u), out, ROUTE_POOL_MAX) != 1 ||
		    out[0] != backend_of(i))
			bad++;
	}
	t2 = now_s();
	getrusage(RUSAGE_SELF, &ru);

	printf("map: %zu rules (%zu users), %ld bytes, %.1f bytes/line\n", entries, n, file_bytes,
	       (double)file_bytes / (double)entries);
	printf("load: %.3f s wall (%.0f rules/s)\n", t1 - t0, (double)entries / (t1 - t0));
	printf("heap: %zu bytes in use after load, %.1f bytes/rule (mallinfo2 uordblks+hblkhd)\n",
	       (m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd),
	       (double)((m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd)) / (double)entries);
	printf("rss: +%ld KiB after load (%.1f bytes/rule); peak rss %ld KiB\n", rss1 - rss0,
	       (double)(rss1 - rss0) * 1024 / (double)entries, ru.ru_maxrss);
	printf("lookup: %zu users in %.3f s (%.0f/s), %zu wrong\n", n, t2 - t1,
	       (double)n / (t2 - t1), bad);
	route_table_free(&rt);
	remove(path);
	return bad != 0;
}
