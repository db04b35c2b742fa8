/*
 * fuzz_lookup_nginx.c: libFuzzer harness for lib/lookup_nginx.c.  The
 * input, cut at each '\n' (kept), is an auth_http answer's header lines,
 * fed until the parser gives up, then decided; whatever it holds, the
 * answer keeps its bounds.  The same bytes make a query (first byte: the
 * switches, then the user and the password) whose request lines must
 * hold no CR or LF and whose escaped user and password read back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lookup_answer_check.h"
#include "lookup_msg.h"

struct seen {
	const char *user;
	size_t user_len;
	const char *pass;
	size_t pass_len;
	int lines, user_lines, pass_lines;
};

static int
unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* the escaped value of line after "Name: " reads back as want */
static void
check_unescapes(const char *v, const char *want, size_t want_len)
{
	size_t n = 0;

	for (size_t i = 0; v[i] != '\0'; i++, n++) {
		unsigned char c = (unsigned char)v[i];
		CHECK(c >= 0x20 && c != ' ');
		if (c == '%') {
			CHECK(unhex(v[i + 1]) >= 0 && unhex(v[i + 2]) >= 0);
			c = (unsigned char)(unhex(v[i + 1]) * 16 + unhex(v[i + 2]));
			i += 2;
		}
		CHECK(n < want_len && c == (unsigned char)want[n]);
	}
	CHECK(n == want_len);
}

static int
add(void *arg, const char *line)
{
	struct seen *s = arg;
	size_t len = strlen(line);

	CHECK(len <= LOOKUP_HEADER_MAX);
	CHECK(strchr(line, '\r') == NULL && strchr(line, '\n') == NULL);
	CHECK(strstr(line, ": ") != NULL);
	s->lines++;
	if (strncmp(line, "Auth-User: ", 11) == 0) {
		s->user_lines++;
		check_unescapes(line + 11, s->user, s->user_len);
	} else if (strncmp(line, "Auth-Pass: ", 11) == 0) {
		s->pass_lines++;
		check_unescapes(line + 11, s->pass, s->pass_len);
	}
	return 0;
}

static void
request(const uint8_t *data, size_t size)
{
	static const char *const headers[] = {"X-Front: a", "X-Site: b c"};
	struct lookup_query q = {0};
	struct seen s = {0};
	char esc[3 * 64 + 1];
	size_t cut;

	if (size < 2)
		return;
	q.proto = data[0] & 1 ? PROTO_POP3 : PROTO_IMAP;
	q.method = (enum lookup_method)((data[0] >> 1) % 3);
	q.ssl = data[0] & 8;
	q.ssl_protocol = data[0] & 16 ? "TLSv1.3" : NULL;
	q.ssl_cipher = "TLS_AES_256_GCM_SHA384";
	q.client_ip = "192.0.2.7";
	q.client_port = 50122;
	q.attempt = data[1];
	if (data[0] & 32) {
		q.proxy_addr = "198.51.100.9";
		q.proxy_port = 4711;
		q.proxy_server_addr = "203.0.113.1";
		q.proxy_server_port = 993;
	}
	q.headers = headers;
	q.nheaders = data[0] & 64 ? 2 : 0;
	data += 2;
	size -= 2;
	cut = size / 3;
	if (cut > LOOKUP_USER_MAX)
		cut = LOOKUP_USER_MAX;
	q.user = (const char *)data;
	q.user_len = cut;
	if (!(data[-2] & 128)) {
		q.pass = (const char *)data + cut;
		q.pass_len = size - cut;
	}
	s.user = q.user;
	s.user_len = q.user_len;
	s.pass = q.pass;
	s.pass_len = q.pass_len;
	if (lookup_nginx_headers(&q, add, &s) == 0) {
		CHECK(s.user_lines == 1);
		CHECK(s.pass_lines == (q.pass != NULL));
		CHECK(q.pass == NULL || q.pass_len <= LOOKUP_SECRET_MAX);
	} else {
		CHECK(q.pass != NULL && q.pass_len > LOOKUP_SECRET_MAX);
	}
	/* a short buffer is refused, never overrun */
	size_t n = lookup_nginx_escape(esc, sizeof(esc), q.user, q.user_len);
	if (n != (size_t)-1) {
		CHECK(n < sizeof(esc) && esc[n] == '\0');
		check_unescapes(esc, q.user, q.user_len);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lookup_answer a;
	size_t at = 0;

	lookup_answer_init(&a);
	while (at < size) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		size_t len = nl != NULL ? (size_t)(nl - (data + at)) + 1 : size - at;
		int rc = lookup_nginx_line(&a, (const char *)data + at, len);
		CHECK(rc == 0 || rc == -1);
		CHECK(a.head_bytes <= LOOKUP_HEADS_MAX || rc == -1);
		at += len;
		if (rc < 0) {
			CHECK(a.status == LOOKUP_TEMP && a.why[0] != '\0');
			break;
		}
	}
	lookup_nginx_finish(&a);
	check_answer(&a);
	CHECK(a.status != LOOKUP_UNKNOWN);
	request(data, size);
	return 0;
}
