/*
 * admin_lookup.c: `postern -c FILE lookup USER [--protocol imap|pop3|sieve]
 * [--password-file F]`: ask the configured user lookup service about one
 * user, blocking (lookup_once()), and print what it answered and what
 * postern would do with that answer.  Runs in the command's own process;
 * the daemon is not involved.  The password is read from a file (never
 * from the command line, where ps shows it) and never printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "account.h"
#include "addr.h"
#include "admin_impl.h"
#include "config.h"
#include "lookup.h"
#include "route.h"

#define PASSWORD_MAX 1024 /* CREDS_SECRET_MAX */

/* The first line of path into buf (without its line end).  -1 after
 * saying why on stderr. */
static int
read_password(const char *path, char *buf, size_t len, size_t *n_out)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL || fgets(buf, (int)len, f) == NULL) {
		fprintf(stderr, "postern: cannot read the password file %s\n", path);
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	*n_out = n;
	return 0;
}

/* The URL logins on protocol pk would ask: the global one, else the first
 * listener's own. */
static const char *
lookup_url_for(const struct config *cfg, enum proto_kind pk)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].proto == pk && config_lookup_url(cfg, &cfg->listeners[i]))
			return config_lookup_url(cfg, &cfg->listeners[i]);
	return cfg->lookup.url;
}

/* The config's own route for user (what on_failure = "rules" falls back
 * to), printed. */
static void
print_rules_route(const struct config *cfg, const char *user)
{
	char key[ACCOUNT_KEY_MAX + 1];
	size_t cand[ROUTE_POOL_MAX], klen = account_key(user, strlen(user), key, sizeof(key));
	size_t n = route_lookup(cfg->routes, key, klen, cand, ROUTE_POOL_MAX);

	if (n == 0)
		printf("the config's routes have no backend for this user\n");
	else
		printf("the config's routes: backend %s\n", cfg->backends[cand[0]].name);
}

/* What postern does with answer a, in words. */
static void
print_decision(const struct config *cfg, enum proto_kind pk, const char *user,
               const struct lookup_answer *a)
{
	struct sockaddr_storage sa;
	socklen_t salen;

	printf("postern:  ");
	switch (a->status) {
	case LOOKUP_OK:
		if (a->backend[0] != '\0') {
			if (config_backend_find(cfg, a->backend) >= 0)
				printf("log in at backend %s\n", a->backend);
			else
				printf(
				    "refuse [UNAVAILABLE]: the answer names backend \"%s\", which "
				    "this config lacks\n",
				    a->backend);
			return;
		}
		if (addr_from_literal(a->server, a->port, &sa, &salen) == 0)
			for (size_t i = 0; i < cfg->nbackends; i++)
				if (cfg->backends[i].port[pk] != 0 &&
				    addr_same(&cfg->backends[i].addr[pk], &sa)) {
					printf("log in at backend %s (its address)\n",
					       cfg->backends[i].name);
					return;
				}
		printf(
		    "log in at %s%s%s:%u, a backend named by address (lookup.backend_defaults)\n",
		    strchr(a->server, ':') ? "[" : "", a->server, strchr(a->server, ':') ? "]" : "",
		    a->port);
		return;
	case LOOKUP_REFUSED:
		if (cfg->lookup.protocol == LOOKUP_PROTO_NGINX && a->wait_s > 0)
			printf("refuse with \"%s\" after %d s; the session stays open\n", a->text,
			       a->wait_s);
		else if (cfg->lookup.protocol == LOOKUP_PROTO_NGINX)
			printf("refuse with \"%s\", then end the session (no Auth-Wait)\n",
			       a->text);
		else
			printf("refuse as a failed login (counted, throttled)\n");
		return;
	case LOOKUP_UNKNOWN:
		printf("refuse as a failed login (unknown user: counted, throttled)\n");
		return;
	default:
		if (cfg->lookup.on_failure == LOOKUP_FAIL_RULES) {
			printf("fall back (on_failure = \"rules\"): ");
			print_rules_route(cfg, user);
		} else {
			printf(
			    "answer [UNAVAILABLE] / [SYS/TEMP] (on_failure = \"unavailable\")\n");
		}
		return;
	}
}

