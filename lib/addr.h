/*
 * addr.h: socket addresses as text, one way for everything: log lines
 * (client=), PROXY/ID/XCLIENT forwarding and admin output.  An IPv4 client
 * on a dual-stack socket (::ffff:a.b.c.d) is shown as the IPv4 address it
 * is, as policy/acl.c keys it.  Pure: no sockets, no allocation.
 */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define ADDR_TEXT_MAX 64 /* "[v6]:port" with room to spare */

/* Split sa into a numeric address and a port; "unknown" and 0 for other
 * families.  ip gets at least INET6_ADDRSTRLEN bytes for IPv6. */
void addr_parts(const struct sockaddr *sa, char *ip, size_t iplen, unsigned *port);

/* "192.0.2.1:993", "[2001:db8::1]:993" or "unknown" into out; returns out. */
const char *addr_format(const struct sockaddr *sa, char *out, size_t outlen);

#endif
