/*
 * main.c: command line, config check, binding, privilege drop, worker
 * threads and signals.  fatal() exits are allowed only here, before the
 * first loop runs; after that an error costs one connection.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "admin.h"
#include "admin_cmd.h"
#include "config.h"
#include "health.h"
#include "lifecycle.h"
#include "listener.h"
#include "log.h"
#include "lookup.h"
#include "notify.h"
#include "metrics.h"
#include "metrics_http.h"
#include "policy.h"
#include "runtime.h"
#include "tls.h"
#include "worker.h"

#ifndef POSTERN_VERSION
#define POSTERN_VERSION "0.1.0"
#endif

/* The synopsis (the commands' lines from their table), the options, and
 * with help each command's help line. */
static void
usage(FILE *f, bool help)
{
	fputs("usage: postern [-t] -c FILE\n", f);
	admin_cmd_usage(f, ADMIN_VIA__COUNT, false);
	fputs("       postern -V\n"
	      "  -c FILE  configuration file (libconfig syntax)\n"
	      "  -t       check the configuration and exit (1 on errors)\n"
	      "  -V       print the version and exit\n",
	      f);
	if (help) {
		fputs("commands:\n", f);
		admin_cmd_help(f);
	}
}

static void
fatal(const char *what)
{
	fprintf(stderr, "postern: %s\n", what);
	exit(1);
}

static int
drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL)
		return -1;
	if (getuid() != 0) /* not root: nothing to drop */
		return 0;
	if (setgroups(0, NULL) < 0 || initgroups(pw->pw_name, pw->pw_gid) < 0 ||
	    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		return -1;
	if (setuid(0) == 0) /* must not be able to get root back */
		return -1;
	return 0;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Listening sockets are bound once: a reload may not move them. */
static bool
same_listeners(const struct config *a, const struct config *b)
{
	if (a->nlisteners != b->nlisteners)
		return false;
	for (size_t i = 0; i < a->nlisteners; i++) {
		const struct listener_conf *x = &a->listeners[i], *y = &b->listeners[i];
		if (x->addrlen != y->addrlen || memcmp(&x->addr, &y->addr, x->addrlen) != 0 ||
		    x->proto != y->proto || x->tls != y->tls)
			return false;
	}
	return true;
}

/* Log each line of an error report as its own event. */
static void
log_errors(const char *event, char *text)
{
	char *save = NULL;

	for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		char q[LOG_QUOTED_MAX];
		log_kv(LOG_ERR, event, "result=failed error=%s",
		       log_quote(q, sizeof(q), l, strlen(l)));
	}
}

/*
 * SIGHUP: read the file again and build its TLS state; new connections get
 * the new pair, open ones keep theirs.  Anything wrong (a broken
 * certificate, a typo, moved listeners) leaves the running pair in service.
 * Returns 0, or -1 with the error report in *report_out (the caller frees).
 */
static int
reload(const char *path, const struct config *first, struct policy *policy, unsigned *generation,
       char **report_out)
{
	struct config *cfg;
	struct tls_state *tls = NULL;
	struct runtime *rt;
	char *report = NULL;
	size_t len = 0;
	FILE *errs = open_memstream(&report, &len);

	*report_out = NULL;
	if (errs == NULL)
		return -1;
	cfg = config_load(path, errs);
	if (cfg != NULL && !same_listeners(first, cfg)) {
		fprintf(errs, "%s: listeners changed: restart postern to apply that\n", path);
		config_unref(&cfg);
	}
	if (cfg != NULL)
		tls = tls_state_new(cfg, errs);
	if (cfg != NULL && tls != NULL && tls_tickets_load(cfg, errs) == 0 &&
	    policy_reload(policy, cfg, errs) == 0) {
		fclose(errs);
		free(report);
		log_set_level(cfg->log_level);
		if (cfg->workers != first->workers)
			log_kv(LOG_WARN, "config.reload",
			       "note=\"workers changes need a restart\"");
		if ((cfg->admin.http == NULL) != (first->admin.http == NULL) ||
		    (cfg->admin.http != NULL && strcmp(cfg->admin.http, first->admin.http) != 0))
			log_kv(LOG_WARN, "config.reload",
			       "note=\"admin.http changes need a restart\"");
		if ((cfg->admin.socket == NULL) != (first->admin.socket == NULL) ||
		    (cfg->admin.socket && strcmp(cfg->admin.socket, first->admin.socket) != 0))
			log_kv(LOG_WARN, "config.reload",
			       "note=\"admin.socket changes need a restart\"");
		rt = runtime_new(cfg, tls, ++*generation);
		if (rt == NULL) {
			log_kv(LOG_ERR, "config.reload", "result=failed error=\"out of memory\"");
			*report_out = strdup("out of memory");
			return -1;
		}
		runtime_publish(rt);
		log_kv(LOG_INFO, "config.reload", "result=ok generation=%u", *generation);
		return 0;
	}
	fclose(errs);
	*report_out = report != NULL ? strdup(report) : NULL;
	log_errors("config.reload", report);
	free(report);
	tls_state_unref(&tls);
	config_unref(&cfg);
	log_kv(LOG_ERR, "config.reload", "result=failed note=\"the running configuration stays\"");
	return -1;
}

