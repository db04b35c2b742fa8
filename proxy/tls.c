/*
 * tls.c: OpenSSL on the client side.  Builds the one server SSL_CTX, runs
 * handshakes without blocking, and maps SSL_get_error() onto the events the
 * conn must wait for.  Nothing below TLS 1.2 is ever offered.
 */
#include <errno.h>
#include <string.h>

#include <openssl/err.h>

#include "conn.h"
#include "log.h"
#include "tls.h"

static void
print_ssl_errors(FILE *errs, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char msg[256];

	if (e == 0) {
		fprintf(errs, "%s: %s\n", path, what);
		return;
	}
	ERR_error_string_n(e, msg, sizeof(msg));
	fprintf(errs, "%s: %s: %s\n", path, what, msg);
	ERR_clear_error();
}

SSL_CTX *
tls_ctx_new(const struct config *cfg, FILE *errs)
{
	SSL_CTX *ctx;
	int have_type[3] = {0, 0, 0}; /* RSA, EC, other */
	bool ok = true;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		print_ssl_errors(errs, "cannot create TLS context", cfg->path);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, cfg->tls.min_version)) {
		print_ssl_errors(errs, "cannot set tls.min_version", cfg->path);
		ok = false;
	}
	if (cfg->tls.ciphers && !SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers)) {
		print_ssl_errors(errs, "tls.ciphers matches no cipher", cfg->path);
		ok = false;
	}
	if (cfg->tls.ciphersuites && !SSL_CTX_set_ciphersuites(ctx, cfg->tls.ciphersuites)) {
		print_ssl_errors(errs, "tls.ciphersuites is not valid", cfg->path);
		ok = false;
	}
	if (cfg->tls.groups && !SSL_CTX_set1_groups_list(ctx, cfg->tls.groups)) {
		print_ssl_errors(errs, "tls.groups is not valid", cfg->path);
		ok = false;
	}
	/* Renegotiation is a DoS lever and useless here; compression is CRIME. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
					 SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Idle sessions give their read/write buffers back (about 34 KiB each). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern", 7);

	for (size_t i = 0; i < cfg->tls.ncerts; i++) {
		const struct cert_conf *cc = &cfg->tls.certs[i];
		EVP_PKEY *pk;
		int slot;

		/* One context holds one certificate per key type: an RSA and an
		 * ECDSA certificate are served by what each client supports. */
		if (SSL_CTX_use_certificate_chain_file(ctx, cc->cert) != 1) {
			print_ssl_errors(errs, "cannot load certificate chain", cc->cert);
			ok = false;
			continue;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, cc->key, SSL_FILETYPE_PEM) != 1) {
			print_ssl_errors(errs, "cannot load private key", cc->key);
			ok = false;
			continue;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			print_ssl_errors(errs, "private key does not match the certificate",
					 cc->key);
			ok = false;
			continue;
		}
		pk = SSL_CTX_get0_privatekey(ctx);
		slot = EVP_PKEY_is_a(pk, "RSA") ? 0 : EVP_PKEY_is_a(pk, "EC") ? 1 : 2;
		if (have_type[slot]++) {
			fprintf(errs,
				"%s: a second certificate of the same key type; choosing "
				"certificates by SNI name is not supported yet\n",
				cc->cert);
			ok = false;
		}
	}
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
tls_conn_start(struct conn *c)
{
	c->ssl = SSL_new(c->w->ssl_ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		ERR_clear_error();
		return -1;
	}
	SSL_set_accept_state(c->ssl);
	c->rd_wants = EV_READ;
	c->wr_wants = EV_WRITE;
	return 0;
}

int
tls_conn_handshake(struct conn *c)
{
	char reason[256];
	unsigned long e;
	int r, err;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		log_kv(LOG_DEBUG, "tls.ok", "cid=%016llx version=%s cipher=%s",
		       (unsigned long long)c->id, SSL_get_version(c->ssl),
		       SSL_get_cipher_name(c->ssl));
		return 1;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		c->rd_wants = EV_READ;
		return 0;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		c->rd_wants = EV_WRITE;
		return 0;
	}
	e = ERR_peek_error();
	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "%s", err == SSL_ERROR_SYSCALL && errno ?
					strerror(errno) : "connection closed");
	ERR_clear_error();
	log_kv(LOG_INFO, "tls.fail", "cid=%016llx client=%s reason=\"%s\"",
	       (unsigned long long)c->id, c->peer, reason);
	return -1;
}

ssize_t
tls_conn_read(struct conn *c, void *p, size_t n)
{
	int r, err;

	ERR_clear_error();
	r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	err = SSL_get_error(c->ssl, r);
	switch (err) {
	case SSL_ERROR_WANT_READ:
		c->rd_wants = EV_READ;
		return CIO_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->rd_wants = EV_WRITE;
		return CIO_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return errno == 0 ? 0 : CIO_ERR;
	default:
		ERR_clear_error();
		return CIO_ERR;
	}
}

ssize_t
tls_conn_write(struct conn *c, const void *p, size_t n)
{
	int r, err;

	ERR_clear_error();
	r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	err = SSL_get_error(c->ssl, r);
	switch (err) {
	case SSL_ERROR_WANT_WRITE:
		c->wr_wants = EV_WRITE;
		return CIO_AGAIN;
	case SSL_ERROR_WANT_READ:
		c->wr_wants = EV_READ;
		return CIO_AGAIN;
	default:
		ERR_clear_error();
		return CIO_ERR;
	}
}

void
tls_conn_free(struct conn *c)
{
	if (c->ssl == NULL)
		return;
	/* One non-blocking attempt at close_notify; never wait for the peer's. */
	ERR_clear_error();
	if (SSL_is_init_finished(c->ssl))
		(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
	SSL_free(c->ssl);
	c->ssl = NULL;
}
