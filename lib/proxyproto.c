/*
 * proxyproto.c: the PROXY protocol v1/v2 header parser and writer (HAProxy's
 * proxy-protocol.txt).  Owns the byte-level state machine and the CRC-32C of
 * PP2_TYPE_CRC32C.  Pure: no sockets, no malloc, no clock, no globals; it
 * never guesses whether a header is there (spec section 2: the listener knows).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxyproto.h"

/* spec 2.2: "\r\n\r\n\0\r\nQUIT\n", chosen so that no v1 or other protocol starts alike */
static const uint8_t pp2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char pp1_prefix[] = "PROXY ";

#define PP2_VERSION    0x20 /* high nibble of ver_cmd */
#define PP2_CMD_LOCAL  0x00
#define PP2_CMD_PROXY  0x01
#define PP2_AF_UNSPEC  0x0
#define PP2_AF_INET    0x1
#define PP2_AF_INET6   0x2
#define PP2_AF_UNIX    0x3
#define PP2_TR_UNSPEC  0x0
#define PP2_TR_STREAM  0x1
#define PP2_TR_DGRAM   0x2
#define PP2_ADDR_INET  12  /* 4 + 4 + 2 + 2 */
#define PP2_ADDR_INET6 36  /* 16 + 16 + 2 + 2 */
#define PP2_ADDR_UNIX  216 /* 108 + 108 */

/* ---- CRC-32C ---------------------------------------------------------- */

/*
 * Bitwise, reflected polynomial 0x82F63B78 (Castagnoli, RFC 3720 B.4).  A
 * header is at most 2 KiB and checked once per connection, so eight shifts a
 * byte cost nothing worth a table.
 */
static uint32_t
crc32c_update(uint32_t crc, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return crc;
}

uint32_t
proxyproto_crc32c(const void *buf, size_t len)
{
	return ~crc32c_update(0xFFFFFFFFu, buf, len);
}

/* ---- helpers ------------------------------------------------------------ */

static uint16_t
be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static enum pp_rc
fail(struct pp_parser *p, struct pp_result *out, const char *error)
{
	memset(out, 0, sizeof(*out));
	out->version = p->version;
	out->error = error;
	p->finished = true;
	return PP_BAD;
}

/* ---- v1 ------------------------------------------------------------------- */

/* A decimal port: "0" or 1..5 digits without a leading zero, at most 65535. */
static bool
parse_port(const uint8_t *s, size_t n, uint16_t *port_out)
{
	uint32_t v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port_out = (uint16_t)v;
	return true;
}

/* A numeric address of family af into *ss, port left 0. */
static bool
parse_addr(int af, const uint8_t *s, size_t n, struct sockaddr_storage *ss, socklen_t *len_out)
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		*len_out = sizeof(*sin);
		return inet_pton(AF_INET, tmp, &sin->sin_addr) == 1;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		*len_out = sizeof(*sin6);
		return inet_pton(AF_INET6, tmp, &sin6->sin6_addr) == 1;
	}
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/*
 * buf[0..have) is "PROXY ...\r\n" (prefix and CRLF already checked).  Spec
 * 2.1: "PROXY" SP proto SP src SP dst SP sport SP dport CRLF, single spaces,
 * or "PROXY UNKNOWN" and anything up to the CRLF, which is ignored.
 */
