/*
 * lookup_msg.h: the words of the HTTP user lookup, both protocols, as pure
 * code (no sockets, no clock, no curl): the request postern sends (nginx's
 * auth_http header lines, or a JSON body) and the answer it reads back,
 * into one struct lookup_answer whatever the protocol.  Every field and
 * the whole answer are bounded; a malformed answer is LOOKUP_TEMP with a
 * reason for the log, never a crash.  Fuzzed (tests/fuzz/fuzz_lookup_*).
 */
#ifndef POSTERN_LOOKUP_MSG_H
#define POSTERN_LOOKUP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define LOOKUP_TEXT_MAX   200   /* a refusal's text as the client sees it */
#define LOOKUP_SERVER_MAX 64    /* Auth-Server / "server": an IP address */
#define LOOKUP_NAME_MAX   64    /* JSON "backend": a configured backend's name */
#define LOOKUP_USER_MAX   256   /* Auth-User / "user" rewrite: CREDS_USER_MAX */
#define LOOKUP_PASS_MAX   1024  /* Auth-Pass rewrite: CREDS_SECRET_MAX */
#define LOOKUP_SASL_MAX   1024  /* Auth-Error-SASL: base64 of the RFC 7628 error JSON */
#define LOOKUP_WHY_MAX    120   /* why an answer was a temporary failure (log) */
#define LOOKUP_LINE_MAX   4096  /* one header line of an answer */
#define LOOKUP_HEADS_MAX  16384 /* all header lines of an answer together */
#define LOOKUP_BODY_MAX   16384 /* a JSON answer's body */
#define LOOKUP_WAIT_MAX   60    /* Auth-Wait seconds above this are taken as this */
/* the password or bearer token a request carries: CREDS_TOKEN_MAX (an
 * OAuth access token, a JWT of several KiB, goes in Auth-Pass) */
#define LOOKUP_SECRET_MAX 8192
#define LOOKUP_HEADER_MAX (32 + 3 * LOOKUP_SECRET_MAX) /* one request header line, escaped */

/* What the client logged in with, in nginx's Auth-Method words. */
enum lookup_method {
	LOOKUP_METHOD_PLAIN = 0,   /* "plain": IMAP LOGIN, POP3 USER/PASS, SASL PLAIN/LOGIN */
	LOOKUP_METHOD_XOAUTH2,     /* "xoauth2" (nginx PR 1590) */
	LOOKUP_METHOD_OAUTHBEARER, /* "oauthbearer" (nginx PR 1590) */
};

/* nginx's Auth-Method word for m ("plain", "xoauth2", "oauthbearer"), also
 * the JSON "method" (static). */
const char *lookup_method_name(enum lookup_method m);

/* nginx's Auth-Protocol word for p, also the JSON "protocol": "imap",
 * "pop3", and "sieve" for ManageSieve, which nginx never sends (static). */
const char *lookup_proto_name(enum proto_kind p);

/* One login attempt, as the service hears of it.  Everything borrowed. */
struct lookup_query {
	enum proto_kind proto; /* Auth-Protocol: imap / pop3 / sieve */
	enum lookup_method method;
	const char *user; /* as the client sent it */
	size_t user_len;
	const char *pass; /* password or bearer token; NULL: not sent (send_password off) */
	size_t pass_len;
	unsigned attempt;      /* Auth-Login-Attempt: 1 for the session's first */
	const char *client_ip; /* text, never NULL */
	uint16_t client_port;
	const char *client_host; /* Client-Host: nginx sends "[UNAVAILABLE]" unresolved */
	const char *local_ip;    /* the listener's address the client reached, or NULL */
	uint16_t local_port;
	bool ssl;                 /* Auth-SSL: on */
	const char *ssl_protocol; /* "TLSv1.3", or NULL */
	const char *ssl_cipher;   /* or NULL */
	/* the addresses a front load balancer's PROXY header named, or NULL */
	const char *proxy_addr;
	uint16_t proxy_port;
	const char *proxy_server_addr;
	uint16_t proxy_server_port;
	/* extra static header lines "Name: value" (lookup.headers) */
	const char *const *headers;
	size_t nheaders;
};

enum lookup_status {
	LOOKUP_OK = 0,  /* route (and maybe rewrite) in the answer */
	LOOKUP_REFUSED, /* nginx: Auth-Status other than OK; JSON: 401/403 */
	LOOKUP_UNKNOWN, /* JSON: 404, no such user (an ordinary failed login) */
	LOOKUP_TEMP,    /* a temporary failure: 5xx, no Auth-Status, malformed, transport */
};
/* "ok", "refused", "unknown", "tempfail" (static). */
const char *lookup_status_name(enum lookup_status st);

