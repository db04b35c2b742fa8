/*
 * scale_client.c: the scale harness's client.  Opens N TLS IMAP sessions
 * through a proxy from many loopback source addresses, logs each in and
 * leaves it in IDLE, then answers commands on stdin (held, probe K, done,
 * quit).  One thread, one epoll loop, non-blocking OpenSSL like loadgen.c,
 * but a held session costs its SSL object and a few hundred bytes: no
 * buffer of its own beyond a short line and command.  It measures; it
 * never judges.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define LINE_KEEP  64          /* bytes of a line kept: enough for tag and status */
#define CMD_BYTES  160         /* one command being written */
#define RBUF_BYTES (16 * 1024) /* shared: one SSL_read at a time */
#define EVENTS     4096
#define STDIN_BUF  4096
#define PROBE_MAX  100000

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* Where a session is; each step but ST_HELD ends within cfg.timeout. */
enum step {
	ST_FREE,
	ST_CONNECT,
	ST_HANDSHAKE,
	ST_GREETING,
	ST_LOGIN,  /* "a LOGIN" sent: the tagged answer wanted */
	ST_IDLE,   /* "b IDLE" sent: the "+ " wanted */
	ST_HELD,   /* in IDLE; whatever comes is read and dropped, BYE closes */
	ST_LOGOUT, /* LOGOUT sent: read until the server closes */
};

struct sess {
	struct sess *prev, *next; /* the deadline list, oldest first */
	double deadline;
	double t_start; /* connect() */
	SSL *ssl;       /* owned */
	int fd;         /* owned */
	uint32_t idx;   /* session number: user and source */
	uint8_t st;     /* enum step */
	bool probe;
	bool on_list;
	bool read_wants_write; /* the last SSL_read waits for EPOLLOUT */
	uint16_t line_len;
	uint16_t wlen, woff;
	char line[LINE_KEEP]; /* the current line's start */
	char wbuf[CMD_BYTES]; /* the command being written */
};

static struct {
	const char *host;
	int port;
	long n;
	int conc, sources, users;
	const char *user_fmt, *pass;
	double timeout;
	int tls_max; /* 0: the library's */
} cfg = {
    .host = "127.0.0.1",
    .conc = 200,
    .sources = 64,
    .user_fmt = "user%d",
    .pass = "pw",
    .timeout = 60,
};

static SSL_CTX *g_ctx;
static int g_ep;
static struct sockaddr_in g_dst;
static struct sess *g_sess; /* [cfg.n] */
static struct sess g_probe;
static struct sess *g_head, *g_tail; /* deadline list */
static char g_stdin_tag;             /* epoll data for stdin */
static char g_rbuf[RBUF_BYTES];
static char g_first_error[256];
static volatile sig_atomic_t g_stop;

static long g_next;     /* next session to start */
static long g_busy;     /* in progress (connect..IDLE) */
static long g_held;     /* in ST_HELD */
static long g_failed;   /* never reached ST_HELD */
static long g_lost;     /* held, then closed by the server */
static long g_src_next; /* round robin over the sources */
static bool g_ready;

/* probe: K sessions one after another */
static int g_probe_k, g_probe_done, g_probe_ok;
static double *g_probe_lat;
static bool g_probe_running;

static char g_in[STDIN_BUF];
static size_t g_in_len;
static bool g_in_eof;

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "scale_client: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static long
rss_kb(void)
{
	char l[128];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(l, sizeof(l), f) != NULL)
		if (sscanf(l, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* As root, lift the hard limit too (up to fs.nr_open); else soft = hard. */
static void
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_max < want)
			fprintf(stderr,
			        "scale_client: nofile hard limit %llu < %llu wanted: some "
			        "sessions will fail\n",
			        (unsigned long long)rl.rlim_max, (unsigned long long)want);
	}
}

static void
note_error(struct sess *s, const char *what)
{
	if (g_first_error[0] == '\0') {
		unsigned long e = ERR_peek_error();
		char ssl_err[160] = "";
		if (e != 0)
			ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
		snprintf(g_first_error, sizeof(g_first_error), "session=%u step=%d%s %s %s", s->idx,
		         (int)s->st, s->probe ? " probe" : "", what, ssl_err);
		fprintf(stderr, "scale_client: first error: %s\n", g_first_error);
	}
	ERR_clear_error();
}

/* ---- the deadline list: every step has the same timeout, so appending
 * keeps it sorted and the expired ones are at its head. */

