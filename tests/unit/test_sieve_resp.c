/* test_sieve_resp.c: lib/sieve_resp.c, the ManageSieve backend's lines before login. */
#include "unit.h"

#include "sasl.h"
#include "sieve_resp.h"

/* Dovecot 2.3 / Pigeonhole 0.5's greeting (Debian 12), as managesieve-login
 * sends it to a client in login_trusted_networks. */
static const char *const dovecot_greeting[] = {
    "\"IMPLEMENTATION\" \"Dovecot (Debian) Pigeonhole\"",
    "\"SIEVE\" \"fileinto reject envelope encoded-character vacation subaddress "
    "comparator-i;ascii-numeric relational regex imap4flags copy include variables body "
    "enotify environment mailbox date index ihave duplicate mime foreverypart extracttext\"",
    "\"NOTIFY\" \"mailto\"",
    "\"SASL\" \"PLAIN LOGIN\"",
    "\"STARTTLS\"",
    "\"VERSION\" \"1.0\"",
    "\"XCLIENT\"",
    "OK \"Dovecot ready.\"",
};

static void
dovecot_greeting_fills_the_caps(void **state)
{
	struct sieve_caps caps;
	struct sieve_resp r;
	size_t n = sizeof(dovecot_greeting) / sizeof(dovecot_greeting[0]);
	(void)state;
	memset(&caps, 0, sizeof(caps));
	for (size_t i = 0; i + 1 < n; i++) {
		enum sieve_resp_kind k = sieve_resp_parse(dovecot_greeting[i], &r);
		assert_true(k == SIEVE_R_CAP || k == SIEVE_R_STRING);
		sieve_caps_add(&caps, &r);
	}
	assert_int_equal(sieve_resp_parse(dovecot_greeting[n - 1], &r), SIEVE_R_OK);
	assert_string_equal(r.text, "Dovecot ready.");
	assert_string_equal(r.code, "");
	assert_string_equal(caps.implementation, "Dovecot (Debian) Pigeonhole");
	assert_non_null(strstr(caps.sieve, "fileinto reject envelope"));
	assert_non_null(strstr(caps.sieve, "extracttext"));
	assert_string_equal(caps.notify, "mailto");
	assert_int_equal(caps.mechs, SASL_MECH_PLAIN | SASL_MECH_LOGIN);
	assert_true(caps.have_sasl);
	assert_true(caps.starttls);
	assert_true(caps.have_version);
	assert_true(caps.xclient);
	assert_string_equal(caps.maxredirects, "");
}

