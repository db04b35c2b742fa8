/*
 * conn.c: the connection object: accept to close, TLS handshake, the
 * pre-auth read/parse/write pump, timers and the two-step close.  Protocol
 * talk lives in imap_session.c / pop3_session.c, the backend dialog in
 * backend.c, the relay in relay.c.  Never blocks; one conn costs one
 * connection, never the process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "acl.h"
#include "backend.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "proxyproto.h"
#include "relay.h"
#include "runtime.h"
#include "sasl.h"
#include "tls.h"

const char *const conn_state_name[CS__COUNT] = {
    [CS_PROXY] = "proxy",     [CS_TLS_ACCEPT] = "tls_accept", [CS_PREAUTH] = "preauth",
    [CS_BACKEND] = "backend", [CS_RELAY] = "relay",           [CS_CLOSING] = "closing",
};
_Static_assert(sizeof(conn_state_name) / sizeof(conn_state_name[0]) == CS__COUNT,
               "conn_state_name must name every state");

const char *const fail_class_name[FAIL__COUNT] = {
    [FAIL_NONE] = "none",
    [FAIL_AUTH] = "auth_failed",
    [FAIL_POLICY] = "policy",
    [FAIL_LIMIT] = "limit",
    [FAIL_BACKEND_DOWN] = "backend_down",
    [FAIL_BACKEND_PROTO] = "backend_protocol",
    [FAIL_INTERNAL] = "internal",
    [FAIL_THROTTLE] = "throttled",
};
_Static_assert(sizeof(fail_class_name) / sizeof(fail_class_name[0]) == FAIL__COUNT,
               "fail_class_name must name every class");

#define CLOSING_LINGER 5.0 /* seconds to flush last words before closing */

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void conn_bio_cb(struct ev_loop *loop, ev_io *io, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void conn_run(struct conn *c);
static void delay_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void conn_hold(struct conn *c, uint64_t ms);
static void starttls_begin(struct conn *c);
static int conn_begin(struct conn *c);
static void proxy_run(struct conn *c);

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
conn_addr_parts(const struct sockaddr_storage *sa, char *ip, size_t iplen, unsigned *port)
{
	snprintf(ip, iplen, "unknown");
	*port = 0;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)iplen);
		*port = ntohs(s4->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, (socklen_t)iplen);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, (socklen_t)iplen);
		*port = ntohs(s6->sin6_port);
	}
}

static void
format_peer(const struct sockaddr *sa, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		snprintf(out, outlen, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		snprintf(out, outlen, "[%s]:%u", host, port);
	} else {
		snprintf(out, outlen, "unknown");
	}
}

