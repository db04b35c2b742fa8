/*
 * admin_impl.h: what the admin socket's files share and nobody else: the
 * server (admin.c), its requests (admin_request.c), its answers
 * (admin_answer.c), its jobs on the workers (admin_worker.c), the command
 * line (admin_client.c) and the command table (admin_cmd.c): the limits, a
 * client and its request, the jobs workers answer, the table's handlers.
 */
#ifndef POSTERN_ADMIN_IMPL_H
#define POSTERN_ADMIN_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <ev.h>

#include "admin.h"
#include "admin_cmd.h"
#include "conn.h"
#include "registry.h"
#include "worker.h"

#define ADMIN_CLIENTS_MAX    16
#define ADMIN_LISTEN_BACKLOG 16
#define ADMIN_READ_SECONDS   5.0    /* to send the request line */
#define ADMIN_WAIT_SECONDS   10.0   /* for the workers' answers */
#define ADMIN_RELOAD_SECONDS 120.0  /* for a reload (certificates, route maps) */
#define ADMIN_WRITE_SECONDS  10.0   /* to take the answer */
#define ADMIN_LINGER_SECONDS 1.0    /* after it, for the client to close first */
#define ADMIN_SESSIONS_MAX   100000 /* sessions listed per worker */
#define ADMIN_ARGS_MAX       8
#define BACKEND_NAME_MAX     64

struct filter {
	bool user_set, backend_set, client_set;
	char user[CREDS_USER_MAX + 1];
	char backend[BACKEND_NAME_MAX + 1];
	struct cidr_conf client;
};

#define ADMIN_CHUNK (64 * 1024) /* a long answer is made this much at a time */

/* One session of a sessions answer; its strings are in the job's arena. */
struct session_rec {
	uint64_t cid;
	double since; /* wall clock, seconds since the epoch */
	uint64_t in, out;
	uint32_t user, client, backend; /* offsets of NUL-terminated strings in job->arena */
	enum proto_kind proto;
	enum conn_state state;
	bool ending;
};

enum job_kind { JOB_LIST, JOB_KICK };

struct aclient;

/* One question to one worker, and its answer. */
struct admin_job {
	struct worker_job wj; /* embedded: the mailbox holds it; run: admin_job_run */
	enum job_kind kind;
	struct filter f;
	struct aclient *ac;       /* borrowed: the client waiting for it */
	struct session_rec *recs; /* owned: JOB_LIST's answer, in (since, cid) order */
	size_t nrecs, cap;
	char *arena; /* owned: the records' strings */
	size_t arena_len, arena_cap;
	size_t cursor; /* the next record to write (admin thread) */
	bool truncated;
	uint64_t kicked;        /* JOB_KICK's answer */
	struct admin_job *next; /* in adm.answers, then in ac->done */
};

enum ac_state { AC_READ, AC_WAIT, AC_WRITE, AC_LINGER, AC_GONE };

struct aclient {
	int fd;
	ev_io io;
	ev_timer timer;
	enum ac_state st;
	char in[ADMIN_REQUEST_MAX];
	size_t inlen;
	char *out; /* owned: the answer, or its part made so far */
	size_t outlen, outoff;
	/* A long answer: writes its next part (about ADMIN_CHUNK bytes) to f
	 * once out is sent; false when that was the last. */
	bool (*more)(struct aclient *ac, FILE *f);
	double now;  /* the answer's moment (ages) */
	size_t rows; /* sessions written so far */
	bool trunc;  /* a worker listed only ADMIN_SESSIONS_MAX */
	/* the request */
	enum admin_cmd cmd;
	bool json;
	struct filter f;
	char backend[BACKEND_NAME_MAX + 1];
	enum backend_admin set;
	/* waiting */
	int pending;            /* jobs out at workers */
	struct admin_job *done; /* owned: answered jobs */
	bool reload_wait;
	uint64_t reload_token;
	struct aclient *next, *prev;
};

/* Open ac's answer: the caller writes the body, then ac_done().  NULL
 * when out of memory. */
FILE *ac_begin(struct aclient *ac);
/* Finish ac with the answer written to f ("OK" and a body; f is closed). */
void ac_done(struct aclient *ac, FILE *f);
/* Likewise, but more (when not NULL) writes the rest, a part at a time as
 * the client takes them (ac->more). */
