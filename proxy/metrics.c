/*
 * metrics.c: per-worker counters and the scrape that sums them (see
 * metrics.h) with the backend registry's records, and the two renderings:
 * Prometheus text (through lib/prom.c) and a summary for people.  Workers
 * only ever store to their own block; a scrape only ever loads, and never
 * makes a worker wait.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lifecycle.h"
#include "metrics.h"
#include "prom.h"
#include "registry.h"
#include "store.h"
#include "runtime.h"
#include "worker.h"

static const double login_bounds[METRICS_LOGIN_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

static const double lookup_bounds[METRICS_LOOKUP_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
};

static const char *const lookup_result_name[METRICS_LOOKUP__COUNT] = {
    [METRICS_LOOKUP_OK] = "ok",           [METRICS_LOOKUP_REFUSED] = "refused",
    [METRICS_LOOKUP_UNKNOWN] = "unknown", [METRICS_LOOKUP_TEMPFAIL] = "tempfail",
    [METRICS_LOOKUP_TIMEOUT] = "timeout", [METRICS_LOOKUP_ERROR] = "error",
    [METRICS_LOOKUP_BREAKER] = "breaker", [METRICS_LOOKUP_CACHED] = "cached",
};

/* ---- the writer's side: one thread per block --------------------------- */

/* Only the owning thread writes c: a relaxed load and store (no locked
 * read-modify-write) are enough, and a reader sees the old or the new value. */
static inline void
bump(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}

static inline uint64_t
ld(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

int
metrics_init(struct metrics *m, size_t nlisteners)
{
	memset(m, 0, sizeof(*m));
	m->lst = calloc(nlisteners + 1, sizeof(*m->lst));
	if (m->lst == NULL)
		return -1;
	m->nlst = nlisteners;
	return 0;
}

void
metrics_deinit(struct metrics *m)
{
	free(m->lst);
	m->lst = NULL;
	m->nlst = 0;
}

void
metrics_accepted(struct metrics *m, size_t li)
{
	if (m != NULL && li < m->nlst)
		bump(&m->lst[li].accepted, 1);
}

void
metrics_tls_done(struct metrics *m, size_t li, bool resumed)
{
	if (m != NULL && li < m->nlst)
		bump(&m->lst[li].tls[resumed ? 1 : 0], 1);
}

void
metrics_login(struct metrics *m, enum proto_kind pk, enum fail_class fc, double seconds)
{
	if (m == NULL || (unsigned)pk >= PROTO__COUNT)
		return;
	if ((unsigned)fc >= FAIL__COUNT)
		fc = FAIL_INTERNAL;
	if (!(seconds >= 0)) /* NaN too */
		seconds = 0;
	bump(&m->logins[pk][fc], 1);
	bump(&m->login_le[pk][prom_bucket(login_bounds, METRICS_LOGIN_BUCKETS, seconds)], 1);
	bump(&m->login_us[pk], (uint64_t)(seconds * 1e6));
}

void
metrics_bytes(struct metrics *m, enum proto_kind pk, uint64_t in, uint64_t out)
{
	if (m == NULL || (unsigned)pk >= PROTO__COUNT)
		return;
	if (in > 0)
		bump(&m->bytes[pk][METRICS_IN], in);
	if (out > 0)
		bump(&m->bytes[pk][METRICS_OUT], out);
}

void
metrics_refused(struct metrics *m, enum policy_verdict v)
{
	if (m != NULL && (unsigned)v < POLICY__COUNT)
		bump(&m->refusals[v], 1);
}

void
metrics_admin_visited(struct metrics *m, uint64_t n)
{
	if (m != NULL && n > 0)
		bump(&m->admin_visited, n);
}

void
metrics_sweep_visited(struct metrics *m, uint64_t n)
{
	if (m != NULL && n > 0)
		bump(&m->sweep_visited, n);
}

/* Open lookup breakers, process-wide: lookup_breaker.c sets it on each change. */
static atomic_int lookup_breakers;

void
metrics_lookup_breakers(int n)
{
	atomic_store_explicit(&lookup_breakers, n, memory_order_relaxed);
}

void
metrics_lookup(struct metrics *m, enum metrics_lookup r, bool service, double seconds)
{
	if (m == NULL || (unsigned)r >= METRICS_LOOKUP__COUNT)
		return;
	bump(&m->lookups[r], 1);
	if (!service)
		return;
	if (!(seconds >= 0)) /* NaN too */
		seconds = 0;
	bump(&m->lookup_le[prom_bucket(lookup_bounds, METRICS_LOOKUP_BUCKETS, seconds)], 1);
	bump(&m->lookup_us, (uint64_t)(seconds * 1e6));
}

/* ---- the scrape ------------------------------------------------------------ */

static pthread_mutex_t scrape_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct worker *w; /* borrowed until metrics_unpublish() */
	size_t n;
	const struct policy *policy;
	const char *version;
} pub;