struct conn *
conn_new(struct worker *w, size_t li, int fd, const struct sockaddr *sa, socklen_t salen)
{
	const struct listener_conf *lc;
	struct conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto fail;
	/* The config and TLS of the moment, kept for the whole session. */
	c->rt = runtime_get();
	c->cfg = c->rt->cfg;
	c->li = li;
	c->lc = lc = &c->cfg->listeners[li];
	c->w = w;
	c->proto = lc->proto == PROTO_IMAP ? &imap_proto_ops : &pop3_proto_ops;
	c->fd = fd;
	c->bfd = -1;
	c->brd_wants = EV_READ;
	c->bwr_wants = EV_WRITE;
	c->id = splitmix64(&w->cid_state);
	c->started = ev_now(w->loop);
	c->rd_wants = EV_READ;
	c->wr_wants = EV_WRITE;
	if (salen <= sizeof(c->client_sa))
		memcpy(&c->client_sa, sa, salen);
	{
		socklen_t ll = sizeof(c->local_sa);
		if (getsockname(fd, (struct sockaddr *)&c->local_sa, &ll) < 0)
			memset(&c->local_sa, 0, sizeof(c->local_sa));
	}
	format_peer(sa, c->peer, sizeof(c->peer));
	buf_init(&c->in, CONN_BUF_SIZE, true); /* pre-auth input holds passwords */
	buf_init(&c->out, CONN_OUT_SIZE, false);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	ev_io_init(&c->io, conn_io_cb, fd, 0);
	ev_io_init(&c->bio, conn_bio_cb, -1, 0);
	ev_init(&c->timer, conn_timer_cb);
	ev_init(&c->delay, delay_cb);

	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;

	if (lc->proxy_protocol) {
		struct acl_addr a;
		/* Only the load balancers named in trusted may tell us who the
		 * client is; anyone else could claim any address. */
		if (acl_addr_from_sockaddr(sa, salen, &a) < 0 ||
		    acl_find(lc->trusted, lc->ntrusted, &a) == NULL) {
			log_kv(LOG_WARN, "proxy.refused", "cid=%016llx lst=%s peer=%s",
			       (unsigned long long)c->id, lc->name, c->peer);
			conn_close(c, "proxy_untrusted");
			return NULL;
		}
		c->pp = calloc(1, sizeof(*c->pp));
		if (c->pp == NULL) {
			conn_close(c, "out_of_memory");
			return NULL;
		}
		proxyproto_init(c->pp);
		conn_set_state(c, CS_PROXY);
		conn_set_timeout(c, (ev_tstamp)c->cfg->timeouts.handshake_ms / 1000.0);
		conn_run(c);
		return c;
	}
	return conn_begin(c) < 0 ? NULL : c;
fail:
	close(fd);
	return NULL;
}

/* After accept, or after the PROXY header: TLS or the plaintext greeting.
 * -1 when c was closed. */
static int
conn_begin(struct conn *c)
{
	const struct listener_conf *lc = c->lc;

	enum policy_verdict v;
	const char *why = NULL;

	/* Logged here, after any PROXY header: client= is the real client. */
	log_kv(LOG_INFO, "session.start", "cid=%016llx proto=%s lst=%s client=%s tls=%s",
	       (unsigned long long)c->id, proto_name(lc->proto), lc->name, c->peer,
	       lc->tls == TLSM_IMPLICIT ? "implicit" : "starttls");
	v = policy_accept(c->w->policy, (const struct sockaddr *)&c->client_sa,
	                  sizeof(c->client_sa), &c->pc, &why);
	if (v != POLICY_ALLOW) {
		/* A proper refusal, after the TLS handshake when there is one. */
		log_kv(LOG_INFO, "policy.deny", "cid=%016llx client=%s verdict=%s reason=%s",
		       (unsigned long long)c->id, c->peer, policy_verdict_name[v], why ? why : "-");
		if (c->proto->kind == PROTO_IMAP)
			c->refuse = v == POLICY_DENY_ACL
			                ? "* BYE [CONTACTADMIN] Connections from your address are "
			                  "not allowed.\r\n"
			                : "* BYE [UNAVAILABLE] Too many connections from your "
			                  "address, try again later.\r\n";
		else
			c->refuse = v == POLICY_DENY_ACL
			                ? "-ERR [SYS/PERM] Connections from your address are not "
			                  "allowed.\r\n"
			                : "-ERR [SYS/TEMP] Too many connections from your address, "
			                  "try again later.\r\n";
	}
	if (lc->tls == TLSM_IMPLICIT) {
		if (tls_conn_start(c) < 0) {
			conn_close(c, "tls_setup_failed");
			return -1;
		}
		conn_set_state(c, CS_TLS_ACCEPT);
		conn_set_timeout(c, (ev_tstamp)c->cfg->timeouts.handshake_ms / 1000.0);
		conn_run(c);
		return 0;
	}
	/* STARTTLS listener: greet in plaintext. */
	if (c->refuse != NULL) {
		(void)buf_append(&c->out, c->refuse, strlen(c->refuse));
		conn_close_after(c, "policy_refused");
		return c->closed ? -1 : 0;
	}
	if (c->proto->start(c) < 0) {
		conn_close(c, "internal_error");
		return -1;
	}
	conn_set_state(c, CS_PREAUTH);
	conn_set_timeout(c, (ev_tstamp)c->cfg->timeouts.login_ms / 1000.0);
	conn_run(c);
	return 0;
}

