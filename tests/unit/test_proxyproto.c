/*
 * test_proxyproto.c: the PROXY protocol parser and writers (lib/proxyproto.c).
 * Every input is fed whole, cut in two at every point and one byte at a
 * time, and must give the same result; the bytes after a header stay with
 * the caller; what the writers produce parses back to what they were given.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

#include "proxyproto.h"

#define SIG     "\r\n\r\n\0\r\nQUIT\n"
#define IN(s)   (const uint8_t *)(s), sizeof(s) - 1
#define TRAILER "\x16\x03\x01\x02\x00\x01" /* the start of a TLS ClientHello */

/* ---- feeding ------------------------------------------------------------ */

/*
 * Feed in[0..len) in pieces ending at cuts[0..ncuts) and then at len, like a
 * listener reading; stop at the first PP_DONE or PP_BAD.  *consumed_out is
 * the sum of used over the calls.  Checks the used_out promises.
 */
static enum pp_rc
feed_pieces(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts, struct pp_result *res,
            size_t *consumed_out)
{
	struct pp_parser *p = malloc(sizeof(*p));
	enum pp_rc rc = PP_MORE;
	size_t off = 0;

	assert_non_null(p);
	proxyproto_init(p);
	memset(res, 0xA5, sizeof(*res)); /* PP_DONE/PP_BAD must write every field */
	for (size_t i = 0; i <= ncuts && rc == PP_MORE; i++) {
		size_t end = i < ncuts ? cuts[i] : len, used = (size_t)-1;

		assert_true(end >= off && end <= len);
		rc = proxyproto_parse(p, in + off, end - off, &used, res);
		assert_true(used <= end - off);
		if (rc == PP_MORE)
			assert_int_equal(used, end - off); /* MORE consumes everything */
		off += used;
	}
	*consumed_out = off;
	free(p);
	return rc;
}

static enum pp_rc
feed_whole(const uint8_t *in, size_t len, struct pp_result *res, size_t *consumed_out)
{
	return feed_pieces(in, len, NULL, 0, res, consumed_out);
}

static enum pp_rc
feed_split(const uint8_t *in, size_t len, size_t cut, struct pp_result *res, size_t *consumed_out)
{
	return feed_pieces(in, len, &cut, 1, res, consumed_out);
}

static enum pp_rc
feed_bytewise(const uint8_t *in, size_t len, struct pp_result *res, size_t *consumed_out)
{
	size_t *cuts = calloc(len ? len : 1, sizeof(*cuts));
	enum pp_rc rc;

	assert_non_null(cuts);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	rc = feed_pieces(in, len, cuts, len ? len - 1 : 0, res, consumed_out);
	free(cuts);
	return rc;
}

/*
 * Feed like a listener that recv()s proxyproto_want() bytes at a time: no
 * read may reach past the header, so every read is consumed whole.
 */
static enum pp_rc
feed_wanted(const uint8_t *in, size_t len, struct pp_result *res, size_t *consumed_out)
{
	struct pp_parser *p = malloc(sizeof(*p));
	enum pp_rc rc = PP_MORE;
	size_t off = 0;

	assert_non_null(p);
	proxyproto_init(p);
	while (rc == PP_MORE && off < len) {
		size_t want = proxyproto_want(p), used = (size_t)-1;

		assert_true(want > 0);
		if (want > len - off)
			want = len - off;
		rc = proxyproto_parse(p, in + off, want, &used, res);
		if (rc != PP_BAD)
			assert_int_equal(used, want);
		off += used;
	}
	if (rc != PP_MORE)
		assert_int_equal(proxyproto_want(p), 0);
	*consumed_out = off;
	free(p);
	return rc;
}

/*
 * A good header: parses with the trailer left over, the same way in every
 * split and byte by byte, and every shorter prefix asks for more.  Returns
 * the result of the whole feed in *res.
 */
static void
check_good(const uint8_t *hdr, size_t hlen, struct pp_result *res)
{
	size_t len = hlen + sizeof(TRAILER) - 1, consumed;
	uint8_t *in = malloc(len);
	struct pp_result r;

	assert_non_null(in);
	memcpy(in, hdr, hlen);
	memcpy(in + hlen, TRAILER, sizeof(TRAILER) - 1);

	assert_int_equal(feed_whole(in, len, res, &consumed), PP_DONE);
	assert_int_equal(consumed, hlen);
	assert_int_equal(res->header_len, hlen);
	assert_null(res->error);
	if (res->local)
		assert_true(res->srclen == 0 && res->dstlen == 0);

	for (size_t cut = 0; cut <= len; cut++) {
		assert_int_equal(feed_split(in, len, cut, &r, &consumed), PP_DONE);
		assert_int_equal(consumed, hlen);
		assert_memory_equal(&r, res, sizeof(r));
	}
	assert_int_equal(feed_bytewise(in, len, &r, &consumed), PP_DONE);
	assert_int_equal(consumed, hlen);
	assert_memory_equal(&r, res, sizeof(r));

	/* reads sized by proxyproto_want() end exactly at the header */
	assert_int_equal(feed_wanted(in, len, &r, &consumed), PP_DONE);
	assert_int_equal(consumed, hlen);
	assert_memory_equal(&r, res, sizeof(r));

	/* truncated at every length: more, never a verdict */
	for (size_t k = 0; k < hlen; k++) {
		assert_int_equal(feed_whole(in, k, &r, &consumed), PP_MORE);
		assert_int_equal(consumed, k);
		assert_int_equal(feed_bytewise(in, k, &r, &consumed), PP_MORE);
	}
	free(in);
}

