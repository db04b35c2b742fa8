/*
 * fuzz_proxyproto.c: libFuzzer harness for proxyproto_parse() and the writers.
 * Feeds the input whole, cut where the data says, byte by byte and in reads
 * of proxyproto_want() bytes: the results must agree and keep the header's
 * promises (used <= len, PP_MORE takes all, PP_DONE stops exactly at the
 * header's end).  With flag bit 0 the stream also drives the writers, whose
 * output must parse back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"
#include "fuzz_check.h"

/* Input layout: [flags] [cut] stream... */
#define HDR_LEN 2

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

struct fz_run {
	struct pp_parser p;
	struct pp_result res;
	enum pp_rc rc;
	size_t consumed; /* sum of used */
};

static void
fz_start(struct fz_run *r)
{
	proxyproto_init(&r->p);
	memset(&r->res, 0, sizeof(r->res));
	r->rc = PP_MORE;
	r->consumed = 0;
}

/* Feed one read; after a verdict the bytes are the caller's, not the parser's. */
static void
fz_feed(struct fz_run *r, const uint8_t *buf, size_t len)
{
	size_t used = (size_t)-1;

	if (r->rc != PP_MORE)
		return;
	r->rc = proxyproto_parse(&r->p, buf, len, &used, &r->res);
	CHECK(used <= len);
	if (r->rc == PP_MORE)
		CHECK(used == len);
	r->consumed += used;
}

static bool
nul_within(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* What a PP_DONE promises about the stream it came from. */
static void
fz_check_done(const struct fz_run *r, const uint8_t *s, size_t len)
{
	const struct pp_result *res = &r->res;
	size_t n = res->header_len;

	CHECK(res->error == NULL);
	CHECK(r->consumed == n && n <= len && n <= PP_HEADER_MAX);
	if (res->version == 1) {
		CHECK(n >= 15 && n <= PP_V1_MAX);
		CHECK(memcmp(s, "PROXY ", 6) == 0);
		CHECK(s[n - 2] == '\r' && s[n - 1] == '\n');
		CHECK(memchr(s, '\n', n - 1) == NULL);
	} else {
		CHECK(res->version == 2);
		CHECK(n >= 16 && memcmp(s, sig, 12) == 0);
		CHECK(n == 16 + (size_t)(s[14] << 8 | s[15]));
	}
	if (res->local) {
		CHECK(res->srclen == 0 && res->dstlen == 0);
	} else {
		int af = res->src.ss_family;

		CHECK(af == AF_INET || af == AF_INET6);
		CHECK(res->dst.ss_family == af);
		CHECK(res->srclen ==
		      (af == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)));
		CHECK(res->dstlen == res->srclen);
	}
	CHECK(nul_within(res->authority, sizeof(res->authority)));
	CHECK(nul_within(res->alpn, sizeof(res->alpn)));
	CHECK(nul_within(res->ssl_version, sizeof(res->ssl_version)));
	CHECK(nul_within(res->ssl_cipher, sizeof(res->ssl_cipher)));
	CHECK(nul_within(res->ssl_cn, sizeof(res->ssl_cn)));
	CHECK(res->unique_id_len <= PP_UNIQUE_ID_MAX);
	if (res->version == 1)
		CHECK(!res->ssl && res->authority[0] == '\0' && !res->crc_verified);
}

static void
fz_same(const struct fz_run *a, const struct fz_run *b)
{
	CHECK(a->rc == b->rc);
	if (a->rc == PP_DONE) {
		CHECK(a->consumed == b->consumed);
		CHECK(memcmp(&a->res, &b->res, sizeof(a->res)) == 0);
	} else if (a->rc == PP_BAD) {
		CHECK(strcmp(a->res.error, b->res.error) == 0);
	}
}

/* Take n bytes from the stream for the writer's inputs; zeroes past its end. */
static void
fz_take(const uint8_t **s, size_t *len, void *out, size_t n)
{
	size_t k = n < *len ? n : *len;

	memset(out, 0, n);
	memcpy(out, *s, k);
	*s += k;
	*len -= k;
}

