/*
 * config_policy.c: the policy section (protocol rules, allow/deny networks,
 * throttling checks) and the state store URL.  Validates only: what the
 * values mean is decided in policy/.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <libconfig.h>

#include "config.h"
#include "config_impl.h"
#include "state_url.h"

/* ---- policy ----------------------------------------------------------- */

int
config_parse_cidr(const char *s, struct cidr_conf *out, const char **err_out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t hl;
	unsigned long prefix = 0, max;
	int family;

	memset(out, 0, sizeof(*out));
	if (s == NULL || *s == '\0') {
		*err_out = "empty network";
		return -1;
	}
	slash = strchr(s, '/');
	hl = slash ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host)) {
		*err_out = "expected an address or address/prefix";
		return -1;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	/* inet_pton(): numeric only, and no "10.1" shorthands */
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		family = AF_INET6;
		max = 128;
	} else {
		*err_out = "not a numeric IPv4 or IPv6 address";
		return -1;
	}
	prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1;

		prefix = 0;
		if (!is_digit(*p)) {
			*err_out = "the prefix length must be a number";
			return -1;
		}
		for (; is_digit(*p); p++) {
			prefix = prefix * 10 + (unsigned long)(*p - '0');
			if (prefix > max)
				break;
		}
		if (*p != '\0' && prefix <= max) {
			*err_out = "the prefix length must be a number";
			return -1;
		}
		if (prefix > max) {
			*err_out = family == AF_INET ? "an IPv4 prefix is at most 32"
			                             : "an IPv6 prefix is at most 128";
			return -1;
		}
	}
	/* "192.0.2.7/24" is a typo for either a host or a network: say so */
	for (unsigned bit = (unsigned)prefix; bit < max; bit++) {
		if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
			*err_out = "host bits are set beyond the prefix length";
			return -1;
		}
	}
	out->family = family;
	out->prefix = (unsigned)prefix;
	return 0;
}

/* A list or array of protocol names into a PROTO_MASK() set; 0 if reported. */
static unsigned
read_protocols(struct ctx *x, const config_setting_t *s, const char *what)
{
	unsigned mask = 0;
	int n;

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		cfg_err(x, s, "%s must be a list of protocols [ \"imap\", \"pop3\" ]", what);
		return 0;
	}
	if ((n = config_setting_length(s)) == 0) {
		cfg_err(x, s, "%s is empty: name \"imap\", \"pop3\" or both", what);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = config_setting_get_string(e);
		unsigned bit;

		if (v != NULL && strcmp(v, "imap") == 0) {
			bit = PROTO_MASK(PROTO_IMAP);
		} else if (v != NULL && strcmp(v, "pop3") == 0) {
			bit = PROTO_MASK(PROTO_POP3);
		} else {
			cfg_err(x, e, "%s: each entry must be \"imap\" or \"pop3\"", what);
			return 0;
		}
		if (mask & bit) {
			cfg_err(x, e, "%s names \"%s\" twice", what, v);
			return 0;
		}
		mask |= bit;
	}
	return mask;
}

/* policy.protocols_default; called with s == NULL for the default. */
void
cfg_parse_protocols_default(struct ctx *x, const config_setting_t *s)
{
	unsigned mask;

	if (s == NULL) {
		x->cfg->policy.protocols_default = PROTO_MASK_ALL;
		return;
	}
	if ((mask = read_protocols(x, s, "'policy.protocols_default'")) != 0)
		x->cfg->policy.protocols_default = mask;
}

