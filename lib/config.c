/*
 * config.c: the libconfig file -> struct config.  Owns the loader core, the
 * one option table (defaults and bounds, mirrored by etc/postern.conf),
 * error collection and reporting, and the refcounted snapshot.  The readers
 * the sections share and the checks of single settings are in
 * config_check.c; the sections with lists of their own are read in
 * config_listen.c, config_backend.c and config_policy.c.  Prints to errs
 * only, never to the log.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/tls1.h>

#include "config.h"
#include "config_impl.h"
#include "route.h"

void
cfg_err(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	struct cerr *e;
	va_list ap;

	x->nerr++;
	if (x->nkept == x->errcap) {
		size_t ncap = x->errcap ? x->errcap * 2 : 16;
		struct cerr *nv = realloc(x->errv, ncap * sizeof(*nv));

		if (nv == NULL)
			return; /* counted all the same: the load fails anyway */
		x->errv = nv;
		x->errcap = ncap;
	}
	e = &x->errv[x->nkept];
	e->file = (s != NULL && config_setting_source_file(s) != NULL)
	              ? config_setting_source_file(s)
	              : x->name;
	e->line = s != NULL ? config_setting_source_line(s) : 0;
	e->seq = (unsigned)x->nkept;
	va_start(ap, fmt);
	if (vasprintf(&e->msg, fmt, ap) < 0)
		e->msg = NULL;
	va_end(ap);
	x->nkept++;
}

/* The main file first, then included files by name; line 0 last; then seq. */
static int
cerr_cmp(const void *a, const void *b, void *arg)
{
	const struct cerr *ea = a, *eb = b;
	const char *name = arg;
	int ma = strcmp(ea->file, name) != 0, mb = strcmp(eb->file, name) != 0, c;
	unsigned la = ea->line ? ea->line : UINT_MAX, lb = eb->line ? eb->line : UINT_MAX;

	if (ma != mb)
		return ma - mb;
	if ((c = strcmp(ea->file, eb->file)) != 0)
		return c;
	if (la != lb)
		return la < lb ? -1 : 1;
	return ea->seq < eb->seq ? -1 : ea->seq > eb->seq;
}

/*
 * libconfig names an included file as the @include line wrote it, but
 * opens it under the include directory: say where it really is.  Returns
 * "dir/" in buf, or "", to print before file.
 */
static const char *
include_prefix(const char *incdir, const char *name, const char *file, char *buf, size_t len)
{
	if (incdir == NULL || file[0] == '/' || strcmp(file, name) == 0)
		return "";
	snprintf(buf, len, "%s%s", incdir,
	         incdir[0] != '\0' && incdir[strlen(incdir) - 1] == '/' ? "" : "/");
	return buf;
}

/* Print and drop the collected errors; before config_destroy(), which
 * frees the file names they borrow. */
static void
perr_flush(struct ctx *x)
{
	size_t n = x->nkept;
	char dir[PATH_MAX];

	qsort_r(x->errv, n, sizeof(*x->errv), cerr_cmp, (void *)x->name);
	for (size_t i = 0; i < n; i++) {
		const struct cerr *e = &x->errv[i];

		if (x->errs != NULL)
			fprintf(x->errs, "%s%s:%u: %s\n",
			        include_prefix(x->incdir, x->name, e->file, dir, sizeof(dir)),
			        e->file, e->line, e->msg ? e->msg : "(out of memory)");
		free(e->msg);
	}
	if (x->errs != NULL && x->nerr > n)
		fprintf(x->errs, "%s:0: out of memory; %zu more errors not shown\n", x->name,
		        x->nerr - n);
	if (x->errs != NULL)
		fflush(x->errs);
	free(x->errv);
	x->errv = NULL;
	x->nkept = x->errcap = 0;
}

const char *
proto_name(enum proto_kind p)
{
	switch (p) {
	case PROTO_IMAP:
		return "imap";
	case PROTO_POP3:
		return "pop3";
	case PROTO_SIEVE:
		return "sieve";
	default:
		return "?";
	}
}

