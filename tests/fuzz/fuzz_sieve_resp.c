/*
 * fuzz_sieve_resp.c: libFuzzer harness for lib/sieve_resp.c, what a
 * ManageSieve backend says before login.  Lines as backend.c splits them;
 * each goes through sieve_resp_parse() and sieve_caps_add(), whose results
 * must keep the header's promises: every field NUL-terminated inside its
 * array and printable, the kind agreeing with how the line starts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sasl.h"
#include "sieve_resp.h"
#include "fuzz_check.h"

#define LINE_MAX_FZ 8192 /* backend_impl.h BE_LINE_MAX */

/* NUL inside the array, nothing outside 0x20..0x7e before it. */
static void
field_ok(const char *f, size_t cap)
{
	size_t n = strnlen(f, cap);

	CHECK(n < cap);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)f[i] >= 0x20 && (unsigned char)f[i] <= 0x7e);
}

static bool
starts_with_word(const char *line, const char *w)
{
	size_t l = strlen(w);

	return strncasecmp(line, w, l) == 0 && (line[l] == ' ' || line[l] == '\0');
}

static void
one_line(const char *line, struct sieve_caps *caps)
{
	struct sieve_resp r;
	size_t n = strlen(line);
	enum sieve_resp_kind k;

	memset(&r, 0xa5, sizeof(r)); /* the parser must set every field */
	k = sieve_resp_parse(line, &r);
	CHECK(k == r.kind);
	field_ok(r.code, sizeof(r.code));
	field_ok(r.code_arg, sizeof(r.code_arg));
	field_ok(r.text, sizeof(r.text));
	field_ok(r.name, sizeof(r.name));
	field_ok(r.value, sizeof(r.value));
	for (const char *p = r.code; *p != '\0'; p++)
		CHECK(!(*p >= 'a' && *p <= 'z'));
	for (const char *p = r.name; *p != '\0'; p++)
		CHECK(!(*p >= 'a' && *p <= 'z'));
	switch (k) {
	case SIEVE_R_OK:
		CHECK(starts_with_word(line, "OK"));
		break;
	case SIEVE_R_NO:
		CHECK(starts_with_word(line, "NO"));
		break;
	case SIEVE_R_BYE:
		CHECK(starts_with_word(line, "BYE"));
		break;
	case SIEVE_R_CAP:
		CHECK(line[0] == '"' && line[n - 1] == '"');
		CHECK(r.name[0] != '\0');
		CHECK(r.code[0] == '\0' && r.text[0] == '\0');
		break;
	case SIEVE_R_STRING:
		CHECK(line[0] == '"' && n >= 2 && line[n - 1] == '"');
		CHECK(r.value_cut || strlen(r.value) <= n - 2);
		CHECK(r.code[0] == '\0' && r.text[0] == '\0');
		break;
	case SIEVE_R_LITERAL:
		CHECK(n >= 3 && line[n - 1] == '}');
		break;
	case SIEVE_R_OTHER:
		CHECK(r.code[0] == '\0' && r.text[0] == '\0' && r.name[0] == '\0' &&
		      r.value[0] == '\0');
		break;
	default:
		CHECK(0);
	}
	if (k != SIEVE_R_OK && k != SIEVE_R_NO && k != SIEVE_R_BYE)
		CHECK(r.code[0] == '\0' && r.code_arg[0] == '\0');
	if (k == SIEVE_R_STRING) {
		char json[SASL_OAUTH_ERR_MAX + 1];
		size_t jlen = 0;
		if (sasl_oauth_error_decode(r.value, strlen(r.value), json, &jlen) == SASL_OK)
			CHECK(jlen <= SASL_OAUTH_ERR_MAX && json[jlen] == '\0');
		else
			CHECK(jlen == 0);
	}
	sieve_caps_add(caps, &r);
	field_ok(caps->implementation, sizeof(caps->implementation));
	field_ok(caps->sieve, sizeof(caps->sieve));
	field_ok(caps->notify, sizeof(caps->notify));
	field_ok(caps->maxredirects, sizeof(caps->maxredirects));
	CHECK((caps->mechs & ~0xfu) == 0);
	CHECK(caps->mechs == 0 || caps->have_sasl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[LINE_MAX_FZ + 1];
	struct sieve_caps caps;
	size_t n = 0;

	memset(&caps, 0, sizeof(caps));
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n') {
			if (n > 0 && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			one_line(line, &caps);
			n = 0;
			continue;
		}
		if (data[i] == '\0' || n == LINE_MAX_FZ)
			return 0;
		line[n++] = (char)data[i];
	}
	line[n] = '\0';
	one_line(line, &caps);
	return 0;
}