static enum pp_rc
finish_v1(struct pp_parser *p, struct pp_result *out)
{
	const uint8_t *s = p->buf + sizeof(pp1_prefix) - 1;
	size_t n = p->have - 2 - (sizeof(pp1_prefix) - 1);
	const uint8_t *tok[5];
	size_t toklen[5], ntok = 0, start = 0;
	uint16_t sport, dport;
	int af;

	if (n >= 7 && memcmp(s, "UNKNOWN", 7) == 0 && (n == 7 || s[7] == ' ')) {
		memset(out, 0, sizeof(*out));
		out->version = 1;
		out->local = true;
		out->header_len = p->have;
		p->finished = true;
		return PP_DONE;
	}
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ') {
			/* visible ASCII only: inet_pton must see the whole token */
			if (s[i] < 0x21 || s[i] > 0x7e)
				return fail(p, out, "v1: control or 8-bit byte in the line");
			continue;
		}
		if (i == start)
			return fail(p, out, "v1: empty field (two spaces, or a space at the end)");
		if (ntok == 5)
			return fail(p, out, "v1: too many fields");
		tok[ntok] = s + start;
		toklen[ntok++] = i - start;
		start = i + 1;
	}
	if (toklen[0] == 4 && memcmp(tok[0], "TCP4", 4) == 0)
		af = AF_INET;
	else if (toklen[0] == 4 && memcmp(tok[0], "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return fail(p, out, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
	if (ntok != 5)
		return fail(p, out, "v1: too few fields");

	memset(out, 0, sizeof(*out));
	if (!parse_addr(af, tok[1], toklen[1], &out->src, &out->srclen) ||
	    !parse_addr(af, tok[2], toklen[2], &out->dst, &out->dstlen))
		return fail(p, out, "v1: bad address for the protocol");
	if (!parse_port(tok[3], toklen[3], &sport) || !parse_port(tok[4], toklen[4], &dport))
		return fail(p, out, "v1: bad port");
	set_port(&out->src, sport);
	set_port(&out->dst, dport);
	out->version = 1;
	out->header_len = p->have;
	p->finished = true;
	return PP_DONE;
}

/* Take v1 bytes up to the LF; *used_out counts them. */
static enum pp_rc
feed_v1(struct pp_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
        struct pp_result *out)
{
	size_t i = 0;

	while (i < len) {
		uint8_t b = buf[i];

		p->buf[p->have++] = b;
		i++;
		/* the 107th byte must be the LF: fail there, not one byte later */
		if (p->have == PP_V1_MAX && b != '\n') {
			*used_out = i;
			return fail(p, out, "v1: no CRLF within 107 bytes");
		}
		if (p->have <= sizeof(pp1_prefix) - 1 && b != (uint8_t)pp1_prefix[p->have - 1]) {
			*used_out = i;
			return fail(p, out, "not a PROXY protocol header");
		}
		if (p->have >= 2 && p->buf[p->have - 2] == '\r' && b != '\n') {
			*used_out = i;
			return fail(p, out, "v1: CR not followed by LF");
		}
		if (b == '\n') {
			*used_out = i;
			if (p->buf[p->have - 2] != '\r')
				return fail(p, out, "v1: LF without CR");
			return finish_v1(p, out);
		}
	}
	*used_out = i;
	return PP_MORE;
}

/* ---- v2 ------------------------------------------------------------------- */

/* Copy a TLV string value into dst[cap + 1]; no NUL inside (it is a C string). */
static bool
copy_str(char *dst, size_t cap, const uint8_t *v, size_t n)
{
	if (n > cap || memchr(v, '\0', n) != NULL)
		return false;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return true;
}

/* The sub-TLVs of PP2_TYPE_SSL (spec 2.2.5): v[0..n) after client and verify. */
static const char *
parse_ssl_subs(const uint8_t *v, size_t n, struct pp_result *out)
{
	unsigned seen = 0;

	for (size_t off = 0; off < n;) {
		uint8_t type;
		size_t l;
		const uint8_t *sv;

		if (n - off < 3)
			return "v2: truncated SSL sub-TLV";
		type = v[off];
		l = be16(v + off + 1);
		if (l > n - off - 3)
			return "v2: SSL sub-TLV longer than its TLV";
		sv = v + off + 3;
		off += 3 + l;
		if (type < PP2_SUBTYPE_SSL_VERSION || type > PP2_SUBTYPE_SSL_CIPHER)
			continue; /* SIG_ALG, KEY_ALG, future ones: not kept */
		if (seen & (1u << (type - PP2_SUBTYPE_SSL_VERSION)))
			return "v2: SSL sub-TLV repeated";
		seen |= 1u << (type - PP2_SUBTYPE_SSL_VERSION);
		if (type == PP2_SUBTYPE_SSL_VERSION &&
		    !copy_str(out->ssl_version, PP_SSL_VERSION_MAX, sv, l))
			return "v2: bad SSL version sub-TLV";
		if (type == PP2_SUBTYPE_SSL_CN && !copy_str(out->ssl_cn, PP_SSL_CN_MAX, sv, l))
			return "v2: bad SSL CN sub-TLV";
		if (type == PP2_SUBTYPE_SSL_CIPHER &&
		    !copy_str(out->ssl_cipher, PP_SSL_CIPHER_MAX, sv, l))
			return "v2: bad SSL cipher sub-TLV";
	}
	return NULL;
}

/*
 * The TLVs in h[start..end) of the whole header h (spec 2.2).  Lengths are
 * checked for all; the useful ones are kept and may come once; the others
 * (NOOP, NETNS, custom, unknown) are skipped.  NULL or an error.
 */
static const char *
parse_tlvs(const uint8_t *h, size_t start, size_t end, struct pp_result *out)
{
	uint32_t seen = 0; /* bit t for the types below 32 we keep; bit 31: SSL */

	for (size_t off = start; off < end;) {
		uint8_t type;
		size_t l, voff;
		const uint8_t *v;
		const char *err;

		if (end - off < 3)
			return "v2: truncated TLV";
		type = h[off];
		l = be16(h + off + 1);
		if (l > end - off - 3)
			return "v2: TLV longer than the header";
		voff = off + 3;
		v = h + voff;
		off = voff + l;

		switch (type) {
		case PP2_TYPE_ALPN:
		case PP2_TYPE_AUTHORITY:
		case PP2_TYPE_CRC32C:
		case PP2_TYPE_UNIQUE_ID:
		case PP2_TYPE_SSL: {
			uint32_t bit = type == PP2_TYPE_SSL ? 1u << 31 : 1u << type;

			if (seen & bit)
				return "v2: TLV repeated";
			seen |= bit;
			break;
		}
		default:
			continue; /* NOOP, NETNS, custom and unknown types */
		}

		switch (type) {
		case PP2_TYPE_ALPN:
			if (!copy_str(out->alpn, PP_ALPN_MAX, v, l))
				return "v2: bad ALPN TLV";
			break;
		case PP2_TYPE_AUTHORITY:
			if (!copy_str(out->authority, PP_AUTHORITY_MAX, v, l))
				return "v2: bad authority TLV";
			break;
		case PP2_TYPE_CRC32C: {
			/* spec 2.2.3: over the whole header with this value as zeroes */
			static const uint8_t zero[4];
			uint32_t crc = 0xFFFFFFFFu;

			if (l != 4)
				return "v2: CRC32C TLV is not 4 bytes";
			crc = crc32c_update(crc, h, voff);
			crc = crc32c_update(crc, zero, 4);
			crc = crc32c_update(crc, h + voff + 4, out->header_len - voff - 4);
			if (~crc != be32(v))
				return "v2: CRC32C mismatch";
			out->crc_verified = true;
			break;
		}
		case PP2_TYPE_UNIQUE_ID:
			if (l > PP_UNIQUE_ID_MAX)
				return "v2: unique id over 128 bytes";
			memcpy(out->unique_id, v, l);
			out->unique_id_len = l;
			break;
		case PP2_TYPE_SSL:
			if (l < 5)
				return "v2: SSL TLV shorter than 5 bytes";
			out->ssl = true;
			out->ssl_client = v[0];
			out->ssl_verify = be32(v + 1);
			if ((err = parse_ssl_subs(v + 5, l - 5, out)) != NULL)
				return err;
			break;
		}
	}
	return NULL;
}

/* buf[0..need) is a whole v2 header whose fixed part was checked. */
static enum pp_rc
finish_v2(struct pp_parser *p, struct pp_result *out)
{
	const uint8_t *h = p->buf;
	size_t blen = p->need - PP_V2_FIXED, alen;
	unsigned cmd = h[12] & 0x0F, fam = h[13] >> 4, tr = h[13] & 0x0F;
	const char *err;

	memset(out, 0, sizeof(*out));
	out->version = 2;
	out->header_len = p->need;
	switch (fam) {
	case PP2_AF_UNSPEC:
		alen = 0;
		break;
	case PP2_AF_INET:
		alen = PP2_ADDR_INET;
		break;
	case PP2_AF_INET6:
		alen = PP2_ADDR_INET6;
		break;
	case PP2_AF_UNIX:
		alen = PP2_ADDR_UNIX;
		break;
	default:
		alen = SIZE_MAX;
		break;
	}

	if (cmd == PP2_CMD_LOCAL) {
		/* spec 2.2: the proxy's own connection (a health check); the
		 * family is ignored, but TLVs after a known block are still checked */
		out->local = true;
		if (alen != SIZE_MAX && tr <= PP2_TR_DGRAM && blen >= alen &&
		    (err = parse_tlvs(h, PP_V2_FIXED + alen, p->need, out)) != NULL)
			return fail(p, out, err);
		p->finished = true;
		return PP_DONE;
	}

	if (alen == SIZE_MAX)
		return fail(p, out, "v2: unknown address family");
	if (tr > PP2_TR_DGRAM)
		return fail(p, out, "v2: unknown transport");
	if (blen < alen)
		return fail(p, out, "v2: address block shorter than its family needs");
	if (fam == PP2_AF_INET || fam == PP2_AF_INET6) {
		/* postern relays TCP: a datagram or unspecified transport is nonsense here */
		if (tr != PP2_TR_STREAM)
			return fail(p, out, "v2: IP family without STREAM transport");
	}

	if (fam == PP2_AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
		const uint8_t *a = h + PP_V2_FIXED;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2); /* both in network order */
		memcpy(&d->sin_port, a + 10, 2);
		out->srclen = out->dstlen = sizeof(*s);
	} else if (fam == PP2_AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
		const uint8_t *a = h + PP_V2_FIXED;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		out->srclen = out->dstlen = sizeof(*s);
	} else {
		/* AF_UNSPEC (spec: ignore the addresses), AF_UNIX (no use to a
		 * TCP proxy): the socket's own addresses stand */
		out->local = true;
	}
	if ((err = parse_tlvs(h, PP_V2_FIXED + alen, p->need, out)) != NULL)
		return fail(p, out, err);
	p->finished = true;
	return PP_DONE;
}