void
cfg_parse_protocol_rules(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {"user", "domain", "allow", NULL};
	struct config *cfg = x->cfg;
	int n;

	if (!config_setting_is_list(list)) {
		cfg_err(x, list, "'policy.protocols' must be a list ( { ... }, ... )");
		return;
	}
	if ((n = config_setting_length(list)) == 0)
		return;
	if (n > POLICY_LIST_MAX) {
		cfg_err(x, list, "'policy.protocols' has more than %d rules: use protocols_file",
		        POLICY_LIST_MAX);
		return;
	}
	if ((cfg->policy.protocols = calloc((size_t)n, sizeof(*cfg->policy.protocols))) == NULL) {
		cfg_err(x, list, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		struct protocol_rule_conf *r = &cfg->policy.protocols[cfg->policy.nprotocols];
		const config_setting_t *user, *domain, *allow;
		const char *key;

		if (!config_setting_is_group(g)) {
			cfg_err(x, g,
			        "protocol rule: each entry must be a group "
			        "{ user = ...; allow = ...; }");
			continue;
		}
		cfg_check_keys(x, g, keys, "protocol rule");
		user = config_setting_get_member(g, "user");
		domain = config_setting_get_member(g, "domain");
		if ((user == NULL) == (domain == NULL)) {
			cfg_err(x, g, "protocol rule: needs exactly one of 'user' or 'domain'");
			continue;
		}
		key = config_setting_get_string(user ? user : domain);
		if (key == NULL || *key == '\0') {
			cfg_err(x, user ? user : domain,
			        "protocol rule: '%s' must be a non-empty string",
			        user ? "user" : "domain");
			continue;
		}
		if (domain != NULL && strchr(key, '@') != NULL) {
			cfg_err(x, domain, "protocol rule: a domain cannot contain '@'");
			continue;
		}
		if ((allow = config_setting_get_member(g, "allow")) == NULL) {
			cfg_err(x, g, "protocol rule: missing 'allow'");
			continue;
		}
		if ((r->allow = read_protocols(x, allow, "protocol rule: 'allow'")) == 0)
			continue;
		for (size_t j = 0; j < cfg->policy.nprotocols; j++) {
			const struct protocol_rule_conf *o = &cfg->policy.protocols[j];
			const char *ok = user ? o->user : o->domain;

			if (ok != NULL && strcasecmp(ok, key) == 0) {
				cfg_err(x, g, "protocol rule: %s \"%s\" has a rule already",
				        user ? "user" : "domain", key);
				key = NULL;
				break;
			}
		}
		if (key == NULL)
			continue;
		if (user)
			r->user = cfg_dup(x, user, key);
		else
			r->domain = cfg_dup(x, domain, key);
		cfg->policy.nprotocols++;
	}
}

/* policy.allow / policy.deny: [ "192.0.2.0/24", "2001:db8::/32", ... ] */
void
cfg_read_cidr_list(struct ctx *x, const config_setting_t *s, const char *path,
                   struct cidr_conf **out, size_t *n_out)
{
	int n;

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		cfg_err(x, s,
		        "'%s' must be a list of networks [ \"192.0.2.0/24\", \"2001:db8::/32\" ]",
		        path);
		return;
	}
	if ((n = config_setting_length(s)) == 0)
		return;
	if (n > POLICY_LIST_MAX) {
		cfg_err(x, s, "'%s' has more than %d networks", path, POLICY_LIST_MAX);
		return;
	}
	if ((*out = calloc((size_t)n, sizeof(**out))) == NULL) {
		cfg_err(x, s, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = config_setting_get_string(e), *err;

		if (v == NULL) {
			cfg_err(x, e, "'%s': each entry must be a string such as \"192.0.2.0/24\"",
			        path);
			continue;
		}
		if (config_parse_cidr(v, &(*out)[*n_out], &err) < 0) {
			cfg_err(x, e, "'%s': bad network \"%s\": %s", path, v, err);
			continue;
		}
		(*n_out)++;
	}
}

void
cfg_parse_policy_allow(struct ctx *x, const config_setting_t *s)
{
	cfg_read_cidr_list(x, s, "policy.allow", &x->cfg->policy.allow, &x->cfg->policy.nallow);
}

void
cfg_parse_policy_deny(struct ctx *x, const config_setting_t *s)
{
	cfg_read_cidr_list(x, s, "policy.deny", &x->cfg->policy.deny, &x->cfg->policy.ndeny);
}

void
cfg_check_state(struct ctx *x, const config_setting_t *s, const char *v)
{
	struct state_url u;
	const char *err;

	if (state_url_parse(v, &u, &err) < 0)
		cfg_err(x, s, "'state' = \"%s\": %s", v, err);
	else if (u.kind == STATE_LMDB && u.arg[0] == '\0')
		cfg_err(x, s,
		        "'state' = \"lmdb:\": name a directory, as in "
		        "\"lmdb:/var/lib/postern\"");
	else if (u.kind == STATE_MEM)
		cfg_err(x, s, "'state' = \"%s\": the memory store is for unit tests only", v);
}

/* The fallback is an embedded store only: a second Redis would be down
 * with the first as often as not. */
void
cfg_check_state_fallback(struct ctx *x, const config_setting_t *s, const char *v)
{
	struct state_url u;
	const char *err;

	if (state_url_parse(v, &u, &err) < 0)
		cfg_err(x, s, "'state_fallback' = \"%s\": %s", v, err);
	else if (u.kind != STATE_LMDB || u.arg[0] == '\0')
		cfg_err(x, s, "'state_fallback' must be \"lmdb:DIR\"");
}

void
cfg_check_state_password_file(struct ctx *x, const config_setting_t *s, const char *v)
{
	cfg_check_readable(x, s, "state password file", v);
}

/* A Redis 6 ACL user name: printable, no spaces, not too long. */
void
cfg_check_state_user(struct ctx *x, const config_setting_t *s, const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 128) {
		cfg_err(x, s, "'state_user' must be 1..128 bytes");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f) {
			cfg_err(x, s, "'state_user' must be printable ASCII without spaces");
			return;
		}
}

