/*
 * config_backend.c: backends, named pools, routes and the route_map file.
 * Resolves backend host names here, once, so that nothing after startup
 * waits on DNS; builds the route table the snapshot owns.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <libconfig.h>

#include "config.h"
#include "config_impl.h"
#include "route.h"
#include "route_map.h"

/* 0: absent; 1: *port_out set; -1: reported. */
static int
get_port(struct ctx *x, const config_setting_t *g, const char *key, const char *what,
         uint16_t *port_out)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	long long v;

	if (m == NULL)
		return 0;
	v = is_int(m) ? config_setting_get_int64(m) : -1;
	if (v < 1 || v > 65535) {
		cfg_err(x, m, "%s: '%s' must be a port number 1..65535", what, key);
		return -1;
	}
	*port_out = (uint16_t)v;
	return 1;
}

/* Resolve be->host once into addr[] for each protocol it serves. */
static void
resolve_backend(struct ctx *x, const config_setting_t *s, struct backend_conf *be, const char *what)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(be->host, NULL, &hints, &res)) != 0) {
		cfg_err(x, s, "%s: cannot resolve host \"%s\": %s", what, be->host,
		        rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return;
	}
	/* the first answer, in the order RFC 6724 sorts them */
	for (int p = 0; p < PROTO__COUNT; p++) {
		if (be->port[p] == 0)
			continue;
		memcpy(&be->addr[p], res->ai_addr, res->ai_addrlen);
		be->addrlen[p] = res->ai_addrlen;
		if (res->ai_family == AF_INET)
			((struct sockaddr_in *)&be->addr[p])->sin_port = htons(be->port[p]);
		else if (res->ai_family == AF_INET6)
			((struct sockaddr_in6 *)&be->addr[p])->sin6_port = htons(be->port[p]);
	}
	freeaddrinfo(res);
}

int64_t
config_backend_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nbackends; i++)
		if (cfg->backends[i].name != NULL && strcmp(cfg->backends[i].name, name) == 0)
			return (int64_t)i;
	return -1;
}

/* A duration in a list entry: default def (ms) when absent; lo..hi ms. */
static uint64_t
entry_duration(struct ctx *x, const config_setting_t *g, const char *key, const char *what,
               uint64_t def, uint64_t lo, uint64_t hi)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	const char *str;
	uint64_t ms;

	if (m == NULL)
		return def;
	if (is_int(m) && config_setting_get_int64(m) >= 0) {
		ms = (uint64_t)config_setting_get_int64(m) * 1000;
	} else if ((str = config_setting_get_string(m)) == NULL ||
	           config_duration_ms(str, &ms) < 0) {
		cfg_err(x, m, "%s: '%s' must be a duration like \"10s\"", what, key);
		return def;
	}
	if (ms != 0 && (ms < lo || ms > hi)) {
		cfg_err(x, m, "%s: '%s' must be 0 or between %llus and %llus", what, key,
		        (unsigned long long)(lo / 1000), (unsigned long long)(hi / 1000));
		return def;
	}
	return ms;
}

static int
entry_int(struct ctx *x, const config_setting_t *g, const char *key, const char *what, int def,
          int lo, int hi)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	long long v;

	if (m == NULL)
		return def;
	if (!is_int(m) || (v = config_setting_get_int64(m)) < lo || v > hi) {
		cfg_err(x, m, "%s: '%s' must be an integer %d..%d", what, key, lo, hi);
		return def;
	}
	return (int)v;
}

/* Health checks: check_interval ("10s", 0 = none), check_timeout, rise, fall. */
static void
be_health(struct ctx *x, const config_setting_t *g, struct backend_conf *be, const char *what)
{
	be->check_interval_ms =
	    entry_duration(x, g, "check_interval", what, 10 * SEC_MS, SEC_MS, HOUR_MS);
	be->check_timeout_ms =
	    entry_duration(x, g, "check_timeout", what, 5 * SEC_MS, SEC_MS, 10 * MIN_MS);
	if (be->check_timeout_ms == 0)
		be->check_timeout_ms = 5 * SEC_MS;
	be->rise = entry_int(x, g, "rise", what, 2, 1, 100);
	be->fall = entry_int(x, g, "fall", what, 3, 1, 100);
}

