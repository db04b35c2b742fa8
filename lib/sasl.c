/*
 * sasl.c: SASL messages (PLAIN RFC 4616 §2, LOGIN, OAUTHBEARER RFC 7628 §3,
 * XOAUTH2) in and out of base64
 * (RFC 4648 §4), for the client side (decode) and the backend side (encode).
 * Pure: stack scratch only, wiped before return; OpenSSL's EVP codec does
 * base64.  Never passes a client's bytes through: encoders rebuild messages.
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "chars.h"
#include "sasl.h"

/*
 * The longest message we can accept: an authzid is only allowed when it
 * equals the authcid, so authzid NUL authcid NUL passwd.
 */
#define PLAIN_MAX (SASL_USER_MAX + 1 + SASL_USER_MAX + 1 + SASL_SECRET_MAX)
_Static_assert((PLAIN_MAX + 2) / 3 * 4 + 1 <= SASL_MAX_B64, "SASL_MAX_B64 too small");

/* Value of a base64 alphabet character, or -1 (RFC 4648 §4, table 1). */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict RFC 4648 §4 check: whole quanta, alphabet only (no whitespace, which
 * EVP_DecodeBlock would skip), "=" only as the last one or two characters, and
 * zero pad bits (§3.5), so one message has one encoding.  Returns the number
 * of pad characters, or -1.
 */
static int
b64_check(const char *b64, size_t len)
{
	size_t i, data;
	int pad = 0, last;

	if (len % 4 != 0)
		return -1;
	if (len >= 1 && b64[len - 1] == '=')
		pad++;
	if (len >= 2 && b64[len - 2] == '=')
		pad++;
	if (pad == 1 && b64[len - 1] != '=')
		return -1; /* "xx=x": pad inside the quantum */
	data = len - (size_t)pad;
	for (i = 0; i < data; i++) {
		if (b64_value((unsigned char)b64[i]) < 0)
			return -1;
	}
	if (pad == 0)
		return 0;
	last = b64_value((unsigned char)b64[data - 1]);
	if ((pad == 2 && (last & 0x0f) != 0) || (pad == 1 && (last & 0x03) != 0))
		return -1;
	return pad;
}

/*
 * Decode strict base64 b64[0..len) into raw (room for rawcap bytes, which
 * must be at least max + 2: EVP_DecodeBlock writes whole 3-byte groups) and
 * *n_out.  A message over max bytes gives SASL_TOO_LONG, without decoding
 * it when the text alone says so.
 */
static enum sasl_rc
b64_decode(const char *b64, size_t len, unsigned char *raw, size_t rawcap, size_t max,
           size_t *n_out)
{
	int pad, n;

	*n_out = 0;
	pad = b64_check(b64, len);
	if (pad < 0)
		return SASL_BAD_BASE64;
	if (len / 4 * 3 > rawcap || len / 4 * 3 - (size_t)pad > max)
		return SASL_TOO_LONG;
	if (len == 0)
		return SASL_OK;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	if (n < pad)
		return SASL_BAD_BASE64;
	/* EVP_DecodeBlock counts the zero bytes that "=" stands for */
	*n_out = (size_t)(n - pad);
	return SASL_OK;
}

static enum sasl_rc
plain_split(const unsigned char *m, size_t n, char user[SASL_USER_MAX + 1], size_t *user_len_out,
            char secret[SASL_SECRET_MAX + 1], size_t *secret_len_out)
{
	const unsigned char *nul1, *nul2;
	size_t zlen, clen, plen;

	/* RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
	nul1 = memchr(m, '\0', n);
	if (nul1 == NULL)
		return SASL_BAD_FORMAT;
	nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - m));
	if (nul2 == NULL)
		return SASL_BAD_FORMAT;
	zlen = (size_t)(nul1 - m);
	clen = (size_t)(nul2 - nul1 - 1);
	plen = n - (size_t)(nul2 + 1 - m);
	/* authcid and passwd are 1*SAFE: not empty, and no NUL in passwd */
	if (clen == 0 || plen == 0 || memchr(nul2 + 1, '\0', plen) != NULL)
		return SASL_BAD_FORMAT;
	if (clen > SASL_USER_MAX || plen > SASL_SECRET_MAX)
		return SASL_TOO_LONG;
	/* Acting as someone else is the backend's business, not a proxy's. */
	if (zlen != 0 && (zlen != clen || memcmp(m, nul1 + 1, clen) != 0))
		return SASL_AUTHZID;
	memcpy(user, nul1 + 1, clen);
	user[clen] = '\0';
	*user_len_out = clen;
	memcpy(secret, nul2 + 1, plen);
	secret[plen] = '\0';
	*secret_len_out = plen;
	return SASL_OK;
}