static void
list_del(struct sess *s)
{
	if (!s->on_list)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		g_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		g_tail = s->prev;
	s->prev = s->next = NULL;
	s->on_list = false;
}

static void
arm(struct sess *s)
{
	list_del(s);
	s->deadline = now() + cfg.timeout;
	s->prev = g_tail;
	s->next = NULL;
	if (g_tail)
		g_tail->next = s;
	else
		g_head = s;
	g_tail = s;
	s->on_list = true;
}

static void
ep_set(struct sess *s, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = s};
	if (epoll_ctl(g_ep, EPOLL_CTL_MOD, s->fd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void probe_finished(bool ok);
static bool g_stdin_poll; /* stdin is a file: epoll refuses it, read it each turn */

static void
sess_release(struct sess *s)
{
	list_del(s);
	if (s->ssl != NULL) {
		SSL_set_quiet_shutdown(s->ssl, 1);
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0) {
		close(s->fd); /* also leaves the epoll set */
		s->fd = -1;
	}
	s->st = ST_FREE;
}

/* The session ends: counted by what step it had reached. */
static void
sess_end(struct sess *s, const char *err)
{
	enum step st = s->st;

	if (s->probe) {
		if (err != NULL && st != ST_LOGOUT)
			note_error(s, err);
		sess_release(s);
		probe_finished(st == ST_LOGOUT);
		return;
	}
	if (st == ST_HELD) {
		g_held--;
		g_lost++;
	} else if (st == ST_LOGOUT) {
		/* after "done": neither held nor failed */
	} else if (st != ST_FREE) {
		if (err != NULL)
			note_error(s, err);
		g_busy--;
		g_failed++;
	}
	sess_release(s);
}

static void
send_cmd(struct sess *s, enum step next, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->wbuf, sizeof(s->wbuf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s->wbuf))
		die("command too long (user format or password)");
	s->wlen = (uint16_t)n;
	s->woff = 0;
	s->st = next;
	arm(s);
}

static void
send_login(struct sess *s)
{
	char user[96];
	uint32_t u = s->probe ? (uint32_t)cfg.users + s->idx : s->idx % (uint32_t)cfg.users;

	snprintf(user, sizeof(user), cfg.user_fmt, (int)u);
	send_cmd(s, ST_LOGIN, "a LOGIN %s %s\r\n", user, cfg.pass);
}

/* Start session s (number idx).  false: it failed at once (counted). */
static bool
sess_start(struct sess *s, uint32_t idx, bool probe)
{
	struct epoll_event e = {.events = EPOLLOUT, .data.ptr = s};
	struct sockaddr_in src = {.sin_family = AF_INET};
	long k = g_src_next++ % cfg.sources;
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->idx = idx;
	s->probe = probe;
	s->st = ST_CONNECT;
	s->t_start = now();
	arm(s);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		sess_end(s, strerror(errno));
		return false;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* 127.1.X.Y: the port is picked at connect() per 4-tuple, so each
	 * source has the whole ephemeral range to the one destination */
	setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	src.sin_addr.s_addr =
	    htonl((127u << 24) | (1u << 16) | ((uint32_t)(k / 250) << 8) | (uint32_t)(k % 250 + 1));
	if (bind(s->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
		sess_end(s, strerror(errno));
		return false;
	}
	if (connect(s->fd, (struct sockaddr *)&g_dst, sizeof(g_dst)) < 0 && errno != EINPROGRESS) {
		sess_end(s, strerror(errno));
		return false;
	}
	if (epoll_ctl(g_ep, EPOLL_CTL_ADD, s->fd, &e) < 0)
		die("epoll_ctl add: %s", strerror(errno));
	return true;
}

/* One complete line (its first LINE_KEEP bytes) in the current step.
 * Returns false when s has ended. */
static bool
on_line(struct sess *s, const char *l, size_t n)
{
	switch (s->st) {
	case ST_GREETING:
		if (n < 4 || strncmp(l, "* OK", 4) != 0) {
			sess_end(s, "bad greeting");
			return false;
		}
		send_login(s);
		return true;
	case ST_LOGIN:
		if (n >= 5 && strncmp(l, "* BYE", 5) == 0) {
			sess_end(s, "BYE before the login answer");
			return false;
		}
		if (n < 2 || strncmp(l, "a ", 2) != 0)
			return true; /* untagged */
		if (n < 4 || strncasecmp(l + 2, "OK", 2) != 0) {
			sess_end(s, "login refused");
			return false;
		}
		if (s->probe) {
			g_probe_lat[g_probe_ok] = (now() - s->t_start) * 1000.0;
			send_cmd(s, ST_LOGOUT, "z LOGOUT\r\n");
			return true;
		}
		send_cmd(s, ST_IDLE, "b IDLE\r\n");
		return true;
	case ST_IDLE:
		if (n >= 2 && l[0] == '+') {
			s->st = ST_HELD;
			list_del(s); /* no timeout from here on */
			g_busy--;
			g_held++;
			return true;
		}
		if (n >= 2 && strncmp(l, "b ", 2) == 0) {
			sess_end(s, "IDLE refused");
			return false;
		}
		if (n >= 5 && strncmp(l, "* BYE", 5) == 0) {
			sess_end(s, "BYE before IDLE");
			return false;
		}
		return true;
	case ST_HELD:
		if (n >= 5 && strncmp(l, "* BYE", 5) == 0) {
			sess_end(s, NULL); /* drain, kick: not held any more */
			return false;
		}
		return true;
	default:
		return true; /* LOGOUT: read until the close */
	}
}

/* Split what SSL_read gave into lines.  false: s has ended. */
static bool
on_input(struct sess *s, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) + 1 : n;
		size_t room = sizeof(s->line) - s->line_len;
		size_t take = k < room ? k : room;

		memcpy(s->line + s->line_len, p, take);
		s->line_len = (uint16_t)(s->line_len + take);
		p += k;
		n -= k;
		if (nl == NULL)
			return true;
		size_t len = s->line_len;
		s->line_len = 0;
		if (!on_line(s, s->line, len))
			return false;
	}
	return true;
}

