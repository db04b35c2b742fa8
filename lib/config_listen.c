/*
 * config_listen.c: the listeners and the TLS certificate settings of the
 * config (tls.certificates, tls.ticket_key_file, each listener's own set
 * and PROXY trust).  Part of the loader: no socket is opened here, only
 * addresses parsed and files checked for reading.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <libconfig.h>

#include "config.h"
#include "addr.h"
#include "config_impl.h"
#include "sasl.h"

/* "1".."65535", digits only.  0 or -1. */
static int
parse_port(const char *s, uint16_t *port_out)
{
	unsigned long n = 0;
	size_t i;

	for (i = 0; is_digit(s[i]); i++) {
		n = n * 10 + (unsigned long)(s[i] - '0');
		if (n > 65535)
			return -1;
	}
	if (i == 0 || s[i] != '\0' || n == 0)
		return -1;
	*port_out = (uint16_t)n;
	return 0;
}

int
config_parse_listen(const char *s, struct sockaddr_storage *addr, socklen_t *addrlen_out,
                    const char **err_out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *port;
	uint16_t p;

	memset(addr, 0, sizeof(*addr));
	if (s == NULL || *s == '\0') {
		*err_out = "empty address";
		return -1;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
		size_t hl;

		if (rb == NULL || rb[1] != ':') {
			*err_out = "expected [IPv6]:port";
			return -1;
		}
		hl = (size_t)(rb - (s + 1));
		if (hl == 0 || hl >= sizeof(host)) {
			*err_out = "not a numeric IPv6 address";
			return -1;
		}
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*err_out = "not a numeric IPv6 address";
			return -1;
		}
		if (parse_port(rb + 2, &p) < 0) {
			*err_out = "port must be a number 1..65535";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p);
		*addrlen_out = sizeof(*sin6);
		return 0;
	}

	struct sockaddr_in *sin = (struct sockaddr_in *)addr;

	if ((colon = strrchr(s, ':')) == NULL) {
		/* a port alone: every IPv4 address, as in the DESIGN examples */
		if (!is_digit(s[0])) {
			*err_out = "expected host:port, [IPv6]:port or port";
			return -1;
		}
		port = s;
		strcpy(host, "0.0.0.0");
	} else {
		size_t hl = (size_t)(colon - s);

		if (memchr(s, ':', hl) != NULL) {
			*err_out = "an IPv6 address needs brackets, as in [::1]:993";
			return -1;
		}
		if (hl == 0) {
			*err_out = "empty host before ':'";
			return -1;
		}
		if (hl >= sizeof(host)) {
			*err_out = "host must be a numeric IPv4 address";
			return -1;
		}
		memcpy(host, s, hl);
		host[hl] = '\0';
		port = colon + 1;
	}
	/* inet_pton(), not inet_aton(): "127.1" and friends are refused */
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		*err_out = "host must be a numeric IPv4 address";
		return -1;
	}
	if (parse_port(port, &p) < 0) {
		*err_out = "port must be a number 1..65535";
		return -1;
	}
	sin->sin_family = AF_INET;
	sin->sin_port = htons(p);
	*addrlen_out = sizeof(*sin);
	return 0;
}

/* ---- certificates and listeners ------------------------------------ */

