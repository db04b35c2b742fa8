/*
 * lookup_answer_check.h: what any struct lookup_answer must hold after
 * either parser, whatever the input (the fuzz_lookup_* harnesses).
 */
#ifndef POSTERN_LOOKUP_ANSWER_CHECK_H
#define POSTERN_LOOKUP_ANSWER_CHECK_H

#include <string.h>

#include "fuzz_check.h"
#include "lookup_msg.h"

static void
check_printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	CHECK(n <= max);
	for (size_t i = 0; i < n; i++)
		CHECK(s[i] >= 0x20 && s[i] <= 0x7e);
}

static void
check_answer(const struct lookup_answer *a)
{
	CHECK(a->status == LOOKUP_OK || a->status == LOOKUP_REFUSED ||
	      a->status == LOOKUP_UNKNOWN || a->status == LOOKUP_TEMP);
	CHECK(a->wait_s >= -1 && a->wait_s <= LOOKUP_WAIT_MAX);
	CHECK(a->tls >= -1 && a->tls <= TLSM_STARTTLS);
	check_printable(a->why, LOOKUP_WHY_MAX);
	check_printable(a->backend, LOOKUP_NAME_MAX);
	check_printable(a->server, LOOKUP_SERVER_MAX);
	check_printable(a->error_sasl, LOOKUP_SASL_MAX);
	CHECK(a->user_len <= LOOKUP_USER_MAX && a->user[a->user_len] == '\0');
	CHECK(a->pass_len <= LOOKUP_PASS_MAX && a->pass[a->pass_len] == '\0');
	for (size_t i = 0; i < a->user_len; i++)
		CHECK((unsigned char)a->user[i] >= 0x20 && a->user[i] != 0x7f);
	for (size_t i = 0; i < a->pass_len; i++)
		CHECK((unsigned char)a->pass[i] >= 0x20 && a->pass[i] != 0x7f);
	CHECK(!a->has_user || a->user_len > 0);
	if (a->status == LOOKUP_REFUSED) {
		check_printable(a->text, LOOKUP_TEXT_MAX);
		CHECK(a->text[0] != '\0');
	}
	if (a->status == LOOKUP_TEMP)
		CHECK(a->why[0] != '\0');
	if (a->status == LOOKUP_OK) {
		CHECK(a->why[0] == '\0');
		CHECK((a->backend[0] != '\0') != (a->server[0] != '\0'));
		if (a->server[0] != '\0') {
			char again[LOOKUP_SERVER_MAX + 1];
			CHECK(a->port != 0);
			/* the canonical text reads back as itself */
			CHECK(
			    lookup_ip_literal(a->server, strlen(a->server), again, sizeof(again)));
			CHECK(strcmp(again, a->server) == 0);
		}
	} else {
		CHECK(a->pass_len == 0 && !a->has_pass);
	}
}

#endif
