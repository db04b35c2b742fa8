/*
 * sasl.h: SASL messages the proxy reads from clients and writes to backends:
 * PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), OAUTHBEARER (RFC
 * 7628) and Google's XOAUTH2, and the base64 around them (RFC 4648).  Pure
 * functions; base64 is OpenSSL's EVP codec.
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

/*
 * OAuth bearer tokens (RFC 6750).  Google access tokens are a few hundred
 * bytes; Microsoft Entra and Keycloak hand out JWTs of 1-4 KiB, more with
 * many group or role claims.  Common HTTP servers cap a request header at
 * 8 KiB (nginx large_client_header_buffers, Apache LimitRequestFieldSize
 * 8190), so a token that works as an "Authorization: Bearer" header fits in
 * SASL_TOKEN_MAX.  The rest of an XOAUTH2 or OAUTHBEARER message (GS2 header
 * with the user escaped, host, port, framing) gets 1 KiB: the decoded
 * message is at most SASL_OAUTH_MAX, its base64 line SASL_OAUTH_B64_MAX
 * (12 KiB), which the IMAP and POP3 parsers accept for SASL lines only.
 */
#define SASL_TOKEN_MAX     8192
#define SASL_OAUTH_MAX     (SASL_TOKEN_MAX + 1024)        /* 9216 */
#define SASL_OAUTH_B64_MAX ((SASL_OAUTH_MAX + 2) / 3 * 4) /* 12288, without a NUL */
/* The longest base64 SASL response line any mechanism here needs. */
#define SASL_LINE_MAX SASL_OAUTH_B64_MAX
/* RFC 7628 §3.2.2 error: a small JSON object (status, scope, openid-configuration). */
#define SASL_OAUTH_ERR_MAX 2048

enum sasl_rc {
	SASL_OK,
	SASL_BAD_BASE64,      /* not valid base64 */
	SASL_BAD_FORMAT,      /* not authzid NUL authcid NUL passwd */
	SASL_TOO_LONG,        /* a field over its limit */
	SASL_AUTHZID,         /* authzid given and differs from authcid (proxy refuses) */
	SASL_CANCELLED,       /* the response line was "*" (RFC 4422 §3.5; RFC 9051 §6.2.2) */
	SASL_NO_USER,         /* OAUTHBEARER without "a=": well-formed, but names nobody to route */
	SASL_CHANNEL_BINDING, /* OAUTHBEARER GS2 "p=": channel binding asked, not offered */
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

/*
 * XOAUTH2 (Google's "OAuth 2.0 Mechanism"): base64 of
 *   "user=" USER ^A "auth=Bearer " TOKEN ^A ^A
 * OAUTHBEARER (RFC 7628 §3.1): base64 of a GS2 header (RFC 5801 §4)
 *   ("n" / "y" / "p=" cb-name) "," ["a=" saslname] ","
 * then ^A, key=value pairs each ended by ^A ("auth" required, "host" and
 * "port" optional, other keys ignored), and a final ^A.  In saslname "," and
 * "=" are written "=2C" and "=3D".
 *
 * Decode b64[0..len) into user and token (the b64token after "Bearer" and
 * its spaces, RFC 6750 §2.1), NUL-terminated, with their lengths.  User
 * names are 1..SASL_USER_MAX bytes without control characters (C0, DEL:
 * so no NUL, CR, LF or ^A), 8-bit bytes passed as they are; tokens are
 * 1..SASL_TOKEN_MAX b64token characters.  OAUTHBEARER: a "p=" header gives
 * SASL_CHANNEL_BINDING; a header without "a=" gives SASL_NO_USER with the
 * token set and user empty (the proxy cannot route it).  On any other
 * error both are wiped and the lengths are 0.  A lone ^A (the dummy
 * response) is SASL_BAD_FORMAT here; see sasl_oauth_dummy_ok().
 */
enum sasl_rc sasl_xoauth2_decode(const char *b64, size_t len, char user[SASL_USER_MAX + 1],
                                 size_t *user_len_out, char token[SASL_TOKEN_MAX + 1],
                                 size_t *token_len_out);
enum sasl_rc sasl_oauthbearer_decode(const char *b64, size_t len, char user[SASL_USER_MAX + 1],
                                     size_t *user_len_out, char token[SASL_TOKEN_MAX + 1],
                                     size_t *token_len_out);

/*
 * Encode a fresh message for a backend from user and token (never the
 * client's bytes) as base64 into out, NUL-terminated: XOAUTH2 as above,
 * OAUTHBEARER as "n,a=USER," ^A "auth=Bearer TOKEN" ^A ^A with "," and "="
 * escaped in USER.  Returns the length written, or 0 if user or token would
 * not decode back (see the decoders' rules) or out is too small; an out of
 * SASL_OAUTH_B64_MAX + 1 always fits.  Wipes its scratch copy.
 */
size_t sasl_xoauth2_encode(const char *user, size_t user_len, const char *token, size_t token_len,
                           char *out, size_t outlen);
size_t sasl_oauthbearer_encode(const char *user, size_t user_len, const char *token,
                               size_t token_len, char *out, size_t outlen);

/*
 * RFC 7628 §3.2.2: a backend that refuses a token answers with a challenge
 * holding a base64 JSON object ({"status":"invalid_token",...}).  Decode
 * the challenge text b64[0..len) into json (NUL-terminated, at most
 * SASL_OAUTH_ERR_MAX bytes): SASL_OK if it is a JSON object, "{" to "}"
 * around optional whitespace, no control bytes but whitespace, and a
 * "status" member name; SASL_BAD_FORMAT if not, SASL_TOO_LONG if over.
 * This is a recogniser, not a JSON parser.  On error json is wiped.
 */
enum sasl_rc sasl_oauth_error_decode(const char *b64, size_t len, char json[SASL_OAUTH_ERR_MAX + 1],
                                     size_t *json_len_out);

/* RFC 7628 §3.2.3: after the error challenge the client sends a dummy
 * response, a lone ^A, "AQ==" in base64.  Is b64[0..len) that?  (Google's
 * XOAUTH2 clients send an empty line instead, which is accepted too.) */
bool sasl_oauth_dummy_ok(const char *b64, size_t len);

/* The dummy response a proxy sends a backend after its error challenge. */
#define SASL_OAUTH_DUMMY "AQ=="

/* Mechanism bits, in the order a server advertises them (config.h's
 * AUTHM_* are these values). */
enum sasl_mech {
	SASL_MECH_PLAIN = 1u << 0,
	SASL_MECH_LOGIN = 1u << 1,
	SASL_MECH_XOAUTH2 = 1u << 2,
	SASL_MECH_OAUTHBEARER = 1u << 3,
};
#define SASL_MECH_COUNT 4

/* The upper-case name of one mechanism bit, or NULL. */
const char *sasl_mech_name(unsigned bit);
/* The bit of name[0..len) (any case), or 0 when it is none of these. */
unsigned sasl_mech_bit(const char *name, size_t len);

/* Static text for an rc, for logs. */
const char *sasl_strerror(enum sasl_rc rc);

#endif