int
config_duration_ms(const char *s, uint64_t *ms_out)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
	    {"", 1000},       {"ms", 1},          {"s", 1000},
	    {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000},
	};
	uint64_t n = 0;
	const char *p = s;

	/* digits first: no sign, no space, no fraction */
	if (s == NULL || !is_digit(*p))
		return -1;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].suffix) != 0)
			continue;
		if (n > UINT64_MAX / units[i].ms)
			return -1;
		*ms_out = n * units[i].ms;
		return 0;
	}
	return -1;
}

/* ---- the option table ------------------------------------------------- */

enum opt_kind {
	OPT_GROUP,    /* holds further options: tls, timeouts, limits */
	OPT_LIST,     /* a list of groups, read by its own function */
	OPT_STRING,   /* char *, copied */
	OPT_ENUM,     /* int: one of names[] */
	OPT_INT,      /* int in min..max */
	OPT_DURATION, /* uint64_t ms in min..max; a string, or an integer of seconds */
	OPT_WORKERS,  /* int: "auto" or min..max */
	OPT_FUNC,     /* optional, any shape: read by its own function (s NULL: the default) */
};

struct opt_name {
	const char *name;
	int value;
	const char *refused; /* non-NULL: known, but refused for this reason */
};

struct opt {
	const char *path; /* dotted, as written in the file */
	enum opt_kind kind;
	size_t off;                   /* offsetof(struct config, field) */
	const char *def;              /* default in the file's syntax; NULL: none */
	int64_t min, max;             /* OPT_INT, OPT_WORKERS: the value; OPT_DURATION: ms */
	const struct opt_name *names; /* OPT_ENUM; ends with a NULL name */
	/* OPT_STRING: further checks, reports itself */
	void (*check)(struct ctx *x, const config_setting_t *s, const char *v);
	/* OPT_LIST: reads each entry of a non-empty list; OPT_FUNC: reads the setting */
	void (*list)(struct ctx *x, const config_setting_t *s);
	const char *noun; /* OPT_LIST: "listener" for messages; then required */
};

static const struct opt_name protocol_lock_modes[] = {
    {"off", PLOCK_OFF, NULL},
    {"concurrent", PLOCK_CONCURRENT, NULL},
    {"sticky", PLOCK_STICKY, NULL},
    {"static", PLOCK_STATIC, NULL},
    {NULL, 0, NULL},
};

static const struct opt_name state_unavailable_modes[] = {
    {"local", STATE_UNAVAIL_LOCAL, NULL},
    {"refuse", STATE_UNAVAIL_REFUSE, NULL},
    {NULL, 0, NULL},
};

static const struct opt_name route_lookup_modes[] = {
    {"config", ROUTE_LOOKUP_CONFIG, NULL},
    {"state", ROUTE_LOOKUP_STATE, NULL},
    {NULL, 0, NULL},
};

static const struct opt_name lookup_protocols[] = {
    {"nginx", LOOKUP_PROTO_NGINX, NULL},
    {"json", LOOKUP_PROTO_JSON, NULL},
    {NULL, 0, NULL},
};

static const struct opt_name sieve_lock_modes[] = {
    {"exempt", SIEVE_LOCK_EXEMPT, NULL},
    {"as_imap", SIEVE_LOCK_AS_IMAP, NULL},
    {NULL, 0, NULL},
};
static const struct opt_name sieve_sessions_modes[] = {
    {"exempt", SIEVE_SESSIONS_EXEMPT, NULL},
    {"count", SIEVE_SESSIONS_COUNT, NULL},
    {NULL, 0, NULL},
};
static const struct opt_name lookup_failure_modes[] = {
    {"unavailable", LOOKUP_FAIL_UNAVAILABLE, NULL},
    {"rules", LOOKUP_FAIL_RULES, NULL},
    {NULL, 0, NULL},
};

static const struct opt_name log_levels[] = {
    {"debug", LOG_DEBUG, NULL}, {"info", LOG_INFO, NULL}, {"warn", LOG_WARN, NULL},
    {"error", LOG_ERR, NULL},   {NULL, 0, NULL},
};

