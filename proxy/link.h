/*
 * link.h: one byte stream to a peer: a socket, its TLS (if any) and its
 * libev watcher.  The same type serves the client side, the backend side
 * and health checks, so reading, writing, handshakes, verification and
 * close_notify are written once.  A link never interprets the bytes and
 * never closes anything but itself.
 */
#ifndef POSTERN_LINK_H
#define POSTERN_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "container.h"

/* link_read()/link_write() results besides a byte count (> 0) or EOF (0). */
#define LINK_AGAIN (-1) /* nothing now: rd_wants / wr_wants say which event to wait for */
#define LINK_ERR   (-2) /* failed; errno or the TLS error is gone, close the link */

typedef void (*link_cb)(struct ev_loop *loop, ev_io *io, int revents);

struct link {
	int fd;               /* owned; -1 when there is none */
	SSL *ssl;             /* owned; NULL for plaintext */
	struct ev_loop *loop; /* borrowed */
	ev_io io;             /* embedded; the owner finds itself with container_of() */
	uint8_t events;       /* what io watches now */
	uint8_t rd_wants;     /* EV_READ, or EV_WRITE when SSL_read must write */
	uint8_t wr_wants;     /* EV_WRITE, or EV_READ when SSL_write must read */
	bool tls_failed;      /* a fatal TLS error: no close_notify */
};

/* Embed fd (may be -1) with cb as the watcher's callback; watches nothing. */
void link_init(struct link *l, struct ev_loop *loop, int fd, link_cb cb);

/* A non-blocking socket connecting to sa.  0 (under way: wait for
 * EV_WRITE, then link_connect_error()), or -1 with errno. */
int link_connect(struct link *l, const struct sockaddr *sa, socklen_t salen);
/* After the socket became writable: 0 connected, else the errno. */
int link_connect_error(const struct link *l);

/* Bytes (> 0), 0 on EOF, LINK_AGAIN or LINK_ERR.  Through TLS when l->ssl. */
ssize_t link_read(struct link *l, void *p, size_t n);
ssize_t link_write(struct link *l, const void *p, size_t n);
/* Plain bytes on the socket (a PROXY header before TLS): all of it or -1. */
int link_send_all(struct link *l, const void *p, size_t n);

/* Watch exactly events (0: none). */
void link_watch(struct link *l, int events);

/* Server-side TLS on the socket with ctx.  -1 on failure. */
int link_tls_server(struct link *l, SSL_CTX *ctx);
/* Client-side TLS with ctx, verifying the peer's chain and name (a DNS
 * name, or a literal address), SNI sent for names only (RFC 6066 §3).
 * -1 on failure. */
int link_tls_client(struct link *l, SSL_CTX *ctx, const char *name);
/* One handshake step: 1 done, 0 in progress (rd_wants says what to wait
 * for), -1 failed with the reason (verification, TLS, socket) in why. */
int link_handshake(struct link *l, char *why, size_t whylen);

/* Our side is done writing: close_notify (no waiting) and SHUT_WR. */
void link_shutdown_write(struct link *l);
/* Stop watching, send close_notify if it can go without waiting and was
 * not preceded by a fatal error, free the TLS state and close the socket.
 * Safe on a closed link. */
void link_close(struct link *l);
/* Move src's socket and TLS into dst (re-armed with cb); src is left
 * closed without closing anything. */
void link_move(struct link *dst, struct link *src, link_cb cb);

#endif
