/*
 * config.c: the libconfig file -> struct config.  Owns the option table
 * (defaults and bounds, mirrored by etc/postern.conf), validation, and the
 * refcounted snapshot.  Prints to errs only, never to the log, and resolves
 * backend host names here, once, so that nothing after startup waits on DNS.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <libconfig.h>
#include <openssl/tls1.h>

#include "config.h"
#include "route.h"

#define NAME_MAX_LEN 64 /* backend and listener names: they go unquoted into logs */

/* One error, kept until the end so that all come out in file order. */
struct cerr {
	const char *file; /* borrowed: libconfig's file name or the caller's name */
	unsigned line;    /* 0: not tied to a line */
	unsigned seq;     /* keeps the order of errors on one line */
	char *msg;        /* owned */
};

struct ctx {
	const char *name;   /* borrowed: path or the name given, for messages */
	const char *incdir; /* borrowed: where @include looks, or NULL */
	FILE *errs;         /* borrowed; NULL: count only */
	struct cerr *errv;  /* owned: [nkept] */
	size_t nkept, errcap;
	size_t nerr;        /* all errors, kept or not (out of memory) */
	struct config *cfg; /* being built; owned until returned */
	const config_t *lc; /* borrowed: the parsed file, for checks across sections */
	/* borrowed from libconfig: the entry each listener and backend came from */
	const config_setting_t **lst_set; /* owned array: [nlisteners] */
	const config_setting_t **be_set;  /* owned array: [nbackends] */
};

