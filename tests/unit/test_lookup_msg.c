/* test_lookup_msg.c: the words of the HTTP user lookup (lib/lookup_msg.c,
 * lookup_nginx.c, lookup_json.c): nginx's auth_http lines and escaping as
 * nginx writes them, its answer as nginx reads it, the JSON body and
 * answer. */
#include <jansson.h>

#include "unit.h"

#include "lookup_msg.h"

/* ---- helpers --------------------------------------------------------------- */

struct lines {
	char text[LOOKUP_HEADER_MAX + 4096]; /* every line, each followed by "\n" */
	int n;
	int stop_at; /* add() answers -1 at this line (1-based), 0: never */
};

static int
collect(void *arg, const char *line)
{
	struct lines *l = arg;
	l->n++;
	strcat(l->text, line);
	strcat(l->text, "\n");
	return l->stop_at == l->n ? -1 : 0;
}

static struct lookup_query
imap_query(void)
{
	struct lookup_query q = {0};
	q.proto = PROTO_IMAP;
	q.method = LOOKUP_METHOD_PLAIN;
	q.user = "alice@example.org";
	q.user_len = strlen(q.user);
	q.pass = "s3cret pw";
	q.pass_len = strlen(q.pass);
	q.attempt = 1;
	q.client_ip = "192.0.2.7";
	q.client_port = 50122;
	return q;
}

/* Each line of text (split at '\n', kept) fed to the nginx parser. */
static int
feed(struct lookup_answer *a, const char *text)
{
	int rc = 0;
	lookup_answer_init(a);
	while (*text != '\0' && rc == 0) {
		const char *nl = strchr(text, '\n');
		size_t len = nl != NULL ? (size_t)(nl - text) + 1 : strlen(text);
		rc = lookup_nginx_line(a, text, len);
		text += len;
	}
	lookup_nginx_finish(a);
	return rc;
}

/* ---- escaping -------------------------------------------------------------- */

static void
escaping_is_nginx_mail_auth_table(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} rows[] = {
	    {"alice", 5, "alice"},
	    {"a b", 3, "a%20b"},
	    {"100%", 4, "100%25"},
	    {"a\r\nb", 4, "a%0D%0Ab"},
	    {"a\0b", 3, "a%00b"},
	    {"\t\x1f", 2, "%09%1F"},
	    /* DEL and 8-bit bytes are not in NGX_ESCAPE_MAIL_AUTH */
	    {"a\x7f", 2, "a\x7f"},
	    {"J\xc3\xb6rg", 5, "J\xc3\xb6rg"},
	    {"+=&?:/", 6, "+=&?:/"},
	};
	char out[64];
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t n = lookup_nginx_escape(out, sizeof(out), rows[i].in, rows[i].len);
		assert_int_equal(n, strlen(rows[i].out));
		assert_string_equal(out, rows[i].out);
	}
}

static void
escaping_into_a_short_buffer_is_refused(void **state)
{
	char out[6];
	(void)state;
	assert_int_equal(lookup_nginx_escape(out, sizeof(out), "abcde", 5), 5);
	assert_int_equal(lookup_nginx_escape(out, sizeof(out), "abcdef", 6), (size_t)-1);
	assert_int_equal(lookup_nginx_escape(out, sizeof(out), "abc d", 5), (size_t)-1);
	assert_int_equal(lookup_nginx_escape(out, 0, "", 0), (size_t)-1);
	assert_int_equal(lookup_nginx_escape(out, 1, "", 0), 0);
}

/* ---- the request lines ------------------------------------------------------- */

static void
imap_lines_are_nginx_lines_in_nginx_order(void **state)
{
	struct lookup_query q = imap_query();
	struct lines l = {0};
	(void)state;
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), 0);
	assert_string_equal(l.text, "Auth-Method: plain\n"
	                            "Auth-User: alice@example.org\n"
	                            "Auth-Pass: s3cret%20pw\n"
	                            "Auth-Protocol: imap\n"
	                            "Auth-Login-Attempt: 1\n"
	                            "Client-IP: 192.0.2.7\n");
}

