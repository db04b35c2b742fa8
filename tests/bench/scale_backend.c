/*
 * scale_backend.c: a fake IMAP backend for the scale harness.  One thread,
 * one epoll loop, plain TCP; holds any number of logged-in sessions for a
 * few dozen bytes each (an idle session owns no buffer).  Never checks a
 * password and keeps no mailbox: one fixed message answers every FETCH.
 * Prints "READY ports=A..B" once listening and nothing per connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINE_MAX_BYTES (8 * 1024)  /* one line; longer closes (like postern) */
#define CMD_MAX_BYTES  (16 * 1024) /* a command with its literals */
#define EVENTS         4096
#define ACCEPT_BURST   1024        /* accepts per readiness event */
#define RBUF_BYTES     (64 * 1024) /* shared: one read at a time */
#define CAPS           "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE AUTH=PLAIN"

enum kind { K_LISTEN, K_CONN };

/* What the next complete line means. */
enum cstate {
	CS_CMD,       /* a command */
	CS_AUTH_CONT, /* AUTHENTICATE PLAIN's response after "+ " */
	CS_IDLE,      /* "DONE" ends IDLE */
};

struct listener {
	uint8_t kind; /* K_LISTEN; first, like struct conn's */
	int fd;
};

/* A connection: fd and state, plus heap buffers only while a partial
 * command is read or a reply waits for the socket. */
struct conn {
	uint8_t kind;      /* K_CONN */
	uint8_t st;        /* enum cstate */
	bool in_literal;   /* the next lit_left bytes are literal data */
	bool closing;      /* close once out is written (LOGOUT) */
	int fd;            /* owned */
	uint32_t lit_left; /* literal bytes still to read */
	uint32_t line_len; /* bytes of the current line in pend */
	char *pend;        /* owned, NULL when empty: partial command */
	uint32_t pend_len;
	char *out; /* owned, NULL when empty: unwritten reply */
	uint32_t out_len, out_off;
	char tag[32]; /* the IDLE / AUTHENTICATE command's tag */
};

static struct {
	const char *addr;
	int port, count;
	size_t msg_bytes;
} cfg = {.addr = "127.0.0.1", .count = 1, .msg_bytes = 4096};

static int g_ep;
static volatile sig_atomic_t g_stop;
static char *g_msg;     /* the message every FETCH returns */
static char *g_scratch; /* one reply being built */
static size_t g_scratch_cap;
static size_t g_scratch_len;
static char g_rbuf[RBUF_BYTES];