static void perr(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
perr(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
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
	default:
		return "?";
	}
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
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

static void check_user(struct ctx *x, const config_setting_t *s, const char *v);
static void check_ticket_key_file(struct ctx *x, const config_setting_t *s, const char *v);
static void parse_certificates(struct ctx *x, const config_setting_t *s);
static void parse_listeners(struct ctx *x, const config_setting_t *s);
static void parse_backends(struct ctx *x, const config_setting_t *s);
static void parse_routes(struct ctx *x, const config_setting_t *s);
static void parse_pools(struct ctx *x, const config_setting_t *s);
static void load_route_map(struct ctx *x, const config_setting_t *s, const char *v);
static void read_cidr_list(struct ctx *x, const config_setting_t *s, const char *path,
                           struct cidr_conf **out, size_t *n_out);
static void check_state(struct ctx *x, const config_setting_t *s, const char *v);
static void check_protocols_file(struct ctx *x, const config_setting_t *s, const char *v);
static void parse_protocol_rules(struct ctx *x, const config_setting_t *s);
static void parse_protocols_default(struct ctx *x, const config_setting_t *s);
static void parse_policy_allow(struct ctx *x, const config_setting_t *s);
static void parse_policy_deny(struct ctx *x, const config_setting_t *s);

static const struct opt_name protocol_lock_modes[] = {
    {"off", PLOCK_OFF, NULL},
    {"concurrent", PLOCK_CONCURRENT, NULL},
    {"sticky", PLOCK_STICKY, NULL},
    {"static", PLOCK_STATIC, NULL},
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

#define OFF(f)  offsetof(struct config, f)
#define SEC_MS  1000LL
#define MIN_MS  (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)

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
	O_STR(    "user",                     user,                         NULL,      check_user),
	O_STR(    "state",                    state,                        NULL,      check_state),
	O_ENUM(   "log_level",                log_level,                    "info",    log_levels),

	O_GROUP(  "tls"),
	O_LIST(   "tls.certificates",         parse_certificates,           "certificate"),
	O_ENUM(   "tls.min_version",          tls.min_version,              "TLSv1.2", tls_versions),
	O_STR(    "tls.ciphers",              tls.ciphers,                  DEF_CIPHERS, NULL),
	O_STR(    "tls.ciphersuites",         tls.ciphersuites,             DEF_CIPHERSUITES, NULL),
	O_STR(    "tls.groups",               tls.groups,                   DEF_GROUPS, NULL),
	O_STR(    "tls.ticket_key_file",      tls.ticket_key_file,          NULL,      check_ticket_key_file),
	O_DUR(    "tls.session_timeout",      tls.session_timeout_ms,       "1h",      MIN_MS, 7 * DAY_MS),

	O_LIST(   "listeners",                parse_listeners,              "listener"),
	O_LIST(   "backends",                 parse_backends,               "backend"),
	O_FUNC(   "pools",                    parse_pools,                  NULL),
	O_LIST(   "routes",                   parse_routes,                 "route"),
	O_STR(    "route_map",                route_map,                    NULL,      load_route_map),

	O_GROUP(  "timeouts"),
	O_DUR(    "timeouts.handshake",       timeouts.handshake_ms,        "10s",     SEC_MS, 10 * MIN_MS),
	O_DUR(    "timeouts.login",           timeouts.login_ms,            "60s",     SEC_MS, HOUR_MS),
	O_DUR(    "timeouts.idle",            timeouts.idle_ms,             "30m",     SEC_MS, DAY_MS),
	O_DUR(    "timeouts.backend_connect", timeouts.backend_connect_ms,  "5s",      SEC_MS, 10 * MIN_MS),
	O_DUR(    "timeouts.backend_login",   timeouts.backend_login_ms,    "15s",     SEC_MS, 10 * MIN_MS),

	O_GROUP(  "limits"),
	O_INT(    "limits.max_bad_commands",  limits.max_bad_commands,      "3",       1, 100),
	O_INT(    "limits.max_auth_failures", limits.max_auth_failures,     "3",       1, 100),

	O_GROUP(  "policy"),
	O_ENUM(   "policy.protocol_lock",     policy.protocol_lock,         "off",     protocol_lock_modes),
	O_DUR(    "policy.lock_expire",       policy.lock_expire_ms,        "90d",     0, 3650 * DAY_MS),
	O_FUNC(   "policy.protocols",         parse_protocol_rules,         NULL),
	O_STR(    "policy.protocols_file",    policy.protocols_file,        NULL,      check_protocols_file),
	O_FUNC(   "policy.protocols_default", parse_protocols_default,      "[\"imap\", \"pop3\"]"),
	O_INT(    "policy.max_connections_per_ip", policy.max_connections_per_ip, "0", 0, 1000000),
	O_INT(    "policy.max_sessions_per_user",  policy.max_sessions_per_user,  "0", 0, 100000),
	O_FUNC(   "policy.allow",             parse_policy_allow,           NULL),
	O_FUNC(   "policy.deny",              parse_policy_deny,            NULL),
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

static bool
is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
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
			perr(x, s, "'%s' must be a string", o->path);
			return;
		}
		if (*str == '\0') {
			perr(x, s, "'%s' must not be empty", o->path);
			return;
		}
		if (s != NULL && o->check != NULL)
			o->check(x, s, str);
		free(*dst);
		if ((*dst = strdup(str)) == NULL)
			perr(x, s, "out of memory");
		return;
	}
	case OPT_ENUM: {
		char list[128] = "";

		for (const struct opt_name *n = o->names; str != NULL && n->name != NULL; n++) {
			if (strcmp(n->name, str) != 0)
				continue;
			if (n->refused != NULL)
				perr(x, s, "'%s' = \"%s\": %s", o->path, str, n->refused);
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
		perr(x, s, "'%s' must be one of %s", o->path, list);
		return;
	}
	case OPT_INT: {
		long long v;

		if (s != NULL && !is_int(s)) {
			perr(x, s, "'%s' must be an integer %lld..%lld", o->path, (long long)o->min,
			     (long long)o->max);
			return;
		}
		v = s ? config_setting_get_int64(s) : strtoll(o->def, NULL, 10);
		if (v < o->min || v > o->max) {
			perr(x, s, "'%s' must be between %lld and %lld", o->path, (long long)o->min,
			     (long long)o->max);
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
				perr(x, s, "'%s' must be between %s and %s", o->path, lo, hi);
				return;
			}
			ms = (uint64_t)v * 1000;
		} else if (str == NULL || config_duration_ms(str, &ms) < 0) {
			perr(x, s,
			     "'%s' must be a duration such as \"500ms\", \"30s\", \"15m\", \"2h\" "
			     "or \"1d\"",
			     o->path);
			return;
		}
		if (ms < (uint64_t)o->min || ms > (uint64_t)o->max) {
			perr(x, s, "'%s' must be between %s and %s", o->path, lo, hi);
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
			perr(x, s, "'%s' must be \"auto\" or a number %lld..%lld", o->path,
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
			perr(x, m, "unknown setting '%s'", path);
		else if (o->kind == OPT_GROUP && config_setting_is_group(m))
			check_unknown(x, m, path);
	}
}

/* Report members of a list entry g not among keys. */
static void
check_keys(struct ctx *x, const config_setting_t *g, const char *const *keys, const char *noun)
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *m = config_setting_get_elem(g, i);
		size_t k;

		for (k = 0; keys[k] != NULL; k++)
			if (strcmp(keys[k], config_setting_name(m)) == 0)
				break;
		if (keys[k] == NULL)
			perr(x, m, "unknown setting '%s' in a %s", config_setting_name(m), noun);
	}
}

/*
 * The string member key of entry g, or NULL: absent (*bad untouched), or
 * not a non-empty string (reported, *bad set).
 */
static const char *
get_string(struct ctx *x, const config_setting_t *g, const char *key, const char *what, bool *bad)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	const char *v;

	if (m == NULL)
		return NULL;
	if ((v = config_setting_get_string(m)) == NULL) {
		perr(x, m, "%s: '%s' must be a string", what, key);
		*bad = true;
		return NULL;
	}
	if (*v == '\0') {
		perr(x, m, "%s: '%s' must not be empty", what, key);
		*bad = true;
		return NULL;
	}
	return v;
}

/* A required string member: NULL after reporting when absent or bad. */
static const char *
need_string(struct ctx *x, const config_setting_t *g, const char *key, const char *what)
{
	bool bad = false;
	const char *v = get_string(x, g, key, what, &bad);

	if (v == NULL && !bad)
		perr(x, g, "%s: missing '%s'", what, key);
	return v;
}

static char *
dup_or_report(struct ctx *x, const config_setting_t *s, const char *v)
{
	char *d = strdup(v);

	if (d == NULL)
		perr(x, s, "out of memory");
	return d;
}

/* Names go unquoted into logs (lst=, backend=): keep them plain. */
static bool
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Readable now, by whoever runs the check; a missing file fails at load,
 * not at the first handshake. */
