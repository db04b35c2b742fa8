/*
 * test_sasl.c: SASL messages and their base64 (lib/sasl.c): PLAIN (RFC 4616
 * vectors, round trips, strict base64, authzid rules, field limits) and
 * LOGIN (challenges, limits, refused bytes), XOAUTH2 and OAUTHBEARER
 * (RFC 7628 §4 examples, GS2 header rules, bounds, re-encoding) and the
 * RFC 7628 §3.2.2 error challenge.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

#include "sasl.h"

/* base64 of raw[0..n), via the encoder under test's own codec family. */
#include <openssl/evp.h>

static size_t
b64(const void *raw, size_t n, char *out, size_t outlen)
{
	assert_true((n + 2) / 3 * 4 + 1 <= outlen);
	return (size_t)EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

struct decoded {
	enum sasl_rc rc;
	char user[SASL_USER_MAX + 1];
	size_t user_len;
	char secret[SASL_SECRET_MAX + 1];
	size_t secret_len;
};

/* Decode into buffers pre-filled with junk, to see what gets wiped. */
static void
decode(const char *text, size_t len, struct decoded *d)
{
	memset(d->user, 'J', sizeof(d->user));
	memset(d->secret, 'J', sizeof(d->secret));
	d->user_len = d->secret_len = 777;
	d->rc = sasl_plain_decode(text, len, d->user, &d->user_len, d->secret, &d->secret_len);
}

/* Decode the base64 of raw[0..n). */
static void
decode_raw(const void *raw, size_t n, struct decoded *d)
{
	static char text[4096];
	size_t len = b64(raw, n, text, sizeof(text));

	decode(text, len, d);
}

static void
assert_wiped(const struct decoded *d)
{
	static const char zero[SASL_SECRET_MAX + 1];

	assert_int_equal(d->user_len, 0);
	assert_int_equal(d->secret_len, 0);
	assert_memory_equal(d->user, zero, sizeof(d->user));
	assert_memory_equal(d->secret, zero, sizeof(d->secret));
}

static void
rfc4616_example_decodes(void **state)
{
	struct decoded d;
	(void)state;

	/* RFC 4616 §4: "\0tim\0tanstaaftanstaaf" */
	decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", 28, &d);
	assert_int_equal(d.rc, SASL_OK);
	assert_string_equal(d.user, "tim");
	assert_int_equal(d.user_len, 3);
	assert_string_equal(d.secret, "tanstaaftanstaaf");
	assert_int_equal(d.secret_len, 16);
}

static void
plain_message_table(void **state)
{
#define RAW(s) s, sizeof(s) - 1
	static const struct {
		const char *raw;
		size_t len;
		enum sasl_rc rc;
		const char *user, *secret;
	} rows[] = {
	    {RAW("\0alice\0secret"), SASL_OK, "alice", "secret"},
	    /* an authzid equal to the authcid asks for nothing more */
	    {RAW("alice\0alice\0secret"), SASL_OK, "alice", "secret"},
	    {RAW("\0a\0p"), SASL_OK, "a", "p"},
	    {RAW("\0alice\0pass word \xc3\xa4"), SASL_OK, "alice", "pass word \xc3\xa4"},
	    {RAW("bob\0alice\0secret"), SASL_AUTHZID, NULL, NULL},
	    {RAW("alicex\0alice\0secret"), SASL_AUTHZID, NULL, NULL},
	    {RAW("Alice\0alice\0secret"), SASL_AUTHZID, NULL, NULL},
	    {RAW("\0alice\0"), SASL_BAD_FORMAT, NULL, NULL},
	    {RAW("\0\0secret"), SASL_BAD_FORMAT, NULL, NULL},
	    {RAW("\0\0"), SASL_BAD_FORMAT, NULL, NULL},
	    {RAW("alice\0secret"), SASL_BAD_FORMAT, NULL, NULL},
	    {RAW("alicesecret"), SASL_BAD_FORMAT, NULL, NULL},
	    {RAW("\0alice\0sec\0ret"), SASL_BAD_FORMAT, NULL, NULL},
	    {RAW("\0alice\0secret\0"), SASL_BAD_FORMAT, NULL, NULL},
	    {RAW("\0"), SASL_BAD_FORMAT, NULL, NULL},
	};
#undef RAW
	(void)state;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct decoded d;

		decode_raw(rows[i].raw, rows[i].len, &d);
		if (d.rc != rows[i].rc)
			fail_msg("row %zu: rc %d (%s), want %d", i, d.rc, sasl_strerror(d.rc),
			         rows[i].rc);
		if (rows[i].rc != SASL_OK) {
			assert_wiped(&d);
			continue;
		}
		assert_string_equal(d.user, rows[i].user);
		assert_int_equal(d.user_len, strlen(rows[i].user));
		assert_string_equal(d.secret, rows[i].secret);
		assert_int_equal(d.secret_len, strlen(rows[i].secret));
	}
}