/* Keys are PREFIX "{" user "}:lock": keep the prefix printable, unspaced,
 * short and without braces (a brace there would move the hash tag), so that
 * `redis-cli --scan --pattern` finds them. */
void
cfg_check_state_prefix(struct ctx *x, const config_setting_t *s, const char *v)
{
	size_t n = strlen(v);

	if (n > STATE_PREFIX_MAX) {
		cfg_err(x, s, "'state_prefix' is longer than %d bytes", STATE_PREFIX_MAX);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f || v[i] == '{' ||
		    v[i] == '}') {
			cfg_err(x, s,
			        "'state_prefix' must be printable ASCII without spaces or braces");
			return;
		}
	}
}

void
cfg_check_protocols_file(struct ctx *x, const config_setting_t *s, const char *v)
{
	cfg_check_readable(x, s, "protocols file", v);
}

/* The policy settings that only make sense together. */
void
cfg_check_policy(struct ctx *x)
{
	const struct config *cfg = x->cfg;
	const config_setting_t *mode = config_lookup(x->lc, "policy.protocol_lock");
	static const char *const rules[] = {"policy.protocols", "policy.protocols_file",
	                                    "policy.protocols_default", NULL};

	if (cfg->policy.protocol_lock == PLOCK_STICKY && cfg->state == NULL)
		cfg_err(x, mode,
		        "'policy.protocol_lock' = \"sticky\" needs a state store: set state = "
		        "\"lmdb:DIR\"");
	/* Redis settings beside a store that reads none of them would mislead */
	if (!state_url_is_redis(cfg->state)) {
		static const char *const redis_only[] = {
		    "state_password_file", "state_prefix",           "state_heartbeat",
		    "state_unavailable",   "state_fallback",         "state_user",
		    "state_wait_replicas", "sentinel_password_file", NULL};

		for (size_t i = 0; redis_only[i] != NULL; i++) {
			const config_setting_t *s = config_lookup(x->lc, redis_only[i]);

			if (s != NULL)
				cfg_err(x, s, "'%s' is for a Redis store (state = \"redis://...\")",
				        redis_only[i]);
		}
	}
	if (state_url_is_redis(cfg->state) && strncmp(cfg->state, "redis-sentinel://", 17) != 0 &&
	    config_lookup(x->lc, "sentinel_password_file") != NULL)
		cfg_err(x, config_lookup(x->lc, "sentinel_password_file"),
		        "'sentinel_password_file' is for state = \"redis-sentinel://...\"");
	if (cfg->route_lookup == ROUTE_LOOKUP_STATE && cfg->state == NULL)
		cfg_err(x, config_lookup(x->lc, "route_lookup"),
		        "'route_lookup' = \"state\" needs a state store");
	if (cfg->state_fallback != NULL && cfg->state != NULL &&
	    strcmp(cfg->state_fallback, cfg->state) == 0)
		cfg_err(x, config_lookup(x->lc, "state_fallback"),
		        "'state_fallback' must differ from 'state'");
	/* rules that nothing reads would read as if they were enforced */
	for (size_t i = 0; cfg->policy.protocol_lock == PLOCK_OFF && rules[i] != NULL; i++) {
		const config_setting_t *s = config_lookup(x->lc, rules[i]);

		if (s != NULL)
			cfg_err(x, s, "'%s' has no effect with protocol_lock = \"off\"", rules[i]);
	}
	if (cfg->policy.throttle.delay_max_ms < cfg->policy.throttle.delay_base_ms)
		cfg_err(x, config_lookup(x->lc, "policy.throttle.delay_max"),
		        "'policy.throttle.delay_max' must not be below delay_base");
	/* a tarpit as long as the login timeout would only ever end in a timeout */
	if (cfg->policy.throttle.delay_max_ms >= cfg->timeouts.login_ms)
		cfg_err(x, config_lookup(x->lc, "policy.throttle.delay_max"),
		        "'policy.throttle.delay_max' must be shorter than timeouts.login");
}