enum sasl_rc
sasl_plain_decode(const char *b64, size_t len, char user[SASL_USER_MAX + 1], size_t *user_len_out,
                  char secret[SASL_SECRET_MAX + 1], size_t *secret_len_out)
{
	/* EVP_DecodeBlock writes whole 3-byte groups, pad bytes included */
	unsigned char raw[PLAIN_MAX + 2];
	enum sasl_rc rc;
	int pad, n = 0;

	*user_len_out = 0;
	*secret_len_out = 0;
	if (len == 0) {
		rc = SASL_BAD_FORMAT; /* the empty message has no NULs */
		goto out;
	}
	pad = b64_check(b64, len);
	if (pad < 0) {
		rc = SASL_BAD_BASE64;
		goto out;
	}
	if (len / 4 * 3 > sizeof(raw)) {
		rc = SASL_TOO_LONG;
		goto out;
	}
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	if (n < pad) {
		rc = SASL_BAD_BASE64;
		goto out;
	}
	/* EVP_DecodeBlock counts the zero bytes that "=" stands for */
	n -= pad;
	if ((size_t)n > PLAIN_MAX) {
		rc = SASL_TOO_LONG;
		goto out;
	}
	rc = plain_split(raw, (size_t)n, user, user_len_out, secret, secret_len_out);
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	if (rc != SASL_OK) {
		OPENSSL_cleanse(user, SASL_USER_MAX + 1);
		OPENSSL_cleanse(secret, SASL_SECRET_MAX + 1);
		*user_len_out = 0;
		*secret_len_out = 0;
	}
	return rc;
}

size_t
sasl_plain_encode(const char *user, size_t user_len, const char *secret, size_t secret_len,
                  char *out, size_t outlen)
{
	unsigned char raw[1 + SASL_USER_MAX + 1 + SASL_SECRET_MAX];
	size_t n, need;
	int w;

	/* Refuse what would not decode back to the same two fields: empty or
	 * over-long fields, and NULs that would move the separators. */
	if (user_len == 0 || user_len > SASL_USER_MAX || secret_len == 0 ||
	    secret_len > SASL_SECRET_MAX || memchr(user, '\0', user_len) != NULL ||
	    memchr(secret, '\0', secret_len) != NULL)
		return 0;
	n = 1 + user_len + 1 + secret_len;
	need = (n + 2) / 3 * 4 + 1; /* EVP_EncodeBlock adds a NUL */
	if (out == NULL || outlen < need)
		return 0;
	raw[0] = '\0'; /* empty authzid: act as the authcid */
	memcpy(raw + 1, user, user_len);
	raw[1 + user_len] = '\0';
	memcpy(raw + 2 + user_len, secret, secret_len);
	w = EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
	OPENSSL_cleanse(raw, sizeof(raw));
	return w < 0 ? 0 : (size_t)w;
}