static void
pop3_over_tls_behind_proxy_protocol_with_static_headers(void **state)
{
	static const char *const headers[] = {"X-Auth-Key: secret-key", "X-Site: eu"};
	struct lookup_query q = imap_query();
	struct lines l = {0};
	(void)state;
	q.proto = PROTO_POP3;
	q.user = "bob";
	q.user_len = 3;
	q.pass = "p%w";
	q.pass_len = 3;
	q.attempt = 3;
	q.client_ip = "2001:db8::7";
	q.ssl = true;
	q.ssl_protocol = "TLSv1.3";
	q.ssl_cipher = "TLS_AES_256_GCM_SHA384";
	q.proxy_addr = "198.51.100.9";
	q.proxy_port = 4711;
	q.proxy_server_addr = "203.0.113.1";
	q.proxy_server_port = 995;
	q.local_ip = "203.0.113.1"; /* not an nginx header */
	q.headers = headers;
	q.nheaders = 2;
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), 0);
	assert_string_equal(l.text, "Auth-Method: plain\n"
	                            "Auth-User: bob\n"
	                            "Auth-Pass: p%25w\n"
	                            "Auth-Protocol: pop3\n"
	                            "Auth-Login-Attempt: 3\n"
	                            "Client-IP: 2001:db8::7\n"
	                            "Proxy-Protocol-Addr: 198.51.100.9\n"
	                            "Proxy-Protocol-Port: 4711\n"
	                            "Proxy-Protocol-Server-Addr: 203.0.113.1\n"
	                            "Proxy-Protocol-Server-Port: 995\n"
	                            "Auth-SSL: on\n"
	                            "Auth-SSL-Protocol: TLSv1.3\n"
	                            "Auth-SSL-Cipher: TLS_AES_256_GCM_SHA384\n"
	                            "X-Auth-Key: secret-key\n"
	                            "X-Site: eu\n");
}

static void
imap_over_tls_without_a_known_cipher_sends_auth_ssl_on_only(void **state)
{
	struct lookup_query q = imap_query();
	struct lines l = {0};
	(void)state;
	q.ssl = true;
	q.client_host = "[UNAVAILABLE]";
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), 0);
	assert_non_null(strstr(l.text, "Client-IP: 192.0.2.7\nClient-Host: [UNAVAILABLE]\n"
	                               "Auth-SSL: on\n"));
	assert_null(strstr(l.text, "Auth-SSL-"));
}

static void
oauth_methods_send_the_token_as_auth_pass(void **state)
{
	struct lookup_query q = imap_query();
	struct lines l = {0};
	(void)state;
	q.method = LOOKUP_METHOD_XOAUTH2;
	q.pass = "ya29.token";
	q.pass_len = 10;
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), 0);
	assert_non_null(strstr(l.text, "Auth-Method: xoauth2\n"));
	assert_non_null(strstr(l.text, "Auth-Pass: ya29.token\n"));
	memset(&l, 0, sizeof(l));
	q.method = LOOKUP_METHOD_OAUTHBEARER;
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), 0);
	assert_non_null(strstr(l.text, "Auth-Method: oauthbearer\n"));
}

static void
no_password_means_no_auth_pass_line(void **state)
{
	struct lookup_query q = imap_query();
	struct lines l = {0};
	(void)state;
	q.pass = NULL;
	q.pass_len = 0;
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), 0);
	assert_null(strstr(l.text, "Auth-Pass"));
	assert_int_equal(l.n, 5);
}

static void
request_lines_refuse_what_would_split_a_line(void **state)
{
	static const char *const bad[] = {"X-A: 1\r\nX-B: 2"};
	struct lookup_query q = imap_query();
	struct lines l = {0};
	static char big[LOOKUP_SECRET_MAX + 2];
	(void)state;
	q.headers = bad;
	q.nheaders = 1;
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), -1);
	q.nheaders = 0;
	q.client_ip = "1.2.3.4\r\nAuth-Status: OK";
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), -1);
	q = imap_query();
	memset(big, 'x', sizeof(big));
	q.pass = big;
	q.pass_len = LOOKUP_SECRET_MAX + 1;
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), -1);
	/* a token of LOOKUP_SECRET_MAX bytes (OAuth JWTs run to several KiB)
	 * fits, even with every byte escaped */
	memset(big, '%', sizeof(big));
	q.pass_len = LOOKUP_SECRET_MAX;
	memset(&l, 0, sizeof(l));
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), 0);
}

static void
add_stopping_stops_the_lines(void **state)
{
	struct lookup_query q = imap_query();
	struct lines l = {0};
	(void)state;
	l.stop_at = 2;
	assert_int_equal(lookup_nginx_headers(&q, collect, &l), -1);
	assert_int_equal(l.n, 2);
}

/* ---- the nginx answer -------------------------------------------------------- */