static void
bad_base64_is_refused_and_outputs_wiped(void **state)
{
	static const char *const rows[] = {
	    "AHRpbQB0YW5zdGFhZnRhbnN0YWF",   /* length not a multiple of 4 */
	    "AHRpbQB0YW5zdGFhZnRhbnN0YWFtm", /* ditto */
	    " AHRpbQB0YW5zdGFhZnRhbnN0YWF",  /* whitespace */
	    "AHRpbQB0YW5z dGFhZnRhbnN0YWF",
	    "AHRpbQB0YW5zdGFhZnRhbnN0YWF\n",
	    "AHRpbQB0YW5zdGFhZnRhbnN0YW\r\n",
	    "AHRpbQB0YW5z\tGFhZnRhbnN0YWFm",
	    "AHRpbQB0YW5zdGFhZnRhbnN0YW-m", /* base64url is not base64 */
	    "AHRpbQB0YW5zdGFhZnRhbnN0YW_m",
	    "AHRp=QB0YW5zdGFhZnRhbnN0YWFm", /* pad in the middle */
	    "AHRpbQ==YW5zdGFhZnRhbnN0YWFm",
	    "AGE=YQ==",
	    "====",
	    "A===",
	    "AA=A",
	    "AB==", /* pad bits not zero (RFC 4648 §3.5) */
	    "AAB=",
	    "*",
	    "=",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct decoded d;

		decode(rows[i], strlen(rows[i]), &d);
		if (d.rc != SASL_BAD_BASE64)
			fail_msg("row %zu \"%s\": rc %d, want SASL_BAD_BASE64", i, rows[i], d.rc);
		assert_wiped(&d);
	}
	/* a NUL inside the text is not base64 either */
	{
		struct decoded d;

		decode("AHRp\0QB0", 8, &d);
		assert_int_equal(d.rc, SASL_BAD_BASE64);
	}
}

static void
empty_response_is_bad_format(void **state)
{
	struct decoded d;
	(void)state;

	decode("", 0, &d);
	assert_int_equal(d.rc, SASL_BAD_FORMAT);
	assert_wiped(&d);
}

static void
field_lengths_are_limited(void **state)
{
	static char raw[4096];
	struct decoded d;
	size_t n;
	(void)state;

	/* authcid 256 and passwd 1024 fit, also with an equal authzid */
	n = 0;
	memset(raw + n, 'u', SASL_USER_MAX);
	n += SASL_USER_MAX;
	raw[n++] = '\0';
	memset(raw + n, 'u', SASL_USER_MAX);
	n += SASL_USER_MAX;
	raw[n++] = '\0';
	memset(raw + n, 'p', SASL_SECRET_MAX);
	n += SASL_SECRET_MAX;
	decode_raw(raw, n, &d);
	assert_int_equal(d.rc, SASL_OK);
	assert_int_equal(d.user_len, SASL_USER_MAX);
	assert_int_equal(d.secret_len, SASL_SECRET_MAX);
	assert_int_equal(d.user[SASL_USER_MAX], '\0');
	assert_int_equal(d.secret[SASL_SECRET_MAX], '\0');
	/* one more in the password */
	raw[n++] = 'p';
	decode_raw(raw, n, &d);
	assert_int_equal(d.rc, SASL_TOO_LONG);
	assert_wiped(&d);
	/* one more in the user name */
	n = 0;
	raw[n++] = '\0';
	memset(raw + n, 'u', SASL_USER_MAX + 1);
	n += SASL_USER_MAX + 1;
	raw[n++] = '\0';
	raw[n++] = 'p';
	decode_raw(raw, n, &d);
	assert_int_equal(d.rc, SASL_TOO_LONG);
	assert_wiped(&d);
	/* huge input: refused without decoding it all */
	memset(raw, 'A', sizeof(raw));
	decode(raw, sizeof(raw), &d);
	assert_int_equal(d.rc, SASL_TOO_LONG);
	assert_wiped(&d);
}

static void
encode_then_decode_round_trips(void **state)
{
	static char user[SASL_USER_MAX + 1], secret[SASL_SECRET_MAX + 1];
	static char out[2048];
	static const size_t ulens[] = {1, 2, 3, 4, 5, 100, SASL_USER_MAX};
	static const size_t slens[] = {1, 2, 3, 7, 8, 9, 500, SASL_SECRET_MAX};
	(void)state;

	for (size_t i = 0; i < sizeof(user); i++)
		user[i] = (char)('a' + i % 26);
	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (char)(1 + i % 255); /* every byte but NUL */
	for (size_t u = 0; u < sizeof(ulens) / sizeof(ulens[0]); u++) {
		for (size_t s = 0; s < sizeof(slens) / sizeof(slens[0]); s++) {
			struct decoded d;
			size_t n =
			    sasl_plain_encode(user, ulens[u], secret, slens[s], out, sizeof(out));

			assert_int_equal(n, (2 + ulens[u] + slens[s] + 2) / 3 * 4);
			assert_int_equal(strlen(out), n);
			decode(out, n, &d);
			assert_int_equal(d.rc, SASL_OK);
			assert_int_equal(d.user_len, ulens[u]);
			assert_memory_equal(d.user, user, ulens[u]);
			assert_int_equal(d.secret_len, slens[s]);
			assert_memory_equal(d.secret, secret, slens[s]);
		}
	}
}

