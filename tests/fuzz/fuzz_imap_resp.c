/*
 * fuzz_imap_resp.c: libFuzzer harness for lib/imap_resp.c, what a backend
 * says to postern before login.  The input is split into lines as
 * backend.c does (at LF, CR dropped, no NUL inside, at most BE_LINE_MAX);
 * each line goes through every reader the IMAP dialog uses, and every
 * result must keep the header's promises: texts inside the line, the
 * capability list printable and bounded, the flags what the list says.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_resp.h"
#include "sasl.h"
#include "fuzz_check.h"

#define LINE_MAX_FZ 8192 /* backend_impl.h BE_LINE_MAX */

static void
check_inside(const char *line, const char *text)
{
	size_t n = strlen(line);

	CHECK(text != NULL);
	CHECK(text >= line && text <= line + n);
}

static void
check_caps(const struct imap_caps *c)
{
	size_t n = strnlen(c->list, sizeof(c->list));

	CHECK(n < sizeof(c->list));
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)c->list[i];
		CHECK(ch >= 0x20 && ch <= 0x7e && ch != ']');
	}
	CHECK(c->auth_plain == imap_caps_has(c->list, "AUTH=PLAIN"));
	CHECK(c->sasl_ir == imap_caps_has(c->list, "SASL-IR"));
	CHECK(c->literal_plus == imap_caps_has(c->list, "LITERAL+"));
	CHECK(c->login_disabled == imap_caps_has(c->list, "LOGINDISABLED"));
	CHECK((c->mechs & ~0xfu) == 0);
	CHECK(!!(c->mechs & SASL_MECH_PLAIN) == c->auth_plain);
	CHECK(!!(c->mechs & SASL_MECH_XOAUTH2) == imap_caps_has(c->list, "AUTH=XOAUTH2"));
}

static void
one_line(const char *line, struct imap_caps *caps)
{
	static const char *const tags[] = {"A0", "A1", "A2", "A3", "A4", "A9", "*", ""};
	const char *text;
	bool bye;

	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		enum imap_resp_kind k = imap_resp_classify(line, tags[i], caps, &text);
		check_inside(line, text);
		CHECK(k >= IMAP_R_CONTINUE && k <= IMAP_R_OTHER);
		if (k == IMAP_R_CONTINUE)
			CHECK(line[0] == '+');
		if (k == IMAP_R_OK || k == IMAP_R_NO || k == IMAP_R_BAD)
			CHECK(strncmp(line, tags[i], strlen(tags[i])) == 0);
		check_caps(caps);
		k = imap_resp_classify(line, tags[i], NULL, &text);
		CHECK(k != IMAP_R_CAPS);
		check_inside(line, text);
	}
	if (imap_resp_greeting(line, &text, &bye)) {
		check_inside(line, text);
		(void)imap_resp_caps_code(text, caps);
		check_caps(caps);
	}
	(void)imap_resp_unavailable(line);
	if (imap_resp_caps_code(line, caps))
		check_caps(caps);
	/* A continuation's text is what the OAuth error reader gets. */
	if (line[0] == '+') {
		char json[SASL_OAUTH_ERR_MAX + 1];
		size_t jlen = 0;
		enum sasl_rc rc = sasl_oauth_error_decode(line + 1, strlen(line + 1), json, &jlen);
		if (rc == SASL_OK)
			CHECK(jlen <= SASL_OAUTH_ERR_MAX && json[jlen] == '\0' && json[0] == '{');
		else
			CHECK(jlen == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[LINE_MAX_FZ + 1];
	struct imap_caps caps;
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
			return 0; /* backend.c fails the backend there */
		line[n++] = (char)data[i];
	}
	line[n] = '\0';
	one_line(line, &caps);
	return 0;
}