static void
check_readable(struct ctx *x, const config_setting_t *s, const char *what, const char *path)
{
	if (access(path, R_OK) != 0)
		perr(x, s, "%s \"%s\" is not readable: %s", what, path, strerror(errno));
}

static void
check_user(struct ctx *x, const config_setting_t *s, const char *v)
{
	/* fail at load, not after binding as root */
	if (getpwnam(v) == NULL)
		perr(x, s, "'user': no such user \"%s\"", v);
}

/* ---- lists ------------------------------------------------------------ */

/* A list of { cert; key; } groups into *certs_out / *n_out. */
static void
read_cert_list(struct ctx *x, const config_setting_t *list, struct cert_conf **certs_out,
               size_t *n_out)
{
	static const char *const keys[] = {"cert", "key", NULL};
	int n = config_setting_length(list);

	if (n <= 0) {
		perr(x, list, "certificates: the list is empty");
		return;
	}
	if ((*certs_out = calloc((size_t)n, sizeof(**certs_out))) == NULL) {
		perr(x, list, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		struct cert_conf *cc = &(*certs_out)[(*n_out)++];
		const char *cert, *key;

		if (!config_setting_is_group(g)) {
			perr(x, g,
			     "certificate: each entry must be a group { cert = ...; key = ...; }");
			continue;
		}
		check_keys(x, g, keys, "certificate");
		if ((cert = need_string(x, g, "cert", "certificate")) != NULL) {
			check_readable(x, config_setting_get_member(g, "cert"), "certificate file",
			               cert);
			cc->cert = dup_or_report(x, g, cert);
		}
		if ((key = need_string(x, g, "key", "certificate")) != NULL) {
			check_readable(x, config_setting_get_member(g, "key"), "key file", key);
			cc->key = dup_or_report(x, g, key);
		}
	}
}

static void
parse_certificates(struct ctx *x, const config_setting_t *list)
{
	read_cert_list(x, list, &x->cfg->tls.certs, &x->cfg->tls.ncerts);
}

static void
check_ticket_key_file(struct ctx *x, const config_setting_t *s, const char *v)
{
	check_readable(x, s, "ticket key file", v);
}

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static uint16_t
addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)a)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)a)->sin6_port);
}

/* The first of listeners[0..n) bound to addr, or -1. */
static int64_t
listener_index(const struct config *cfg, size_t n, const struct sockaddr_storage *addr)
{
	for (size_t i = 0; i < n; i++)
		if (cfg->listeners[i].addrlen != 0 && same_addr(&cfg->listeners[i].addr, addr))
			return (int64_t)i;
	return -1;
}

