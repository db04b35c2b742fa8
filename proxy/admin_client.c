/*
 * admin_client.c: the command line's side of the admin commands
 * (`postern -c FILE <command> ...`, the table in admin_cmd.h): the store's
 * and the fleet's go to policy_admin_*; the socket's turn their arguments
 * into one request line, send it to the socket the config names and print
 * the answer.  It never talks to a worker.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "admin_impl.h"
#include "config.h"
#include "policy.h"
#include "state_url.h"

#define CLIENT_SECONDS        30  /* for any answer but a reload's */
#define CLIENT_RELOAD_SECONDS 130 /* the server's own limit, and a little */
#define ANSWER_MAX            (256u * 1024 * 1024)

static void
usage(FILE *err)
{
	admin_cmd_usage(err, ADMIN_VIA_SOCKET, true);
}

/* Append " key=value" to req, the value %XX-escaped: the server takes
 * printable words separated by spaces.  -1 when it does not fit. */
static int
add_word(char *req, size_t len, const char *key, const char *value)
{
	size_t n = strlen(req);
	int k = snprintf(req + n, len - n, " %s%s", key, key[0] && value[0] ? "=" : "");

	if (k < 0 || (size_t)k >= len - n)
		return -1;
	n += (size_t)k;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (n + 4 >= len)
			return -1;
		if (*p <= 0x20 || *p >= 0x7f || *p == '%')
			n += (size_t)snprintf(req + n, len - n, "%%%02X", *p);
		else
			req[n++] = (char)*p;
	}
	req[n] = '\0';
	return 0;
}

/* sessions and kick: "--user U" and the like as "user=U" words; --json
 * too when json_ok.  The number of filters, or -1 after usage. */
static int
req_filters(int argc, char **argv, char *req, size_t len, FILE *err, bool json_ok)
{
	int nfilters = 0;

	for (int i = 1; i < argc; i++) {
		const char *key = NULL;

		if (strcmp(argv[i], "--json") == 0 && json_ok) {
			if (add_word(req, len, "json", "") < 0)
				return -1;
			continue;
		}
		if (strcmp(argv[i], "--user") == 0)
			key = "user";
		else if (strcmp(argv[i], "--backend") == 0)
			key = "backend";
		else if (strcmp(argv[i], "--client") == 0)
			key = "client";
		if (key == NULL || i + 1 >= argc || argv[i + 1][0] == '\0') {
			usage(err);
			return -1;
		}
		if (add_word(req, len, key, argv[++i]) < 0) {
			fprintf(err, "postern: arguments too long\n");
			return -1;
		}
		nfilters++;
	}
	return nfilters;
}

int
admin_req_sessions(int argc, char **argv, char *req, size_t len, FILE *err)
{
	return req_filters(argc, argv, req, len, err, true) < 0 ? -1 : 0;
}

int
admin_req_kick(int argc, char **argv, char *req, size_t len, FILE *err)
{
	int n = req_filters(argc, argv, req, len, err, false);

	if (n == 0)
		usage(err);
	return n > 0 ? 0 : -1;
}

int
admin_req_backend(int argc, char **argv, char *req, size_t len, FILE *err)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0 &&
	    (argc == 2 || (argc == 3 && strcmp(argv[2], "--json") == 0)))
		return add_word(req, len, argc == 3 ? "list json" : "list", "");
	/* the same words the server takes (the registry's admin states) */
	if (argc == 3 && strcmp(argv[1], "list") != 0 &&
	    backend_admin_parse(argv[2]) != BACKEND__COUNT) {
		if (add_word(req, len, "", argv[1]) < 0)
			return -1;
		return add_word(req, len, argv[2], "");
	}
	usage(err);
	return -1;
}

int
admin_req_none(int argc, char **argv, char *req, size_t len, FILE *err)
{
	(void)argv;
	(void)req;
	(void)len;
	if (argc != 1) {
		usage(err);
		return -1;
	}
	return 0;
}