/*
 * Read the PROXY header without taking a byte of what follows (a TLS
 * ClientHello): each read asks for no more than proxyproto_want() says
 * the header can still hold.
 */
static void
proxy_run(struct conn *c)
{
	struct pp_parser *p = c->pp;

	for (int i = 0; i < PP_V1_MAX + 4; i++) {
		uint8_t b[PP_HEADER_MAX];
		size_t want, used = 0;
		struct pp_result res;
		enum pp_rc rc;
		ssize_t n;

		want = proxyproto_want(p); /* never past the header */
		if (want == 0 || want > sizeof(b))
			want = 1;
		do
			n = recv(c->fd, b, want, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->rd_wants = EV_READ;
			conn_update_io(c);
			return;
		}
		if (n <= 0) {
			conn_close(c, "client_closed");
			return;
		}
		c->bytes_in += (uint64_t)n;
		rc = proxyproto_parse(p, b, (size_t)n, &used, &res);
		if (rc == PP_MORE)
			continue;
		if (rc == PP_BAD) {
			log_kv(LOG_WARN, "proxy.bad", "cid=%016llx lst=%s peer=%s reason=\"%s\"",
			       (unsigned long long)c->id, c->lc->name, c->peer,
			       res.error ? res.error : "malformed");
			conn_close(c, "proxy_header_bad");
			return;
		}
		/* PP_DONE: the real client, unless the balancer spoke for itself. */
		if (!res.local && res.srclen > 0 && res.srclen <= sizeof(c->client_sa)) {
			char was[CONN_PEER_MAX];
			snprintf(was, sizeof(was), "%s", c->peer);
			memcpy(&c->client_sa, &res.src, res.srclen);
			if (res.dstlen > 0 && res.dstlen <= sizeof(c->local_sa))
				memcpy(&c->local_sa, &res.dst, res.dstlen);
			format_peer((const struct sockaddr *)&c->client_sa, c->peer,
			            sizeof(c->peer));
			log_kv(LOG_INFO, "proxy.header", "cid=%016llx lst=%s client=%s via=%s v=%d",
			       (unsigned long long)c->id, c->lc->name, c->peer, was, res.version);
		}
		free(c->pp);
		c->pp = NULL;
		(void)conn_begin(c);
		return;
	}
	conn_close(c, "proxy_header_bad");
}

void
conn_set_state(struct conn *c, enum conn_state st)
{
	if (c->state != st && log_get_level() <= LOG_DEBUG)
		log_kv(LOG_DEBUG, "conn.state", "cid=%016llx state=%s->%s",
		       (unsigned long long)c->id, conn_state_name[c->state], conn_state_name[st]);
	c->state = st;
}

void
conn_set_timeout(struct conn *c, ev_tstamp seconds)
{
	c->timeout = seconds;
	ev_timer_stop(c->w->loop, &c->timer);
	if (seconds > 0) {
		ev_timer_set(&c->timer, seconds, seconds);
		ev_timer_start(c->w->loop, &c->timer);
	}
}