static void
parse_listeners(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {
	    "listen",       "protocol",       "tls",     "name", "allow_plaintext_auth",
	    "certificates", "proxy_protocol", "trusted", NULL};
	struct config *cfg = x->cfg;
	int n = config_setting_length(list);

	cfg->listeners = calloc((size_t)n, sizeof(*cfg->listeners));
	x->lst_set = calloc((size_t)n, sizeof(*x->lst_set));
	if (cfg->listeners == NULL || x->lst_set == NULL) {
		perr(x, list, "out of memory");
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
			perr(x, g, "listener: each entry must be a group { listen = ...; }");
			continue;
		}
		x->lst_set[cfg->nlisteners++] = g;
		check_keys(x, g, keys, "listener");

		if ((listen = need_string(x, g, "listen", "listener")) != NULL) {
			m = config_setting_get_member(g, "listen");
			lc->listen = dup_or_report(x, m, listen);
			if (config_parse_listen(listen, &lc->addr, &lc->addrlen, &err) < 0) {
				perr(x, m, "listener: bad listen address \"%s\": %s", listen, err);
			} else {
				addr_ok = true;
				/* each worker binds every listener with SO_REUSEPORT, so a
				 * duplicate would not fail to bind: it would quietly split
				 * the connections between two configurations */
				if ((j = listener_index(cfg, cfg->nlisteners - 1, &lc->addr)) >= 0)
					perr(x, m,
					     "listener: duplicate listen address \"%s\" (first on "
					     "line %u)",
					     listen, config_setting_source_line(x->lst_set[j]));
			}
		}

		if ((proto = need_string(x, g, "protocol", "listener")) != NULL) {
			if (strcmp(proto, "imap") == 0)
				lc->proto = PROTO_IMAP;
			else if (strcmp(proto, "pop3") == 0)
				lc->proto = PROTO_POP3;
			else
				perr(x, config_setting_get_member(g, "protocol"),
				     "listener: 'protocol' must be \"imap\" or \"pop3\"");
		}

		lc->tls = TLSM_IMPLICIT;
		if ((tls = get_string(x, g, "tls", "listener", &bad)) != NULL) {
			if (strcmp(tls, "implicit") == 0)
				lc->tls = TLSM_IMPLICIT;
			else if (strcmp(tls, "starttls") == 0)
				lc->tls = TLSM_STARTTLS;
			else
				/* no plaintext-only listener: passwords never cross in clear */
				perr(x, config_setting_get_member(g, "tls"),
				     "listener: 'tls' must be \"implicit\" or \"starttls\"");
		}

		if ((m = config_setting_get_member(g, "allow_plaintext_auth")) != NULL) {
			if (config_setting_type(m) != CONFIG_TYPE_BOOL)
				perr(x, m,
				     "listener: 'allow_plaintext_auth' must be true or false");
			else if (lc->tls != TLSM_STARTTLS && config_setting_get_bool(m))
				/* an implicit-TLS listener never sees plaintext: a
				 * setting that does nothing hides a misunderstanding */
				perr(x, m,
				     "listener: 'allow_plaintext_auth' needs tls = \"starttls\"");
			else
				lc->allow_plaintext_auth = config_setting_get_bool(m);
		}

		/* Behind a load balancer: a PROXY header, from the trusted only. */
		if ((m = config_setting_get_member(g, "proxy_protocol")) != NULL) {
			if (config_setting_type(m) != CONFIG_TYPE_BOOL)
				perr(x, m, "listener: 'proxy_protocol' must be true or false");
			else
				lc->proxy_protocol = config_setting_get_bool(m);
		}
		if ((m = config_setting_get_member(g, "trusted")) != NULL) {
			read_cidr_list(x, m, "trusted", &lc->trusted, &lc->ntrusted);
			if (!lc->proxy_protocol)
				perr(x, m, "listener: 'trusted' needs proxy_protocol = true");
		} else if (lc->proxy_protocol) {
			perr(x, config_setting_get_member(g, "proxy_protocol"),
			     "listener: proxy_protocol needs 'trusted' = [ the load balancers' "
			     "networks ]");
		}

		if ((m = config_setting_get_member(g, "certificates")) != NULL) {
			/* this listener's own set, chosen by SNI like tls.certificates */
			if (!config_setting_is_list(m))
				perr(x, m,
				     "listener: 'certificates' must be a list ( { cert = ...; "
				     "key = ...; } )");
			else
				read_cert_list(x, m, &lc->certs, &lc->ncerts);
		}

		if ((name = get_string(x, g, "name", "listener", &bad)) != NULL) {
			if (!valid_name(name))
				perr(x, config_setting_get_member(g, "name"),
				     "listener: 'name' must be 1..%d of A-Z a-z 0-9 . _ -",
				     NAME_MAX_LEN);
			lc->name = dup_or_report(x, g, name);
		} else if (addr_ok) {
			char port[8];

			snprintf(port, sizeof(port), "%u", (unsigned)addr_port(&lc->addr));
			lc->name = dup_or_report(x, g, port);
		}
	}
}

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
		perr(x, m, "%s: '%s' must be a port number 1..65535", what, key);
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
		perr(x, s, "%s: cannot resolve host \"%s\": %s", what, be->host,
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

/* The first backend called name, or -1. */
static int64_t
backend_index(const struct config *cfg, const char *name)
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
		perr(x, m, "%s: '%s' must be a duration like \"10s\"", what, key);
		return def;
	}
	if (ms != 0 && (ms < lo || ms > hi)) {
		perr(x, m, "%s: '%s' must be 0 or between %llus and %llus", what, key,
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
		perr(x, m, "%s: '%s' must be an integer %d..%d", what, key, lo, hi);
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
		perr(x, m, "%s: 'forward' must be a string or a list of strings", what);
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
			perr(x, e,
			     "%s: 'forward' takes \"none\", \"id\", \"xclient\", \"proxy-v1\" "
			     "or \"proxy-v2\"",
			     what);
			continue;
		}
		be->forward |= kinds[k].bit;
	}
	if ((be->forward & FORWARD_PROXY_V1) && (be->forward & FORWARD_PROXY_V2))
		perr(x, m, "%s: 'forward' may hold one PROXY version, not both", what);
}

