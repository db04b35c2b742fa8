/* test_imap_resp.c: lib/imap_resp.c, the IMAP backend's lines before login. */
#include "unit.h"

#include <stdio.h>

#include "imap_resp.h"
#include "sasl.h"

static void
classify_table_names_every_kind_of_line(void **state)
{
	static const struct {
		const char *line, *tag;
		enum imap_resp_kind kind;
		const char *text;
	} rows[] = {
	    {"+ eyJzdGF0dXMiOiI0MDEifQ==", "A2", IMAP_R_CONTINUE, "eyJzdGF0dXMiOiI0MDEifQ=="},
	    {"+ ", "A2", IMAP_R_CONTINUE, ""},
	    {"+", "A2", IMAP_R_CONTINUE, ""},
	    {"+OK", "A2", IMAP_R_CONTINUE, "OK"},
	    {"* CAPABILITY IMAP4rev1 AUTH=PLAIN", "A1", IMAP_R_CAPS, ""},
	    {"* BYE going away", "A2", IMAP_R_BYE, "going away"},
	    {"* BYE", "A2", IMAP_R_BYE, ""},
	    {"* BYEBYE", "A2", IMAP_R_UNTAGGED, ""},
	    {"* 3 EXISTS", "A2", IMAP_R_UNTAGGED, ""},
	    {"A2 OK Logged in", "A2", IMAP_R_OK, "Logged in"},
	    {"A2 ok", "A2", IMAP_R_OK, ""},
	    {"A2 NO [UNAVAILABLE] later", "A2", IMAP_R_NO, "[UNAVAILABLE] later"},
	    {"A2 BAD what", "A2", IMAP_R_BAD, "what"},
	    {"A2 OKAY", "A2", IMAP_R_OTHER, ""},
	    {"A1 OK done", "A2", IMAP_R_OTHER, ""},
	    {"A2OK", "A2", IMAP_R_OTHER, ""},
	    {"", "A2", IMAP_R_OTHER, ""},
	    {"A2", "A2", IMAP_R_OTHER, ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct imap_caps caps;
		const char *text = NULL;
		size_t n = strlen(rows[i].line);

		memset(&caps, 0, sizeof(caps));
		assert_int_equal(imap_resp_classify(rows[i].line, rows[i].tag, &caps, &text),
		                 rows[i].kind);
		assert_non_null(text);
		assert_true(text >= rows[i].line && text <= rows[i].line + n);
		if (rows[i].kind != IMAP_R_CAPS)
			assert_string_equal(text, rows[i].text);
	}
}

static void
capability_line_sets_the_list_and_the_flags(void **state)
{
	struct imap_caps caps;
	const char *text;
	(void)state;
	memset(&caps, 0, sizeof(caps));
	assert_int_equal(imap_resp_classify("* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ auth=plain "
	                                    "AUTH=XOAUTH2 AUTH=OAUTHBEARER AUTH=LOGINX ",
	                                    "A1", &caps, &text),
	                 IMAP_R_CAPS);
	assert_string_equal(caps.list, "IMAP4rev1 SASL-IR LITERAL+ auth=plain AUTH=XOAUTH2 "
	                               "AUTH=OAUTHBEARER AUTH=LOGINX");
	assert_true(caps.auth_plain && caps.sasl_ir && caps.literal_plus);
	assert_false(caps.login_disabled);
	assert_int_equal(caps.mechs, SASL_MECH_PLAIN | SASL_MECH_XOAUTH2 | SASL_MECH_OAUTHBEARER);
	/* without caps, the line is only untagged */
	assert_int_equal(imap_resp_classify("* CAPABILITY X", "A1", NULL, &text), IMAP_R_UNTAGGED);
}

static void
capabilities_are_kept_printable_and_cut(void **state)
{
	struct imap_caps caps;
	static char big[IMAP_CAPS_MAX * 2];
	(void)state;
	memset(&caps, 0, sizeof(caps));
	imap_caps_set(&caps, "A\x01] B\x7f\xc3\xa4 C", 10);
	assert_string_equal(caps.list, "A   B    C");
	memset(big, 'x', sizeof(big) - 1);
	imap_caps_set(&caps, big, sizeof(big) - 1);
	assert_int_equal(strlen(caps.list), IMAP_CAPS_MAX - 1);
}

static void
capability_code_is_read_from_resp_text(void **state)
{
	struct imap_caps caps;
	const char *text;
	bool bye;
	(void)state;
	memset(&caps, 0, sizeof(caps));
	assert_true(
	    imap_resp_greeting("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi", &text, &bye));
	assert_true(imap_resp_caps_code(text, &caps));
	assert_string_equal(caps.list, "IMAP4rev1 LOGINDISABLED");
	assert_true(caps.login_disabled);
	assert_false(imap_resp_caps_code("[CAPABILITY unterminated", &caps));
	assert_false(imap_resp_caps_code("[ALERT] x", &caps));
	assert_string_equal(caps.list, "IMAP4rev1 LOGINDISABLED");
	assert_false(imap_resp_greeting("* BYE no", &text, &bye));
	assert_true(bye);
	assert_false(imap_resp_greeting("+OK pop3", &text, &bye));
	assert_false(bye);
	assert_true(imap_resp_greeting("* OK", &text, &bye));
	assert_string_equal(text, "");
}

static void
unavailable_code_is_told_apart(void **state)
{
	(void)state;
	assert_true(imap_resp_unavailable("[UNAVAILABLE] later"));
	assert_true(imap_resp_unavailable("[unavailable]"));
	assert_false(imap_resp_unavailable("[AUTHENTICATIONFAILED] no"));
	assert_false(imap_resp_unavailable(""));
}

static void
caps_has_matches_whole_words_only(void **state)
{
	(void)state;
	assert_true(imap_caps_has("A AUTH=PLAIN B", "auth=plain"));
	assert_false(imap_caps_has("A AUTH=PLAINX B", "AUTH=PLAIN"));
	assert_false(imap_caps_has("", "A"));
	assert_true(imap_caps_has("A", "A"));
}

static void
caps_drop_removes_every_word_with_the_prefix(void **state)
{
	static const struct {
		const char *in, *out;
	} rows[] = {
	    {"* CAPABILITY IMAP4rev1 COMPRESS=DEFLATE IDLE\r\n", "* CAPABILITY IMAP4rev1 IDLE\r\n"},
	    {"* CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE\r\n", "* CAPABILITY IMAP4rev1 IDLE\r\n"},
	    {"COMPRESS=DEFLATE IMAP4rev1", "IMAP4rev1"},
	    {"IMAP4rev1 compress=deflate COMPRESS=X ID", "IMAP4rev1 ID"},
	    {"IMAP4rev1 COMPRESS ID", "IMAP4rev1 COMPRESS ID"}, /* not the prefix */
	    {"COMPRESS=DEFLATE", ""},
	    {"", ""},
	    {"* CAPABILITY IMAP4rev1\r\n", "* CAPABILITY IMAP4rev1\r\n"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char b[128];
		size_t n = strlen(rows[i].in);

		memcpy(b, rows[i].in, n);
		n = imap_caps_drop(b, n, "COMPRESS=");
		b[n] = '\0';
		assert_string_equal(b, rows[i].out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(classify_table_names_every_kind_of_line),
	    cmocka_unit_test(capability_line_sets_the_list_and_the_flags),
	    cmocka_unit_test(capabilities_are_kept_printable_and_cut),
	    cmocka_unit_test(capability_code_is_read_from_resp_text),
	    cmocka_unit_test(unavailable_code_is_told_apart),
	    cmocka_unit_test(caps_has_matches_whole_words_only),
	    cmocka_unit_test(caps_drop_removes_every_word_with_the_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
