/*
 * admin_worker.c: the admin's jobs, and the part of them that runs on a
 * worker's thread (from its mailbox): list or kick that worker's conns
 * that match a filter, then hand the job back to the admin thread.  The
 * only admin code that reads a conn; it never touches the admin's clients.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acl.h"
#include "conn.h"
#include "log.h"
#include "worker.h"

#include "admin_impl.h"

struct admin_job *
admin_job_new(enum job_kind kind, const struct filter *f, struct aclient *ac)
{
	struct admin_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->wj.run = admin_job_run;
	job->kind = kind;
	job->f = *f;
	job->ac = ac;
	return job;
}

void
admin_job_free(struct admin_job **jobp)
{
	struct admin_job *job = *jobp;

	if (job == NULL)
		return;
	free(job->recs);
	free(job->arena);
	free(job);
	*jobp = NULL;
}

/* ---- on a worker's thread ------------------------------------------------ */

static bool
filter_match(const struct filter *f, const struct conn *c)
{
	if (f->user_set && strcasecmp(c->user, f->user) != 0)
		return false;
	if (f->backend_set && (c->backend_name == NULL || strcmp(c->backend_name, f->backend) != 0))
		return false;
	if (f->client_set) {
		struct acl_addr a;
		if (acl_addr_from_sockaddr((const struct sockaddr *)&c->client_sa,
		                           sizeof(c->client_sa), &a) < 0 ||
		    !acl_match(&f->client, &a))
			return false;
	}
	return true;
}

/* s, with its NUL, at the end of job's arena: its offset there.  false
 * when out of memory. */
static bool
job_str(struct admin_job *job, const char *s, uint32_t *off_out)
{
	size_t n = strlen(s) + 1;

	if (job->arena_len + n > job->arena_cap) {
		size_t ncap = job->arena_cap ? job->arena_cap * 2 : 4096;
		char *na;

		while (ncap < job->arena_len + n)
			ncap *= 2;
		if (ncap > UINT32_MAX || (na = realloc(job->arena, ncap)) == NULL)
			return false;
		job->arena = na;
		job->arena_cap = ncap;
	}
	memcpy(job->arena + job->arena_len, s, n);
	*off_out = (uint32_t)job->arena_len;
	job->arena_len += n;
	return true;
}

static void
job_list_add(struct admin_job *job, const struct conn *c)
{
	struct session_rec *r;
	uint32_t user, client, backend;

	if (job->nrecs == job->cap) {
		size_t ncap = job->cap ? job->cap * 2 : 64;
		struct session_rec *nr;

		if (ncap > ADMIN_SESSIONS_MAX)
			ncap = ADMIN_SESSIONS_MAX;
		if (ncap == job->cap || (nr = realloc(job->recs, ncap * sizeof(*nr))) == NULL) {
			job->truncated = true;
			return;
		}
		job->recs = nr;
		job->cap = ncap;
	}
	if (!job_str(job, c->user, &user) || !job_str(job, c->peer, &client) ||
	    !job_str(job, c->backend_name ? c->backend_name : "", &backend)) {
		job->truncated = true;
		return;
	}
	r = &job->recs[job->nrecs++];
	memset(r, 0, sizeof(*r));
	r->cid = c->id;
	r->proto = c->lc->proto;
	r->state = c->state;
	r->ending = c->ending;
	r->since = c->started;
	r->in = c->bytes_in + c->relay.up_bytes;
	r->out = c->bytes_out + c->relay.down_bytes;
	r->user = user;
	r->client = client;
	r->backend = backend;
}

int
admin_rec_cmp(const void *a, const void *b)
{
	const struct session_rec *x = a, *y = b;

	if (x->since != y->since)
		return x->since < y->since ? -1 : 1;
	return x->cid < y->cid ? -1 : x->cid > y->cid;
}

/* Where a job's walk goes: a user's chain, a backend's, or every conn. */
enum job_walk { WALK_USER, WALK_BACKEND, WALK_ALL };

static struct conn *
walk_first(struct worker *w, const struct filter *f, enum job_walk *how_out)
{
	if (f->user_set) {
		*how_out = WALK_USER;
		return conn_index_first(&w->by_user, f->user);
	}
	if (f->backend_set) {
		*how_out = WALK_BACKEND;
		return conn_index_first(&w->by_backend, f->backend);
	}
	*how_out = WALK_ALL;
	return w->conns;
}

static struct conn *
walk_next(struct worker *w, enum job_walk how, const struct conn *c)
{
	switch (how) {
	case WALK_USER:
		return conn_index_next(&w->by_user, c);
	case WALK_BACKEND:
		return conn_index_next(&w->by_backend, c);
	case WALK_ALL:
		break;
	}
	return c->next;
}

void
admin_job_run(struct worker *w, struct worker_job *wj)
{
	struct admin_job *job = container_of(wj, struct admin_job, wj);
	struct conn *next;
	enum job_walk how;
	uint64_t visited = 0;

	/* A user's or a backend's chain holds all its conns (and perhaps some
	 * of a name that hashes alike): the full filter still decides. */
	for (struct conn *c = walk_first(w, &job->f, &how); c != NULL; c = next) {
		next = walk_next(w, how, c); /* a kicked c may be closed (unlinked) at once */
		visited++;
		if (c->closed || !filter_match(&job->f, c))
			continue;
		if (job->kind == JOB_LIST) {
			job_list_add(job, c);
		} else if (c->state != CS_CLOSING) {
			job->kicked++;
			conn_end_politely(c, CLOSE_KICKED, 0,
			                  (double)c->cfg->timeouts.drain_ms / 1000.0);
		}
	}
	metrics_admin_visited(&w->metrics, visited);
	/* In the answer's order: the admin thread merges the workers' lists
	 * as it writes, without a copy of them all. */
	if (job->nrecs > 1)
		qsort(job->recs, job->nrecs, sizeof(job->recs[0]), admin_rec_cmp);
	if (job->ac == NULL) {
		/* A kick from the fleet's channel: nobody waits for the count. */
		char qu[LOG_QUOTED_MAX];
		if (job->kicked > 0)
			log_kv(LOG_INFO, "fleet.kicked", "worker=%d user=%s sessions=%llu", w->id,
			       log_quote(qu, sizeof(qu), job->f.user, strlen(job->f.user)),
			       (unsigned long long)job->kicked);
		admin_job_free(&job);
		return;
	}
	admin_job_answered(job); /* back to the admin thread */
}