/* One answer, either protocol. */
struct lookup_answer {
	enum lookup_status status;
	/* LOOKUP_REFUSED (nginx): Auth-Status' text, printable ASCII, cut */
	char text[LOOKUP_TEXT_MAX + 1];
	int wait_s;                         /* Auth-Wait, 0..LOOKUP_WAIT_MAX; -1: none */
	char backend[LOOKUP_NAME_MAX + 1];  /* JSON "backend", or "" */
	char server[LOOKUP_SERVER_MAX + 1]; /* Auth-Server / "server": an IP literal, or "" */
	uint16_t port;                      /* Auth-Port / "port", 0: none */
	char user[LOOKUP_USER_MAX + 1];     /* Auth-User / "user": the backend login */
	size_t user_len;
	bool has_user;
	char pass[LOOKUP_PASS_MAX + 1]; /* Auth-Pass: the backend password (wipe!) */
	size_t pass_len;
	bool has_pass;
	char error_sasl[LOOKUP_SASL_MAX + 1]; /* Auth-Error-SASL, or "" */
	int tls;                              /* JSON "tls": enum tls_mode, or -1: the default */
	char why[LOOKUP_WHY_MAX + 1];         /* LOOKUP_TEMP: for the log; no secret */
	/* parser state (nginx): bytes of headers seen, whether Auth-Status came,
	 * what the lines said so far (LOOKUP_NGX_* in lookup_nginx.c) */
	size_t head_bytes;
	bool have_status;
	unsigned ngx_flags;
};

/* An empty answer (LOOKUP_TEMP "no answer", wait_s -1, tls -1). */
void lookup_answer_init(struct lookup_answer *a);
/* Wipe the secrets (pass); has_pass becomes false. */
void lookup_answer_wipe(struct lookup_answer *a);

/*
 * Is s[0..len) an IP address as nginx's ngx_parse_addr() reads Auth-Server
 * (ngx_inet_addr, then ngx_inet6_addr: no brackets, no zone, no host
 * name)?  When it is, its canonical text (inet_ntop) goes to out, which
 * holds at least LOOKUP_SERVER_MAX + 1 bytes.
 */
bool lookup_ip_literal(const char *s, size_t len, char *out, size_t cap);

/*
 * A refusal's text as the client may see it: the bytes 0x20..0x7e of
 * in[0..len), others dropped, cut at LOOKUP_TEXT_MAX; "Authentication
 * failed" when nothing is left.  out holds LOOKUP_TEXT_MAX + 1 bytes.
 */
void lookup_text_clean(char *out, const char *in, size_t len);

/*
 * nginx's escaping of Auth-User and Auth-Pass (ngx_escape_uri with
 * NGX_ESCAPE_MAIL_AUTH): space, '%' and control bytes become %XX,
 * everything else (UTF-8 included) passes raw.  Returns the length written
 * (NUL-terminated), or (size_t)-1 when out is too small.
 */
size_t lookup_nginx_escape(char *out, size_t cap, const char *in, size_t len);

/*
 * The request's header lines as nginx writes them, in nginx's order, each
 * "Name: value" without CRLF, handed to add() one by one (add returns 0,
 * or -1 to stop: then -1 comes back).  The request line, Host and the
 * connection headers are the HTTP client's.  Auth-Pass is left out when
 * q->pass is NULL; Client-Host comes only when q->client_host is set
 * (nginx sends it for SMTP only).  Lines holding the password are wiped
 * after add() returns.  0, or -1 (add stopped, a password or token over
 * LOOKUP_SECRET_MAX, a raw field or static header with a control byte).
 */
int lookup_nginx_headers(const struct lookup_query *q, int (*add)(void *arg, const char *line),
                         void *arg);

/*
 * One header line of an nginx-protocol answer (the status line included,
 * as the HTTP client hands them over; CRLF, LF or nothing may end it; a
 * status line starts the answer afresh, lines after the empty one are
 * ignored).  Reads Auth-Status, Auth-Server, Auth-Port, Auth-User,
 * Auth-Pass, Auth-Wait and Auth-Error-SASL; ignores the rest; the last of
 * a repeated header counts, but a refusing Auth-Status sticks (nginx).
 * Returns 0, or -1 once the answer is over its bounds or malformed (a
 * header name nginx refuses, Auth-User/Auth-Pass with control bytes or
 * too long): a->status LOOKUP_TEMP, a->why says so.
 */
int lookup_nginx_line(struct lookup_answer *a, const char *line, size_t len);
/* All lines read: decide (a refusal: LOOKUP_REFUSED; Auth-Status WAIT or
 * none: LOOKUP_TEMP, wait_s kept; OK without an IP Auth-Server or a port
 * 1..65535: LOOKUP_TEMP).  The HTTP status plays no part. */
void lookup_nginx_finish(struct lookup_answer *a);

/*
 * The JSON request body: {"user", "protocol", "method", "attempt",
 * "client": {"ip","port"}, "local": {"ip","port"}, "tls": {"on","protocol",
 * "cipher"}, "proxy": {...} when present, "password" only when q->pass}.
 * Returns the length written (NUL-terminated), or (size_t)-1 when it does
 * not fit in cap, or the user or password is not UTF-8 or holds a NUL
 * (JSON strings are Unicode text).  The caller wipes out after use.
 */
size_t lookup_json_request(const struct lookup_query *q, char *out, size_t cap);

/*
 * A JSON answer: the HTTP status and the body.  200 with "backend" (a
 * name) or "server"+"port", optional "user" and "tls" ("none",
 * "implicit", "starttls"); 404 LOOKUP_UNKNOWN; 401/403 LOOKUP_REFUSED
 * (optional "message" as text); 5xx, other codes, a body that is not such
 * an object, or over LOOKUP_BODY_MAX: LOOKUP_TEMP.
 */
void lookup_json_answer(struct lookup_answer *a, long http_status, const char *body, size_t len);

#endif