static void
parse_backends(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {
	    "name",        "host",    "imap", "pop3",           "tls",           "ca",
	    "verify_name", "cert",    "key",  "check_interval", "check_timeout", "rise",
	    "fall",        "forward", NULL};
	struct config *cfg = x->cfg;
	int n = config_setting_length(list);

	cfg->backends = calloc((size_t)n, sizeof(*cfg->backends));
	x->be_set = calloc((size_t)n, sizeof(*x->be_set));
	if (cfg->backends == NULL || x->be_set == NULL) {
		perr(x, list, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		struct backend_conf *be = &cfg->backends[cfg->nbackends];
		const char *name, *host, *tls, *ca;
		char what[NAME_MAX_LEN + 16] = "backend";
		bool bad_tls = false, bad_ca = false;
		int nports = 0;
		int64_t j;

		if (!config_setting_is_group(g)) {
			perr(x, g, "backend: each entry must be a group { name = ...; }");
			continue;
		}
		x->be_set[cfg->nbackends++] = g;
		check_keys(x, g, keys, "backend");

		if ((name = need_string(x, g, "name", "backend")) != NULL) {
			const config_setting_t *m = config_setting_get_member(g, "name");

			if (!valid_name(name)) {
				perr(x, m, "backend: 'name' must be 1..%d of A-Z a-z 0-9 . _ -",
				     NAME_MAX_LEN);
			} else {
				/* the name, not the position, is what routing hashes */
				snprintf(what, sizeof(what), "backend '%s'", name);
				if ((j = backend_index(cfg, name)) >= 0)
					perr(x, m, "duplicate backend name '%s' (first on line %u)",
					     name, config_setting_source_line(x->be_set[j]));
			}
			be->name = dup_or_report(x, m, name);
		}

		if ((host = need_string(x, g, "host", what)) != NULL)
			be->host = dup_or_report(x, g, host);

		for (int p = 0; p < PROTO__COUNT; p++)
			if (get_port(x, g, proto_name(p), what, &be->port[p]) != 0)
				nports++;
		if (nports == 0)
			perr(x, g, "%s: needs an 'imap' or a 'pop3' port", what);

		be->tls = TLSM_NONE;
		if ((tls = get_string(x, g, "tls", what, &bad_tls)) != NULL) {
			const config_setting_t *m = config_setting_get_member(g, "tls");

			if (strcmp(tls, "implicit") == 0)
				be->tls = TLSM_IMPLICIT;
			else if (strcmp(tls, "starttls") == 0)
				be->tls = TLSM_STARTTLS;
			else if (strcmp(tls, "none") != 0)
				perr(x, m,
				     "%s: 'tls' must be \"none\", \"implicit\" or \"starttls\"",
				     what);
		}

		if ((ca = get_string(x, g, "ca", what, &bad_ca)) != NULL) {
			const config_setting_t *m = config_setting_get_member(g, "ca");

			check_readable(x, m, "CA file", ca);
			/* a CA that verifies nothing would read as if the link were checked */
			if (!bad_tls && (tls == NULL || strcmp(tls, "none") == 0))
				perr(x, m, "%s: 'ca' needs backend TLS, but tls = \"none\"", what);
			be->ca = dup_or_report(x, m, ca);
		}

		{
			const char *vn, *cert, *key;
			bool bad_vn = false, bad_cert = false, bad_key = false;

			if ((vn = get_string(x, g, "verify_name", what, &bad_vn)) != NULL) {
				if (be->tls == TLSM_NONE)
					perr(x, config_setting_get_member(g, "verify_name"),
					     "%s: 'verify_name' needs backend TLS", what);
				be->verify_name = dup_or_report(x, g, vn);
			}
			cert = get_string(x, g, "cert", what, &bad_cert);
			key = get_string(x, g, "key", what, &bad_key);
			if ((cert == NULL) != (key == NULL) && !bad_cert && !bad_key)
				perr(x, g, "%s: a client certificate needs both 'cert' and 'key'",
				     what);
			if (cert != NULL) {
				const config_setting_t *m = config_setting_get_member(g, "cert");
				check_readable(x, m, "certificate file", cert);
				if (be->tls == TLSM_NONE)
					perr(x, m, "%s: 'cert' needs backend TLS", what);
				be->cert = dup_or_report(x, m, cert);
			}
			if (key != NULL) {
				const config_setting_t *m = config_setting_get_member(g, "key");
				check_readable(x, m, "key file", key);
				be->key = dup_or_report(x, m, key);
			}
		}

		be_health(x, g, be, what);
		be_forward(x, g, be, what);

		if (be->host != NULL && nports > 0)
			resolve_backend(x, config_setting_get_member(g, "host"), be, what);
	}
}

/* Read the target of route g into pool[]; returns its size, 0 if reported. */
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
		perr(x, wl, "%s: 'weights' must be a list of integers [ 1, 2 ]", what);
		return false;
	}
	if ((size_t)config_setting_length(wl) != n) {
		perr(x, wl, "%s: 'weights' needs one weight per backend (%zu)", what, n);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(wl, (unsigned)i);
		long long v;
		if (!is_int(e) || (v = config_setting_get_int64(e)) < 1 || v > 1000) {
			perr(x, e, "%s: a weight is an integer 1..1000", what);
			return false;
		}
		weights[i] = (uint32_t)v;
	}
	return true;
}

