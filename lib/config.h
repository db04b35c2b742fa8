/*
 * config.h: the libconfig file -> struct config, validated, plain C.
 * A loaded config is an immutable snapshot with a reference count: workers
 * and connections hold references; a reload makes a new snapshot.
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* PROTO_SIEVE is ManageSieve (RFC 5804): not mail access, so the protocol
 * lock and PROTO_MASK_ALL are about IMAP and POP3 only. */
enum proto_kind { PROTO_IMAP = 0, PROTO_POP3 = 1, PROTO_SIEVE = 2, PROTO__COUNT };
enum tls_mode { TLSM_NONE = 0, TLSM_IMPLICIT, TLSM_STARTTLS };
/* IMAP listeners: COMPRESS=DEFLATE (RFC 4978) offered as the backend does,
 * or hidden from the client (a compressed session cannot be told BYE) */
enum compress_mode { COMPRESS_PASS = 0, COMPRESS_STRIP };
enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERR };
/* policy.protocol_lock */
enum protocol_lock_mode { PLOCK_OFF = 0, PLOCK_CONCURRENT, PLOCK_STICKY, PLOCK_STATIC };
/* state_unavailable: decide alone, or refuse logins, while Redis is away */
enum state_unavailable_mode { STATE_UNAVAIL_LOCAL = 0, STATE_UNAVAIL_REFUSE };
/* route_lookup: where per-user routes live besides the config's rules */
enum route_lookup_mode { ROUTE_LOOKUP_CONFIG = 0, ROUTE_LOOKUP_STATE };
/* lookup.protocol: how the HTTP user lookup service is spoken to */
enum lookup_protocol { LOOKUP_PROTO_NGINX = 0, LOOKUP_PROTO_JSON };
/* lookup.on_failure: the service is down, slow or answers nonsense */
enum lookup_failure_mode { LOOKUP_FAIL_UNAVAILABLE = 0, LOOKUP_FAIL_RULES };
/* a listener's `lookup`: the global section, none, or its own URL */
enum listener_lookup { LISTENER_LOOKUP_GLOBAL = 0, LISTENER_LOOKUP_OFF, LISTENER_LOOKUP_URL };
/* policy.sieve_lock: a ManageSieve login and the protocol lock */
enum sieve_lock_mode { SIEVE_LOCK_EXEMPT = 0, SIEVE_LOCK_AS_IMAP };
/* policy.sieve_sessions: ManageSieve sessions and max_sessions_per_user */
enum sieve_sessions_mode { SIEVE_SESSIONS_EXEMPT = 0, SIEVE_SESSIONS_COUNT };
#define PROTO_MASK(p)   (1u << (p)) /* sets of protocols: PROTO_MASK(PROTO_IMAP) | ... */
#define PROTO_MASK_ALL  (PROTO_MASK(PROTO_IMAP) | PROTO_MASK(PROTO_POP3))
#define POLICY_LIST_MAX 4096
#define STATE_PREFIX_MAX                                                                           \
	64 /* bytes in state_prefix */ /* entries in policy.allow, .deny and .protocols each */

/* auth_mechanisms: the SASL mechanisms a listener offers (AUTH= in IMAP,
 * the SASL line of POP3 CAPA), as bits, advertised in this order. */
enum auth_mech {
	AUTHM_PLAIN = 1u << 0,       /* RFC 4616 */
	AUTHM_LOGIN = 1u << 1,       /* draft-murchison-sasl-login */
	AUTHM_XOAUTH2 = 1u << 2,     /* Google's XOAUTH2: bearer token passed through */
	AUTHM_OAUTHBEARER = 1u << 3, /* RFC 7628: bearer token passed through */
};
#define AUTHM_COUNT   4
#define AUTHM_DEFAULT (AUTHM_PLAIN | AUTHM_LOGIN)
#define AUTHM_OAUTH   (AUTHM_XOAUTH2 | AUTHM_OAUTHBEARER)