static void
ok_with_server_and_port_routes(void **state)
{
	struct lookup_answer a;
	(void)state;
	assert_int_equal(feed(&a, "HTTP/1.1 200 OK\r\n"
	                          "Server: nginx\r\n"
	                          "Auth-Status: OK\r\n"
	                          "Auth-Server: 192.0.2.10\r\n"
	                          "Auth-Port: 143\r\n"
	                          "\r\n"),
	                 0);
	assert_int_equal(a.status, LOOKUP_OK);
	assert_string_equal(a.server, "192.0.2.10");
	assert_int_equal(a.port, 143);
	assert_false(a.has_user);
	assert_false(a.has_pass);
	assert_int_equal(a.wait_s, -1);
	assert_string_equal(a.why, "");
	assert_string_equal(lookup_status_name(a.status), "ok");
}

static void
the_http_status_plays_no_part(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a, "HTTP/1.1 500 Internal Server Error\r\nAuth-Status: OK\r\n"
	         "Auth-Server: ::1\r\nAuth-Port: 1\r\n\r\n");
	assert_int_equal(a.status, LOOKUP_OK);
	assert_string_equal(a.server, "::1");
	feed(&a, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n");
	assert_int_equal(a.status, LOOKUP_TEMP);
	assert_string_equal(a.why, "the answer has no Auth-Status");
}

static void
line_ends_crlf_lf_or_nothing(void **state)
{
	static const char *const forms[] = {
	    "Auth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 110\r\n\r\n",
	    "Auth-Status: OK\nAuth-Server: 10.0.0.1\nAuth-Port: 110\n\n",
	    "Auth-Status: OK\nAuth-Server: 10.0.0.1\nAuth-Port: 110",
	};
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		struct lookup_answer a;
		assert_int_equal(feed(&a, forms[i]), 0);
		assert_int_equal(a.status, LOOKUP_OK);
		assert_int_equal(a.port, 110);
	}
	/* and lines without any terminator, one call each */
	struct lookup_answer a;
	lookup_answer_init(&a);
	assert_int_equal(lookup_nginx_line(&a, "HTTP/1.1 200 OK", 15), 0);
	assert_int_equal(lookup_nginx_line(&a, "Auth-Status: OK", 15), 0);
	assert_int_equal(lookup_nginx_line(&a, "Auth-Server: 10.0.0.1", 21), 0);
	assert_int_equal(lookup_nginx_line(&a, "Auth-Port: 110", 14), 0);
	assert_int_equal(lookup_nginx_line(&a, "", 0), 0);
	lookup_nginx_finish(&a);
	assert_int_equal(a.status, LOOKUP_OK);
}

static void
names_are_case_insensitive_values_trimmed_of_spaces(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a, "auth-status:OK\r\nAUTH-SERVER:    2001:DB8::A  \r\nauth-PORT: 993\r\n");
	assert_int_equal(a.status, LOOKUP_OK);
	assert_string_equal(a.server, "2001:db8::a");
	assert_int_equal(a.port, 993);
	/* "OK" itself is case-sensitive in nginx: "ok" is a refusal text */
	feed(&a, "Auth-Status: ok\r\n");
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_string_equal(a.text, "ok");
}

static void
refusal_text_and_wait(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a,
	     "HTTP/1.1 200 OK\r\nAuth-Status: Invalid login or password\r\nAuth-Wait: 3\r\n\r\n");
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_string_equal(a.text, "Invalid login or password");
	assert_int_equal(a.wait_s, 3);
	assert_string_equal(a.why, "");
	feed(&a, "Auth-Status: Go\x01 a\xc3\xa9way\t!\r\nAuth-Wait: 99999\r\n");
	assert_string_equal(a.text, "Go away!");
	assert_int_equal(a.wait_s, LOOKUP_WAIT_MAX);
	feed(&a, "Auth-Status:\r\n");
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_string_equal(a.text, "Authentication failed");
	feed(&a, "Auth-Status: \x01\x02\r\n");
	assert_string_equal(a.text, "Authentication failed");
}

static void
refusal_text_is_cut(void **state)
{
	char line[600];
	struct lookup_answer a;
	(void)state;
	strcpy(line, "Auth-Status: ");
	memset(line + 13, 'n', 400);
	strcpy(line + 413, "\r\n");
	feed(&a, line);
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_int_equal(strlen(a.text), LOOKUP_TEXT_MAX);
}

static void
auth_wait_that_is_no_number_is_ignored_as_nginx_does(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a, "Auth-Status: No\r\nAuth-Wait: 2\r\nAuth-Wait: -1\r\nAuth-Wait: 3s\r\n");
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_int_equal(a.wait_s, 2);
	feed(&a, "Auth-Status: No\r\nAuth-Wait: x\r\n");
	assert_int_equal(a.wait_s, -1);
	feed(&a, "Auth-Status: No\r\nAuth-Wait: 0\r\n");
	assert_int_equal(a.wait_s, 0);
}