/* Take v2 bytes: the fixed 16 first, then exactly the length they announce. */
static enum pp_rc
feed_v2(struct pp_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
        struct pp_result *out)
{
	size_t used = 0;

	for (;;) {
		size_t target = p->need ? p->need : PP_V2_FIXED;
		size_t n = target - p->have, old = p->have;

		if (n > len - used)
			n = len - used;
		memcpy(p->buf + p->have, buf + used, n);
		p->have += n;
		used += n;
		*used_out = used;
		/* check the signature as it comes: garbage fails at its first byte */
		for (size_t i = old; i < p->have && i < sizeof(pp2_sig); i++)
			if (p->buf[i] != pp2_sig[i])
				return fail(p, out, "not a PROXY protocol header");
		if (p->have < target)
			return PP_MORE;
		if (p->need != 0)
			return finish_v2(p, out);

		/* the fixed part is complete */
		if ((p->buf[12] & 0xF0) != PP2_VERSION)
			return fail(p, out, "v2: version is not 2");
		if ((p->buf[12] & 0x0F) > PP2_CMD_PROXY)
			return fail(p, out, "v2: command is neither LOCAL nor PROXY");
		if (be16(p->buf + 14) > PP_V2_BODY_MAX)
			return fail(p, out, "v2: header over 2048 bytes");
		p->need = PP_V2_FIXED + be16(p->buf + 14);
		if (p->need == p->have)
			return finish_v2(p, out);
	}
}