static void
die(const char *what)
{
	fprintf(stderr, "scale_backend: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* As root, lift the hard limit too (up to fs.nr_open); else soft = hard. */
static void
raise_nofile(void)
{
	struct rlimit rl;
	long nr_open = 1048576;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");

	if (f != NULL) {
		if (fscanf(f, "%ld", &nr_open) != 1)
			nr_open = 1048576;
		fclose(f);
	}
	rl.rlim_cur = rl.rlim_max = (rlim_t)nr_open;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
conn_free(struct conn *c)
{
	close(c->fd); /* also leaves the epoll set */
	free(c->pend);
	free(c->out);
	free(c);
}

static void
reply_reset(void)
{
	g_scratch_len = 0;
}

static void
reply_add(const char *s, size_t n)
{
	if (g_scratch_len + n > g_scratch_cap) {
		size_t cap = g_scratch_cap * 2 + n;
		char *p = realloc(g_scratch, cap);
		if (p == NULL)
			die("realloc");
		g_scratch = p;
		g_scratch_cap = cap;
	}
	memcpy(g_scratch + g_scratch_len, s, n);
	g_scratch_len += n;
}

static void
reply_str(const char *s)
{
	reply_add(s, strlen(s));
}

static void
reply_tagged(const char *tag, size_t tag_len, const char *rest)
{
	reply_add(tag, tag_len);
	reply_add(" ", 1);
	reply_str(rest);
}

/* Write the scratch reply; what the socket does not take waits in c->out
 * (and reading stops until it is written).  -1: the connection is gone. */
static int
reply_flush(struct conn *c)
{
	size_t off = 0;

	if (g_scratch_len == 0)
		return 0;
	if (c->out != NULL) { /* behind an earlier reply: queue after it */
		char *p = realloc(c->out, c->out_len + g_scratch_len);
		if (p == NULL)
			die("realloc");
		memcpy(p + c->out_len, g_scratch, g_scratch_len);
		c->out = p;
		c->out_len += (uint32_t)g_scratch_len;
		reply_reset();
		return 0;
	}
	while (off < g_scratch_len) {
		ssize_t n = send(c->fd, g_scratch + off, g_scratch_len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		reply_reset();
		return -1;
	}
	if (off < g_scratch_len) {
		struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
		c->out_len = (uint32_t)(g_scratch_len - off);
		c->out_off = 0;
		c->out = malloc(c->out_len);
		if (c->out == NULL)
			die("malloc");
		memcpy(c->out, g_scratch + off, c->out_len);
		if (epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
			die("epoll_ctl");
	}
	reply_reset();
	return 0;
}

/* The next space-separated token of [*p, end): its start and length. */
static const char *
token(const char **p, const char *end, size_t *len_out)
{
	const char *s = *p, *t;

	while (s < end && *s == ' ')
		s++;
	t = s;
	while (t < end && *t != ' ' && *t != '\r' && *t != '\n')
		t++;
	*p = t;
	*len_out = (size_t)(t - s);
	return s;
}

static bool
word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* Case-insensitive search of w in [s, s+n). */
static bool
contains(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);

	for (size_t i = 0; i + wl <= n; i++)
		if (strncasecmp(s + i, w, wl) == 0)
			return true;
	return false;
}

static void
remember_tag(struct conn *c, const char *tag, size_t n)
{
	if (n >= sizeof(c->tag))
		n = sizeof(c->tag) - 1;
	memcpy(c->tag, tag, n);
	c->tag[n] = '\0';
}

static void
do_fetch(const char *tag, size_t tl, const char *args, size_t al)
{
	char hdr[96];
	const char *item = "BODY[]";

	if (contains(args, al, "RFC822") && !contains(args, al, "BODY"))
		item = "RFC822";
	else if (!contains(args, al, "BODY[]") && !contains(args, al, "BODY.PEEK[]")) {
		reply_tagged(tag, tl, "BAD only BODY[], BODY.PEEK[] or RFC822\r\n");
		return;
	}
	snprintf(hdr, sizeof(hdr), "* 1 FETCH (%s {%zu}\r\n", item, cfg.msg_bytes);
	reply_str(hdr);
	reply_add(g_msg, cfg.msg_bytes);
	reply_str(")\r\n");
	reply_tagged(tag, tl, "OK FETCH completed\r\n");
}

/* One complete command (with its literals) in [s, s+n), CRLF included.
 * Returns -1 when the connection is to close after the reply. */
static int
do_command(struct conn *c, const char *s, size_t n)
{
	const char *end = s + n, *p = s, *tag, *cmd;
	size_t tl, cl;

	if (c->st == CS_IDLE) {
		size_t dl;
		const char *d = token(&p, end, &dl);
		c->st = CS_CMD;
		if (word_is(d, dl, "DONE"))
			reply_tagged(c->tag, strlen(c->tag), "OK IDLE terminated\r\n");
		else
			reply_tagged(c->tag, strlen(c->tag), "BAD expected DONE\r\n");
		return 0;
	}
	if (c->st == CS_AUTH_CONT) {
		c->st = CS_CMD;
		if (n >= 1 && s[0] == '*')
			reply_tagged(c->tag, strlen(c->tag), "BAD AUTHENTICATE cancelled\r\n");
		else
			reply_tagged(c->tag, strlen(c->tag),
			             "OK [CAPABILITY " CAPS "] Logged in\r\n");
		return 0;
	}
	tag = token(&p, end, &tl);
	cmd = token(&p, end, &cl);
	if (tl == 0) {
		reply_str("* BAD empty command\r\n");
		return 0;
	}
	if (cl == 0) {
		reply_tagged(tag, tl, "BAD missing command\r\n");
		return 0;
	}
	if (word_is(cmd, cl, "CAPABILITY")) {
		reply_str("* CAPABILITY " CAPS "\r\n");
		reply_tagged(tag, tl, "OK CAPABILITY completed\r\n");
	} else if (word_is(cmd, cl, "ID")) {
		reply_str("* ID NIL\r\n");
		reply_tagged(tag, tl, "OK ID completed\r\n");
	} else if (word_is(cmd, cl, "LOGIN")) {
		reply_tagged(tag, tl, "OK [CAPABILITY " CAPS "] Logged in\r\n");
	} else if (word_is(cmd, cl, "AUTHENTICATE")) {
		size_t ml, il;
		const char *mech = token(&p, end, &ml);
		token(&p, end, &il);
		if (!word_is(mech, ml, "PLAIN")) {
			reply_tagged(tag, tl, "NO unsupported mechanism\r\n");
		} else if (il > 0) {
			reply_tagged(tag, tl, "OK [CAPABILITY " CAPS "] Logged in\r\n");
		} else {
			remember_tag(c, tag, tl);
			c->st = CS_AUTH_CONT;
			reply_str("+ \r\n");
		}
	} else if (word_is(cmd, cl, "ENABLE")) {
		reply_str("* ENABLED\r\n");
		reply_tagged(tag, tl, "OK ENABLE completed\r\n");
	} else if (word_is(cmd, cl, "NOOP")) {
		reply_tagged(tag, tl, "OK NOOP completed\r\n");
	} else if (word_is(cmd, cl, "SELECT") || word_is(cmd, cl, "EXAMINE")) {
		reply_str("* FLAGS (\\Seen)\r\n* 1 EXISTS\r\n* 0 RECENT\r\n"
		          "* OK [UIDVALIDITY 1] UIDs valid\r\n* OK [UIDNEXT 2] next\r\n");
		reply_tagged(tag, tl,
		             word_is(cmd, cl, "SELECT") ? "OK [READ-WRITE] SELECT completed\r\n"
		                                        : "OK [READ-ONLY] EXAMINE completed\r\n");
	} else if (word_is(cmd, cl, "FETCH")) {
		do_fetch(tag, tl, p, (size_t)(end - p));
	} else if (word_is(cmd, cl, "IDLE")) {
		remember_tag(c, tag, tl);
		c->st = CS_IDLE;
		reply_str("+ idling\r\n");
	} else if (word_is(cmd, cl, "LOGOUT")) {
		reply_str("* BYE logging out\r\n");
		reply_tagged(tag, tl, "OK LOGOUT completed\r\n");
		return -1;
	} else {
		reply_tagged(tag, tl, "BAD unknown command\r\n");
	}
	return 0;
}

/* "{123}\r\n" or "{123+}\r\n" at the end of a line: the literal's size
 * and whether it is non-synchronizing; false when there is none. */
static bool
line_literal(const char *s, size_t n, uint32_t *len_out, bool *plus_out)
{
	size_t i;
	uint64_t v = 0, mul = 1;

	if (n >= 2 && s[n - 2] == '\r')
		n -= 2;
	else if (n >= 1)
		n -= 1;
	if (n < 3 || s[n - 1] != '}')
		return false;
	i = n - 2;
	*plus_out = s[i] == '+';
	if (*plus_out)
		i--;
	if (s[i] < '0' || s[i] > '9')
		return false;
	while (i > 0 && s[i] >= '0' && s[i] <= '9') {
		v += (uint64_t)(s[i] - '0') * mul;
		mul *= 10;
		if (v > 0xffffffffu || mul > 10000000000ull)
			return false;
		i--;
	}
	if (s[i] != '{')
		return false;
	*len_out = (uint32_t)v;
	return true;
}

static int
pend_add(struct conn *c, const char *s, size_t n)
{
	char *p;

	if (c->pend_len + n > CMD_MAX_BYTES)
		return -1;
	p = realloc(c->pend, c->pend_len + n);
	if (p == NULL)
		die("realloc");
	memcpy(p + c->pend_len, s, n);
	c->pend = p;
	c->pend_len += (uint32_t)n;
	return 0;
}

static void
pend_clear(struct conn *c)
{
	free(c->pend);
	c->pend = NULL;
	c->pend_len = 0;
	c->line_len = 0;
}

/* Feed bytes read; replies go to the scratch buffer.  -1: close (after
 * flushing what was replied). */
static int
conn_feed(struct conn *c, const char *s, size_t n)
{
	while (n > 0) {
		const char *nl;
		size_t k;

		if (c->in_literal) {
			k = n < c->lit_left ? n : c->lit_left;
			if (pend_add(c, s, k) < 0)
				return -1;
			s += k;
			n -= k;
			c->lit_left -= (uint32_t)k;
			if (c->lit_left == 0)
				c->in_literal = false;
			continue;
		}
		nl = memchr(s, '\n', n);
		if (nl == NULL) {
			if (c->line_len + n > LINE_MAX_BYTES || pend_add(c, s, n) < 0)
				return -1;
			c->line_len += (uint32_t)n;
			return 0;
		}
		k = (size_t)(nl - s) + 1;
		if (c->line_len + k > LINE_MAX_BYTES)
			return -1;
		{
			uint32_t lit;
			bool plus;
			const char *line = s;
			size_t line_n = k;
			/* the line's own bytes, for the literal check */
			if (c->line_len > 0) {
				if (pend_add(c, s, k) < 0)
					return -1;
				line = c->pend + c->pend_len - c->line_len - k;
				line_n = c->line_len + k;
			}
			if (c->st == CS_CMD && line_literal(line, line_n, &lit, &plus)) {
				if (lit > LINE_MAX_BYTES)
					return -1;
				if (c->line_len == 0 && pend_add(c, s, k) < 0)
					return -1;
				c->line_len = 0;
				c->in_literal = lit > 0;
				c->lit_left = lit;
				if (!plus)
					reply_str("+ go ahead\r\n");
			} else if (c->pend != NULL) {
				if (c->line_len == 0 && pend_add(c, s, k) < 0)
					return -1;
				int r = do_command(c, c->pend, c->pend_len);
				pend_clear(c);
				if (r < 0)
					return -1;
			} else if (do_command(c, s, k) < 0) {
				return -1;
			}
		}
		s += k;
		n -= k;
	}
	return 0;
}

static void
conn_read(struct conn *c)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n = recv(c->fd, g_rbuf, sizeof(g_rbuf), 0);
		if (n == 0 ||
		    (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			conn_free(c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		reply_reset();
		int r = conn_feed(c, g_rbuf, (size_t)n);
		if (reply_flush(c) < 0 || (r < 0 && c->out == NULL)) {
			conn_free(c);
			return;
		}
		if (r < 0) {
			c->closing = true; /* the rest of the reply first */
			return;
		}
		if (c->out != NULL)
			return; /* no more reading until the reply is out */
		if ((size_t)n < sizeof(g_rbuf))
			return;
	}
}

static void
conn_write(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (uint32_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_free(c);
		return;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->closing) {
		conn_free(c);
		return;
	}
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
	if (epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
		die("epoll_ctl");
	conn_read(c); /* what came while the reply waited */
}

static void
on_accept(struct listener *l)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		struct epoll_event e = {.events = EPOLLIN};

		if (fd < 0) {
			static bool said;
			if ((errno == EMFILE || errno == ENFILE) && !said) {
				fprintf(stderr, "scale_backend: accept: %s (said once)\n",
				        strerror(errno));
				said = true;
			}
			return;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			die("calloc");
		c->kind = K_CONN;
		c->fd = fd;
		e.data.ptr = c;
		if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e) < 0)
			die("epoll_ctl add");
		reply_reset();
		reply_str("* OK [CAPABILITY " CAPS "] fake ready\r\n");
		if (reply_flush(c) < 0)
			conn_free(c);
	}
}

static void
make_message(void)
{
	static const char head[] = "From: a@example.org\r\nTo: b@example.org\r\n"
	                           "Subject: scale\r\n\r\n";
	size_t i;

	g_msg = malloc(cfg.msg_bytes + 1);
	if (g_msg == NULL)
		die("malloc");
	for (i = 0; i < cfg.msg_bytes; i++)
		g_msg[i] = (i % 72 == 70) ? '\r' : (i % 72 == 71) ? '\n' : 'x';
	memcpy(g_msg, head, cfg.msg_bytes < sizeof(head) - 1 ? cfg.msg_bytes : sizeof(head) - 1);
}

static void
usage(void)
{
	fprintf(stderr, "usage: scale_backend [-a 127.0.0.1] -p PORT [-k COUNT] [-m MSG_BYTES]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static struct epoll_event evs[EVENTS];
	struct sigaction sa;
	int o;

	while ((o = getopt(argc, argv, "a:p:k:m:")) != -1) {
		switch (o) {
		case 'a':
			cfg.addr = optarg;
			break;
		case 'p':
			cfg.port = atoi(optarg);
			break;
		case 'k':
			cfg.count = atoi(optarg);
			break;
		case 'm':
			cfg.msg_bytes = (size_t)atol(optarg);
			break;
		default:
			usage();
		}
	}
	if (cfg.port <= 0 || cfg.count <= 0 || cfg.port + cfg.count - 1 > 65535 ||
	    cfg.msg_bytes > 64 * 1024 * 1024)
		usage();
	raise_nofile();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	make_message();
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0)
		die("epoll_create1");
	for (int i = 0; i < cfg.count; i++) {
		struct listener *l = calloc(1, sizeof(*l));
		struct sockaddr_in sin = {.sin_family = AF_INET,
		                          .sin_port = htons((uint16_t)(cfg.port + i))};
		struct epoll_event e = {.events = EPOLLIN};
		int one = 1;

		if (l == NULL)
			die("calloc");
		if (inet_pton(AF_INET, cfg.addr, &sin.sin_addr) != 1) {
			fprintf(stderr, "scale_backend: bad address %s\n", cfg.addr);
			return 2;
		}
		l->kind = K_LISTEN;
		l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (l->fd < 0)
			die("socket");
		setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
			fprintf(stderr, "scale_backend: bind %s:%d: %s\n", cfg.addr, cfg.port + i,
			        strerror(errno));
			return 2;
		}
		if (listen(l->fd, 65535) < 0)
			die("listen");
		e.data.ptr = l;
		if (epoll_ctl(g_ep, EPOLL_CTL_ADD, l->fd, &e) < 0)
			die("epoll_ctl");
	}
	printf("READY ports=%d..%d\n", cfg.port, cfg.port + cfg.count - 1);
	fflush(stdout);

	while (!g_stop) {
		int n = epoll_wait(g_ep, evs, EVENTS, 1000);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			uint8_t kind = *(uint8_t *)evs[i].data.ptr;
			if (kind == K_LISTEN) {
				on_accept(evs[i].data.ptr);
				continue;
			}
			struct conn *c = evs[i].data.ptr;
			if (c->out != NULL)
				conn_write(c); /* c may be freed here */
			else
				conn_read(c); /* c may be freed here */
		}
	}
	return 0;
}
