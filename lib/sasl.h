/*
 * sasl.h: SASL PLAIN (RFC 4616) and the base64 around it (RFC 4648), for
 * both sides of the proxy.  Pure functions; base64 is OpenSSL's EVP codec.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_USER_MAX   256
#define SASL_SECRET_MAX 1024
/* base64 of authzid(<=256) NUL authcid(<=256) NUL passwd(<=1024), with its NUL:
 * 4 * ceil(1538 / 3) + 1 = 2053 (sasl.c checks it) */
#define SASL_MAX_B64 2056

enum sasl_rc {
	SASL_OK,
	SASL_BAD_BASE64, /* not valid base64 */
	SASL_BAD_FORMAT, /* not authzid NUL authcid NUL passwd */
	SASL_TOO_LONG,   /* a field over its limit */
	SASL_AUTHZID,    /* authzid given and differs from authcid (proxy refuses) */
};

/*
 * Decode a base64 PLAIN response b64[0..len) into user (authcid) and secret,
 * NUL-terminated, with their lengths.  An authzid equal to the authcid is
 * accepted; any other non-empty authzid gives SASL_AUTHZID.  On any error,
 * user and secret are wiped.
 */
enum sasl_rc sasl_plain_decode(const char *b64, size_t len, char user[SASL_USER_MAX + 1],
                               size_t *user_len_out, char secret[SASL_SECRET_MAX + 1],
                               size_t *secret_len_out);

/*
 * Encode "\0user\0secret" as base64 into out (NUL-terminated).  Returns the
 * length written, or 0 if it does not fit outlen.  Wipes its scratch copy.
 */
size_t sasl_plain_encode(const char *user, size_t user_len, const char *secret, size_t secret_len,
                         char *out, size_t outlen);

/* Static text for an rc, for logs. */
const char *sasl_strerror(enum sasl_rc rc);

#endif