static void
fz_sockaddr(const uint8_t **s, size_t *len, struct sockaddr_storage *ss)
{
	uint8_t kind = 0, a[16];
	uint16_t port;

	fz_take(s, len, &kind, 1);
	fz_take(s, len, a, sizeof(a));
	fz_take(s, len, &port, sizeof(port));
	memset(ss, 0, sizeof(*ss));
	switch (kind % 4) {
	case 0: {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, a, 4);
		sin->sin_port = port;
		break;
	}
	case 1:
		memset(a, 0, 10);
		a[10] = a[11] = 0xff; /* IPv4-mapped */
		                      /* fall through */
	case 2: {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, a, 16);
		sin6->sin6_port = port;
		break;
	}
	default:
		ss->ss_family = AF_UNIX;
		break;
	}
}

/* A string of up to max bytes from the stream, NUL-free, maybe over the limit. */
static void
fz_string(const uint8_t **s, size_t *len, char *out, size_t max)
{
	uint8_t n = 0;
	size_t k;

	fz_take(s, len, &n, 1);
	k = n % (max + 2);
	fz_take(s, len, out, k);
	for (size_t i = 0; i < k; i++)
		if (out[i] == '\0')
			out[i] = 'z';
	out[k] = '\0';
}

static void
fz_parse_back(const uint8_t *hdr, size_t n, struct pp_result *res)
{
	struct pp_parser p;
	size_t used;

	proxyproto_init(&p);
	CHECK(proxyproto_parse(&p, hdr, n, &used, res) == PP_DONE);
	CHECK(used == n && res->header_len == n);
}

/* The endpoint as the parser should give it back, after the v4-mapped rule. */
static bool
fz_same_endpoint(const struct sockaddr_storage *got, const struct sockaddr_storage *sent)
{
	if (got->ss_family == AF_INET && sent->ss_family == AF_INET6) {
		const struct sockaddr_in *g = (const struct sockaddr_in *)got;
		const struct sockaddr_in6 *w = (const struct sockaddr_in6 *)sent;

		return IN6_IS_ADDR_V4MAPPED(&w->sin6_addr) &&
		       memcmp(&g->sin_addr, w->sin6_addr.s6_addr + 12, 4) == 0 &&
		       g->sin_port == w->sin6_port;
	}
	if (got->ss_family != sent->ss_family)
		return false;
	if (got->ss_family == AF_INET) {
		const struct sockaddr_in *g = (const struct sockaddr_in *)got;
		const struct sockaddr_in *w = (const struct sockaddr_in *)sent;

		return g->sin_addr.s_addr == w->sin_addr.s_addr && g->sin_port == w->sin_port;
	} else {
		const struct sockaddr_in6 *g = (const struct sockaddr_in6 *)got;
		const struct sockaddr_in6 *w = (const struct sockaddr_in6 *)sent;

		return memcmp(&g->sin6_addr, &w->sin6_addr, 16) == 0 &&
		       g->sin6_port == w->sin6_port;
	}
}

static bool
fz_v4ish(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ||
	       (ss->ss_family == AF_INET6 &&
	        IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)ss)->sin6_addr));
}

/* The writers fall back to AF_UNSPEC / UNKNOWN for these. */
static bool
fz_expect_local(const struct sockaddr_storage *s, const struct sockaddr_storage *d)
{
	if (s->ss_family == AF_UNIX || d->ss_family == AF_UNIX)
		return true;
	if (s->ss_family == d->ss_family)
		return false;
	return !(fz_v4ish(s) && fz_v4ish(d));
}