static const struct opt_name tls_versions[] = {
    {"TLSv1.2", TLS1_2_VERSION, NULL},
    {"TLSv1.3", TLS1_3_VERSION, NULL},
    /* RFC 8996 deprecates TLS 1.0 and 1.1; SSL is long broken */
    {"TLSv1.1", 0, "TLS below 1.2 is not allowed (RFC 8996)"},
    {"TLSv1", 0, "TLS below 1.2 is not allowed (RFC 8996)"},
    {"TLSv1.0", 0, "TLS below 1.2 is not allowed (RFC 8996)"},
    {"SSLv3", 0, "TLS below 1.2 is not allowed (RFC 8996)"},
    {NULL, 0, NULL},
};

/* Mozilla's "intermediate" profile (v5.7): every client from the last
 * decade, forward secrecy and AEAD only. */
#define DEF_CIPHERS                                                                                \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define DEF_CIPHERSUITES                                                                           \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define DEF_GROUPS "X25519:prime256v1:secp384r1"

#define OFF(f) offsetof(struct config, f)

/*
 * Every setting postern reads, in the order it reads them (backends before
 * routes, which name them).  etc/postern.conf shows each with its default
 * and bounds; change both together.  One row per option: the macros expand
 * to designated initialisers.
 */
/* clang-format off */
#define O_GROUP(p)                 {.path = p, .kind = OPT_GROUP}
#define O_LIST(p, fn, what)        {.path = p, .kind = OPT_LIST, .list = fn, .noun = what}
#define O_STR(p, f, d, chk)        {.path = p, .kind = OPT_STRING, .off = OFF(f), .def = d, .check = chk}
#define O_ENUM(p, f, d, tbl)       {.path = p, .kind = OPT_ENUM, .off = OFF(f), .def = d, .names = tbl}
#define O_INT(p, f, d, lo, hi)     {.path = p, .kind = OPT_INT, .off = OFF(f), .def = d, .min = lo, .max = hi}
#define O_DUR(p, f, d, lo, hi)     {.path = p, .kind = OPT_DURATION, .off = OFF(f), .def = d, .min = lo, .max = hi}
#define O_WORKERS(p, f, d, lo, hi) {.path = p, .kind = OPT_WORKERS, .off = OFF(f), .def = d, .min = lo, .max = hi}
#define O_FUNC(p, fn, d)           {.path = p, .kind = OPT_FUNC, .list = fn, .def = d}