/* A bad input: PP_BAD with error containing want, in every split and bytewise. */
static void
check_bad(const uint8_t *in, size_t len, const char *want)
{
	struct pp_result res, r;
	size_t consumed;

	assert_int_equal(feed_whole(in, len, &res, &consumed), PP_BAD);
	assert_non_null(res.error);
	if (strstr(res.error, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", res.error, want);
	assert_false(res.local);
	assert_int_equal(res.srclen, 0);
	for (size_t cut = 0; cut <= len; cut++) {
		assert_int_equal(feed_split(in, len, cut, &r, &consumed), PP_BAD);
		assert_string_equal(r.error, res.error);
	}
	assert_int_equal(feed_bytewise(in, len, &r, &consumed), PP_BAD);
	assert_string_equal(r.error, res.error);
	assert_int_equal(feed_wanted(in, len, &r, &consumed), PP_BAD);
	assert_string_equal(r.error, res.error);
}

static void
assert_addr(const struct sockaddr_storage *ss, socklen_t sslen, const char *addr, unsigned port)
{
	char buf[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		assert_int_equal(sslen, sizeof(*s));
		assert_non_null(inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf)));
		assert_int_equal(ntohs(s->sin_port), port);
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		assert_int_equal(ss->ss_family, AF_INET6);
		assert_int_equal(sslen, sizeof(*s));
		assert_non_null(inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof(buf)));
		assert_int_equal(ntohs(s->sin6_port), port);
	}
	assert_string_equal(buf, addr);
}

/* ---- building v2 headers -------------------------------------------------- */

struct hb {
	uint8_t b[PP_HEADER_MAX + 256];
	size_t n;
};

static void
hb_put(struct hb *h, const void *p, size_t n)
{
	assert_true(h->n + n <= sizeof(h->b));
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void
hb_fill(struct hb *h, uint8_t c, size_t n)
{
	assert_true(h->n + n <= sizeof(h->b));
	memset(h->b + h->n, c, n);
	h->n += n;
}

/* Signature, ver_cmd, fam and a length put right by hb_end(). */
static void
hb_start(struct hb *h, uint8_t ver_cmd, uint8_t fam)
{
	h->n = 0;
	hb_put(h, SIG, 12);
	hb_put(h, &ver_cmd, 1);
	hb_put(h, &fam, 1);
	hb_fill(h, 0, 2);
}

static void
hb_tlv(struct hb *h, uint8_t type, const void *v, size_t n)
{
	uint8_t t[3] = {type, (uint8_t)(n >> 8), (uint8_t)n};

	hb_put(h, t, 3);
	hb_put(h, v, n);
}

static void
hb_end(struct hb *h)
{
	h->b[14] = (uint8_t)((h->n - 16) >> 8);
	h->b[15] = (uint8_t)(h->n - 16);
}

/* Append a CRC32C TLV over the finished header, as spec 2.2.3 says. */
static void
hb_crc(struct hb *h)
{
	static const uint8_t zero[4];
	size_t at;
	uint32_t crc;

	hb_tlv(h, PP2_TYPE_CRC32C, zero, 4);
	at = h->n - 4;
	hb_end(h);
	crc = proxyproto_crc32c(h->b, h->n);
	h->b[at] = (uint8_t)(crc >> 24);
	h->b[at + 1] = (uint8_t)(crc >> 16);
	h->b[at + 2] = (uint8_t)(crc >> 8);
	h->b[at + 3] = (uint8_t)crc;
}

/* A TCP4 192.0.2.1:50000 -> 198.51.100.7:993 header with nothing after. */
#define V2_TCP4_ADDRS                                                                              \
	"\xc0\x00\x02\x01"                                                                         \
	"\xc6\x33\x64\x07"                                                                         \
	"\xc3\x50"                                                                                 \
	"\x03\xe1"

static void
hb_tcp4(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_put(h, V2_TCP4_ADDRS, 12);
}

/* ---- good inputs ------------------------------------------------------------ */

static const struct good_case {
	const char *name;
	const uint8_t *in;
	size_t len;
	int version;
	bool local;
	const char *src, *dst; /* NULL when local */
	unsigned sport, dport;
} good_cases[] = {
    {"v1 tcp4", IN("PROXY TCP4 192.0.2.1 198.51.100.7 50000 993\r\n"), 1, false, "192.0.2.1",
     "198.51.100.7", 50000, 993},
    {"v1 tcp4 extremes", IN("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n"), 1, false,
     "255.255.255.255", "0.0.0.0", 65535, 0},
    {"v1 tcp6", IN("PROXY TCP6 2001:db8::1 2001:db8::2 50000 993\r\n"), 1, false, "2001:db8::1",
     "2001:db8::2", 50000, 993},
    {"v1 tcp6 longest addresses",
     IN("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n"),
     1, false, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
     65535, 65535},
    {"v1 tcp6 v4-mapped", IN("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"), 1, false,
     "::ffff:192.0.2.1", "::1", 1, 2},
    {"v1 unknown", IN("PROXY UNKNOWN\r\n"), 1, true, NULL, NULL, 0, 0},
    {"v1 unknown ignores the rest", IN("PROXY UNKNOWN 1.2.3.4 whatever \t\x01 junk\r\n"), 1, true,
     NULL, NULL, 0, 0},
    {"v2 tcp4", IN(SIG "\x21\x11\x00\x0c" V2_TCP4_ADDRS), 2, false, "192.0.2.1", "198.51.100.7",
     50000, 993},
    {"v2 tcp6",
     IN(SIG "\x21\x21\x00\x24"
            "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
            "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
            "\xc3\x50\x03\xe1"),
     2, false, "2001:db8::1", "2001:db8::2", 50000, 993},
    {"v2 local", IN(SIG "\x20\x00\x00\x00"), 2, true, NULL, NULL, 0, 0},
    {"v2 local with an address block", IN(SIG "\x20\x11\x00\x0c" V2_TCP4_ADDRS), 2, true, NULL,
     NULL, 0, 0},
    {"v2 local with an unknown family",
     IN(SIG "\x20\xff\x00\x03"
            "abc"),
     2, true, NULL, NULL, 0, 0},
    {"v2 proxy unspec", IN(SIG "\x21\x00\x00\x00"), 2, true, NULL, NULL, 0, 0},
    {"v2 proxy unspec with a noop tlv",
     IN(SIG "\x21\x00\x00\x05"
            "\x04\x00\x02"
            "xx"),
     2, true, NULL, NULL, 0, 0},
    {"v2 tcp4 with unknown, custom and netns tlvs",
     IN(SIG "\x21\x11\x00\x1d" V2_TCP4_ADDRS "\xe0\x00\x01"
            "c"
            "\xff\x00\x00"
            "\x30\x00\x04"
            "blue"
            "\x04\x00\x00"),
     2, false, "192.0.2.1", "198.51.100.7", 50000, 993},
};

static void
good_headers_parse_alike_in_every_split_and_leave_the_rest(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		const struct good_case *c = &good_cases[i];
		struct pp_result res;

		print_message("  %s\n", c->name);
		check_good(c->in, c->len, &res);
		assert_int_equal(res.version, c->version);
		assert_int_equal(res.local, c->local);
		if (c->src != NULL) {
			assert_addr(&res.src, res.srclen, c->src, c->sport);
			assert_addr(&res.dst, res.dstlen, c->dst, c->dport);
		}
		assert_false(res.ssl);
		assert_string_equal(res.authority, "");
	}
}

