/*
 * fuzz_pop3_resp.c: libFuzzer harness for lib/pop3_resp.c, what a POP3
 * backend says before login.  Lines as backend.c splits them; each goes
 * through every reader the POP3 dialog uses, whose results must keep the
 * header's promises.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_resp.h"
#include "sasl.h"
#include "fuzz_check.h"

#define LINE_MAX_FZ 8192 /* backend_impl.h BE_LINE_MAX */

static void
one_line(const char *line, struct pop3_capa *capa)
{
	const char *text;
	size_t n = strlen(line);
	enum pop3_resp_kind k = pop3_resp_classify(line, &text);

	CHECK(text != NULL && text >= line && text <= line + n);
	switch (k) {
	case POP3_R_OK:
		CHECK(strncmp(line, "+OK", 3) == 0);
		(void)pop3_resp_greeting_xclient(text);
		break;
	case POP3_R_ERR: {
		enum pop3_err_code e = pop3_resp_err_code(text);
		CHECK(strncmp(line, "-ERR", 4) == 0);
		CHECK(e == POP3_E_NONE || e == POP3_E_SYS_TEMP || e == POP3_E_IN_USE);
		break;
	}
	case POP3_R_CONTINUE: {
		char json[SASL_OAUTH_ERR_MAX + 1];
		size_t jlen = 0;
		CHECK(line[0] == '+' && strncmp(line, "+OK", 3) != 0);
		if (sasl_oauth_error_decode(text, strlen(text), json, &jlen) == SASL_OK)
			CHECK(jlen <= SASL_OAUTH_ERR_MAX && json[jlen] == '\0');
		else
			CHECK(jlen == 0);
		break;
	}
	case POP3_R_OTHER:
		break;
	}
	pop3_resp_capa_line(line, capa);
	CHECK((capa->mechs & ~0xfu) == 0);
	CHECK(!capa->sasl_plain || (capa->mechs & SASL_MECH_PLAIN));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[LINE_MAX_FZ + 1];
	struct pop3_capa capa;
	size_t n = 0;

	memset(&capa, 0, sizeof(capa));
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n') {
			if (n > 0 && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			one_line(line, &capa);
			n = 0;
			continue;
		}
		if (data[i] == '\0' || n == LINE_MAX_FZ)
			return 0;
		line[n++] = (char)data[i];
	}
	line[n] = '\0';
	one_line(line, &capa);
	return 0;
}
