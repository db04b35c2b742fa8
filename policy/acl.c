/*
 * acl.c: client addresses and network lists.  Owns the address form every
 * policy key uses (IPv4-mapped IPv6 folded to IPv4) and CIDR matching.
 * Pure: never reads a socket, a clock or a global.
 */
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "acl.h"

int
acl_addr_from_sockaddr(const struct sockaddr *sa, socklen_t salen, struct acl_addr *out)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const void *)sa;

		out->family = 4;
		memcpy(out->a, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		const uint8_t *b = sin6->sin6_addr.s6_addr;

		/* ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket: one
		 * client, one key, and the IPv4 lists apply to it */
		if (memcmp(b, mapped, sizeof(mapped)) == 0) {
			out->family = 4;
			memcpy(out->a, b + 12, 4);
		} else {
			out->family = 6;
			memcpy(out->a, b, 16);
		}
		return 0;
	}
	return -1;
}

struct acl_addr
acl_addr_prefix(const struct acl_addr *a, unsigned v6_prefix)
{
	struct acl_addr k = *a;

	if (k.family != 6 || v6_prefix >= 128)
		return k;
	for (unsigned bit = v6_prefix; bit < 128; bit++)
		k.a[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	return k;
}

const char *
acl_addr_str(const struct acl_addr *a, char *buf, size_t len)
{
	if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->a, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

bool
acl_match(const struct cidr_conf *net, const struct acl_addr *a)
{
	unsigned full, rest;

	if ((net->family == AF_INET) != (a->family == 4))
		return false;
	if (net->prefix > (net->family == AF_INET ? 32u : 128u))
		return false; /* not from config_parse_cidr(): match nothing */
	full = net->prefix / 8;
	rest = net->prefix % 8;
	if (memcmp(net->addr, a->a, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));

	return (net->addr[full] & mask) == (a->a[full] & mask);
}

const struct cidr_conf *
acl_find(const struct cidr_conf *nets, size_t n, const struct acl_addr *a)
{
	/* linear: the lists are bounded (POLICY_LIST_MAX) and read once per accept */
	for (size_t i = 0; i < n; i++)
		if (acl_match(&nets[i], a))
			return &nets[i];
	return NULL;
}

bool
acl_allowed(const struct cidr_conf *allow, size_t nallow, const struct cidr_conf *deny,
            size_t ndeny, const struct acl_addr *a)
{
	if (acl_find(deny, ndeny, a) != NULL)
		return false;
	return nallow == 0 || acl_find(allow, nallow, a) != NULL;
}
