/*
 * admin_cmd.h: the admin commands, one table (OpenSMTPD smtpctl's parser
 * table): each word's name, its arguments, its help line, where it is
 * carried out and its handlers.  The command line (admin_client.c), the
 * server's request parser (admin_request.c) and `postern -h` read it; a
 * unit test holds the man page to it.  Adding a command is one row here.
 */
#ifndef POSTERN_ADMIN_CMD_H
#define POSTERN_ADMIN_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct aclient;

enum admin_cmd {
	ADMIN_CMD_LOCK,
	ADMIN_CMD_ROUTE,
	ADMIN_CMD_SESSIONS,
	ADMIN_CMD_KICK,
	ADMIN_CMD_BACKEND,
	ADMIN_CMD_RELOAD,
	ADMIN_CMD_STATS,
	ADMIN_CMD_HEALTH,
	ADMIN_CMD_LOOKUP,
	ADMIN_CMD__COUNT
};

/* Where a command is carried out. */
enum admin_via {
	ADMIN_VIA_STORE,  /* on the state store, by this process (lock) */
	ADMIN_VIA_FLEET,  /* on the state store and its channel to every proxy (route) */
	ADMIN_VIA_SOCKET, /* by the running daemon, through its admin socket */
	ADMIN_VIA_LOCAL,  /* by this process alone, from the config (lookup) */
	ADMIN_VIA__COUNT
};

#define ADMIN_CMD_NO_ARGS    0x1u /* the server refuses any argument */
#define ADMIN_CMD_SLOW       0x2u /* the command line waits as long as a reload may take */
#define ADMIN_CMD_FLEET_USER 0x4u /* "--user U" alone, with a shared store: to the fleet */

struct admin_cmd_def {
	enum admin_cmd id;
	const char *name;     /* the first word, on the command line and the socket */
	const char *synopsis; /* its arguments on the command line, for usage */
	const char *help;     /* one line, for -h */
	enum admin_via via;
	unsigned flags; /* ADMIN_CMD_* */
	/* The command line: argv[0] is name.  Returns the exit status: 0, 1
	 * (refused, failed, unreachable), 2 (usage).  Prints to stdout and
	 * stderr. */
	int (*run)(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv);
	/* ADMIN_VIA_SOCKET only: argv (argv[0] is name) as the request line's
	 * words after the name, appended to req.  -1 after a usage error to err. */
	int (*request)(int argc, char **argv, char *req, size_t len, FILE *err);
	/* ADMIN_VIA_SOCKET only, on the admin thread: args parsed from the
	 * line; answers ac now or once what it waits for is in. */
	void (*serve)(struct aclient *ac, char **args, int nargs);
};

/* The table, indexed by enum admin_cmd. */
extern const struct admin_cmd_def admin_cmds[ADMIN_CMD__COUNT];

/* The entry named word, or NULL: an unknown word.  Borrowed, static. */
const struct admin_cmd_def *admin_cmd_find(const char *word);

/* One usage line per command carried out via (ADMIN_VIA__COUNT: all), the
 * first after "usage: " when first, the others indented below it. */
void admin_cmd_usage(FILE *f, enum admin_via via, bool first);

/* Each command's name and help line, indented, one a line (for -h). */
void admin_cmd_help(FILE *f);

#endif
