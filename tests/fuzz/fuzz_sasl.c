/*
 * fuzz_sasl.c: libFuzzer harness for the SASL decoders in lib/sasl.c.  The
 * input is tried twice: as the base64 text a client sends, and as a decoded
 * message (base64-encoded here, so the fuzzer reaches the message grammar).
 * Every result must keep the header's promises, and what decodes must
 * re-encode to a message that decodes to the same user and token.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sasl.h"
#include "fuzz_check.h"

typedef enum sasl_rc (*oauth_decode_fn)(const char *, size_t, char *, size_t *, char *, size_t *);
typedef size_t (*oauth_encode_fn)(const char *, size_t, const char *, size_t, char *, size_t);

/*
 * Every byte zero: the first is, and each equals the next.  A byte loop
 * here, instrumented like the code under test, spent 85% of the run in
 * comparison tracing over 8 KiB buffers; memcmp is one intercepted call.
 */
static bool
all_zero(const char *b, size_t n)
{
	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

static bool
b64token_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("-._~+/=", c) != NULL);
}

static void
check_user(const char *u, size_t n)
{
	CHECK(n >= 1 && n <= SASL_USER_MAX && u[n] == '\0');
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)u[i] >= 0x20 && u[i] != 0x7f);
}

static void
check_token(const char *t, size_t n)
{
	CHECK(n >= 1 && n <= SASL_TOKEN_MAX && t[n] == '\0' && t[0] != '=');
	for (size_t i = 0; i < n; i++)
		CHECK(b64token_char((unsigned char)t[i]));
}

/* enc(user, token) must decode with dec to the same pair. */
static void
round_trip(oauth_encode_fn enc, oauth_decode_fn dec, const char *u, size_t ul, const char *t,
           size_t tl)
{
	static char out[SASL_OAUTH_B64_MAX + 1], u2[SASL_USER_MAX + 1], t2[SASL_TOKEN_MAX + 1];
	size_t n = enc(u, ul, t, tl, out, sizeof(out)), ul2, tl2;

	CHECK(n > 0 && n <= SASL_OAUTH_B64_MAX && out[n] == '\0' && strlen(out) == n);
	CHECK(dec(out, n, u2, &ul2, t2, &tl2) == SASL_OK);
	CHECK(ul2 == ul && memcmp(u2, u, ul) == 0);
	CHECK(tl2 == tl && memcmp(t2, t, tl) == 0);
	/* one byte short of room: refused, not cut */
	CHECK(enc(u, ul, t, tl, out, n) == 0);
}

static void
check_oauth(oauth_decode_fn dec, const char *in, size_t len)
{
	static char user[SASL_USER_MAX + 1], token[SASL_TOKEN_MAX + 1];
	size_t ul = 12345, tl = 12345;
	enum sasl_rc rc = dec(in, len, user, &ul, token, &tl);

	CHECK(sasl_strerror(rc) != NULL);
	if (rc == SASL_OK) {
		check_user(user, ul);
		check_token(token, tl);
		/* whichever mechanism the client used, either can go to a backend */
		round_trip(sasl_xoauth2_encode, sasl_xoauth2_decode, user, ul, token, tl);
		round_trip(sasl_oauthbearer_encode, sasl_oauthbearer_decode, user, ul, token, tl);
	} else if (rc == SASL_NO_USER) {
		CHECK(dec == sasl_oauthbearer_decode);
		CHECK(ul == 0 && all_zero(user, sizeof(user)));
		check_token(token, tl);
	} else {
		CHECK(rc == SASL_BAD_BASE64 || rc == SASL_BAD_FORMAT || rc == SASL_TOO_LONG ||
		      (rc == SASL_CHANNEL_BINDING && dec == sasl_oauthbearer_decode));
		CHECK(ul == 0 && tl == 0);
		CHECK(all_zero(user, sizeof(user)) && all_zero(token, sizeof(token)));
	}
}

