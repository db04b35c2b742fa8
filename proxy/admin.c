/*
 * admin.c: the admin socket's server (see admin.h).  One thread, one libev
 * loop, at most ADMIN_CLIENTS_MAX clients; each sends one request line
 * within ADMIN_READ_SECONDS and gets one answer ("OK" and a body, or one
 * "ERR ..." line), written without blocking within ADMIN_WRITE_SECONDS.
 * Workers are asked through their mailboxes and answer through ours; this
 * file never reads a conn (admin_worker.c does, on the conn's own worker).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "admin.h"
#include "conn.h"
#include "health.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

#include "admin_impl.h"

static struct {
	pthread_t thread, main_thread;
	struct ev_loop *loop;
	ev_io accept_io;
	ev_async wake; /* answers or a reload outcome came */
	ev_async stop;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct worker *workers; /* borrowed */
	size_t nworkers;
	struct aclient *clients;
	size_t nclients;
	bool running;

	pthread_mutex_t lock; /* the fields below: any thread */
	struct admin_job *answers;
	uint64_t reload_asked; /* the last token handed to a request */
	uint64_t reload_done;  /* requests up to this token have an outcome */
	bool reload_ok;
	char *reload_report; /* owned */
} adm = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- binding --------------------------------------------------------------- */

/* The socket file admin_bind() made, so that admin_stop() removes it only
 * while the path still names it (a newer postern may have taken it over). */
static struct {
	dev_t dev;
	ino_t ino;
	bool set;
} bound;

int
admin_bind(const char *path, uid_t uid, gid_t gid, const char **err_out)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char tmp[sizeof(sun.sun_path)];
	bool live = false;
	struct stat st;
	mode_t old;
	int fd, rc, saved, n;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		*err_out = "path too long";
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err_out = "socket";
		return -1;
	}
	/* Something there already: a live postern's socket, or a stale one. */
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			*err_out = "exists and is not a socket";
			errno = EEXIST;
			goto fail;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		live = probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0;
		if (probe >= 0)
			close(probe);
	}
	/*
	 * Bound under a name of its own, then renamed over path in one step: an
	 * upgrade (a new postern started beside the running one, which is then
	 * sent SIGTERM) takes the path over without a moment when nobody
	 * answers there; the old process keeps its own socket until it exits.
	 */
	n = snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		if (live) {
			*err_out = "in use by a running postern (path too long to take it over)";
			errno = EADDRINUSE;
			goto fail;
		}
		snprintf(tmp, sizeof(tmp), "%s", path);
	}
	(void)unlink(tmp);
	memcpy(sun.sun_path, tmp, strlen(tmp) + 1);
	/* 0600 from the start: no moment when others could connect. */
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0) {
		*err_out = "bind";
		goto fail;
	}
	if (chmod(tmp, 0600) < 0 || (uid != (uid_t)-1 && chown(tmp, uid, gid) < 0)) {
		*err_out = "chmod/chown";
		goto fail_unlink;
	}
	if (listen(fd, ADMIN_LISTEN_BACKLOG) < 0) {
		*err_out = "listen";
		goto fail_unlink;
	}
	if (strcmp(tmp, path) != 0 && rename(tmp, path) < 0) {
		*err_out = "rename";
		goto fail_unlink;
	}
	if (lstat(path, &st) == 0) {
		bound.dev = st.st_dev;
		bound.ino = st.st_ino;
		bound.set = true;
	}
	if (live)
		log_kv(LOG_INFO, "admin.socket_taken_over", "path=\"%s\"", path);
	return fd;
fail_unlink:
	saved = errno;
	(void)unlink(tmp);
	errno = saved;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* ---- a worker's answer: from its thread to ours -------------------------- */

void
admin_job_answered(struct admin_job *job)
{
	/* The loop send is under the lock so that admin_stop() cannot destroy
	 * the loop in between. */
	pthread_mutex_lock(&adm.lock);
	job->next = adm.answers;
	adm.answers = job;
	if (adm.running)
		ev_async_send(adm.loop, &adm.wake);
	pthread_mutex_unlock(&adm.lock);
}

void
admin_attach_workers(struct worker *workers, size_t nworkers)
{
	adm.workers = workers;
	adm.nworkers = nworkers;
}

/*
 * The fleet's kick (policy_set_kick(), registered by main): a `kick --user` or `route set --kick`
 * on any proxy sharing the store reaches this one through the store's channel, on the loop of the
 * worker that holds it.  Every worker ends the user's sessions the way the admin socket's kick does
 * (reason=kicked).
 */
