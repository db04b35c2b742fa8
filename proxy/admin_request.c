/*
 * admin_request.c: one admin request line -> a command: the words and their
 * %XX escapes, the session filters, and the commands that act at once
 * (backend states).  Runs on the admin thread; asks the workers and main
 * only through admin.c, and never reads a conn.
 */
#include <stdio.h>
#include <string.h>

#include "admin_impl.h"
#include "log.h"
#include "registry.h"
#include "runtime.h"

/* Undo the client's %XX escapes in place.  -1 on a bad escape or a NUL. */
static int
unescape(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (*p != '%') {
			*o++ = *p;
			continue;
		}
		unsigned v = 0;
		for (int i = 1; i <= 2; i++) {
			char h = p[i];
			v <<= 4;
			if (h >= '0' && h <= '9')
				v |= (unsigned)(h - '0');
			else if (h >= 'a' && h <= 'f')
				v |= (unsigned)(h - 'a' + 10);
			else if (h >= 'A' && h <= 'F')
				v |= (unsigned)(h - 'A' + 10);
			else
				return -1;
		}
		if (v == 0)
			return -1;
		*o++ = (char)v;
		p += 2;
	}
	*o = '\0';
	return 0;
}

/* key=value words into f (and "json").  -1 after answering an error. */
static int
parse_filter(struct aclient *ac, char **args, int nargs, bool json_ok)
{
	for (int i = 0; i < nargs; i++) {
		char *a = args[i], *v = strchr(a, '=');
		const char *err = NULL;

		if (json_ok && strcmp(a, "json") == 0) {
			ac->json = true;
			continue;
		}
		if (v == NULL) {
			ac_error(ac, "unknown argument \"%.40s\"", a);
			return -1;
		}
		*v++ = '\0';
		if (strcmp(a, "user") == 0 && *v && strlen(v) <= CREDS_USER_MAX) {
			snprintf(ac->f.user, sizeof(ac->f.user), "%s", v);
			ac->f.user_set = true;
		} else if (strcmp(a, "backend") == 0 && *v && strlen(v) <= BACKEND_NAME_MAX) {
			snprintf(ac->f.backend, sizeof(ac->f.backend), "%s", v);
			ac->f.backend_set = true;
		} else if (strcmp(a, "client") == 0) {
			if (config_parse_cidr(v, &ac->f.client, &err) < 0) {
				ac_error(ac, "client=%.60s: %s", v, err);
				return -1;
			}
			ac->f.client_set = true;
		} else {
			ac_error(ac, "bad argument \"%.40s\"", a);
			return -1;
		}
	}
	return 0;
}

static void
cmd_backend(struct aclient *ac, char **args, int nargs)
{
	struct runtime *rt;
	struct registry_entry *e = NULL;

	if (nargs >= 1 && strcmp(args[0], "list") == 0) {
		if (nargs > 2 || (nargs == 2 && strcmp(args[1], "json") != 0)) {
			ac_error(ac, "usage: backend list [json]");
			return;
		}
		ac->json = nargs == 2;
		ac->cmd = CMD_BACKEND_LIST;
		answer_backend_list(ac);
		return;
	}
	if (nargs != 2 || (ac->set = backend_admin_parse(args[1])) == BACKEND__COUNT) {
		ac_error(ac, "usage: backend list | backend NAME drain|maint|ready");
		return;
	}
	rt = runtime_get();
	for (size_t bi = 0; rt != NULL && bi < rt->cfg->nbackends; bi++)
		if (strcmp(rt->cfg->backends[bi].name, args[0]) == 0)
			e = rt->reg[bi];
	runtime_unref(&rt);
	if (e == NULL) {
		ac_error(ac, "no backend named \"%.64s\"", args[0]);
		return;
	}
	ac->cmd = CMD_BACKEND_SET;
	snprintf(ac->backend, sizeof(ac->backend), "%s", args[0]);
	registry_set_admin(e, ac->set);
	if (ac->set == BACKEND_MAINT) {
		/* maint: no new logins (set above, first), then end what is there. */
		memset(&ac->f, 0, sizeof(ac->f));
		ac->f.backend_set = true;
		snprintf(ac->f.backend, sizeof(ac->f.backend), "%s", ac->backend);
		admin_ask_workers(ac, JOB_KICK);
		return;
	}
	{
		FILE *f = ac_begin(ac);
		long n = registry_sessions(e, PROTO_IMAP) + registry_sessions(e, PROTO_POP3);
		if (f == NULL) {
			ac_error(ac, "out of memory");
			return;
		}
		fprintf(f, "backend %s: %s, %ld session%s %s\n", ac->backend,
		        backend_admin_name(ac->set), n, n == 1 ? "" : "s",
		        ac->set == BACKEND_DRAIN ? "stay" : "open");
		ac_done(ac, f);
	}
}

/* One complete request line (without its newline). */
void
admin_request(struct aclient *ac, char *line)
{
	char *args[ADMIN_ARGS_MAX + 1], *save = NULL, *cmd;
	int nargs = 0;

	for (char *p = line; *p; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			ac_error(ac, "bad request: byte 0x%02x (send one line of printable words)",
			         (unsigned char)*p);
			return;
		}
	}
	cmd = strtok_r(line, " ", &save);
	if (cmd == NULL) {
		ac_error(ac, "empty request (try: sessions, kick, backend, reload, stats, health)");
		return;
	}
	for (char *a; (a = strtok_r(NULL, " ", &save)) != NULL;) {
		if (nargs == ADMIN_ARGS_MAX) {
			ac_error(ac, "too many arguments");
			return;
		}
		if (unescape(a) < 0) {
			ac_error(ac, "bad %%-escape in an argument");
			return;
		}
		args[nargs++] = a;
	}
	log_kv(LOG_INFO, "admin.request", "command=%.16s args=%d", cmd, nargs);
	if (strcmp(cmd, "sessions") == 0) {
		ac->cmd = CMD_SESSIONS;
		if (parse_filter(ac, args, nargs, true) == 0)
			admin_ask_workers(ac, JOB_LIST);
	} else if (strcmp(cmd, "kick") == 0) {
		ac->cmd = CMD_KICK;
		if (parse_filter(ac, args, nargs, false) < 0)
			return;
		if (!ac->f.user_set && !ac->f.backend_set && !ac->f.client_set) {
			ac_error(ac, "kick needs user=, backend= or client=");
			return;
		}
		admin_ask_workers(ac, JOB_KICK);
	} else if (strcmp(cmd, "backend") == 0) {
		cmd_backend(ac, args, nargs);
	} else if (nargs > 0 && (strcmp(cmd, "reload") == 0 || strcmp(cmd, "stats") == 0 ||
	                         strcmp(cmd, "health") == 0)) {
		ac_error(ac, "%s takes no arguments", cmd);
	} else if (strcmp(cmd, "reload") == 0) {
		admin_cmd_reload(ac);
	} else if (strcmp(cmd, "stats") == 0) {
		ac->cmd = CMD_STATS;
		answer_stats(ac);
	} else if (strcmp(cmd, "health") == 0) {
		ac->cmd = CMD_HEALTH;
		answer_health(ac);
	} else {
		char q[64];
		ac_error(ac, "unknown command \"%s\"", text_col(q, sizeof(q), cmd));
	}
}
