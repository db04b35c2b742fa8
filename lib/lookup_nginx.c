/*
 * lookup_nginx.c: nginx's auth_http protocol, both ways, as nginx's mail
 * module speaks it (src/mail/ngx_mail_auth_http_module.c): the request's
 * header lines (ngx_mail_auth_http_create_request) and the answer's
 * (ngx_mail_auth_http_parse_header_line, _process_headers).  Never logs,
 * never keeps a pointer into the caller's lines; the password is wiped
 * from every buffer that held it.
 *
 * XOAUTH2 and OAUTHBEARER follow nginx pull request 1590 as its tests
 * (nginx-tests mail_oauth.t) show it: Auth-Method "xoauth2" or
 * "oauthbearer", Auth-User the identity the token names, Auth-Pass the
 * bearer token itself; a failed login may carry Auth-Error-SASL, the
 * base64 RFC 7628 §3.2.2 error the client gets as a "+ " challenge
 * before the Auth-Status text.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chars.h"
#include "lookup_msg.h"

/* ngx_flags: what the answer's lines said so far */
#define LOOKUP_NGX_FAILED     0x001u /* over a bound or malformed: -1 from now on */
#define LOOKUP_NGX_DONE       0x002u /* the empty line ended the headers */
#define LOOKUP_NGX_REFUSED    0x004u /* an Auth-Status other than OK or WAIT */
#define LOOKUP_NGX_WAIT       0x008u /* Auth-Status: WAIT */
#define LOOKUP_NGX_SERVER     0x010u /* a non-empty Auth-Server came (the last one counts) */
#define LOOKUP_NGX_SERVER_BAD 0x020u /* ... and it is not an IP address */
#define LOOKUP_NGX_PORT       0x040u /* a non-empty Auth-Port came */
#define LOOKUP_NGX_PORT_BAD   0x080u /* ... and it is not 1..65535 */

/*
 * ngx_escape_uri()'s NGX_ESCAPE_MAIL_AUTH table (the memcached one,
 * src/core/ngx_string.c): bytes 0x00..0x1f, space and '%' become "%XX",
 * upper-case hex.  0x7f and bytes above pass raw, as in nginx.
 */
static bool
mail_auth_escaped(unsigned char c)
{
	return c < 0x20 || c == ' ' || c == '%';
}

size_t
lookup_nginx_escape(char *out, size_t cap, const char *in, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		size_t need = mail_auth_escaped(c) ? 3 : 1;
		if (cap - n <= need) {
			OPENSSL_cleanse(out, n);
			if (cap > 0)
				out[0] = '\0';
			return (size_t)-1;
		}
		if (need == 3) {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 0xf];
		} else {
			out[n++] = (char)c;
		}
	}
	if (cap == 0)
		return (size_t)-1;
	out[n] = '\0';
	return n;
}

/* ---- the request ---------------------------------------------------------- */

struct ngx_req {
	char line[LOOKUP_HEADER_MAX + 1];
	int (*add)(void *arg, const char *line);
	void *arg;
};

/* A value written raw must not end the line or smuggle another: no
 * control byte but TAB, no DEL. */
