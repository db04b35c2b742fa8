/*
 * loadgen.c: postern's benchmark load generator.  One thread, one epoll
 * loop, non-blocking OpenSSL clients speaking just enough IMAP or POP3 to
 * log in, fetch a message and log out.  Prints one "RESULT k=v ..." line
 * on stdout; errors go to stderr.  Never a pass/fail tool: it measures.
 *
 * Modes:
 *   login  C slots loop: connect, TLS, greeting, LOGIN/USER+PASS, LOGOUT/QUIT
 *   idle   log in K sessions (C at a time), print "READY ...", hold them
 *   bulk   C sessions log in once, then FETCH/RETR one big message in a loop
 * With --resume each slot offers the session its previous connection was
 * given; a TLS 1.3 ticket is offered once only (RFC 8446 §C.4), as browsers
 * and OpenSSL's own client do.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define RBUF_SIZE (64 * 1024)
#define WBUF_SIZE 512

enum mode { M_LOGIN, M_IDLE, M_BULK };
enum proto { P_IMAP, P_POP3 };

/* Where a session is; each step ends waiting on the socket. */
enum step {
	ST_FREE,
	ST_CONNECT,
	ST_HANDSHAKE,
	ST_GREETING, /* first line */
	ST_USER,     /* POP3: USER sent, +OK wanted */
	ST_LOGIN,    /* LOGIN / PASS sent, the answer wanted */
	ST_SELECT,   /* bulk IMAP: SELECT sent */
	ST_FETCH,    /* bulk: FETCH / RETR sent, the whole message wanted */
	ST_IDLE,     /* idle mode: logged in, nothing to do */
	ST_LOGOUT,   /* LOGOUT / QUIT sent: read until the server closes */
};

struct sess {
	int fd;
	int slot;
	SSL *ssl;
	enum step st;
	bool want_write;      /* the SSL call in progress waits for EPOLLOUT */
	double t_start;       /* connect() */
	double t_login;       /* the login answer */
	double deadline;      /* per-step timeout; 0 = none (idle) */
	char wbuf[WBUF_SIZE]; /* pending command */
	size_t wlen, woff;
	char *rbuf; /* RBUF_SIZE */
	size_t rlen;
	size_t literal_left; /* IMAP {n} bytes still to skip */
	int dot_state;       /* POP3 multi-line end "\r\n.\r\n" matcher */
	bool got_first_line; /* POP3 RETR: "+OK" line seen */
	uint64_t bytes;      /* application bytes read in the window */
};

static struct {
	const char *host;
	int port;
	enum proto proto;
	enum mode mode;
	int conc;
	long count;
	double duration, warmup, timeout, hold;
	const char *user_fmt;
	int user_lo, user_hi;
	const char *pass;
	int idle_k;
	const char *bulk_user;
	int msg;
	bool resume;
	int tls_ver; /* 0, TLS1_2_VERSION or TLS1_3_VERSION */
	const char *sni;
	bool quiet;
} cfg = {
    .host = "127.0.0.1",
    .proto = P_IMAP,
    .mode = M_LOGIN,
    .conc = 16,
    .duration = 5,
    .timeout = 10,
    .hold = 60,
    .user_fmt = "user%04d",
    .user_lo = 1,
    .user_hi = 2000,
    .pass = "pw",
    .idle_k = 1000,
    .bulk_user = "bulk",
    .msg = 1,
    .sni = "localhost",
};

static SSL_CTX *g_ctx;
static int g_ep;
static struct sess *g_sess; /* [g_nsess] */
static int g_nsess;
static SSL_SESSION **g_slot_sess;
static struct sockaddr_in g_addr;
static volatile sig_atomic_t g_stop;
static int g_next_user;

static double g_t0, g_win_start, g_win_end;
static long n_ok, n_fail, n_ok_total, n_fail_total, n_full, n_resumed, n_idle;
static uint64_t g_bytes, g_bytes_total; /* FETCH/RETR data: in the window, all */
static double *g_lat;
static size_t g_nlat, g_caplat;
static char g_first_error[256];
static char g_tls[128] = "-";

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
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static bool
in_window(double t)
{
	return t >= g_win_start && t < g_win_end;
}

