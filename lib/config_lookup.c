/*
 * config_lookup.c: the top-level `lookup` section (the HTTP user lookup
 * service) and a listener's `lookup` setting.  The scalar options are rows
 * of config.c's table; this file reads what has a shape of its own (the
 * URL, the header lines, send_password's default by protocol, the
 * backend_defaults entry) and frees the section.  Never opens a socket.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libconfig.h>

#include "config.h"
#include "config_impl.h"
#include "route.h"

#define LOOKUP_URL_MAX 2048 /* a service URL; curl takes far more, logs should not */

bool
cfg_lookup_url_ok(struct ctx *x, const config_setting_t *s, const char *what, const char *v)
{
	size_t skip, len = strlen(v);

	if (strncasecmp(v, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(v, "https://", 8) == 0)
		skip = 8;
	else {
		cfg_err(x, s, "%s: the URL must start with http:// or https://", what);
		return false;
	}
	if (len > LOOKUP_URL_MAX) {
		cfg_err(x, s, "%s: the URL is longer than %d bytes", what, LOOKUP_URL_MAX);
		return false;
	}
	if (v[skip] == '\0' || v[skip] == '/' || v[skip] == ':' || v[skip] == '?') {
		cfg_err(x, s, "%s: the URL names no host", what);
		return false;
	}
	/* the URL goes into the request line as written: nothing curl would
	 * have to guess about */
	for (const char *p = v; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			cfg_err(x, s, "%s: the URL holds a space or a control character", what);
			return false;
		}
	}
	return true;
}

void
cfg_check_lookup_url(struct ctx *x, const config_setting_t *s, const char *v)
{
	cfg_lookup_url_ok(x, s, "'lookup.url'", v);
}

void
cfg_check_lookup_ca(struct ctx *x, const config_setting_t *s, const char *v)
{
	cfg_check_readable(x, s, "CA file", v);
}

/* "Name: value": the name an RFC 9110 token, the value printable, no CR/LF. */
static bool
header_line_ok(const char *v)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	const char *p = v;

	for (; *p != '\0' && *p != ':'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || is_digit(*p) ||
		      strchr(tchar, *p) != NULL))
			return false;
	if (p == v || *p != ':')
		return false;
	for (p++; *p != '\0'; p++)
		if (((unsigned char)*p < ' ' && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

void
cfg_parse_lookup_headers(struct ctx *x, const config_setting_t *s)
{
	struct lookup_conf *lc = &x->cfg->lookup;
	int n;

	if (s == NULL)
		return;
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		cfg_err(x, s, "'lookup.headers' must be a list of strings [ \"Name: value\" ]");
		return;
	}
	if ((n = config_setting_length(s)) > LOOKUP_HEADERS_MAX) {
		cfg_err(x, s, "'lookup.headers' holds more than %d lines", LOOKUP_HEADERS_MAX);
		return;
	}
	if (n == 0 || (lc->headers = calloc((size_t)n, sizeof(*lc->headers))) == NULL)
		return;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);

		if (v == NULL || !header_line_ok(v)) {
			cfg_err(x, e,
			        "'lookup.headers': each line is \"Name: value\", the name a token, "
			        "no CR or LF");
			continue;
		}
		if ((lc->headers[lc->nheaders] = cfg_dup(x, e, v)) != NULL)
			lc->nheaders++;
	}
}

void
cfg_parse_lookup_send_password(struct ctx *x, const config_setting_t *s)
{
	if (s == NULL)
		return; /* cfg_lookup_finish() sets it by protocol */
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		cfg_err(x, s, "'lookup.send_password' must be true or false");
		return;
	}
	x->cfg->lookup.send_password = config_setting_get_bool(s);
}

void
cfg_parse_lookup_backend_defaults(struct ctx *x, const config_setting_t *s)
{
	static const char *const keys[] = {
	    "tls",  "ca",   "verify_name",    "cert",          "key", "forward",
	    "rise", "fall", "check_interval", "check_timeout", NULL};
	static const config_setting_t empty; /* no members: every default */
	struct backend_conf *be = &x->cfg->lookup.backend_defaults;

	if (s != NULL && !config_setting_is_group(s)) {
		cfg_err(x, s, "'lookup.backend_defaults' must be a group { tls = ...; }");
		return;
	}
	cfg_backend_strings_free(be);
	if (s != NULL)
		cfg_check_keys(x, s, keys, "lookup.backend_defaults");
	cfg_read_backend_link(x, s != NULL ? s : &empty, be, "lookup.backend_defaults");
}