/* What main's steps share: the daemon from start to stop. */
struct daemon {
	const char *path;          /* borrowed: argv's */
	bool check;                /* -t */
	struct config *cfg;        /* owned: the first config (listeners, workers) */
	struct tls_state *tls;     /* borrowed from the first runtime once published */
	struct policy *policy;     /* owned */
	struct worker *workers;    /* owned: [cfg->workers] */
	int *fds;                  /* owned: [w * nlisteners + i], taken over by the workers */
	int admin_fd;              /* -1: no admin socket */
	struct metrics_http *http; /* owned; NULL: no admin.http */
	unsigned generation;       /* the runtime's, counting reloads */
	sigset_t sigs;             /* what main's thread waits for */
};

/* A reload, its outcome told to the admin requests it covers. */
static void
reload_and_answer(struct daemon *d)
{
	uint64_t token = admin_reload_begin();
	char *report = NULL;
	int rc;

	notify_reloading();
	rc = reload(d->path, d->cfg, d->policy, &d->generation, &report);
	notify_ready(); /* a failed reload leaves the old state serving */
	admin_reload_done(token, rc == 0, report);
	free(report);
}

/* Are all workers out of connections? */
static bool
workers_idle(struct worker *workers, int n)
{
	for (int w = 0; w < n; w++)
		if (worker_conns(&workers[w]) > 0)
			return false;
	return true;
}

/*
 * SIGTERM: every listener closes at once, then sessions end politely (see
 * conn_end_politely) until none is left or timeouts.drain has passed.
 * SIGINT meanwhile stops at once; SIGHUP still reloads.
 */
static void
drain(struct daemon *d)
{
	const struct config *first = d->cfg;
	struct worker *workers = d->workers;
	struct runtime *rt = runtime_get();
	uint64_t spread = rt->cfg->timeouts.drain_spread_ms, limit = rt->cfg->timeouts.drain_ms;
	uint64_t start = now_ms();

	runtime_unref(&rt);
	lifecycle_set_draining();
	log_kv(LOG_INFO, "postern.drain", "deadline_ms=%llu spread_ms=%llu",
	       (unsigned long long)limit, (unsigned long long)spread);
	for (int w = 0; w < first->workers; w++)
		worker_drain(&workers[w], spread, limit);
	/* The workers close what is left at the deadline themselves; this
	 * waits a little longer for their last words to go out. */
	while (!workers_idle(workers, first->workers) && now_ms() - start < limit + 1000) {
		struct timespec tick = {0, 100 * 1000 * 1000};
		int sig = sigtimedwait(&d->sigs, NULL, &tick);

		tls_tickets_tick(now_ms());
		if (sig == SIGHUP)
			reload_and_answer(d);
		else if (sig == SIGINT) {
			log_kv(LOG_INFO, "postern.stop", "signal=INT note=\"drain cut short\"");
			return;
		}
	}
	log_kv(LOG_INFO, "postern.drained", "ms=%llu left=%s",
	       (unsigned long long)(now_ms() - start),
	       workers_idle(workers, first->workers) ? "none" : "closed");
}

/*
 * The options.  Returns -1 to go on (d->path and d->check set, optind at
 * the first word after them), else the exit status (-V, -h, usage).
 */