static const struct opt opts[] = {
	/*        path                        field                         default    bounds or names */
	O_WORKERS("workers",                  workers,                      "auto",    1, 256),
	O_STR(    "user",                     user,                         NULL,      cfg_check_user),
	O_STR(    "state",                    state,                        NULL,      cfg_check_state),
	O_STR(    "state_password_file",      state_password_file,          NULL,      cfg_check_state_password_file),
	O_STR(    "state_user",               state_user,                   NULL,      cfg_check_state_user),
	O_STR(    "sentinel_password_file",   sentinel_password_file,       NULL,      cfg_check_state_password_file),
	O_STR(    "state_prefix",             state_prefix,                 "postern:", cfg_check_state_prefix),
	O_INT(    "state_wait_replicas",      state_wait_replicas,          "0",       0, 16),
	O_DUR(    "state_timeout",            state_timeout_ms,             "250ms",   10, MIN_MS),
	O_DUR(    "state_heartbeat",          state_heartbeat_ms,           "10s",     100, 5 * MIN_MS),
	O_ENUM(   "state_unavailable",        state_unavailable,            "local",   state_unavailable_modes),
	O_STR(    "state_fallback",           state_fallback,               NULL,      cfg_check_state_fallback),
	O_ENUM(   "route_lookup",             route_lookup,                 "config",  route_lookup_modes),
	O_ENUM(   "log_level",                log_level,                    "info",    log_levels),

	O_GROUP(  "tls"),
	O_LIST(   "tls.certificates",         cfg_parse_certificates,       "certificate"),
	O_ENUM(   "tls.min_version",          tls.min_version,              "TLSv1.2", tls_versions),
	O_STR(    "tls.ciphers",              tls.ciphers,                  DEF_CIPHERS, NULL),
	O_STR(    "tls.ciphersuites",         tls.ciphersuites,             DEF_CIPHERSUITES, NULL),
	O_STR(    "tls.groups",               tls.groups,                   DEF_GROUPS, NULL),
	O_STR(    "tls.ticket_key_file",      tls.ticket_key_file,          NULL,      cfg_check_ticket_key_file),
	O_DUR(    "tls.session_timeout",      tls.session_timeout_ms,       "1h",      MIN_MS, 7 * DAY_MS),

	O_FUNC(   "auth_mechanisms",          cfg_parse_auth_mechanisms,    "[\"plain\", \"login\"]"),
	O_LIST(   "listeners",                cfg_parse_listeners,          "listener"),
	O_LIST(   "backends",                 cfg_parse_backends,           "backend"),
	O_FUNC(   "pools",                    cfg_parse_pools,              NULL),
	O_LIST(   "routes",                   cfg_parse_routes,             "route"),
	O_STR(    "route_map",                route_map,                    NULL,      cfg_load_route_map),
	O_STR(    "sieve_extensions",         sieve_extensions,             NULL,      cfg_check_sieve_extensions),

	O_GROUP(  "lookup"),
	O_STR(    "lookup.url",               lookup.url,                   NULL,      cfg_check_lookup_url),
	O_ENUM(   "lookup.protocol",          lookup.protocol,              "nginx",   lookup_protocols),
	O_DUR(    "lookup.timeout",           lookup.timeout_ms,            "2s",      1, MIN_MS),
	O_FUNC(   "lookup.headers",           cfg_parse_lookup_headers,     NULL),
	O_FUNC(   "lookup.send_password",     cfg_parse_lookup_send_password, NULL),
	O_DUR(    "lookup.cache_ttl",         lookup.cache_ttl_ms,          "0",       0, DAY_MS),
	O_DUR(    "lookup.negative_ttl",      lookup.negative_ttl_ms,       "0",       0, DAY_MS),
	O_INT(    "lookup.max_inflight",      lookup.max_inflight,          "32",      1, 1024),
	O_ENUM(   "lookup.on_failure",        lookup.on_failure,            "unavailable", lookup_failure_modes),
	O_INT(    "lookup.breaker_failures",  lookup.breaker_failures,      "5",       1, 1000),
	O_DUR(    "lookup.breaker_wait",      lookup.breaker_wait_ms,       "10s",     100, HOUR_MS),
	O_STR(    "lookup.ca",                lookup.ca,                    NULL,      cfg_check_lookup_ca),
	O_INT(    "lookup.max_backends",      lookup.max_backends,          "64",      1, 512),
	O_FUNC(   "lookup.backend_defaults",  cfg_parse_lookup_backend_defaults, "{}"),

	O_GROUP(  "timeouts"),
	O_DUR(    "timeouts.handshake",       timeouts.handshake_ms,        "10s",     SEC_MS, 10 * MIN_MS),
	O_DUR(    "timeouts.login",           timeouts.login_ms,            "60s",     SEC_MS, HOUR_MS),
	O_DUR(    "timeouts.idle",            timeouts.idle_ms,             "30m",     SEC_MS, DAY_MS),
	O_DUR(    "timeouts.backend_connect", timeouts.backend_connect_ms,  "5s",      SEC_MS, 10 * MIN_MS),
	O_DUR(    "timeouts.backend_login",   timeouts.backend_login_ms,    "15s",     SEC_MS, 10 * MIN_MS),
	O_DUR(    "timeouts.drain",           timeouts.drain_ms,            "60s",     SEC_MS, HOUR_MS),
	O_DUR(    "timeouts.drain_quiet",     timeouts.drain_quiet_ms,      "2s",      100, MIN_MS),
	O_DUR(    "timeouts.drain_spread",    timeouts.drain_spread_ms,     "10s",     0, HOUR_MS),

	O_GROUP(  "admin"),
	O_STR(    "admin.socket",             admin.socket,                 NULL,      cfg_check_admin_socket),
	O_STR(    "admin.http",               admin.http,                   NULL,      cfg_check_admin_http),

	O_GROUP(  "limits"),
	O_INT(    "limits.max_bad_commands",  limits.max_bad_commands,      "3",       1, 100),
	O_INT(    "limits.max_auth_failures", limits.max_auth_failures,     "3",       1, 100),

	O_GROUP(  "policy"),
	O_ENUM(   "policy.protocol_lock",     policy.protocol_lock,         "off",     protocol_lock_modes),
	O_DUR(    "policy.lock_expire",       policy.lock_expire_ms,        "90d",     0, 3650 * DAY_MS),
	O_FUNC(   "policy.protocols",         cfg_parse_protocol_rules,     NULL),
	O_STR(    "policy.protocols_file",    policy.protocols_file,        NULL,      cfg_check_protocols_file),
	O_FUNC(   "policy.protocols_default", cfg_parse_protocols_default,  "[\"imap\", \"pop3\"]"),
	O_INT(    "policy.max_connections_per_ip", policy.max_connections_per_ip, "0", 0, 1000000),
	O_INT(    "policy.max_sessions_per_user",  policy.max_sessions_per_user,  "0", 0, 100000),
	O_ENUM(   "policy.sieve_lock",        policy.sieve_lock,            "exempt",  sieve_lock_modes),
	O_ENUM(   "policy.sieve_sessions",    policy.sieve_sessions,        "exempt",  sieve_sessions_modes),
	O_FUNC(   "policy.allow",             cfg_parse_policy_allow,       NULL),
	O_FUNC(   "policy.deny",              cfg_parse_policy_deny,        NULL),
	O_INT(    "policy.ipv6_prefix",       policy.ipv6_prefix,           "64",      32, 128),
	O_GROUP(  "policy.throttle"),
	O_INT(    "policy.throttle.ip_user_limit", policy.throttle.ip_user_limit, "5",  0, 1000),
	O_INT(    "policy.throttle.ip_limit", policy.throttle.ip_limit,     "50",      0, 1000000),
	O_DUR(    "policy.throttle.window",   policy.throttle.window_ms,    "15m",     SEC_MS, DAY_MS),
	O_DUR(    "policy.throttle.delay_base", policy.throttle.delay_base_ms, "1s",   0, MIN_MS),
	O_DUR(    "policy.throttle.delay_max", policy.throttle.delay_max_ms, "15s",    0, 5 * MIN_MS),
};
/* clang-format on */

