/*
 * proxyproto.h: the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends before the client's bytes,
 * and the v1/v2 headers postern itself sends to backends.  A pure parser and
 * writer over bytes: no sockets, no malloc, no clock, no globals.
 */
#ifndef POSTERN_PROXYPROTO_H
#define POSTERN_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PP_V1_MAX          107  /* a v1 line, "PROXY" to CRLF (spec 2.1) */
#define PP_V2_FIXED        16   /* signature, ver_cmd, fam, len */
#define PP_V2_BODY_MAX     2048 /* the v2 addresses and TLVs we accept; spec allows 65535 */
#define PP_HEADER_MAX      (PP_V2_FIXED + PP_V2_BODY_MAX)
#define PP_AUTHORITY_MAX   255 /* PP2_TYPE_AUTHORITY: a host name (SNI) */
#define PP_ALPN_MAX        255 /* PP2_TYPE_ALPN: one protocol id (RFC 7301 3.1) */
#define PP_UNIQUE_ID_MAX   128 /* PP2_TYPE_UNIQUE_ID (spec 2.2.5) */
#define PP_SSL_VERSION_MAX 63  /* PP2_SUBTYPE_SSL_VERSION, e.g. "TLSv1.3" */
#define PP_SSL_CIPHER_MAX  127 /* PP2_SUBTYPE_SSL_CIPHER */
#define PP_SSL_CN_MAX      255 /* PP2_SUBTYPE_SSL_CN */

/* v2 TLV types and the PP2_TYPE_SSL client bits (spec 2.2). */
#define PP2_TYPE_ALPN           0x01
#define PP2_TYPE_AUTHORITY      0x02
#define PP2_TYPE_CRC32C         0x03
#define PP2_TYPE_NOOP           0x04
#define PP2_TYPE_UNIQUE_ID      0x05
#define PP2_TYPE_SSL            0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CN      0x22
#define PP2_SUBTYPE_SSL_CIPHER  0x23
#define PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define PP2_TYPE_NETNS          0x30
#define PP2_CLIENT_SSL          0x01
#define PP2_CLIENT_CERT_CONN    0x02
#define PP2_CLIENT_CERT_SESS    0x04

enum pp_rc {
	PP_MORE, /* header incomplete: every byte given was consumed (kept in the parser);
	            call again with the next bytes only */
	PP_DONE, /* *out holds the header; *used_out bytes of this call were header, the rest
	            (a TLS ClientHello, ...) belong to the caller */
	PP_BAD,  /* not a valid header (or over PP_HEADER_MAX): close the connection;
	            out->error says why */
};

/*
 * What the header says.  Copies in fixed arrays: nothing points into the
 * caller's buffer or the parser.  Every field is written on PP_DONE and PP_BAD
 * (zeroes when absent), none on PP_MORE.
 */
struct pp_result {
	int version; /* 1 or 2 */
	bool local;  /* v1 UNKNOWN, v2 LOCAL, AF_UNSPEC or AF_UNIX: use the socket's own
	                addresses; src/dst are then empty (srclen == dstlen == 0) */
	struct sockaddr_storage src, dst; /* AF_INET or AF_INET6, port in network order */
	socklen_t srclen, dstlen;
	size_t header_len; /* the whole header in bytes, over all calls */

	/* v2 TLVs kept (spec 2.2); the others are checked for length and skipped */
	char authority[PP_AUTHORITY_MAX + 1]; /* "" when absent */
	char alpn[PP_ALPN_MAX + 1];           /* "" when absent */
	uint8_t unique_id[PP_UNIQUE_ID_MAX];
	size_t unique_id_len;
	bool ssl;            /* a PP2_TYPE_SSL TLV came */
	uint8_t ssl_client;  /* PP2_CLIENT_* bits */
	uint32_t ssl_verify; /* 0: the client's certificate was verified */
	char ssl_version[PP_SSL_VERSION_MAX + 1];
	char ssl_cipher[PP_SSL_CIPHER_MAX + 1];
	char ssl_cn[PP_SSL_CN_MAX + 1];
	bool crc_verified; /* a PP2_TYPE_CRC32C TLV came and matched */

