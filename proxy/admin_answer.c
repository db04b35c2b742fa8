/*
 * admin_answer.c: the admin socket's answers, composed once the workers
 * (or main, for a reload) have answered: session tables (text and JSON),
 * kick counts, backend states, reload outcomes, stats and health.  Runs on
 * the admin thread; reads only what the jobs carry, never a conn.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_impl.h"
#include "health.h"
#include "lifecycle.h"
#include "metrics.h"
#include "runtime.h"
#include "utf8.h"

/* ---- composing answers ----------------------------------------------------- */

/*
 * s as a JSON string (RFC 8259 §7): '"', '\\' and control characters
 * escaped, well-formed UTF-8 kept, and every other byte (utf8.h: an
 * overlong, a surrogate, above U+10FFFF, a stray or cut sequence) as one
 * U+FFFD each, so a client's tried name never makes the answer invalid.
 */
static void
json_str(FILE *f, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t left = strlen(s);

	fputc('"', f);
	while (left > 0) {
		size_t n = utf8_seq_len(p, left);

		if (n == 0) {
			fputs("\\ufffd", f);
			n = 1;
		} else if (n > 1) {
			fwrite(p, 1, n, f);
		} else if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
		} else {
			fputc(*p, f);
		}
		p += n;
		left -= n;
	}
	fputc('"', f);
}

/* s for one line of text: printable ASCII as it is (space too when
 * keep_space), '\\' doubled, and any other byte (control, newline, tab,
 * 8-bit) as "\\xnn", the way log_quote() shows it, so whatever a client
 * sent stays on its line.  Cut at a whole escape when buf is full. */
static const char *
text_esc(char *buf, size_t len, const char *s, bool keep_space)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (const uint8_t *p = (const uint8_t *)s; *p != '\0'; p++) {
		char esc[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
		size_t k = 4;

		if (*p == '\\') {
			k = 2;
			esc[1] = '\\';
		} else if ((*p > 0x20 || (*p == ' ' && keep_space)) && *p < 0x7f) {
			k = 1;
			esc[0] = (char)*p;
		}
		if (n + k + 1 > len)
			break;
		memcpy(buf + n, esc, k);
		n += k;
	}
	if (len > 0)
		buf[n] = '\0';
	return buf;
}

const char *
text_col(char *buf, size_t len, const char *s)
{
	text_esc(buf, len, s, false);
	return len == 0 || buf[0] == '\0' ? "-" : buf;
}

static void
iso_time(char *buf, size_t len, double t)
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The worker answer whose next record comes first (each is sorted):
 * NULL when all are written.  A few workers: a look at each is enough. */
static struct admin_job *
next_job(struct aclient *ac)
{
	struct admin_job *best = NULL;

	for (struct admin_job *j = ac->done; j != NULL; j = j->next)
		if (j->cursor < j->nrecs &&
		    (best == NULL ||
		     admin_rec_cmp(&j->recs[j->cursor], &best->recs[best->cursor]) < 0))
			best = j;
	return best;
}

static void
write_rec(struct aclient *ac, FILE *f, const struct admin_job *j, const struct session_rec *r)
{
	const char *user = j->arena + r->user, *client = j->arena + r->client,
	           *backend = j->arena + r->backend;
	char since[32], a[CREDS_USER_MAX * 4 + 1], b[ADDR_TEXT_MAX * 4],
	    c[BACKEND_NAME_MAX * 4 + 1], st[24];

	iso_time(since, sizeof(since), r->since);
	snprintf(st, sizeof(st), "%s%s", conn_state_name(r->state), r->ending ? "*" : "");
	if (ac->json) {
		fprintf(f,
		        "%s\n {\"cid\": \"%016llx\", \"proto\": \"%s\", \"state\": \"%s\", "
		        "\"ending\": %s, \"user\": ",
		        ac->rows ? "," : "", (unsigned long long)r->cid, proto_name(r->proto),
		        conn_state_name(r->state), r->ending ? "true" : "false");
		json_str(f, user);
		fputs(", \"client\": ", f);
		json_str(f, client);
		fputs(", \"backend\": ", f);
		if (backend[0])
			json_str(f, backend);
		else
			fputs("null", f);
		fprintf(f, ", \"since\": \"%s\", \"age_s\": %.0f, \"in\": %llu, \"out\": %llu}",
		        since, ac->now - r->since, (unsigned long long)r->in,
		        (unsigned long long)r->out);
	} else {
		fprintf(f,
		        "%016llx  %-5s  %-8s  %-28s  %-21s  %-8s  %-20s  %7.0fs  %10llu  "
		        "%10llu\n",
		        (unsigned long long)r->cid, proto_name(r->proto), st,
		        text_col(a, sizeof(a), user), text_col(b, sizeof(b), client),
		        text_col(c, sizeof(c), backend), since, ac->now - r->since,
		        (unsigned long long)r->in, (unsigned long long)r->out);
	}
}