/* OPT_ENUM writes an int into an enum field: same size, and C11 6.5p7
 * allows the access through the signed or unsigned variant. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum log_level is an int");
_Static_assert(sizeof(enum protocol_lock_mode) == sizeof(int), "enum protocol_lock_mode is an int");
_Static_assert(sizeof(enum state_unavailable_mode) == sizeof(int), "an int");
_Static_assert(sizeof(enum route_lookup_mode) == sizeof(int), "an int");
_Static_assert(sizeof(enum lookup_protocol) == sizeof(int), "an int");
_Static_assert(sizeof(enum sieve_lock_mode) == sizeof(int), "an int");
_Static_assert(sizeof(enum sieve_sessions_mode) == sizeof(int), "an int");

static const struct opt *
opt_find(const char *path)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (strcmp(opts[i].path, path) == 0)
			return &opts[i];
	return NULL;
}

/* "1s", "10m", "1d": bounds as a person writes them. */
static const char *
fmt_ms(char *buf, size_t len, int64_t ms)
{
	if (ms == 0)
		snprintf(buf, len, "0");
	else if (ms % DAY_MS == 0)
		snprintf(buf, len, "%lldd", (long long)(ms / DAY_MS));
	else if (ms % HOUR_MS == 0)
		snprintf(buf, len, "%lldh", (long long)(ms / HOUR_MS));
	else if (ms % MIN_MS == 0)
		snprintf(buf, len, "%lldm", (long long)(ms / MIN_MS));
	else if (ms % SEC_MS == 0)
		snprintf(buf, len, "%llds", (long long)(ms / SEC_MS));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
	return buf;
}

/*
 * Set option o from s, or from its default when s is NULL (defaults go
 * through the same code, so they obey the same bounds).  libconfig 1.5
 * wraps integer literals beyond 32 bits without a word; the bounds catch
 * most of what that lets through.
 */