static void
v1_line_of_exactly_107_bytes_is_accepted(void **state)
{
	char line[PP_V1_MAX + 1];
	struct pp_result res;

	(void)state;
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + PP_V1_MAX - 2, "\r\n", 2);
	check_good((const uint8_t *)line, PP_V1_MAX, &res);
	assert_true(res.local);
}

static void
v1_line_without_crlf_within_107_bytes_is_bad(void **state)
{
	char line[PP_V1_MAX + 2];

	(void)state;
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + PP_V1_MAX - 1, "\r\n", 2); /* 108 bytes with the CRLF */
	check_bad((const uint8_t *)line, PP_V1_MAX + 2, "no CRLF within 107");
	/* known at the 107th byte already */
	check_bad((const uint8_t *)line, PP_V1_MAX, "no CRLF within 107");
}

static void
v2_unix_family_is_accepted_as_local(void **state)
{
	struct hb h;
	struct pp_result res;

	(void)state;
	hb_start(&h, 0x21, 0x31);
	hb_fill(&h, '/', 216);
	hb_end(&h);
	check_good(h.b, h.n, &res);
	assert_true(res.local);
	hb_start(&h, 0x21, 0x32);
	hb_fill(&h, '/', 216);
	hb_end(&h);
	check_good(h.b, h.n, &res);
	assert_true(res.local);
}

static void
v2_kept_tlvs_are_copied_into_the_result(void **state)
{
	static const uint8_t uid[] = {0x00, 0x01, 0xfe, 0xff};
	struct hb h, ssl;
	struct pp_result res;

	(void)state;
	/* the SSL TLV's value: client bits, verify, sub-TLVs */
	ssl.n = 0;
	hb_put(&ssl, "\x07\x00\x00\x00\x00", 5);
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_VERSION, "TLSv1.3", 7);
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_CN, "alice", 5);
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_CIPHER, "TLS_AES_256_GCM_SHA384", 22);
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_SIG_ALG, "RSA-SHA256", 10);
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_KEY_ALG, "RSA2048", 7);
	hb_tlv(&ssl, 0x2f, "future", 6);

	hb_tcp4(&h);
	hb_tlv(&h, PP2_TYPE_AUTHORITY, "imap.example.org", 16);
	hb_tlv(&h, PP2_TYPE_ALPN, "imap", 4);
	hb_tlv(&h, PP2_TYPE_UNIQUE_ID, uid, sizeof(uid));
	hb_tlv(&h, PP2_TYPE_SSL, ssl.b, ssl.n);
	hb_end(&h);
	check_good(h.b, h.n, &res);
	assert_false(res.local);
	assert_string_equal(res.authority, "imap.example.org");
	assert_string_equal(res.alpn, "imap");
	assert_int_equal(res.unique_id_len, sizeof(uid));
	assert_memory_equal(res.unique_id, uid, sizeof(uid));
	assert_true(res.ssl);
	assert_int_equal(res.ssl_client,
	                 PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS);
	assert_int_equal(res.ssl_verify, 0);
	assert_string_equal(res.ssl_version, "TLSv1.3");
	assert_string_equal(res.ssl_cn, "alice");
	assert_string_equal(res.ssl_cipher, "TLS_AES_256_GCM_SHA384");
	assert_false(res.crc_verified);
}

static void
v2_ssl_tlv_keeps_a_nonzero_verify_result(void **state)
{
	struct hb h;
	struct pp_result res;

	(void)state;
	hb_tcp4(&h);
	hb_tlv(&h, PP2_TYPE_SSL, "\x03\x00\x00\x00\x15", 5); /* no sub-TLVs */
	hb_end(&h);
	check_good(h.b, h.n, &res);
	assert_true(res.ssl);
	assert_int_equal(res.ssl_client, 3);
	assert_int_equal(res.ssl_verify, 0x15);
	assert_string_equal(res.ssl_version, "");
}

static void
v2_tlvs_after_a_local_address_block_are_parsed(void **state)
{
	struct hb h;
	struct pp_result res;

	(void)state;
	hb_start(&h, 0x20, 0x11);
	hb_put(&h, V2_TCP4_ADDRS, 12);
	hb_tlv(&h, PP2_TYPE_AUTHORITY, "health.example", 14);
	hb_end(&h);
	check_good(h.b, h.n, &res);
	assert_true(res.local);
	assert_string_equal(res.authority, "health.example");
}

static void
v2_body_of_2048_bytes_is_accepted_and_2049_is_bad(void **state)
{
	static const uint8_t pad[PP_V2_BODY_MAX];
	struct hb h;
	struct pp_result res;

	(void)state;
	hb_tcp4(&h);
	hb_tlv(&h, PP2_TYPE_NOOP, pad, PP_V2_BODY_MAX - 12 - 3);
	hb_end(&h);
	assert_int_equal(h.n, PP_HEADER_MAX);
	check_good(h.b, h.n, &res);

	/* one byte more in the NOOP: refused once the length is known */
	h.b[16 + 12 + 2]++;
	hb_fill(&h, 0, 1);
	hb_end(&h);
	check_bad(h.b, h.n, "over 2048");
}