static void
encode_gives_the_rfc4616_example(void **state)
{
	char out[64];
	(void)state;

	assert_int_equal(sasl_plain_encode("tim", 3, "tanstaaftanstaaf", 16, out, sizeof(out)), 28);
	assert_string_equal(out, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
}

static void
encode_refuses_what_would_not_decode_back(void **state)
{
	static char big[SASL_SECRET_MAX + 2];
	char out[2048];
	(void)state;

	memset(big, 'x', sizeof(big));
	/* fits exactly: 28 characters and the NUL */
	assert_int_equal(sasl_plain_encode("tim", 3, "tanstaaftanstaaf", 16, out, 29), 28);
	assert_int_equal(sasl_plain_encode("tim", 3, "tanstaaftanstaaf", 16, out, 28), 0);
	assert_int_equal(sasl_plain_encode("tim", 3, "tanstaaftanstaaf", 16, NULL, 0), 0);
	assert_int_equal(sasl_plain_encode("", 0, "p", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_plain_encode("u", 1, "", 0, out, sizeof(out)), 0);
	assert_int_equal(sasl_plain_encode("a\0b", 3, "p", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_plain_encode("u", 1, "p\0", 2, out, sizeof(out)), 0);
	assert_int_equal(sasl_plain_encode(big, SASL_USER_MAX + 1, "p", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_plain_encode("u", 1, big, SASL_SECRET_MAX + 1, out, sizeof(out)), 0);
	assert_true(sasl_plain_encode(big, SASL_USER_MAX, big, SASL_SECRET_MAX, out, sizeof(out)) >
	            0);
}

static void
login_challenges_are_the_base64_of_the_prompts(void **state)
{
	char out[32];
	(void)state;

	b64("Username:", 9, out, sizeof(out));
	assert_string_equal(out, SASL_LOGIN_USER_CHALLENGE);
	b64("Password:", 9, out, sizeof(out));
	assert_string_equal(out, SASL_LOGIN_SECRET_CHALLENGE);
}

struct login_row {
	const char *raw; /* decoded message, or NULL: b64 is sent as is */
	size_t raw_len;
	const char *b64;
	enum sasl_rc user_rc, secret_rc;
};

static void
login_responses_table(void **state)
{
#define LRAW(s) s, sizeof(s) - 1, NULL
	static const struct login_row rows[] = {
	    {LRAW("alice"), SASL_OK, SASL_OK},
	    {LRAW("alice@example.org"), SASL_OK, SASL_OK},
	    {LRAW("p w \"x\"\t\x01\xc3\xa9"), SASL_OK, SASL_OK}, /* any byte but NUL CR LF */
	    {LRAW("a\0b"), SASL_BAD_FORMAT, SASL_BAD_FORMAT},
	    {LRAW("a\rb"), SASL_BAD_FORMAT, SASL_BAD_FORMAT},
	    {LRAW("a\nb"), SASL_BAD_FORMAT, SASL_BAD_FORMAT},
	    {LRAW("\0"), SASL_BAD_FORMAT, SASL_BAD_FORMAT},
	    {NULL, 0, "", SASL_BAD_FORMAT, SASL_BAD_FORMAT}, /* empty response */
	    {NULL, 0, "*", SASL_CANCELLED, SASL_CANCELLED},
	    {NULL, 0, "**", SASL_BAD_BASE64, SASL_BAD_BASE64},
	    {NULL, 0, "YWxpY2U", SASL_BAD_BASE64, SASL_BAD_BASE64}, /* no pad */
	    {NULL, 0, "YWxpY2U=\n", SASL_BAD_BASE64, SASL_BAD_BASE64},
	    {NULL, 0, "YWxpY2V=", SASL_BAD_BASE64, SASL_BAD_BASE64}, /* pad bits set */
	    {NULL, 0, " YWxp", SASL_BAD_BASE64, SASL_BAD_BASE64},
	    {NULL, 0, "=", SASL_BAD_BASE64, SASL_BAD_BASE64},
	};
#undef LRAW
	(void)state;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char text[64], user[SASL_USER_MAX + 1], secret[SASL_SECRET_MAX + 1];
		const char *in = rows[i].b64;
		size_t len, ul = 99, sl = 99;
		enum sasl_rc rc;

		if (in == NULL) {
			len = b64(rows[i].raw, rows[i].raw_len, text, sizeof(text));
			in = text;
		} else {
			len = strlen(in);
		}
		memset(user, 'J', sizeof(user));
		memset(secret, 'J', sizeof(secret));
		rc = sasl_login_user_decode(in, len, user, &ul);
		if (rc != rows[i].user_rc)
			fail_msg("row %zu: user rc %d, want %d", i, rc, rows[i].user_rc);
		rc = sasl_login_secret_decode(in, len, secret, &sl);
		if (rc != rows[i].secret_rc)
			fail_msg("row %zu: secret rc %d, want %d", i, rc, rows[i].secret_rc);
		if (rows[i].user_rc == SASL_OK) {
			assert_int_equal(ul, rows[i].raw_len);
			assert_memory_equal(user, rows[i].raw, ul + 1); /* with its NUL */
			assert_int_equal(sl, rows[i].raw_len);
			assert_memory_equal(secret, rows[i].raw, sl + 1);
		} else {
			static const char zero[SASL_SECRET_MAX + 1];

			assert_int_equal(ul, 0);
			assert_int_equal(sl, 0);
			assert_memory_equal(user, zero, sizeof(user));
			assert_memory_equal(secret, zero, sizeof(secret));
		}
	}
}

static void
login_limits_are_plains(void **state)
{
	static char raw[SASL_SECRET_MAX + 2], text[4096];
	char user[SASL_USER_MAX + 1], secret[SASL_SECRET_MAX + 1];
	size_t len, n;
	(void)state;

	memset(raw, 'x', sizeof(raw));
	/* a user name of SASL_USER_MAX fits, one more does not */
	len = b64(raw, SASL_USER_MAX, text, sizeof(text));
	assert_int_equal(sasl_login_user_decode(text, len, user, &n), SASL_OK);
	assert_int_equal(n, SASL_USER_MAX);
	assert_int_equal(user[SASL_USER_MAX], '\0');
	len = b64(raw, SASL_USER_MAX + 1, text, sizeof(text));
	assert_int_equal(sasl_login_user_decode(text, len, user, &n), SASL_TOO_LONG);
	assert_int_equal(n, 0);
	/* ... and it is a good password */
	assert_int_equal(sasl_login_secret_decode(text, len, secret, &n), SASL_OK);
	assert_int_equal(n, SASL_USER_MAX + 1);
	len = b64(raw, SASL_SECRET_MAX, text, sizeof(text));
	assert_int_equal(sasl_login_secret_decode(text, len, secret, &n), SASL_OK);
	assert_int_equal(n, SASL_SECRET_MAX);
	len = b64(raw, SASL_SECRET_MAX + 1, text, sizeof(text));
	assert_int_equal(sasl_login_secret_decode(text, len, secret, &n), SASL_TOO_LONG);
	/* a line far too long is refused by its length alone */
	memset(text, 'A', sizeof(text));
	assert_int_equal(sasl_login_secret_decode(text, sizeof(text), secret, &n), SASL_TOO_LONG);
}

struct oauth_out {
	enum sasl_rc rc;
	char user[SASL_USER_MAX + 1];
	size_t user_len;
	char token[SASL_TOKEN_MAX + 1];
	size_t token_len;
};

typedef enum sasl_rc (*oauth_decode_fn)(const char *, size_t, char *, size_t *, char *, size_t *);

/* Decode the base64 of raw[0..n) with fn into outputs pre-filled with junk. */
static void
oauth_raw(oauth_decode_fn fn, const void *raw, size_t n, struct oauth_out *o)
{
	static char text[SASL_OAUTH_B64_MAX + 64];

	memset(o, 'J', sizeof(*o));
	o->rc = fn(text, b64(raw, n, text, sizeof(text)), o->user, &o->user_len, o->token,
	           &o->token_len);
}

static void
assert_oauth_wiped(const struct oauth_out *o)
{
	static const char zero[SASL_TOKEN_MAX + 1];

	assert_int_equal(o->user_len, 0);
	assert_int_equal(o->token_len, 0);
	assert_memory_equal(o->user, zero, sizeof(o->user));
	assert_memory_equal(o->token, zero, sizeof(o->token));
}

struct oauth_row {
	const char *raw;
	size_t raw_len;
	enum sasl_rc rc;
	const char *user; /* for SASL_OK */
	const char *token;
};

static void
check_oauth_rows(oauth_decode_fn fn, const struct oauth_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct oauth_out o;

		oauth_raw(fn, rows[i].raw, rows[i].raw_len, &o);
		if (o.rc != rows[i].rc)
			fail_msg("row %zu: rc %d (%s), want %d", i, o.rc, sasl_strerror(o.rc),
			         rows[i].rc);
		if (o.rc == SASL_OK) {
			assert_string_equal(o.user, rows[i].user);
			assert_int_equal(o.user_len, strlen(rows[i].user));
			assert_string_equal(o.token, rows[i].token);
			assert_int_equal(o.token_len, strlen(rows[i].token));
		} else if (o.rc == SASL_NO_USER) {
			assert_int_equal(o.user_len, 0);
			assert_string_equal(o.user, "");
			assert_string_equal(o.token, rows[i].token);
		} else {
			assert_oauth_wiped(&o);
		}
	}
}

#define ORAW(s) s, sizeof(s) - 1

static void
oauthbearer_rfc7628_examples_decode(void **state)
{
	/* RFC 7628 §4.1, the client's message in base64 as printed there */
	static const char ex41[] =
	    "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVh"
	    "cmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB";
	struct oauth_out o;
	(void)state;

	memset(&o, 'J', sizeof(o));
	o.rc = sasl_oauthbearer_decode(ex41, sizeof(ex41) - 1, o.user, &o.user_len, o.token,
	                               &o.token_len);
	assert_int_equal(o.rc, SASL_OK);
	assert_string_equal(o.user, "user@example.com");
	assert_string_equal(o.token, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	/* the same message from its text */
	oauth_raw(sasl_oauthbearer_decode,
	          ORAW("n,a=user@example.com,\001host=server.example.com\001port=143\001"
	               "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001"),
	          &o);
	assert_int_equal(o.rc, SASL_OK);
	assert_string_equal(o.token, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	/* §4.2 uses OAuth 1.0a ("auth=OAuth ..."): not a bearer token, refused */
	oauth_raw(sasl_oauthbearer_decode,
	          ORAW("n,a=user@example.com,\001host=server.example.com\001port=143\001"
	               "auth=OAuth realm=\"Example\",oauth_consumer_key=\"9djdj82h48djs9d2\""
	               "\001\001"),
	          &o);
	assert_int_equal(o.rc, SASL_BAD_FORMAT);
	assert_oauth_wiped(&o);
}

static void
oauthbearer_message_table(void **state)
{
	static const struct oauth_row rows[] = {
	    {ORAW("n,a=u,\001auth=Bearer t\001\001"), SASL_OK, "u", "t"},
	    {ORAW("y,a=u,\001auth=Bearer t\001\001"), SASL_OK, "u", "t"},
	    {ORAW("n,a=u,\001auth=bearer   t.x-y_z~+/==\001\001"), SASL_OK, "u", "t.x-y_z~+/=="},
	    {ORAW("n,a=a=2Cb=3Dc=2cd=3d,\001auth=Bearer t\001\001"), SASL_OK, "a,b=c,d=", "t"},
	    {ORAW("n,a=\xc3\xa9,\001auth=Bearer t\001\001"), SASL_OK, "\xc3\xa9", "t"},
	    {ORAW("n,a=u,\001host=h\001port=993\001mthd=GET\001auth=Bearer t\001\001"), SASL_OK,
	     "u", "t"},
	    {ORAW("n,a=u,\001auth=Bearer t\001host=\001\001"), SASL_OK, "u", "t"},
	    {ORAW("n,a=u,\001auth=Bearer t\001x=a b\tc\r\n\001\001"), SASL_OK, "u", "t"},
	    /* no a=: well-formed, but nobody to route to */
	    {ORAW("n,,\001auth=Bearer t\001\001"), SASL_NO_USER, NULL, "t"},
	    {ORAW("y,,\001host=h\001auth=Bearer tok\001\001"), SASL_NO_USER, NULL, "tok"},
	    /* channel binding */
	    {ORAW("p=tls-unique,a=u,\001auth=Bearer t\001\001"), SASL_CHANNEL_BINDING, NULL, NULL},
	    {ORAW("p=,,\001auth=Bearer t\001\001"), SASL_CHANNEL_BINDING, NULL, NULL},
	    /* GS2 header */
	    {ORAW("F,n,a=u,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("x,a=u,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u=2,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u=2D,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u=,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,au,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,x\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u\0v,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u\rv,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u\001v,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    /* no controls in a user name, so XOAUTH2 can carry it too */
	    {ORAW("n,a=u\006v,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u\tv,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u\177,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    /* pairs and framing */
	    {ORAW("n,a=u,\001auth=Bearer t\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t\001\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t\001\001x"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001host=h\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001=x\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001h1=x\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001host\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001host=\0\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001AUTH=Bearer t\001\001"), SASL_BAD_FORMAT, NULL,
	     NULL}, /* keys are lower case */
	    /* the auth value */
	    {ORAW("n,a=u,\001auth=Bearer\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer \001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearert\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Basic dTpw\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t \001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer ==\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t=x\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t\r\n\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    /* the dummy response and the empty message are not a login */
	    {ORAW("\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW(""), SASL_BAD_FORMAT, NULL, NULL},
	};
	(void)state;

	check_oauth_rows(sasl_oauthbearer_decode, rows, sizeof(rows) / sizeof(rows[0]));
}

static void
xoauth2_message_table(void **state)
{
	/* Google's documentation example, in base64 as printed there */
	static const char google[] =
	    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
	    "QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==";
	static const struct oauth_row rows[] = {
	    {ORAW("user=u\001auth=Bearer t\001\001"), SASL_OK, "u", "t"},
	    {ORAW("auth=Bearer t\001user=u\001\001"), SASL_OK, "u", "t"},
	    {ORAW("user=a,b=c d\001auth=BEARER t\001\001"), SASL_OK, "a,b=c d", "t"},
	    {ORAW("user=u\001auth=Bearer t\001host=h\001\001"), SASL_OK, "u", "t"},
	    {ORAW("user=\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("user=u\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("user=u\001user=v\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("user=u\rv\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("user=u\nv\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("user=u\tv\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("user=u\001auth=Bearer t\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("user=u\001auth=Bearer t"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW("n,a=u,\001auth=Bearer t\001\001"), SASL_BAD_FORMAT, NULL,
	     NULL}, /* OAUTHBEARER */
	    {ORAW("\001"), SASL_BAD_FORMAT, NULL, NULL},
	    {ORAW(""), SASL_BAD_FORMAT, NULL, NULL},
	};
	struct oauth_out o;
	(void)state;

	memset(&o, 'J', sizeof(o));
	o.rc = sasl_xoauth2_decode(google, sizeof(google) - 1, o.user, &o.user_len, o.token,
	                           &o.token_len);
	assert_int_equal(o.rc, SASL_OK);
	assert_string_equal(o.user, "someuser@example.com");
	assert_string_equal(o.token, "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
	check_oauth_rows(sasl_xoauth2_decode, rows, sizeof(rows) / sizeof(rows[0]));
}

static void
oauth_bad_base64_and_cancel_are_refused(void **state)
{
	static const char *const bad[] = {"*", "AQ", "AQ=", "A===", "dXNlcj1", " dXNl", "dXNl\r\n"};
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct oauth_out o;

		memset(&o, 'J', sizeof(o));
		o.rc = sasl_xoauth2_decode(bad[i], strlen(bad[i]), o.user, &o.user_len, o.token,
		                           &o.token_len);
		assert_int_equal(o.rc, SASL_BAD_BASE64);
		assert_oauth_wiped(&o);
		memset(&o, 'J', sizeof(o));
		o.rc = sasl_oauthbearer_decode(bad[i], strlen(bad[i]), o.user, &o.user_len, o.token,
		                               &o.token_len);
		assert_int_equal(o.rc, SASL_BAD_BASE64);
		assert_oauth_wiped(&o);
	}
}

/* raw = prefix, then n bytes of c, then suffix; returns its length. */
static size_t
build(char *raw, const char *prefix, char c, size_t n, const char *suffix)
{
	size_t o = strlen(prefix);

	memcpy(raw, prefix, o);
	memset(raw + o, c, n);
	o += n;
	memcpy(raw + o, suffix, strlen(suffix));
	return o + strlen(suffix);
}

static void
oauth_bounds_hold_at_and_one_past_each_limit(void **state)
{
	static char raw[SASL_OAUTH_MAX + 64], text[SASL_OAUTH_B64_MAX + 64];
	struct oauth_out o;
	size_t n, pre;
	(void)state;

	/* token: SASL_TOKEN_MAX fits, one more does not */
	n = build(raw, "n,a=u,\001auth=Bearer ", 't', SASL_TOKEN_MAX, "\001\001");
	oauth_raw(sasl_oauthbearer_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_OK);
	assert_int_equal(o.token_len, SASL_TOKEN_MAX);
	assert_int_equal(o.token[SASL_TOKEN_MAX], '\0');
	n = build(raw, "n,a=u,\001auth=Bearer ", 't', SASL_TOKEN_MAX + 1, "\001\001");
	oauth_raw(sasl_oauthbearer_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_TOO_LONG);
	assert_oauth_wiped(&o);
	n = build(raw, "user=u\001auth=Bearer ", 't', SASL_TOKEN_MAX, "\001\001");
	oauth_raw(sasl_xoauth2_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_OK);
	n = build(raw, "user=u\001auth=Bearer ", 't', SASL_TOKEN_MAX + 1, "\001\001");
	oauth_raw(sasl_xoauth2_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_TOO_LONG);
	/* user: SASL_USER_MAX fits, one more does not; escapes count once */
	n = build(raw, "n,a=", ',', 0, "");
	for (size_t i = 0; i < SASL_USER_MAX; i++)
		n += (size_t)snprintf(raw + n, 4, "=2C");
	n += (size_t)snprintf(raw + n, 32, ",\001auth=Bearer t\001\001");
	oauth_raw(sasl_oauthbearer_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_OK);
	assert_int_equal(o.user_len, SASL_USER_MAX);
	assert_int_equal(o.user[0], ',');
	n = build(raw, "n,a=", 'u', SASL_USER_MAX + 1, ",\001auth=Bearer t\001\001");
	oauth_raw(sasl_oauthbearer_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_TOO_LONG);
	n = build(raw, "user=", 'u', SASL_USER_MAX, "\001auth=Bearer t\001\001");
	oauth_raw(sasl_xoauth2_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_OK);
	n = build(raw, "user=", 'u', SASL_USER_MAX + 1, "\001auth=Bearer t\001\001");
	oauth_raw(sasl_xoauth2_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_TOO_LONG);
	/* the whole message: SASL_OAUTH_MAX fits (padding with an ignored key),
	 * one more does not, and its base64 is SASL_OAUTH_B64_MAX long */
	pre = strlen("n,a=u,\001auth=Bearer t\001x=");
	n = build(raw, "n,a=u,\001auth=Bearer t\001x=", 'x', SASL_OAUTH_MAX - pre - 2, "\001\001");
	assert_int_equal(n, SASL_OAUTH_MAX);
	assert_int_equal(b64(raw, n, text, sizeof(text)), SASL_OAUTH_B64_MAX);
	oauth_raw(sasl_oauthbearer_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_OK);
	n = build(raw, "n,a=u,\001auth=Bearer t\001x=", 'x', SASL_OAUTH_MAX - pre - 1, "\001\001");
	assert_int_equal(n, SASL_OAUTH_MAX + 1);
	oauth_raw(sasl_oauthbearer_decode, raw, n, &o);
	assert_int_equal(o.rc, SASL_TOO_LONG);
	/* a far longer line is refused by its length, without decoding */
	memset(text, 'A', sizeof(text));
	assert_int_equal(sasl_xoauth2_decode(text, sizeof(text) / 4 * 4, o.user, &o.user_len,
	                                     o.token, &o.token_len),
	                 SASL_TOO_LONG);
}

static void
oauth_encoders_rebuild_messages_that_decode_back(void **state)
{
	static char token[SASL_TOKEN_MAX + 1], user[SASL_USER_MAX + 1];
	static char out[SASL_OAUTH_B64_MAX + 1];
	static const char *const users[] = {"u",  "alice@example.org", "a,b=c", ",,,",
	                                    "==", "\xc3\xa9t\xc3\xa9", "a b~c"};
	struct oauth_out o;
	size_t n;
	(void)state;

	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		const char *u = users[i];

		n = sasl_xoauth2_encode(u, strlen(u), "tok.en-_~+/=", 12, out, sizeof(out));
		assert_true(n > 0);
		assert_int_equal(strlen(out), n);
		memset(&o, 'J', sizeof(o));
		o.rc = sasl_xoauth2_decode(out, n, o.user, &o.user_len, o.token, &o.token_len);
		assert_int_equal(o.rc, SASL_OK);
		assert_string_equal(o.user, u);
		assert_string_equal(o.token, "tok.en-_~+/=");
		n = sasl_oauthbearer_encode(u, strlen(u), "tok.en-_~+/=", 12, out, sizeof(out));
		assert_true(n > 0);
		o.rc = sasl_oauthbearer_decode(out, n, o.user, &o.user_len, o.token, &o.token_len);
		assert_int_equal(o.rc, SASL_OK);
		assert_string_equal(o.user, u);
		assert_string_equal(o.token, "tok.en-_~+/=");
	}
	/* the exact bytes written */
	n = sasl_oauthbearer_encode("a,b=c", 5, "t", 1, out, sizeof(out));
	{
		char expect[64];
		size_t en =
		    b64("n,a=a=2Cb=3Dc,\001auth=Bearer t\001\001", 30, expect, sizeof(expect));

		assert_int_equal(n, en);
		assert_string_equal(out, expect);
		n = sasl_xoauth2_encode("a,b=c", 5, "t", 1, out, sizeof(out));
		en = b64("user=a,b=c\001auth=Bearer t\001\001", 26, expect, sizeof(expect));
		assert_int_equal(n, en);
		assert_string_equal(out, expect);
	}
	/* the largest user (all escaped) and token fit SASL_OAUTH_B64_MAX + 1 */
	memset(user, ',', SASL_USER_MAX);
	memset(token, 't', SASL_TOKEN_MAX);
	n = sasl_oauthbearer_encode(user, SASL_USER_MAX, token, SASL_TOKEN_MAX, out, sizeof(out));
	assert_true(n > 0 && n <= SASL_OAUTH_B64_MAX);
	o.rc = sasl_oauthbearer_decode(out, n, o.user, &o.user_len, o.token, &o.token_len);
	assert_int_equal(o.rc, SASL_OK);
	assert_int_equal(o.user_len, SASL_USER_MAX);
	assert_int_equal(o.token_len, SASL_TOKEN_MAX);
	n = sasl_xoauth2_encode(user, SASL_USER_MAX, token, SASL_TOKEN_MAX, out, sizeof(out));
	assert_true(n > 0 && n <= SASL_OAUTH_B64_MAX);
	/* what would not decode back is refused */
	assert_int_equal(sasl_xoauth2_encode("", 0, "t", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_xoauth2_encode("u", 1, "", 0, out, sizeof(out)), 0);
	assert_int_equal(sasl_xoauth2_encode(user, SASL_USER_MAX + 1, "t", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_xoauth2_encode("u", 1, token, SASL_TOKEN_MAX + 1, out, sizeof(out)),
	                 0);
	assert_int_equal(sasl_oauthbearer_encode("u\001", 2, "t", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_oauthbearer_encode("u\t", 2, "t", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_xoauth2_encode("u\x7f", 2, "t", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_oauthbearer_encode("u\r", 2, "t", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_oauthbearer_encode("u\0", 2, "t", 1, out, sizeof(out)), 0);
	assert_int_equal(sasl_oauthbearer_encode("u", 1, "t t", 3, out, sizeof(out)), 0);
	assert_int_equal(sasl_oauthbearer_encode("u", 1, "t\001", 2, out, sizeof(out)), 0);
	assert_int_equal(sasl_oauthbearer_encode("u", 1, "=t", 2, out, sizeof(out)), 0);
	/* out: exactly enough (and the NUL), one less, none */
	n = sasl_xoauth2_encode("u", 1, "t", 1, out, sizeof(out));
	assert_int_equal(sasl_xoauth2_encode("u", 1, "t", 1, out, n + 1), n);
	assert_int_equal(sasl_xoauth2_encode("u", 1, "t", 1, out, n), 0);
	assert_int_equal(sasl_xoauth2_encode("u", 1, "t", 1, NULL, 0), 0);
}

static void
oauth_error_challenge_is_recognised(void **state)
{
	static const char rfc7628_43[] =
	    "{\"status\":\"invalid_token\",\"scope\":\"example_scope\","
	    "\"openid-configuration\":\"https://example.com/.well-known/openid-configuration\"}";
	static const struct {
		const char *raw;
		enum sasl_rc rc;
	} rows[] = {
	    {"{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"https://mail.google.com/\"}",
	     SASL_OK},
	    {" \r\n{ \"status\" : \"invalid_token\" }\n", SASL_OK},
	    {"{\"scope\":\"x\"}", SASL_BAD_FORMAT},
	    {"\"status\"", SASL_BAD_FORMAT},
	    {"{\"status\":\"x\"", SASL_BAD_FORMAT},
	    {"{\"status\":\"x\001\"}", SASL_BAD_FORMAT},
	    {"{}", SASL_BAD_FORMAT},
	    {"", SASL_BAD_FORMAT},
	    {"OK", SASL_BAD_FORMAT},
	};
	char json[SASL_OAUTH_ERR_MAX + 1], text[4096];
	static char raw[SASL_OAUTH_ERR_MAX + 2];
	size_t n, len;
	(void)state;

	/* the brief's example and RFC 7628 §4.3 */
	assert_int_equal(
	    sasl_oauth_error_decode("eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=", 36, json, &n), SASL_OK);
	assert_string_equal(json, "{\"status\":\"invalid_token\"}");
	assert_int_equal(n, 26);
	len = b64(rfc7628_43, sizeof(rfc7628_43) - 1, text, sizeof(text));
	assert_int_equal(sasl_oauth_error_decode(text, len, json, &n), SASL_OK);
	assert_string_equal(json, rfc7628_43);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(json, 'J', sizeof(json));
		len = b64(rows[i].raw, strlen(rows[i].raw), text, sizeof(text));
		if (sasl_oauth_error_decode(text, len, json, &n) != rows[i].rc)
			fail_msg("row %zu: want %d", i, rows[i].rc);
		if (rows[i].rc == SASL_OK)
			assert_string_equal(json, rows[i].raw);
		else
			assert_int_equal(n, 0);
	}
	assert_int_equal(sasl_oauth_error_decode("e30", 3, json, &n), SASL_BAD_BASE64);
	/* bound: SASL_OAUTH_ERR_MAX fits, one more does not */
	n = build(raw, "{\"status\":\"", 'x', SASL_OAUTH_ERR_MAX - 13, "\"}");
	assert_int_equal(n, SASL_OAUTH_ERR_MAX);
	len = b64(raw, n, text, sizeof(text));
	assert_int_equal(sasl_oauth_error_decode(text, len, json, &n), SASL_OK);
	assert_int_equal(n, SASL_OAUTH_ERR_MAX);
	n = build(raw, "{\"status\":\"", 'x', SASL_OAUTH_ERR_MAX - 12, "\"}");
	len = b64(raw, n, text, sizeof(text));
	assert_int_equal(sasl_oauth_error_decode(text, len, json, &n), SASL_TOO_LONG);
}

static void
oauth_dummy_response_is_a_lone_kvsep(void **state)
{
	char text[8];
	(void)state;

	b64("\001", 1, text, sizeof(text));
	assert_string_equal(text, SASL_OAUTH_DUMMY);
	assert_true(sasl_oauth_dummy_ok("AQ==", 4));
	assert_true(sasl_oauth_dummy_ok("", 0)); /* XOAUTH2 clients */
	assert_false(sasl_oauth_dummy_ok("AQ=", 3));
	assert_false(sasl_oauth_dummy_ok("AQ==\r", 5));
	assert_false(sasl_oauth_dummy_ok("AA==", 4));
	assert_false(sasl_oauth_dummy_ok("AQE=", 4));
	assert_false(sasl_oauth_dummy_ok("*", 1));
}

static void
strerror_names_every_rc(void **state)
{
	static const enum sasl_rc rcs[] = {SASL_OK,       SASL_BAD_BASE64,     SASL_BAD_FORMAT,
	                                   SASL_TOO_LONG, SASL_AUTHZID,        SASL_CANCELLED,
	                                   SASL_NO_USER,  SASL_CHANNEL_BINDING};
	(void)state;

	for (size_t i = 0; i < sizeof(rcs) / sizeof(rcs[0]); i++) {
		assert_non_null(sasl_strerror(rcs[i]));
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(sasl_strerror(rcs[i]), sasl_strerror(rcs[j]));
	}
	assert_non_null(sasl_strerror((enum sasl_rc)99));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rfc4616_example_decodes),
	    cmocka_unit_test(plain_message_table),
	    cmocka_unit_test(bad_base64_is_refused_and_outputs_wiped),
	    cmocka_unit_test(empty_response_is_bad_format),
	    cmocka_unit_test(field_lengths_are_limited),
	    cmocka_unit_test(encode_then_decode_round_trips),
	    cmocka_unit_test(encode_gives_the_rfc4616_example),
	    cmocka_unit_test(encode_refuses_what_would_not_decode_back),
	    cmocka_unit_test(login_challenges_are_the_base64_of_the_prompts),
	    cmocka_unit_test(login_responses_table),
	    cmocka_unit_test(login_limits_are_plains),
	    cmocka_unit_test(oauthbearer_rfc7628_examples_decode),
	    cmocka_unit_test(oauthbearer_message_table),
	    cmocka_unit_test(xoauth2_message_table),
	    cmocka_unit_test(oauth_bad_base64_and_cancel_are_refused),
	    cmocka_unit_test(oauth_bounds_hold_at_and_one_past_each_limit),
	    cmocka_unit_test(oauth_encoders_rebuild_messages_that_decode_back),
	    cmocka_unit_test(oauth_error_challenge_is_recognised),
	    cmocka_unit_test(oauth_dummy_response_is_a_lone_kvsep),
	    cmocka_unit_test(strerror_names_every_rc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