static void
opt_set(struct ctx *x, const struct opt *o, const config_setting_t *s)
{
	void *field = (char *)x->cfg + o->off;
	const char *str = s ? config_setting_get_string(s) : o->def; /* NULL if not a string */
	char lo[32], hi[32];

	switch (o->kind) {
	case OPT_STRING: {
		char **dst = field;

		if (str == NULL) {
			cfg_err(x, s, "'%s' must be a string", o->path);
			return;
		}
		if (*str == '\0') {
			cfg_err(x, s, "'%s' must not be empty", o->path);
			return;
		}
		if (s != NULL && o->check != NULL)
			o->check(x, s, str);
		free(*dst);
		if ((*dst = strdup(str)) == NULL)
			cfg_err(x, s, "out of memory");
		return;
	}
	case OPT_ENUM: {
		char list[128] = "";

		for (const struct opt_name *n = o->names; str != NULL && n->name != NULL; n++) {
			if (strcmp(n->name, str) != 0)
				continue;
			if (n->refused != NULL)
				cfg_err(x, s, "'%s' = \"%s\": %s", o->path, str, n->refused);
			else
				*(int *)field = n->value;
			return;
		}
		for (const struct opt_name *n = o->names; n->name != NULL; n++) {
			if (n->refused != NULL)
				continue;
			if (*list != '\0')
				strncat(list, ", ", sizeof(list) - strlen(list) - 1);
			strncat(list, "\"", sizeof(list) - strlen(list) - 1);
			strncat(list, n->name, sizeof(list) - strlen(list) - 1);
			strncat(list, "\"", sizeof(list) - strlen(list) - 1);
		}
		cfg_err(x, s, "'%s' must be one of %s", o->path, list);
		return;
	}
	case OPT_INT: {
		long long v;

		if (s != NULL && !is_int(s)) {
			cfg_err(x, s, "'%s' must be an integer %lld..%lld", o->path,
			        (long long)o->min, (long long)o->max);
			return;
		}
		v = s ? config_setting_get_int64(s) : strtoll(o->def, NULL, 10);
		if (v < o->min || v > o->max) {
			cfg_err(x, s, "'%s' must be between %lld and %lld", o->path,
			        (long long)o->min, (long long)o->max);
			return;
		}
		*(int *)field = (int)v;
		return;
	}
	case OPT_DURATION: {
		uint64_t ms;

		fmt_ms(lo, sizeof(lo), o->min);
		fmt_ms(hi, sizeof(hi), o->max);
		if (s != NULL && is_int(s)) {
			/* a bare number is seconds, as in the string form */
			long long v = config_setting_get_int64(s);

			if (v < 0 || (uint64_t)v > UINT64_MAX / 1000) {
				cfg_err(x, s, "'%s' must be between %s and %s", o->path, lo, hi);
				return;
			}
			ms = (uint64_t)v * 1000;
		} else if (str == NULL || config_duration_ms(str, &ms) < 0) {
			cfg_err(
			    x, s,
			    "'%s' must be a duration such as \"500ms\", \"30s\", \"15m\", \"2h\" "
			    "or \"1d\"",
			    o->path);
			return;
		}
		if (ms < (uint64_t)o->min || ms > (uint64_t)o->max) {
			cfg_err(x, s, "'%s' must be between %s and %s", o->path, lo, hi);
			return;
		}
		*(uint64_t *)field = ms;
		return;
	}
	case OPT_WORKERS: {
		long long v = -1;

		if (str != NULL && strcmp(str, "auto") == 0) {
			/* one loop per core; clamped, a huge box gains nothing past that */
			v = sysconf(_SC_NPROCESSORS_ONLN);
			v = v < o->min ? o->min : v > o->max ? o->max : v;
		} else if (s != NULL && is_int(s)) {
			v = config_setting_get_int64(s);
		} else if (str != NULL && is_digit(*str)) {
			char *end;

			v = strtoll(str, &end, 10);
			if (*end != '\0')
				v = -1;
		}
		if (v < o->min || v > o->max) {
			cfg_err(x, s, "'%s' must be \"auto\" or a number %lld..%lld", o->path,
			        (long long)o->min, (long long)o->max);
			return;
		}
		*(int *)field = (int)v;
		return;
	}
	case OPT_FUNC:
		o->list(x, s);
		return;
	case OPT_GROUP:
	case OPT_LIST:
		return;
	}
}