void
admin_kick_local(void *arg, const char *user)
{
	(void)arg;
	for (size_t i = 0; i < adm.nworkers; i++) {
		struct admin_job *job = calloc(1, sizeof(*job));

		if (job == NULL)
			continue;
		job->wj.run = admin_job_run;
		job->kind = JOB_KICK;
		job->f.user_set = true;
		snprintf(job->f.user, sizeof(job->f.user), "%s", user);
		if (worker_post(&adm.workers[i], &job->wj) < 0)
			admin_job_free(&job);
	}
}

/* ---- main's thread: reloads ------------------------------------------------ */

uint64_t
admin_reload_begin(void)
{
	uint64_t t;

	pthread_mutex_lock(&adm.lock);
	t = adm.reload_asked;
	pthread_mutex_unlock(&adm.lock);
	return t;
}

void
admin_reload_done(uint64_t token, bool ok, const char *report)
{
	pthread_mutex_lock(&adm.lock);
	if (adm.running && token > adm.reload_done) {
		adm.reload_done = token;
		adm.reload_ok = ok;
		free(adm.reload_report);
		adm.reload_report = report != NULL ? strdup(report) : NULL;
		ev_async_send(adm.loop, &adm.wake);
	}
	pthread_mutex_unlock(&adm.lock);
}

/* ---- the admin thread: clients --------------------------------------------- */

static void ac_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void ac_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

static void
ac_free(struct aclient *ac)
{
	while (ac->done != NULL) {
		struct admin_job *j = ac->done;
		ac->done = j->next;
		admin_job_free(&j);
	}
	if (ac->prev != NULL)
		ac->prev->next = ac->next;
	else
		adm.clients = ac->next;
	if (ac->next != NULL)
		ac->next->prev = ac->prev;
	adm.nclients--;
	free(ac->out);
	free(ac);
}

/* The client is done with: close it; free it once nothing refers to it. */
static void
ac_close(struct aclient *ac)
{
	ev_io_stop(adm.loop, &ac->io);
	ev_timer_stop(adm.loop, &ac->timer);
	if (ac->fd >= 0)
		close(ac->fd);
	ac->fd = -1;
	ac->st = AC_GONE;
	if (ac->pending == 0 && !ac->reload_wait)
		ac_free(ac);
}

static void
ac_arm(struct aclient *ac, double seconds)
{
	ev_timer_stop(adm.loop, &ac->timer);
	ev_timer_set(&ac->timer, seconds, 0.);
	ev_timer_start(adm.loop, &ac->timer);
}

/* Start writing the answer in ac->out. */
static void
ac_send(struct aclient *ac)
{
	ac->st = AC_WRITE;
	ac->outoff = 0;
	ac_arm(ac, ADMIN_WRITE_SECONDS);
	ev_io_stop(adm.loop, &ac->io);
	ev_io_set(&ac->io, ac->fd, EV_WRITE);
	ev_io_start(adm.loop, &ac->io);
}