/* One LOGIN response: 1..max bytes, no NUL, CR or LF. */
static enum sasl_rc
login_decode(const char *b64, size_t len, char *out, size_t max, size_t *out_len_out)
{
	unsigned char raw[SASL_SECRET_MAX + 3];
	enum sasl_rc rc;
	size_t n = 0;

	*out_len_out = 0;
	if (len == 1 && b64[0] == '*')
		rc = SASL_CANCELLED;
	else
		rc = b64_decode(b64, len, raw, sizeof(raw), max, &n);
	if (rc == SASL_OK && n == 0)
		rc = SASL_BAD_FORMAT;
	if (rc == SASL_OK && (memchr(raw, '\0', n) != NULL || memchr(raw, '\r', n) != NULL ||
	                      memchr(raw, '\n', n) != NULL))
		rc = SASL_BAD_FORMAT;
	if (rc == SASL_OK) {
		memcpy(out, raw, n);
		out[n] = '\0';
		*out_len_out = n;
	} else {
		OPENSSL_cleanse(out, max + 1);
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

enum sasl_rc
sasl_login_user_decode(const char *b64, size_t len, char user[SASL_USER_MAX + 1],
                       size_t *user_len_out)
{
	return login_decode(b64, len, user, SASL_USER_MAX, user_len_out);
}

enum sasl_rc
sasl_login_secret_decode(const char *b64, size_t len, char secret[SASL_SECRET_MAX + 1],
                         size_t *secret_len_out)
{
	return login_decode(b64, len, secret, SASL_SECRET_MAX, secret_len_out);
}

/* ---- XOAUTH2 and OAUTHBEARER ------------------------------------------- */

#define KVSEP 0x01 /* RFC 7628 §3.1 kvsep */

/* The longest message the encoders write fits what the decoders accept. */
_Static_assert(4 + 3 * SASL_USER_MAX + 2 + 12 + SASL_TOKEN_MAX + 2 <= SASL_OAUTH_MAX,
               "SASL_OAUTH_MAX too small for an OAUTHBEARER message");
_Static_assert(5 + SASL_USER_MAX + 1 + 12 + SASL_TOKEN_MAX + 2 <= SASL_OAUTH_MAX,
               "SASL_OAUTH_MAX too small for an XOAUTH2 message");

/*
 * A user name the backend can be given and every encoder can frame: no
 * control characters (C0 or DEL).  XOAUTH2 carries it as a kvpair value,
 * which allows no controls but HTAB, CR and LF (RFC 7628 §3.1), and those
 * have no business in a mailbox name; so OAUTHBEARER's saslname, which
 * would allow them, is held to the same rule and the two re-encode freely.
 */
static enum sasl_rc
user_check(const unsigned char *u, size_t n)
{
	if (n == 0)
		return SASL_BAD_FORMAT;
	if (n > SASL_USER_MAX)
		return SASL_TOO_LONG;
	for (size_t i = 0; i < n; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f)
			return SASL_BAD_FORMAT;
	}
	return SASL_OK;
}

/* RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static enum sasl_rc
token_check(const unsigned char *t, size_t n)
{
	size_t i = 0;

	if (n > SASL_TOKEN_MAX)
		return SASL_TOO_LONG;
	while (i < n &&
	       (chars_alpha(t[i]) || chars_digit(t[i]) || strchr("-._~+/", t[i]) != NULL) &&
	       t[i] != '\0')
		i++;
	if (i == 0)
		return SASL_BAD_FORMAT;
	while (i < n && t[i] == '=')
		i++;
	return i == n ? SASL_OK : SASL_BAD_FORMAT;
}

/* RFC 7628 §3.1: value = *(VCHAR / SP / HTAB / CR / LF); 8-bit bytes are let
 * through for UTF-8 user names (RFC 6532 addresses). */
static bool
kv_value_char(unsigned char c)
{
	return c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c != 0x7f);
}

struct oauth_kv {
	const unsigned char *user, *auth; /* borrowed: into the decoded message */
	size_t user_len, auth_len;
};

/*
 * m[0..n) = *kvpair kvsep, kvpair = key "=" value kvsep, key = 1*ALPHA
 * (RFC 7628 §3.1).  Keeps "auth" (and "user" for XOAUTH2); a second one of
 * those is refused, other keys ("host", "port", extensions) are ignored.
 */
static enum sasl_rc
kv_parse(const unsigned char *m, size_t n, bool want_user, struct oauth_kv *kv)
{
	size_t i = 0;

	memset(kv, 0, sizeof(*kv));
	for (;;) {
		const unsigned char *key, *val, *end;
		size_t klen, vlen;

		if (i >= n)
			return SASL_BAD_FORMAT; /* no final kvsep */
		if (m[i] == KVSEP)
			return i + 1 == n ? SASL_OK : SASL_BAD_FORMAT;
		key = m + i;
		end = memchr(key, KVSEP, n - i);
		if (end == NULL)
			return SASL_BAD_FORMAT;
		for (klen = 0; key + klen < end && chars_alpha(key[klen]); klen++)
			;
		if (klen == 0 || key + klen == end || key[klen] != '=')
			return SASL_BAD_FORMAT;
		val = key + klen + 1;
		vlen = (size_t)(end - val);
		for (size_t j = 0; j < vlen; j++) {
			if (!kv_value_char(val[j]))
				return SASL_BAD_FORMAT;
		}
		if (klen == 4 && memcmp(key, "auth", 4) == 0) {
			if (kv->auth != NULL)
				return SASL_BAD_FORMAT;
			kv->auth = val;
			kv->auth_len = vlen;
		} else if (want_user && klen == 4 && memcmp(key, "user", 4) == 0) {
			if (kv->user != NULL)
				return SASL_BAD_FORMAT;
			kv->user = val;
			kv->user_len = vlen;
		}
		i = (size_t)(end - m) + 1;
	}
}