static void
check_login(const char *in, size_t len)
{
	static char user[SASL_USER_MAX + 1], secret[SASL_SECRET_MAX + 1];
	size_t ul = 1, sl = 1;
	enum sasl_rc ru = sasl_login_user_decode(in, len, user, &ul);
	enum sasl_rc rs = sasl_login_secret_decode(in, len, secret, &sl);

	/* the same text: only the length bound differs, and it is checked
	 * before the message is looked at */
	CHECK((ru == SASL_BAD_BASE64) == (rs == SASL_BAD_BASE64));
	CHECK((ru == SASL_CANCELLED) == (rs == SASL_CANCELLED));
	CHECK(ru != SASL_OK || rs == SASL_OK);
	CHECK(rs != SASL_OK || ru == SASL_OK || ru == SASL_TOO_LONG);
	CHECK(ru != SASL_BAD_FORMAT || rs == SASL_BAD_FORMAT);
	if (rs == SASL_OK) {
		CHECK(sl >= 1 && sl <= SASL_SECRET_MAX && secret[sl] == '\0');
		CHECK(memchr(secret, '\0', sl) == NULL && memchr(secret, '\r', sl) == NULL &&
		      memchr(secret, '\n', sl) == NULL);
	} else {
		CHECK(sl == 0 && all_zero(secret, sizeof(secret)));
	}
	if (ru == SASL_OK)
		CHECK(ul == sl && memcmp(user, secret, ul + 1) == 0);
	else
		CHECK(ul == 0 && all_zero(user, sizeof(user)));
	CHECK((ru == SASL_CANCELLED) == (len == 1 && in[0] == '*'));
}

static void
check_plain(const char *in, size_t len)
{
	static char user[SASL_USER_MAX + 1], secret[SASL_SECRET_MAX + 1], out[SASL_MAX_B64];
	static char u2[SASL_USER_MAX + 1], s2[SASL_SECRET_MAX + 1];
	size_t ul, sl, ul2, sl2, n;

	if (sasl_plain_decode(in, len, user, &ul, secret, &sl) != SASL_OK)
		return;
	n = sasl_plain_encode(user, ul, secret, sl, out, sizeof(out));
	CHECK(n > 0);
	CHECK(sasl_plain_decode(out, n, u2, &ul2, s2, &sl2) == SASL_OK);
	CHECK(ul2 == ul && memcmp(u2, user, ul) == 0 && sl2 == sl && memcmp(s2, secret, sl) == 0);
}

static void
check_error(const char *in, size_t len)
{
	static char json[SASL_OAUTH_ERR_MAX + 1];
	size_t n = 1;
	enum sasl_rc rc = sasl_oauth_error_decode(in, len, json, &n);

	if (rc == SASL_OK) {
		CHECK(n >= 2 && n <= SASL_OAUTH_ERR_MAX && json[n] == '\0');
		CHECK(strchr(json, '{') != NULL && strstr(json, "\"status\"") != NULL);
		CHECK(strlen(json) == n);
	} else {
		CHECK(rc == SASL_BAD_BASE64 || rc == SASL_BAD_FORMAT || rc == SASL_TOO_LONG);
		CHECK(n == 0 && all_zero(json, sizeof(json)));
	}
}

static void
check_all(const char *in, size_t len)
{
	check_oauth(sasl_xoauth2_decode, in, len);
	check_oauth(sasl_oauthbearer_decode, in, len);
	check_login(in, len);
	check_plain(in, len);
	check_error(in, len);
	CHECK(sasl_oauth_dummy_ok(in, len) ==
	      (len == 0 || (len == 4 && memcmp(in, "AQ==", 4) == 0)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[SASL_OAUTH_B64_MAX + 16];
	int n;

	/* as the base64 line a client sends */
	check_all((const char *)data, size);
	/* as the message inside it (one byte past the bound still fits text) */
	if (size <= SASL_OAUTH_MAX + 3) {
		n = EVP_EncodeBlock((unsigned char *)text, data, (int)size);
		CHECK(n >= 0);
		check_all(text, (size_t)n);
	}
	return 0;
}