int
admin_cli_lookup(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv)
{
	static const char *const sources[] = {"the service", "the cache", "timeout",
	                                      "transport error", "breaker"};
	const char *user = NULL, *pwfile = NULL, *url;
	enum proto_kind pk = PROTO_IMAP;
	char pass[PASSWORD_MAX + 2];
	size_t plen = 0;
	struct lookup_answer *a;
	struct lookup_query q = {0};
	struct config *cfg;
	enum lookup_source src;
	long status = 0;
	int rc;

	(void)d;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--protocol") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "imap") == 0)
				pk = PROTO_IMAP;
			else if (strcmp(argv[i], "pop3") == 0)
				pk = PROTO_POP3;
			else if (strcmp(argv[i], "sieve") == 0)
				pk = PROTO_SIEVE;
			else
				user = NULL, i = argc; /* usage */
		} else if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc) {
			pwfile = argv[++i];
		} else if (argv[i][0] != '-' && user == NULL) {
			user = argv[i];
		} else {
			user = NULL;
			break;
		}
	}
	if (user == NULL) {
		fprintf(stderr, "usage: postern -c FILE lookup USER [--protocol imap|pop3|sieve] "
		                "[--password-file F]\n");
		return 2;
	}
	if ((cfg = config_load(cfg_path, stderr)) == NULL)
		return 1;
	if ((url = lookup_url_for(cfg, pk)) == NULL) {
		fprintf(stderr, "postern: %s has no lookup url for %s\n", cfg_path, proto_name(pk));
		config_unref(&cfg);
		return 1;
	}
	if (pwfile != NULL && read_password(pwfile, pass, sizeof(pass), &plen) < 0) {
		config_unref(&cfg);
		return 1;
	}
	if ((a = malloc(sizeof(*a))) == NULL || lookup_global_init() < 0) {
		fprintf(stderr, "postern: out of memory\n");
		free(a);
		config_unref(&cfg);
		return 1;
	}
	q.proto = pk;
	q.method = LOOKUP_METHOD_PLAIN;
	q.user = user;
	q.user_len = strlen(user);
	if (pwfile != NULL && cfg->lookup.send_password) {
		q.pass = pass;
		q.pass_len = plen;
	}
	q.attempt = 1;
	q.client_ip = "127.0.0.1";
	q.local_ip = "127.0.0.1";
	q.headers = (const char *const *)cfg->lookup.headers;
	q.nheaders = cfg->lookup.nheaders;
	src = lookup_once(&cfg->lookup, url, &q, a, &status);
	OPENSSL_cleanse(pass, sizeof(pass));
	printf("service:  %s (%s protocol)\n", url,
	       cfg->lookup.protocol == LOOKUP_PROTO_NGINX ? "nginx" : "json");
	printf("asked:    user=%s protocol=%s password=%s\n", user, proto_name(pk),
	       q.pass != NULL ? "sent" : "not sent");
	printf("answer:   %s from %s", lookup_status_name(a->status),
	       (unsigned)src < 5 ? sources[src] : "?");
	if (status != 0)
		printf(", HTTP %ld", status);
	if (a->status == LOOKUP_TEMP)
		printf(": %s", a->why);
	printf("\n");
	if (a->status == LOOKUP_OK) {
		if (a->backend[0] != '\0')
			printf("backend:  %s\n", a->backend);
		else
			printf("server:   %s port %u\n", a->server, a->port);
		if (a->has_user)
			printf("user:     %s (the backend hears this name)\n", a->user);
		if (a->has_pass)
			printf("password: rewritten (not shown)\n");
	} else if (a->status == LOOKUP_REFUSED && a->text[0] != '\0') {
		printf("text:     %s\n", a->text);
	}
	print_decision(cfg, pk, user, a);
	rc = a->status == LOOKUP_OK ? 0 : 1;
	lookup_answer_wipe(a);
	free(a);
	config_unref(&cfg);
	return rc;
}
