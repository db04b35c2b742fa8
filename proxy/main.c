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

#include "config.h"
#include "health.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "policy.h"
#include "runtime.h"
#include "tls.h"
#include "worker.h"

#ifndef POSTERN_VERSION
#define POSTERN_VERSION "0.1.0"
#endif

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: postern [-t] -c FILE\n"
	        "       postern -c FILE lock show USER | set USER imap|pop3 | clear USER | list\n"
	        "       postern -c FILE route set USER BACKEND [--kick] | clear USER | show USER\n"
	        "       postern -c FILE kick --user USER\n"
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
 */
static void
reload(const char *path, const struct config *first, struct policy *policy, unsigned *generation)
{
	struct config *cfg;
	struct tls_state *tls = NULL;
	struct runtime *rt;
	char *report = NULL;
	size_t len = 0;
	FILE *errs = open_memstream(&report, &len);

	if (errs == NULL)
		return;
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
		rt = runtime_new(cfg, tls, ++*generation);
		if (rt == NULL) {
			log_kv(LOG_ERR, "config.reload", "result=failed error=\"out of memory\"");
			return;
		}
		runtime_publish(rt);
		log_kv(LOG_INFO, "config.reload", "result=ok generation=%u", *generation);
		return;
	}
	fclose(errs);
	log_errors("config.reload", report);
	free(report);
	tls_state_unref(&tls);
	config_unref(&cfg);
	log_kv(LOG_ERR, "config.reload", "result=failed note=\"the running configuration stays\"");
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
	unsigned generation = 1;
	sigset_t sigs;
	int *fds, opt;
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
	     strcmp(argv[optind], "route") != 0 && strcmp(argv[optind], "kick") != 0)) {
		usage(stderr);
		return 2;
	}

	cfg = config_load(path, stderr);
	if (cfg == NULL)
		return 1;
	if (optind != argc) {
		/* postern -c FILE lock|route|kick ...: on the live store. */
		int rc =
		    strcmp(argv[optind], "lock") == 0
		        ? policy_admin_main(cfg, argc - optind, argv + optind, stdout, stderr)
		        : policy_admin_fleet(cfg, argc - optind, argv + optind, stdout, stderr);
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
	if (cfg->user != NULL && drop_privileges(cfg->user) < 0)
		fatal("cannot drop privileges to the configured user");

	/* Signals go to this thread only (sigwait below); workers never see them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	for (int w = 0; w < cfg->workers; w++) {
		if (worker_init(&workers[w], w, cfg, policy, &fds[(size_t)w * nl], nl) < 0 ||
		    worker_start(&workers[w]) < 0)
			fatal("cannot start worker");
	}
	if (health_start() < 0)
		fatal("cannot start the health checker");
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
			notify_reloading();
			reload(path, cfg, policy, &generation);
			notify_ready(); /* a failed reload leaves the old state serving */
			continue;
		}
		notify_stopping();
		log_kv(LOG_INFO, "postern.stop", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
		break;
	}
	health_stop();
	for (int w = 0; w < cfg->workers; w++)
		worker_stop(&workers[w]);
	for (int w = 0; w < cfg->workers; w++)
		worker_join(&workers[w]);
	free(workers);
	free(fds);
	runtime_publish(NULL);
	policy_free(&policy);
	config_unref(&cfg);
	return 0;
}
