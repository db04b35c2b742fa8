/*
 * sasl.h: SASL messages the proxy reads from clients and writes to backends:
 * PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), and the base64 around
 * them (RFC 4648).  Pure functions; base64 is OpenSSL's EVP codec.
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
	SASL_CANCELLED,  /* the response line was "*" (RFC 4422 §3.5; RFC 9051 §6.2.2) */
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

/*
 * LOGIN (draft-murchison-sasl-login-00 §2; [MS-XLOGIN] §2.2.2 for the
 * wire form): the server sends these two challenges, the base64 of
 * "Username:" and "Password:", and each client response is one base64 line.
 * A SASL-IR initial response ("AUTHENTICATE LOGIN dXNlcg==") is the user
 * name, and the session then sends only the password challenge.
 */
#define SASL_LOGIN_USER_CHALLENGE   "VXNlcm5hbWU6"
#define SASL_LOGIN_SECRET_CHALLENGE "UGFzc3dvcmQ6"

/*
 * Decode one LOGIN response b64[0..len) into out (NUL-terminated) and
 * *out_len_out.  The user name is 1..SASL_USER_MAX bytes, the password
 * 1..SASL_SECRET_MAX; neither may hold NUL, CR or LF (the backend gets them
 * in a command line).  "*" gives SASL_CANCELLED, an empty response
 * SASL_BAD_FORMAT.  On any error out is wiped and *out_len_out is 0.
 */
enum sasl_rc sasl_login_user_decode(const char *b64, size_t len, char user[SASL_USER_MAX + 1],
                                    size_t *user_len_out);
enum sasl_rc sasl_login_secret_decode(const char *b64, size_t len, char secret[SASL_SECRET_MAX + 1],
                                      size_t *secret_len_out);

/* Static text for an rc, for logs. */
const char *sasl_strerror(enum sasl_rc rc);

#endif