/* A list of { cert; key; } groups into *certs_out / *n_out. */
static void
read_cert_list(struct ctx *x, const config_setting_t *list, struct cert_conf **certs_out,
               size_t *n_out)
{
	static const char *const keys[] = {"cert", "key", NULL};
	int n = config_setting_length(list);

	if (n <= 0) {
		cfg_err(x, list, "certificates: the list is empty");
		return;
	}
	if ((*certs_out = calloc((size_t)n, sizeof(**certs_out))) == NULL) {
		cfg_err(x, list, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		struct cert_conf *cc = &(*certs_out)[(*n_out)++];
		const char *cert, *key;

		if (!config_setting_is_group(g)) {
			cfg_err(
			    x, g,
			    "certificate: each entry must be a group { cert = ...; key = ...; }");
			continue;
		}
		cfg_check_keys(x, g, keys, "certificate");
		if ((cert = cfg_need_string(x, g, "cert", "certificate")) != NULL) {
			cfg_check_readable(x, config_setting_get_member(g, "cert"),
			                   "certificate file", cert);
			cc->cert = cfg_dup(x, g, cert);
		}
		if ((key = cfg_need_string(x, g, "key", "certificate")) != NULL) {
			cfg_check_readable(x, config_setting_get_member(g, "key"), "key file", key);
			cc->key = cfg_dup(x, g, key);
		}
	}
}

void
cfg_parse_certificates(struct ctx *x, const config_setting_t *list)
{
	read_cert_list(x, list, &x->cfg->tls.certs, &x->cfg->tls.ncerts);
}

void
cfg_check_ticket_key_file(struct ctx *x, const config_setting_t *s, const char *v)
{
	cfg_check_readable(x, s, "ticket key file", v);
}

static uint16_t
addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)a)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)a)->sin6_port);
}

_Static_assert((unsigned)AUTHM_PLAIN == (unsigned)SASL_MECH_PLAIN &&
                   (unsigned)AUTHM_LOGIN == (unsigned)SASL_MECH_LOGIN &&
                   (unsigned)AUTHM_XOAUTH2 == (unsigned)SASL_MECH_XOAUTH2 &&
                   (unsigned)AUTHM_OAUTHBEARER == (unsigned)SASL_MECH_OAUTHBEARER &&
                   AUTHM_COUNT == SASL_MECH_COUNT,
               "config.h's AUTHM_* are sasl.h's SASL_MECH_*");

const char *
auth_mech_name(unsigned bit)
{
	return sasl_mech_name(bit);
}

unsigned
auth_mech_bit(const char *name)
{
	return sasl_mech_bit(name, strlen(name));
}

/* A list of mechanism names at what: the bits, or 0 after reporting. */
static unsigned
read_auth_mechanisms(struct ctx *x, const config_setting_t *s, const char *what)
{
	unsigned mask = 0;
	int n;

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		cfg_err(x, s, "%s must be a list of names, e.g. [ \"plain\", \"login\" ]", what);
		return 0;
	}
	if ((n = config_setting_length(s)) == 0) {
		cfg_err(x, s, "%s must name at least one mechanism", what);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = config_setting_get_string(e);
		unsigned bit = v != NULL ? auth_mech_bit(v) : 0;

		if (bit == 0) {
			cfg_err(x, e,
			        "%s: \"%s\" is not one of \"plain\", \"login\", \"xoauth2\", "
			        "\"oauthbearer\"",
			        what, v != NULL ? v : "(not a string)");
			return 0;
		}
		if (mask & bit) {
			cfg_err(x, e, "%s: \"%s\" is listed twice", what, v);
			return 0;
		}
		mask |= bit;
	}
	return mask;
}

void
cfg_parse_auth_mechanisms(struct ctx *x, const config_setting_t *s)
{
	unsigned mask;

	x->cfg->auth_mechanisms = AUTHM_DEFAULT;
	if (s != NULL && (mask = read_auth_mechanisms(x, s, "'auth_mechanisms'")) != 0)
		x->cfg->auth_mechanisms = mask;
}

/* The first of listeners[0..n) bound to addr, or -1. */
static int64_t
listener_index(const struct config *cfg, size_t n, const struct sockaddr_storage *addr)
{
	for (size_t i = 0; i < n; i++)
		if (cfg->listeners[i].addrlen != 0 && addr_same(&cfg->listeners[i].addr, addr))
			return (int64_t)i;
	return -1;
}

