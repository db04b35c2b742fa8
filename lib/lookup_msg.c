/*
 * lookup_msg.c: what both lookup protocols share: an answer's life (init,
 * wipe), the IP literal nginx accepts as Auth-Server, and a refusal's text
 * as the client sees it.  The protocols live in lookup_nginx.c and
 * lookup_json.c.  Pure: no sockets, no allocation.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <string.h>

#include "lookup_msg.h"

const char *
lookup_status_name(enum lookup_status st)
{
	static const char *const names[] = {"ok", "refused", "unknown", "tempfail"};
	return (unsigned)st < 4 ? names[st] : "?";
}

void
lookup_answer_init(struct lookup_answer *a)
{
	OPENSSL_cleanse(a->pass, sizeof(a->pass));
	memset(a, 0, sizeof(*a));
	a->status = LOOKUP_TEMP;
	a->wait_s = -1;
	a->tls = -1;
	strcpy(a->why, "no answer");
}

void
lookup_answer_wipe(struct lookup_answer *a)
{
	OPENSSL_cleanse(a->pass, sizeof(a->pass));
	a->pass_len = 0;
	a->has_pass = false;
}

/*
 * nginx's ngx_inet_addr() (src/core/ngx_inet.c): digits and dots, each
 * octet at most 255, exactly three dots; an empty octet counts as 0 and
 * leading zeros are decimal.  255.255.255.255 is INADDR_NONE there, so
 * refused here too.  Returns false, or true with the address in host order.
 */
static bool
ngx_inet_addr(const unsigned char *p, size_t len, uint32_t *addr_out)
{
	uint32_t addr = 0, octet = 0;
	unsigned n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c >= '0' && c <= '9') {
			octet = octet * 10 + (uint32_t)(c - '0');
			if (octet > 255)
				return false;
			continue;
		}
		if (c == '.') {
			addr = (addr << 8) + octet;
			octet = 0;
			n++;
			continue;
		}
		return false;
	}
	if (n != 3)
		return false;
	addr = (addr << 8) + octet;
	if (addr == 0xffffffffu)
		return false;
	*addr_out = addr;
	return true;
}

/* nginx's ngx_inet6_addr(), step by step: "::" once, at most 4 nibbles a
 * group, a dotted IPv4 tail in the last two groups. */
static bool
ngx_inet6_addr(const unsigned char *p, size_t len, unsigned char out[16])
{
	unsigned char *addr = out, *zero = NULL;
	const unsigned char *digit = NULL;
	size_t len4 = 0;
	unsigned n = 8, nibbles = 0, word = 0;

	if (len == 0)
		return false;
	if (p[0] == ':') {
		p++;
		len--;
	}
	for (; len; len--) {
		unsigned char c = *p++;
		if (c == ':') {
			if (nibbles) {
				digit = p;
				len4 = len;
				*addr++ = (unsigned char)(word >> 8);
				*addr++ = (unsigned char)(word & 0xff);
				if (--n) {
					nibbles = 0;
					word = 0;
					continue;
				}
			} else if (zero == NULL) {
				digit = p;
				len4 = len;
				zero = addr;
				continue;
			}
			return false;
		}
		if (c == '.' && nibbles) {
			uint32_t v4;
			if (n < 2 || digit == NULL)
				return false;
			if (!ngx_inet_addr(digit, len4 - 1, &v4))
				return false;
			*addr++ = (unsigned char)(v4 >> 24);
			*addr++ = (unsigned char)(v4 >> 16);
			word = v4 & 0xffff;
			n--;
			break;
		}
		if (++nibbles > 4)
			return false;
		if (c >= '0' && c <= '9') {
			word = word * 16 + (unsigned)(c - '0');
			continue;
		}
		c |= 0x20;
		if (c >= 'a' && c <= 'f') {
			word = word * 16 + (unsigned)(c - 'a') + 10;
			continue;
		}
		return false;
	}
	if (nibbles == 0 && zero == NULL)
		return false;
	*addr++ = (unsigned char)(word >> 8);
	*addr++ = (unsigned char)(word & 0xff);
	if (--n) {
		if (zero) {
			unsigned char *s = addr - 1, *d;
			n *= 2;
			d = s + n;
			while (s >= zero)
				*d-- = *s--;
			memset(zero, 0, n);
			return true;
		}
	} else if (zero == NULL) {
		return true;
	}
	return false;
}

bool
lookup_ip_literal(const char *s, size_t len, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char a6[16];
	uint32_t a4;

	if (ngx_inet_addr(p, len, &a4)) {
		struct in_addr in = {.s_addr = htonl(a4)};
		return inet_ntop(AF_INET, &in, out, (socklen_t)cap) != NULL;
	}
	if (len <= LOOKUP_SERVER_MAX && ngx_inet6_addr(p, len, a6))
		return inet_ntop(AF_INET6, a6, out, (socklen_t)cap) != NULL;
	return false;
}

void
lookup_text_clean(char *out, const char *in, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n < LOOKUP_TEXT_MAX; i++)
		if (in[i] >= 0x20 && in[i] <= 0x7e)
			out[n++] = in[i];
	out[n] = '\0';
	if (n == 0)
		strcpy(out, "Authentication failed");
}

const char *
lookup_proto_name(enum proto_kind p)
{
	switch (p) {
	case PROTO_POP3:
		return "pop3";
	case PROTO_SIEVE:
		return "sieve";
	default:
		return "imap";
	}
}

const char *
lookup_method_name(enum lookup_method m)
{
	switch (m) {
	case LOOKUP_METHOD_XOAUTH2:
		return "xoauth2";
	case LOOKUP_METHOD_OAUTHBEARER:
		return "oauthbearer";
	case LOOKUP_METHOD_PLAIN:
		break;
	}
	/* ngx_mail_auth_http_method[]: LOGIN, USER/PASS, AUTH PLAIN and
	 * AUTH LOGIN are all "plain" */
	return "plain";
}
