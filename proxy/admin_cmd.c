/*
 * admin_cmd.c: the table of admin commands (see admin_cmd.h) and the usage
 * and help text made from it.  The handlers live with their side: the
 * command line's in admin_client.c, the server's in admin_request.c.
 */
#include <string.h>

#include "admin_cmd.h"
#include "admin_impl.h"

/* One row a command, in the order -h and the man page show them.  A row
 * left out leaves a NULL name, which the unit test catches. */
const struct admin_cmd_def admin_cmds[] = {
    [ADMIN_CMD_LOCK] =
        {
            .id = ADMIN_CMD_LOCK,
            .name = "lock",
            .synopsis = "show USER | set USER imap|pop3 | clear USER | list",
            .help = "read and change the protocol locks in the state store",
            .via = ADMIN_VIA_STORE,
            .flags = 0,
            .run = admin_cli_store,
        },
    [ADMIN_CMD_ROUTE] =
        {
            .id = ADMIN_CMD_ROUTE,
            .name = "route",
            .synopsis = "set USER BACKEND [--kick] | clear USER | show USER",
            .help = "pin a user to a backend in the state store, or show or clear it",
            .via = ADMIN_VIA_FLEET,
            .flags = 0,
            .run = admin_cli_fleet,
        },
    [ADMIN_CMD_SESSIONS] =
        {
            .id = ADMIN_CMD_SESSIONS,
            .name = "sessions",
            .synopsis = "[--user U] [--backend B] [--client CIDR] [--json]",
            .help = "list the open sessions (of a user, backend or client network)",
            .via = ADMIN_VIA_SOCKET,
            .flags = 0,
            .run = admin_cli_socket,
            .request = admin_req_sessions,
            .serve = admin_serve_sessions,
        },
    [ADMIN_CMD_KICK] =
        {
            .id = ADMIN_CMD_KICK,
            .name = "kick",
            .synopsis = "--user U | --backend B | --client CIDR",
            .help = "end the sessions of a user, a backend or a client network",
            .via = ADMIN_VIA_SOCKET,
            .flags = ADMIN_CMD_FLEET_USER,
            .run = admin_cli_kick,
            .request = admin_req_kick,
            .serve = admin_serve_kick,
        },
    [ADMIN_CMD_BACKEND] =
        {
            .id = ADMIN_CMD_BACKEND,
            .name = "backend",
            .synopsis = "list [--json] | NAME drain|maint|ready",
            .help = "show the backends and their states, or set one's state",
            .via = ADMIN_VIA_SOCKET,
            .flags = 0,
            .run = admin_cli_socket,
            .request = admin_req_backend,
            .serve = admin_serve_backend,
        },
    [ADMIN_CMD_RELOAD] =
        {
            .id = ADMIN_CMD_RELOAD,
            .name = "reload",
            .synopsis = "",
            .help = "read the configuration again (as SIGHUP) and tell the outcome",
            .via = ADMIN_VIA_SOCKET,
            .flags = ADMIN_CMD_NO_ARGS | ADMIN_CMD_SLOW,
            .run = admin_cli_socket,
            .request = admin_req_none,
            .serve = admin_serve_reload,
        },
    [ADMIN_CMD_STATS] =
        {
            .id = ADMIN_CMD_STATS,
            .name = "stats",
            .synopsis = "",
            .help = "print the counters, as text",
            .via = ADMIN_VIA_SOCKET,
            .flags = ADMIN_CMD_NO_ARGS,
            .run = admin_cli_socket,
            .request = admin_req_none,
            .serve = admin_serve_stats,
        },
    [ADMIN_CMD_HEALTH] =
        {
            .id = ADMIN_CMD_HEALTH,
            .name = "health",
            .synopsis = "",
            .help = "exit 0 when the daemon accepts connections and a backend is up",
            .via = ADMIN_VIA_SOCKET,
            .flags = ADMIN_CMD_NO_ARGS,
            .run = admin_cli_socket,
            .request = admin_req_none,
            .serve = admin_serve_health,
        },
    [ADMIN_CMD_LOOKUP] =
        {
            .id = ADMIN_CMD_LOOKUP,
            .name = "lookup",
            .synopsis = "USER [--protocol imap|pop3] [--password-file F]",
            .help = "ask the user lookup service about USER and say what postern would do",
            .via = ADMIN_VIA_LOCAL,
            .flags = 0,
            .run = admin_cli_lookup,
        },
};
/* Unsized above, so a command added to the enum without its row fails here. */
_Static_assert(sizeof(admin_cmds) / sizeof(admin_cmds[0]) == ADMIN_CMD__COUNT,
               "admin_cmds must have a row for every command");

const struct admin_cmd_def *
admin_cmd_find(const char *word)
{
	for (size_t i = 0; i < ADMIN_CMD__COUNT; i++)
		if (strcmp(admin_cmds[i].name, word) == 0)
			return &admin_cmds[i];
	return NULL;
}

void
admin_cmd_usage(FILE *f, enum admin_via via, bool first)
{
	for (size_t i = 0; i < ADMIN_CMD__COUNT; i++) {
		const struct admin_cmd_def *d = &admin_cmds[i];

		if (via != ADMIN_VIA__COUNT && d->via != via)
			continue;
		fprintf(f, "%s postern -c FILE %s%s%s\n", first ? "usage:" : "      ", d->name,
		        d->synopsis[0] ? " " : "", d->synopsis);
		first = false;
	}
}

void
admin_cmd_help(FILE *f)
{
	for (size_t i = 0; i < ADMIN_CMD__COUNT; i++)
		fprintf(f, "  %-9s%s\n", admin_cmds[i].name, admin_cmds[i].help);
}