	const char *error; /* PP_BAD: static text for logs; NULL otherwise */
};

/*
 * Resumable state: the header bytes seen so far are kept here, so a call
 * never needs earlier input again.  About 2 KiB; only needed until PP_DONE.
 * The fields are read-only outside proxyproto.c (see proxyproto_want()).
 */
struct pp_parser {
	size_t have;   /* bytes of the header in buf */
	size_t need;   /* v2: the header's length once its first 16 bytes came, else 0 */
	int version;   /* 0 until the first byte, then 1 or 2 */
	bool finished; /* PP_DONE or PP_BAD was returned */
	uint8_t buf[PP_HEADER_MAX];
};

/*
 * How many bytes the next proxyproto_parse() can be given with none of them
 * past the header: a listener that recv()s exactly this much never takes the
 * client's first bytes (e.g. a ClientHello that OpenSSL will read from the
 * socket itself).  At least 1 until PP_DONE or PP_BAD, then 0.  15 (the
 * shortest header) before the first byte; v1: up to 15, then 1 (the header
 * ends at the first LF); v2: the 16 fixed bytes, then exactly the rest.
 */
size_t proxyproto_want(const struct pp_parser *p);

/* Set up (or reset) a parser. */
void proxyproto_init(struct pp_parser *p);

/*
 * Parse buf[0..len), the bytes that follow those of earlier calls.  Sets
 * *used_out always: PP_MORE consumes all of buf (== len); PP_DONE consumes
 * exactly the rest of the header, so buf[*used_out..len) is the client's
 * first data; PP_BAD leaves it <= len, meaningless.  Decides at the first
 * byte: 'P' is v1, CR is v2, anything else is PP_BAD (no guessing, spec
 * 2). After PP_DONE or PP_BAD every call returns PP_BAD until proxyproto_init().
 */
enum pp_rc proxyproto_parse(struct pp_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
                            struct pp_result *out);

/*
 * What postern knows of the client's TLS, for the PP2_TYPE_SSL TLV sent to a
 * backend.  Borrowed strings; NULL or "" leaves an item out.
 */
struct pp_tls_info {
	const char *version; /* SSL_get_version(): "TLSv1.3" */
	const char *cipher;  /* SSL_CIPHER_get_name() */
	const char *sni;     /* the server name the client asked for: PP2_TYPE_AUTHORITY */
};

/*
 * Write a v2 PROXY header for a connection from src to dst (AF_INET or
 * AF_INET6; IPv4-mapped IPv6 is written as IPv4 when the other side is IPv4
 * or mapped too; other mixes or families, or NULL, give AF_UNSPEC).  tls non-NULL adds
 * PP2_TYPE_SSL (PP2_CLIENT_SSL, verify 0, version and cipher sub-TLVs) and
 * PP2_TYPE_AUTHORITY for tls->sni.  Returns bytes written, or 0 when it does
 * not fit outlen or a string is over its PP_*_MAX (the parser would refuse it).
 */
size_t proxyproto_write_v2(uint8_t *out, size_t outlen, const struct sockaddr *src,
                           const struct sockaddr *dst, const struct pp_tls_info *tls);

/*
 * Write a v1 line "PROXY TCP4|TCP6 src dst sport dport\r\n", or
 * "PROXY UNKNOWN\r\n" when the families are not both AF_INET or both
 * AF_INET6 (after the IPv4-mapped rule above).  NUL-terminated; returns the
 * length without the NUL, or 0 if outlen is too small (PP_V1_MAX + 1 always fits).
 */
size_t proxyproto_write_v1(char *out, size_t outlen, const struct sockaddr *src,
                           const struct sockaddr *dst);

/* CRC-32C (Castagnoli, as in PP2_TYPE_CRC32C) of buf[0..len); exposed for tests. */
uint32_t proxyproto_crc32c(const void *buf, size_t len);

#endif