/* forward = "none" | "id" | "xclient" | "proxy-v1" | "proxy-v2", or a list. */
static void
be_forward(struct ctx *x, const config_setting_t *g, struct backend_conf *be, const char *what)
{
	static const struct {
		const char *name;
		unsigned bit;
	} kinds[] = {{"none", 0},
	             {"id", FORWARD_ID},
	             {"xclient", FORWARD_XCLIENT},
	             {"proxy-v1", FORWARD_PROXY_V1},
	             {"proxy-v2", FORWARD_PROXY_V2}};
	const config_setting_t *m = config_setting_get_member(g, "forward");
	int n;

	be->forward = 0;
	if (m == NULL)
		return;
	n = config_setting_is_scalar(m) ? 1 : config_setting_length(m);
	if (!config_setting_is_scalar(m) && !config_setting_is_array(m) &&
	    !config_setting_is_list(m)) {
		cfg_err(x, m, "%s: 'forward' must be a string or a list of strings", what);
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e =
		    config_setting_is_scalar(m) ? m : config_setting_get_elem(m, i);
		const char *v = config_setting_get_string(e);
		size_t k;

		for (k = 0; v != NULL && k < sizeof(kinds) / sizeof(kinds[0]); k++)
			if (strcmp(v, kinds[k].name) == 0)
				break;
		if (v == NULL || k == sizeof(kinds) / sizeof(kinds[0])) {
			cfg_err(x, e,
			        "%s: 'forward' takes \"none\", \"id\", \"xclient\", \"proxy-v1\" "
			        "or \"proxy-v2\"",
			        what);
			continue;
		}
		be->forward |= kinds[k].bit;
	}
	if ((be->forward & FORWARD_PROXY_V1) && (be->forward & FORWARD_PROXY_V2))
		cfg_err(x, m, "%s: 'forward' may hold one PROXY version, not both", what);
}

/* tls, ca, verify_name, cert/key, health checks and forward of entry g:
 * a backend's, or lookup.backend_defaults' for the backends a lookup names. */
void
cfg_read_backend_link(struct ctx *x, const config_setting_t *g, struct backend_conf *be,
                      const char *what)
{
	const char *tls, *ca, *vn, *cert, *key;
	bool bad_tls = false, bad_ca = false, bad_vn = false, bad_cert = false, bad_key = false;

	be->tls = TLSM_NONE;
	if ((tls = cfg_get_string(x, g, "tls", what, &bad_tls)) != NULL) {
		const config_setting_t *m = config_setting_get_member(g, "tls");

		if (strcmp(tls, "implicit") == 0)
			be->tls = TLSM_IMPLICIT;
		else if (strcmp(tls, "starttls") == 0)
			be->tls = TLSM_STARTTLS;
		else if (strcmp(tls, "none") != 0)
			cfg_err(x, m, "%s: 'tls' must be \"none\", \"implicit\" or \"starttls\"",
			        what);
	}

	if ((ca = cfg_get_string(x, g, "ca", what, &bad_ca)) != NULL) {
		const config_setting_t *m = config_setting_get_member(g, "ca");

		cfg_check_readable(x, m, "CA file", ca);
		/* a CA that verifies nothing would read as if the link were checked */
		if (!bad_tls && (tls == NULL || strcmp(tls, "none") == 0))
			cfg_err(x, m, "%s: 'ca' needs backend TLS, but tls = \"none\"", what);
		be->ca = cfg_dup(x, m, ca);
	}

	if ((vn = cfg_get_string(x, g, "verify_name", what, &bad_vn)) != NULL) {
		if (be->tls == TLSM_NONE)
			cfg_err(x, config_setting_get_member(g, "verify_name"),
			        "%s: 'verify_name' needs backend TLS", what);
		be->verify_name = cfg_dup(x, g, vn);
	}
	cert = cfg_get_string(x, g, "cert", what, &bad_cert);
	key = cfg_get_string(x, g, "key", what, &bad_key);
	if ((cert == NULL) != (key == NULL) && !bad_cert && !bad_key)
		cfg_err(x, g, "%s: a client certificate needs both 'cert' and 'key'", what);
	if (cert != NULL) {
		const config_setting_t *m = config_setting_get_member(g, "cert");
		cfg_check_readable(x, m, "certificate file", cert);
		if (be->tls == TLSM_NONE)
			cfg_err(x, m, "%s: 'cert' needs backend TLS", what);
		be->cert = cfg_dup(x, m, cert);
	}
	if (key != NULL) {
		const config_setting_t *m = config_setting_get_member(g, "key");
		cfg_check_readable(x, m, "key file", key);
		be->key = cfg_dup(x, m, key);
	}

	be_health(x, g, be, what);
	be_forward(x, g, be, what);
}