static void
status_wait_is_a_temporary_failure_with_its_wait(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a, "Auth-Status: WAIT\r\nAuth-Wait: 2\r\n\r\n");
	assert_int_equal(a.status, LOOKUP_TEMP);
	assert_int_equal(a.wait_s, 2);
	assert_non_null(strstr(a.why, "WAIT"));
}

static void
ok_needs_an_ip_server_and_a_port(void **state)
{
	static const struct {
		const char *answer;
		const char *why;
	} rows[] = {
	    {"Auth-Status: OK\r\nAuth-Port: 143\r\n", "without Auth-Server"},
	    {"Auth-Status: OK\r\nAuth-Server: 10.0.0.1\r\n", "or Auth-Port"},
	    {"Auth-Status: OK\r\nAuth-Server:\r\nAuth-Port: 143\r\n", "without Auth-Server"},
	    {"Auth-Status: OK\r\nAuth-Server: mail.example.org\r\nAuth-Port: 143\r\n",
	     "Auth-Server \"mail.example.org\" is not an IP address"},
	    {"Auth-Status: OK\r\nAuth-Server: [::1]\r\nAuth-Port: 143\r\n", "not an IP"},
	    {"Auth-Status: OK\r\nAuth-Server: 255.255.255.255\r\nAuth-Port: 143\r\n", "not an IP"},
	    {"Auth-Status: OK\r\nAuth-Server: 1.2.3\r\nAuth-Port: 143\r\n", "not an IP"},
	    {"Auth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 0\r\n", "Auth-Port"},
	    {"Auth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 65536\r\n", "Auth-Port"},
	    {"Auth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: +143\r\n", "Auth-Port"},
	    {"Auth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 143 x\r\n", "Auth-Port"},
	    {"Auth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 99999999999999999999\r\n",
	     "Auth-Port"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct lookup_answer a;
		feed(&a, rows[i].answer);
		assert_int_equal(a.status, LOOKUP_TEMP);
		assert_non_null(strstr(a.why, rows[i].why));
		assert_string_equal(a.server, "");
		assert_int_equal(a.port, 0);
	}
}

static void
server_is_read_as_ngx_parse_addr_reads_it(void **state)
{
	static const struct {
		const char *in, *out;
	} rows[] = {
	    {"10.0.0.1", "10.0.0.1"},
	    {"010.0.0.1", "10.0.0.1"},
	    {"1..2.3", "1.0.2.3"},
	    {"::", "::"},
	    {"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
	    {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
	    {"fe80::1%eth0", NULL},
	    {"1.2.3.4.5", NULL},
	    {"256.0.0.1", NULL},
	    {"1:2:3:4:5:6:7:8:9", NULL},
	    {"12345::", NULL},
	    {"", NULL},
	    {"localhost", NULL},
	    {"1::2::3", NULL},
	};
	char out[LOOKUP_SERVER_MAX + 1];
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		bool ok = lookup_ip_literal(rows[i].in, strlen(rows[i].in), out, sizeof(out));
		if (rows[i].out == NULL) {
			assert_false(ok);
		} else {
			assert_true(ok);
			assert_string_equal(out, rows[i].out);
		}
	}
}

static void
duplicate_headers_the_last_counts_and_a_refusal_sticks(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a, "Auth-Status: OK\r\nAuth-Server: 1.1.1.1\r\nAuth-Server: 2.2.2.2\r\n"
	         "Auth-Port: x\r\nAuth-Port: 25\r\nAuth-User: a\r\nAuth-User: b\r\n");
	assert_int_equal(a.status, LOOKUP_OK);
	assert_string_equal(a.server, "2.2.2.2");
	assert_int_equal(a.port, 25);
	assert_string_equal(a.user, "b");
	/* a refusal is not undone by an OK after it (nginx keeps ctx->err) */
	feed(&a, "Auth-Status: Denied\r\nAuth-Status: OK\r\nAuth-Server: 1.1.1.1\r\n"
	         "Auth-Port: 1\r\n");
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_string_equal(a.text, "Denied");
	feed(&a, "Auth-Status: One\r\nAuth-Status: Two\r\n");
	assert_string_equal(a.text, "Two");
	/* an invalid earlier Auth-Server is forgotten once a good one comes */
	feed(&a, "Auth-Status: OK\r\nAuth-Server: host\r\nAuth-Server: ::1\r\nAuth-Port: 1\r\n");
	assert_int_equal(a.status, LOOKUP_OK);
}

static void
user_and_pass_are_rewritten_raw(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a, "Auth-Status: OK\r\nAuth-Server: 10.0.0.2\r\nAuth-Port: 110\r\n"
	         "Auth-User: alice@backend\r\nAuth-Pass: p%20w d\r\n\r\n");
	assert_int_equal(a.status, LOOKUP_OK);
	assert_true(a.has_user);
	assert_string_equal(a.user, "alice@backend");
	assert_int_equal(a.user_len, 13);
	assert_true(a.has_pass);
	/* nginx copies them as they come: no %XX decoding */
	assert_string_equal(a.pass, "p%20w d");
	assert_int_equal(a.pass_len, 7);
	lookup_answer_wipe(&a);
	assert_false(a.has_pass);
	assert_int_equal(a.pass_len, 0);
	assert_int_equal(a.pass[0], 0);
	/* an empty Auth-Pass is a password */
	feed(&a, "Auth-Status: OK\r\nAuth-Server: 10.0.0.2\r\nAuth-Port: 110\r\nAuth-Pass:\r\n");
	assert_int_equal(a.status, LOOKUP_OK);
	assert_true(a.has_pass);
	assert_int_equal(a.pass_len, 0);
}

