/*
 * admin_request.c: one admin request line -> its entry in the command table
 * (admin_cmd.h) and the server's handlers: the words and their %XX
 * escapes, the session filters, and the commands that act at once (backend
 * states).  Runs on the admin thread; asks the workers and main only
 * through admin.c, and never reads a conn.
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

void
admin_serve_backend(struct aclient *ac, char **args, int nargs)
{
	struct runtime *rt;
	struct registry_entry *e = NULL;

	if (nargs >= 1 && strcmp(args[0], "list") == 0) {
		if (nargs > 2 || (nargs == 2 && strcmp(args[1], "json") != 0)) {
			ac_error(ac, "usage: backend list [json]");
			return;
		}
		ac->json = nargs == 2;
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
	/* a backend a lookup named by address, by its "ADDRESS:PORT" */
	for (size_t i = 0; rt != NULL && e == NULL && i < dynback_count(rt->dyn); i++)
		if (strcmp(dynback_at(rt->dyn, i)->name, args[0]) == 0)
			e = dynback_at(rt->dyn, i)->reg;
	runtime_unref(&rt);
	if (e == NULL) {
		ac_error(ac, "no backend named \"%.64s\"", args[0]);
		return;
	}
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
		long n = registry_sessions(e, PROTO_IMAP) + registry_sessions(e, PROTO_POP3) +
		         registry_sessions(e, PROTO_SIEVE);
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

void
admin_serve_sessions(struct aclient *ac, char **args, int nargs)
{
	if (parse_filter(ac, args, nargs, true) == 0)
		admin_ask_workers(ac, JOB_LIST);
}

void
admin_serve_kick(struct aclient *ac, char **args, int nargs)
{
	if (parse_filter(ac, args, nargs, false) < 0)
		return;
	if (!ac->f.user_set && !ac->f.backend_set && !ac->f.client_set) {
		ac_error(ac, "kick needs user=, backend= or client=");
		return;
	}
	admin_ask_workers(ac, JOB_KICK);
}

void
admin_serve_reload(struct aclient *ac, char **args, int nargs)
{
	(void)args;
	(void)nargs;
	admin_ask_reload(ac);
}

void
admin_serve_stats(struct aclient *ac, char **args, int nargs)
{
	(void)args;
	(void)nargs;
	answer_stats(ac);
}

void
admin_serve_health(struct aclient *ac, char **args, int nargs)
{
	(void)args;
	(void)nargs;
	answer_health(ac);
}

/* "sessions, kick, ...": the words the socket serves, for an empty request. */
static void
served_words(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ADMIN_CMD__COUNT; i++) {
		int k;

		if (admin_cmds[i].serve == NULL)
			continue;
		k = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", admin_cmds[i].name);
		if (k < 0 || (size_t)k >= len - n)
			return;
		n += (size_t)k;
	}
}

enum admin_parse
admin_request_parse(char *line, struct admin_parsed *p)
{
	char *save = NULL;

	memset(p, 0, sizeof(*p));
	for (char *c = line; *c; c++) {
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
			p->bad_byte = (unsigned char)*c;
			return ADMIN_PARSE_BAD_BYTE;
		}
	}
	p->word = strtok_r(line, " ", &save);
	if (p->word == NULL)
		return ADMIN_PARSE_EMPTY;
	for (char *a; (a = strtok_r(NULL, " ", &save)) != NULL;) {
		if (p->nargs == ADMIN_ARGS_MAX)
			return ADMIN_PARSE_TOO_MANY;
		if (unescape(a) < 0)
			return ADMIN_PARSE_BAD_ESCAPE;
		p->args[p->nargs++] = a;
	}
	/* Only the socket's commands: lock and route are the store's. */
	if ((p->cmd = admin_cmd_find(p->word)) == NULL || p->cmd->serve == NULL) {
		p->cmd = NULL;
		return ADMIN_PARSE_UNKNOWN;
	}
	if ((p->cmd->flags & ADMIN_CMD_NO_ARGS) && p->nargs > 0)
		return ADMIN_PARSE_NO_ARGS;
	return ADMIN_PARSE_OK;
}

/* One complete request line (without its newline). */
void
admin_request(struct aclient *ac, char *line)
{
	struct admin_parsed p;
	enum admin_parse rc = admin_request_parse(line, &p);
	char q[64], words[128];

	switch (rc) {
	case ADMIN_PARSE_BAD_BYTE:
		ac_error(ac, "bad request: byte 0x%02x (send one line of printable words)",
		         p.bad_byte);
		return;
	case ADMIN_PARSE_EMPTY:
		served_words(words, sizeof(words));
		ac_error(ac, "empty request (try: %s)", words);
		return;
	case ADMIN_PARSE_TOO_MANY:
		ac_error(ac, "too many arguments");
		return;
	case ADMIN_PARSE_BAD_ESCAPE:
		ac_error(ac, "bad %%-escape in an argument");
		return;
	case ADMIN_PARSE_OK:
	case ADMIN_PARSE_UNKNOWN:
	case ADMIN_PARSE_NO_ARGS:
		break;
	}
	log_kv(LOG_INFO, "admin.request", "command=%.16s args=%d", p.word, p.nargs);
	if (rc == ADMIN_PARSE_UNKNOWN) {
		ac_error(ac, "unknown command \"%s\"", text_col(q, sizeof(q), p.word));
		return;
	}
	if (rc == ADMIN_PARSE_NO_ARGS) {
		ac_error(ac, "%s takes no arguments", p.cmd->name);
		return;
	}
	ac->cmd = p.cmd->id;
	p.cmd->serve(ac, p.args, p.nargs);
}