void
cfg_parse_backends(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {
	    "name", "host",        "imap",    "pop3", "sieve",          "tls",
	    "ca",   "verify_name", "cert",    "key",  "check_interval", "check_timeout",
	    "rise", "fall",        "forward", NULL};
	struct config *cfg = x->cfg;
	int n = config_setting_length(list);

	cfg->backends = calloc((size_t)n, sizeof(*cfg->backends));
	x->be_set = calloc((size_t)n, sizeof(*x->be_set));
	if (cfg->backends == NULL || x->be_set == NULL) {
		cfg_err(x, list, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		struct backend_conf *be = &cfg->backends[cfg->nbackends];
		const char *name, *host;
		char what[NAME_MAX_LEN + 16] = "backend";
		int nports = 0;
		int64_t j;

		if (!config_setting_is_group(g)) {
			cfg_err(x, g, "backend: each entry must be a group { name = ...; }");
			continue;
		}
		x->be_set[cfg->nbackends++] = g;
		cfg_check_keys(x, g, keys, "backend");

		if ((name = cfg_need_string(x, g, "name", "backend")) != NULL) {
			const config_setting_t *m = config_setting_get_member(g, "name");

			if (!cfg_valid_name(name)) {
				cfg_err(x, m, "backend: 'name' must be 1..%d of A-Z a-z 0-9 . _ -",
				        NAME_MAX_LEN);
			} else {
				/* the name, not the position, is what routing hashes */
				snprintf(what, sizeof(what), "backend '%s'", name);
				if ((j = config_backend_find(cfg, name)) >= 0)
					cfg_err(x, m,
					        "duplicate backend name '%s' (first on line %u)",
					        name, config_setting_source_line(x->be_set[j]));
			}
			be->name = cfg_dup(x, m, name);
		}

		if ((host = cfg_need_string(x, g, "host", what)) != NULL)
			be->host = cfg_dup(x, g, host);

		for (int p = 0; p < PROTO__COUNT; p++)
			if (get_port(x, g, proto_name(p), what, &be->port[p]) != 0)
				nports++;
		if (nports == 0)
			cfg_err(x, g, "%s: needs an 'imap', a 'pop3' or a 'sieve' port", what);

		cfg_read_backend_link(x, g, be, what);

		if (be->host != NULL && nports > 0)
			resolve_backend(x, config_setting_get_member(g, "host"), be, what);
	}
}

_Static_assert(CONFIG_POOL_MAX == ROUTE_POOL_MAX, "pool sizes agree");

static int64_t
pool_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->npools; i++)
		if (cfg->pools[i].name != NULL && strcmp(cfg->pools[i].name, name) == 0)
			return (int64_t)i;
	return -1;
}