int
conn_login_begin(struct conn *c, const char *user, size_t user_len, const char *secret,
                 size_t secret_len, const char *mech, enum fail_class *fc_out, const char **why_out)
{
	size_t n = user_len < sizeof(c->user) - 1 ? user_len : sizeof(c->user) - 1;

	memcpy(c->user, user, n); /* for logs; log_quote() escapes it */
	c->user[n] = '\0';
	c->login_mech = mech;
	c->login_started = ev_now(c->w->loop);
	*fc_out = FAIL_AUTH;
	if (user_len == 0 || user_len > CREDS_USER_MAX || secret_len == 0 ||
	    secret_len > CREDS_SECRET_MAX) {
		*why_out = "invalid_credentials";
		return -1;
	}
	/* A user name is text: CR, LF, NUL and other controls have no business
	 * there and are how command injection would start. */
	for (size_t i = 0; i < user_len; i++) {
		unsigned char ch = (unsigned char)user[i];
		if (ch < 0x20 || ch == 0x7f) {
			*why_out = "invalid_user_name";
			return -1;
		}
	}
	/* A password may hold anything SASL PLAIN can carry, but not NUL, CR or
	 * LF: POP3 PASS and IMAP quoted strings cannot carry them either. */
	if (memchr(secret, '\0', secret_len) || memchr(secret, '\r', secret_len) ||
	    memchr(secret, '\n', secret_len)) {
		*why_out = "invalid_password";
		return -1;
	}
	{
		uint64_t delay = 0;
		/* Throttled: no backend hears of it; answered after the tarpit. */
		if (policy_login_check(c->w->policy, (const struct sockaddr *)&c->client_sa,
		                       sizeof(c->client_sa), user, user_len,
		                       (uint64_t)(ev_now(c->w->loop) * 1000.0),
		                       &delay) != POLICY_ALLOW) {
			*fc_out = FAIL_THROTTLE;
			*why_out = "throttled";
			c->throttle_delay_ms = delay;
			return -1;
		}
	}
	c->creds = calloc(1, sizeof(*c->creds));
	if (c->creds == NULL) {
		*fc_out = FAIL_INTERNAL;
		*why_out = "out_of_memory";
		return -1;
	}
	memcpy(c->creds->user, user, user_len);
	c->creds->user_len = user_len;
	memcpy(c->creds->secret, secret, secret_len);
	c->creds->secret_len = secret_len;
	return backend_start(c, fc_out, why_out);
}

void
conn_login(struct conn *c, const char *user, size_t user_len, const char *secret, size_t secret_len,
           const char *mech)
{
	enum fail_class fc;
	const char *why;

	if (conn_login_begin(c, user, user_len, secret, secret_len, mech, &fc, &why) < 0)
		c->proto->login_done(c, fc, why);
}

int
conn_login_sasl_plain(struct conn *c, const char *b64, size_t len)
{
	char user[SASL_USER_MAX + 1], secret[SASL_SECRET_MAX + 1];
	size_t ulen = 0, slen = 0;
	enum sasl_rc rc;

	c->login_mech = "plain";
	rc = sasl_plain_decode(b64, len, user, &ulen, secret, &slen);
	if (rc == SASL_OK)
		conn_login(c, user, ulen, secret, slen, "plain");
	OPENSSL_cleanse(user, sizeof(user));
	OPENSSL_cleanse(secret, sizeof(secret));
	return (int)rc;
}

bool
conn_login_end(struct conn *c, enum fail_class fc, const char *why)
{
	char quser[LOG_QUOTED_MAX];
	double ms = (ev_now(c->w->loop) - c->login_started) * 1000.0;

	conn_creds_free(c);
	if (fc != FAIL_NONE)
		backend_free(c);
	log_quote(quser, sizeof(quser), c->user, strlen(c->user));
	if (fc == FAIL_NONE) {
		log_kv(LOG_INFO, "login.ok",
		       "cid=%016llx proto=%s client=%s user=%s mech=%s "
		       "backend=%s ms=%.0f",
		       (unsigned long long)c->id, proto_name(c->lc->proto), c->peer, quser,
		       c->login_mech, c->backend_name ? c->backend_name : "-", ms);
		return false;
	}
	log_kv(LOG_INFO, "login.fail",
	       "cid=%016llx proto=%s client=%s user=%s mech=%s "
	       "backend=%s class=%s reason=%s ms=%.0f",
	       (unsigned long long)c->id, proto_name(c->lc->proto), c->peer, quser, c->login_mech,
	       c->backend_name ? c->backend_name : "-", fail_class_name[fc], why ? why : "-", ms);
	if (fc == FAIL_AUTH) {
		/* Only real credential failures count, never an outage. */
		conn_hold(c,
		          policy_login_failed(c->w->policy, (const struct sockaddr *)&c->client_sa,
		                              sizeof(c->client_sa), c->user, strlen(c->user),
		                              (uint64_t)(ev_now(c->w->loop) * 1000.0)));
	} else if (fc == FAIL_THROTTLE) {
		conn_hold(c, c->throttle_delay_ms);
	}
	if (fc == FAIL_AUTH || fc == FAIL_POLICY || fc == FAIL_THROTTLE)
		c->auth_failures++;
	return c->auth_failures >= c->cfg->limits.max_auth_failures;
}