static bool
want_io(struct sess *s, int r)
{
	int e = SSL_get_error(s->ssl, r);

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		s->read_wants_write = false;
		ep_set(s, e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN);
		return true;
	}
	return false;
}

/* Drive s as far as it goes without blocking.  s may end here. */
static void
sess_run(struct sess *s, uint32_t events)
{
	bool may_read;
	int r;

	if (s->st == ST_CONNECT) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
			sess_end(s, err ? strerror(err) : "connect failed");
			return;
		}
		s->ssl = SSL_new(g_ctx);
		if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
			die("SSL_new failed");
		SSL_set_tlsext_host_name(s->ssl, "localhost");
		SSL_set_connect_state(s->ssl);
		s->st = ST_HANDSHAKE;
		arm(s);
	}
	if (s->st == ST_HANDSHAKE) {
		ERR_clear_error();
		r = SSL_do_handshake(s->ssl);
		if (r != 1) {
			if (!want_io(s, r))
				sess_end(s, "handshake failed");
			return;
		}
		s->st = ST_GREETING;
		arm(s);
	}
	/* SSL_read only when the socket or OpenSSL has bytes: an SSL_read
	 * that ends in WANT_READ takes a 17 KB read buffer again (and keeps
	 * it while waiting), which SSL_MODE_RELEASE_BUFFERS had given back */
	may_read = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 || s->read_wants_write;
	for (int rounds = 0; rounds < 64; rounds++) {
		if (s->woff < s->wlen) {
			ERR_clear_error();
			r = SSL_write(s->ssl, s->wbuf + s->woff, (int)(s->wlen - s->woff));
			if (r > 0) {
				s->woff = (uint16_t)(s->woff + r);
				continue;
			}
			if (!want_io(s, r))
				sess_end(s, "write failed");
			return;
		}
		if (!may_read && !SSL_has_pending(s->ssl)) {
			ep_set(s, EPOLLIN);
			return;
		}
		may_read = false;
		ERR_clear_error();
		r = SSL_read(s->ssl, g_rbuf, sizeof(g_rbuf));
		if (r > 0) {
			if (!on_input(s, g_rbuf, (size_t)r))
				return;
			continue;
		}
		if (want_io(s, r)) {
			s->read_wants_write = SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_WRITE;
			return;
		}
		sess_end(s, "closed by the server");
		return;
	}
	ep_set(s, EPOLLIN | EPOLLOUT); /* more to do: come back soon */
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
probe_answer(void)
{
	int k = g_probe_ok;
	double p50 = 0, p99 = 0, max = 0;

	if (k > 0) {
		qsort(g_probe_lat, (size_t)k, sizeof(double), cmp_double);
		p50 = g_probe_lat[(size_t)(0.50 * (k - 1) + 0.5)];
		p99 = g_probe_lat[(size_t)(0.99 * (k - 1) + 0.5)];
		max = g_probe_lat[k - 1];
	}
	printf("PROBE n=%d ok=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", g_probe_k, k, p50, p99,
	       max);
	fflush(stdout);
}