/* weights = [ 1, 2, ... ] beside a pool of n backends: each 1..1000. */
static bool
read_weights(struct ctx *x, const config_setting_t *wl, size_t n, uint32_t *weights,
             const char *what)
{
	if (!config_setting_is_array(wl) && !config_setting_is_list(wl)) {
		cfg_err(x, wl, "%s: 'weights' must be a list of integers [ 1, 2 ]", what);
		return false;
	}
	if ((size_t)config_setting_length(wl) != n) {
		cfg_err(x, wl, "%s: 'weights' needs one weight per backend (%zu)", what, n);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(wl, (unsigned)i);
		long long v;
		if (!is_int(e) || (v = config_setting_get_int64(e)) < 1 || v > 1000) {
			cfg_err(x, e, "%s: a weight is an integer 1..1000", what);
			return false;
		}
		weights[i] = (uint32_t)v;
	}
	return true;
}

/* top-level pools = ( { name = "eu"; backends = [ "mx1", "mx2" ]; weights = [ 1, 2 ]; } ) */
void
cfg_parse_pools(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {"name", "backends", "weights", NULL};
	struct config *cfg = x->cfg;
	int n;

	if (list == NULL)
		return;
	if (!config_setting_is_list(list)) {
		cfg_err(x, list, "'pools' must be a list ( { name = ...; backends = [ ... ]; } )");
		return;
	}
	n = config_setting_length(list);
	if (n == 0 || (cfg->pools = calloc((size_t)n, sizeof(*cfg->pools))) == NULL)
		return;
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		struct pool_conf *pc = &cfg->pools[cfg->npools];
		const config_setting_t *bl, *wl;
		const char *name;
		int len;

		if (!config_setting_is_group(g)) {
			cfg_err(x, g,
			        "pool: each entry must be a group { name = ...; backends = ...; }");
			continue;
		}
		cfg_check_keys(x, g, keys, "pool");
		if ((name = cfg_need_string(x, g, "name", "pool")) == NULL)
			continue;
		if (!cfg_valid_name(name)) {
			cfg_err(x, config_setting_get_member(g, "name"),
			        "pool: 'name' must be 1..%d of A-Z a-z 0-9 . _ -", NAME_MAX_LEN);
			continue;
		}
		if (pool_index(cfg, name) >= 0) {
			cfg_err(x, g, "duplicate pool name '%s'", name);
			continue;
		}
		bl = config_setting_get_member(g, "backends");
		if (bl == NULL || (!config_setting_is_array(bl) && !config_setting_is_list(bl)) ||
		    (len = config_setting_length(bl)) == 0 || len > CONFIG_POOL_MAX) {
			cfg_err(x, bl ? bl : g,
			        "pool '%s': 'backends' must list 1..%d backend names", name,
			        CONFIG_POOL_MAX);
			continue;
		}
		bool bad = false;
		for (int k = 0; k < len; k++) {
			const config_setting_t *e = config_setting_get_elem(bl, k);
			const char *bn = config_setting_get_string(e);
			int64_t idx = bn ? config_backend_find(cfg, bn) : -1;
			if (idx < 0) {
				cfg_err(x, e, "pool '%s': unknown backend '%s'", name,
				        bn ? bn : "?");
				bad = true;
				continue;
			}
			for (size_t j = 0; j < pc->n; j++)
				if (pc->idx[j] == (size_t)idx) {
					cfg_err(x, e, "pool '%s': backend '%s' is twice in it",
					        name, bn);
					bad = true;
				}
			pc->idx[pc->n] = (size_t)idx;
			pc->weight[pc->n++] = 1;
		}
		if ((wl = config_setting_get_member(g, "weights")) != NULL && !bad &&
		    !read_weights(x, wl, pc->n, pc->weight, "pool"))
			bad = true;
		if (bad) {
			pc->n = 0;
			continue;
		}
		pc->name = cfg_dup(x, g, name);
		cfg->npools++;
	}
}