void
conn_creds_free(struct conn *c)
{
	if (c->creds == NULL)
		return;
	OPENSSL_cleanse(c->creds, sizeof(*c->creds));
	free(c->creds);
	c->creds = NULL;
}

static void
set_watcher(struct ev_loop *loop, ev_io *io, int fd, int *cur, int want)
{
	if (fd < 0)
		want = 0;
	if (*cur == want)
		return;
	ev_io_stop(loop, io);
	if (want != 0) {
		ev_io_set(io, fd, want);
		ev_io_start(loop, io);
	}
	*cur = want;
}

void
conn_update_io(struct conn *c)
{
	int cw = 0, bw = 0;

	if (c->closed)
		return;
	switch (c->state) {
	case CS_PROXY:
	case CS_TLS_ACCEPT:
		cw = c->rd_wants;
		break;
	case CS_PREAUTH:
		if (c->tarpit)
			cw = 0; /* neither answer nor read until the delay ends */
		else
			cw = buf_len(&c->out) > 0 ? c->wr_wants : c->rd_wants;
		break;
	case CS_BACKEND:
		cw = buf_len(&c->out) > 0 ? c->wr_wants : 0;
		bw = backend_events(c);
		break;
	case CS_RELAY:
		if (!c->c_eof && buf_space(&c->in) > 0)
			cw |= c->rd_wants;
		if (buf_len(&c->out) > 0)
			cw |= c->wr_wants;
		if (!c->b_eof && buf_space(&c->out) > 0)
			bw |= c->brd_wants;
		if (buf_len(&c->in) > 0)
			bw |= c->bwr_wants;
		break;
	case CS_CLOSING:
		cw = c->tarpit ? 0 : c->wr_wants;
		break;
	case CS__COUNT:
		break;
	}
	set_watcher(c->w->loop, &c->io, c->fd, &c->io_events, cw);
	set_watcher(c->w->loop, &c->bio, c->bfd, &c->bio_events, bw);
}

ssize_t
conn_client_read(struct conn *c, void *p, size_t n)
{
	ssize_t r;

	if (n == 0)
		return CIO_AGAIN;
	if (c->ssl == NULL) {
		do
			r = read(c->fd, p, n);
		while (r < 0 && errno == EINTR);
		if (r >= 0)
			return r;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->rd_wants = EV_READ;
			return CIO_AGAIN;
		}
		return CIO_ERR;
	}
	return tls_io_read(c->ssl, p, n, &c->rd_wants, &c->tls_failed);
}

ssize_t
conn_client_write(struct conn *c, const void *p, size_t n)
{
	ssize_t r;

	if (c->ssl == NULL) {
		do
			r = send(c->fd, p, n, MSG_NOSIGNAL);
		while (r < 0 && errno == EINTR);
		if (r > 0)
			return r;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->wr_wants = EV_WRITE;
			return CIO_AGAIN;
		}
		return CIO_ERR;
	}
	return tls_io_write(c->ssl, p, n, &c->wr_wants, &c->tls_failed);
}

ssize_t
conn_backend_read(struct conn *c, void *p, size_t n)
{
	ssize_t r;

	if (n == 0)
		return CIO_AGAIN;
	if (c->bssl != NULL)
		return tls_io_read(c->bssl, p, n, &c->brd_wants, &c->btls_failed);
	do
		r = recv(c->bfd, p, n, 0);
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		c->brd_wants = EV_READ;
		return CIO_AGAIN;
	}
	return CIO_ERR;
}