/* An IPv4 or IPv6 network, as in policy.allow / policy.deny. */
struct cidr_conf {
	int family;       /* AF_INET or AF_INET6 */
	unsigned prefix;  /* 0..32 or 0..128 */
	uint8_t addr[16]; /* network bytes; AF_INET uses addr[0..4); host bits are zero */
};

/* One entry of policy.protocols: exactly one of user and domain. */
struct protocol_rule_conf {
	char *user;     /* as written, or NULL */
	char *domain;   /* as written, without '@', or NULL */
	unsigned allow; /* PROTO_MASK() bits, never 0 */
};

struct listener_conf {
	char *listen; /* as written: "127.0.0.1:993", "[::]:993", "993" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum proto_kind proto;
	enum tls_mode tls;         /* TLSM_IMPLICIT or TLSM_STARTTLS */
	char *name;                /* for logs: lst=; defaults to the port number */
	bool allow_plaintext_auth; /* starttls listeners: LOGIN/USER before TLS (default off) */
	struct cert_conf *certs; /* the listener's own certificate set, or NULL: tls.certificates */
	size_t ncerts;
	bool proxy_protocol;       /* a PROXY v1/v2 header comes first, from trusted peers only */
	struct cidr_conf *trusted; /* the load balancers allowed to send it */
	size_t ntrusted;
	unsigned auth_mechanisms;    /* enum auth_mech bits; default: the global auth_mechanisms */
	enum compress_mode compress; /* IMAP: default COMPRESS_PASS */
	enum listener_lookup lookup; /* `lookup = false` / `lookup = "URL"`; default global */
	char *lookup_url;            /* LISTENER_LOOKUP_URL: its own service, else NULL */
};

struct cert_conf {
	char *cert; /* PEM chain path */
	char *key;  /* PEM key path */
};

struct backend_conf {
	char *name;
	char *host;                  /* as written */
	uint16_t port[PROTO__COUNT]; /* 0: this backend does not serve that protocol */
	struct sockaddr_storage addr[PROTO__COUNT]; /* resolved at load */
	socklen_t addrlen[PROTO__COUNT];
	enum tls_mode tls;          /* link to the backend */
	char *ca;                   /* CA file to verify the backend, or NULL: the system store */
	char *verify_name;          /* name the backend certificate must carry; default: host */
	char *cert;                 /* client certificate (PEM chain) for the backend, or NULL */
	char *key;                  /* its key */
	uint64_t check_interval_ms; /* active health check period; 0: none */
	uint64_t check_timeout_ms;  /* one check: connect + greeting (+ TLS) */
	int rise, fall;             /* consecutive results that flip the state */
	unsigned forward;           /* FORWARD_* bits: how the client's address travels */
};

/* How a backend learns the client's address (per backend `forward`). */
enum {
	FORWARD_ID = 1 << 0,       /* IMAP ID x-originating-ip ... before login */
	FORWARD_XCLIENT = 1 << 1,  /* POP3 XCLIENT ADDR= PORT= SESSION= */
	FORWARD_PROXY_V1 = 1 << 2, /* PROXY protocol v1 header */
	FORWARD_PROXY_V2 = 1 << 3, /* PROXY protocol v2 header with TLS TLVs */
};

#define CONFIG_POOL_MAX 64 /* backends in one pool: route.h's ROUTE_POOL_MAX */

#define LOOKUP_HEADERS_MAX 32 /* lookup.headers entries */

/* The HTTP user lookup (top-level `lookup` section; nginx's auth_http or
 * JSON).  url NULL: no lookup unless a listener names its own URL. */
