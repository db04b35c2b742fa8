/*
 * tls.c: OpenSSL for both sides.  Builds the server contexts of a config
 * snapshot (certificates chosen by SNI), the backends' client contexts, the
 * session-ticket keys, and runs client handshakes without blocking, mapping
 * SSL_get_error() onto the events a conn must wait for.  Nothing below
 * TLS 1.2 is ever offered.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"

#define TLS_NAMES_MAX       64 /* DNS names taken from one certificate */
#define TICKET_KEYS_MAX     8  /* keys accepted at once */
#define TICKET_KEY_FILE_MAX (TICKET_KEYS_MAX * 80)

/* ---- server certificate sets ---------------------------------------------- */

/* Certificates for one set of names: an RSA and an ECDSA one may share it. */
struct tls_group {
	SSL_CTX *ctx;
	char *names[TLS_NAMES_MAX]; /* lower case; "*.example.org" allowed */
	size_t nnames;
	int have_type[3]; /* RSA, EC, other */
};

/* One certificate set: tls.certificates, or a listener's own. */
struct tls_certset {
	struct tls_group *groups;
	size_t ngroups; /* groups[0] is the default (no SNI, no match) */
};

struct tls_state {
	atomic_int refs;
	struct tls_certset *sets; /* [0]: tls.certificates; more for listeners' own */
	size_t nsets;
	size_t *listener_set; /* [nlisteners]: index into sets */
	size_t nlisteners;
	SSL_CTX **backend_ctx; /* [nbackends]: NULL for plain links */
	SSL_CTX *dyn_ctx;      /* backends named by a lookup: backend_defaults, or NULL */
	size_t nbackends;
};

static void
print_ssl_errors(FILE *errs, const char *where, const char *what)
{
	unsigned long e = ERR_get_error();
	char msg[256];

	if (e == 0) {
		fprintf(errs, "%s: %s\n", where, what);
		return;
	}
	ERR_error_string_n(e, msg, sizeof(msg));
	fprintf(errs, "%s: %s: %s\n", where, what, msg);
	ERR_clear_error();
}

bool
tls_name_match(const char *pattern, const char *name)
{
	const char *dot;

	if (strcmp(pattern, name) == 0)
		return true;
	if (pattern[0] != '*' || pattern[1] != '.')
		return false;
	/* "*.example.org" matches "a.example.org", not "example.org" nor
	 * "a.b.example.org" (RFC 6125 §6.4.3). */
	dot = strchr(name, '.');
	return dot != NULL && dot != name && strcmp(dot, pattern + 1) == 0;
}

static int ticket_key_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx,
                         EVP_MAC_CTX *hctx, int enc);

/* Settings every server context shares. */
static SSL_CTX *
server_ctx_new(const struct config *cfg, FILE *errs)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	bool ok = true;

	if (ctx == NULL) {
		print_ssl_errors(errs, cfg->path, "cannot create a TLS context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, cfg->tls.min_version)) {
		print_ssl_errors(errs, cfg->path, "cannot set tls.min_version");
		ok = false;
	}
	if (cfg->tls.ciphers && !SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers)) {
		print_ssl_errors(errs, cfg->path, "tls.ciphers matches no cipher");
		ok = false;
	}
	if (cfg->tls.ciphersuites && !SSL_CTX_set_ciphersuites(ctx, cfg->tls.ciphersuites)) {
		print_ssl_errors(errs, cfg->path, "tls.ciphersuites is not valid");
		ok = false;
	}
	if (cfg->tls.groups && !SSL_CTX_set1_groups_list(ctx, cfg->tls.groups)) {
		print_ssl_errors(errs, cfg->path, "tls.groups is not valid");
		ok = false;
	}
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Renegotiation is a DoS lever and useless here; compression is CRIME. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	                             SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* DHE suites of the cipher list need parameters: the RFC 7919 group
	 * that matches the certificate's strength (ffdhe2048 and up). */
	SSL_CTX_set_dh_auto(ctx, 1);
	/* Idle sessions give their read/write buffers back (about 34 KiB each). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Resumption: the context's session cache (shared by all workers, it is
	 * one context) for TLS 1.2 session ids, and tickets under our keys. */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern", 7);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, 20000);
	SSL_CTX_set_timeout(ctx, (long)(cfg->tls.session_timeout_ms / 1000));
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
	/* TLS 1.3: one ticket per handshake, not OpenSSL's two.  A client uses
	 * a ticket once and every resumed handshake hands out a fresh one
	 * (ticket_key_cb), so the second ticket only cost an encryption, a
	 * MAC and a record on every login. */
	SSL_CTX_set_num_tickets(ctx, 1);
	return ctx;
}