ssize_t
conn_backend_write(struct conn *c, const void *p, size_t n)
{
	ssize_t r;

	if (c->bssl != NULL)
		return tls_io_write(c->bssl, p, n, &c->bwr_wants, &c->btls_failed);
	do
		r = send(c->bfd, p, n, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		return r;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->bwr_wants = EV_WRITE;
		return CIO_AGAIN;
	}
	return CIO_ERR;
}

/* Write c->out to the client until done or the socket is full. Returns -1
 * if the connection failed (and was closed). */
static int
flush_out(struct conn *c)
{
	if (c->tarpit)
		return 0; /* a failed login's answer waits for its delay */
	while (buf_len(&c->out) > 0) {
		ssize_t n = conn_client_write(c, buf_head(&c->out), buf_len(&c->out));
		if (n == CIO_AGAIN)
			return 0;
		if (n <= 0) {
			conn_close(c, "client_write_error");
			return -1;
		}
		c->bytes_out += (uint64_t)n;
		buf_consume(&c->out, (size_t)n);
	}
	return 0;
}

void
conn_flush(struct conn *c)
{
	if (c->closed)
		return;
	if (flush_out(c) < 0)
		return;
	if (c->state == CS_CLOSING && buf_len(&c->out) == 0) {
		conn_close(c, c->close_reason);
		return;
	}
	conn_update_io(c);
}

void
conn_close_after(struct conn *c, const char *reason)
{
	if (c->closed)
		return;
	c->close_reason = reason;
	conn_set_state(c, CS_CLOSING);
	/* A held (tarpit) answer still goes out: linger past its delay. */
	conn_set_timeout(c, CLOSING_LINGER +
	                        (c->tarpit ? ev_timer_remaining(c->w->loop, &c->delay) : 0.));
	conn_flush(c);
}

static void
delay_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = container_of(t, struct conn, delay);

	(void)loop;
	(void)revents;
	c->tarpit = false;
	if (!c->closed)
		conn_run(c); /* the held answer goes out, then input again */
}

/* Hold c->out for ms (the tarpit of a failed login). */
static void
conn_hold(struct conn *c, uint64_t ms)
{
	if (ms == 0 || c->closed)
		return;
	c->tarpit = true;
	ev_timer_stop(c->w->loop, &c->delay);
	ev_timer_set(&c->delay, (ev_tstamp)ms / 1000.0, 0.);
	ev_timer_start(c->w->loop, &c->delay);
	conn_update_io(c);
}

/* Pre-auth: flush replies, parse what came, read more; the client must
 * read our replies before we read its next commands (nginx's s->blocked). */
static void
preauth_run(struct conn *c)
{
	for (int round = 0; round < 64; round++) {
		size_t space;
		uint8_t *t;
		ssize_t n;

		if (flush_out(c) < 0)
			return;
		if (buf_len(&c->out) > 0 || c->tarpit)
			break;
		if (c->starttls_pending) {
			starttls_begin(c);
			return;
		}
		if (buf_len(&c->in) > 0) {
			c->proto->on_input(c);
			if (c->closed || c->state != CS_PREAUTH)
				return; /* c may be closing or logging in */
			if (buf_len(&c->out) > 0)
				continue;
		}
		t = buf_tail(&c->in, &space);
		if (t == NULL) {
			conn_close(c, "out_of_memory");
			return;
		}
		n = conn_client_read(c, t, space);
		if (n == CIO_AGAIN)
			break;
		if (n == 0) {
			conn_close(c, "client_closed");
			return;
		}
		if (n < 0) {
			conn_close(c, "client_read_error");
			return;
		}
		buf_produce(&c->in, (size_t)n);
		c->bytes_in += (uint64_t)n;
	}
	conn_update_io(c);
}

void
conn_starttls(struct conn *c)
{
	c->starttls_pending = true;
}

