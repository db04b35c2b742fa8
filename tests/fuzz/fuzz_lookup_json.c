/*
 * fuzz_lookup_json.c: libFuzzer harness for lib/lookup_json.c.  The first
 * two bytes pick the HTTP status, the rest is the answer's body; whatever
 * it holds, the answer keeps its bounds.  The same bytes make a user and
 * a password whose request body must parse back to them, or be refused
 * only for what JSON cannot carry (not UTF-8, a NUL).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lookup_answer_check.h"
#include "lookup_msg.h"
#include "utf8.h"

static bool
carried(const char *s, size_t len)
{
	return utf8_valid((const uint8_t *)s, len) && memchr(s, '\0', len) == NULL;
}

static void
same(json_t *o, const char *key, const char *want, size_t len)
{
	json_t *v = json_object_get(o, key);
	CHECK(json_is_string(v));
	CHECK(json_string_length(v) == len && memcmp(json_string_value(v), want, len) == 0);
}

static void
request(const uint8_t *data, size_t size, int flags)
{
	static char out[8192];
	struct lookup_query q = {0};
	size_t cut = size / 3, n;
	json_t *root;

	if (cut > LOOKUP_USER_MAX)
		cut = LOOKUP_USER_MAX;
	q.proto = flags & 1 ? PROTO_POP3 : PROTO_IMAP;
	q.method = (enum lookup_method)((flags >> 1) % 3);
	q.user = (const char *)data;
	q.user_len = cut;
	if (!(flags & 8)) {
		q.pass = (const char *)data + cut;
		q.pass_len = size - cut > LOOKUP_SECRET_MAX ? LOOKUP_SECRET_MAX : size - cut;
	}
	q.attempt = 1;
	q.client_ip = "2001:db8::7";
	q.client_port = 50122;
	if (flags & 16) {
		q.local_ip = "192.0.2.1";
		q.local_port = 993;
		q.ssl = true;
		q.ssl_protocol = "TLSv1.3";
	}
	if (flags & 32) {
		q.proxy_addr = "198.51.100.9";
		q.proxy_port = 4711;
	}
	n = lookup_json_request(&q, out, sizeof(out));
	if (n == (size_t)-1) {
		CHECK(!carried(q.user, q.user_len) || (q.pass && !carried(q.pass, q.pass_len)));
		return;
	}
	CHECK(n < sizeof(out) && out[n] == '\0' && strlen(out) == n);
	root = json_loadb(out, n, JSON_REJECT_DUPLICATES, NULL);
	CHECK(json_is_object(root));
	same(root, "user", q.user, q.user_len);
	if (q.pass != NULL)
		same(root, "password", q.pass, q.pass_len);
	else
		CHECK(json_object_get(root, "password") == NULL);
	CHECK((json_object_get(root, "local") != NULL) == (q.local_ip != NULL));
	CHECK((json_object_get(root, "proxy") != NULL) == (q.proxy_addr != NULL));
	json_decref(root);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = {200, 200, 200, 200, 404, 401, 403, 500, 502, 302, 0, 204};
	struct lookup_answer a;
	long status;

	if (size < 2)
		return 0;
	status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	lookup_json_answer(&a, status, (const char *)data + 2, size - 2);
	check_answer(&a);
	CHECK(a.status != LOOKUP_UNKNOWN || status == 404);
	CHECK(a.status != LOOKUP_REFUSED || status == 401 || status == 403);
	CHECK(a.status != LOOKUP_OK || status == 200);
	request(data + 2, size - 2, data[1]);
	return 0;
}
