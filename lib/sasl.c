/*
 * sasl.c: SASL messages (PLAIN RFC 4616 §2, LOGIN) in and out of base64
 * (RFC 4648 §4), for the client side (decode) and the backend side (encode).
 * Pure: stack scratch only, wiped before return; OpenSSL's EVP codec does
 * base64.  Never passes a client's bytes through: encoders rebuild messages.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

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
	}
	return "unknown SASL error";
}