void
proxyproto_init(struct pp_parser *p)
{
	p->have = 0;
	p->need = 0;
	p->version = 0;
	p->finished = false;
}

#define PP_MIN_HEADER 15 /* "PROXY UNKNOWN\r\n"; a v2 header has at least 16 */

size_t
proxyproto_want(const struct pp_parser *p)
{
	if (p->finished)
		return 0;
	if (p->version == 2)
		return p->need ? p->need - p->have : PP_V2_FIXED - p->have;
	return p->have < PP_MIN_HEADER ? PP_MIN_HEADER - p->have : 1;
}

enum pp_rc
proxyproto_parse(struct pp_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
                 struct pp_result *out)
{
	*used_out = 0;
	if (p->finished)
		return fail(p, out, "parser called after its result");
	if (len == 0)
		return PP_MORE;
	if (p->version == 0) {
		if (buf[0] == (uint8_t)pp1_prefix[0])
			p->version = 1;
		else if (buf[0] == pp2_sig[0])
			p->version = 2;
		else
			return fail(p, out, "not a PROXY protocol header");
	}
	if (p->version == 1)
		return feed_v1(p, buf, len, used_out, out);
	return feed_v2(p, buf, len, used_out, out);
}

/* ---- writers ------------------------------------------------------------- */

/*
 * src and dst as one family into s and d: both AF_INET or both AF_INET6 as
 * given, except that IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4
 * peer) becomes AF_INET when the other side is IPv4 or mapped too, so the
 * backend logs and matches plain IPv4.  Returns the family or AF_UNSPEC.
 */