static void
user_or_pass_with_control_bytes_or_too_long_is_a_temporary_failure(void **state)
{
	char line[LOOKUP_PASS_MAX + 32];
	struct lookup_answer a;
	(void)state;
	assert_int_equal(feed(&a, "Auth-Status: OK\r\nAuth-User: a\tb\r\n"), -1);
	assert_int_equal(a.status, LOOKUP_TEMP);
	assert_non_null(strstr(a.why, "Auth-User"));
	assert_int_equal(feed(&a, "Auth-Status: OK\r\nAuth-Pass: a\x7f\r\n"), -1);
	assert_non_null(strstr(a.why, "Auth-Pass"));
	assert_int_equal(feed(&a, "Auth-User:\r\n"), -1);
	strcpy(line, "Auth-Pass: ");
	memset(line + 11, 'p', LOOKUP_PASS_MAX + 1);
	line[11 + LOOKUP_PASS_MAX + 1] = '\0';
	assert_int_equal(feed(&a, line), -1);
	assert_false(a.has_pass);
	line[11 + LOOKUP_PASS_MAX] = '\0';
	assert_int_equal(feed(&a, line), 0);
}

static void
auth_error_sasl_is_kept_for_the_refusal(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a, "HTTP/1.1 200 OK\r\nAuth-Status: auth-failed\r\n"
	         "Auth-Error-SASL: eyJzY2hlbWVzIjoiQmVhcmVyIiwic3RhdHVzIjoiNDAwIn0=\r\n"
	         "Auth-Wait: 1\r\n\r\n");
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_string_equal(a.text, "auth-failed");
	assert_string_equal(a.error_sasl, "eyJzY2hlbWVzIjoiQmVhcmVyIiwic3RhdHVzIjoiNDAwIn0=");
	assert_int_equal(a.wait_s, 1);
	assert_int_equal(feed(&a, "Auth-Status: no\r\nAuth-Error-SASL: not base64!\r\n"), -1);
	assert_int_equal(a.status, LOOKUP_TEMP);
}

static void
malformed_header_names_fail_as_in_nginx(void **state)
{
	static const char *const bad[] = {
	    "Auth Status: OK\r\n",   "Auth_Status: OK\r\n", "-Auth: x\r\n", ": OK\r\n",
	    "Auth-Status: O\rK\r\n",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct lookup_answer a;
		assert_int_equal(feed(&a, bad[i]), -1);
		assert_int_equal(a.status, LOOKUP_TEMP);
		/* and it stays failed */
		assert_int_equal(lookup_nginx_line(&a, "Auth-Status: OK\r\n", 17), -1);
	}
	/* a name without ':' is a header with an empty value */
	struct lookup_answer a;
	assert_int_equal(feed(&a, "Auth-Status\r\n"), 0);
	assert_int_equal(a.status, LOOKUP_REFUSED);
}