/* One line of refusal: "ERR " and the text, printable and bounded. */
void ac_error(struct aclient *ac, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void
ac_error(struct aclient *ac, const char *fmt, ...)
{
	char text[1200];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	free(ac->out);
	ac->more = NULL;
	n = strlen(text) + 6;
	ac->out = malloc(n);
	if (ac->out == NULL) {
		ac_close(ac);
		return;
	}
	ac->outlen = (size_t)snprintf(ac->out, n, "ERR %s\n", text);
	ac_send(ac);
}

/* Open the answer: the caller writes the body to the stream, then ac_done(). */
FILE *
ac_begin(struct aclient *ac)
{
	FILE *f;

	free(ac->out);
	ac->out = NULL;
	ac->outlen = 0;
	f = open_memstream(&ac->out, &ac->outlen);
	if (f != NULL)
		fputs("OK\n", f);
	return f;
}

void
ac_done_more(struct aclient *ac, FILE *f, bool (*more)(struct aclient *ac, FILE *f))
{
	if (f == NULL || ferror(f)) {
		if (f != NULL)
			fclose(f);
		ac_error(ac, "out of memory");
		return;
	}
	fclose(f);
	ac->more = more;
	ac_send(ac);
}

void
ac_done(struct aclient *ac, FILE *f)
{
	ac_done_more(ac, f, NULL);
}

/* The part of a long answer sent: make the next one in ac->out.  -1 when
 * out of memory (the answer, begun, cannot turn into an ERR). */
static int
ac_refill(struct aclient *ac)
{
	FILE *f;
	bool more;

	free(ac->out);
	ac->out = NULL;
	ac->outlen = ac->outoff = 0;
	if ((f = open_memstream(&ac->out, &ac->outlen)) == NULL)
		return -1;
	more = ac->more(ac, f);
	if (ferror(f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	if (!more)
		ac->more = NULL;
	ac_arm(ac, ADMIN_WRITE_SECONDS); /* for each part: a slow reader may take long */
	return 0;
}

/* ---- requests: what admin_request.c asks of the workers and main -------- */

/* Ask every worker; the answer is composed when the last one replies. */
void
admin_ask_workers(struct aclient *ac, enum job_kind kind)
{
	for (size_t i = 0; i < adm.nworkers; i++) {
		struct admin_job *job = admin_job_new(kind, &ac->f, ac);

		if (job == NULL)
			continue;
		if (worker_post(&adm.workers[i], &job->wj) < 0) {
			admin_job_free(&job); /* stopping, or too busy: it has nothing to add */
			continue;
		}
		ac->pending++;
	}
	if (ac->pending == 0) {
		answer_jobs(ac);
		return;
	}
	ac->st = AC_WAIT;
	ev_io_stop(adm.loop, &ac->io);
	ac_arm(ac, ADMIN_WAIT_SECONDS);
}

void
admin_ask_reload(struct aclient *ac)
{
	pthread_mutex_lock(&adm.lock);
	ac->reload_token = ++adm.reload_asked;
	pthread_mutex_unlock(&adm.lock);
	ac->reload_wait = true;
	ac->st = AC_WAIT;
	ev_io_stop(adm.loop, &ac->io);
	ac_arm(ac, ADMIN_RELOAD_SECONDS);
	/* main's sigtimedwait() takes it, reloads, and answers through
	 * admin_reload_done(). */
	pthread_kill(adm.main_thread, SIGHUP);
}

static void
ac_read(struct aclient *ac)
{
	for (;;) {
		ssize_t n = read(ac->fd, ac->in + ac->inlen, sizeof(ac->in) - ac->inlen);
		char *nl;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			ac_close(ac); /* gone before a whole line */
			return;
		}
		ac->inlen += (size_t)n;
		if ((nl = memchr(ac->in, '\n', ac->inlen)) != NULL) {
			if (memchr(ac->in, '\0', (size_t)(nl - ac->in)) != NULL) {
				ac_error(ac, "bad request: NUL byte");
				return;
			}
			*nl = '\0';
			if (nl > ac->in && nl[-1] == '\r')
				nl[-1] = '\0';
			admin_request(ac, ac->in); /* anything after the line is ignored */
			return;
		}
		if (ac->inlen == sizeof(ac->in)) {
			ac_error(ac, "request too long (at most %d bytes)", ADMIN_REQUEST_MAX);
			return;
		}
	}
}

static void
ac_write(struct aclient *ac)
{
	for (;;) {
		while (ac->outoff < ac->outlen) {
			ssize_t n = send(ac->fd, ac->out + ac->outoff, ac->outlen - ac->outoff,
			                 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				return;
			if (n <= 0) {
				ac_close(ac);
				return;
			}
			ac->outoff += (size_t)n;
		}
		if (ac->more == NULL)
			break;
		if (ac_refill(ac) < 0) {
			ac_close(ac);
			return;
		}
	}
	/* Closing with unread input would reset the connection and could
	 * lose the answer: say we are done, and wait (briefly) for the
	 * client's close, dropping whatever it still sends. */
	(void)shutdown(ac->fd, SHUT_WR);
	ac->st = AC_LINGER;
	ac_arm(ac, ADMIN_LINGER_SECONDS);
	ev_io_stop(adm.loop, &ac->io);
	ev_io_set(&ac->io, ac->fd, EV_READ);
	ev_io_start(adm.loop, &ac->io);
}

static void
ac_linger(struct aclient *ac)
{
	char sink[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = read(ac->fd, sink, sizeof(sink));
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0)
			break;
	}
	ac_close(ac); /* closed, failed, or sending too much: enough */
}

static void
ac_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct aclient *ac = container_of(io, struct aclient, io);

	(void)loop;
	(void)revents;
	if (ac->st == AC_READ)
		ac_read(ac);
	else if (ac->st == AC_WRITE)
		ac_write(ac);
	else if (ac->st == AC_LINGER)
		ac_linger(ac);
}

static void
ac_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct aclient *ac = container_of(t, struct aclient, timer);

	(void)loop;
	(void)revents;
	switch (ac->st) {
	case AC_READ:
		ac_error(ac, "timed out waiting for the request line");
		break;
	case AC_WAIT:
		/* The jobs still out keep ac (AC_GONE) until they come back. */
		ac_error(ac, "%s did not answer in time",
		         ac->reload_wait ? "the reload" : "the workers");
		break;
	case AC_WRITE:
	case AC_LINGER:
	case AC_GONE:
		ac_close(ac);
		break;
	}
}

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)io;
	(void)revents;
	for (int i = 0; i < ADMIN_CLIENTS_MAX; i++) {
		int fd = accept4(adm.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct aclient *ac;

		if (fd < 0)
			return;
		if (adm.nclients >= ADMIN_CLIENTS_MAX || (ac = calloc(1, sizeof(*ac))) == NULL) {
			static const char busy[] = ADMIN_BUSY_LINE;
			(void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		ac->fd = fd;
		ac->st = AC_READ;
		ev_io_init(&ac->io, ac_io_cb, fd, EV_READ);
		ev_io_start(loop, &ac->io);
		ev_init(&ac->timer, ac_timer_cb);
		ac_arm(ac, ADMIN_READ_SECONDS);
		ac->next = adm.clients;
		if (adm.clients != NULL)
			adm.clients->prev = ac;
		adm.clients = ac;
		adm.nclients++;
	}
}

/* Answers from workers, reload outcomes from main. */
static void
wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct admin_job *jobs;
	uint64_t done;
	bool ok;
	char *report;
	struct aclient *next;

	(void)loop;
	(void)a;
	(void)revents;
	pthread_mutex_lock(&adm.lock);
	jobs = adm.answers;
	adm.answers = NULL;
	done = adm.reload_done;
	ok = adm.reload_ok;
	report = adm.reload_report ? strdup(adm.reload_report) : NULL;
	pthread_mutex_unlock(&adm.lock);

	while (jobs != NULL) {
		struct admin_job *j = jobs;
		struct aclient *ac = j->ac;

		jobs = j->next;
		ac->pending--;
		if (ac->st != AC_WAIT) {
			admin_job_free(&j); /* timed out meanwhile */
			if (ac->st == AC_GONE && ac->pending == 0 && !ac->reload_wait)
				ac_free(ac);
			continue;
		}
		j->next = ac->done;
		ac->done = j;
		if (ac->pending == 0)
			answer_jobs(ac);
	}
	for (struct aclient *ac = adm.clients; ac != NULL; ac = next) {
		next = ac->next;
		if (!ac->reload_wait || ac->reload_token > done)
			continue;
		ac->reload_wait = false;
		if (ac->st == AC_WAIT)
			answer_reload(ac, ok, report);
		else if (ac->st == AC_GONE && ac->pending == 0)
			ac_free(ac);
	}
	free(report);
}

static void
stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)a;
	wake_cb(loop, &adm.wake, revents); /* the workers' last answers */
	while (adm.clients != NULL) {
		struct aclient *ac = adm.clients;
		ev_io_stop(loop, &ac->io);
		ev_timer_stop(loop, &ac->timer);
		if (ac->fd >= 0)
			close(ac->fd);
		ac_free(ac);
	}
	ev_io_stop(loop, &adm.accept_io);
	ev_break(loop, EVBREAK_ALL);
}