static int
parse_args(struct daemon *d, int argc, char **argv)
{
	int opt;

	/* "+": options end at the first word (lock ...). */
	while ((opt = getopt(argc, argv, "+c:tVh")) != -1) {
		switch (opt) {
		case 'c':
			d->path = optarg;
			break;
		case 't':
			d->check = true;
			break;
		case 'V':
			printf("postern %s (%s)\n", POSTERN_VERSION,
			       OpenSSL_version(OPENSSL_VERSION));
			return 0;
		case 'h':
			usage(stdout, true);
			return 0;
		default:
			usage(stderr, false);
			return 2;
		}
	}
	if (d->path == NULL || (optind != argc && admin_cmd_find(argv[optind]) == NULL)) {
		usage(stderr, false);
		return 2;
	}
	return -1;
}

/*
 * Load the file and its TLS state into d; with -t, check the policy too
 * and say so.  Returns -1 to go on, else the exit status (nothing left
 * held).
 */
static int
load_config(struct daemon *d)
{
	d->cfg = config_load(d->path, stderr);
	if (d->cfg == NULL)
		return 1;
	d->tls = tls_state_new(d->cfg, stderr);
	if (d->tls == NULL || tls_tickets_load(d->cfg, stderr) < 0 ||
	    (d->check && policy_check(d->cfg, stderr) < 0)) {
		tls_state_unref(&d->tls);
		config_unref(&d->cfg);
		return 1;
	}
	if (!d->check)
		return -1;
	printf("%s: configuration ok (%zu listeners, %zu backends, %d workers)\n", d->path,
	       d->cfg->nlisteners, d->cfg->nbackends, d->cfg->workers);
	tls_state_unref(&d->tls);
	config_unref(&d->cfg);
	return 0;
}

/*
 * While we may still be root: publish the first runtime, open the store,
 * bind every worker's listeners, admin.http and the admin socket; then
 * drop privileges.  Returns -1 to go on or 1 (the store did not open);
 * fatal() on anything else.
 */