/* auth-value = "Bearer" 1*SP b64token (RFC 7628 §3.1 via RFC 6750 §2.1; the
 * scheme name's case does not matter, RFC 7235 §2.1).  Copies the token. */
static enum sasl_rc
bearer_take(const unsigned char *v, size_t n, char token[SASL_TOKEN_MAX + 1], size_t *len_out)
{
	enum sasl_rc rc;
	size_t i;

	if (n < 7 || !chars_word_eq(v, 6, "BEARER") || v[6] != ' ')
		return SASL_BAD_FORMAT;
	for (i = 6; i < n && v[i] == ' '; i++)
		;
	rc = token_check(v + i, n - i);
	if (rc != SASL_OK)
		return rc;
	memcpy(token, v + i, n - i);
	token[n - i] = '\0';
	*len_out = n - i;
	return SASL_OK;
}

static enum sasl_rc
user_take(const unsigned char *u, size_t n, char user[SASL_USER_MAX + 1], size_t *len_out)
{
	enum sasl_rc rc = user_check(u, n);

	if (rc != SASL_OK)
		return rc;
	memcpy(user, u, n);
	user[n] = '\0';
	*len_out = n;
	return SASL_OK;
}

static void
oauth_wipe(char user[SASL_USER_MAX + 1], size_t *user_len_out, char token[SASL_TOKEN_MAX + 1],
           size_t *token_len_out)
{
	OPENSSL_cleanse(user, SASL_USER_MAX + 1);
	OPENSSL_cleanse(token, SASL_TOKEN_MAX + 1);
	*user_len_out = 0;
	*token_len_out = 0;
}

enum sasl_rc
sasl_xoauth2_decode(const char *b64, size_t len, char user[SASL_USER_MAX + 1], size_t *user_len_out,
                    char token[SASL_TOKEN_MAX + 1], size_t *token_len_out)
{
	unsigned char raw[SASL_OAUTH_MAX + 2];
	struct oauth_kv kv;
	enum sasl_rc rc;
	size_t n;

	*user_len_out = 0;
	*token_len_out = 0;
	rc = b64_decode(b64, len, raw, sizeof(raw), SASL_OAUTH_MAX, &n);
	/* "user=" USER ^A "auth=Bearer " TOKEN ^A ^A: pairs without a GS2 header */
	if (rc == SASL_OK)
		rc = kv_parse(raw, n, true, &kv);
	if (rc == SASL_OK && (kv.user == NULL || kv.auth == NULL))
		rc = SASL_BAD_FORMAT;
	if (rc == SASL_OK)
		rc = user_take(kv.user, kv.user_len, user, user_len_out);
	if (rc == SASL_OK)
		rc = bearer_take(kv.auth, kv.auth_len, token, token_len_out);
	OPENSSL_cleanse(raw, sizeof(raw));
	if (rc != SASL_OK)
		oauth_wipe(user, user_len_out, token, token_len_out);
	return rc;
}

/* Hex digit pair "2C" or "3D" (either case: RFC 5234 §2.3 strings). */
static int
saslname_escape(const unsigned char *e)
{
	if (e[0] == '2' && (e[1] == 'C' || e[1] == 'c'))
		return ',';
	if (e[0] == '3' && (e[1] == 'D' || e[1] == 'd'))
		return '=';
	return -1;
}

/*
 * RFC 5801 §4 gs2-header up to and including its final ",":
 *   [gs2-nonstd-flag ","] gs2-cb-flag "," [gs2-authzid] ","
 * The "F" flag is for GSS-API mechanisms and has no place in OAUTHBEARER.
 * Unescapes the authzid into u (*ulen_out stays 0 without "a=").
 */