static int
connect_admin(const char *path, int seconds, FILE *err)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = seconds};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(err, "postern: admin socket %s: path too long\n", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(err, "postern: socket: %s\n", strerror(errno));
		return -1;
	}
	/* For a unix socket, the send timeout bounds connect() too. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(err, "postern: admin socket %s: %s (is postern running?)\n", path,
		        strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Everything until the server closes, within seconds.  NULL after
 * reporting.  The caller frees. */
static char *
read_answer(int fd, int seconds, size_t *len_out, FILE *err)
{
	int64_t deadline = mono_ms() + (int64_t)seconds * 1000;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);

	if (buf == NULL)
		return NULL;
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - mono_ms();
		ssize_t n;
		int r;

		if (left <= 0) {
			fprintf(err, "postern: no complete answer within %d s\n", seconds);
			free(buf);
			return NULL;
		}
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue; /* the deadline check above ends it */
		if (len == cap) {
			char *nb;
			if (cap >= ANSWER_MAX || (nb = realloc(buf, cap * 2 + 1)) == NULL) {
				fprintf(err, "postern: answer too large\n");
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && len > 0)
			break; /* closed with our request unread (busy): its answer came */
		if (n < 0) {
			fprintf(err, "postern: reading the answer: %s\n", strerror(errno));
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

/* One request for d to the admin socket at socket_path (NULL: the file at
 * cfg_path sets none), the answer to out, errors to err.  The exit status. */
static int
socket_request(const struct admin_cmd_def *d, const char *cfg_path, const char *socket_path,
               int argc, char **argv, FILE *out, FILE *err)
{
	char req[ADMIN_REQUEST_MAX];
	int seconds = CLIENT_SECONDS, fd;
	size_t len = 0, rl;
	char *ans;

	snprintf(req, sizeof(req) - 1, "%s", d->name);
	if (d->request(argc, argv, req, sizeof(req) - 1, err) < 0)
		return 2;
	if (socket_path == NULL) {
		fprintf(err, "postern: %s sets no admin socket (admin = { socket = \"...\"; };)\n",
		        cfg_path);
		return 1;
	}
	if (d->flags & ADMIN_CMD_SLOW)
		seconds = CLIENT_RELOAD_SECONDS;
	if ((fd = connect_admin(socket_path, seconds, err)) < 0)
		return 1;
	rl = strlen(req);
	req[rl++] = '\n';
	/* A server with too many clients writes one line and closes before
	 * reading: the request then fails (EPIPE, never SIGPIPE), and its
	 * answer still waits to be read. */
	if (send(fd, req, rl, MSG_NOSIGNAL) != (ssize_t)rl) {
		int saved = errno;

		if (saved != EPIPE && saved != ECONNRESET) {
			fprintf(err, "postern: admin socket %s: %s\n", socket_path,
			        strerror(saved));
			close(fd);
			return 1;
		}
		seconds = 2; /* it has answered or never will */
	}
	ans = read_answer(fd, seconds, &len, err);
	close(fd);
	if (ans == NULL)
		return 1;
	if (strncmp(ans, ADMIN_BUSY_LINE, strlen(ADMIN_BUSY_LINE) - 1) == 0) {
		fprintf(err, "postern: %s", ans + 4);
		free(ans);
		return ADMIN_EXIT_BUSY;
	}
	if (strncmp(ans, "OK\n", 3) == 0) {
		fwrite(ans + 3, 1, len - 3, out);
		free(ans);
		return 0;
	}
	if (strncmp(ans, "ERR ", 4) == 0)
		fprintf(err, "postern: %s%s", ans + 4, len > 0 && ans[len - 1] == '\n' ? "" : "\n");
	else
		fprintf(err, "postern: no answer from the admin socket %s\n", socket_path);
	free(ans);
	return 1;
}

/*
 * Through the admin socket.  A file that does not load still names its
 * socket (a reload of a broken file is for the daemon to refuse, with its
 * own words); one that cannot be parsed at all shows its errors here.
 */
int
admin_cli_socket(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv)
{
	char *report = NULL, *sock = NULL;
	size_t len = 0;
	FILE *errs = open_memstream(&report, &len);
	struct config *cfg = config_load(cfg_path, errs);
	int rc;

	if (errs != NULL)
		fclose(errs);
	if (cfg != NULL)
		sock = cfg->admin.socket != NULL ? strdup(cfg->admin.socket) : NULL;
	else if ((sock = config_admin_socket(cfg_path)) == NULL) {
		fputs(report != NULL ? report : "postern: cannot load the configuration\n", stderr);
		free(report);
		return 1;
	}
	rc = socket_request(d, cfg_path, sock, argc, argv, stdout, stderr);
	free(sock);
	free(report);
	config_unref(&cfg);
	return rc;
}

/* lock ...: on the live store. */
int
admin_cli_store(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv)
{
	struct config *cfg = config_load(cfg_path, stderr);
	int rc;

	(void)d;
	if (cfg == NULL)
		return 1;
	rc = policy_admin_main(cfg, argc, argv, stdout, stderr);
	config_unref(&cfg);
	return rc;
}

/*
 * route ... | kick --user U: on the state store (the fleet's channel with
 * Redis).  A route set --kick on a store that is not shared kicks through
 * this daemon's admin socket instead.
 */
int
admin_cli_fleet(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv)
{
	struct config *cfg = config_load(cfg_path, stderr);
	bool local_kick;
	int rc;

	(void)d;
	if (cfg == NULL)
		return 1;
	local_kick = strcmp(argv[0], "route") == 0 && argc == 5 && strcmp(argv[4], "--kick") == 0 &&
	             (cfg->state == NULL || !state_url_is_redis(cfg->state));
	rc = policy_admin_fleet(cfg, local_kick ? 4 : argc, argv, stdout, stderr);
	config_unref(&cfg);
	if (rc == 0 && local_kick) {
		char *kick[] = {"kick", "--user", argv[2], NULL};
		rc = admin_cli_socket(&admin_cmds[ADMIN_CMD_KICK], cfg_path, 3, kick);
	}
	return rc;
}

/* Does `kick` (argc words) go to the fleet: "--user U" with a shared
 * (Redis) store in the file at cfg_path? */
static bool
kick_to_fleet(const char *cfg_path, int argc, char **argv)
{
	struct config *cfg;
	FILE *quiet;
	bool shared;

	/* Only --user: --backend and --client name this proxy's sessions. */
	if (argc != 3 || strcmp(argv[1], "--user") != 0 ||
	    (quiet = fopen("/dev/null", "w")) == NULL)
		return false;
	cfg = config_load(cfg_path, quiet); /* its errors are the admin command's to tell */
	fclose(quiet);
	shared = cfg != NULL && cfg->state != NULL && state_url_is_redis(cfg->state);
	config_unref(&cfg);
	return shared;
}

/* kick --user with a shared store goes to the whole fleet (every proxy,
 * this one included, kicks on the store's channel); any other kick, and
 * kick without a shared store, to this daemon's socket. */
int
admin_cli_kick(const struct admin_cmd_def *d, const char *cfg_path, int argc, char **argv)
{
	if ((d->flags & ADMIN_CMD_FLEET_USER) && kick_to_fleet(cfg_path, argc, argv))
		return admin_cli_fleet(d, cfg_path, argc, argv);
	return admin_cli_socket(d, cfg_path, argc, argv);
}

int
admin_client_main(const char *cfg_path, int argc, char **argv)
{
	const struct admin_cmd_def *d = argc >= 1 ? admin_cmd_find(argv[0]) : NULL;

	if (d == NULL) {
		usage(stderr);
		return 2;
	}
	return d->run(d, cfg_path, argc, argv);
}
