/*
 * tls.h: the server SSL_CTX built from the config, and TLS on a client
 * connection: non-blocking handshake, read and write with the wants of
 * SSL_ERROR_WANT_READ/WRITE recorded on the conn.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <sys/types.h>

#include <openssl/ssl.h>

#include "config.h"

struct conn;

/* Build the server context: certificates (RSA and ECDSA side by side),
 * TLS 1.2 minimum, cipher lists, groups.  NULL with every problem printed to
 * errs.  The context is shared by all workers. */
SSL_CTX *tls_ctx_new(const struct config *cfg, FILE *errs);

/* Attach a new SSL to c->fd in server mode.  -1 on failure. */
int tls_conn_start(struct conn *c);
/* One handshake step: 1 done, 0 in progress (c->rd_wants set), -1 failed
 * (logged). */
int tls_conn_handshake(struct conn *c);
/* As conn_client_read/conn_client_write. */
ssize_t tls_conn_read(struct conn *c, void *p, size_t n);
ssize_t tls_conn_write(struct conn *c, const void *p, size_t n);
/* Send close_notify if possible (never waits) and free c->ssl. */
void tls_conn_free(struct conn *c);

#endif