/* The DNS names a certificate is for: SAN DNS entries, else the CN. */
static size_t
cert_names(X509 *x, char **out, size_t max)
{
	GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	size_t n = 0;

	if (san != NULL) {
		for (int i = 0; i < sk_GENERAL_NAME_num(san) && n < max; i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
			const unsigned char *d;
			int len;

			if (g->type != GEN_DNS)
				continue;
			d = ASN1_STRING_get0_data(g->d.dNSName);
			len = ASN1_STRING_length(g->d.dNSName);
			if (len <= 0 || len > 253 || memchr(d, '\0', (size_t)len) != NULL)
				continue;
			out[n] = strndup((const char *)d, (size_t)len);
			if (out[n] != NULL)
				n++;
		}
		GENERAL_NAMES_free(san);
	}
	if (n == 0) {
		char cn[256];
		X509_NAME *sub = X509_get_subject_name(x);
		if (X509_NAME_get_text_by_NID(sub, NID_commonName, cn, sizeof(cn)) > 0 &&
		    (out[n] = strdup(cn)) != NULL)
			n++;
	}
	for (size_t i = 0; i < n; i++)
		for (char *p = out[i]; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	return n;
}

static bool
same_names(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		bool found = false;
		for (size_t j = 0; j < nb && !found; j++)
			found = strcmp(a[i], b[j]) == 0;
		if (!found)
			return false;
	}
	return true;
}

static void
certset_free(struct tls_certset *set)
{
	for (size_t g = 0; g < set->ngroups; g++) {
		SSL_CTX_free(set->groups[g].ctx);
		for (size_t i = 0; i < set->groups[g].nnames; i++)
			free(set->groups[g].names[i]);
	}
	free(set->groups);
	set->groups = NULL;
	set->ngroups = 0;
}

static int sni_cb(SSL *ssl, int *alert, void *arg);