/* Report the members of group that the table does not know. */
static void
check_unknown(struct ctx *x, const config_setting_t *group, const char *prefix)
{
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *m = config_setting_get_elem(group, i);
		const struct opt *o;
		char path[256];

		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
		         config_setting_name(m));
		if ((o = opt_find(path)) == NULL)
			cfg_err(x, m, "unknown setting '%s'", path);
		else if (o->kind == OPT_GROUP && config_setting_is_group(m))
			check_unknown(x, m, path);
	}
}

/* ---- the snapshot ----------------------------------------------------- */

static void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->user);
	free(cfg->state);
	free(cfg->state_password_file);
	free(cfg->state_prefix);
	free(cfg->state_user);
	free(cfg->sentinel_password_file);
	free(cfg->admin.socket);
	free(cfg->state_fallback);
	for (size_t i = 0; i < cfg->tls.ncerts; i++) {
		free(cfg->tls.certs[i].cert);
		free(cfg->tls.certs[i].key);
	}
	free(cfg->tls.certs);
	free(cfg->tls.ciphers);
	free(cfg->tls.ciphersuites);
	free(cfg->tls.groups);
	free(cfg->tls.ticket_key_file);
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].listen);
		free(cfg->listeners[i].name);
		free(cfg->listeners[i].trusted);
		for (size_t k = 0; k < cfg->listeners[i].ncerts; k++) {
			free(cfg->listeners[i].certs[k].cert);
			free(cfg->listeners[i].certs[k].key);
		}
		free(cfg->listeners[i].certs);
		free(cfg->listeners[i].lookup_url);
	}
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->nbackends; i++)
		cfg_backend_strings_free(&cfg->backends[i]);
	free(cfg->backends);
	cfg_lookup_free(&cfg->lookup);
	route_table_free(&cfg->routes);
	for (size_t i = 0; i < cfg->npools; i++)
		free(cfg->pools[i].name);
	free(cfg->pools);
	free(cfg->route_map);
	free(cfg->sieve_extensions);
	for (size_t i = 0; i < cfg->policy.nprotocols; i++) {
		free(cfg->policy.protocols[i].user);
		free(cfg->policy.protocols[i].domain);
	}
	free(cfg->policy.protocols);
	free(cfg->policy.protocols_file);
	free(cfg->policy.allow);
	free(cfg->policy.deny);
	free(cfg->admin.http);
	free(cfg);
}

/* Checks across sections, once each section is read. */
static void
check_whole(struct ctx *x)
{
	struct config *cfg = x->cfg;

	/* a listener whose protocol no backend serves could never log anyone in */
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_conf *l = &cfg->listeners[i];
		bool served = false;

		if (l->listen == NULL)
			continue;
		for (size_t j = 0; j < cfg->nbackends; j++)
			if (cfg->backends[j].port[l->proto] != 0)
				served = true;
		if (!served && cfg->nbackends > 0)
			cfg_err(x, x->lst_set[i], "listener \"%s\": no backend serves %s",
			        l->listen, proto_name(l->proto));
	}
	cfg_check_policy(x);
}

/* backends and routes may be left out where a lookup service names the
 * backends (cfg_lookup_finish() checks that every listener has one). */
static bool
lookup_may_route(const char *path)
{
	return strcmp(path, "backends") == 0 || strcmp(path, "routes") == 0;
}