static bool
header_safe(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* "Name: value" into r->line, the value escaped or raw, then handed on. */
static int
req_add(struct ngx_req *r, const char *name, const char *value, size_t vlen, bool escape)
{
	size_t n = strlen(name), cap = sizeof(r->line);

	if (n + 2 >= cap)
		return -1;
	memcpy(r->line, name, n);
	r->line[n++] = ':';
	r->line[n++] = ' ';
	if (escape) {
		if (lookup_nginx_escape(r->line + n, cap - n, value, vlen) == (size_t)-1)
			return -1;
	} else {
		if (!header_safe(value, vlen) || vlen >= cap - n)
			return -1;
		memcpy(r->line + n, value, vlen);
		r->line[n + vlen] = '\0';
	}
	return r->add(r->arg, r->line);
}

static int
req_str(struct ngx_req *r, const char *name, const char *value)
{
	return req_add(r, name, value, strlen(value), false);
}

static int
req_num(struct ngx_req *r, const char *name, unsigned v)
{
	char num[16];
	snprintf(num, sizeof(num), "%u", v);
	return req_str(r, name, num);
}

/* The lines in ngx_mail_auth_http_create_request()'s order; SMTP's,
 * Auth-Salt (APOP, CRAM-MD5) and the client certificate's are not ours. */
static int
req_lines(struct ngx_req *r, const struct lookup_query *q)
{
	if (req_str(r, "Auth-Method", lookup_method_name(q->method)) < 0 ||
	    req_add(r, "Auth-User", q->user, q->user_len, true) < 0)
		return -1;
	/* nginx always sends Auth-Pass; with send_password off it is left out */
	if (q->pass != NULL) {
		if (q->pass_len > LOOKUP_SECRET_MAX ||
		    req_add(r, "Auth-Pass", q->pass, q->pass_len, true) < 0)
			return -1;
	}
	if (req_str(r, "Auth-Protocol", lookup_proto_name(q->proto)) < 0 ||
	    req_num(r, "Auth-Login-Attempt", q->attempt) < 0 ||
	    req_str(r, "Client-IP", q->client_ip) < 0)
		return -1;
	/* nginx sends Client-Host only when it resolved the client, which its
	 * IMAP and POP3 never do (s->host is SMTP's) */
	if (q->client_host != NULL && q->client_host[0] != '\0' &&
	    req_str(r, "Client-Host", q->client_host) < 0)
		return -1;
	if (q->proxy_addr != NULL) {
		const char *dst = q->proxy_server_addr != NULL ? q->proxy_server_addr : "";
		if (req_str(r, "Proxy-Protocol-Addr", q->proxy_addr) < 0 ||
		    req_num(r, "Proxy-Protocol-Port", q->proxy_port) < 0 ||
		    req_str(r, "Proxy-Protocol-Server-Addr", dst) < 0 ||
		    req_num(r, "Proxy-Protocol-Server-Port", q->proxy_server_port) < 0)
			return -1;
	}
	/* Auth-SSL-Verify and the certificate lines come only with
	 * ssl_verify_client, which postern does not do */
	if (q->ssl) {
		if (req_str(r, "Auth-SSL", "on") < 0)
			return -1;
		if (q->ssl_protocol != NULL && q->ssl_protocol[0] != '\0' &&
		    req_str(r, "Auth-SSL-Protocol", q->ssl_protocol) < 0)
			return -1;
		if (q->ssl_cipher != NULL && q->ssl_cipher[0] != '\0' &&
		    req_str(r, "Auth-SSL-Cipher", q->ssl_cipher) < 0)
			return -1;
	}
	/* auth_http_header lines last, as written */
	for (size_t i = 0; i < q->nheaders; i++) {
		size_t len = strlen(q->headers[i]);
		if (!header_safe(q->headers[i], len) || len >= sizeof(r->line))
			return -1;
		memcpy(r->line, q->headers[i], len + 1);
		if (r->add(r->arg, r->line) < 0)
			return -1;
	}
	return 0;
}

int
lookup_nginx_headers(const struct lookup_query *q, int (*add)(void *arg, const char *line),
                     void *arg)
{
	struct ngx_req r;
	int rc;

	r.add = add;
	r.arg = arg;
	rc = req_lines(&r, q);
	OPENSSL_cleanse(r.line, sizeof(r.line));
	return rc;
}

/* ---- the answer ----------------------------------------------------------- */

static int
fail(struct lookup_answer *a, const char *why)
{
	a->ngx_flags |= LOOKUP_NGX_FAILED;
	a->status = LOOKUP_TEMP;
	snprintf(a->why, sizeof(a->why), "%s", why);
	lookup_answer_wipe(a);
	return -1;
}

/* ngx_atoi(): digits only, at least one; false on overflow (here: above
 * 10^9, more than any caller takes). */
static bool
ngx_atoi(const char *s, size_t len, long *out)
{
	long v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > 1000000000L)
			return false;
	}
	*out = v;
	return true;
}