struct lookup_conf {
	char *url;                     /* http:// or https://, or NULL */
	enum lookup_protocol protocol; /* default LOOKUP_PROTO_NGINX */
	uint64_t timeout_ms;           /* one lookup, queueing included; default 2s */
	char **headers;                /* extra request header lines "Name: value" */
	size_t nheaders;
	bool send_password;       /* default: true for nginx, false for json */
	uint64_t cache_ttl_ms;    /* route answers kept this long; 0 (default): none */
	uint64_t negative_ttl_ms; /* "unknown user" kept this long; 0 (default): none */
	int max_inflight;         /* requests under way per worker; default 32 */
	int on_failure;           /* enum lookup_failure_mode; default unavailable */
	int breaker_failures;     /* consecutive failures that open the breaker; default 5 */
	uint64_t breaker_wait_ms; /* open this long, then one probe; default 10s */
	char *ca;                 /* https: CA file to verify the service; NULL: system store */
	int max_backends;         /* backends named by address kept at once; default 64 */
	/* backends named by address take these settings: tls, ca, verify_name
	 * (default: the address), cert/key, forward, rise/fall; name, host,
	 * port and addr are unset here */
	struct backend_conf backend_defaults;
};

/* A named pool (top-level `pools`), for routes and map files. */
struct pool_conf {
	char *name;
	size_t n;
	size_t idx[CONFIG_POOL_MAX];      /* backend indices */
	uint32_t weight[CONFIG_POOL_MAX]; /* >= 1 */
};

struct config {
	atomic_int refs;
	char *path;
	int workers;               /* resolved: "auto" -> number of online CPUs */
	char *user;                /* drop privileges to this user after binding, or NULL */
	char *state;               /* state store URL (lib/state_url.h), or NULL */
	char *state_password_file; /* Redis: AUTH password, first line of this file; or NULL */
	char *state_prefix;        /* Redis: every key starts with it; default "postern:" */
	char *state_user; /* Redis 6 ACL user (AUTH USER PASS), or NULL: the default user */
	char *sentinel_password_file; /* redis-sentinel: the Sentinels' AUTH password, or NULL */
	int state_wait_replicas; /* Redis: a new lock waits for this many replicas (WAIT); 0: no */
	uint64_t state_timeout_ms;   /* Redis: longest a store request waits; default 250ms */
	uint64_t state_heartbeat_ms; /* Redis: live-session registry refresh; default 10s */
	int state_unavailable;       /* enum state_unavailable_mode: Redis slow or down */
	char *state_fallback;        /* "lmdb:DIR": locks decided there while Redis is down */
	int route_lookup;            /* enum route_lookup_mode */
	enum log_level log_level;
	unsigned auth_mechanisms; /* enum auth_mech bits, never 0; default AUTHM_DEFAULT */

	struct {
		struct cert_conf *certs;
		size_t ncerts;
		int min_version;    /* TLS1_2_VERSION or TLS1_3_VERSION */
		char *ciphers;      /* TLS 1.2 cipher list */
		char *ciphersuites; /* TLS 1.3 suites */
		char *groups;
		char *ticket_key_file;       /* shared ticket keys for a fleet, or NULL */
		uint64_t session_timeout_ms; /* resumption lifetime and key rotation, default 1h */
	} tls;

	struct listener_conf *listeners;
	size_t nlisteners;

	struct backend_conf *backends;
	size_t nbackends;

	struct route_table *routes; /* owned: config rules and the route_map file */
	struct pool_conf *pools;    /* named pools */
	size_t npools;
	char *route_map; /* map file of user/domain rules, or NULL */
	/* ManageSieve listeners' SIEVE capability (extensions, space separated);
	 * NULL: the list the backends' greetings give */
	char *sieve_extensions;

	struct lookup_conf lookup;

	struct {
		uint64_t handshake_ms;       /* TLS handshake, default 10s */
		uint64_t login_ms;           /* pre-auth dialog until login, default 60s */
		uint64_t idle_ms;            /* relay idle, default 30m */
		uint64_t backend_connect_ms; /* default 5s */
		uint64_t backend_login_ms;   /* backend greeting + login, default 15s */
		uint64_t drain_ms;           /* SIGTERM: polite endings until then, default 60s */
		uint64_t drain_quiet_ms;     /* a quiet moment: no bytes either way, default 2s */
		uint64_t drain_spread_ms;    /* BYEs spread at random over this, default 10s */
	} timeouts;

	struct {
		char *socket; /* the admin socket's path, or NULL: no admin socket */
		char *http;   /* "127.0.0.1:9100": serves /metrics and /health; NULL: off */
	} admin;

