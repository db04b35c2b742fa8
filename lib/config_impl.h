/*
 * config_impl.h: what lib/config*.c share while one file is loaded: the
 * load context, error collection and the small readers every section uses.
 * Private to the loader: nothing outside lib/config*.c includes it, and the
 * cfg_ names never leave it.
 */
#ifndef POSTERN_CONFIG_IMPL_H
#define POSTERN_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <libconfig.h>

#include "config.h"

#define NAME_MAX_LEN 64 /* backend and listener names: they go unquoted into logs */

#define SEC_MS  1000LL
#define MIN_MS  (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)

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
	/* backends or routes missing or empty: a lookup must route
	 * (cfg_lookup_finish() decides) */
	struct route_list_left {
		const char *path, *noun;
		const config_setting_t *set; /* NULL: missing */
	} route_lists[2];
	size_t nroute_lists;
};

static inline bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

/* ---- config.c: errors ---- */

/* Record one error at s's file and line (s NULL: line 0); printed, in file
 * order, when the load ends.  Never fails: out of memory is counted. */
void cfg_err(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- config_check.c: shared readers, checks of single settings ---- */

/* Report members of a list entry g not among keys (NULL-terminated). */
void cfg_check_keys(struct ctx *x, const config_setting_t *g, const char *const *keys,
                    const char *noun);

/* The string member key of entry g, or NULL: absent (*bad untouched), or
 * not a non-empty string (reported, *bad set).  Borrowed from libconfig. */
const char *cfg_get_string(struct ctx *x, const config_setting_t *g, const char *key,
                           const char *what, bool *bad);

/* A required string member: NULL after reporting when absent or bad. */
const char *cfg_need_string(struct ctx *x, const config_setting_t *g, const char *key,
                            const char *what);

/* strdup(v), the caller frees; NULL after reporting out of memory. */
char *cfg_dup(struct ctx *x, const config_setting_t *s, const char *v);

/* 1..NAME_MAX_LEN of A-Z a-z 0-9 . _ - */
bool cfg_valid_name(const char *s);

/* Report path unless it is readable now. */
void cfg_check_readable(struct ctx *x, const config_setting_t *s, const char *what,
                        const char *path);
/* 'user' names an existing account (checked at load, not after binding). */
void cfg_check_user(struct ctx *x, const config_setting_t *s, const char *v);
/* 'admin.http': a numeric "host:port", as a listener takes it. */
void cfg_check_admin_http(struct ctx *x, const config_setting_t *s, const char *v);
/* 'admin.socket': an absolute path whose directory nobody else may write. */
void cfg_check_admin_socket(struct ctx *x, const config_setting_t *s, const char *v);

/*
 * ---- the sections: the option table in config.c calls these ----
 * OPT_LIST readers get a non-empty list; OPT_FUNC readers get the setting
 * or NULL (then set the default); OPT_STRING checks get the value and
 * report what is wrong with it.  All report through cfg_err().
 */

/* config_listen.c */
void cfg_parse_certificates(struct ctx *x, const config_setting_t *s);
void cfg_check_ticket_key_file(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_parse_listeners(struct ctx *x, const config_setting_t *s);
/* auth_mechanisms, global (OPT_FUNC, before listeners: their default). */
void cfg_parse_auth_mechanisms(struct ctx *x, const config_setting_t *s);

/* config_backend.c */
void cfg_parse_backends(struct ctx *x, const config_setting_t *s);
void cfg_parse_pools(struct ctx *x, const config_setting_t *s);
void cfg_parse_routes(struct ctx *x, const config_setting_t *s);
void cfg_load_route_map(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_check_sieve_extensions(struct ctx *x, const config_setting_t *s, const char *v);
/* The link settings of entry g (tls, ca, verify_name, cert, key, health,
 * forward) into be: a backend's, and lookup.backend_defaults. */
void cfg_read_backend_link(struct ctx *x, const config_setting_t *g, struct backend_conf *be,
                           const char *what);

/* config_lookup.c */
void cfg_check_lookup_url(struct ctx *x, const config_setting_t *s, const char *v);
/* A service URL v in setting s: http:// or https://, a host, no space or
 * control byte, bounded; what names the setting in the message. */
bool cfg_lookup_url_ok(struct ctx *x, const config_setting_t *s, const char *what, const char *v);
void cfg_check_lookup_ca(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_parse_lookup_headers(struct ctx *x, const config_setting_t *s);
void cfg_parse_lookup_send_password(struct ctx *x, const config_setting_t *s);
void cfg_parse_lookup_backend_defaults(struct ctx *x, const config_setting_t *s);
/* A listener's `lookup` setting m into lc. */
void cfg_parse_listener_lookup(struct ctx *x, const config_setting_t *m, struct listener_conf *lc);
/* Once every section is read: send_password's default by protocol. */
void cfg_lookup_finish(struct ctx *x);
/* The strings of a lookup section (not lc itself). */
void cfg_lookup_free(struct lookup_conf *lc);
/* The strings of a backend entry (not be itself). */
void cfg_backend_strings_free(struct backend_conf *be);

/* config_policy.c */
void cfg_check_state(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_check_state_password_file(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_check_state_user(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_check_state_prefix(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_check_state_fallback(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_check_protocols_file(struct ctx *x, const config_setting_t *s, const char *v);
void cfg_parse_protocol_rules(struct ctx *x, const config_setting_t *s);
void cfg_parse_protocols_default(struct ctx *x, const config_setting_t *s);
void cfg_parse_policy_allow(struct ctx *x, const config_setting_t *s);
void cfg_parse_policy_deny(struct ctx *x, const config_setting_t *s);
/* A list of networks s at path into a new *out[0..*n_out) (the caller frees). */
void cfg_read_cidr_list(struct ctx *x, const config_setting_t *s, const char *path,
                        struct cidr_conf **out, size_t *n_out);
/* The policy settings that only make sense together; once all are read. */
void cfg_check_policy(struct ctx *x);

#endif