static void
fz_writers(const uint8_t *s, size_t len)
{
	static uint8_t out[PP_HEADER_MAX];
	static char ver[PP_SSL_VERSION_MAX + 2], cip[PP_SSL_CIPHER_MAX + 2],
	    sni[PP_AUTHORITY_MAX + 2];
	static struct pp_result res;
	struct sockaddr_storage src, dst;
	struct pp_tls_info tls = {ver, cip, sni};
	uint8_t with_tls = 0, outlen_byte = 0;
	char line[PP_V1_MAX + 1];
	size_t n, outlen;
	bool over;

	fz_sockaddr(&s, &len, &src);
	fz_sockaddr(&s, &len, &dst);
	fz_take(&s, &len, &with_tls, 1);
	fz_take(&s, &len, &outlen_byte, 1);
	fz_string(&s, &len, ver, PP_SSL_VERSION_MAX);
	fz_string(&s, &len, cip, PP_SSL_CIPHER_MAX);
	fz_string(&s, &len, sni, PP_AUTHORITY_MAX);
	over = strlen(ver) > PP_SSL_VERSION_MAX || strlen(cip) > PP_SSL_CIPHER_MAX ||
	       strlen(sni) > PP_AUTHORITY_MAX;
	/* sometimes a small buffer: 0 or a whole header, never a part */
	outlen = outlen_byte & 1 ? (size_t)outlen_byte * 2 : sizeof(out);

	n = proxyproto_write_v2(out, outlen, (const struct sockaddr *)&src,
	                        (const struct sockaddr *)&dst, with_tls & 1 ? &tls : NULL);
	CHECK(n <= outlen);
	if ((with_tls & 1) && over)
		CHECK(n == 0);
	if (outlen == sizeof(out) && !((with_tls & 1) && over))
		CHECK(n > 0);
	if (n > 0) {
		fz_parse_back(out, n, &res);
		CHECK(res.version == 2);
		if (!res.local) {
			CHECK(fz_same_endpoint(&res.src, &src));
			CHECK(fz_same_endpoint(&res.dst, &dst));
		}
		CHECK(res.local == fz_expect_local(&src, &dst));
		CHECK(res.ssl == (with_tls & 1));
		if (with_tls & 1) {
			CHECK(res.ssl_client == PP2_CLIENT_SSL && res.ssl_verify == 0);
			CHECK(strcmp(res.ssl_version, ver) == 0);
			CHECK(strcmp(res.ssl_cipher, cip) == 0);
			CHECK(strcmp(res.authority, sni) == 0);
		}
	}

	n = proxyproto_write_v1(line, sizeof(line), (const struct sockaddr *)&src,
	                        (const struct sockaddr *)&dst);
	CHECK(n > 0 && n <= PP_V1_MAX && line[n] == '\0');
	fz_parse_back((const uint8_t *)line, n, &res);
	CHECK(res.version == 1);
	CHECK(res.local == fz_expect_local(&src, &dst));
	if (!res.local) {
		CHECK(fz_same_endpoint(&res.src, &src));
		CHECK(fz_same_endpoint(&res.dst, &dst));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_run whole, split, bytes, prefix, wanted; /* big: keep off the stack */
	size_t len, cut;
	uint8_t flags;

	if (size < HDR_LEN)
		return 0;
	flags = data[0];
	len = size - HDR_LEN;
	cut = (size_t)data[1] * len / 255;
	data += HDR_LEN;

	fz_start(&whole);
	fz_feed(&whole, data, len);
	if (whole.rc == PP_DONE)
		fz_check_done(&whole, data, len);
	else if (whole.rc == PP_BAD)
		CHECK(whole.res.error != NULL && !whole.res.local && whole.res.srclen == 0);

	fz_start(&split);
	fz_feed(&split, data, cut);
	fz_feed(&split, data + cut, len - cut);
	fz_same(&split, &whole);

	fz_start(&bytes);
	for (size_t i = 0; i < len; i++)
		fz_feed(&bytes, data + i, 1);
	fz_same(&bytes, &whole);

	/* reads sized by proxyproto_want() never reach past the header */
	fz_start(&wanted);
	for (size_t off = 0; off < len && wanted.rc == PP_MORE;) {
		size_t want = proxyproto_want(&wanted.p), before = wanted.consumed;

		CHECK(want > 0);
		if (want > len - off)
			want = len - off;
		fz_feed(&wanted, data + off, want);
		if (wanted.rc != PP_BAD)
			CHECK(wanted.consumed - before == want);
		off += want;
	}
	if (wanted.rc != PP_MORE)
		CHECK(proxyproto_want(&wanted.p) == 0);
	fz_same(&wanted, &whole);

	/* one byte short of a header is never a verdict */
	if (whole.rc == PP_DONE) {
		fz_start(&prefix);
		fz_feed(&prefix, data, whole.res.header_len - 1);
		CHECK(prefix.rc == PP_MORE);
	}

	if (flags & 1)
		fz_writers(data, len);
	return 0;
}