static void
a_huge_line_or_too_many_lines_fail(void **state)
{
	static char big[LOOKUP_LINE_MAX + 2];
	struct lookup_answer a;
	int rc = 0;
	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	lookup_answer_init(&a);
	assert_int_equal(lookup_nginx_line(&a, big, LOOKUP_LINE_MAX + 1), -1);
	assert_int_equal(a.status, LOOKUP_TEMP);
	assert_non_null(strstr(a.why, "line"));
	lookup_answer_init(&a);
	for (int i = 0; i < 10000 && rc == 0; i++)
		rc = lookup_nginx_line(&a, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n", 36);
	assert_int_equal(rc, -1);
	assert_true(a.head_bytes > LOOKUP_HEADS_MAX);
	lookup_nginx_finish(&a);
	assert_int_equal(a.status, LOOKUP_TEMP);
	assert_non_null(strstr(a.why, "headers"));
}

static void
each_status_line_starts_the_answer_again_and_trailers_are_not_read(void **state)
{
	struct lookup_answer a;
	(void)state;
	feed(&a, "HTTP/1.1 200 Connection established\r\nAuth-Status: Nope\r\n\r\n"
	         "HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.1.1.1\r\n"
	         "Auth-Port: 143\r\n\r\nAuth-Port: 1\r\nAuth-Status: late\r\n");
	assert_int_equal(a.status, LOOKUP_OK);
	assert_int_equal(a.port, 143);
}

/* ---- JSON -------------------------------------------------------------------- */

static void
json_request_round_trips(void **state)
{
	struct lookup_query q = imap_query();
	char out[2048];
	json_t *root, *v;
	size_t n;
	(void)state;
	q.pass = "p\"a\\s\x01 \xc3\xa9";
	q.pass_len = strlen(q.pass);
	q.local_ip = "192.0.2.1";
	q.local_port = 993;
	q.ssl = true;
	q.ssl_protocol = "TLSv1.3";
	q.proxy_addr = "198.51.100.9";
	q.proxy_port = 4711;
	q.proxy_server_addr = "192.0.2.1";
	q.proxy_server_port = 993;
	q.method = LOOKUP_METHOD_OAUTHBEARER;
	q.attempt = 2;
	n = lookup_json_request(&q, out, sizeof(out));
	assert_int_not_equal(n, (size_t)-1);
	assert_int_equal(strlen(out), n);
	root = json_loadb(out, n, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "user")), "alice@example.org");
	assert_string_equal(json_string_value(json_object_get(root, "protocol")), "imap");
	assert_string_equal(json_string_value(json_object_get(root, "method")), "oauthbearer");
	assert_int_equal(json_integer_value(json_object_get(root, "attempt")), 2);
	assert_string_equal(json_string_value(json_object_get(root, "password")), q.pass);
	v = json_object_get(root, "client");
	assert_string_equal(json_string_value(json_object_get(v, "ip")), "192.0.2.7");
	assert_int_equal(json_integer_value(json_object_get(v, "port")), 50122);
	v = json_object_get(root, "local");
	assert_string_equal(json_string_value(json_object_get(v, "ip")), "192.0.2.1");
	assert_int_equal(json_integer_value(json_object_get(v, "port")), 993);
	v = json_object_get(root, "tls");
	assert_true(json_is_true(json_object_get(v, "on")));
	assert_string_equal(json_string_value(json_object_get(v, "protocol")), "TLSv1.3");
	assert_true(json_is_null(json_object_get(v, "cipher")));
	v = json_object_get(root, "proxy");
	assert_string_equal(json_string_value(json_object_get(v, "addr")), "198.51.100.9");
	assert_int_equal(json_integer_value(json_object_get(v, "port")), 4711);
	assert_string_equal(json_string_value(json_object_get(v, "server_addr")), "192.0.2.1");
	assert_int_equal(json_integer_value(json_object_get(v, "server_port")), 993);
	json_decref(root);
}

static void
json_request_leaves_out_what_is_not_there(void **state)
{
	struct lookup_query q = imap_query();
	char out[1024];
	json_t *root;
	size_t n;
	(void)state;
	q.pass = NULL;
	q.proto = PROTO_POP3;
	n = lookup_json_request(&q, out, sizeof(out));
	assert_int_not_equal(n, (size_t)-1);
	assert_string_equal(out, "{\"user\":\"alice@example.org\",\"protocol\":\"pop3\","
	                         "\"method\":\"plain\",\"attempt\":1,\"client\":{\"ip\":"
	                         "\"192.0.2.7\",\"port\":50122},\"tls\":{\"on\":false,"
	                         "\"protocol\":null,\"cipher\":null}}");
	root = json_loadb(out, n, 0, NULL);
	assert_null(json_object_get(root, "password"));
	assert_null(json_object_get(root, "local"));
	assert_null(json_object_get(root, "proxy"));
	json_decref(root);
}