void
metrics_publish(struct worker *w, size_t n, const struct policy *p, const char *version)
{
	pthread_mutex_lock(&scrape_lock);
	pub.w = w;
	pub.n = n;
	pub.policy = p;
	pub.version = version;
	pthread_mutex_unlock(&scrape_lock);
}

void
metrics_unpublish(void)
{
	pthread_mutex_lock(&scrape_lock);
	memset(&pub, 0, sizeof(pub));
	pthread_mutex_unlock(&scrape_lock);
}

/* Every worker's block added up, plus what the scrape reads elsewhere. */
struct totals {
	uint64_t *accepted, *tls[2]; /* [nlst] */
	size_t nlst;
	uint64_t logins[PROTO__COUNT][FAIL__COUNT];
	uint64_t login_le[PROTO__COUNT][METRICS_LOGIN_BUCKETS + 1];
	uint64_t login_us[PROTO__COUNT];
	uint64_t bytes[PROTO__COUNT][METRICS__DIRS];
	uint64_t refusals[POLICY__COUNT];
	uint64_t lookups[METRICS_LOOKUP__COUNT];
	uint64_t lookup_le[METRICS_LOOKUP_BUCKETS + 1];
	uint64_t lookup_us;
	uint64_t admin_visited, sweep_visited;
	/* every backend ever named, by registry id */
	unsigned nnames;
	const char *names[REGISTRY_MAX];
	uint64_t sessions[PROTO__COUNT][REGISTRY_MAX];
	uint64_t connect_errors[REGISTRY_MAX];
	/* the current config's backends, by registry id */
	bool configured[REGISTRY_MAX];
	bool serves[PROTO__COUNT][REGISTRY_MAX];
	bool up[REGISTRY_MAX];
};

static void
totals_free(struct totals *t)
{
	if (t == NULL)
		return;
	free(t->accepted);
	free(t->tls[0]);
	free(t->tls[1]);
	free(t);
}

/* Under scrape_lock. */
static struct totals *
totals_collect(const struct runtime *rt)
{
	struct totals *t = calloc(1, sizeof(*t));
	size_t nlst = rt->cfg->nlisteners;

	if (t == NULL)
		return NULL;
	t->nlst = nlst;
	t->accepted = calloc(nlst + 1, sizeof(uint64_t));
	t->tls[0] = calloc(nlst + 1, sizeof(uint64_t));
	t->tls[1] = calloc(nlst + 1, sizeof(uint64_t));
	if (t->accepted == NULL || t->tls[0] == NULL || t->tls[1] == NULL) {
		totals_free(t);
		return NULL;
	}
	t->nnames = registry_count();
	for (unsigned id = 0; id < t->nnames; id++) {
		const struct registry_entry *e = registry_at(id);

		t->names[id] = registry_name(e);
		for (int p = 0; p < PROTO__COUNT; p++) {
			long n = registry_sessions(e, p);
			t->sessions[p][id] = n > 0 ? (uint64_t)n : 0;
		}
		t->connect_errors[id] = registry_connect_errors(e);
	}
	for (size_t wi = 0; wi < pub.n; wi++) {
		const struct metrics *m = &pub.w[wi].metrics;

		for (size_t i = 0; i < nlst && i < m->nlst; i++) {
			t->accepted[i] += ld(&m->lst[i].accepted);
			t->tls[0][i] += ld(&m->lst[i].tls[0]);
			t->tls[1][i] += ld(&m->lst[i].tls[1]);
		}
		for (int p = 0; p < PROTO__COUNT; p++) {
			for (int k = 0; k < FAIL__COUNT; k++)
				t->logins[p][k] += ld(&m->logins[p][k]);
			for (int k = 0; k <= METRICS_LOGIN_BUCKETS; k++)
				t->login_le[p][k] += ld(&m->login_le[p][k]);
			t->login_us[p] += ld(&m->login_us[p]);
			for (int d = 0; d < METRICS__DIRS; d++)
				t->bytes[p][d] += ld(&m->bytes[p][d]);
		}
		for (int v = 0; v < POLICY__COUNT; v++)
			t->refusals[v] += ld(&m->refusals[v]);
		for (int k = 0; k < METRICS_LOOKUP__COUNT; k++)
			t->lookups[k] += ld(&m->lookups[k]);
		for (int k = 0; k <= METRICS_LOOKUP_BUCKETS; k++)
			t->lookup_le[k] += ld(&m->lookup_le[k]);
		t->lookup_us += ld(&m->lookup_us);
		t->admin_visited += ld(&m->admin_visited);
		t->sweep_visited += ld(&m->sweep_visited);
	}
	for (size_t bi = 0; bi < rt->cfg->nbackends; bi++) {
		const struct registry_entry *e = rt->reg[bi];
		uint32_t id;

		if (e == NULL || (id = registry_id(e)) >= t->nnames)
			continue;
		t->configured[id] = true;
		t->up[id] = registry_is_up(e);
		for (int p = 0; p < PROTO__COUNT; p++)
			t->serves[p][id] |= rt->cfg->backends[bi].port[p] != 0;
	}
	/* backends a lookup named by address: lookup.max_backends at most */
	for (size_t i = 0; i < dynback_count(rt->dyn); i++) {
		const struct dynback *d = dynback_at(rt->dyn, i);
		uint32_t id;

		if (d == NULL || d->reg == NULL || (id = registry_id(d->reg)) >= t->nnames)
			continue;
		t->configured[id] = true;
		t->up[id] = registry_is_up(d->reg);
		for (int p = 0; p < PROTO__COUNT; p++)
			t->serves[p][id] |= d->bc.port[p] != 0;
	}
	return t;
}