static void
probe_finished(bool ok)
{
	if (ok)
		g_probe_ok++;
	g_probe_done++;
	if (g_probe_done >= g_probe_k) {
		g_probe_running = false;
		probe_answer();
	}
	/* the main loop starts the next one */
}

static void
cmd_done(void)
{
	long n = 0;

	for (long i = 0; i < cfg.n; i++) {
		struct sess *s = &g_sess[i];
		if (s->st != ST_HELD)
			continue;
		g_held--;
		n++;
		send_cmd(s, ST_LOGOUT, "DONE\r\nc LOGOUT\r\n");
		sess_run(s, 0); /* s may end here */
	}
	printf("DONE n=%ld\n", n);
	fflush(stdout);
}

/* One stdin line.  false: quit. */
static bool
on_command(char *l)
{
	int k;

	if (strcmp(l, "held") == 0) {
		printf("HELD n=%ld\n", g_held);
	} else if (sscanf(l, "probe %d", &k) == 1) {
		if (k <= 0 || k > PROBE_MAX) {
			printf("ERROR probe count 1..%d\n", PROBE_MAX);
		} else {
			g_probe_k = k;
			g_probe_done = g_probe_ok = 0;
			g_probe_running = true;
			return true; /* answered when the K are done */
		}
	} else if (strcmp(l, "done") == 0) {
		cmd_done();
		return true;
	} else if (strcmp(l, "quit") == 0) {
		return false;
	} else if (l[0] != '\0') {
		printf("ERROR unknown command\n");
	} else {
		return true;
	}
	fflush(stdout);
	return true;
}

/* Read stdin; run the lines one at a time, none while a probe runs. */
static bool
serve_stdin(bool readable)
{
	if (readable && !g_in_eof && g_in_len < sizeof(g_in)) {
		ssize_t n = read(0, g_in + g_in_len, sizeof(g_in) - g_in_len);
		if (n == 0)
			g_in_eof = true;
		else if (n > 0)
			g_in_len += (size_t)n;
	}
	while (!g_probe_running) {
		char *nl = memchr(g_in, '\n', g_in_len);
		if (nl == NULL) {
			if (g_in_len == sizeof(g_in))
				g_in_len = 0; /* an absurd line: dropped */
			return !g_in_eof;
		}
		*nl = '\0';
		if (nl > g_in && nl[-1] == '\r')
			nl[-1] = '\0';
		bool go = on_command(g_in);
		size_t used = (size_t)(nl - g_in) + 1;
		memmove(g_in, g_in + used, g_in_len - used);
		g_in_len -= used;
		if (!go)
			return false;
	}
	return true;
}