	struct {
		int max_bad_commands;  /* pre-auth, then BYE; default 3 */
		int max_auth_failures; /* per connection, then BYE; default 3 */
	} limits;

	struct {
		int protocol_lock;       /* enum protocol_lock_mode; default off */
		uint64_t lock_expire_ms; /* sticky: unused this long, a lock lapses; 0 never */
		struct protocol_rule_conf *protocols; /* static rules, in file order */
		size_t nprotocols;
		char *protocols_file;       /* map file of more rules, or NULL */
		unsigned protocols_default; /* PROTO_MASK() bits for unlisted accounts */
		int max_connections_per_ip; /* live, per address (IPv6: per ipv6_prefix); 0 none */
		int max_sessions_per_user;  /* live logged-in sessions, both protocols; 0 none */
		int sieve_lock;             /* enum sieve_lock_mode; default exempt */
		int sieve_sessions;         /* enum sieve_sessions_mode; default exempt */
		struct cidr_conf *allow;    /* empty: everybody not denied */
		size_t nallow;
		struct cidr_conf *deny; /* checked first: a match is refused */
		size_t ndeny;
		int ipv6_prefix; /* IPv6 clients are counted by this prefix, default 64 */
		struct {
			int ip_user_limit;  /* failures per (address, user) and window; 0 none */
			int ip_limit;       /* failures per address and window; 0 none */
			uint64_t window_ms; /* default 15m */
			uint64_t delay_base_ms; /* tarpit after the first failure; 0 none */
			uint64_t delay_max_ms;  /* tarpit cap */
		} throttle;
	} policy;
};

/*
 * Load and validate path.  Every error is printed to errs as
 * "path:line: message" (line 0 when none applies) and all are reported, not
 * just the first.  Returns a snapshot with refs == 1, or NULL when anything
 * was wrong.  Host names are resolved here (blocking), never later.
 */
struct config *config_load(const char *path, FILE *errs);

/* Only admin.socket of the file at path, with no other check (the admin
 * commands reach the daemon even when the file is broken, e.g. to hear
 * the daemon's own reload errors).  A new string (the caller frees), or
 * NULL when the file cannot be parsed or sets none. */
char *config_admin_socket(const char *path);

/* The same from text in memory (tests); name is used in messages. */
struct config *config_parse(const char *text, const char *name, FILE *errs);

struct config *config_ref(struct config *cfg);
/* Drop one reference; frees at zero; sets *cfgp to NULL; takes NULL. */
void config_unref(struct config **cfgp);

/* "500ms", "30s", "15m", "2h", "90d", or a bare number of seconds; "0" is 0.
 * Returns 0 and *ms_out, or -1 on a malformed or overflowing value. */
int config_duration_ms(const char *s, uint64_t *ms_out);

/* Parse "host:port", "[v6]:port" or "port" (all addresses) into addr.
 * Returns 0, or -1 with *err_out static text. Numeric hosts only. */
int config_parse_listen(const char *s, struct sockaddr_storage *addr, socklen_t *addrlen_out,
                        const char **err_out);

/* Parse "192.0.2.0/24", "2001:db8::/32" or a bare address (a /32 or /128)
 * into out.  Host bits beyond the prefix are refused (a typo, not a network).
 * Returns 0, or -1 with *err_out static text. */
int config_parse_cidr(const char *s, struct cidr_conf *out, const char **err_out);

const char *proto_name(enum proto_kind p);

/* The index of the first backend called name, or -1. */
int64_t config_backend_find(const struct config *cfg, const char *name);

/* The lookup service URL new logins on listener lc ask, or NULL: none
 * (the listener's own URL, else the global one unless it turned it off). */
const char *config_lookup_url(const struct config *cfg, const struct listener_conf *lc);

/* The upper-case name of one enum auth_mech bit ("PLAIN", ...), or NULL. */
const char *auth_mech_name(unsigned bit);
/* The bit of a mechanism name (any case), or 0 when it is none of ours. */
unsigned auth_mech_bit(const char *name);

#endif
