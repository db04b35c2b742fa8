/*
 * tls.h: every OpenSSL context postern uses, built from one config snapshot
 * (server certificates chosen by SNI, client contexts for backends), the
 * session-ticket keys shared by all of them, and TLS on a client
 * connection: non-blocking handshake, read and write with the wants of
 * SSL_ERROR_WANT_READ/WRITE recorded on the conn.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdio.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "config.h"

struct conn;

/* Immutable after creation, refcounted: connections keep the state they
 * started with while a reload publishes a new one. */
struct tls_state;

/*
 * Build every context of cfg: one set of server contexts per certificate
 * set (tls.certificates, and each listener's own), each certificate's DNS
 * names (SAN, else CN, wildcards allowed) selecting it by SNI, an RSA and an
 * ECDSA certificate of the same names side by side; and one client context
 * per TLS backend.  NULL with every problem printed to errs.
 */
struct tls_state *tls_state_new(const struct config *cfg, FILE *errs);
struct tls_state *tls_state_ref(struct tls_state *st);
void tls_state_unref(struct tls_state **stp);
/* The server context for listener li (its default certificate). */
SSL_CTX *tls_state_server_ctx(const struct tls_state *st, size_t li);
/* The client context for backend bi, NULL when its link is plain. */
SSL_CTX *tls_state_backend_ctx(const struct tls_state *st, size_t bi);

/*
 * Session-ticket keys (RFC 5077 / TLS 1.3 tickets), process-wide.  Without
 * tls.ticket_key_file a random key is made at start and replaced every
 * tls.session_timeout, the two before it still accepted; with the file its
 * keys are used (the first encrypts, all decrypt), so proxies sharing the
 * file resume each other's sessions.  tls_tickets_load() is called at start
 * and on reload: -1 (keys unchanged) with the problem printed to errs.
 */
int tls_tickets_load(const struct config *cfg, FILE *errs);
/* Called periodically; rotates the generated key when it is due. */
void tls_tickets_tick(uint64_t now_ms);

/* Attach a new SSL in server mode to c->fd.  -1 on failure. */
int tls_conn_start(struct conn *c);
/* One handshake step: 1 done, 0 in progress (c->rd_wants set), -1 failed
 * (logged). */
int tls_conn_handshake(struct conn *c);
/* Read/write through ssl: bytes, 0 on EOF, CIO_AGAIN (*wants: the event to
 * wait for) or CIO_ERR (*failed set: no close_notify afterwards). */
ssize_t tls_io_read(SSL *ssl, void *p, size_t n, int *wants, bool *failed);
ssize_t tls_io_write(SSL *ssl, const void *p, size_t n, int *wants, bool *failed);
/* Send close_notify if possible (never waits) and free c->ssl. */
void tls_conn_free(struct conn *c);

/* TLS to backend bi on c->bfd: verification of the chain against the
 * backend's CA and of its name (verify_name, else host), SNI sent.  -1 on
 * failure. */
int tls_backend_start(struct conn *c, size_t bi, const struct backend_conf *bc);
/* One handshake step: 1 done, 0 in progress (c->brd_wants set), -1 failed
 * with the reason (verification or TLS) in why. */
int tls_backend_handshake(struct conn *c, char *why, size_t whylen);
void tls_backend_free(struct conn *c);

/* Does the DNS name pattern (maybe "*.example.org") match name?  Both lower
 * case; a wildcard covers exactly one label (RFC 6125 §6.4.3). */
bool tls_name_match(const char *pattern, const char *name);

#endif
