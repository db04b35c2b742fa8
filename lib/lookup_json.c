/*
 * lookup_json.c: the JSON lookup protocol: the request body (jansson's
 * json_pack and json_dumpb) and the answer (json_loadb, duplicate keys
 * refused).  The password never enters jansson, whose buffers nobody
 * wipes: it is escaped straight into the caller's buffer.  Never logs.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "chars.h"
#include "lookup_msg.h"
#include "utf8.h"

/* ---- the request ---------------------------------------------------------- */

/*
 * s[0..len) as a JSON string's inside (RFC 8259 §7) at out + *at: '"',
 * '\\' and control bytes escaped, UTF-8 as it is.  -1 when it does not
 * fit in cap (room for what follows is the caller's), holds a NUL or is
 * not UTF-8.
 */
static int
json_escape_into(char *out, size_t cap, size_t *at, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)s;
	size_t n = *at;

	for (size_t i = 0; i < len;) {
		size_t k = utf8_seq_len(p + i, len - i);
		if (k == 0 || p[i] == 0)
			return -1;
		if (k > 1 || (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')) {
			if (cap - n <= k)
				return -1;
			memcpy(out + n, p + i, k);
			n += k;
		} else if (p[i] == '"' || p[i] == '\\') {
			if (cap - n <= 2)
				return -1;
			out[n++] = '\\';
			out[n++] = (char)p[i];
		} else {
			if (cap - n <= 6)
				return -1;
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[p[i] >> 4];
			out[n + 5] = hex[p[i] & 0xf];
			n += 6;
		}
		i += k;
	}
	*at = n;
	return 0;
}