static bool
base64_text(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool alnum =
		    (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && c != '+' && c != '/' && c != '=')
			return false;
	}
	return true;
}

static bool
name_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

static void
on_status(struct lookup_answer *a, const char *v, size_t vlen)
{
	a->have_status = true;
	/* "OK" and "WAIT" exactly, case and all; any other text refuses and
	 * the last such text is what the client sees; once refused, a later
	 * OK does not undo it (ctx->err stays set) */
	if (vlen == 2 && memcmp(v, "OK", 2) == 0)
		return;
	if (vlen == 4 && memcmp(v, "WAIT", 4) == 0) {
		a->ngx_flags |= LOOKUP_NGX_WAIT;
		return;
	}
	a->ngx_flags |= LOOKUP_NGX_REFUSED;
	lookup_text_clean(a->text, v, vlen);
}

static void
on_server(struct lookup_answer *a, const char *v, size_t vlen)
{
	char shown[41];

	a->ngx_flags &= ~(LOOKUP_NGX_SERVER | LOOKUP_NGX_SERVER_BAD);
	a->server[0] = '\0';
	if (vlen == 0)
		return; /* nginx: as if not sent */
	a->ngx_flags |= LOOKUP_NGX_SERVER;
	if (lookup_ip_literal(v, vlen, a->server, sizeof(a->server)))
		return;
	a->server[0] = '\0';
	a->ngx_flags |= LOOKUP_NGX_SERVER_BAD;
	/* kept for finish(): an IP literal only, as ngx_parse_addr() takes */
	size_t n = 0;
	for (size_t i = 0; i < vlen && n < sizeof(shown) - 1; i++)
		if (v[i] >= 0x20 && v[i] <= 0x7e && v[i] != '"' && v[i] != '\\')
			shown[n++] = v[i];
	shown[n] = '\0';
	snprintf(a->why, sizeof(a->why), "Auth-Server \"%s\" is not an IP address", shown);
}

static void
on_port(struct lookup_answer *a, const char *v, size_t vlen)
{
	long n;

	a->ngx_flags &= ~(LOOKUP_NGX_PORT | LOOKUP_NGX_PORT_BAD);
	a->port = 0;
	if (vlen == 0)
		return;
	a->ngx_flags |= LOOKUP_NGX_PORT;
	if (ngx_atoi(v, vlen, &n) && n >= 1 && n <= 65535)
		a->port = (uint16_t)n;
	else
		a->ngx_flags |= LOOKUP_NGX_PORT_BAD;
}

/* One header, its name and value as ngx_mail_auth_http_parse_header_line()
 * cuts them; the last of a repeated header counts, as in nginx. */
static int
on_header(struct lookup_answer *a, const char *name, size_t nlen, const char *v, size_t vlen)
{
	long n;

	if (name_is(name, nlen, "Auth-Status")) {
		on_status(a, v, vlen);
	} else if (name_is(name, nlen, "Auth-Server")) {
		on_server(a, v, vlen);
	} else if (name_is(name, nlen, "Auth-Port")) {
		on_port(a, v, vlen);
	} else if (name_is(name, nlen, "Auth-User")) {
		if (vlen == 0 || vlen > LOOKUP_USER_MAX || !chars_no_control(v, vlen))
			return fail(a, "Auth-User is empty, too long or holds control bytes");
		memcpy(a->user, v, vlen);
		a->user[vlen] = '\0';
		a->user_len = vlen;
		a->has_user = true;
	} else if (name_is(name, nlen, "Auth-Pass")) {
		if (vlen > LOOKUP_PASS_MAX || !chars_no_control(v, vlen))
			return fail(a, "Auth-Pass is too long or holds control bytes");
		lookup_answer_wipe(a);
		memcpy(a->pass, v, vlen);
		a->pass[vlen] = '\0';
		a->pass_len = vlen;
		a->has_pass = true;
	} else if (name_is(name, nlen, "Auth-Wait")) {
		/* nginx ignores an Auth-Wait that is not a number */
		if (ngx_atoi(v, vlen, &n))
			a->wait_s = n > LOOKUP_WAIT_MAX ? LOOKUP_WAIT_MAX : (int)n;
	} else if (name_is(name, nlen, "Auth-Error-SASL")) {
		if (vlen > LOOKUP_SASL_MAX || !base64_text(v, vlen))
			return fail(a, "Auth-Error-SASL is too long or not base64");
		memcpy(a->error_sasl, v, vlen);
		a->error_sasl[vlen] = '\0';
	}
	return 0;
}