static int
daemon_bind(struct daemon *d)
{
	const struct config *cfg = d->cfg;
	size_t nl = cfg->nlisteners;
	struct runtime *rt;

	/* The first pair; cfg stays referenced here for the listeners' names. */
	rt = runtime_new(config_ref(d->cfg), d->tls, d->generation);
	if (rt == NULL)
		fatal("out of memory");
	runtime_publish(rt);
	log_set_level(cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	/* The state store opens now, while we may still be root. */
	d->policy = policy_new(cfg, stderr);
	if (d->policy == NULL) {
		tls_state_unref(&d->tls);
		config_unref(&d->cfg);
		return 1;
	}
	d->fds = calloc((size_t)cfg->workers * nl, sizeof(*d->fds));
	d->workers = calloc((size_t)cfg->workers, sizeof(*d->workers));
	if (d->fds == NULL || d->workers == NULL)
		fatal("out of memory");
	for (int w = 0; w < cfg->workers; w++) {
		for (size_t i = 0; i < nl; i++) {
			const char *err = NULL;
			int fd = listener_bind(&cfg->listeners[i], &err);
			if (fd < 0) {
				fprintf(stderr, "postern: listen %s: %s: %s\n",
				        cfg->listeners[i].listen, err, strerror(errno));
				exit(1);
			}
			d->fds[(size_t)w * nl + i] = fd;
		}
	}
	if (cfg->admin.http != NULL) {
		const char *err = NULL;
		if ((d->http = metrics_http_new(cfg->admin.http, &err)) == NULL) {
			fprintf(stderr, "postern: admin.http %s: %s: %s\n", cfg->admin.http, err,
			        strerror(errno));
			exit(1);
		}
	}
	if (cfg->admin.socket != NULL) {
		/* Bound while we may be root; then it belongs to the user we become. */
		struct passwd *pw = cfg->user != NULL && getuid() == 0 ? getpwnam(cfg->user) : NULL;
		const char *err = NULL;

		d->admin_fd = admin_bind(cfg->admin.socket, pw ? pw->pw_uid : (uid_t)-1,
		                         pw ? pw->pw_gid : (gid_t)-1, &err);
		if (d->admin_fd < 0) {
			fprintf(stderr, "postern: admin socket %s: %s: %s\n", cfg->admin.socket,
			        err, strerror(errno));
			exit(1);
		}
	}
	if (cfg->user != NULL && drop_privileges(cfg->user) < 0)
		fatal("cannot drop privileges to the configured user");
	return -1;
}

/*
 * Block the signals (main's thread takes them, workers never see them),
 * start the workers, the health checker, metrics and the admin socket, and
 * tell systemd.  fatal() on failure.
 */
static void
daemon_start(struct daemon *d)
{
	const struct config *cfg = d->cfg;
	size_t nl = cfg->nlisteners;

	sigemptyset(&d->sigs);
	sigaddset(&d->sigs, SIGTERM);
	sigaddset(&d->sigs, SIGINT);
	sigaddset(&d->sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &d->sigs, NULL);

	if (lookup_global_init() < 0) /* curl_global_init: before any thread */
		fatal("cannot set up libcurl");
	admin_attach_workers(d->workers, (size_t)cfg->workers); /* kicks from the fleet */
	policy_set_kick(d->policy, admin_kick_local, NULL);     /* before the workers start */
	for (int w = 0; w < cfg->workers; w++) {
		if (worker_init(&d->workers[w], w, cfg, d->policy, &d->fds[(size_t)w * nl], nl) <
		        0 ||
		    worker_start(&d->workers[w]) < 0)
			fatal("cannot start worker");
	}
	if (health_start() < 0)
		fatal("cannot start the health checker");
	metrics_publish(d->workers, (size_t)cfg->workers, d->policy, POSTERN_VERSION);
	if (d->http != NULL) {
		const char *err = NULL;
		if (metrics_http_start(d->http, &err) < 0)
			fatal(err);
	}
	if (d->admin_fd >= 0 &&
	    admin_start(d->admin_fd, cfg->admin.socket, d->workers, (size_t)cfg->workers) < 0)
		fatal("cannot start the admin socket");
	log_kv(LOG_INFO, "postern.start", "version=%s workers=%d listeners=%zu backends=%zu",
	       POSTERN_VERSION, cfg->workers, cfg->nlisteners, cfg->nbackends);
	for (size_t i = 0; i < nl; i++)
		log_kv(LOG_INFO, "listener.start", "lst=%s listen=%s proto=%s tls=%s",
		       cfg->listeners[i].name, cfg->listeners[i].listen,
		       proto_name(cfg->listeners[i].proto),
		       cfg->listeners[i].tls == TLSM_IMPLICIT ? "implicit" : "starttls");
	notify_ready(); /* systemd: bound, workers running */
}

/*
 * Serve until SIGTERM (after draining) or SIGINT: reload at SIGHUP, tick
 * the ticket-key clock.  Returns when the daemon is to stop.
 */
static void
daemon_run(struct daemon *d)
{
	for (;;) {
		/* Wake once a second for the ticket-key clock. */
		struct timespec tick = {1, 0};
		int sig = sigtimedwait(&d->sigs, NULL, &tick);

		tls_tickets_tick(now_ms());
		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			reload_and_answer(d);
			continue;
		}
		notify_stopping();
		log_kv(LOG_INFO, "postern.stop", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
		if (sig == SIGTERM)
			drain(d);
		return;
	}
}

/*
 * Stop and free everything daemon_start() started, in order: no scrape,
 * no health check, the workers, then the admin socket (their last answers
 * are in).
 */
static void
daemon_stop(struct daemon *d)
{
	metrics_http_free(&d->http); /* no scrape runs past here */
	metrics_unpublish();
	health_stop();
	for (int w = 0; w < d->cfg->workers; w++)
		worker_stop(&d->workers[w]);
	for (int w = 0; w < d->cfg->workers; w++)
		worker_join(&d->workers[w]);
	admin_stop(); /* after the workers: their last answers are in */
	free(d->workers);
	free(d->fds);
	runtime_publish(NULL);
	policy_free(&d->policy);
	config_unref(&d->cfg);
}

int
main(int argc, char **argv)
{
	struct daemon d = {.admin_fd = -1, .generation = 1};
	int rc;

	if ((rc = parse_args(&d, argc, argv)) >= 0)
		return rc;
	/* postern -c FILE <command> ...: the store, the fleet or the socket. */
	if (optind != argc)
		return admin_client_main(d.path, argc - optind, argv + optind);
	if ((rc = load_config(&d)) >= 0 || (rc = daemon_bind(&d)) >= 0)
		return rc;
	daemon_start(&d);
	daemon_run(&d);
	daemon_stop(&d);
	return 0;
}