/* The next ADMIN_CHUNK or so of the table, merged from the workers'
 * sorted answers as the client takes it: never the whole text at once. */
static bool
sessions_more(struct aclient *ac, FILE *f)
{
	struct admin_job *j;

	while ((j = next_job(ac)) != NULL) {
		write_rec(ac, f, j, &j->recs[j->cursor++]);
		ac->rows++;
		if (ftell(f) >= ADMIN_CHUNK)
			return true;
	}
	if (ac->json)
		fputs(ac->rows ? "\n]\n" : "]\n", f);
	else if (ac->trunc)
		fprintf(f, "(truncated: at most %d sessions per worker are listed)\n",
		        ADMIN_SESSIONS_MAX);
	return false;
}

void
answer_sessions(struct aclient *ac)
{
	FILE *f;

	ac->now = ev_time();
	ac->rows = 0;
	ac->trunc = false;
	for (struct admin_job *j = ac->done; j != NULL; j = j->next) {
		ac->trunc |= j->truncated;
		j->cursor = 0;
	}
	if ((f = ac_begin(ac)) == NULL) {
		ac_error(ac, "out of memory");
		return;
	}
	if (ac->json)
		fputs("[", f);
	else
		fprintf(f, "%-16s  %-5s  %-8s  %-28s  %-21s  %-8s  %-20s  %8s  %10s  %10s\n", "CID",
		        "PROTO", "STATE", "USER", "CLIENT", "BACKEND", "SINCE", "AGE", "IN", "OUT");
	ac_done_more(ac, f, sessions_more(ac, f) ? sessions_more : NULL);
}

static uint64_t
kicked_total(const struct aclient *ac)
{
	uint64_t n = 0;

	for (const struct admin_job *j = ac->done; j != NULL; j = j->next)
		n += j->kicked;
	return n;
}

void
answer_kick(struct aclient *ac)
{
	FILE *f = ac_begin(ac);
	uint64_t n = kicked_total(ac);

	if (f == NULL) {
		ac_error(ac, "out of memory");
		return;
	}
	if (ac->cmd == ADMIN_CMD_BACKEND) /* backend NAME maint */
		fprintf(f, "backend %s: %s, %llu session%s ending\n", ac->backend,
		        backend_admin_name(ac->set), (unsigned long long)n, n == 1 ? "" : "s");
	else
		fprintf(f, "kicked %llu session%s\n", (unsigned long long)n, n == 1 ? "" : "s");
	ac_done(ac, f);
}

/* The workers answered (or could not be asked): compose the answer. */
void
answer_jobs(struct aclient *ac)
{
	if (ac->cmd == ADMIN_CMD_SESSIONS)
		answer_sessions(ac);
	else
		answer_kick(ac);
}

