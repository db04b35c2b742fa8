/*
 * state_url.c: the `state` URL forms (state_url.h).  Pure: no I/O, no
 * allocation; what the URL names is checked by whoever opens it.
 */
#include <stdlib.h>
#include <string.h>

#include "state_url.h"

static int
parse_uint(const char *s, size_t len, long max, long *out)
{
	long v = 0;

	if (len == 0 || len > 6)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* HOST[:PORT] or [V6][:PORT] in s..hp_end -> host (STATE_URL_HOST_MAX),
 * *port_out (def when absent).  0, or -1 and *err_out. */
static int
parse_hostport(const char *s, const char *hp_end, int def, char *out_host, int *port_out,
               const char **err_out)
{
	const char *port = NULL, *host = s, *host_end;
	long v;

	if (memchr(s, '@', (size_t)(hp_end - s)) != NULL) {
		*err_out =
		    "no user or password in the URL: put the password in "
		    "state_password_file (sentinel_password_file) and the user in state_user";
		return -1;
	}
	if (*s == '[') {
		const char *rb = memchr(s, ']', (size_t)(hp_end - s));

		if (rb == NULL) {
			*err_out = "an IPv6 host needs its closing ']'";
			return -1;
		}
		host = s + 1;
		host_end = rb;
		if (rb + 1 < hp_end) {
			if (rb[1] != ':') {
				*err_out = "expected \":PORT\" after the host";
				return -1;
			}
			port = rb + 2;
		}
	} else {
		const char *colon = memchr(s, ':', (size_t)(hp_end - s));

		host_end = colon ? colon : hp_end;
		port = colon ? colon + 1 : NULL;
	}
	if (host_end == host || (size_t)(host_end - host) >= STATE_URL_HOST_MAX) {
		*err_out =
		    host_end == host ? "a Redis URL needs a host" : "the host name is too long";
		return -1;
	}
	memcpy(out_host, host, (size_t)(host_end - host));
	out_host[host_end - host] = '\0';
	*port_out = def;
	if (port != NULL) {
		if (parse_uint(port, (size_t)(hp_end - port), 65535, &v) < 0 || v == 0) {
			*err_out = "the port must be a number 1..65535";
			return -1;
		}
		*port_out = (int)v;
	}
	return 0;
}

static int
parse_tcp(const char *s, struct state_url *out, const char **err_out)
{
	const char *slash = strchr(s, '/'), *hp_end = slash ? slash : s + strlen(s);
	long v;

	if (parse_hostport(s, hp_end, 6379, out->host, &out->port, err_out) < 0)
		return -1;
	out->db = 0;
	if (slash != NULL && slash[1] != '\0') {
		if (parse_uint(slash + 1, strlen(slash + 1), 65535, &v) < 0) {
			*err_out = "the database must be a number, as in \"redis://HOST:PORT/0\"";
			return -1;
		}
		out->db = (int)v;
	}
	return 0;
}

/* HOST[:PORT],HOST[:PORT],.../MASTER[/DB] */
static int
parse_sentinel(const char *s, struct state_url *out, const char **err_out)
{
	const char *slash = strchr(s, '/'), *name, *name_end, *p = s;
	long v;

	if (slash == NULL || slash[1] == '\0' || slash[1] == '/') {
		*err_out = "\"redis-sentinel://\" needs the master's name, as in "
		           "\"redis-sentinel://HOST:26379,HOST:26379/mymaster/0\"";
		return -1;
	}
	while (p < slash) {
		const char *comma = memchr(p, ',', (size_t)(slash - p)),
		           *end = comma ? comma : slash;
		struct state_url_node *n;

		if (out->nsentinels == STATE_URL_SENTINELS_MAX) {
			*err_out = "too many Sentinels in the URL (at most 16)";
			return -1;
		}
		n = &out->sentinels[out->nsentinels];
		if (end == p) {
			*err_out = "an empty Sentinel address in the URL";
			return -1;
		}
		if (parse_hostport(p, end, 26379, n->host, &n->port, err_out) < 0)
			return -1;
		out->nsentinels++;
		p = comma ? comma + 1 : slash;
		if (comma != NULL && p == slash) {
			*err_out = "an empty Sentinel address in the URL";
			return -1;
		}
	}
	if (out->nsentinels == 0) {
		*err_out = "\"redis-sentinel://\" needs at least one Sentinel";
		return -1;
	}
	name = slash + 1;
	name_end = strchr(name, '/');
	if (name_end == NULL)
		name_end = name + strlen(name);
	if ((size_t)(name_end - name) > STATE_URL_MASTER_MAX) {
		*err_out = "the master's name is too long (at most 64 bytes)";
		return -1;
	}
	for (const char *c = name; c < name_end; c++)
		if (*c <= ' ' || *c > '~') {
			*err_out = "the master's name must be printable ASCII without spaces";
			return -1;
		}
	memcpy(out->master, name, (size_t)(name_end - name));
	out->master[name_end - name] = '\0';
	/* the first Sentinel, for messages that name one address */
	memcpy(out->host, out->sentinels[0].host, sizeof(out->host));
	out->port = out->sentinels[0].port;
	out->db = 0;
	if (*name_end == '/' && name_end[1] != '\0') {
		if (parse_uint(name_end + 1, strlen(name_end + 1), 65535, &v) < 0) {
			*err_out = "the database must be a number, as in "
			           "\"redis-sentinel://HOST:26379/mymaster/0\"";
			return -1;
		}
		out->db = (int)v;
	}
	return 0;
}

static int
parse_unix(const char *s, struct state_url *out, const char **err_out)
{
	const char *q = strchr(s, '?');
	size_t len = q ? (size_t)(q - s) : strlen(s);
	long v;

	if (len == 0 || s[0] != '/') {
		*err_out = "\"redis+unix:\" needs an absolute socket path, as in "
		           "\"redis+unix:/run/redis/redis.sock\"";
		return -1;
	}
	if (len >= 108) { /* sizeof(sun_path) */
		*err_out = "the socket path is too long (at most 107 bytes)";
		return -1;
	}
	memcpy(out->path, s, len);
	out->path[len] = '\0';
	out->db = 0;
	if (q != NULL) {
		if (strncmp(q, "?db=", 4) != 0 || parse_uint(q + 4, strlen(q + 4), 65535, &v) < 0) {
			*err_out = "after the socket path only \"?db=N\" may follow";
			return -1;
		}
		out->db = (int)v;
	}
	return 0;
}

int
state_url_is_redis(const char *url)
{
	return url != NULL &&
	       (strncmp(url, "redis://", 8) == 0 || strncmp(url, "redis+unix:", 11) == 0 ||
	        strncmp(url, "redis-sentinel://", 17) == 0 || strncmp(url, "rediss://", 9) == 0);
}

int
state_url_parse(const char *url, struct state_url *out, const char **err_out)
{
	memset(out, 0, sizeof(*out));
	if (url == NULL) {
		*err_out = "no state store configured";
		return -1;
	}
	if (strncmp(url, "lmdb:", 5) == 0) {
		out->kind = STATE_LMDB;
		out->arg = url + 5;
		return 0;
	}
	if (strncmp(url, "mem:", 4) == 0) {
		out->kind = STATE_MEM;
		out->arg = url + 4;
		return 0;
	}
	if (strncmp(url, "redis://", 8) == 0) {
		out->kind = STATE_REDIS_TCP;
		return parse_tcp(url + 8, out, err_out);
	}
	if (strncmp(url, "redis-sentinel://", 17) == 0) {
		out->kind = STATE_REDIS_SENTINEL;
		return parse_sentinel(url + 17, out, err_out);
	}
	if (strncmp(url, "redis+unix:", 11) == 0) {
		out->kind = STATE_REDIS_UNIX;
		return parse_unix(url + 11, out, err_out);
	}
	if (strncmp(url, "rediss://", 9) == 0) {
		*err_out = "TLS to Redis (\"rediss://\") is not supported: this build's hiredis "
		           "has no TLS; use \"redis+unix:PATH\" or a TLS tunnel on loopback";
		return -1;
	}
	*err_out = "unknown state store (expected \"lmdb:DIR\", \"redis://HOST:PORT/DB\", "
	           "\"redis+unix:PATH\" or \"redis-sentinel://HOST:PORT,.../MASTER/DB\")";
	return -1;
}