static void
starttls_begin(struct conn *c)
{
	c->starttls_pending = false;
	if (buf_len(&c->in) > 0) {
		/* RFC 3207 §4.2 / RFC 2595 §3.1: nothing sent before the handshake
		 * may be taken as a command after it. */
		log_kv(LOG_INFO, "starttls.pipelined_dropped", "cid=%016llx client=%s bytes=%zu",
		       (unsigned long long)c->id, c->peer, buf_len(&c->in));
		buf_reset(&c->in);
	}
	if (tls_conn_start(c) < 0) {
		conn_close(c, "tls_setup_failed");
		return;
	}
	c->starttls_done = true;
	conn_set_state(c, CS_TLS_ACCEPT);
	conn_set_timeout(c, (ev_tstamp)c->cfg->timeouts.handshake_ms / 1000.0);
	conn_resume(c);
}

static void
tls_accept_run(struct conn *c)
{
	int r = tls_conn_handshake(c);

	if (r == 0) {
		conn_update_io(c);
		return;
	}
	if (r < 0) {
		conn_close(c, "tls_handshake_failed");
		return;
	}
	c->rd_wants = EV_READ;
	c->wr_wants = EV_WRITE;
	if (c->refuse != NULL) {
		(void)buf_append(&c->out, c->refuse, strlen(c->refuse));
		conn_close_after(c, "policy_refused");
		return;
	}
	/* After STARTTLS there is no second greeting (RFC 2595 §3.1). */
	if (!c->starttls_done && c->proto->start(c) < 0) {
		conn_close(c, "internal_error");
		return;
	}
	conn_set_state(c, CS_PREAUTH);
	conn_set_timeout(c, (ev_tstamp)c->cfg->timeouts.login_ms / 1000.0);
	preauth_run(c);
}

/* Log out of a backend whose login the policy refused, politely and without
 * waiting: one non-blocking write, then the link is closed. */
static void
backend_logout(struct conn *c)
{
	const char *bye = c->proto->kind == PROTO_IMAP ? "A9 LOGOUT\r\n" : "QUIT\r\n";

	(void)conn_backend_write(c, bye, strlen(bye));
	ev_io_stop(c->w->loop, &c->bio);
	c->bio_events = 0;
	if (c->bssl != NULL)
		tls_backend_free(c);
	if (c->bfd >= 0) {
		close(c->bfd);
		c->bfd = -1;
	}
}

static void
conn_policy_answer(void *arg, const struct policy_answer *a)
{
	struct conn *c = arg;
	enum fail_class fc;

	c->preq = NULL; /* freed by policy after this returns */
	if (c->closed)
		return;
	if (a->verdict == POLICY_ALLOW) {
		c->session_live = true;
		c->proto->login_done(c, FAIL_NONE, backend_ok_text(c)); /* c may be freed */
		return;
	}
	log_kv(LOG_INFO, "policy.deny", "cid=%016llx client=%s user=%s verdict=%s reason=%s",
	       (unsigned long long)c->id, c->peer, c->user[0] ? "(see login.fail)" : "-",
	       policy_verdict_name[a->verdict], a->reason ? a->reason : "-");
	switch (a->verdict) {
	case POLICY_DENY_PROTOCOL:
		fc = FAIL_POLICY;
		c->policy_allowed = a->allowed;
		break;
	case POLICY_DENY_LIMIT:
		fc = FAIL_LIMIT;
		break;
	default:
		fc = FAIL_INTERNAL;
		break;
	}
	backend_logout(c);
	c->proto->login_done(c, fc, a->reason ? a->reason : policy_verdict_name[a->verdict]);
}

void
conn_backend_ok(struct conn *c, const char *text)
{
	(void)text; /* kept in c->be until login_done: backend_ok_text() */
	c->preq = policy_postauth(c->w->pw, (const struct sockaddr *)&c->client_sa,
	                          sizeof(c->client_sa), c->user, strlen(c->user), c->lc->proto,
	                          (uint64_t)(ev_now(c->w->loop) * 1000.0), conn_policy_answer, c);
	if (c->preq == NULL) {
		backend_logout(c);
		c->proto->login_done(c, FAIL_INTERNAL, "policy_out_of_memory");
	}
}