static void
note_error(struct sess *s, const char *what)
{
	if (g_first_error[0] == '\0') {
		unsigned long e = ERR_peek_error();
		char ssl_err[160] = "";
		if (e != 0)
			ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
		snprintf(g_first_error, sizeof(g_first_error), "step=%d %s %s", (int)s->st, what,
		         ssl_err);
	}
	ERR_clear_error();
}

static void
lat_push(double ms)
{
	if (g_nlat == g_caplat) {
		g_caplat = g_caplat ? g_caplat * 2 : 4096;
		g_lat = realloc(g_lat, g_caplat * sizeof(*g_lat));
		if (g_lat == NULL)
			die("out of memory");
	}
	g_lat[g_nlat++] = ms;
}

static int
new_session_cb(SSL *ssl, SSL_SESSION *ss)
{
	struct sess *s = SSL_get_app_data(ssl);

	if (!cfg.resume || s == NULL)
		return 0;
	if (g_slot_sess[s->slot] != NULL)
		SSL_SESSION_free(g_slot_sess[s->slot]);
	g_slot_sess[s->slot] = ss; /* the reference is ours now */
	return 1;
}

static void
ep_set(struct sess *s, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = s};
	if (epoll_ctl(g_ep, EPOLL_CTL_MOD, s->fd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void
sess_release(struct sess *s)
{
	if (s->ssl != NULL) {
		SSL_set_app_data(s->ssl, NULL);
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

static void
sess_fail(struct sess *s, const char *what)
{
	double t = now();

	note_error(s, what);
	n_fail_total++;
	if (in_window(t))
		n_fail++;
	if (s->st == ST_IDLE)
		n_idle--;
	sess_release(s);
}

static void
sess_done(struct sess *s)
{
	double t = now();

	n_ok_total++;
	if (in_window(t)) {
		n_ok++;
		lat_push((s->t_login - s->t_start) * 1000.0);
	}
	/* A clean end: without this SSL_free() takes the session for a broken
	 * one and makes it unresumable (ssl_clear_bad_session). */
	if (s->ssl != NULL)
		SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
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
		die("command too long");
	s->wlen = (size_t)n;
	s->woff = 0;
	s->st = next;
	s->rlen = 0;
	s->literal_left = 0;
	s->dot_state = 0;
	s->got_first_line = false;
	s->deadline = now() + cfg.timeout;
}

static void
user_name(char *out, size_t len)
{
	int span = cfg.user_hi - cfg.user_lo + 1;
	snprintf(out, len, cfg.user_fmt, cfg.user_lo + g_next_user++ % span);
}

static void
send_login(struct sess *s)
{
	char user[128];

	if (cfg.mode == M_BULK)
		snprintf(user, sizeof(user), "%s", cfg.bulk_user);
	else
		user_name(user, sizeof(user));
	if (cfg.proto == P_IMAP)
		send_cmd(s, ST_LOGIN, "a LOGIN %s %s\r\n", user, cfg.pass);
	else
		send_cmd(s, ST_USER, "USER %s\r\n", user);
}

static void
send_fetch(struct sess *s)
{
	if (cfg.proto == P_IMAP)
		send_cmd(s, ST_FETCH, "f FETCH %d BODY.PEEK[]\r\n", cfg.msg);
	else
		send_cmd(s, ST_FETCH, "RETR %d\r\n", cfg.msg);
}

static void
send_logout(struct sess *s)
{
	send_cmd(s, ST_LOGOUT, cfg.proto == P_IMAP ? "z LOGOUT\r\n" : "QUIT\r\n");
}

/* Start a connection in slot i.  Returns false when it failed at once. */
static bool
sess_start(int i)
{
	struct sess *s = &g_sess[i];
	struct epoll_event e = {.events = EPOLLOUT};
	int one = 1;

	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		note_error(s, strerror(errno));
		return false;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->slot = i;
	s->t_start = now();
	s->deadline = s->t_start + cfg.timeout;
	s->st = ST_CONNECT;
	s->rlen = 0;
	s->wlen = s->woff = 0;
	s->bytes = 0;
	if (connect(s->fd, (struct sockaddr *)&g_addr, sizeof(g_addr)) < 0 &&
	    errno != EINPROGRESS) {
		sess_fail(s, strerror(errno));
		return false;
	}
	e.data.ptr = s;
	if (epoll_ctl(g_ep, EPOLL_CTL_ADD, s->fd, &e) < 0)
		die("epoll_ctl add: %s", strerror(errno));
	return true;
}

static void
record_tls(struct sess *s)
{
	if (strcmp(g_tls, "-") == 0)
		snprintf(g_tls, sizeof(g_tls), "%s/%s", SSL_get_version(s->ssl),
		         SSL_get_cipher_name(s->ssl));
	if (in_window(now())) {
		if (SSL_session_reused(s->ssl))
			n_resumed++;
		else
			n_full++;
	}
}

/* One complete line at the front of rbuf: its length with CRLF, or 0. */
static size_t
line_len(const struct sess *s)
{
	const char *nl = memchr(s->rbuf, '\n', s->rlen);
	return nl ? (size_t)(nl - s->rbuf) + 1 : 0;
}

static void
consume(struct sess *s, size_t n)
{
	memmove(s->rbuf, s->rbuf + n, s->rlen - n);
	s->rlen -= n;
}

/* IMAP: skip untagged lines and literals until the line tagged `tag`.
 * Returns 1 (OK), -1 (NO/BAD/closed), 0 (more input needed). */
static int
imap_tagged(struct sess *s, char tag)
{
	for (;;) {
		size_t n;
		if (s->literal_left > 0) {
			size_t k = s->literal_left < s->rlen ? s->literal_left : s->rlen;
			consume(s, k);
			s->literal_left -= k;
			if (s->literal_left > 0)
				return 0;
		}
		n = line_len(s);
		if (n == 0) {
			if (s->rlen == RBUF_SIZE)
				return -1; /* a line longer than the buffer */
			return 0;
		}
		if (s->rbuf[0] == tag && s->rbuf[1] == ' ') {
			int ok = n >= 4 && memcmp(s->rbuf + 2, "OK", 2) == 0;
			consume(s, n);
			return ok ? 1 : -1;
		}
		/* "... {123}\r\n": a literal follows the line */
		if (n >= 4 && s->rbuf[n - 2] == '\r' && s->rbuf[n - 3] == '}') {
			size_t j = n - 4;
			while (j > 0 && s->rbuf[j] >= '0' && s->rbuf[j] <= '9')
				j--;
			if (s->rbuf[j] == '{')
				s->literal_left = strtoull(s->rbuf + j + 1, NULL, 10);
		}
		consume(s, n);
	}
}

/* POP3 multi-line answer: the "+OK" line, then data up to "\r\n.\r\n".
 * Returns 1 done, -1 error, 0 more. */
static int
pop3_multiline(struct sess *s)
{
	static const char end[] = "\r\n.\r\n";
	size_t i = 0;

	if (!s->got_first_line) {
		size_t n = line_len(s);
		if (n == 0)
			return 0;
		if (s->rbuf[0] != '+') {
			consume(s, n);
			return -1;
		}
		s->got_first_line = true;
		s->dot_state = 2; /* the status line's CRLF counts */
		consume(s, n);
	}
	for (; i < s->rlen; i++) {
		char c = s->rbuf[i];
		if (c == end[s->dot_state])
			s->dot_state++;
		else
			s->dot_state = c == '\r' ? 1 : 0;
		if (s->dot_state == 5) {
			consume(s, i + 1);
			return 1;
		}
	}
	s->rlen = 0;
	return 0;
}

/* A one-line answer: 1 positive, -1 negative, 0 more. */
static int
one_line(struct sess *s)
{
	size_t n = line_len(s);
	int ok;

	if (n == 0)
		return 0;
	ok = s->rbuf[0] == '+' || (s->rbuf[0] == '*' && memcmp(s->rbuf, "* OK", 4) == 0);
	consume(s, n);
	return ok ? 1 : -1;
}

/* What the data read so far means in the current step. */
static void
on_input(struct sess *s)
{
	int r;

	switch (s->st) {
	case ST_GREETING:
		r = one_line(s);
		if (r == 0)
			return;
		if (r < 0) {
			sess_fail(s, "bad greeting");
			return;
		}
		send_login(s);
		return;
	case ST_USER:
		r = one_line(s);
		if (r == 0)
			return;
		if (r < 0) {
			sess_fail(s, "USER refused");
			return;
		}
		send_cmd(s, ST_LOGIN, "PASS %s\r\n", cfg.pass);
		return;
	case ST_LOGIN:
		r = cfg.proto == P_IMAP ? imap_tagged(s, 'a') : one_line(s);
		if (r == 0)
			return;
		if (r < 0) {
			sess_fail(s, "login refused");
			return;
		}
		s->t_login = now();
		if (cfg.mode == M_LOGIN) {
			send_logout(s);
		} else if (cfg.mode == M_IDLE) {
			s->st = ST_IDLE;
			s->deadline = 0;
			n_idle++;
		} else if (cfg.proto == P_IMAP) {
			send_cmd(s, ST_SELECT, "s SELECT INBOX\r\n");
		} else {
			send_fetch(s);
		}
		return;
	case ST_SELECT:
		r = imap_tagged(s, 's');
		if (r == 0)
			return;
		if (r < 0) {
			sess_fail(s, "SELECT refused");
			return;
		}
		send_fetch(s);
		return;
	case ST_FETCH:
		r = cfg.proto == P_IMAP ? imap_tagged(s, 'f') : pop3_multiline(s);
		if (r == 0)
			return;
		if (r < 0) {
			sess_fail(s, "FETCH/RETR refused");
			return;
		}
		if (in_window(now()))
			n_ok++;
		n_ok_total++;
		send_fetch(s);
		return;
	case ST_IDLE:
		s->rlen = 0; /* untagged noise (e.g. BYE) is read and dropped */
		return;
	case ST_LOGOUT:
		s->rlen = 0; /* BYE and OK: wait for the server to close */
		return;
	default:
		return;
	}
}

/* Drive s as far as it goes without blocking. */
static void
sess_run(struct sess *s)
{
	for (;;) {
		int r, e;

		if (s->st == ST_FREE)
			return;
		if (s->st == ST_CONNECT) {
			int err = 0;
			socklen_t len = sizeof(err);
			getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err != 0) {
				sess_fail(s, strerror(err));
				return;
			}
			s->ssl = SSL_new(g_ctx);
			if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
				die("SSL_new failed");
			SSL_set_app_data(s->ssl, s);
			if (cfg.sni != NULL && cfg.sni[0] != '\0')
				SSL_set_tlsext_host_name(s->ssl, cfg.sni);
			if (cfg.resume && g_slot_sess[s->slot] != NULL) {
				SSL_SESSION *ss = g_slot_sess[s->slot];
				SSL_set_session(s->ssl, ss);
				if (SSL_SESSION_get_protocol_version(ss) == TLS1_3_VERSION) {
					/* single use: a new ticket must come */
					SSL_SESSION_free(ss);
					g_slot_sess[s->slot] = NULL;
				}
			}
			SSL_set_connect_state(s->ssl);
			s->st = ST_HANDSHAKE;
			continue;
		}
		if (s->st == ST_HANDSHAKE) {
			ERR_clear_error();
			r = SSL_do_handshake(s->ssl);
			if (r == 1) {
				record_tls(s);
				s->st = ST_GREETING;
				s->deadline = now() + cfg.timeout;
				continue;
			}
			e = SSL_get_error(s->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				s->want_write = e == SSL_ERROR_WANT_WRITE;
				ep_set(s, s->want_write ? EPOLLOUT : EPOLLIN);
				return;
			}
			sess_fail(s, "handshake failed");
			return;
		}
		/* a command to send first */
		if (s->woff < s->wlen) {
			ERR_clear_error();
			r = SSL_write(s->ssl, s->wbuf + s->woff, (int)(s->wlen - s->woff));
			if (r > 0) {
				s->woff += (size_t)r;
				continue;
			}
			e = SSL_get_error(s->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				s->want_write = e == SSL_ERROR_WANT_WRITE;
				ep_set(s, s->want_write ? EPOLLOUT : EPOLLIN);
				return;
			}
			sess_fail(s, "write failed");
			return;
		}
		ERR_clear_error();
		r = SSL_read(s->ssl, s->rbuf + s->rlen, (int)(RBUF_SIZE - s->rlen));
		if (r > 0) {
			s->rlen += (size_t)r;
			if (s->st == ST_FETCH) {
				g_bytes_total += (uint64_t)r;
				if (in_window(now()))
					g_bytes += (uint64_t)r;
			}
			on_input(s);
			continue;
		}
		e = SSL_get_error(s->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			s->want_write = e == SSL_ERROR_WANT_WRITE;
			ep_set(s, s->want_write ? EPOLLOUT : EPOLLIN);
			return;
		}
		if (s->st == ST_LOGOUT) {
			sess_done(s); /* the server closed after LOGOUT/QUIT */
			return;
		}
		sess_fail(s, e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL
		                 ? "closed by the server"
		                 : "read failed");
		return;
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void
tls_init(void)
{
	g_ctx = SSL_CTX_new(TLS_client_method());
	if (g_ctx == NULL)
		die("SSL_CTX_new");
	SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(g_ctx, cfg.tls_ver ? cfg.tls_ver : TLS1_2_VERSION);
	if (cfg.tls_ver)
		SSL_CTX_set_max_proto_version(g_ctx, cfg.tls_ver);
	SSL_CTX_set_mode(g_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                            (cfg.mode == M_IDLE ? SSL_MODE_RELEASE_BUFFERS : 0));
	if (cfg.resume) {
		SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_CLIENT |
		                                          SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(g_ctx, new_session_cb);
	} else {
		SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(g_ctx, SSL_OP_NO_TICKET);
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	if (g_nlat == 0)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(g_nlat - 1) + 0.5);
	return g_lat[i];
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: loadgen -p PORT [-P imap|pop3] [-m login|idle|bulk] [-c CONC]\n"
	        "  [-d SECS] [-w WARMUP] [-n COUNT] [-t TIMEOUT] [-U LO-HI] [-u FMT] [-W PASS]\n"
	        "  [-k IDLE] [--hold SECS] [-B BULKUSER] [--msg N] [-r] [--tls 1.2|1.3]\n"
	        "  [--sni NAME] [-q]\n");
	exit(2);
}

static void
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"port", 1, 0, 'p'},   {"proto", 1, 0, 'P'},     {"mode", 1, 0, 'm'},
	    {"conc", 1, 0, 'c'},   {"duration", 1, 0, 'd'},  {"warmup", 1, 0, 'w'},
	    {"count", 1, 0, 'n'},  {"timeout", 1, 0, 't'},   {"users", 1, 0, 'U'},
	    {"user", 1, 0, 'u'},   {"pass", 1, 0, 'W'},      {"idle", 1, 0, 'k'},
	    {"hold", 1, 0, 1},     {"bulk-user", 1, 0, 'B'}, {"msg", 1, 0, 2},
	    {"resume", 0, 0, 'r'}, {"tls", 1, 0, 3},         {"sni", 1, 0, 4},
	    {"host", 1, 0, 'H'},   {"quiet", 0, 0, 'q'},     {0, 0, 0, 0}};
	int o;

	while ((o = getopt_long(argc, argv, "p:P:m:c:d:w:n:t:U:u:W:k:B:rH:q", lo, NULL)) != -1) {
		switch (o) {
		case 'p':
			cfg.port = atoi(optarg);
			break;
		case 'P':
			if (strcmp(optarg, "imap") == 0)
				cfg.proto = P_IMAP;
			else if (strcmp(optarg, "pop3") == 0)
				cfg.proto = P_POP3;
			else
				usage();
			break;
		case 'm':
			if (strcmp(optarg, "login") == 0)
				cfg.mode = M_LOGIN;
			else if (strcmp(optarg, "idle") == 0)
				cfg.mode = M_IDLE;
			else if (strcmp(optarg, "bulk") == 0)
				cfg.mode = M_BULK;
			else
				usage();
			break;
		case 'c':
			cfg.conc = atoi(optarg);
			break;
		case 'd':
			cfg.duration = atof(optarg);
			break;
		case 'w':
			cfg.warmup = atof(optarg);
			break;
		case 'n':
			cfg.count = atol(optarg);
			break;
		case 't':
			cfg.timeout = atof(optarg);
			break;
		case 'U':
			if (sscanf(optarg, "%d-%d", &cfg.user_lo, &cfg.user_hi) != 2 ||
			    cfg.user_hi < cfg.user_lo)
				usage();
			break;
		case 'u':
			cfg.user_fmt = optarg;
			break;
		case 'W':
			cfg.pass = optarg;
			break;
		case 'k':
			cfg.idle_k = atoi(optarg);
			break;
		case 1:
			cfg.hold = atof(optarg);
			break;
		case 'B':
			cfg.bulk_user = optarg;
			break;
		case 2:
			cfg.msg = atoi(optarg);
			break;
		case 'r':
			cfg.resume = true;
			break;
		case 3:
			if (strcmp(optarg, "1.2") == 0)
				cfg.tls_ver = TLS1_2_VERSION;
			else if (strcmp(optarg, "1.3") == 0)
				cfg.tls_ver = TLS1_3_VERSION;
			else
				usage();
			break;
		case 4:
			cfg.sni = optarg;
			break;
		case 'H':
			cfg.host = optarg;
			break;
		case 'q':
			cfg.quiet = true;
			break;
		default:
			usage();
		}
	}
	if (cfg.port <= 0 || cfg.conc <= 0 || cfg.duration <= 0)
		usage();
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[256];
	struct rusage ru;
	double t_ready = 0, t_end_hold = 0;
	bool ready_printed = false;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	memset(&g_addr, 0, sizeof(g_addr));
	g_addr.sin_family = AF_INET;
	g_addr.sin_port = htons((uint16_t)cfg.port);
	if (inet_pton(AF_INET, cfg.host, &g_addr.sin_addr) != 1)
		die("bad host %s", cfg.host);
	tls_init();
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0)
		die("epoll_create1: %s", strerror(errno));

	/* idle mode keeps K sessions, starting at most C at a time */
	g_nsess = cfg.mode == M_IDLE ? cfg.idle_k : cfg.conc;
	g_sess = calloc((size_t)g_nsess, sizeof(*g_sess));
	g_slot_sess = calloc((size_t)g_nsess, sizeof(*g_slot_sess));
	if (g_sess == NULL || g_slot_sess == NULL)
		die("out of memory");
	for (int i = 0; i < g_nsess; i++) {
		g_sess[i].fd = -1;
		g_sess[i].rbuf = malloc(cfg.mode == M_IDLE ? 4096 : RBUF_SIZE);
		if (g_sess[i].rbuf == NULL)
			die("out of memory");
	}

	g_t0 = now();
	g_win_start = g_t0 + cfg.warmup;
	g_win_end = cfg.mode == M_IDLE ? 1e18 : g_win_start + cfg.duration;
	if (cfg.mode == M_IDLE) {
		g_win_start = g_t0;
	}

	while (!g_stop) {
		double t = now();
		int started = 0, busy = 0, n;

		/* timeouts; then keep C sessions in progress */
		for (int i = 0; i < g_nsess; i++) {
			struct sess *s = &g_sess[i];
			if (s->st == ST_FREE)
				continue;
			if (s->deadline > 0 && t > s->deadline)
				sess_fail(s, "timeout");
			else if (s->st != ST_IDLE)
				busy++;
		}
		for (int i = 0; i < g_nsess; i++) {
			if (g_sess[i].st != ST_FREE)
				continue;
			if (cfg.mode == M_IDLE) {
				if (busy >= cfg.conc || ready_printed ||
				    n_idle + n_fail_total + busy >= cfg.idle_k)
					break;
			} else if (t >= g_win_end ||
			           (cfg.count > 0 &&
			            n_ok_total + n_fail_total + busy >= cfg.count)) {
				break;
			}
			if (sess_start(i)) {
				started++;
				busy++;
			}
		}
		(void)started;
		if (cfg.mode != M_IDLE && t >= g_win_end)
			break;
		if (cfg.mode != M_IDLE && cfg.count > 0 && n_ok_total + n_fail_total >= cfg.count)
			break;
		if (cfg.mode == M_IDLE) {
			if (!ready_printed && n_idle + n_fail_total >= cfg.idle_k) {
				t_ready = now();
				printf("READY idle=%ld failed=%ld ramp_s=%.2f\n", n_idle,
				       n_fail_total, t_ready - g_t0);
				fflush(stdout);
				ready_printed = true;
				t_end_hold = t_ready + cfg.hold;
			}
			if (ready_printed && t >= t_end_hold)
				break;
		}
		n = epoll_wait(g_ep, evs, 256, 50);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct sess *s = evs[i].data.ptr;
			if (s->st == ST_CONNECT && (evs[i].events & (EPOLLERR | EPOLLHUP)) &&
			    !(evs[i].events & EPOLLOUT)) {
				sess_fail(s, "connect failed");
				continue;
			}
			sess_run(s);
		}
	}

	double t_stop = now();
	double window = cfg.mode == M_IDLE
	                    ? t_stop - g_t0
	                    : (t_stop < g_win_end ? t_stop : g_win_end) - g_win_start;
	if (window <= 0)
		window = 1e-9;
	for (int i = 0; i < g_nsess; i++)
		if (g_sess[i].st != ST_FREE)
			sess_release(&g_sess[i]);
	qsort(g_lat, g_nlat, sizeof(*g_lat), cmp_double);
	getrusage(RUSAGE_SELF, &ru);
	printf("RESULT mode=%s proto=%s conc=%d window_s=%.3f ok=%ld fail=%ld total_ok=%ld "
	       "total_fail=%ld rate=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f full_hs=%ld "
	       "resumed=%ld bytes=%llu bytes_total=%llu mbps=%.1f idle=%ld tls=%s cpu_user=%.3f "
	       "cpu_sys=%.3f\n",
	       cfg.mode == M_LOGIN  ? "login"
	       : cfg.mode == M_IDLE ? "idle"
	                            : "bulk",
	       cfg.proto == P_IMAP ? "imap" : "pop3", cfg.conc, window, n_ok, n_fail, n_ok_total,
	       n_fail_total, (double)n_ok / window, pct(50), pct(90), pct(99), n_full, n_resumed,
	       (unsigned long long)g_bytes, (unsigned long long)g_bytes_total,
	       (double)g_bytes / window / 1e6, n_idle, g_tls,
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	if (g_first_error[0] != '\0' && !cfg.quiet)
		fprintf(stderr, "FIRST_ERROR %s\n", g_first_error);
	if (g_first_error[0] != '\0')
		printf("FIRST_ERROR %s\n", g_first_error);
	return 0;
}