/* libconfig tree -> struct config; NULL after reporting when anything is wrong. */
static struct config *
config_build(const config_t *lc, const char *name, FILE *errs)
{
	struct ctx x = {.name = name, .incdir = config_get_include_dir(lc), .errs = errs, .lc = lc};
	struct config *cfg;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL || (cfg->path = strdup(name)) == NULL) {
		free(cfg);
		if (errs != NULL)
			fprintf(errs, "%s:0: out of memory\n", name);
		return NULL;
	}
	atomic_init(&cfg->refs, 1);
	x.cfg = cfg;

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (opts[i].def != NULL)
			opt_set(&x, &opts[i], NULL);

	check_unknown(&x, config_root_setting(lc), "");

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];
		const config_setting_t *s = config_lookup(lc, o->path);

		switch (o->kind) {
		case OPT_GROUP:
			if (s != NULL && !config_setting_is_group(s))
				cfg_err(&x, s, "'%s' must be a group { ... }", o->path);
			break;
		case OPT_LIST:
			if (s != NULL && !config_setting_is_list(s))
				cfg_err(&x, s, "'%s' must be a list ( { ... }, ... )", o->path);
			else if (s != NULL && config_setting_length(s) > 0)
				o->list(&x, s);
			else if (lookup_may_route(o->path) && x.nroute_lists < 2)
				/* cfg_lookup_finish() decides */
				x.route_lists[x.nroute_lists++] = (struct route_list_left){
				    .path = o->path, .noun = o->noun, .set = s};
			else
				cfg_err(&x, s,
				        s == NULL ? "missing '%s': at least one %s is required"
				                  : "'%s' is empty: at least one %s is required",
				        o->path, o->noun);
			break;
		default:
			if (s != NULL)
				opt_set(&x, o, s);
			break;
		}
	}
	cfg_lookup_finish(&x);
	/* across sections only once each is sound: no echoes of one mistake */
	if (x.nerr == 0)
		check_whole(&x);

	free(x.lst_set);
	free(x.be_set);
	if (x.nerr > 0) {
		perr_flush(&x);
		config_free(cfg);
		return NULL;
	}
	free(x.errv);
	return cfg;
}

/* Report a libconfig read or syntax error. */
static void
report_libconfig(const config_t *lc, const char *name, int saved_errno, FILE *errs)
{
	char dir[PATH_MAX];

	if (errs == NULL)
		return;
	if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
		fprintf(errs, "%s:0: cannot read: %s\n", name,
		        saved_errno ? strerror(saved_errno) : config_error_text(lc));
	else if (config_error_file(lc) != NULL)
		fprintf(errs, "%s%s:%d: %s\n",
		        include_prefix(config_get_include_dir(lc), name, config_error_file(lc), dir,
		                       sizeof(dir)),
		        config_error_file(lc), config_error_line(lc), config_error_text(lc));
	else
		fprintf(errs, "%s:%d: %s\n", name, config_error_line(lc), config_error_text(lc));
	fflush(errs);
}

struct config *
config_load(const char *path, FILE *errs)
{
	config_t lc;
	struct config *cfg = NULL;
	char *dir = strdup(path), *slash;

	config_init(&lc);
	/* @include "routes.conf" is relative to this file, not to the cwd */
	if (dir != NULL && (slash = strrchr(dir, '/')) != NULL) {
		if (slash == dir)
			slash[1] = '\0'; /* "/postern.conf": the root */
		else
			*slash = '\0';
		config_set_include_dir(&lc, dir);
	}
	free(dir);
	errno = 0;
	if (!config_read_file(&lc, path))
		report_libconfig(&lc, path, errno, errs);
	else
		cfg = config_build(&lc, path, errs);
	config_destroy(&lc);
	return cfg;
}

char *
config_admin_socket(const char *path)
{
	config_t lc;
	const char *v = NULL;
	char *out = NULL;

	config_init(&lc);
	if (config_read_file(&lc, path) && config_lookup_string(&lc, "admin.socket", &v) &&
	    v != NULL && *v != '\0')
		out = strdup(v);
	config_destroy(&lc);
	return out;
}

struct config *
config_parse(const char *text, const char *name, FILE *errs)
{
	config_t lc;
	struct config *cfg = NULL;

	config_init(&lc);
	if (!config_read_string(&lc, text))
		report_libconfig(&lc, name, 0, errs);
	else
		cfg = config_build(&lc, name, errs);
	config_destroy(&lc);
	return cfg;
}

struct config *
config_ref(struct config *cfg)
{
	/* relaxed: whoever passes cfg on already holds a reference */
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
	return cfg;
}

void
config_unref(struct config **cfgp)
{
	struct config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	/* acq_rel: the last holder must see every other holder's reads done */
	if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
		config_free(cfg);
}