void
cfg_parse_listeners(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {"listen",
	                                   "protocol",
	                                   "tls",
	                                   "name",
	                                   "allow_plaintext_auth",
	                                   "certificates",
	                                   "proxy_protocol",
	                                   "trusted",
	                                   "auth_mechanisms",
	                                   "compress",
	                                   "lookup",
	                                   NULL};
	struct config *cfg = x->cfg;
	int n = config_setting_length(list);

	cfg->listeners = calloc((size_t)n, sizeof(*cfg->listeners));
	x->lst_set = calloc((size_t)n, sizeof(*x->lst_set));
	if (cfg->listeners == NULL || x->lst_set == NULL) {
		cfg_err(x, list, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		struct listener_conf *lc = &cfg->listeners[cfg->nlisteners];
		const config_setting_t *m;
		const char *listen, *proto, *tls, *name, *err;
		bool bad = false, addr_ok = false;
		int64_t j;

		if (!config_setting_is_group(g)) {
			cfg_err(x, g, "listener: each entry must be a group { listen = ...; }");
			continue;
		}
		x->lst_set[cfg->nlisteners++] = g;
		cfg_check_keys(x, g, keys, "listener");

		if ((listen = cfg_need_string(x, g, "listen", "listener")) != NULL) {
			m = config_setting_get_member(g, "listen");
			lc->listen = cfg_dup(x, m, listen);
			if (config_parse_listen(listen, &lc->addr, &lc->addrlen, &err) < 0) {
				cfg_err(x, m, "listener: bad listen address \"%s\": %s", listen,
				        err);
			} else {
				addr_ok = true;
				/* each worker binds every listener with SO_REUSEPORT, so a
				 * duplicate would not fail to bind: it would quietly split
				 * the connections between two configurations */
				if ((j = listener_index(cfg, cfg->nlisteners - 1, &lc->addr)) >= 0)
					cfg_err(
					    x, m,
					    "listener: duplicate listen address \"%s\" (first on "
					    "line %u)",
					    listen, config_setting_source_line(x->lst_set[j]));
			}
		}

		if ((proto = cfg_need_string(x, g, "protocol", "listener")) != NULL) {
			if (strcmp(proto, "imap") == 0)
				lc->proto = PROTO_IMAP;
			else if (strcmp(proto, "pop3") == 0)
				lc->proto = PROTO_POP3;
			else if (strcmp(proto, "sieve") == 0)
				lc->proto = PROTO_SIEVE;
			else
				cfg_err(x, config_setting_get_member(g, "protocol"),
				        "listener: 'protocol' must be \"imap\", \"pop3\" or "
				        "\"sieve\"");
		}

		/* ManageSieve's standard is STARTTLS on 4190 (RFC 5804 §1.8) */
		lc->tls = lc->proto == PROTO_SIEVE ? TLSM_STARTTLS : TLSM_IMPLICIT;
		if ((tls = cfg_get_string(x, g, "tls", "listener", &bad)) != NULL) {
			if (strcmp(tls, "implicit") == 0)
				lc->tls = TLSM_IMPLICIT;
			else if (strcmp(tls, "starttls") == 0)
				lc->tls = TLSM_STARTTLS;
			else
				/* no plaintext-only listener: passwords never cross in clear */
				cfg_err(x, config_setting_get_member(g, "tls"),
				        "listener: 'tls' must be \"implicit\" or \"starttls\"");
		}

		if ((m = config_setting_get_member(g, "allow_plaintext_auth")) != NULL) {
			if (config_setting_type(m) != CONFIG_TYPE_BOOL)
				cfg_err(x, m,
				        "listener: 'allow_plaintext_auth' must be true or false");
			else if (lc->tls != TLSM_STARTTLS && config_setting_get_bool(m))
				/* an implicit-TLS listener never sees plaintext: a
				 * setting that does nothing hides a misunderstanding */
				cfg_err(
				    x, m,
				    "listener: 'allow_plaintext_auth' needs tls = \"starttls\"");
			else
				lc->allow_plaintext_auth = config_setting_get_bool(m);
		}

		/* COMPRESS=DEFLATE shown to IMAP clients, or hidden (RFC 4978). */
		if ((m = config_setting_get_member(g, "compress")) != NULL) {
			const char *v = config_setting_get_string(m);
			if (v != NULL && strcmp(v, "pass") == 0)
				lc->compress = COMPRESS_PASS;
			else if (v != NULL && strcmp(v, "strip") == 0)
				lc->compress = COMPRESS_STRIP;
			else
				cfg_err(x, m, "listener: 'compress' must be \"pass\" or \"strip\"");
			if (proto != NULL && strcmp(proto, "imap") != 0)
				cfg_err(x, m, "listener: 'compress' is for IMAP listeners");
		}

		if ((m = config_setting_get_member(g, "lookup")) != NULL)
			cfg_parse_listener_lookup(x, m, lc);

		/* Behind a load balancer: a PROXY header, from the trusted only. */
		if ((m = config_setting_get_member(g, "proxy_protocol")) != NULL) {
			if (config_setting_type(m) != CONFIG_TYPE_BOOL)
				cfg_err(x, m, "listener: 'proxy_protocol' must be true or false");
			else
				lc->proxy_protocol = config_setting_get_bool(m);
		}
		if ((m = config_setting_get_member(g, "trusted")) != NULL) {
			cfg_read_cidr_list(x, m, "trusted", &lc->trusted, &lc->ntrusted);
			if (!lc->proxy_protocol)
				cfg_err(x, m, "listener: 'trusted' needs proxy_protocol = true");
		} else if (lc->proxy_protocol) {
			cfg_err(x, config_setting_get_member(g, "proxy_protocol"),
			        "listener: proxy_protocol needs 'trusted' = [ the load balancers' "
			        "networks ]");
		}

		/* The global list unless the listener names its own (OAuth only
		 * where the backends behind it take tokens). */
		lc->auth_mechanisms = cfg->auth_mechanisms;
		if ((m = config_setting_get_member(g, "auth_mechanisms")) != NULL) {
			unsigned mask = read_auth_mechanisms(x, m, "listener: 'auth_mechanisms'");
			if (mask != 0)
				lc->auth_mechanisms = mask;
		}

		if ((m = config_setting_get_member(g, "certificates")) != NULL) {
			/* this listener's own set, chosen by SNI like tls.certificates */
			if (!config_setting_is_list(m))
				cfg_err(x, m,
				        "listener: 'certificates' must be a list ( { cert = ...; "
				        "key = ...; } )");
			else
				read_cert_list(x, m, &lc->certs, &lc->ncerts);
		}

		if ((name = cfg_get_string(x, g, "name", "listener", &bad)) != NULL) {
			if (!cfg_valid_name(name))
				cfg_err(x, config_setting_get_member(g, "name"),
				        "listener: 'name' must be 1..%d of A-Z a-z 0-9 . _ -",
				        NAME_MAX_LEN);
			lc->name = cfg_dup(x, g, name);
		} else if (addr_ok) {
			char port[8];

			snprintf(port, sizeof(port), "%u", (unsigned)addr_port(&lc->addr));
			lc->name = cfg_dup(x, g, port);
		}
	}
}

/* sieve_extensions: the SIEVE capability ManageSieve listeners announce,
 * sent inside a quoted string: printable ASCII without '"' and '\\'. */
void
cfg_check_sieve_extensions(struct ctx *x, const config_setting_t *s, const char *v)
{
	size_t n = strlen(v);

	if (n > 1000) {
		cfg_err(x, s, "'sieve_extensions' must hold at most 1000 characters");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] > 0x7e || v[i] == '"' || v[i] == '\\') {
			cfg_err(
			    x, s,
			    "'sieve_extensions' must be printable ASCII without '\"' or '\\\\'");
			return;
		}
}