static void
json_request_refuses_what_json_cannot_carry_or_cannot_fit(void **state)
{
	struct lookup_query q = imap_query();
	char out[1024];
	(void)state;
	q.pass = "\xff\xfe";
	q.pass_len = 2;
	assert_int_equal(lookup_json_request(&q, out, sizeof(out)), (size_t)-1);
	assert_string_equal(out, "");
	q.pass = "a\0b";
	q.pass_len = 3;
	assert_int_equal(lookup_json_request(&q, out, sizeof(out)), (size_t)-1);
	q = imap_query();
	q.user = "\xc3";
	q.user_len = 1;
	assert_int_equal(lookup_json_request(&q, out, sizeof(out)), (size_t)-1);
	q = imap_query();
	assert_int_equal(lookup_json_request(&q, out, 40), (size_t)-1);
	/* exactly fitting, then one byte short */
	size_t n = lookup_json_request(&q, out, sizeof(out));
	assert_int_equal(lookup_json_request(&q, out, n + 1), n);
	assert_int_equal(lookup_json_request(&q, out, n), (size_t)-1);
}

static void
json_ok_answers(void **state)
{
	struct lookup_answer a;
	(void)state;
	static const char b1[] =
	    "{\"backend\":\"mx1\",\"user\":\"alice@int\",\"tls\":\"starttls\"}";
	lookup_json_answer(&a, 200, b1, strlen(b1));
	assert_int_equal(a.status, LOOKUP_OK);
	assert_string_equal(a.backend, "mx1");
	assert_string_equal(a.server, "");
	assert_true(a.has_user);
	assert_string_equal(a.user, "alice@int");
	assert_int_equal(a.tls, TLSM_STARTTLS);
	static const char b2[] = "{\"server\":\"2001:DB8::1\",\"port\":993,\"tls\":\"implicit\","
	                         "\"user\":null,\"extra\":[1]}";
	lookup_json_answer(&a, 200, b2, strlen(b2));
	assert_int_equal(a.status, LOOKUP_OK);
	assert_string_equal(a.server, "2001:db8::1");
	assert_int_equal(a.port, 993);
	assert_false(a.has_user);
	assert_int_equal(a.tls, TLSM_IMPLICIT);
	static const char b3[] = "{\"server\":\"10.0.0.1\",\"port\":143,\"tls\":\"none\"}";
	lookup_json_answer(&a, 200, b3, strlen(b3));
	assert_int_equal(a.tls, TLSM_NONE);
	assert_int_equal(a.wait_s, -1);
}

static void
json_statuses(void **state)
{
	static const char msg[] = "{\"message\":\"Account locked\\r\\n* BYE\"}";
	struct lookup_answer a;
	(void)state;
	lookup_json_answer(&a, 404, "", 0);
	assert_int_equal(a.status, LOOKUP_UNKNOWN);
	lookup_json_answer(&a, 401, msg, strlen(msg));
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_string_equal(a.text, "Account locked* BYE");
	lookup_json_answer(&a, 403, "not json", 8);
	assert_int_equal(a.status, LOOKUP_REFUSED);
	assert_string_equal(a.text, "Authentication failed");
	lookup_json_answer(&a, 401, "{\"message\":5}", 13);
	assert_string_equal(a.text, "Authentication failed");
	static const long temps[] = {500, 502, 503, 302, 204, 400, 0, 201};
	for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++) {
		lookup_json_answer(&a, temps[i], "{\"backend\":\"mx1\"}", 17);
		assert_int_equal(a.status, LOOKUP_TEMP);
		assert_non_null(strstr(a.why, "HTTP status"));
		assert_string_equal(a.backend, "");
	}
}

