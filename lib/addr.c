/*
 * addr.c: socket addresses as text (see addr.h).  Never resolves names.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

void
addr_parts(const struct sockaddr *sa, char *ip, size_t iplen, unsigned *port)
{
	snprintf(ip, iplen, "unknown");
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)iplen);
		*port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, (socklen_t)iplen);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, (socklen_t)iplen);
		*port = ntohs(s6->sin6_port);
	}
}

const char *
addr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port;

	addr_parts(sa, ip, sizeof(ip), &port);
	if (strcmp(ip, "unknown") == 0)
		snprintf(out, outlen, "unknown");
	else if (strchr(ip, ':') != NULL)
		snprintf(out, outlen, "[%s]:%u", ip, port);
	else
		snprintf(out, outlen, "%s:%u", ip, port);
	return out;
}

bool
addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family != AF_INET6)
		return false;
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

int
addr_from_literal(const char *ip, uint16_t port, struct sockaddr_storage *out, socklen_t *len_out)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)out;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)out;

	memset(out, 0, sizeof(*out));
	if (port == 0)
		return -1;
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len_out = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len_out = sizeof(*s6);
		return 0;
	}
	return -1;
}