void
answer_backend_list(struct aclient *ac)
{
	struct runtime *rt = runtime_get();
	FILE *f = ac_begin(ac);
	size_t n;

	if (f == NULL || rt == NULL) {
		if (f != NULL)
			fclose(f);
		runtime_unref(&rt);
		ac_error(ac, "out of memory");
		return;
	}
	if (ac->json)
		fputs("[", f);
	else
		fprintf(f, "%-16s  %-6s  %-6s  %6s  %6s  %6s  %s\n", "BACKEND", "STATE", "HEALTH",
		        "IMAP", "POP3", "SIEVE", "LAST_FAILURE");
	n = rt->cfg->nbackends + dynback_count(rt->dyn);
	for (size_t bi = 0; bi < n; bi++) {
		/* the configured backends, then those a lookup named by address */
		const struct dynback *d =
		    bi < rt->cfg->nbackends ? NULL : dynback_at(rt->dyn, bi - rt->cfg->nbackends);
		struct registry_entry *e = d != NULL ? d->reg : rt->reg[bi];
		char why[128], q[128 * 4];
		const char *name = d != NULL ? d->name : rt->cfg->backends[bi].name;
		bool up = registry_is_up(e);

		registry_last_why(e, why, sizeof(why));
		if (ac->json) {
			fprintf(f,
			        "%s\n {\"name\": \"%s\", \"state\": \"%s\", \"health\": \"%s\", "
			        "\"dynamic\": %s, \"sessions\": {\"imap\": %ld, \"pop3\": %ld, "
			        "\"sieve\": %ld}, \"last_failure\": ",
			        bi ? "," : "", name, backend_admin_name(registry_admin(e)),
			        up ? "up" : "down", d != NULL ? "true" : "false",
			        registry_sessions(e, PROTO_IMAP), registry_sessions(e, PROTO_POP3),
			        registry_sessions(e, PROTO_SIEVE));
			json_str(f, why);
			fputs("}", f);
		} else {
			/* a backend's reply may be in it: one line, escaped */
			text_esc(q, sizeof(q), why[0] ? why : "-", true);
			fprintf(f, "%-16s  %-6s  %-6s  %6ld  %6ld  %6ld  %s\n", name,
			        backend_admin_name(registry_admin(e)), up ? "up" : "down",
			        registry_sessions(e, PROTO_IMAP), registry_sessions(e, PROTO_POP3),
			        registry_sessions(e, PROTO_SIEVE), q);
		}
	}
	if (ac->json)
		fputs(n ? "\n]\n" : "]\n", f);
	runtime_unref(&rt);
	ac_done(ac, f);
}

void
answer_reload(struct aclient *ac, bool ok, const char *report)
{
	FILE *f;

	if (!ok) {
		/* one line: the report's lines joined */
		char text[1024];
		size_t n = 0;

		for (const char *p = report ? report : "reload failed"; *p && n + 3 < sizeof(text);
		     p++) {
			if (*p == '\n') {
				if (p[1] != '\0' && n > 0) {
					text[n++] = ';';
					text[n++] = ' ';
				}
			} else {
				text[n++] = *p;
			}
		}
		text[n] = '\0';
		ac_error(ac, "reload failed, the running configuration stays: %s", text);
		return;
	}
	if ((f = ac_begin(ac)) == NULL) {
		ac_error(ac, "out of memory");
		return;
	}
	{
		struct runtime *rt = runtime_get();
		fprintf(f, "reloaded: generation %u\n", rt ? rt->generation : 0);
		runtime_unref(&rt);
	}
	ac_done(ac, f);
}

void
answer_stats(struct aclient *ac)
{
	FILE *f = ac_begin(ac);

	if (f == NULL) {
		ac_error(ac, "out of memory");
		return;
	}
	if (metrics_write(f, false) < 0) {
		fclose(f);
		ac_error(ac, "cannot read the counters");
		return;
	}
	ac_done(ac, f);
}

void
answer_health(struct aclient *ac)
{
	FILE *f;

	if (lifecycle_draining()) {
		ac_error(ac, "draining: not accepting connections");
		return;
	}
	if (!health_any_up()) {
		ac_error(ac, "no backend is up");
		return;
	}
	if ((f = ac_begin(ac)) == NULL) {
		ac_error(ac, "out of memory");
		return;
	}
	fputs("ok\n", f);
	metrics_state_line(f,
	                   false); /* the store does not decide health: logins go on without it */
	ac_done(ac, f);
}
