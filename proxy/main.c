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
#include "config.h"
#include "health.h"
#include "lifecycle.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "metrics.h"
#include "metrics_http.h"
#include "policy.h"
#include "runtime.h"
#include "state_url.h"
#include "tls.h"
#include "worker.h"

#ifndef POSTERN_VERSION
#define POSTERN_VERSION "0.1.0"
#endif

static void
usage(FILE *f)
{
	fprintf(
	    f, "usage: postern [-t] -c FILE\n"
	       "       postern -c FILE lock show USER | set USER imap|pop3 | clear USER | list\n"
	       "       postern -c FILE route set USER BACKEND [--kick] | clear USER | show USER\n"
	       "       postern -c FILE sessions [--user U] [--backend B] [--client CIDR] [--json]\n"
	       "       postern -c FILE kick --user U | --backend B | --client CIDR\n"
	       "       postern -c FILE backend list [--json] | backend NAME drain|maint|ready\n"
	       "       postern -c FILE reload | stats | health\n"
	       "       postern -V\n"
	       "  -c FILE  configuration file (libconfig syntax)\n"
	       "  -t       check the configuration and exit (1 on errors)\n"
	       "  -V       print the version and exit\n");
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

/* A reload, its outcome told to the admin requests it covers. */
static void
reload_and_answer(const char *path, const struct config *first, struct policy *policy,
                  unsigned *generation)
{
	uint64_t token = admin_reload_begin();
	char *report = NULL;
	int rc;

	notify_reloading();
	rc = reload(path, first, policy, generation, &report);
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
drain(const char *path, const struct config *first, struct policy *policy, unsigned *generation,
      struct worker *workers, const sigset_t *sigs)
{
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
		int sig = sigtimedwait(sigs, NULL, &tick);

		tls_tickets_tick(now_ms());
		if (sig == SIGHUP)
			reload_and_answer(path, first, policy, generation);
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
 * postern -c FILE sessions|kick|...: through the admin socket.  A file
 * that does not load still names its socket (a reload of a broken file is
 * for the daemon to refuse, with its own words); one that cannot be parsed
 * at all shows its errors here.
 */
static int
admin_command(const char *path, int argc, char **argv)
{
	char *report = NULL, *sock = NULL;
	size_t len = 0;
	FILE *errs = open_memstream(&report, &len);
	struct config *cfg = config_load(path, errs);
	int rc;

	if (errs != NULL)
		fclose(errs);
	if (cfg != NULL)
		sock = cfg->admin.socket != NULL ? strdup(cfg->admin.socket) : NULL;
	else if ((sock = config_admin_socket(path)) == NULL) {
		fputs(report != NULL ? report : "postern: cannot load the configuration\n", stderr);
		free(report);
		return 1;
	}
	rc = admin_client_main(path, sock, argc, argv, stdout, stderr);
	free(sock);
	free(report);
	config_unref(&cfg);
	return rc;
}

/* Does `kick` (argc words) go to the fleet: "--user U" with a shared
 * (Redis) store in the file at path? */
static bool
fleet_kick(const char *path, int argc)
{
	struct config *cfg;
	FILE *quiet;
	bool shared;

	if (argc != 3 || (quiet = fopen("/dev/null", "w")) == NULL)
		return false;
	cfg = config_load(path, quiet); /* its errors are the admin command's to tell */
	fclose(quiet);
	shared = cfg != NULL && cfg->state != NULL && state_url_is_redis(cfg->state);
	config_unref(&cfg);
	return shared;
}

/*
 * postern -c FILE route ... | kick --user U: on the state store (the fleet's
 * channel with Redis).  A route set --kick on a store that is not shared
 * kicks through this daemon's admin socket instead.
 */
static int
fleet_command(const char *path, int argc, char **argv)
{
	struct config *cfg = config_load(path, stderr);
	bool local_kick;
	int rc;

	if (cfg == NULL)
		return 1;
	local_kick = strcmp(argv[0], "route") == 0 && argc == 5 && strcmp(argv[4], "--kick") == 0 &&
	             (cfg->state == NULL || !state_url_is_redis(cfg->state));
	rc = policy_admin_fleet(cfg, local_kick ? 4 : argc, argv, stdout, stderr);
	config_unref(&cfg);
	if (rc == 0 && local_kick) {
		char *kick[] = {"kick", "--user", argv[2], NULL};
		rc = admin_command(path, 3, kick);
	}
	return rc;
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	bool check = false;
	struct config *cfg;
	struct worker *workers;
	struct tls_state *tls;
	struct runtime *rt;
	struct policy *policy;
	struct metrics_http *http = NULL;
	unsigned generation = 1;
	sigset_t sigs;
	int *fds, opt, admin_fd = -1;
	size_t nl;

	/* "+": options end at the first word (lock ...). */
	while ((opt = getopt(argc, argv, "+c:tVh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'V':
			printf("postern %s (%s)\n", POSTERN_VERSION,
			       OpenSSL_version(OPENSSL_VERSION));
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL ||
	    (optind != argc && strcmp(argv[optind], "lock") != 0 &&
	     strcmp(argv[optind], "route") != 0 && !admin_is_command(argv[optind]))) {
		usage(stderr);
		return 2;
	}

	/* kick --user with a shared store goes to the whole fleet (every proxy,
	 * this one included, kicks on the store's channel); every other admin
	 * command, and kick without a shared store, to this daemon's socket. */
	if (optind != argc && strcmp(argv[optind], "kick") == 0 && fleet_kick(path, argc - optind))
		return fleet_command(path, argc - optind, argv + optind);
	if (optind != argc && admin_is_command(argv[optind]))
		return admin_command(path, argc - optind, argv + optind);
	if (optind != argc && strcmp(argv[optind], "route") == 0)
		return fleet_command(path, argc - optind, argv + optind);
	cfg = config_load(path, stderr);
	if (cfg == NULL)
		return 1;
	if (optind != argc) {
		/* postern -c FILE lock ...: on the live store. */
		int rc = policy_admin_main(cfg, argc - optind, argv + optind, stdout, stderr);
		config_unref(&cfg);
		return rc;
	}
	tls = tls_state_new(cfg, stderr);
	if (tls == NULL || tls_tickets_load(cfg, stderr) < 0) {
		tls_state_unref(&tls);
		config_unref(&cfg);
		return 1;
	}
	if (check) {
		if (policy_check(cfg, stderr) < 0) {
			tls_state_unref(&tls);
			config_unref(&cfg);
			return 1;
		}
		printf("%s: configuration ok (%zu listeners, %zu backends, %d workers)\n", path,
		       cfg->nlisteners, cfg->nbackends, cfg->workers);
		tls_state_unref(&tls);
		config_unref(&cfg);
		return 0;
	}
	/* The first pair; cfg stays referenced here for the listeners' names. */
	rt = runtime_new(config_ref(cfg), tls, generation);
	if (rt == NULL)
		fatal("out of memory");
	runtime_publish(rt);
	log_set_level(cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	/* The state store opens now, while we may still be root. */
	policy = policy_new(cfg, stderr);
	if (policy == NULL) {
		tls_state_unref(&tls);
		config_unref(&cfg);
		return 1;
	}

	/* Bind every worker's sockets while we may still be root. */
	nl = cfg->nlisteners;
	fds = calloc((size_t)cfg->workers * nl, sizeof(*fds));
	workers = calloc((size_t)cfg->workers, sizeof(*workers));
	if (fds == NULL || workers == NULL)
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
			fds[(size_t)w * nl + i] = fd;
		}
	}
	if (cfg->admin.http != NULL) {
		const char *err = NULL;
		if ((http = metrics_http_new(cfg->admin.http, &err)) == NULL) {
			fprintf(stderr, "postern: admin.http %s: %s: %s\n", cfg->admin.http, err,
			        strerror(errno));
			exit(1);
		}
	}
	if (cfg->admin.socket != NULL) {
		/* Bound while we may be root; then it belongs to the user we become. */
		struct passwd *pw = cfg->user != NULL && getuid() == 0 ? getpwnam(cfg->user) : NULL;
		const char *err = NULL;

		admin_fd = admin_bind(cfg->admin.socket, pw ? pw->pw_uid : (uid_t)-1,
		                      pw ? pw->pw_gid : (gid_t)-1, &err);
		if (admin_fd < 0) {
			fprintf(stderr, "postern: admin socket %s: %s: %s\n", cfg->admin.socket,
			        err, strerror(errno));
			exit(1);
		}
	}
	if (cfg->user != NULL && drop_privileges(cfg->user) < 0)
		fatal("cannot drop privileges to the configured user");

	/* Signals go to this thread only (sigwait below); workers never see them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	admin_attach_workers(workers, (size_t)cfg->workers); /* kicks from the fleet */
	policy_set_kick(policy, admin_kick_local, NULL);     /* before the workers start */
	for (int w = 0; w < cfg->workers; w++) {
		if (worker_init(&workers[w], w, cfg, policy, &fds[(size_t)w * nl], nl) < 0 ||
		    worker_start(&workers[w]) < 0)
			fatal("cannot start worker");
	}
	if (health_start() < 0)
		fatal("cannot start the health checker");
	metrics_publish(workers, (size_t)cfg->workers, policy, POSTERN_VERSION);
	if (http != NULL) {
		const char *err = NULL;
		if (metrics_http_start(http, &err) < 0)
			fatal(err);
	}
	if (admin_fd >= 0 &&
	    admin_start(admin_fd, cfg->admin.socket, workers, (size_t)cfg->workers) < 0)
		fatal("cannot start the admin socket");
	log_kv(LOG_INFO, "postern.start", "version=%s workers=%d listeners=%zu backends=%zu",
	       POSTERN_VERSION, cfg->workers, cfg->nlisteners, cfg->nbackends);
	for (size_t i = 0; i < nl; i++)
		log_kv(LOG_INFO, "listener.start", "lst=%s listen=%s proto=%s tls=%s",
		       cfg->listeners[i].name, cfg->listeners[i].listen,
		       proto_name(cfg->listeners[i].proto),
		       cfg->listeners[i].tls == TLSM_IMPLICIT ? "implicit" : "starttls");
	notify_ready(); /* systemd: bound, workers running */

	for (;;) {
		/* Wake once a second for the ticket-key clock. */
		struct timespec tick = {1, 0};
		int sig = sigtimedwait(&sigs, NULL, &tick);

		tls_tickets_tick(now_ms());
		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			reload_and_answer(path, cfg, policy, &generation);
			continue;
		}
		notify_stopping();
		log_kv(LOG_INFO, "postern.stop", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
		if (sig == SIGTERM)
			drain(path, cfg, policy, &generation, workers, &sigs);
		break;
	}
	metrics_http_free(&http); /* no scrape runs past here */
	metrics_unpublish();
	health_stop();
	for (int w = 0; w < cfg->workers; w++)
		worker_stop(&workers[w]);
	for (int w = 0; w < cfg->workers; w++)
		worker_join(&workers[w]);
	admin_stop(); /* after the workers: their last answers are in */
	free(workers);
	free(fds);
	runtime_publish(NULL);
	policy_free(&policy);
	config_unref(&cfg);
	return 0;
}