/* The logins' result names: each fail class's name once (two classes may
 * share one), without the accept-time classes, which no login ends with. */
static bool
login_class_shown(enum fail_class fc)
{
	if (fc == FAIL_ACL || fc == FAIL_CONN_LIMIT)
		return false;
	for (int k = FAIL_AUTH; k < (int)fc; k++)
		if (strcmp(fail_class_name((enum fail_class)k), fail_class_name(fc)) == 0)
			return false;
	return true;
}

static uint64_t
logins_of_class(const struct totals *t, int p, enum fail_class fc)
{
	uint64_t n = 0;

	for (int k = FAIL_AUTH; k < FAIL__COUNT; k++)
		if (strcmp(fail_class_name((enum fail_class)k), fail_class_name(fc)) == 0)
			n += t->logins[p][k];
	return n;
}

/* ---- the process, from /proc ------------------------------------------------- */

struct proc_info {
	double start_time; /* seconds since the epoch; 0 unknown */
	double cpu_seconds;
	uint64_t rss_bytes, vsize_bytes;
	uint64_t open_fds, max_fds;
};

static void
proc_read(struct proc_info *pi)
{
	char buf[1024], *p;
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long long utime = 0, stime = 0, start = 0, btime = 0, vs = 0, rs = 0;
	struct rlimit rl;
	FILE *f;
	DIR *d;

	memset(pi, 0, sizeof(*pi));
	if ((f = fopen("/proc/self/stat", "r")) != NULL) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		/* after "pid (comm) ": comm may hold spaces and parentheses */
		if ((p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 2,
		           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
		           "%*d %*d %llu",
		           &utime, &stime, &start) == 3 &&
		    tck > 0)
			pi->cpu_seconds = (double)(utime + stime) / (double)tck;
	}
	if ((f = fopen("/proc/stat", "r")) != NULL) {
		while (fgets(buf, sizeof(buf), f) != NULL)
			if (sscanf(buf, "btime %llu", &btime) == 1)
				break;
		fclose(f);
	}
	if (btime > 0 && start > 0 && tck > 0)
		pi->start_time = (double)btime + (double)start / (double)tck;
	if ((f = fopen("/proc/self/statm", "r")) != NULL) {
		if (fscanf(f, "%llu %llu", &vs, &rs) == 2 && page > 0) {
			pi->vsize_bytes = vs * (uint64_t)page;
			pi->rss_bytes = rs * (uint64_t)page;
		}
		fclose(f);
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				pi->open_fds++;
		closedir(d);
		if (pi->open_fds > 0)
			pi->open_fds--; /* the directory's own descriptor */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		pi->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)rl.rlim_cur;
}

/* ---- Prometheus text ----------------------------------------------------- */