/* A map file line's target: a backend name, or "pool:NAME". */
static int
map_resolve(void *arg, const char *name, size_t *pool_out, uint32_t *weights_out, size_t *n_out)
{
	const struct config *cfg = arg;
	int64_t i;

	if (strncmp(name, "pool:", 5) == 0) {
		if ((i = pool_index(cfg, name + 5)) < 0)
			return -1;
		memcpy(pool_out, cfg->pools[i].idx, cfg->pools[i].n * sizeof(pool_out[0]));
		memcpy(weights_out, cfg->pools[i].weight, cfg->pools[i].n * sizeof(weights_out[0]));
		*n_out = cfg->pools[i].n;
		return 0;
	}
	if ((i = config_backend_find(cfg, name)) < 0)
		return -1;
	pool_out[0] = (size_t)i;
	weights_out[0] = 1;
	*n_out = 1;
	return 0;
}

/* route_map = "FILE": its rules join the table built from `routes`. */
void
cfg_load_route_map(struct ctx *x, const config_setting_t *s, const char *v)
{
	char *text = NULL;
	size_t len = 0;
	FILE *errs;
	int rc;

	if (x->cfg->routes == NULL)
		return; /* routes failed: said already */
	if ((errs = open_memstream(&text, &len)) == NULL) {
		cfg_err(x, s, "out of memory");
		return;
	}
	rc = route_map_load(x->cfg->routes, v, map_resolve, x->cfg, errs);
	fclose(errs);
	/* Each problem of the map as one error of this setting's line. */
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save))
		cfg_err(x, s, "route_map: %s", l);
	if (rc < 0 && (text == NULL || text[0] == '\0'))
		cfg_err(x, s, "route_map: cannot load \"%s\"", v);
	free(text);
}

/* Read the target of route g into pool[]; returns its size, 0 if reported. */
static size_t
route_target(struct ctx *x, const config_setting_t *g, size_t *pool)
{
	const config_setting_t *be = config_setting_get_member(g, "backend");
	const config_setting_t *pl = config_setting_get_member(g, "pool");
	size_t n = 0;
	int len;

	if ((be == NULL) == (pl == NULL)) {
		cfg_err(x, g, "route: needs exactly one of 'backend' or 'pool'");
		return 0;
	}
	if (be != NULL) {
		const char *name = config_setting_get_string(be);
		int64_t idx;

		if (name == NULL) {
			cfg_err(x, be, "route: 'backend' must be a string");
			return 0;
		}
		if ((idx = config_backend_find(x->cfg, name)) < 0) {
			cfg_err(x, be, "route: unknown backend '%s'", name);
			return 0;
		}
		pool[0] = (size_t)idx;
		return 1;
	}
	if (config_setting_get_string(pl) != NULL) {
		/* pool = "NAME": a named pool from `pools` */
		int64_t pi = pool_index(x->cfg, config_setting_get_string(pl));
		if (pi < 0) {
			cfg_err(
			    x, pl,
			    "route: unknown pool '%s' (a pool is a list [ \"a\", \"b\" ] or the "
			    "name "
			    "of one in 'pools')",
			    config_setting_get_string(pl));
			return 0;
		}
		memcpy(pool, x->cfg->pools[pi].idx, x->cfg->pools[pi].n * sizeof(pool[0]));
		return x->cfg->pools[pi].n;
	}
	if (!config_setting_is_array(pl) && !config_setting_is_list(pl)) {
		cfg_err(x, pl,
		        "route: 'pool' must be a list of backend names [ \"a\", \"b\" ] or a "
		        "pool's name");
		return 0;
	}
	if ((len = config_setting_length(pl)) == 0) {
		cfg_err(x, pl, "route: 'pool' is empty");
		return 0;
	}
	if (len > ROUTE_POOL_MAX) {
		cfg_err(x, pl, "route: 'pool' has more than %d backends", ROUTE_POOL_MAX);
		return 0;
	}
	bool bad = false;

	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(pl, i);
		const char *name = config_setting_get_string(e);
		int64_t idx;

		if (name == NULL) {
			cfg_err(x, e, "route: 'pool' must be a list of backend names");
			bad = true;
			continue;
		}
		if ((idx = config_backend_find(x->cfg, name)) < 0) {
			cfg_err(x, e, "route: unknown backend '%s'", name);
			bad = true;
			continue;
		}
		for (size_t j = 0; j < n; j++) {
			if (pool[j] == (size_t)idx) {
				cfg_err(x, e, "route: backend '%s' is twice in the pool", name);
				bad = true;
			}
		}
		pool[n++] = (size_t)idx;
	}
	return bad ? 0 : n;
}