static int
endpoints(const struct sockaddr *src, const struct sockaddr *dst, struct sockaddr_storage *s,
          struct sockaddr_storage *d)
{
	const struct sockaddr *in[2] = {src, dst};
	struct sockaddr_storage *ss[2] = {s, d};
	bool v4[2];

	for (int i = 0; i < 2; i++) {
		memset(ss[i], 0, sizeof(*ss[i]));
		if (in[i] == NULL)
			return AF_UNSPEC;
		if (in[i]->sa_family == AF_INET) {
			memcpy(ss[i], in[i], sizeof(struct sockaddr_in));
			v4[i] = true;
		} else if (in[i]->sa_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss[i];

			memcpy(sin6, in[i], sizeof(*sin6));
			v4[i] = IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
		} else {
			return AF_UNSPEC;
		}
	}
	if (s->ss_family == d->ss_family && (s->ss_family == AF_INET || !v4[0] || !v4[1]))
		return s->ss_family;
	if (!v4[0] || !v4[1])
		return AF_UNSPEC;
	for (int i = 0; i < 2; i++) {
		if (ss[i]->ss_family == AF_INET6) {
			struct sockaddr_in6 m;
			struct sockaddr_in *sin = (struct sockaddr_in *)ss[i];

			memcpy(&m, ss[i], sizeof(m));
			memset(ss[i], 0, sizeof(*ss[i]));
			sin->sin_family = AF_INET;
			sin->sin_port = m.sin6_port;
			memcpy(&sin->sin_addr, m.sin6_addr.s6_addr + 12, 4);
		}
	}
	return AF_INET;
}

/* Length of an optional string, or SIZE_MAX when over max. */
static size_t
opt_len(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	return n > max ? SIZE_MAX : n;
}

static size_t
put_tlv(uint8_t *p, uint8_t type, const void *v, size_t n)
{
	p[0] = type;
	put16(p + 1, n);
	memcpy(p + 3, v, n);
	return 3 + n;
}

