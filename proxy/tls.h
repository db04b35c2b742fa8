/*
 * tls.h: every OpenSSL context postern uses, built from one config snapshot
 * (server certificates chosen by SNI, client contexts for backends), the
 * session-ticket keys shared by all of them.  TLS on a connection (handshake,
 * read, write, close_notify) is link.c's.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdio.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "config.h"

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
void tls_state_unref(struct tls_state **stp);
/* The server context for listener li (its default certificate). */
SSL_CTX *tls_state_server_ctx(const struct tls_state *st, size_t li);
/* The client context for backend bi, NULL when its link is plain. */
SSL_CTX *tls_state_backend_ctx(const struct tls_state *st, size_t bi);
/* The client context for backends a lookup names by address
 * (lookup.backend_defaults), NULL when no listener has a lookup. */
SSL_CTX *tls_state_dyn_ctx(const struct tls_state *st);

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

/* The name a backend's certificate must carry (verify_name, else host). */
static inline const char *
tls_backend_verify_name(const struct backend_conf *bc)
{
	return bc->verify_name ? bc->verify_name : bc->host;
}

/* Does the DNS name pattern (maybe "*.example.org") match name?  Both lower
 * case; a wildcard covers exactly one label (RFC 6125 §6.4.3). */
bool tls_name_match(const char *pattern, const char *name);

#endif