static enum sasl_rc
gs2_header(const unsigned char *m, size_t n, size_t *used_out, unsigned char u[SASL_USER_MAX],
           size_t *ulen_out, bool *has_user_out)
{
	size_t i, ul = 0;

	*ulen_out = 0;
	*has_user_out = false;
	if (n >= 2 && m[0] == 'p' && m[1] == '=')
		return SASL_CHANNEL_BINDING; /* RFC 7628 §3.1: the server offers none */
	if (n < 2 || (m[0] != 'n' && m[0] != 'y') || m[1] != ',')
		return SASL_BAD_FORMAT;
	i = 2;
	if (i < n && m[i] == 'a') {
		if (i + 1 >= n || m[i + 1] != '=')
			return SASL_BAD_FORMAT;
		/* saslname = 1*(UTF8-char-safe / "=2C" / "=3D") */
		for (i += 2; i < n && m[i] != ','; i++) {
			int c = m[i];

			if (c == '=') {
				if (i + 2 >= n || (c = saslname_escape(m + i + 1)) < 0)
					return SASL_BAD_FORMAT;
				i += 2;
			}
			if (ul == SASL_USER_MAX)
				return SASL_TOO_LONG;
			u[ul++] = (unsigned char)c;
		}
		if (ul == 0)
			return SASL_BAD_FORMAT;
		*has_user_out = true;
	}
	if (i >= n || m[i] != ',')
		return SASL_BAD_FORMAT;
	*used_out = i + 1;
	*ulen_out = ul;
	return SASL_OK;
}

enum sasl_rc
sasl_oauthbearer_decode(const char *b64, size_t len, char user[SASL_USER_MAX + 1],
                        size_t *user_len_out, char token[SASL_TOKEN_MAX + 1], size_t *token_len_out)
{
	unsigned char raw[SASL_OAUTH_MAX + 2], u[SASL_USER_MAX];
	struct oauth_kv kv;
	enum sasl_rc rc;
	size_t n, used = 0, ul = 0;
	bool has_user = false;

	*user_len_out = 0;
	*token_len_out = 0;
	rc = b64_decode(b64, len, raw, sizeof(raw), SASL_OAUTH_MAX, &n);
	/* client-resp = gs2-header kvsep *kvpair kvsep (RFC 7628 §3.1) */
	if (rc == SASL_OK)
		rc = gs2_header(raw, n, &used, u, &ul, &has_user);
	if (rc == SASL_OK && (used >= n || raw[used] != KVSEP))
		rc = SASL_BAD_FORMAT;
	if (rc == SASL_OK)
		rc = kv_parse(raw + used + 1, n - used - 1, false, &kv);
	if (rc == SASL_OK && kv.auth == NULL)
		rc = SASL_BAD_FORMAT;
	if (rc == SASL_OK && has_user)
		rc = user_take(u, ul, user, user_len_out);
	if (rc == SASL_OK)
		rc = bearer_take(kv.auth, kv.auth_len, token, token_len_out);
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(u, sizeof(u));
	if (rc == SASL_OK && !has_user) {
		OPENSSL_cleanse(user, SASL_USER_MAX + 1);
		return SASL_NO_USER; /* the token stays: the caller may still want it */
	}
	if (rc != SASL_OK)
		oauth_wipe(user, user_len_out, token, token_len_out);
	return rc;
}

static size_t
oauth_finish(unsigned char *raw, size_t n, size_t rawlen, char *out, size_t outlen)
{
	size_t need = (n + 2) / 3 * 4 + 1; /* EVP_EncodeBlock adds a NUL */
	int w = 0;

	if (out != NULL && outlen >= need)
		w = EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
	OPENSSL_cleanse(raw, rawlen);
	return w < 0 ? 0 : (size_t)w;
}

static size_t
put_bearer(unsigned char *raw, size_t n, const char *token, size_t token_len)
{
	memcpy(raw + n, "auth=Bearer ", 12);
	n += 12;
	memcpy(raw + n, token, token_len);
	n += token_len;
	raw[n++] = KVSEP;
	raw[n++] = KVSEP;
	return n;
}

size_t
sasl_xoauth2_encode(const char *user, size_t user_len, const char *token, size_t token_len,
                    char *out, size_t outlen)
{
	unsigned char raw[SASL_OAUTH_MAX];
	size_t n = 0;

	if (user_check((const unsigned char *)user, user_len) != SASL_OK ||
	    token_check((const unsigned char *)token, token_len) != SASL_OK)
		return 0;
	memcpy(raw, "user=", 5);
	n = 5;
	memcpy(raw + n, user, user_len);
	n += user_len;
	raw[n++] = KVSEP;
	n = put_bearer(raw, n, token, token_len);
	return oauth_finish(raw, n, sizeof(raw), out, outlen);
}