/* ---- CRC-32C ------------------------------------------------------------------ */

static void
crc32c_matches_the_published_check_values(void **state)
{
	uint8_t b[32];

	(void)state;
	/* the CRC catalogue's check value, then RFC 3720 B.4 */
	assert_int_equal(proxyproto_crc32c("123456789", 9), 0xE3069283u);
	memset(b, 0, sizeof(b));
	assert_int_equal(proxyproto_crc32c(b, sizeof(b)), 0x8A9136AAu);
	memset(b, 0xff, sizeof(b));
	assert_int_equal(proxyproto_crc32c(b, sizeof(b)), 0x62A8AB43u);
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)i;
	assert_int_equal(proxyproto_crc32c(b, sizeof(b)), 0x46DD794Eu);
	assert_int_equal(proxyproto_crc32c(b, 0), 0);
}

static void
v2_with_a_right_crc32c_is_accepted_and_marked_verified(void **state)
{
	struct hb h;
	struct pp_result res;

	(void)state;
	hb_tcp4(&h);
	hb_tlv(&h, PP2_TYPE_AUTHORITY, "imap.example.org", 16);
	hb_crc(&h);
	check_good(h.b, h.n, &res);
	assert_true(res.crc_verified);
	assert_string_equal(res.authority, "imap.example.org");

	/* the CRC may come first: it covers the bytes after it too */
	hb_tcp4(&h);
	hb_crc(&h);
	hb_tlv(&h, PP2_TYPE_ALPN, "imap", 4);
	hb_end(&h);
	/* recompute over the final header, with the value zeroed */
	memset(h.b + 16 + 12 + 3, 0, 4);
	{
		uint32_t crc = proxyproto_crc32c(h.b, h.n);

		h.b[31] = (uint8_t)(crc >> 24);
		h.b[32] = (uint8_t)(crc >> 16);
		h.b[33] = (uint8_t)(crc >> 8);
		h.b[34] = (uint8_t)crc;
	}
	check_good(h.b, h.n, &res);
	assert_true(res.crc_verified);
	assert_string_equal(res.alpn, "imap");
}

static void
v2_with_a_wrong_crc32c_is_bad_whatever_byte_changed(void **state)
{
	struct hb h;

	(void)state;
	hb_tcp4(&h);
	hb_tlv(&h, PP2_TYPE_AUTHORITY, "imap.example.org", 16);
	hb_crc(&h);
	/* every byte after the fixed part: address, TLV payloads, the CRC itself
	 * (type and length bytes change the structure, so other errors may come first) */
	for (size_t i = 16; i < h.n; i++) {
		struct pp_result res;
		size_t consumed;

		if (i == 28 || i == 29 || i == 30 || i == h.n - 7 || i == h.n - 6 || i == h.n - 5)
			continue;
		h.b[i] ^= 0x01;
		assert_int_equal(feed_whole(h.b, h.n, &res, &consumed), PP_BAD);
		assert_string_equal(res.error, "v2: CRC32C mismatch");
		h.b[i] ^= 0x01;
	}
	h.b[h.n - 1] ^= 0x80;
	check_bad(h.b, h.n, "CRC32C mismatch");
}

/* ---- bad inputs ---------------------------------------------------------------- */