void
cfg_parse_routes(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {"user", "domain",  "default", "backend",
	                                   "pool", "weights", NULL};
	struct config *cfg = x->cfg;
	const char **names;
	unsigned default_line = 0;

	/* 'backends' is missing or empty, and said so: every route would only
	 * repeat it as "unknown backend" */
	if (cfg->nbackends == 0)
		return;
	if ((names = calloc(cfg->nbackends + 1, sizeof(*names))) == NULL) {
		cfg_err(x, list, "out of memory");
		return;
	}
	/* a backend with a bad name still takes its slot: indices stay true */
	for (size_t i = 0; i < cfg->nbackends; i++)
		names[i] = cfg->backends[i].name ? cfg->backends[i].name : "";
	cfg->routes = route_table_new(names, cfg->nbackends);
	free(names);
	if (cfg->routes == NULL) {
		cfg_err(x, list, "out of memory");
		return;
	}

	for (int i = 0; i < config_setting_length(list); i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		const config_setting_t *user, *domain, *def;
		size_t pool[ROUTE_POOL_MAX], n;
		uint32_t weights[ROUTE_POOL_MAX];
		const uint32_t *wp = NULL;
		const config_setting_t *wl, *pl;
		const char *key = NULL, *err = NULL;
		int kinds;

		if (!config_setting_is_group(g)) {
			cfg_err(x, g,
			        "route: each entry must be a group { domain = ...; pool = ...; }");
			continue;
		}
		cfg_check_keys(x, g, keys, "route");
		user = config_setting_get_member(g, "user");
		domain = config_setting_get_member(g, "domain");
		def = config_setting_get_member(g, "default");
		kinds = (user != NULL) + (domain != NULL) + (def != NULL);
		if (kinds != 1) {
			cfg_err(x, g,
			        "route: needs exactly one of 'user', 'domain' or 'default = true'");
			continue;
		}
		if (def != NULL && (config_setting_type(def) != CONFIG_TYPE_BOOL ||
		                    !config_setting_get_bool(def))) {
			cfg_err(x, def, "route: 'default' can only be true");
			continue;
		}
		if (def == NULL) {
			const config_setting_t *k = user ? user : domain;

			if ((key = config_setting_get_string(k)) == NULL) {
				cfg_err(x, k, "route: '%s' must be a string",
				        user ? "user" : "domain");
				continue;
			}
		}
		if ((n = route_target(x, g, pool)) == 0)
			continue;
		pl = config_setting_get_member(g, "pool");
		if (pl != NULL && config_setting_get_string(pl) != NULL) {
			/* a named pool brings its own weights */
			int64_t pi = pool_index(cfg, config_setting_get_string(pl));
			wp = cfg->pools[pi].weight;
		}
		if ((wl = config_setting_get_member(g, "weights")) != NULL) {
			if (pl == NULL || config_setting_get_string(pl) != NULL) {
				cfg_err(x, wl, "route: 'weights' goes with a pool = [ ... ] list");
				continue;
			}
			if (!read_weights(x, wl, n, weights, "route"))
				continue;
			wp = weights;
		}
		if (user != NULL) {
			if (route_add_user(cfg->routes, key, pool, wp, n, &err) < 0)
				cfg_err(x, user, "route for user \"%s\": %s", key, err);
		} else if (domain != NULL) {
			if (route_add_domain(cfg->routes, key, pool, wp, n, &err) < 0)
				cfg_err(x, domain, "route for domain \"%s\": %s", key, err);
		} else if (default_line != 0) {
			cfg_err(x, def, "route: a default route is already set on line %u",
			        default_line);
		} else if (route_set_default(cfg->routes, pool, wp, n, &err) < 0) {
			cfg_err(x, def, "default route: %s", err);
		} else {
			default_line = config_setting_source_line(def);
		}
	}
}