/* top-level pools = ( { name = "eu"; backends = [ "mx1", "mx2" ]; weights = [ 1, 2 ]; } ) */
static void
parse_pools(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {"name", "backends", "weights", NULL};
	struct config *cfg = x->cfg;
	int n;

	if (list == NULL)
		return;
	if (!config_setting_is_list(list)) {
		perr(x, list, "'pools' must be a list ( { name = ...; backends = [ ... ]; } )");
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
			perr(x, g,
			     "pool: each entry must be a group { name = ...; backends = ...; }");
			continue;
		}
		check_keys(x, g, keys, "pool");
		if ((name = need_string(x, g, "name", "pool")) == NULL)
			continue;
		if (!valid_name(name)) {
			perr(x, config_setting_get_member(g, "name"),
			     "pool: 'name' must be 1..%d of A-Z a-z 0-9 . _ -", NAME_MAX_LEN);
			continue;
		}
		if (pool_index(cfg, name) >= 0) {
			perr(x, g, "duplicate pool name '%s'", name);
			continue;
		}
		bl = config_setting_get_member(g, "backends");
		if (bl == NULL || (!config_setting_is_array(bl) && !config_setting_is_list(bl)) ||
		    (len = config_setting_length(bl)) == 0 || len > CONFIG_POOL_MAX) {
			perr(x, bl ? bl : g, "pool '%s': 'backends' must list 1..%d backend names",
			     name, CONFIG_POOL_MAX);
			continue;
		}
		bool bad = false;
		for (int k = 0; k < len; k++) {
			const config_setting_t *e = config_setting_get_elem(bl, k);
			const char *bn = config_setting_get_string(e);
			int64_t idx = bn ? backend_index(cfg, bn) : -1;
			if (idx < 0) {
				perr(x, e, "pool '%s': unknown backend '%s'", name, bn ? bn : "?");
				bad = true;
				continue;
			}
			for (size_t j = 0; j < pc->n; j++)
				if (pc->idx[j] == (size_t)idx) {
					perr(x, e, "pool '%s': backend '%s' is twice in it", name,
					     bn);
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
		pc->name = dup_or_report(x, g, name);
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
	if ((i = backend_index(cfg, name)) < 0)
		return -1;
	pool_out[0] = (size_t)i;
	weights_out[0] = 1;
	*n_out = 1;
	return 0;
}

/* route_map = "FILE": its rules join the table built from `routes`. */
static void
load_route_map(struct ctx *x, const config_setting_t *s, const char *v)
{
	char *text = NULL;
	size_t len = 0;
	FILE *errs;
	int rc;

	if (x->cfg->routes == NULL)
		return; /* routes failed: said already */
	if ((errs = open_memstream(&text, &len)) == NULL) {
		perr(x, s, "out of memory");
		return;
	}
	rc = route_map_load(x->cfg->routes, v, map_resolve, x->cfg, errs);
	fclose(errs);
	/* Each problem of the map as one error of this setting's line. */
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save))
		perr(x, s, "route_map: %s", l);
	if (rc < 0 && (text == NULL || text[0] == '\0'))
		perr(x, s, "route_map: cannot load \"%s\"", v);
	free(text);
}

static size_t
route_target(struct ctx *x, const config_setting_t *g, size_t *pool)
{
	const config_setting_t *be = config_setting_get_member(g, "backend");
	const config_setting_t *pl = config_setting_get_member(g, "pool");
	size_t n = 0;
	int len;

	if ((be == NULL) == (pl == NULL)) {
		perr(x, g, "route: needs exactly one of 'backend' or 'pool'");
		return 0;
	}
	if (be != NULL) {
		const char *name = config_setting_get_string(be);
		int64_t idx;

		if (name == NULL) {
			perr(x, be, "route: 'backend' must be a string");
			return 0;
		}
		if ((idx = backend_index(x->cfg, name)) < 0) {
			perr(x, be, "route: unknown backend '%s'", name);
			return 0;
		}
		pool[0] = (size_t)idx;
		return 1;
	}
	if (config_setting_get_string(pl) != NULL) {
		/* pool = "NAME": a named pool from `pools` */
		int64_t pi = pool_index(x->cfg, config_setting_get_string(pl));
		if (pi < 0) {
			perr(x, pl,
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
		perr(x, pl,
		     "route: 'pool' must be a list of backend names [ \"a\", \"b\" ] or a "
		     "pool's name");
		return 0;
	}
	if ((len = config_setting_length(pl)) == 0) {
		perr(x, pl, "route: 'pool' is empty");
		return 0;
	}
	if (len > ROUTE_POOL_MAX) {
		perr(x, pl, "route: 'pool' has more than %d backends", ROUTE_POOL_MAX);
		return 0;
	}
	bool bad = false;

	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(pl, i);
		const char *name = config_setting_get_string(e);
		int64_t idx;

		if (name == NULL) {
			perr(x, e, "route: 'pool' must be a list of backend names");
			bad = true;
			continue;
		}
		if ((idx = backend_index(x->cfg, name)) < 0) {
			perr(x, e, "route: unknown backend '%s'", name);
			bad = true;
			continue;
		}
		for (size_t j = 0; j < n; j++) {
			if (pool[j] == (size_t)idx) {
				perr(x, e, "route: backend '%s' is twice in the pool", name);
				bad = true;
			}
		}
		pool[n++] = (size_t)idx;
	}
	return bad ? 0 : n;
}

static void
parse_routes(struct ctx *x, const config_setting_t *list)
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
		perr(x, list, "out of memory");
		return;
	}
	/* a backend with a bad name still takes its slot: indices stay true */
	for (size_t i = 0; i < cfg->nbackends; i++)
		names[i] = cfg->backends[i].name ? cfg->backends[i].name : "";
	cfg->routes = route_table_new(names, cfg->nbackends);
	free(names);
	if (cfg->routes == NULL) {
		perr(x, list, "out of memory");
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
			perr(x, g,
			     "route: each entry must be a group { domain = ...; pool = ...; }");
			continue;
		}
		check_keys(x, g, keys, "route");
		user = config_setting_get_member(g, "user");
		domain = config_setting_get_member(g, "domain");
		def = config_setting_get_member(g, "default");
		kinds = (user != NULL) + (domain != NULL) + (def != NULL);
		if (kinds != 1) {
			perr(x, g,
			     "route: needs exactly one of 'user', 'domain' or 'default = true'");
			continue;
		}
		if (def != NULL && (config_setting_type(def) != CONFIG_TYPE_BOOL ||
		                    !config_setting_get_bool(def))) {
			perr(x, def, "route: 'default' can only be true");
			continue;
		}
		if (def == NULL) {
			const config_setting_t *k = user ? user : domain;

			if ((key = config_setting_get_string(k)) == NULL) {
				perr(x, k, "route: '%s' must be a string",
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
				perr(x, wl, "route: 'weights' goes with a pool = [ ... ] list");
				continue;
			}
			if (!read_weights(x, wl, n, weights, "route"))
				continue;
			wp = weights;
		}
		if (user != NULL) {
			if (route_add_user(cfg->routes, key, pool, wp, n, &err) < 0)
				perr(x, user, "route for user \"%s\": %s", key, err);
		} else if (domain != NULL) {
			if (route_add_domain(cfg->routes, key, pool, wp, n, &err) < 0)
				perr(x, domain, "route for domain \"%s\": %s", key, err);
		} else if (default_line != 0) {
			perr(x, def, "route: a default route is already set on line %u",
			     default_line);
		} else if (route_set_default(cfg->routes, pool, wp, n, &err) < 0) {
			perr(x, def, "default route: %s", err);
		} else {
			default_line = config_setting_source_line(def);
		}
	}
}

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
		perr(x, s, "%s must be a list of protocols [ \"imap\", \"pop3\" ]", what);
		return 0;
	}
	if ((n = config_setting_length(s)) == 0) {
		perr(x, s, "%s is empty: name \"imap\", \"pop3\" or both", what);
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
			perr(x, e, "%s: each entry must be \"imap\" or \"pop3\"", what);
			return 0;
		}
		if (mask & bit) {
			perr(x, e, "%s names \"%s\" twice", what, v);
			return 0;
		}
		mask |= bit;
	}
	return mask;
}