static int
certset_build(struct tls_certset *set, const struct config *cfg, const struct cert_conf *certs,
              size_t ncerts, FILE *errs)
{
	bool ok = true;

	set->groups = calloc(ncerts, sizeof(*set->groups));
	if (set->groups == NULL)
		return -1;
	for (size_t i = 0; i < ncerts; i++) {
		const struct cert_conf *cc = &certs[i];
		char *names[TLS_NAMES_MAX];
		size_t nn = 0, g;
		struct tls_group *grp = NULL;
		X509 *x;
		EVP_PKEY *pk;
		int slot;
		SSL_CTX *probe = server_ctx_new(cfg, errs);

		/* Load into a scratch context first to learn the names. */
		if (probe == NULL)
			return -1;
		if (SSL_CTX_use_certificate_chain_file(probe, cc->cert) != 1) {
			print_ssl_errors(errs, cc->cert, "cannot load certificate chain");
			SSL_CTX_free(probe);
			ok = false;
			continue;
		}
		x = SSL_CTX_get0_certificate(probe);
		nn = cert_names(x, names, TLS_NAMES_MAX);
		SSL_CTX_free(probe);
		for (g = 0; g < set->ngroups; g++)
			if (same_names(set->groups[g].names, set->groups[g].nnames, names, nn))
				break;
		if (g == set->ngroups) {
			grp = &set->groups[set->ngroups++];
			grp->ctx = server_ctx_new(cfg, errs);
			if (grp->ctx == NULL) {
				for (size_t k = 0; k < nn; k++)
					free(names[k]);
				return -1;
			}
			memcpy(grp->names, names, nn * sizeof(names[0]));
			grp->nnames = nn;
		} else {
			grp = &set->groups[g];
			for (size_t k = 0; k < nn; k++)
				free(names[k]);
		}
		if (SSL_CTX_use_certificate_chain_file(grp->ctx, cc->cert) != 1) {
			print_ssl_errors(errs, cc->cert, "cannot load certificate chain");
			ok = false;
			continue;
		}
		if (SSL_CTX_use_PrivateKey_file(grp->ctx, cc->key, SSL_FILETYPE_PEM) != 1) {
			print_ssl_errors(errs, cc->key, "cannot load private key");
			ok = false;
			continue;
		}
		if (SSL_CTX_check_private_key(grp->ctx) != 1) {
			print_ssl_errors(errs, cc->key,
			                 "private key does not match the certificate");
			ok = false;
			continue;
		}
		pk = SSL_CTX_get0_privatekey(grp->ctx);
		slot = EVP_PKEY_is_a(pk, "RSA") ? 0 : EVP_PKEY_is_a(pk, "EC") ? 1 : 2;
		if (grp->have_type[slot]++) {
			fprintf(errs,
			        "%s: another certificate of the same key type has the same names; "
			        "give each name set one RSA and/or one ECDSA certificate\n",
			        cc->cert);
			ok = false;
		}
	}
	if (!ok)
		return -1;
	/* SNI picks among the groups; the callback sits on the context the
	 * handshake starts with, the default group's. */
	SSL_CTX_set_tlsext_servername_callback(set->groups[0].ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(set->groups[0].ctx, set);
	return 0;
}

/* RFC 6066 §3: switch to the certificates for the name the client asked for;
 * an unknown name gets the default, never a refusal. */
static int
sni_cb(SSL *ssl, int *alert, void *arg)
{
	const struct tls_certset *set = arg;
	const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	char name[256];
	size_t n;

	(void)alert;
	if (sn == NULL || set->ngroups < 2)
		return SSL_TLSEXT_ERR_OK;
	n = strnlen(sn, sizeof(name) - 1);
	for (size_t i = 0; i < n; i++)
		name[i] = (char)tolower((unsigned char)sn[i]);
	name[n] = '\0';
	/* Exact names first, then wildcards, groups in config order. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t g = 0; g < set->ngroups; g++) {
			const struct tls_group *grp = &set->groups[g];
			for (size_t i = 0; i < grp->nnames; i++) {
				bool wild = grp->names[i][0] == '*';
				if (pass == 0 ? (!wild && strcmp(grp->names[i], name) == 0)
				              : (wild && tls_name_match(grp->names[i], name))) {
					if (g != 0)
						SSL_set_SSL_CTX(ssl, grp->ctx);
					return SSL_TLSEXT_ERR_OK;
				}
			}
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

/* ---- backend client contexts ---------------------------------------------- */

static SSL_CTX *
backend_ctx_new(const struct config *cfg, const struct backend_conf *bc, FILE *errs)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		print_ssl_errors(errs, cfg->path, "cannot create a backend TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Always verify: a backend link is never silently unauthenticated. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (bc->ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, bc->ca, NULL) != 1) {
			print_ssl_errors(errs, bc->ca, "cannot load the backend CA file");
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		print_ssl_errors(errs, cfg->path, "cannot load the system CA store");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (bc->cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, bc->cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, bc->key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			print_ssl_errors(errs, bc->cert,
			                 "cannot load the backend client certificate");
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

/* ---- the state ------------------------------------------------------------ */

static void
tls_state_free(struct tls_state *st)
{
	for (size_t i = 0; i < st->nsets; i++)
		certset_free(&st->sets[i]);
	free(st->sets);
	free(st->listener_set);
	for (size_t i = 0; i < st->nbackends; i++)
		SSL_CTX_free(st->backend_ctx[i]);
	free(st->backend_ctx);
	SSL_CTX_free(st->dyn_ctx);
	free(st);
}

struct tls_state *
tls_state_new(const struct config *cfg, FILE *errs)
{
	struct tls_state *st = calloc(1, sizeof(*st));
	bool ok = true;

	if (st == NULL)
		return NULL;
	atomic_init(&st->refs, 1);
	st->nlisteners = cfg->nlisteners;
	st->nbackends = cfg->nbackends;
	st->sets = calloc(1 + cfg->nlisteners, sizeof(*st->sets));
	st->listener_set = calloc(cfg->nlisteners + 1, sizeof(*st->listener_set));
	st->backend_ctx = calloc(cfg->nbackends + 1, sizeof(*st->backend_ctx));
	if (st->sets == NULL || st->listener_set == NULL || st->backend_ctx == NULL)
		goto fail;
	if (certset_build(&st->sets[st->nsets++], cfg, cfg->tls.certs, cfg->tls.ncerts, errs) < 0)
		ok = false;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_conf *lc = &cfg->listeners[i];
		if (lc->ncerts == 0)
			continue; /* set 0 */
		st->listener_set[i] = st->nsets;
		if (certset_build(&st->sets[st->nsets++], cfg, lc->certs, lc->ncerts, errs) < 0)
			ok = false;
	}
	for (size_t i = 0; i < cfg->nbackends; i++) {
		if (cfg->backends[i].tls == TLSM_NONE)
			continue;
		st->backend_ctx[i] = backend_ctx_new(cfg, &cfg->backends[i], errs);
		if (st->backend_ctx[i] == NULL)
			ok = false;
	}
	/* A lookup may name a backend by address, and its answer may ask
	 * for TLS there even when backend_defaults do not. */
	for (size_t i = 0; i < cfg->nlisteners && st->dyn_ctx == NULL && ok; i++)
		if (config_lookup_url(cfg, &cfg->listeners[i]) != NULL &&
		    (st->dyn_ctx = backend_ctx_new(cfg, &cfg->lookup.backend_defaults, errs)) ==
		        NULL)
			ok = false;
	if (ok)
		return st;
fail:
	tls_state_free(st);
	return NULL;
}

void
tls_state_unref(struct tls_state **stp)
{
	struct tls_state *st = *stp;

	*stp = NULL;
	if (st != NULL && atomic_fetch_sub(&st->refs, 1) == 1)
		tls_state_free(st);
}

SSL_CTX *
tls_state_server_ctx(const struct tls_state *st, size_t li)
{
	size_t set = li < st->nlisteners ? st->listener_set[li] : 0;
	return st->sets[set].groups[0].ctx;
}

SSL_CTX *
tls_state_dyn_ctx(const struct tls_state *st)
{
	return st->dyn_ctx;
}

SSL_CTX *
tls_state_backend_ctx(const struct tls_state *st, size_t bi)
{
	return bi < st->nbackends ? st->backend_ctx[bi] : NULL;
}

/* ---- session tickets ------------------------------------------------------ */

struct ticket_key {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
};

static struct {
	pthread_mutex_t lock;
	struct ticket_key keys[TICKET_KEYS_MAX]; /* [0] encrypts; all decrypt */
	size_t nkeys;
	bool from_file;
	uint64_t rotate_every_ms;
	uint64_t next_rotation_ms;
} tickets = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int
ticket_key_generate(struct ticket_key *k)
{
	return RAND_bytes((unsigned char *)k, sizeof(*k)) == 1 ? 0 : -1;
}

int
tls_tickets_load(const struct config *cfg, FILE *errs)
{
	struct ticket_key keys[TICKET_KEYS_MAX];
	size_t n = 0;

	if (cfg->tls.ticket_key_file != NULL) {
		/* The format nginx uses: 80 bytes a key (16 name, 32 HMAC, 32 AES);
		 * several keys back to back, the first one encrypts. */
		unsigned char raw[TICKET_KEY_FILE_MAX + 1];
		FILE *f = fopen(cfg->tls.ticket_key_file, "rb");
		size_t len;

		if (f == NULL) {
			fprintf(errs, "%s: cannot open: %s\n", cfg->tls.ticket_key_file,
			        strerror(errno));
			return -1;
		}
		len = fread(raw, 1, sizeof(raw), f);
		fclose(f);
		if (len == 0 || len % 80 != 0 || len > TICKET_KEY_FILE_MAX) {
			fprintf(errs,
			        "%s: a ticket key file holds 1 to %d keys of 80 random bytes "
			        "(e.g. openssl rand 80 > FILE)\n",
			        cfg->tls.ticket_key_file, TICKET_KEYS_MAX);
			OPENSSL_cleanse(raw, sizeof(raw));
			return -1;
		}
		n = len / 80;
		for (size_t i = 0; i < n; i++) {
			memcpy(keys[i].name, raw + i * 80, 16);
			memcpy(keys[i].hmac, raw + i * 80 + 16, 32);
			memcpy(keys[i].aes, raw + i * 80 + 48, 32);
		}
		OPENSSL_cleanse(raw, sizeof(raw));
	}
	pthread_mutex_lock(&tickets.lock);
	tickets.rotate_every_ms = cfg->tls.session_timeout_ms;
	if (n > 0) {
		memcpy(tickets.keys, keys, n * sizeof(keys[0]));
		tickets.nkeys = n;
		tickets.from_file = true;
	} else if (tickets.from_file || tickets.nkeys == 0) {
		/* Keys of our own, made here and rotated by tls_tickets_tick(). */
		tickets.nkeys = 0;
		tickets.from_file = false;
		if (ticket_key_generate(&tickets.keys[0]) == 0)
			tickets.nkeys = 1;
		tickets.next_rotation_ms = 0; /* the first tick schedules */
	}
	pthread_mutex_unlock(&tickets.lock);
	OPENSSL_cleanse(keys, sizeof(keys));
	return 0;
}

void
tls_tickets_tick(uint64_t now_ms)
{
	pthread_mutex_lock(&tickets.lock);
	if (!tickets.from_file && tickets.rotate_every_ms > 0) {
		if (tickets.next_rotation_ms == 0) {
			tickets.next_rotation_ms = now_ms + tickets.rotate_every_ms;
		} else if (now_ms >= tickets.next_rotation_ms) {
			struct ticket_key k;
			/* New key first; the two before it still decrypt, so a
			 * ticket lives between one and three periods. */
			if (ticket_key_generate(&k) == 0) {
				memmove(&tickets.keys[1], &tickets.keys[0],
				        2 * sizeof(tickets.keys[0]));
				tickets.keys[0] = k;
				if (tickets.nkeys < 3)
					tickets.nkeys++;
				OPENSSL_cleanse(&k, sizeof(k));
				log_kv(LOG_INFO, "tls.ticket_key_rotated", "keys=%zu",
				       tickets.nkeys);
			}
			tickets.next_rotation_ms = now_ms + tickets.rotate_every_ms;
		}
	}
	pthread_mutex_unlock(&tickets.lock);
}

static int
ticket_key_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx,
              EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_key k;
	OSSL_PARAM params[3];
	int rc = 0;
	size_t i;

	pthread_mutex_lock(&tickets.lock);
	if (enc) {
		if (tickets.nkeys > 0) {
			k = tickets.keys[0];
			rc = 1;
		}
	} else {
		for (i = 0; i < tickets.nkeys; i++) {
			if (memcmp(tickets.keys[i].name, key_name, 16) == 0) {
				k = tickets.keys[i];
				/* 2: valid, and OpenSSL issues a fresh ticket.  Always
				 * in TLS 1.3: clients use a ticket once (RFC 8446
				 * §C.4), and after a resumed handshake OpenSSL sends
				 * a new one only when asked to, so 1 would leave the
				 * client none and make every other connection a full
				 * handshake.  In TLS 1.2, only for an old key. */
				rc = i == 0 && SSL_version(s) != TLS1_3_VERSION ? 1 : 2;
				break;
			}
		}
	}
	pthread_mutex_unlock(&tickets.lock);
	if (rc == 0)
		return 0; /* no key: no ticket / unknown key: a full handshake */
	if (enc) {
		memcpy(key_name, k.name, 16);
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1 ||
		    EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
			rc = -1;
	} else if (EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
		rc = -1;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		rc = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}