void
cfg_parse_listener_lookup(struct ctx *x, const config_setting_t *m, struct listener_conf *lc)
{
	const char *v;

	if (config_setting_type(m) == CONFIG_TYPE_BOOL) {
		lc->lookup =
		    config_setting_get_bool(m) ? LISTENER_LOOKUP_GLOBAL : LISTENER_LOOKUP_OFF;
		return;
	}
	if ((v = config_setting_get_string(m)) == NULL) {
		cfg_err(x, m, "listener: 'lookup' must be true, false or a URL \"http://...\"");
		return;
	}
	if (!cfg_lookup_url_ok(x, m, "listener: 'lookup'", v))
		return;
	lc->lookup = LISTENER_LOOKUP_URL;
	lc->lookup_url = cfg_dup(x, m, v);
}

void
cfg_lookup_finish(struct ctx *x)
{
	struct lookup_conf *lc = &x->cfg->lookup;

	/* nginx's protocol always carries the password (Auth-Pass); a JSON
	 * service decides routes, and needs no secret unless asked to */
	if (config_lookup(x->lc, "lookup.send_password") == NULL)
		lc->send_password = lc->protocol == LOOKUP_PROTO_NGINX;
	/* an explicit `lookup = true` that asks nothing hides a misunderstanding */
	for (size_t i = 0; i < x->cfg->nlisteners && x->lst_set != NULL; i++) {
		const config_setting_t *m;

		if (lc->url != NULL || x->lst_set[i] == NULL ||
		    (m = config_setting_get_member(x->lst_set[i], "lookup")) == NULL ||
		    config_setting_type(m) != CONFIG_TYPE_BOOL || !config_setting_get_bool(m))
			continue;
		cfg_err(x, m, "listener: 'lookup = true' needs the top-level lookup.url");
	}
	/* Without backends or routes only a lookup can route: every listener
	 * must have one.  Routes without backends would name nothing. */
	if (x->nroute_lists > 0) {
		size_t with = 0;

		for (size_t i = 0; i < x->cfg->nlisteners; i++)
			with += config_lookup_url(x->cfg, &x->cfg->listeners[i]) != NULL;
		for (size_t i = 0; i < x->nroute_lists && with < x->cfg->nlisteners; i++)
			cfg_err(x, x->route_lists[i].set,
			        x->route_lists[i].set == NULL
			            ? "missing '%s': at least one %s is required%s"
			            : "'%s' is empty: at least one %s is required%s",
			        x->route_lists[i].path, x->route_lists[i].noun,
			        with > 0 ? " (a listener without a lookup needs one)" : "");
		if (with == x->cfg->nlisteners && x->cfg->nbackends == 0 &&
		    config_lookup(x->lc, "routes") != NULL &&
		    config_setting_length(config_lookup(x->lc, "routes")) > 0)
			cfg_err(x, config_lookup(x->lc, "routes"),
			        "'routes' name backends, but 'backends' is missing or empty");
	}
	/* every login may fall back to the rules: an empty table routes nobody */
	if (x->cfg->routes == NULL && x->cfg->nbackends == 0 &&
	    (x->cfg->routes = route_table_new(NULL, 0)) == NULL)
		cfg_err(x, NULL, "out of memory");
}

void
cfg_lookup_free(struct lookup_conf *lc)
{
	free(lc->url);
	for (size_t i = 0; i < lc->nheaders; i++)
		free(lc->headers[i]);
	free(lc->headers);
	free(lc->ca);
	cfg_backend_strings_free(&lc->backend_defaults);
}

void
cfg_backend_strings_free(struct backend_conf *be)
{
	free(be->name);
	free(be->host);
	free(be->ca);
	free(be->verify_name);
	free(be->cert);
	free(be->key);
	be->name = be->host = be->ca = be->verify_name = be->cert = be->key = NULL;
}

const char *
config_lookup_url(const struct config *cfg, const struct listener_conf *lc)
{
	if (lc != NULL && lc->lookup == LISTENER_LOOKUP_OFF)
		return NULL;
	if (lc != NULL && lc->lookup == LISTENER_LOOKUP_URL)
		return lc->lookup_url;
	return cfg->lookup.url;
}