static const struct bad_case {
	const char *name;
	const uint8_t *in;
	size_t len;
	const char *error; /* a part of the error text */
} bad_cases[] = {
    {"http", IN("GET / HTTP/1.1\r\n"), "not a PROXY"},
    {"tls", IN("\x16\x03\x01\x02\x00"), "not a PROXY"},
    {"lower case", IN("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "not a PROXY"},
    {"v1 no space after PROXY", IN("PROXY\r\n"), "not a PROXY"},
    {"v1 prefix typo", IN("PROXZ TCP4"), "not a PROXY"},
    {"v1 LF alone", IN("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "LF without CR"},
    {"v1 CR then junk", IN("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), "CR not followed by LF"},
    {"v1 CR early", IN("PROXY TCP4\r 1.2.3.4"), "CR not followed by LF"},
    {"v1 nothing", IN("PROXY \r\n"), "empty field"},
    {"v1 double space", IN("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), "empty field"},
    {"v1 trailing space", IN("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), "empty field"},
    {"v1 tab", IN("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n"), "control"},
    {"v1 nul in address", IN("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), "control"},
    {"v1 8-bit", IN("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n"), "control"},
    {"v1 protocol", IN("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), "protocol"},
    {"v1 udp", IN("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), "protocol"},
    {"v1 unknownx", IN("PROXY UNKNOWNX\r\n"), "protocol"},
    {"v1 four fields", IN("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "too few"},
    {"v1 six fields", IN("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), "too many"},
    {"v1 tcp4 with v6", IN("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), "bad address"},
    {"v1 tcp6 with v4", IN("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), "bad address"},
    {"v1 short address", IN("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), "bad address"},
    {"v1 octet over 255", IN("PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n"), "bad address"},
    {"v1 octet leading zero", IN("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), "bad address"},
    {"v1 host name", IN("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), "bad address"},
    {"v1 zone id", IN("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), "bad address"},
    {"v1 overlong address",
     IN("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000 ::1 1 2\r\n"),
     "bad address"},
    {"v1 port over 65535", IN("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), "bad port"},
    {"v1 port leading zero", IN("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), "bad port"},
    {"v1 port sign", IN("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), "bad port"},
    {"v1 port junk", IN("PROXY TCP4 1.2.3.4 5.6.7.8 1 2a\r\n"), "bad port"},
    {"v1 port six digits", IN("PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n"), "bad port"},
    {"v1 port hex", IN("PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n"), "bad port"},
    {"v2 signature last byte", IN("\r\n\r\n\0\r\nQUIT\r"), "not a PROXY"},
    {"v2 signature nul missing", IN("\r\n\r\nX"), "not a PROXY"},
    {"v2 version 1", IN(SIG "\x11\x11\x00\x0c" V2_TCP4_ADDRS), "version is not 2"},
    {"v2 version 3", IN(SIG "\x31\x11\x00\x0c" V2_TCP4_ADDRS), "version is not 2"},
    {"v2 command 2", IN(SIG "\x22\x11\x00\x0c" V2_TCP4_ADDRS), "neither LOCAL nor PROXY"},
    {"v2 command 15", IN(SIG "\x2f\x00\x00\x00"), "neither LOCAL nor PROXY"},
    {"v2 length 65535", IN(SIG "\x21\x11\xff\xff"), "over 2048"},
    {"v2 family 4", IN(SIG "\x21\x41\x00\x00"), "unknown address family"},
    {"v2 transport 3", IN(SIG "\x21\x13\x00\x0c" V2_TCP4_ADDRS), "unknown transport"},
    {"v2 udp4", IN(SIG "\x21\x12\x00\x0c" V2_TCP4_ADDRS), "STREAM"},
    {"v2 inet unspec transport", IN(SIG "\x21\x10\x00\x0c" V2_TCP4_ADDRS), "STREAM"},
    {"v2 udp6",
     IN(SIG "\x21\x22\x00\x24"
            "0123456789abcdef0123456789abcdef"
            "\0\1\0\2"),
     "STREAM"},
    {"v2 inet block short",
     IN(SIG "\x21\x11\x00\x0b"
            "\xc0\x00\x02\x01\xc6\x33\x64\x07\xc3\x50\x03"),
     "shorter than its family"},
    {"v2 inet6 block short", IN(SIG "\x21\x21\x00\x0c" V2_TCP4_ADDRS), "shorter than its family"},
    {"v2 unix block short", IN(SIG "\x21\x31\x00\x00"), "shorter than its family"},
    {"v2 tlv cut", IN(SIG "\x21\x11\x00\x0e" V2_TCP4_ADDRS "\x04\x00"), "truncated TLV"},
    {"v2 tlv overrun",
     IN(SIG "\x21\x11\x00\x10" V2_TCP4_ADDRS "\x04\x00\x02"
            "x"),
     "longer than the header"},
    {"v2 tlv overrun unknown type",
     IN(SIG "\x21\x00\x00\x03"
            "\xee\xff\xff"),
     "longer than the header"},
    {"v2 crc length 3",
     IN(SIG "\x21\x00\x00\x06"
            "\x03\x00\x03"
            "abc"),
     "not 4 bytes"},
    {"v2 crc wrong",
     IN(SIG "\x21\x00\x00\x07"
            "\x03\x00\x04"
            "abcd"),
     "CRC32C mismatch"},
    {"v2 two crcs",
     IN(SIG "\x21\x00\x00\x0e"
            "\x03\x00\x04"
            "abcd"
            "\x03\x00\x04"
            "abcd"),
     "CRC32C"},
    {"v2 authority with nul",
     IN(SIG "\x21\x00\x00\x06"
            "\x02\x00\x03"
            "a\0b"),
     "authority"},
    {"v2 two authorities",
     IN(SIG "\x21\x00\x00\x08"
            "\x02\x00\x01"
            "a"
            "\x02\x00\x01"
            "b"),
     "repeated"},
    {"v2 two alpns",
     IN(SIG "\x21\x00\x00\x08"
            "\x01\x00\x01"
            "a"
            "\x01\x00\x01"
            "b"),
     "repeated"},
    {"v2 alpn with nul",
     IN(SIG "\x21\x00\x00\x04"
            "\x01\x00\x01"
            "\0"),
     "ALPN"},
    {"v2 ssl under 5",
     IN(SIG "\x21\x00\x00\x07"
            "\x20\x00\x04"
            "\x01\0\0\0"),
     "shorter than 5"},
    {"v2 two ssl",
     IN(SIG "\x21\x00\x00\x10"
            "\x20\x00\x05"
            "\x01\0\0\0\0"
            "\x20\x00\x05"
            "\x01\0\0\0\0"),
     "repeated"},
    {"v2 ssl sub cut",
     IN(SIG "\x21\x00\x00\x0a"
            "\x20\x00\x07"
            "\x01\0\0\0\0"
            "\x21\x00"),
     "truncated SSL sub-TLV"},
    {"v2 ssl sub overrun",
     IN(SIG "\x21\x00\x00\x0c"
            "\x20\x00\x09"
            "\x01\0\0\0\0"
            "\x21\x00\x02"
            "T"),
     "longer than its TLV"},
    {"v2 ssl sub beyond its tlv",
     IN(SIG "\x21\x00\x00\x0c"
            "\x20\x00\x08"
            "\x01\0\0\0\0"
            "\x21\x00\x00"
            "T"),
     "truncated TLV"},
    {"v2 ssl version twice",
     IN(SIG "\x21\x00\x00\x10"
            "\x20\x00\x0d"
            "\x01\0\0\0\0"
            "\x21\x00\x01"
            "T"
            "\x21\x00\x01"
            "U"),
     "SSL sub-TLV repeated"},
    {"v2 ssl cn with nul",
     IN(SIG "\x21\x00\x00\x0c"
            "\x20\x00\x09"
            "\x01\0\0\0\0"
            "\x22\x00\x01"
            "\0"),
     "CN"},
    {"v2 bad tlv after local block",
     IN(SIG "\x20\x00\x00\x02"
            "\x04\x00"),
     "truncated TLV"},
};

static void
malformed_headers_are_bad_in_every_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		print_message("  %s\n", bad_cases[i].name);
		check_bad(bad_cases[i].in, bad_cases[i].len, bad_cases[i].error);
	}
}

static void
bad_input_is_refused_at_the_first_impossible_byte(void **state)
{
	struct pp_parser p;
	struct pp_result res;
	size_t used;

	(void)state;
	/* a client talking TLS straight away fails on its first byte */
	proxyproto_init(&p);
	assert_int_equal(proxyproto_parse(&p, IN("\x16"), &used, &res), PP_BAD);
	/* a v1 prefix typo fails on the typo, not at the CRLF */
	proxyproto_init(&p);
	assert_int_equal(proxyproto_parse(&p, IN("PROX"), &used, &res), PP_MORE);
	assert_int_equal(proxyproto_parse(&p, IN("Z"), &used, &res), PP_BAD);
	/* a v2 header that announces too much fails at its 16th byte */
	proxyproto_init(&p);
	assert_int_equal(proxyproto_parse(&p, IN(SIG "\x21\x11\x08"), &used, &res), PP_MORE);
	assert_int_equal(proxyproto_parse(&p, IN("\x01"), &used, &res), PP_BAD);
}

static void
v2_tlv_values_over_their_limit_are_bad(void **state)
{
	uint8_t big[PP_SSL_CN_MAX + 1];
	struct hb h, ssl;

	(void)state;
	memset(big, 'a', sizeof(big));
	hb_start(&h, 0x21, 0x00);
	hb_tlv(&h, PP2_TYPE_AUTHORITY, big, PP_AUTHORITY_MAX + 1);
	hb_end(&h);
	check_bad(h.b, h.n, "authority");

	hb_start(&h, 0x21, 0x00);
	hb_tlv(&h, PP2_TYPE_ALPN, big, PP_ALPN_MAX + 1);
	hb_end(&h);
	check_bad(h.b, h.n, "ALPN");

	hb_start(&h, 0x21, 0x00);
	hb_tlv(&h, PP2_TYPE_UNIQUE_ID, big, PP_UNIQUE_ID_MAX + 1);
	hb_end(&h);
	check_bad(h.b, h.n, "unique id");

	ssl.n = 0;
	hb_put(&ssl, "\x01\x00\x00\x00\x00", 5);
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_VERSION, big, PP_SSL_VERSION_MAX + 1);
	hb_start(&h, 0x21, 0x00);
	hb_tlv(&h, PP2_TYPE_SSL, ssl.b, ssl.n);
	hb_end(&h);
	check_bad(h.b, h.n, "SSL version");

	ssl.n = 5;
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_CIPHER, big, PP_SSL_CIPHER_MAX + 1);
	hb_start(&h, 0x21, 0x00);
	hb_tlv(&h, PP2_TYPE_SSL, ssl.b, ssl.n);
	hb_end(&h);
	check_bad(h.b, h.n, "SSL cipher");

	ssl.n = 5;
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_CN, big, PP_SSL_CN_MAX + 1);
	hb_start(&h, 0x21, 0x00);
	hb_tlv(&h, PP2_TYPE_SSL, ssl.b, ssl.n);
	hb_end(&h);
	check_bad(h.b, h.n, "SSL CN");

	/* and at the limit they are kept */
	ssl.n = 5;
	hb_tlv(&ssl, PP2_SUBTYPE_SSL_CN, big, PP_SSL_CN_MAX);
	hb_start(&h, 0x21, 0x00);
	hb_tlv(&h, PP2_TYPE_AUTHORITY, big, PP_AUTHORITY_MAX);
	hb_tlv(&h, PP2_TYPE_UNIQUE_ID, big, PP_UNIQUE_ID_MAX);
	hb_tlv(&h, PP2_TYPE_SSL, ssl.b, ssl.n);
	hb_end(&h);
	{
		struct pp_result res;

		check_good(h.b, h.n, &res);
		assert_int_equal(strlen(res.authority), PP_AUTHORITY_MAX);
		assert_int_equal(strlen(res.ssl_cn), PP_SSL_CN_MAX);
		assert_int_equal(res.unique_id_len, PP_UNIQUE_ID_MAX);
	}
}

static void
want_asks_for_the_shortest_header_then_exactly_what_v2_announces(void **state)
{
	static const char v2[] = SIG "\x21\x11\x00\x0c" V2_TCP4_ADDRS;
	struct pp_parser p;
	struct pp_result res;
	size_t used;

	(void)state;
	proxyproto_init(&p);
	assert_int_equal(proxyproto_want(&p), 15);
	assert_int_equal(proxyproto_parse(&p, IN("PROXY"), &used, &res), PP_MORE);
	assert_int_equal(proxyproto_want(&p), 10);
	assert_int_equal(proxyproto_parse(&p, IN(" UNKNOWN\r"), &used, &res), PP_MORE);
	assert_int_equal(proxyproto_want(&p), 1); /* 14 bytes: the next may be the LF */
	assert_int_equal(proxyproto_parse(&p, IN("\n"), &used, &res), PP_DONE);
	assert_int_equal(proxyproto_want(&p), 0);

	proxyproto_init(&p);
	assert_int_equal(proxyproto_parse(&p, (const uint8_t *)v2, 15, &used, &res), PP_MORE);
	assert_int_equal(proxyproto_want(&p), 1);
	assert_int_equal(proxyproto_parse(&p, (const uint8_t *)v2 + 15, 1, &used, &res), PP_MORE);
	assert_int_equal(proxyproto_want(&p), 12);
	assert_int_equal(proxyproto_parse(&p, (const uint8_t *)v2 + 16, 12, &used, &res), PP_DONE);
	assert_int_equal(proxyproto_want(&p), 0);

	proxyproto_init(&p);
	assert_int_equal(proxyproto_parse(&p, IN("GET"), &used, &res), PP_BAD);
	assert_int_equal(proxyproto_want(&p), 0);
}

static void
parser_refuses_calls_after_its_result_until_init(void **state)
{
	static const char hdr[] = "PROXY UNKNOWN\r\n";
	struct pp_parser p;
	struct pp_result res;
	size_t used;

	(void)state;
	proxyproto_init(&p);
	assert_int_equal(proxyproto_parse(&p, (const uint8_t *)"", 0, &used, &res), PP_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(proxyproto_parse(&p, IN(hdr), &used, &res), PP_DONE);
	assert_int_equal(used, sizeof(hdr) - 1);
	assert_int_equal(proxyproto_parse(&p, IN(hdr), &used, &res), PP_BAD);
	assert_int_equal(used, 0);
	assert_non_null(res.error);
	proxyproto_init(&p);
	assert_int_equal(proxyproto_parse(&p, IN(hdr), &used, &res), PP_DONE);
}

static void
header_followed_by_client_bytes_in_one_read_stops_at_the_header(void **state)
{
	static const char in[] = SIG "\x21\x11\x00\x0c" V2_TCP4_ADDRS TRAILER;
	struct pp_parser p;
	struct pp_result res;
	size_t used;

	(void)state;
	proxyproto_init(&p);
	assert_int_equal(proxyproto_parse(&p, IN(in), &used, &res), PP_DONE);
	assert_int_equal(used, 28);
	assert_memory_equal(in + used, TRAILER, sizeof(TRAILER) - 1);

	/* v1: a second header in the same read is the caller's, not ours */
	proxyproto_init(&p);
	assert_int_equal(
	    proxyproto_parse(&p, IN("PROXY UNKNOWN\r\nPROXY UNKNOWN\r\n"), &used, &res), PP_DONE);
	assert_int_equal(used, 15);
}

/* ---- writers ------------------------------------------------------------------ */

static struct sockaddr_storage
sa(const char *addr, unsigned port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') == NULL) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, addr, &s->sin_addr), 1);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, addr, &s->sin6_addr), 1);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static const struct rt_case {
	const char *src, *dst;
	unsigned sport, dport;
	const char *want_src, *want_dst; /* after the v4-mapped rule; NULL: local */
	const char *v1;                  /* the line expected */
} rt_cases[] = {
    {"192.0.2.1", "198.51.100.7", 50000, 993, "192.0.2.1", "198.51.100.7",
     "PROXY TCP4 192.0.2.1 198.51.100.7 50000 993\r\n"},
    {"2001:db8::1", "2001:db8::2", 1, 65535, "2001:db8::1", "2001:db8::2",
     "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"},
    {"::ffff:192.0.2.1", "::ffff:10.0.0.1", 0, 143, "192.0.2.1", "10.0.0.1",
     "PROXY TCP4 192.0.2.1 10.0.0.1 0 143\r\n"},
    {"::ffff:192.0.2.1", "10.0.0.1", 7, 8, "192.0.2.1", "10.0.0.1",
     "PROXY TCP4 192.0.2.1 10.0.0.1 7 8\r\n"},
    {"::ffff:192.0.2.1", "2001:db8::2", 7, 8, "::ffff:192.0.2.1", "2001:db8::2",
     "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 7 8\r\n"},
    {"192.0.2.1", "2001:db8::2", 7, 8, NULL, NULL, "PROXY UNKNOWN\r\n"},
};

static void
written_headers_parse_back_to_the_same_endpoints(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rt_cases) / sizeof(rt_cases[0]); i++) {
		const struct rt_case *c = &rt_cases[i];
		struct sockaddr_storage s = sa(c->src, c->sport), d = sa(c->dst, c->dport);
		uint8_t v2[PP_HEADER_MAX];
		char v1[PP_V1_MAX + 1];
		struct pp_result res;
		size_t n;

		n = proxyproto_write_v2(v2, sizeof(v2), SA(s), SA(d), NULL);
		assert_true(n >= 16);
		check_good(v2, n, &res);
		assert_int_equal(res.version, 2);
		assert_int_equal(res.local, c->want_src == NULL);
		if (c->want_src != NULL) {
			assert_addr(&res.src, res.srclen, c->want_src, c->sport);
			assert_addr(&res.dst, res.dstlen, c->want_dst, c->dport);
		}
		assert_false(res.ssl);

		n = proxyproto_write_v1(v1, sizeof(v1), SA(s), SA(d));
		assert_string_equal(v1, c->v1);
		assert_int_equal(n, strlen(c->v1));
		check_good((const uint8_t *)v1, n, &res);
		assert_int_equal(res.version, 1);
		assert_int_equal(res.local, c->want_src == NULL);
		if (c->want_src != NULL) {
			assert_addr(&res.src, res.srclen, c->want_src, c->sport);
			assert_addr(&res.dst, res.dstlen, c->want_dst, c->dport);
		}
	}
}

static void
written_v2_carries_tls_version_cipher_and_sni(void **state)
{
	struct sockaddr_storage s = sa("2001:db8::1", 50000), d = sa("2001:db8::2", 993);
	const struct pp_tls_info tls = {"TLSv1.3", "TLS_AES_128_GCM_SHA256", "imap.example.org"};
	uint8_t out[PP_HEADER_MAX];
	struct pp_result res;
	size_t n = proxyproto_write_v2(out, sizeof(out), SA(s), SA(d), &tls);

	(void)state;
	assert_true(n > 0);
	check_good(out, n, &res);
	assert_false(res.local);
	assert_addr(&res.src, res.srclen, "2001:db8::1", 50000);
	assert_true(res.ssl);
	assert_int_equal(res.ssl_client, PP2_CLIENT_SSL);
	assert_int_equal(res.ssl_verify, 0);
	assert_string_equal(res.ssl_version, "TLSv1.3");
	assert_string_equal(res.ssl_cipher, "TLS_AES_128_GCM_SHA256");
	assert_string_equal(res.ssl_cn, "");
	assert_string_equal(res.authority, "imap.example.org");
}

static void
written_v2_leaves_out_empty_tls_items(void **state)
{
	struct sockaddr_storage s = sa("192.0.2.1", 1), d = sa("192.0.2.2", 2);
	const struct pp_tls_info tls = {NULL, "", NULL};
	uint8_t out[PP_HEADER_MAX];
	struct pp_result res;
	size_t n = proxyproto_write_v2(out, sizeof(out), SA(s), SA(d), &tls);

	(void)state;
	assert_int_equal(n, 16 + 12 + 3 + 5); /* SSL TLV with client and verify only */
	check_good(out, n, &res);
	assert_true(res.ssl);
	assert_string_equal(res.ssl_version, "");
	assert_string_equal(res.authority, "");

	/* unknown families and NULL give AF_UNSPEC, TLVs still there */
	n = proxyproto_write_v2(out, sizeof(out), NULL, SA(d), &tls);
	assert_int_equal(n, 16 + 3 + 5);
	check_good(out, n, &res);
	assert_true(res.local);
	assert_true(res.ssl);
}

static void
writers_return_zero_when_the_output_is_too_small(void **state)
{
	struct sockaddr_storage s = sa("2001:db8::1", 50000), d = sa("2001:db8::2", 993);
	const struct pp_tls_info tls = {"TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", "a.example"};
	uint8_t out[PP_HEADER_MAX + 1];
	char line[PP_V1_MAX + 2];
	size_t need = proxyproto_write_v2(out, sizeof(out), SA(s), SA(d), &tls), v1;

	(void)state;
	for (size_t len = 0; len < need; len++) {
		memset(out, 0xEE, sizeof(out));
		assert_int_equal(proxyproto_write_v2(out, len, SA(s), SA(d), &tls), 0);
		assert_int_equal(out[len], 0xEE); /* nothing written past outlen */
	}
	assert_int_equal(proxyproto_write_v2(out, need, SA(s), SA(d), &tls), need);

	v1 = proxyproto_write_v1(line, sizeof(line), SA(s), SA(d));
	assert_true(v1 > 0);
	for (size_t len = 0; len <= v1; len++) {
		memset(line, 0x7E, sizeof(line));
		assert_int_equal(proxyproto_write_v1(line, len, SA(s), SA(d)), 0);
		assert_int_equal((unsigned char)line[len], 0x7E);
	}
	assert_int_equal(proxyproto_write_v1(line, v1 + 1, SA(s), SA(d)), v1);
}

static void
writers_fit_the_documented_maximum_sizes(void **state)
{
	struct sockaddr_storage s = sa("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	char line[PP_V1_MAX + 1], big[PP_SSL_CIPHER_MAX + 2];
	uint8_t out[PP_HEADER_MAX];
	struct pp_tls_info tls;
	struct pp_result res;
	size_t n;

	(void)state;
	n = proxyproto_write_v1(line, sizeof(line), SA(s), SA(s));
	assert_int_equal(n, 104);
	check_good((const uint8_t *)line, n, &res);

	memset(big, 'c', sizeof(big));
	big[PP_SSL_CIPHER_MAX] = '\0';
	tls.cipher = big;
	tls.version = big + PP_SSL_CIPHER_MAX - PP_SSL_VERSION_MAX;
	tls.sni = NULL;
	n = proxyproto_write_v2(out, sizeof(out), SA(s), SA(s), &tls);
	assert_true(n > 0);
	check_good(out, n, &res);
	assert_int_equal(strlen(res.ssl_cipher), PP_SSL_CIPHER_MAX);
	assert_int_equal(strlen(res.ssl_version), PP_SSL_VERSION_MAX);

	/* one byte more than the parser keeps: refused, not truncated */
	big[PP_SSL_CIPHER_MAX] = 'c';
	big[PP_SSL_CIPHER_MAX + 1] = '\0';
	assert_int_equal(proxyproto_write_v2(out, sizeof(out), SA(s), SA(s), &tls), 0);
}

static void
writer_refuses_an_sni_longer_than_an_authority(void **state)
{
	struct sockaddr_storage s = sa("192.0.2.1", 1);
	char sni[PP_AUTHORITY_MAX + 2];
	struct pp_tls_info tls = {"TLSv1.3", NULL, sni};
	uint8_t out[PP_HEADER_MAX];
	struct pp_result res;
	size_t n;

	(void)state;
	memset(sni, 'h', sizeof(sni));
	sni[PP_AUTHORITY_MAX] = '\0';
	n = proxyproto_write_v2(out, sizeof(out), SA(s), SA(s), &tls);
	assert_true(n > 0);
	check_good(out, n, &res);
	assert_int_equal(strlen(res.authority), PP_AUTHORITY_MAX);
	sni[PP_AUTHORITY_MAX] = 'h';
	sni[PP_AUTHORITY_MAX + 1] = '\0';
	assert_int_equal(proxyproto_write_v2(out, sizeof(out), SA(s), SA(s), &tls), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(good_headers_parse_alike_in_every_split_and_leave_the_rest),
	    cmocka_unit_test(v1_line_of_exactly_107_bytes_is_accepted),
	    cmocka_unit_test(v1_line_without_crlf_within_107_bytes_is_bad),
	    cmocka_unit_test(v2_unix_family_is_accepted_as_local),
	    cmocka_unit_test(v2_kept_tlvs_are_copied_into_the_result),
	    cmocka_unit_test(v2_ssl_tlv_keeps_a_nonzero_verify_result),
	    cmocka_unit_test(v2_tlvs_after_a_local_address_block_are_parsed),
	    cmocka_unit_test(v2_body_of_2048_bytes_is_accepted_and_2049_is_bad),
	    cmocka_unit_test(crc32c_matches_the_published_check_values),
	    cmocka_unit_test(v2_with_a_right_crc32c_is_accepted_and_marked_verified),
	    cmocka_unit_test(v2_with_a_wrong_crc32c_is_bad_whatever_byte_changed),
	    cmocka_unit_test(malformed_headers_are_bad_in_every_split),
	    cmocka_unit_test(bad_input_is_refused_at_the_first_impossible_byte),
	    cmocka_unit_test(v2_tlv_values_over_their_limit_are_bad),
	    cmocka_unit_test(want_asks_for_the_shortest_header_then_exactly_what_v2_announces),
	    cmocka_unit_test(parser_refuses_calls_after_its_result_until_init),
	    cmocka_unit_test(header_followed_by_client_bytes_in_one_read_stops_at_the_header),
	    cmocka_unit_test(written_headers_parse_back_to_the_same_endpoints),
	    cmocka_unit_test(written_v2_carries_tls_version_cipher_and_sni),
	    cmocka_unit_test(written_v2_leaves_out_empty_tls_items),
	    cmocka_unit_test(writers_return_zero_when_the_output_is_too_small),
	    cmocka_unit_test(writers_fit_the_documented_maximum_sizes),
	    cmocka_unit_test(writer_refuses_an_sni_longer_than_an_authority),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