static void
write_prometheus(FILE *f, const struct runtime *rt, const struct totals *t,
                 const struct proc_info *pi)
{
	const struct config *cfg = rt->cfg;
	const char *state = policy_state_name(pub.policy);

	prom_header(f, "postern_build_info", "gauge", "postern's version; the value is 1.");
	prom_sample(f, "postern_build_info",
	            (struct prom_label[]){{"version", pub.version ? pub.version : "unknown"}}, 1,
	            1);

	prom_header(f, "postern_connections_total", "counter",
	            "Client connections accepted, by listener.");
	for (size_t i = 0; i < t->nlst; i++)
		prom_sample_u64(f, "postern_connections_total",
		                (struct prom_label[]){{"listener", cfg->listeners[i].name}}, 1,
		                t->accepted[i]);

	prom_header(f, "postern_tls_handshakes_total", "counter",
	            "Client TLS handshakes completed, by listener and session resumption.");
	for (size_t i = 0; i < t->nlst; i++)
		for (int r = 0; r < 2; r++)
			prom_sample_u64(f, "postern_tls_handshakes_total",
			                (struct prom_label[]){{"listener", cfg->listeners[i].name},
			                                      {"resumed", r ? "true" : "false"}},
			                2, t->tls[r][i]);

	prom_header(f, "postern_sessions", "gauge",
	            "Sessions being relayed now, by protocol and backend.");
	for (int p = 0; p < PROTO__COUNT; p++)
		for (unsigned id = 0; id < t->nnames; id++)
			if (t->serves[p][id] || t->sessions[p][id] != 0)
				prom_sample_u64(f, "postern_sessions",
				                (struct prom_label[]){{"proto", proto_name(p)},
				                                      {"backend", t->names[id]}},
				                2, t->sessions[p][id]);

	prom_header(f, "postern_logins_total", "counter",
	            "Logins ended, by protocol and result (ok or the failure class).");
	for (int p = 0; p < PROTO__COUNT; p++) {
		prom_sample_u64(f, "postern_logins_total",
		                (struct prom_label[]){{"proto", proto_name(p)}, {"result", "ok"}},
		                2, t->logins[p][FAIL_NONE]);
		for (int k = FAIL_AUTH; k < FAIL__COUNT; k++)
			if (login_class_shown(k))
				prom_sample_u64(
				    f, "postern_logins_total",
				    (struct prom_label[]){{"proto", proto_name(p)},
				                          {"result", fail_class_name(k)}},
				    2, logins_of_class(t, p, k));
	}

	prom_header(f, "postern_login_duration_seconds", "histogram",
	            "Time from the client's credentials to the login's outcome, by protocol.");
	for (int p = 0; p < PROTO__COUNT; p++)
		prom_histogram(f, "postern_login_duration_seconds",
		               (struct prom_label[]){{"proto", proto_name(p)}}, 1, login_bounds,
		               METRICS_LOGIN_BUCKETS, t->login_le[p], (double)t->login_us[p] / 1e6);

	prom_header(f, "postern_backend_up", "gauge",
	            "1 while the backend is up (health checks and logins), 0 when down.");
	for (unsigned id = 0; id < t->nnames; id++)
		if (t->configured[id])
			prom_sample(f, "postern_backend_up",
			            (struct prom_label[]){{"backend", t->names[id]}}, 1, t->up[id]);

	prom_header(f, "postern_backend_connect_errors_total", "counter",
	            "Logins' failed attempts to reach a backend (connect, timeout, closed or TLS "
	            "failure before any credential was sent).");
	for (unsigned id = 0; id < t->nnames; id++)
		prom_sample_u64(f, "postern_backend_connect_errors_total",
		                (struct prom_label[]){{"backend", t->names[id]}}, 1,
		                t->connect_errors[id]);

	prom_header(f, "postern_bytes_total", "counter",
	            "Bytes from (in) and to (out) clients, by protocol.");
	for (int p = 0; p < PROTO__COUNT; p++)
		for (int d = 0; d < METRICS__DIRS; d++)
			prom_sample_u64(f, "postern_bytes_total",
			                (struct prom_label[]){{"proto", proto_name(p)},
			                                      {"direction", d ? "out" : "in"}},
			                2, t->bytes[p][d]);

	prom_header(f, "postern_policy_refusals_total", "counter",
	            "Connections and logins refused by a policy, by verdict.");
	for (int v = 0; v < POLICY__COUNT; v++)
		if (v != POLICY_ALLOW)
			prom_sample_u64(f, "postern_policy_refusals_total",
			                (struct prom_label[]){{"reason", policy_verdict_name[v]}},
			                1, t->refusals[v]);

	prom_header(f, "postern_lookup_requests_total", "counter",
	            "User lookups, by how each was answered.");
	for (int k = 0; k < METRICS_LOOKUP__COUNT; k++)
		prom_sample_u64(f, "postern_lookup_requests_total",
		                (struct prom_label[]){{"result", lookup_result_name[k]}}, 1,
		                t->lookups[k]);
	prom_header(f, "postern_lookup_duration_seconds", "histogram",
	            "Time from a lookup's question to the service's answer.");
	prom_histogram(f, "postern_lookup_duration_seconds", NULL, 0, lookup_bounds,
	               METRICS_LOOKUP_BUCKETS, t->lookup_le, (double)t->lookup_us / 1e6);
	prom_header(f, "postern_lookup_breaker_open", "gauge",
	            "Lookup service URLs whose circuit breaker is open (not asked).");
	prom_sample(f, "postern_lookup_breaker_open", NULL, 0,
	            atomic_load_explicit(&lookup_breakers, memory_order_relaxed));

	if (state != NULL) {
		struct store_status ss;

		(void)policy_state_status(pub.policy, &ss);
		prom_header(f, "postern_state_up", "gauge",
		            "1 while the state store is usable (Redis: a link to the master is "
		            "ready), 0 when not.");
		prom_sample(f, "postern_state_up", (struct prom_label[]){{"store", state}}, 1,
		            ss.up);
		if (strcmp(state, "redis") == 0) {
			prom_header(f, "postern_state_failovers_total", "counter",
			            "Times the Redis master in use changed (a Sentinel failover).");
			prom_sample_u64(f, "postern_state_failovers_total",
			                (struct prom_label[]){{"store", state}}, 1, ss.failovers);
		}
	}

	prom_header(f, "postern_admin_sessions_visited_total", "counter",
	            "Sessions the admin socket's sessions and kick requests looked at (with a "
	            "user or backend filter, only that user's or backend's).");
	prom_sample_u64(f, "postern_admin_sessions_visited_total", NULL, 0, t->admin_visited);
	prom_header(f, "postern_drain_sweep_visited_total", "counter",
	            "Sessions the sweep of the sessions being ended (drain, kick) looked at.");
	prom_sample_u64(f, "postern_drain_sweep_visited_total", NULL, 0, t->sweep_visited);

	prom_header(f, "postern_draining", "gauge",
	            "1 while postern drains (accepts nothing new and is ending its sessions).");
	prom_sample(f, "postern_draining", NULL, 0, lifecycle_draining());

	prom_header(f, "process_start_time_seconds", "gauge",
	            "Start time of the process since unix epoch in seconds.");
	prom_sample(f, "process_start_time_seconds", NULL, 0, pi->start_time);
	prom_header(f, "process_cpu_seconds_total", "counter",
	            "Total user and system CPU time spent in seconds.");
	prom_sample(f, "process_cpu_seconds_total", NULL, 0, pi->cpu_seconds);
	prom_header(f, "process_open_fds", "gauge", "Number of open file descriptors.");
	prom_sample_u64(f, "process_open_fds", NULL, 0, pi->open_fds);
	if (pi->max_fds > 0) {
		prom_header(f, "process_max_fds", "gauge",
		            "Maximum number of open file descriptors.");
		prom_sample_u64(f, "process_max_fds", NULL, 0, pi->max_fds);
	}
	prom_header(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	prom_sample_u64(f, "process_resident_memory_bytes", NULL, 0, pi->rss_bytes);
	prom_header(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	prom_sample_u64(f, "process_virtual_memory_bytes", NULL, 0, pi->vsize_bytes);
}

/* ---- for people ----------------------------------------------------------------- */

void
metrics_state_line(FILE *f, bool none_too)
{
	const char *state = policy_state_name(pub.policy);
	struct store_status ss;

	if (state == NULL) {
		if (none_too)
			fprintf(f, "state store: none\n");
		return;
	}
	(void)policy_state_status(pub.policy, &ss);
	fprintf(f, "state store: %s %s", state, ss.up ? "up" : "down");
	if (ss.master[0] != '\0')
		fprintf(f, ", master %s (%s), failovers %llu", ss.master, ss.how,
		        (unsigned long long)ss.failovers);
	fputc('\n', f);
}

static void
write_summary(FILE *f, const struct runtime *rt, const struct totals *t, const struct proc_info *pi)
{
	const struct config *cfg = rt->cfg;
	double up = pi->start_time > 0 ? (double)time(NULL) - pi->start_time : 0;

	fprintf(f, "postern %s, up %.0fs, %zu workers, %s\n", pub.version ? pub.version : "?",
	        up < 0 ? 0 : up, pub.n, lifecycle_draining() ? "draining" : "accepting");
	metrics_state_line(f, true);

	fprintf(f, "\nlisteners          accepted  tls-full  tls-resumed\n");
	for (size_t i = 0; i < t->nlst; i++)
		fprintf(f, "  %-16s %9llu %9llu %12llu\n", cfg->listeners[i].name,
		        (unsigned long long)t->accepted[i], (unsigned long long)t->tls[0][i],
		        (unsigned long long)t->tls[1][i]);

	fprintf(f, "\nlogins\n");
	for (int p = 0; p < PROTO__COUNT; p++) {
		uint64_t n = 0;

		for (int k = 0; k < FAIL__COUNT; k++)
			n += t->logins[p][k];
		fprintf(f, "  %-5s ok %llu", proto_name(p),
		        (unsigned long long)t->logins[p][FAIL_NONE]);
		for (int k = FAIL_AUTH; k < FAIL__COUNT; k++) {
			uint64_t c = login_class_shown(k) ? logins_of_class(t, p, k) : 0;
			if (c > 0)
				fprintf(f, ", %s %llu", fail_class_name(k), (unsigned long long)c);
		}
		if (n > 0)
			fprintf(f, "; mean %.3fs", (double)t->login_us[p] / 1e6 / (double)n);
		fputc('\n', f);
	}

	fprintf(f, "\nbackends           state  imap-sessions  pop3-sessions  sieve-sessions  "
	           "connect-errors\n");
	for (unsigned id = 0; id < t->nnames; id++) {
		if (!t->configured[id] && t->sessions[PROTO_IMAP][id] == 0 &&
		    t->sessions[PROTO_POP3][id] == 0 && t->sessions[PROTO_SIEVE][id] == 0 &&
		    t->connect_errors[id] == 0)
			continue;
		fprintf(f, "  %-16s %-6s %13llu  %13llu  %14llu  %14llu\n", t->names[id],
		        !t->configured[id] ? "gone"
		        : t->up[id]        ? "up"
		                           : "down",
		        (unsigned long long)t->sessions[PROTO_IMAP][id],
		        (unsigned long long)t->sessions[PROTO_POP3][id],
		        (unsigned long long)t->sessions[PROTO_SIEVE][id],
		        (unsigned long long)t->connect_errors[id]);
	}

	fprintf(f, "\nbytes\n");
	for (int p = 0; p < PROTO__COUNT; p++)
		fprintf(f, "  %-5s in %llu, out %llu\n", proto_name(p),
		        (unsigned long long)t->bytes[p][METRICS_IN],
		        (unsigned long long)t->bytes[p][METRICS_OUT]);

	fprintf(f, "\npolicy refusals:");
	for (int v = 0; v < POLICY__COUNT; v++)
		if (v != POLICY_ALLOW)
			fprintf(f, " %s %llu", policy_verdict_name[v],
			        (unsigned long long)t->refusals[v]);
	fprintf(f, "\nadmin: sessions visited %llu; drain sweep: sessions visited %llu",
	        (unsigned long long)t->admin_visited, (unsigned long long)t->sweep_visited);
	fprintf(f, "\nprocess: rss %.1f MiB, %llu open fds, cpu %.2fs\n",
	        (double)pi->rss_bytes / (1024.0 * 1024.0), (unsigned long long)pi->open_fds,
	        pi->cpu_seconds);
}

int
metrics_write(FILE *f, bool prometheus)
{
	struct runtime *rt = runtime_get();
	struct totals *t = NULL;
	struct proc_info pi;
	int rc = -1;

	if (rt == NULL)
		return -1;
	proc_read(&pi);
	pthread_mutex_lock(&scrape_lock);
	if ((t = totals_collect(rt)) != NULL) {
		if (prometheus)
			write_prometheus(f, rt, t, &pi);
		else
			write_summary(f, rt, t, &pi);
		rc = 0;
	}
	pthread_mutex_unlock(&scrape_lock);
	totals_free(t);
	runtime_unref(&rt);
	if (fflush(f) != 0 || ferror(f))
		rc = -1;
	return rc;
}