void ac_done_more(struct aclient *ac, FILE *f, bool (*more)(struct aclient *ac, FILE *f));
/* Finish ac with one "ERR ..." line. */
void ac_error(struct aclient *ac, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A job of kind with filter f for ac (NULL: nobody waits, a kick from the
 * fleet), to post to one worker.  NULL when out of memory; the caller
 * frees it with admin_job_free() unless a worker took it. */
struct admin_job *admin_job_new(enum job_kind kind, const struct filter *f, struct aclient *ac);
void admin_job_free(struct admin_job **jobp);
/* qsort() order of session records: oldest first, then by cid. */
int admin_rec_cmp(const void *a, const void *b);
/* On w's thread (from its mailbox): do the job on w's conns, then hand it
 * back to the admin thread (admin_job_answered) or, nobody waiting, free
 * it (admin_worker.c). */
void admin_job_run(struct worker *w, struct worker_job *wj);
/* From a worker's thread: job is answered; the admin thread takes it over
 * (admin.c). */
void admin_job_answered(struct admin_job *job);

/* Ask every worker (a job of kind with ac's filter); the answer is composed
 * once the last one replies, or at ADMIN_WAIT_SECONDS.  Answers ac itself. */
void admin_ask_workers(struct aclient *ac, enum job_kind kind);
/* Ask main for a reload (SIGHUP); ac waits for admin_reload_done(). */
void admin_ask_reload(struct aclient *ac);

/* One complete request line (without its newline), parsed in place: runs
 * its command's serve handler, which answers ac now or once the workers
 * have (admin_request.c). */
void admin_request(struct aclient *ac, char *line);

/* What admin_request_parse() found in a line. */
enum admin_parse {
	ADMIN_PARSE_OK,         /* cmd and args set */
	ADMIN_PARSE_BAD_BYTE,   /* bad_byte set: not printable ASCII */
	ADMIN_PARSE_EMPTY,      /* no word */
	ADMIN_PARSE_TOO_MANY,   /* more than ADMIN_ARGS_MAX arguments */
	ADMIN_PARSE_BAD_ESCAPE, /* a bad %XX, or %00 */
	ADMIN_PARSE_UNKNOWN,    /* word is no command the socket serves */
	ADMIN_PARSE_NO_ARGS,    /* cmd takes no arguments but has some */
};

struct admin_parsed {
	const struct admin_cmd_def *cmd; /* borrowed: the table's entry */
	char *word;                      /* the first word, in the line */
	char *args[ADMIN_ARGS_MAX + 1];  /* in the line, %XX undone */
	int nargs;
	unsigned char bad_byte;
};

/* Split line (changed in place) into its command's table entry and its
 * arguments.  Pure: no answer, no log; p points into line. */
enum admin_parse admin_request_parse(char *line, struct admin_parsed *p);

/* The table's server handlers (admin_cmd.h, admin_request.c). */
void admin_serve_sessions(struct aclient *ac, char **args, int nargs);
void admin_serve_kick(struct aclient *ac, char **args, int nargs);
void admin_serve_backend(struct aclient *ac, char **args, int nargs);
void admin_serve_reload(struct aclient *ac, char **args, int nargs);
void admin_serve_stats(struct aclient *ac, char **args, int nargs);
void admin_serve_health(struct aclient *ac, char **args, int nargs);

/* The table's command-line handlers (admin_cmd.h, admin_client.c): on the
 * store, on the fleet, kick (the fleet or the socket), on the socket; and
 * the request lines the socket commands send. */
int admin_cli_store(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv);
int admin_cli_fleet(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv);
int admin_cli_kick(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv);
int admin_cli_socket(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv);
/* lookup USER ...: the lookup service asked by this process (admin_lookup.c). */
int admin_cli_lookup(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv);
int admin_req_sessions(int argc, char **argv, char *req, size_t len, FILE *err);
int admin_req_kick(int argc, char **argv, char *req, size_t len, FILE *err);
int admin_req_backend(int argc, char **argv, char *req, size_t len, FILE *err);
int admin_req_none(int argc, char **argv, char *req, size_t len, FILE *err);

/* The answers, once everything they wait for is in (admin_answer.c).  Each
 * finishes ac with ac_done() or ac_error(). */
void answer_sessions(struct aclient *ac);
void answer_kick(struct aclient *ac);
void answer_jobs(struct aclient *ac);
void answer_backend_list(struct aclient *ac);
void answer_reload(struct aclient *ac, bool ok, const char *report);
void answer_stats(struct aclient *ac);
void answer_health(struct aclient *ac);
/* s for a text column, in buf: printable ASCII, '\\' doubled, any other
 * byte (space, control, 8-bit) as "\\xnn"; cut at a whole escape to fit
 * len (4 * strlen(s) + 1 holds all).  Returns buf, or "-" when empty. */
const char *text_col(char *buf, size_t len, const char *s);

#endif