void
conn_resume(struct conn *c)
{
	if (!c->closed)
		conn_run(c);
}

static void
conn_run(struct conn *c)
{
	switch (c->state) {
	case CS_PROXY:
		proxy_run(c);
		break;
	case CS_TLS_ACCEPT:
		tls_accept_run(c);
		break;
	case CS_PREAUTH:
		preauth_run(c);
		break;
	case CS_BACKEND:
	case CS_CLOSING:
		conn_flush(c);
		break;
	case CS_RELAY:
		relay_run(c);
		break;
	case CS__COUNT:
		break;
	}
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = container_of(io, struct conn, io);

	(void)loop;
	(void)revents;
	if (!c->closed)
		conn_run(c);
}

static void
conn_bio_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = container_of(io, struct conn, bio);

	(void)loop;
	if (c->closed)
		return;
	if (c->state == CS_BACKEND)
		backend_on_io(c, revents);
	else if (c->state == CS_RELAY)
		relay_run(c);
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = container_of(t, struct conn, timer);

	(void)loop;
	(void)revents;
	if (c->closed)
		return;
	switch (c->state) {
	case CS_PROXY:
		conn_close(c, "proxy_header_timeout");
		break;
	case CS_TLS_ACCEPT:
		conn_close(c, "handshake_timeout");
		break;
	case CS_PREAUTH:
		c->proto->bye(c, "Login timeout, closing connection");
		conn_close_after(c, "login_timeout");
		break;
	case CS_BACKEND:
		backend_on_timeout(c);
		break;
	case CS_RELAY:
		conn_close(c, "idle_timeout");
		break;
	case CS_CLOSING:
	case CS__COUNT:
		conn_close(c, c->close_reason ? c->close_reason : "closing_timeout");
		break;
	}
}

void
conn_close(struct conn *c, const char *reason)
{
	struct worker *w = c->w;
	char quser[LOG_QUOTED_MAX];
	double ms;

	if (c->closed)
		return;
	c->closed = true;
	ev_io_stop(w->loop, &c->io);
	ev_io_stop(w->loop, &c->bio);
	ev_timer_stop(w->loop, &c->timer);
	ev_timer_stop(w->loop, &c->delay);
	policy_req_cancel(&c->preq);
	if (c->session_live) {
		policy_session_end(w->policy, c->user, strlen(c->user), c->lc->proto);
		c->session_live = false;
	}
	policy_conn_closed(w->policy, &c->pc);
	if (c->be != NULL)
		backend_free(c);
	if (c->sess != NULL)
		c->proto->free_sess(c);
	free(c->pp);
	c->pp = NULL;
	conn_creds_free(c);
	if (c->ssl != NULL)
		tls_conn_free(c);
	if (c->bssl != NULL)
		tls_backend_free(c);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->bfd >= 0) {
		close(c->bfd);
		c->bfd = -1;
	}
	buf_deinit(&c->in);
	buf_deinit(&c->out);

	ms = (ev_now(w->loop) - c->started) * 1000.0;
	log_kv(LOG_INFO, "session.end",
	       "cid=%016llx proto=%s lst=%s client=%s user=%s backend=%s reason=%s in=%llu "
	       "out=%llu ms=%.0f",
	       (unsigned long long)c->id, proto_name(c->lc->proto), c->lc->name, c->peer,
	       log_quote(quser, sizeof(quser), c->user, strlen(c->user)),
	       c->backend_name ? c->backend_name : "-", reason ? reason : "unknown",
	       (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out, ms);

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	w->nconns--;
	c->reap_next = w->reap;
	w->reap = c;
	listener_conn_closed(w);
}

void
conn_reap(struct worker *w)
{
	while (w->reap != NULL) {
		struct conn *c = w->reap;
		w->reap = c->reap_next;
		runtime_unref(&c->rt);
		free(c);
	}
}