/* The body without the password; NULL when a string is not UTF-8. */
static json_t *
request_object(const struct lookup_query *q)
{
	json_t *o, *sub;

	if (memchr(q->user, '\0', q->user_len) != NULL)
		return NULL;
	o = json_pack("{s:s%, s:s, s:s, s:I, s:{s:s, s:i}}", "user", q->user, q->user_len,
	              "protocol", lookup_proto_name(q->proto), "method",
	              lookup_method_name(q->method), "attempt", (json_int_t)q->attempt, "client",
	              "ip", q->client_ip, "port", (int)q->client_port);
	if (o == NULL)
		return NULL;
	if (q->local_ip != NULL) {
		sub = json_pack("{s:s, s:i}", "ip", q->local_ip, "port", (int)q->local_port);
		if (json_object_set_new(o, "local", sub) < 0)
			goto fail;
	}
	sub = json_pack("{s:b, s:s?, s:s?}", "on", (int)q->ssl, "protocol", q->ssl_protocol,
	                "cipher", q->ssl_cipher);
	if (json_object_set_new(o, "tls", sub) < 0)
		goto fail;
	if (q->proxy_addr != NULL) {
		sub = json_pack("{s:s, s:i, s:s?, s:i}", "addr", q->proxy_addr, "port",
		                (int)q->proxy_port, "server_addr", q->proxy_server_addr,
		                "server_port", (int)q->proxy_server_port);
		if (json_object_set_new(o, "proxy", sub) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

size_t
lookup_json_request(const struct lookup_query *q, char *out, size_t cap)
{
	static const char key[] = ",\"password\":\"";
	json_t *o = request_object(q);
	size_t n;

	if (o == NULL)
		return (size_t)-1;
	n = json_dumpb(o, out, cap, JSON_COMPACT);
	json_decref(o);
	if (n < 2 || n >= cap || out[n - 1] != '}')
		goto fail;
	if (q->pass == NULL) {
		out[n] = '\0';
		return n;
	}
	/* ...} becomes ...,"password":"..."} */
	n--;
	if (cap - n <= sizeof(key) - 1)
		goto fail;
	memcpy(out + n, key, sizeof(key) - 1);
	n += sizeof(key) - 1;
	if (json_escape_into(out, cap, &n, q->pass, q->pass_len) < 0 || cap - n <= 2)
		goto fail;
	out[n++] = '"';
	out[n++] = '}';
	out[n] = '\0';
	return n;
fail:
	OPENSSL_cleanse(out, cap);
	if (cap > 0)
		out[0] = '\0';
	return (size_t)-1;
}

/* ---- the answer ----------------------------------------------------------- */

static void
temp(struct lookup_answer *a, const char *why)
{
	a->status = LOOKUP_TEMP;
	snprintf(a->why, sizeof(a->why), "%s", why);
}

/* A backend's name as the config allows one (cfg_valid_name): letters,
 * digits, '.', '_' and '-'. */
static bool
config_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > LOOKUP_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An optional member: absent or null is none; true when it is there. */
static json_t *
member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_null(v) ? NULL : v;
}

/* 200: the route.  Returns the why of a malformed one, or NULL. */
static const char *
read_route(struct lookup_answer *a, json_t *o)
{
	json_t *named = member(o, "backend"), *server = member(o, "server");
	json_t *port = member(o, "port"), *user = member(o, "user"), *tls = member(o, "tls");

	if ((named != NULL) == (server != NULL))
		return "the answer names both or neither of \"backend\" and \"server\"";
	if (named != NULL) {
		size_t len = json_string_length(named);
		if (!json_is_string(named) || !config_name_ok(json_string_value(named), len))
			return "\"backend\" is not a backend's name";
		if (port != NULL)
			return "\"port\" comes with \"server\", not with \"backend\"";
		memcpy(a->backend, json_string_value(named), len);
		a->backend[len] = '\0';
	} else {
		const char *s = json_string_value(server);
		json_int_t p = json_integer_value(port);
		if (s == NULL ||
		    !lookup_ip_literal(s, json_string_length(server), a->server, sizeof(a->server)))
			return "\"server\" is not an IP address";
		if (!json_is_integer(port) || p < 1 || p > 65535)
			return "\"port\" is not a port (1..65535)";
		a->port = (uint16_t)p;
	}
	if (user != NULL) {
		size_t len = json_string_length(user);
		if (!json_is_string(user) || len == 0 || len > LOOKUP_USER_MAX ||
		    !chars_no_control(json_string_value(user), len))
			return "\"user\" is not a user name";
		memcpy(a->user, json_string_value(user), len);
		a->user[len] = '\0';
		a->user_len = len;
		a->has_user = true;
	}
	if (tls != NULL) {
		const char *t = json_string_value(tls);
		if (t != NULL && strcmp(t, "none") == 0)
			a->tls = TLSM_NONE;
		else if (t != NULL && strcmp(t, "implicit") == 0)
			a->tls = TLSM_IMPLICIT;
		else if (t != NULL && strcmp(t, "starttls") == 0)
			a->tls = TLSM_STARTTLS;
		else
			return "\"tls\" is not \"none\", \"implicit\" or \"starttls\"";
	}
	return NULL;
}

void
lookup_json_answer(struct lookup_answer *a, long http_status, const char *body, size_t len)
{
	json_t *root;
	json_error_t err;
	const char *why;

	lookup_answer_init(a);
	if (len > LOOKUP_BODY_MAX) {
		temp(a, "the answer's body is over its bound");
		return;
	}
	if (http_status == 404) {
		a->status = LOOKUP_UNKNOWN;
		a->why[0] = '\0';
		return;
	}
	if (http_status == 401 || http_status == 403) {
		json_t *msg = NULL;
		/* the body is optional here: a malformed one is no message */
		root = len > 0 ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
		if (json_is_object(root))
			msg = json_object_get(root, "message");
		if (json_is_string(msg))
			lookup_text_clean(a->text, json_string_value(msg), json_string_length(msg));
		else
			lookup_text_clean(a->text, "", 0);
		json_decref(root);
		a->status = LOOKUP_REFUSED;
		a->why[0] = '\0';
		return;
	}
	if (http_status != 200) {
		snprintf(a->why, sizeof(a->why), "the service answered HTTP status %ld",
		         http_status);
		return;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		snprintf(a->why, sizeof(a->why), "the answer is not JSON (line %d, column %d)",
		         err.line, err.column);
		return;
	}
	why = json_is_object(root) ? read_route(a, root) : "the answer is not a JSON object";
	json_decref(root);
	if (why != NULL) {
		a->backend[0] = a->server[0] = a->user[0] = '\0';
		a->port = 0;
		a->user_len = 0;
		a->has_user = false;
		a->tls = -1;
		temp(a, why);
		return;
	}
	a->status = LOOKUP_OK;
	a->why[0] = '\0';
}