static void *
admin_main(void *arg)
{
	(void)arg;
	ev_run(adm.loop, 0);
	return NULL;
}

int
admin_start(int fd, const char *path, struct worker *workers, size_t nworkers)
{
	adm.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (adm.loop == NULL) {
		close(fd);
		return -1;
	}
	adm.fd = fd;
	snprintf(adm.path, sizeof(adm.path), "%s", path);
	adm.workers = workers;
	adm.nworkers = nworkers;
	adm.main_thread = pthread_self();
	ev_io_init(&adm.accept_io, accept_cb, fd, EV_READ);
	ev_io_start(adm.loop, &adm.accept_io);
	ev_async_init(&adm.wake, wake_cb);
	ev_async_start(adm.loop, &adm.wake);
	ev_async_init(&adm.stop, stop_cb);
	ev_async_start(adm.loop, &adm.stop);
	pthread_mutex_lock(&adm.lock);
	adm.running = true;
	pthread_mutex_unlock(&adm.lock);
	if (pthread_create(&adm.thread, NULL, admin_main, NULL) != 0) {
		pthread_mutex_lock(&adm.lock);
		adm.running = false;
		pthread_mutex_unlock(&adm.lock);
		return -1;
	}
	return 0;
}

void
admin_stop(void)
{
	bool running;

	pthread_mutex_lock(&adm.lock);
	running = adm.running;
	pthread_mutex_unlock(&adm.lock);
	if (!running)
		return;
	ev_async_send(adm.loop, &adm.stop);
	pthread_join(adm.thread, NULL);
	pthread_mutex_lock(&adm.lock);
	adm.running = false;
	while (adm.answers != NULL) { /* none expected: the workers stopped first */
		struct admin_job *j = adm.answers;
		adm.answers = j->next;
		admin_job_free(&j);
	}
	free(adm.reload_report);
	adm.reload_report = NULL;
	pthread_mutex_unlock(&adm.lock);
	close(adm.fd);
	adm.fd = -1;
	/* Only while the path still names our socket: a newer postern may have
	 * taken it over.  May fail once privileges are dropped: harmless. */
	{
		struct stat st;
		if (bound.set && lstat(adm.path, &st) == 0 && st.st_dev == bound.dev &&
		    st.st_ino == bound.ino)
			(void)unlink(adm.path);
	}
	ev_loop_destroy(adm.loop);
	adm.loop = NULL;
}