/* policy.protocols_default; called with s == NULL for the default. */
static void
parse_protocols_default(struct ctx *x, const config_setting_t *s)
{
	unsigned mask;

	if (s == NULL) {
		x->cfg->policy.protocols_default = PROTO_MASK_ALL;
		return;
	}
	if ((mask = read_protocols(x, s, "'policy.protocols_default'")) != 0)
		x->cfg->policy.protocols_default = mask;
}

static void
parse_protocol_rules(struct ctx *x, const config_setting_t *list)
{
	static const char *const keys[] = {"user", "domain", "allow", NULL};
	struct config *cfg = x->cfg;
	int n;

	if (!config_setting_is_list(list)) {
		perr(x, list, "'policy.protocols' must be a list ( { ... }, ... )");
		return;
	}
	if ((n = config_setting_length(list)) == 0)
		return;
	if (n > POLICY_LIST_MAX) {
		perr(x, list, "'policy.protocols' has more than %d rules: use protocols_file",
		     POLICY_LIST_MAX);
		return;
	}
	if ((cfg->policy.protocols = calloc((size_t)n, sizeof(*cfg->policy.protocols))) == NULL) {
		perr(x, list, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		struct protocol_rule_conf *r = &cfg->policy.protocols[cfg->policy.nprotocols];
		const config_setting_t *user, *domain, *allow;
		const char *key;

		if (!config_setting_is_group(g)) {
			perr(x, g,
			     "protocol rule: each entry must be a group "
			     "{ user = ...; allow = ...; }");
			continue;
		}
		check_keys(x, g, keys, "protocol rule");
		user = config_setting_get_member(g, "user");
		domain = config_setting_get_member(g, "domain");
		if ((user == NULL) == (domain == NULL)) {
			perr(x, g, "protocol rule: needs exactly one of 'user' or 'domain'");
			continue;
		}
		key = config_setting_get_string(user ? user : domain);
		if (key == NULL || *key == '\0') {
			perr(x, user ? user : domain,
			     "protocol rule: '%s' must be a non-empty string",
			     user ? "user" : "domain");
			continue;
		}
		if (domain != NULL && strchr(key, '@') != NULL) {
			perr(x, domain, "protocol rule: a domain cannot contain '@'");
			continue;
		}
		if ((allow = config_setting_get_member(g, "allow")) == NULL) {
			perr(x, g, "protocol rule: missing 'allow'");
			continue;
		}
		if ((r->allow = read_protocols(x, allow, "protocol rule: 'allow'")) == 0)
			continue;
		for (size_t j = 0; j < cfg->policy.nprotocols; j++) {
			const struct protocol_rule_conf *o = &cfg->policy.protocols[j];
			const char *ok = user ? o->user : o->domain;

			if (ok != NULL && strcasecmp(ok, key) == 0) {
				perr(x, g, "protocol rule: %s \"%s\" has a rule already",
				     user ? "user" : "domain", key);
				key = NULL;
				break;
			}
		}
		if (key == NULL)
			continue;
		if (user)
			r->user = dup_or_report(x, user, key);
		else
			r->domain = dup_or_report(x, domain, key);
		cfg->policy.nprotocols++;
	}
}

/* policy.allow / policy.deny: [ "192.0.2.0/24", "2001:db8::/32", ... ] */
static void
read_cidr_list(struct ctx *x, const config_setting_t *s, const char *path, struct cidr_conf **out,
               size_t *n_out)
{
	int n;

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		perr(x, s,
		     "'%s' must be a list of networks [ \"192.0.2.0/24\", \"2001:db8::/32\" ]",
		     path);
		return;
	}
	if ((n = config_setting_length(s)) == 0)
		return;
	if (n > POLICY_LIST_MAX) {
		perr(x, s, "'%s' has more than %d networks", path, POLICY_LIST_MAX);
		return;
	}
	if ((*out = calloc((size_t)n, sizeof(**out))) == NULL) {
		perr(x, s, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = config_setting_get_string(e), *err;

		if (v == NULL) {
			perr(x, e, "'%s': each entry must be a string such as \"192.0.2.0/24\"",
			     path);
			continue;
		}
		if (config_parse_cidr(v, &(*out)[*n_out], &err) < 0) {
			perr(x, e, "'%s': bad network \"%s\": %s", path, v, err);
			continue;
		}
		(*n_out)++;
	}
}

static void
parse_policy_allow(struct ctx *x, const config_setting_t *s)
{
	read_cidr_list(x, s, "policy.allow", &x->cfg->policy.allow, &x->cfg->policy.nallow);
}

static void
parse_policy_deny(struct ctx *x, const config_setting_t *s)
{
	read_cidr_list(x, s, "policy.deny", &x->cfg->policy.deny, &x->cfg->policy.ndeny);
}

static void
check_state(struct ctx *x, const config_setting_t *s, const char *v)
{
	if (strncmp(v, "lmdb:", 5) == 0) {
		if (v[5] == '\0')
			perr(x, s,
			     "'state' = \"lmdb:\": name a directory, as in "
			     "\"lmdb:/var/lib/postern\"");
	} else if (strncmp(v, "redis://", 8) == 0) {
		perr(x, s,
		     "'state' = \"%s\": the Redis store is not supported yet (use \"lmdb:DIR\")",
		     v);
	} else {
		perr(x, s,
		     "'state' must be \"lmdb:DIR\" "
		     "(or \"redis://host:port/db\", not supported yet)");
	}
}

static void
check_protocols_file(struct ctx *x, const config_setting_t *s, const char *v)
{
	check_readable(x, s, "protocols file", v);
}

/* The policy settings that only make sense together. */
static void
check_policy(struct ctx *x)
{
	const struct config *cfg = x->cfg;
	const config_setting_t *mode = config_lookup(x->lc, "policy.protocol_lock");
	static const char *const rules[] = {"policy.protocols", "policy.protocols_file",
	                                    "policy.protocols_default", NULL};

	if (cfg->policy.protocol_lock == PLOCK_STICKY && cfg->state == NULL)
		perr(x, mode,
		     "'policy.protocol_lock' = \"sticky\" needs a state store: set state = "
		     "\"lmdb:DIR\"");
	/* rules that nothing reads would read as if they were enforced */
	for (size_t i = 0; cfg->policy.protocol_lock == PLOCK_OFF && rules[i] != NULL; i++) {
		const config_setting_t *s = config_lookup(x->lc, rules[i]);

		if (s != NULL)
			perr(x, s, "'%s' has no effect with protocol_lock = \"off\"", rules[i]);
	}
	if (cfg->policy.throttle.delay_max_ms < cfg->policy.throttle.delay_base_ms)
		perr(x, config_lookup(x->lc, "policy.throttle.delay_max"),
		     "'policy.throttle.delay_max' must not be below delay_base");
	/* a tarpit as long as the login timeout would only ever end in a timeout */
	if (cfg->policy.throttle.delay_max_ms >= cfg->timeouts.login_ms)
		perr(x, config_lookup(x->lc, "policy.throttle.delay_max"),
		     "'policy.throttle.delay_max' must be shorter than timeouts.login");
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
	}
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->nbackends; i++) {
		free(cfg->backends[i].name);
		free(cfg->backends[i].host);
		free(cfg->backends[i].ca);
		free(cfg->backends[i].verify_name);
		free(cfg->backends[i].cert);
		free(cfg->backends[i].key);
	}
	free(cfg->backends);
	route_table_free(&cfg->routes);
	for (size_t i = 0; i < cfg->npools; i++)
		free(cfg->pools[i].name);
	free(cfg->pools);
	free(cfg->route_map);
	for (size_t i = 0; i < cfg->policy.nprotocols; i++) {
		free(cfg->policy.protocols[i].user);
		free(cfg->policy.protocols[i].domain);
	}
	free(cfg->policy.protocols);
	free(cfg->policy.protocols_file);
	free(cfg->policy.allow);
	free(cfg->policy.deny);
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
			perr(x, x->lst_set[i], "listener \"%s\": no backend serves %s", l->listen,
			     proto_name(l->proto));
	}
	check_policy(x);
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
				perr(&x, s, "'%s' must be a group { ... }", o->path);
			break;
		case OPT_LIST:
			if (s == NULL)
				perr(&x, NULL, "missing '%s': at least one %s is required", o->path,
				     o->noun);
			else if (!config_setting_is_list(s))
				perr(&x, s, "'%s' must be a list ( { ... }, ... )", o->path);
			else if (config_setting_length(s) == 0)
				perr(&x, s, "'%s' is empty: at least one %s is required", o->path,
				     o->noun);
			else
				o->list(&x, s);
			break;
		default:
			if (s != NULL)
				opt_set(&x, o, s);
			break;
		}
	}
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