static void
tls_init(void)
{
	g_ctx = SSL_CTX_new(TLS_client_method());
	if (g_ctx == NULL)
		die("SSL_CTX_new");
	SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
	if (cfg.tls_max)
		SSL_CTX_set_max_proto_version(g_ctx, cfg.tls_max);
	/* an idle session gives its read and write buffers back */
	SSL_CTX_set_mode(g_ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(g_ctx, SSL_OP_NO_TICKET);
}

static void
usage(void)
{
	fprintf(stderr, "usage: scale_client -p PORT [-h 127.0.0.1] -n N [-c CONCURRENCY=200]\n"
	                "  [-s SOURCES=64] [-u USERS=N/10] [-f USER_FMT=user%%d] [-w PASSWORD=pw]\n"
	                "  [-t TIMEOUT_S=60] [-V 1.2|1.3 (highest TLS version)]\n");
	exit(2);
}

static void
parse_args(int argc, char **argv)
{
	int o;

	while ((o = getopt(argc, argv, "p:h:n:c:s:u:f:w:t:V:")) != -1) {
		switch (o) {
		case 'p':
			cfg.port = atoi(optarg);
			break;
		case 'h':
			cfg.host = optarg;
			break;
		case 'n':
			cfg.n = atol(optarg);
			break;
		case 'c':
			cfg.conc = atoi(optarg);
			break;
		case 's':
			cfg.sources = atoi(optarg);
			break;
		case 'u':
			cfg.users = atoi(optarg);
			break;
		case 'f':
			cfg.user_fmt = optarg;
			break;
		case 'w':
			cfg.pass = optarg;
			break;
		case 't':
			cfg.timeout = atof(optarg);
			break;
		case 'V':
			if (strcmp(optarg, "1.2") == 0)
				cfg.tls_max = TLS1_2_VERSION;
			else if (strcmp(optarg, "1.3") == 0)
				cfg.tls_max = TLS1_3_VERSION;
			else
				usage();
			break;
		default:
			usage();
		}
	}
	if (cfg.port <= 0 || cfg.port > 65535 || cfg.n < 0 || cfg.n > 10000000 || cfg.conc <= 0 ||
	    cfg.sources <= 0 || cfg.sources > 250 * 256 || cfg.users < 0 || cfg.timeout <= 0)
		usage();
	if (cfg.users == 0)
		cfg.users = cfg.n / 10 > 0 ? (int)(cfg.n / 10) : 1;
}

int
main(int argc, char **argv)
{
	static struct epoll_event evs[EVENTS];
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = &g_stdin_tag};
	struct sigaction sa;
	double t0;
	bool running = true;

	parse_args(argc, argv);
	raise_nofile((rlim_t)cfg.n + 1000);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	g_dst.sin_family = AF_INET;
	g_dst.sin_port = htons((uint16_t)cfg.port);
	if (inet_pton(AF_INET, cfg.host, &g_dst.sin_addr) != 1)
		die("bad host %s", cfg.host);
	tls_init();
	g_sess = calloc((size_t)cfg.n + 1, sizeof(*g_sess));
	g_probe_lat = calloc(PROBE_MAX, sizeof(double));
	if (g_sess == NULL || g_probe_lat == NULL)
		die("out of memory");
	for (long i = 0; i < cfg.n; i++)
		g_sess[i].fd = -1;
	g_probe.fd = -1;
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0)
		die("epoll_create1: %s", strerror(errno));
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	t0 = now();

	while (running && !g_stop) {
		double t = now();
		int timeout_ms = 100, n;

		/* the expired steps are at the list's head */
		while (g_head != NULL && g_head->deadline <= t)
			sess_end(g_head, "timeout");
		while (g_busy < cfg.conc && g_next < cfg.n) {
			long i = g_next++;
			g_busy++; /* sess_end() takes it back if it fails at once */
			(void)sess_start(&g_sess[i], (uint32_t)i, false);
		}
		if (g_probe_running && g_probe.st == ST_FREE)
			(void)sess_start(&g_probe, (uint32_t)g_probe_done, true);
		if (!g_ready && g_next >= cfg.n && g_busy == 0) {
			/* the handshakes' freed buffers back to the system: the RSS
			 * printed is what the held sessions keep */
			malloc_trim(0);
			struct mallinfo2 mi = mallinfo2();
			printf("READY held=%ld failed=%ld secs=%.2f rss_kb=%ld heap_kb=%zu\n",
			       g_held, g_failed, now() - t0, rss_kb(), mi.uordblks / 1024);
			fflush(stdout);
			g_ready = true;
			if (epoll_ctl(g_ep, EPOLL_CTL_ADD, 0, &e) < 0) {
				if (errno != EPERM)
					die("epoll_ctl stdin: %s", strerror(errno));
				g_stdin_poll = true;
			}
			running = serve_stdin(true);
		}
		if (g_head != NULL) {
			double ms = (g_head->deadline - t) * 1000.0 + 1;
			if (ms < timeout_ms)
				timeout_ms = ms < 0 ? 0 : (int)ms;
		}
		n = epoll_wait(g_ep, evs, EVENTS, timeout_ms);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &g_stdin_tag) {
				running = serve_stdin(true) && running;
				continue;
			}
			struct sess *s = evs[i].data.ptr;
			if (s->st != ST_FREE)
				sess_run(s, evs[i].events); /* s may end here */
		}
		if (g_ready && running && (g_stdin_poll || (!g_probe_running && g_in_len > 0)))
			running = serve_stdin(g_stdin_poll);
		/* stdin closed: quit once its last command is answered */
		if (g_in_eof && !g_probe_running && g_in_len == 0)
			running = false;
	}
	for (long i = 0; i < cfg.n; i++)
		if (g_sess[i].st != ST_FREE)
			sess_release(&g_sess[i]);
	if (g_probe.st != ST_FREE)
		sess_release(&g_probe);
	return 0;
}
