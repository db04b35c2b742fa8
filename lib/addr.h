/*
 * addr.h: socket addresses as text, one way for everything: log lines
 * (client=), PROXY/ID/XCLIENT forwarding and admin output.  An IPv4 client
 * on a dual-stack socket (::ffff:a.b.c.d) is shown as the IPv4 address it
 * is, as policy/acl.c keys it.  Pure: no sockets, no allocation.
 */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_TEXT_MAX 64 /* "[v6]:port" with room to spare */

/* Split sa into a numeric address and a port; "unknown" and 0 for other
 * families.  ip gets at least INET6_ADDRSTRLEN bytes for IPv6. */
void addr_parts(const struct sockaddr *sa, char *ip, size_t iplen, unsigned *port);

/* "192.0.2.1:993", "[2001:db8::1]:993" or "unknown" into out; returns out. */
const char *addr_format(const struct sockaddr *sa, char *out, size_t outlen);

/* The same address and port (IPv4 or IPv6)? */
bool addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* An IPv4 or IPv6 literal (no brackets, no name) and a port into out.
 * Returns 0, or -1 when ip is no literal or port is 0. */
int addr_from_literal(const char *ip, uint16_t port, struct sockaddr_storage *out,
                      socklen_t *len_out);

#endif