static void
status_table_reads_codes_args_and_text(void **state)
{
	static const struct {
		const char *line;
		enum sieve_resp_kind kind;
		const char *code, *arg, *text;
	} rows[] = {
	    {"OK", SIEVE_R_OK, "", "", ""},
	    {"ok \"Logged in.\"", SIEVE_R_OK, "", "", "Logged in."},
	    {"OK (WARNINGS) \"line 3: hm\"", SIEVE_R_OK, "WARNINGS", "", "line 3: hm"},
	    {"OK (sasl \"cnNwYXV0aD1lYQ==\") \"Logged in.\"", SIEVE_R_OK, "SASL",
	     "cnNwYXV0aD1lYQ==", "Logged in."},
	    {"NO (TRYLATER) \"Try later\"", SIEVE_R_NO, "TRYLATER", "", "Try later"},
	    {"NO (trylater)", SIEVE_R_NO, "TRYLATER", "", ""},
	    {"NO \"Authentication failed.\"", SIEVE_R_NO, "", "", "Authentication failed."},
	    {"NO (QUOTA/MAXSIZE) \"Too big\"", SIEVE_R_NO, "QUOTA/MAXSIZE", "", "Too big"},
	    {"NO (TAG \"x1\") \"Done\"", SIEVE_R_NO, "TAG", "x1", "Done"},
	    {"BYE (REFERRAL \"sieve://b.example.org\") \"Go there\"", SIEVE_R_BYE, "REFERRAL",
	     "sieve://b.example.org", "Go there"},
	    {"Bye \"Disconnected for inactivity.\"", SIEVE_R_BYE, "", "",
	     "Disconnected for inactivity."},
	    {"NO (X-EXT 12 (a b)) \"t\"", SIEVE_R_NO, "X-EXT", "12 (a b)", "t"},
	    {"NO (X \"a)b\") \"t\"", SIEVE_R_NO, "X", "a)b", "t"},
	    {"OK \"\"", SIEVE_R_OK, "", "", ""},
	    {"OK \"say \\\"hi\\\" \\\\o/\"", SIEVE_R_OK, "", "", "say \"hi\" \\o/"},
	    {"OK Logged in", SIEVE_R_OK, "", "", "Logged in"},             /* bare text */
	    {"NO (TRYLATER \"t\"", SIEVE_R_NO, "", "", "(TRYLATER \"t\""}, /* unclosed */
	    {"OK \"a\\x\"", SIEVE_R_OK, "", "", "\"a\\x\""},               /* bad escape */
	    {"OK \"a\" junk", SIEVE_R_OK, "", "", "\"a\" junk"},
	    {"OKAY", SIEVE_R_OTHER, "", "", ""},
	    {"NOPE \"x\"", SIEVE_R_OTHER, "", "", ""},
	    {"BYEBYE", SIEVE_R_OTHER, "", "", ""},
	    {"", SIEVE_R_OTHER, "", "", ""},
	    {"* OK IMAP", SIEVE_R_OTHER, "", "", ""},
	    {"+OK POP3", SIEVE_R_OTHER, "", "", ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sieve_resp r;
		assert_int_equal(sieve_resp_parse(rows[i].line, &r), rows[i].kind);
		assert_int_equal(r.kind, rows[i].kind);
		assert_string_equal(r.code, rows[i].code);
		assert_string_equal(r.code_arg, rows[i].arg);
		assert_string_equal(r.text, rows[i].text);
	}
}

static void
strings_and_caps_are_told_apart(void **state)
{
	static const struct {
		const char *line;
		enum sieve_resp_kind kind;
		const char *name, *value;
	} rows[] = {
	    {"\"VXNlcm5hbWU6\"", SIEVE_R_STRING, "VXNLCM5HBWU6", "VXNlcm5hbWU6"},
	    {"\"\"", SIEVE_R_STRING, "", ""},
	    {"\"starttls\"", SIEVE_R_STRING, "STARTTLS", "starttls"},
	    {"\"sasl\" \"\"", SIEVE_R_CAP, "SASL", ""},
	    {"\"MaxRedirects\" \"4\"", SIEVE_R_CAP, "MAXREDIRECTS", "4"},
	    {"\"a\\\"b\" \"c\\\\d\"", SIEVE_R_CAP, "A\"B", "c\\d"},
	    {"\"SASL\" PLAIN", SIEVE_R_OTHER, "", ""},
	    {"\"SASL\"  \"PLAIN\"", SIEVE_R_OTHER, "", ""},
	    {"\"SASL\" \"PLAIN\" \"x\"", SIEVE_R_OTHER, "", ""},
	    {"\"SASL\" \"PLAIN", SIEVE_R_OTHER, "", ""},
	    {"\"SASL", SIEVE_R_OTHER, "", ""},
	    {"\"a\\nb\"", SIEVE_R_OTHER, "", ""},
	    {"\"SASL\" {11}", SIEVE_R_LITERAL, "", ""},
	    {"{24}", SIEVE_R_LITERAL, "", ""},
	    {"OK {15+}", SIEVE_R_LITERAL, "", ""},
	    {"NO (TRYLATER) {9}", SIEVE_R_LITERAL, "", ""},
	    {"OK {}", SIEVE_R_OK, "", ""},
	    {"OK {+}", SIEVE_R_OK, "", ""},
	    {"OK x}", SIEVE_R_OK, "", ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sieve_resp r;
		assert_int_equal(sieve_resp_parse(rows[i].line, &r), rows[i].kind);
		assert_string_equal(r.name, rows[i].name);
		assert_string_equal(r.value, rows[i].value);
		assert_false(r.value_cut);
	}
}

static void
long_values_are_cut_and_flagged(void **state)
{
	static char line[4096];
	struct sieve_resp r;
	struct sieve_caps caps;
	size_t o;
	(void)state;
	/* a 2000-octet challenge: value cut to the array, flagged */
	line[0] = '"';
	memset(line + 1, 'A', 2000);
	strcpy(line + 2001, "\"");
	assert_int_equal(sieve_resp_parse(line, &r), SIEVE_R_STRING);
	assert_true(r.value_cut);
	assert_int_equal(strlen(r.value), SIEVE_CAP_VALUE_MAX);
	assert_string_equal(r.name, ""); /* too long for a name */
	/* a name longer than any capability: no name, so no match */
	o = (size_t)sprintf(line, "\"");
	memset(line + o, 'S', 40);
	strcpy(line + o + 40, "\" \"PLAIN\"");
	assert_int_equal(sieve_resp_parse(line, &r), SIEVE_R_OTHER);
	/* a long text is cut */
	o = (size_t)sprintf(line, "NO \"");
	memset(line + o, 't', 1000);
	strcpy(line + o + 1000, "\"");
	assert_int_equal(sieve_resp_parse(line, &r), SIEVE_R_NO);
	assert_int_equal(strlen(r.text), SIEVE_RESP_TEXT_MAX - 1);
	/* a cut SASL list: its last word is not trusted ("PLAINX" cut to "PLAIN") */
	o = (size_t)sprintf(line, "\"SASL\" \"LOGIN ");
	memset(line + o, ' ', SIEVE_CAP_VALUE_MAX - 11);
	o += SIEVE_CAP_VALUE_MAX - 11;
	strcpy(line + o, "PLAINX\"");
	memset(&caps, 0, sizeof(caps));
	assert_int_equal(sieve_resp_parse(line, &r), SIEVE_R_CAP);
	assert_true(r.value_cut);
	sieve_caps_add(&caps, &r);
	assert_int_equal(caps.mechs, SASL_MECH_LOGIN);
	/* a long implementation is cut to its array */
	o = (size_t)sprintf(line, "\"IMPLEMENTATION\" \"");
	memset(line + o, 'i', 600);
	strcpy(line + o + 600, "\"");
	assert_int_equal(sieve_resp_parse(line, &r), SIEVE_R_CAP);
	sieve_caps_add(&caps, &r);
	assert_int_equal(strlen(caps.implementation), SIEVE_RESP_TEXT_MAX - 1);
	/* a long response code is cut, its argument too */
	o = (size_t)sprintf(line, "NO (");
	memset(line + o, 'c', 100);
	strcpy(line + o + 100, ") \"x\"");
	assert_int_equal(sieve_resp_parse(line, &r), SIEVE_R_NO);
	assert_int_equal(strlen(r.code), SIEVE_RESP_CODE_MAX - 1);
	assert_string_equal(r.text, "x");
}

static void
bytes_outside_printable_ascii_become_question_marks(void **state)
{
	struct sieve_resp r;
	(void)state;
	assert_int_equal(sieve_resp_parse("NO \"bad\x1b[31m\xc3\xa9\x7f\"", &r), SIEVE_R_NO);
	assert_string_equal(r.text, "bad?[31m???");
	assert_int_equal(sieve_resp_parse("OK \x01\xff raw", &r), SIEVE_R_OK);
	assert_string_equal(r.text, "?? raw");
	assert_int_equal(sieve_resp_parse("\"IMPLEMENTATION\" \"Caf\xc3\xa9\"", &r), SIEVE_R_CAP);
	assert_string_equal(r.value, "Caf??");
	assert_int_equal(sieve_resp_parse("NO (TAG \"\x0d\") \"x\"", &r), SIEVE_R_NO);
	assert_string_equal(r.code_arg, "?");
}

static void
caps_add_ignores_unknown_names_and_other_kinds(void **state)
{
	struct sieve_caps caps;
	struct sieve_resp r;
	(void)state;
	memset(&caps, 0, sizeof(caps));
	sieve_resp_parse("\"X-UNKNOWN\" \"PLAIN\"", &r);
	sieve_caps_add(&caps, &r);
	sieve_resp_parse("OK \"SASL\"", &r);
	sieve_caps_add(&caps, &r);
	assert_false(caps.have_sasl);
	assert_int_equal(caps.mechs, 0);
	sieve_resp_parse("\"sasl\" \"oauthbearer  xoauth2 plain-x \"", &r);
	sieve_caps_add(&caps, &r);
	assert_true(caps.have_sasl);
	assert_int_equal(caps.mechs, SASL_MECH_OAUTHBEARER | SASL_MECH_XOAUTH2);
	/* after login Dovecot sends an empty list: it replaces the bits */
	sieve_resp_parse("\"SASL\" \"\"", &r);
	sieve_caps_add(&caps, &r);
	assert_true(caps.have_sasl);
	assert_int_equal(caps.mechs, 0);
	sieve_resp_parse("\"MAXREDIRECTS\" \"12345678901234567890\"", &r);
	sieve_caps_add(&caps, &r);
	assert_string_equal(caps.maxredirects, "123456789012345");
	sieve_resp_parse("\"Notify\" \"mailto xmpp\"", &r);
	sieve_caps_add(&caps, &r);
	assert_string_equal(caps.notify, "mailto xmpp");
	assert_false(caps.starttls);
	assert_false(caps.xclient);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dovecot_greeting_fills_the_caps),
	    cmocka_unit_test(status_table_reads_codes_args_and_text),
	    cmocka_unit_test(strings_and_caps_are_told_apart),
	    cmocka_unit_test(long_values_are_cut_and_flagged),
	    cmocka_unit_test(bytes_outside_printable_ascii_become_question_marks),
	    cmocka_unit_test(caps_add_ignores_unknown_names_and_other_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