size_t
sasl_oauthbearer_encode(const char *user, size_t user_len, const char *token, size_t token_len,
                        char *out, size_t outlen)
{
	unsigned char raw[SASL_OAUTH_MAX];
	size_t n;

	if (user_check((const unsigned char *)user, user_len) != SASL_OK ||
	    token_check((const unsigned char *)token, token_len) != SASL_OK)
		return 0;
	/* "n": the client does not support channel binding (RFC 5801 §4) */
	memcpy(raw, "n,a=", 4);
	n = 4;
	for (size_t i = 0; i < user_len; i++) {
		if (user[i] == ',' || user[i] == '=') {
			memcpy(raw + n, user[i] == ',' ? "=2C" : "=3D", 3);
			n += 3;
		} else {
			raw[n++] = (unsigned char)user[i];
		}
	}
	raw[n++] = ',';
	raw[n++] = KVSEP;
	n = put_bearer(raw, n, token, token_len);
	return oauth_finish(raw, n, sizeof(raw), out, outlen);
}

static bool
json_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum sasl_rc
sasl_oauth_error_decode(const char *b64, size_t len, char json[SASL_OAUTH_ERR_MAX + 1],
                        size_t *json_len_out)
{
	unsigned char raw[SASL_OAUTH_ERR_MAX + 2];
	enum sasl_rc rc;
	size_t n, s = 0, e;

	*json_len_out = 0;
	rc = b64_decode(b64, len, raw, sizeof(raw), SASL_OAUTH_ERR_MAX, &n);
	if (rc == SASL_OK) {
		e = n;
		while (s < e && json_space(raw[s]))
			s++;
		while (e > s && json_space(raw[e - 1]))
			e--;
		/* RFC 7628 §3.2.2: a JSON object (RFC 8259 §4) with "status" */
		if (e - s < 2 || raw[s] != '{' || raw[e - 1] != '}' ||
		    memmem(raw, n, "\"status\"", 8) == NULL)
			rc = SASL_BAD_FORMAT;
		for (size_t i = 0; rc == SASL_OK && i < n; i++) {
			if ((raw[i] < 0x20 && !json_space(raw[i])) || raw[i] == 0x7f)
				rc = SASL_BAD_FORMAT;
		}
	}
	if (rc == SASL_OK) {
		memcpy(json, raw, n);
		json[n] = '\0';
		*json_len_out = n;
	} else {
		OPENSSL_cleanse(json, SASL_OAUTH_ERR_MAX + 1);
	}
	return rc;
}

bool
sasl_oauth_dummy_ok(const char *b64, size_t len)
{
	return len == 0 || (len == 4 && memcmp(b64, SASL_OAUTH_DUMMY, 4) == 0);
}

const char *
sasl_strerror(enum sasl_rc rc)
{
	switch (rc) {
	case SASL_OK:
		return "ok";
	case SASL_BAD_BASE64:
		return "invalid base64";
	case SASL_BAD_FORMAT:
		return "malformed SASL message";
	case SASL_TOO_LONG:
		return "SASL field too long";
	case SASL_AUTHZID:
		return "authorization identity differs from authentication identity";
	case SASL_CANCELLED:
		return "authentication cancelled";
	case SASL_NO_USER:
		return "no authorization identity to route by";
	case SASL_CHANNEL_BINDING:
		return "channel binding not supported";
	}
	return "unknown SASL error";
}

/* [i] names the mechanism of bit 1 << i; unsized, so a mechanism added
 * without its name fails to build. */
static const char *const mech_names[] = {"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"};
_Static_assert(sizeof(mech_names) / sizeof(mech_names[0]) == SASL_MECH_COUNT,
               "mech_names must name every SASL mechanism");

const char *
sasl_mech_name(unsigned bit)
{
	for (unsigned i = 0; i < SASL_MECH_COUNT; i++)
		if (bit == 1u << i)
			return mech_names[i];
	return NULL;
}

unsigned
sasl_mech_bit(const char *name, size_t len)
{
	for (unsigned i = 0; i < SASL_MECH_COUNT; i++)
		if (strlen(mech_names[i]) == len && strncasecmp(name, mech_names[i], len) == 0)
			return 1u << i;
	return 0;
}