/* A status line ("HTTP/1.1 200 OK") starts an answer: libcurl hands over
 * those of a proxy's CONNECT or an interim 1xx too; the last one's
 * headers are the answer.  The bytes seen still count. */
static void
restart(struct lookup_answer *a)
{
	size_t seen = a->head_bytes;

	lookup_answer_init(a);
	a->head_bytes = seen;
}

int
lookup_nginx_line(struct lookup_answer *a, const char *line, size_t len)
{
	size_t i = 0, nlen, vstart, vend;

	if (a->ngx_flags & LOOKUP_NGX_FAILED)
		return -1;
	if (len > LOOKUP_LINE_MAX)
		return fail(a, "an answer header line is over its bound");
	a->head_bytes += len;
	if (a->head_bytes > LOOKUP_HEADS_MAX)
		return fail(a, "the answer's headers are over their bound");
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
		return fail(a, "a bare CR or LF inside an answer header line");
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		restart(a);
		return 0;
	}
	if (len == 0) {
		a->ngx_flags |= LOOKUP_NGX_DONE;
		return 0;
	}
	if (a->ngx_flags & LOOKUP_NGX_DONE)
		return 0; /* trailers: nginx reads no further than the empty line */

	/* name: a letter or digit, then letters, digits and '-'; a line
	 * without ':' is a header with an empty value */
	for (; i < len && line[i] != ':'; i++) {
		unsigned char c = (unsigned char)line[i], l = c | 0x20;
		bool ok = (l >= 'a' && l <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
		if (!ok)
			return fail(a, "the answer has an invalid header");
	}
	nlen = i;
	if (nlen == 0)
		return fail(a, "the answer has an invalid header");
	/* value: spaces (only ' ') before and after it are not part of it */
	vstart = i < len ? i + 1 : len;
	while (vstart < len && line[vstart] == ' ')
		vstart++;
	vend = len;
	while (vend > vstart && line[vend - 1] == ' ')
		vend--;
	return on_header(a, line, nlen, line + vstart, vend - vstart);
}

void
lookup_nginx_finish(struct lookup_answer *a)
{
	unsigned f = a->ngx_flags;

	if (f & LOOKUP_NGX_FAILED) {
		a->status = LOOKUP_TEMP;
		lookup_answer_wipe(a);
		return;
	}
	/* ngx_mail_auth_http_process_headers() at NGX_DONE: a refusal first,
	 * then WAIT, then the server and port of an OK */
	if (f & LOOKUP_NGX_REFUSED) {
		a->status = LOOKUP_REFUSED;
		a->why[0] = '\0';
		lookup_answer_wipe(a);
		return;
	}
	a->status = LOOKUP_TEMP;
	if (f & LOOKUP_NGX_WAIT) {
		snprintf(a->why, sizeof(a->why), "the service answered Auth-Status: WAIT");
	} else if (!a->have_status) {
		snprintf(a->why, sizeof(a->why), "the answer has no Auth-Status");
	} else if (!(f & LOOKUP_NGX_SERVER) || !(f & LOOKUP_NGX_PORT)) {
		snprintf(a->why, sizeof(a->why), "Auth-Status OK without Auth-Server or Auth-Port");
	} else if (f & LOOKUP_NGX_SERVER_BAD) {
		/* why was written when the Auth-Server line came */
	} else if (f & LOOKUP_NGX_PORT_BAD) {
		snprintf(a->why, sizeof(a->why), "Auth-Port is not a port (1..65535)");
	} else {
		a->status = LOOKUP_OK;
		a->why[0] = '\0';
		return;
	}
	a->server[0] = '\0';
	a->port = 0;
	lookup_answer_wipe(a);
}