size_t
proxyproto_write_v2(uint8_t *out, size_t outlen, const struct sockaddr *src,
                    const struct sockaddr *dst, const struct pp_tls_info *tls)
{
	struct sockaddr_storage s, d;
	int af = endpoints(src, dst, &s, &d);
	size_t alen = af == AF_INET ? PP2_ADDR_INET : af == AF_INET6 ? PP2_ADDR_INET6 : 0;
	size_t sni = 0, ver = 0, cip = 0, ssl = 0, total;
	uint8_t *p = out;

	if (tls != NULL) {
		sni = opt_len(tls->sni, PP_AUTHORITY_MAX);
		ver = opt_len(tls->version, PP_SSL_VERSION_MAX);
		cip = opt_len(tls->cipher, PP_SSL_CIPHER_MAX);
		if (sni == SIZE_MAX || ver == SIZE_MAX || cip == SIZE_MAX)
			return 0;
		ssl = 5 + (ver ? 3 + ver : 0) + (cip ? 3 + cip : 0);
	}
	total = PP_V2_FIXED + alen + (sni ? 3 + sni : 0) + (tls ? 3 + ssl : 0);
	if (total > outlen)
		return 0;

	memcpy(p, pp2_sig, sizeof(pp2_sig));
	p[12] = PP2_VERSION | PP2_CMD_PROXY;
	p[13] = af == AF_INET    ? (PP2_AF_INET << 4 | PP2_TR_STREAM)
	        : af == AF_INET6 ? (PP2_AF_INET6 << 4 | PP2_TR_STREAM)
	                         : (PP2_AF_UNSPEC << 4 | PP2_TR_UNSPEC);
	put16(p + 14, total - PP_V2_FIXED);
	p += PP_V2_FIXED;
	if (af == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&s;
		const struct sockaddr_in *b = (const struct sockaddr_in *)&d;

		memcpy(p, &a->sin_addr, 4);
		memcpy(p + 4, &b->sin_addr, 4);
		memcpy(p + 8, &a->sin_port, 2);
		memcpy(p + 10, &b->sin_port, 2);
	} else if (af == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&s;
		const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&d;

		memcpy(p, &a->sin6_addr, 16);
		memcpy(p + 16, &b->sin6_addr, 16);
		memcpy(p + 32, &a->sin6_port, 2);
		memcpy(p + 34, &b->sin6_port, 2);
	}
	p += alen;
	if (sni)
		p += put_tlv(p, PP2_TYPE_AUTHORITY, tls->sni, sni);
	if (tls != NULL) {
		/* spec 2.2.5: client bits, then verify (0: "verified", moot
		 * without PP2_CLIENT_CERT_*), then the sub-TLVs */
		*p++ = PP2_TYPE_SSL;
		put16(p, ssl);
		p += 2;
		*p++ = PP2_CLIENT_SSL;
		memset(p, 0, 4);
		p += 4;
		if (ver)
			p += put_tlv(p, PP2_SUBTYPE_SSL_VERSION, tls->version, ver);
		if (cip)
			p += put_tlv(p, PP2_SUBTYPE_SSL_CIPHER, tls->cipher, cip);
	}
	return (size_t)(p - out);
}

size_t
proxyproto_write_v1(char *out, size_t outlen, const struct sockaddr *src,
                    const struct sockaddr *dst)
{
	struct sockaddr_storage s, d;
	int af = endpoints(src, dst, &s, &d), n;
	char a[INET6_ADDRSTRLEN] = "", b[INET6_ADDRSTRLEN] = "";
	unsigned sport = 0, dport = 0;

	if (af == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)&s;
		const struct sockaddr_in *y = (const struct sockaddr_in *)&d;

		inet_ntop(AF_INET, &x->sin_addr, a, sizeof(a));
		inet_ntop(AF_INET, &y->sin_addr, b, sizeof(b));
		sport = ntohs(x->sin_port);
		dport = ntohs(y->sin_port);
	} else if (af == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&s;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&d;

		inet_ntop(AF_INET6, &x->sin6_addr, a, sizeof(a));
		inet_ntop(AF_INET6, &y->sin6_addr, b, sizeof(b));
		sport = ntohs(x->sin6_port);
		dport = ntohs(y->sin6_port);
	}
	if (af == AF_UNSPEC)
		n = snprintf(out, outlen, "PROXY UNKNOWN\r\n");
	else
		n = snprintf(out, outlen, "PROXY %s %s %s %u %u\r\n",
		             af == AF_INET ? "TCP4" : "TCP6", a, b, sport, dport);
	if (n < 0 || (size_t)n >= outlen)
		return 0;
	return (size_t)n;
}
