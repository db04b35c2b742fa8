/*
 * link.c: a socket and its TLS as one stream (see link.h).  Maps
 * SSL_get_error() onto the libev event to wait for; never blocks, never
 * logs (the owner knows what the link is for and logs that).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "link.h"

void
link_init(struct link *l, struct ev_loop *loop, int fd, link_cb cb)
{
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->loop = loop;
	l->rd_wants = EV_READ;
	l->wr_wants = EV_WRITE;
	ev_io_init(&l->io, cb, fd, 0);
}

int
link_connect(struct link *l, const struct sockaddr *sa, socklen_t salen)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	l->fd = fd;
	return 0;
}

int
link_connect_error(const struct link *l)
{
	int err = 0;
	socklen_t el = sizeof(err);

	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		return errno;
	return err;
}

/* SSL_read/SSL_write's outcome as link results. */
static ssize_t
tls_result(struct link *l, int r, bool reading)
{
	switch (SSL_get_error(l->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		*(reading ? &l->rd_wants : &l->wr_wants) = EV_READ;
		return LINK_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		*(reading ? &l->rd_wants : &l->wr_wants) = EV_WRITE;
		return LINK_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		if (reading)
			return 0;
		break;
	case SSL_ERROR_SYSCALL:
		/* A peer that closed without close_notify: EOF for a reader. */
		if (reading && errno == 0) {
			ERR_clear_error();
			return 0;
		}
		break;
	default:
		break;
	}
	ERR_clear_error();
	l->tls_failed = true;
	return LINK_ERR;
}

ssize_t
link_read(struct link *l, void *p, size_t n)
{
	ssize_t r;

	if (n == 0)
		return LINK_AGAIN;
	if (l->ssl != NULL) {
		int k;
		ERR_clear_error();
		errno = 0;
		k = SSL_read(l->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
		return k > 0 ? k : tls_result(l, k, true);
	}
	do
		r = recv(l->fd, p, n, 0);
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		l->rd_wants = EV_READ;
		return LINK_AGAIN;
	}
	return LINK_ERR;
}

ssize_t
link_write(struct link *l, const void *p, size_t n)
{
	ssize_t r;

	if (l->ssl != NULL) {
		int k;
		ERR_clear_error();
		errno = 0;
		k = SSL_write(l->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
		return k > 0 ? k : tls_result(l, k, false);
	}
	do
		r = send(l->fd, p, n, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		return r;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		l->wr_wants = EV_WRITE;
		return LINK_AGAIN;
	}
	return LINK_ERR;
}

int
link_send_all(struct link *l, const void *p, size_t n)
{
	ssize_t w;

	do
		w = send(l->fd, p, n, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w == (ssize_t)n)
		return 0;
	if (w >= 0)
		errno = EAGAIN; /* a short write on a fresh socket: unusable */
	return -1;
}

void
link_watch(struct link *l, int events)
{
	if (l->fd < 0)
		events = 0;
	if (l->events == events)
		return;
	ev_io_stop(l->loop, &l->io);
	if (events != 0) {
		ev_io_set(&l->io, l->fd, events);
		ev_io_start(l->loop, &l->io);
	}
	l->events = (uint8_t)events;
}

/* Undo a TLS set-up that failed half way. */
static void
tls_drop(struct link *l)
{
	ERR_clear_error();
	SSL_free(l->ssl);
	l->ssl = NULL;
}

/* An SSL object on l's socket, as server or client, wanting nothing yet.
 * -1 (and no SSL left behind) when OpenSSL refused. */
static int
tls_new(struct link *l, SSL_CTX *ctx, bool server)
{
	l->ssl = ctx ? SSL_new(ctx) : NULL;
	if (l->ssl == NULL || SSL_set_fd(l->ssl, l->fd) != 1) {
		tls_drop(l);
		return -1;
	}
	if (server)
		SSL_set_accept_state(l->ssl);
	else
		SSL_set_connect_state(l->ssl);
	l->rd_wants = EV_READ;
	l->wr_wants = EV_WRITE;
	l->tls_failed = false;
	return 0;
}

int
link_tls_server(struct link *l, SSL_CTX *ctx)
{
	return tls_new(l, ctx, true);
}

int
link_tls_client(struct link *l, SSL_CTX *ctx, const char *name)
{
	struct in6_addr a6;
	struct in_addr a4;
	bool is_ip = inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1;

	if (tls_new(l, ctx, false) < 0)
		return -1;
	/* Verify the name, never just the chain (RFC 6125); SNI for names only
	 * (RFC 6066 §3 forbids literal addresses). */
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), name) != 1) {
			tls_drop(l);
			return -1;
		}
	} else if (SSL_set1_host(l->ssl, name) != 1 ||
	           SSL_set_tlsext_host_name(l->ssl, name) != 1) {
		tls_drop(l);
		return -1;
	}
	return 0;
}

int
link_handshake(struct link *l, char *why, size_t whylen)
{
	unsigned long e;
	long vr;
	int r, err;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(l->ssl);
	if (r == 1) {
		l->rd_wants = EV_READ;
		l->wr_wants = EV_WRITE;
		return 1;
	}
	err = SSL_get_error(l->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		l->rd_wants = err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
		return 0;
	}
	l->tls_failed = true;
	vr = SSL_is_server(l->ssl) ? X509_V_OK : SSL_get_verify_result(l->ssl);
	e = ERR_peek_error();
	if (vr != X509_V_OK)
		snprintf(why, whylen, "certificate verification failed: %s",
		         X509_verify_cert_error_string(vr));
	else if (e != 0)
		ERR_error_string_n(e, why, whylen);
	else
		snprintf(why, whylen, "%s",
		         err == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "connection closed");
	ERR_clear_error();
	return -1;
}

void
link_shutdown_write(struct link *l)
{
	if (l->ssl != NULL && !l->tls_failed) {
		ERR_clear_error();
		(void)SSL_shutdown(l->ssl); /* close_notify; no wait */
		ERR_clear_error();
	}
	if (l->fd >= 0)
		shutdown(l->fd, SHUT_WR);
}

void
link_close(struct link *l)
{
	link_watch(l, 0);
	if (l->ssl != NULL) {
		/* One non-blocking attempt at close_notify, never after a fatal
		 * error (SSL_shutdown(3)); never wait for the peer's. */
		ERR_clear_error();
		if (!l->tls_failed && SSL_is_init_finished(l->ssl))
			(void)SSL_shutdown(l->ssl);
		ERR_clear_error();
		SSL_free(l->ssl);
		l->ssl = NULL;
	}
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	l->tls_failed = false;
	l->rd_wants = EV_READ;
	l->wr_wants = EV_WRITE;
}

void
link_move(struct link *dst, struct link *src, link_cb cb)
{
	link_watch(src, 0);
	link_init(dst, src->loop, src->fd, cb);
	dst->ssl = src->ssl;
	dst->rd_wants = src->rd_wants;
	dst->wr_wants = src->wr_wants;
	dst->tls_failed = src->tls_failed;
	src->ssl = NULL;
	src->fd = -1;
}
