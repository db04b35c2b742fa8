/*
 * admin.h: the admin socket (admin.socket): one thread with its own libev
 * loop serves one-line requests (the socket's commands in admin_cmd.h)
 * from `postern -c FILE <command>`.  It never runs on a worker's
 * loop and never touches a conn: workers are asked through their mailbox
 * (worker_post) and answer through the admin's, main through a reload
 * token.  Every read, wait and reply is bounded in size and time.
 */
#ifndef POSTERN_ADMIN_H
#define POSTERN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"

struct worker;

#define ADMIN_REQUEST_MAX 1024 /* one request line, newline included */
/* The server's answer to a client over its limit, and the command line's
 * exit status for it: sysexits(3) EX_TEMPFAIL, "try again later". */
#define ADMIN_BUSY_LINE "ERR busy: too many admin clients\n"
#define ADMIN_EXIT_BUSY 75

/*
 * Bind and listen on the unix socket path (before privileges are dropped):
 * mode 0600, owned by uid/gid unless they are (uid_t)-1.  The socket is
 * bound under a temporary name and renamed over path, so a stale socket is
 * replaced and a live one (an upgrade: the old postern is still running) is
 * taken over atomically.  Returns the fd, or -1 with *err_out (static text)
 * and errno.
 */
int admin_bind(const char *path, uid_t uid, gid_t gid, const char **err_out);

/* Start the admin thread serving fd (taken over) for workers[0..n)
 * (borrowed: they outlive admin_stop()).  Call from main's thread, with
 * SIGHUP blocked: reload requests reach it as SIGHUP.  -1 on failure. */
int admin_start(int fd, const char *path, struct worker *workers, size_t nworkers);

/* The workers a kick from the fleet's channel reaches (admin_kick_local()),
 * whether or not there is an admin socket; before they start. */
void admin_attach_workers(struct worker *workers, size_t nworkers);

/* End user's sessions on every attached worker (reason=kicked), as the
 * admin socket's kick does: a policy_kick_cb for policy_set_kick() (arg
 * unused).  Posts a job to each worker; returns at once; any thread. */
void admin_kick_local(void *arg, const char *user);

/* Stop the thread, close and unlink the socket.  Call after the workers
 * stopped: their last answers are in by then.  Takes a never-started admin. */
void admin_stop(void);

/* main's thread, at each SIGHUP: admin_reload_begin() before reloading
 * (a token covering the admin's requests until now), admin_reload_done()
 * with the outcome and the error report (copied; NULL when ok).  Both do
 * nothing when the admin is not running. */
uint64_t admin_reload_begin(void);
void admin_reload_done(uint64_t token, bool ok, const char *report);

/* The command line's side: postern -c FILE <command> [args], argv[0] the
 * command word: carried out as the command table says (admin_cmd.h), on
 * the store, the fleet or the admin socket; answers to stdout, errors to
 * stderr.  Returns the exit status: 0, 1 (refused, failed, unreachable),
 * 2 (usage, also for an unknown word), ADMIN_EXIT_BUSY (the socket has
 * ADMIN_CLIENTS_MAX clients already: try again). */
int admin_client_main(const char *cfg_path, int argc, char **argv);

#endif