static void
json_malformed_answers_are_temporary_failures(void **state)
{
	static const struct {
		const char *body, *why;
	} rows[] = {
	    {"", "not JSON"},
	    {"{", "not JSON"},
	    {"{\"backend\":\"mx1\"} x", "not JSON"},
	    {"[\"backend\"]", "not a JSON object"},
	    {"\"mx1\"", "JSON"},
	    {"{\"backend\":\"a\",\"backend\":\"b\"}", "not JSON"},
	    {"{\"backend\":\"mx1\",\"server\":\"1.2.3.4\",\"port\":1}", "both or neither"},
	    {"{\"user\":\"bob\"}", "both or neither"},
	    {"{\"backend\":null}", "both or neither"},
	    {"{\"backend\":5}", "backend"},
	    {"{\"backend\":\"\"}", "backend"},
	    {"{\"backend\":\"a b\"}", "backend"},
	    {"{\"backend\":\"mx1\",\"port\":143}", "\"port\" comes with"},
	    {"{\"server\":\"mail.example.org\",\"port\":143}", "not an IP"},
	    {"{\"server\":[\"1.2.3.4\"],\"port\":143}", "not an IP"},
	    {"{\"server\":\"1.2.3.4\"}", "port"},
	    {"{\"server\":\"1.2.3.4\",\"port\":\"143\"}", "port"},
	    {"{\"server\":\"1.2.3.4\",\"port\":143.0}", "port"},
	    {"{\"server\":\"1.2.3.4\",\"port\":0}", "port"},
	    {"{\"server\":\"1.2.3.4\",\"port\":65536}", "port"},
	    {"{\"backend\":\"mx1\",\"user\":7}", "user"},
	    {"{\"backend\":\"mx1\",\"user\":\"\"}", "user"},
	    {"{\"backend\":\"mx1\",\"user\":\"a\\nb\"}", "user"},
	    {"{\"backend\":\"mx1\",\"user\":\"a\\u0000b\"}", "not JSON"},
	    {"{\"backend\":\"mx1\",\"tls\":\"yes\"}", "tls"},
	    {"{\"backend\":\"mx1\",\"tls\":true}", "tls"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct lookup_answer a;
		lookup_json_answer(&a, 200, rows[i].body, strlen(rows[i].body));
		assert_int_equal(a.status, LOOKUP_TEMP);
		if (strstr(a.why, rows[i].why) == NULL)
			fail_msg("%s: why \"%s\"", rows[i].body, a.why);
		assert_string_equal(a.backend, "");
		assert_string_equal(a.server, "");
		assert_false(a.has_user);
		assert_int_equal(a.tls, -1);
	}
}

static void
json_body_over_its_bound_is_a_temporary_failure(void **state)
{
	static char body[LOOKUP_BODY_MAX + 2];
	struct lookup_answer a;
	(void)state;
	memset(body, ' ', sizeof(body) - 1);
	memcpy(body, "{\"backend\":\"mx1\"}", 17);
	lookup_json_answer(&a, 200, body, LOOKUP_BODY_MAX);
	assert_int_equal(a.status, LOOKUP_OK);
	lookup_json_answer(&a, 200, body, LOOKUP_BODY_MAX + 1);
	assert_int_equal(a.status, LOOKUP_TEMP);
	assert_non_null(strstr(a.why, "bound"));
	lookup_json_answer(&a, 404, body, LOOKUP_BODY_MAX + 1);
	assert_int_equal(a.status, LOOKUP_TEMP);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(escaping_is_nginx_mail_auth_table),
	    cmocka_unit_test(escaping_into_a_short_buffer_is_refused),
	    cmocka_unit_test(imap_lines_are_nginx_lines_in_nginx_order),
	    cmocka_unit_test(pop3_over_tls_behind_proxy_protocol_with_static_headers),
	    cmocka_unit_test(imap_over_tls_without_a_known_cipher_sends_auth_ssl_on_only),
	    cmocka_unit_test(oauth_methods_send_the_token_as_auth_pass),
	    cmocka_unit_test(no_password_means_no_auth_pass_line),
	    cmocka_unit_test(request_lines_refuse_what_would_split_a_line),
	    cmocka_unit_test(add_stopping_stops_the_lines),
	    cmocka_unit_test(ok_with_server_and_port_routes),
	    cmocka_unit_test(the_http_status_plays_no_part),
	    cmocka_unit_test(line_ends_crlf_lf_or_nothing),
	    cmocka_unit_test(names_are_case_insensitive_values_trimmed_of_spaces),
	    cmocka_unit_test(refusal_text_and_wait),
	    cmocka_unit_test(refusal_text_is_cut),
	    cmocka_unit_test(auth_wait_that_is_no_number_is_ignored_as_nginx_does),
	    cmocka_unit_test(status_wait_is_a_temporary_failure_with_its_wait),
	    cmocka_unit_test(ok_needs_an_ip_server_and_a_port),
	    cmocka_unit_test(server_is_read_as_ngx_parse_addr_reads_it),
	    cmocka_unit_test(duplicate_headers_the_last_counts_and_a_refusal_sticks),
	    cmocka_unit_test(user_and_pass_are_rewritten_raw),
	    cmocka_unit_test(user_or_pass_with_control_bytes_or_too_long_is_a_temporary_failure),
	    cmocka_unit_test(auth_error_sasl_is_kept_for_the_refusal),
	    cmocka_unit_test(malformed_header_names_fail_as_in_nginx),
	    cmocka_unit_test(a_huge_line_or_too_many_lines_fail),
	    cmocka_unit_test(each_status_line_starts_the_answer_again_and_trailers_are_not_read),
	    cmocka_unit_test(json_request_round_trips),
	    cmocka_unit_test(json_request_leaves_out_what_is_not_there),
	    cmocka_unit_test(json_request_refuses_what_json_cannot_carry_or_cannot_fit),
	    cmocka_unit_test(json_ok_answers),
	    cmocka_unit_test(json_statuses),
	    cmocka_unit_test(json_malformed_answers_are_temporary_failures),
	    cmocka_unit_test(json_body_over_its_bound_is_a_temporary_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
