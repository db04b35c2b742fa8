/*
 * acl.h: client addresses as policy sees them, and the allow/deny network
 * lists checked at accept.  Pure: no I/O, no clock, no locks.
 */
#ifndef POSTERN_ACL_H
#define POSTERN_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

#define ACL_ADDR_STRLEN 48 /* "ffff:...:ffff" and a NUL, with room */

/* A client address: IPv4 in a[0..4), IPv6 in a[0..16), the rest zero. */
struct acl_addr {
	uint8_t family; /* 4 or 6 */
	uint8_t a[16];
};

/*
 * The address of sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address, as a
 * dual-stack socket reports IPv4 clients, becomes the IPv4 address).
 * Returns 0, or -1 for any other family or a short salen.
 */
int acl_addr_from_sockaddr(const struct sockaddr *sa, socklen_t salen, struct acl_addr *out);

/* a with its bits beyond prefix cleared (IPv6 only; IPv4 is left whole):
 * the key under which an IPv6 client is counted, as one site holds a /64. */
struct acl_addr acl_addr_prefix(const struct acl_addr *a, unsigned v6_prefix);

/* a as text into buf (>= ACL_ADDR_STRLEN); returns buf. */
const char *acl_addr_str(const struct acl_addr *a, char *buf, size_t len);

/* Does a lie in net?  Families must agree: 192.0.2.1 is not in ::/0. */
bool acl_match(const struct cidr_conf *net, const struct acl_addr *a);

/* The first of nets[0..n) holding a, or NULL. */
const struct cidr_conf *acl_find(const struct cidr_conf *nets, size_t n, const struct acl_addr *a);

/*
 * May a client at a connect?  A match in deny refuses (deny wins); then an
 * empty allow list admits everybody, a non-empty one only its networks.
 */
bool acl_allowed(const struct cidr_conf *allow, size_t nallow, const struct cidr_conf *deny,
                 size_t ndeny, const struct acl_addr *a);

#endif
