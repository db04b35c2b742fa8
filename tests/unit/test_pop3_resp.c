/* test_pop3_resp.c: lib/pop3_resp.c, the POP3 backend's lines before login. */
#include "unit.h"

#include "pop3_resp.h"
#include "sasl.h"

static void
classify_table_names_every_kind_of_line(void **state)
{
	static const struct {
		const char *line;
		enum pop3_resp_kind kind;
		const char *text;
	} rows[] = {
	    {"+OK Logged in.", POP3_R_OK, "Logged in."},
	    {"+OK", POP3_R_OK, ""},
	    {"+OKAY", POP3_R_OTHER, ""},
	    {"-ERR [AUTH] Authentication failed.", POP3_R_ERR, "[AUTH] Authentication failed."},
	    {"-ERR", POP3_R_ERR, ""},
	    {"-ERRX", POP3_R_OTHER, ""},
	    {"+ eyJzdGF0dXMiOiI0MDEifQ==", POP3_R_CONTINUE, "eyJzdGF0dXMiOiI0MDEifQ=="},
	    {"+ ", POP3_R_CONTINUE, ""},
	    {"+", POP3_R_CONTINUE, ""},
	    {"+x", POP3_R_OTHER, ""},
	    {"", POP3_R_OTHER, ""},
	    {"SASL PLAIN", POP3_R_OTHER, ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *text = NULL;
		size_t n = strlen(rows[i].line);

		assert_int_equal(pop3_resp_classify(rows[i].line, &text), rows[i].kind);
		assert_true(text >= rows[i].line && text <= rows[i].line + n);
		assert_string_equal(text, rows[i].text);
	}
}

static void
rfc3206_codes_are_told_apart(void **state)
{
	(void)state;
	assert_int_equal(pop3_resp_err_code("[SYS/TEMP] later"), POP3_E_SYS_TEMP);
	assert_int_equal(pop3_resp_err_code("[sys/temp]"), POP3_E_SYS_TEMP);
	assert_int_equal(pop3_resp_err_code("[IN-USE] locked"), POP3_E_IN_USE);
	assert_int_equal(pop3_resp_err_code("[AUTH] no"), POP3_E_NONE);
	assert_int_equal(pop3_resp_err_code("[SYS/PERM] no"), POP3_E_NONE);
	assert_int_equal(pop3_resp_err_code(""), POP3_E_NONE);
}

static void
capa_lines_add_mechanisms_and_xclient(void **state)
{
	struct pop3_capa capa;
	(void)state;
	memset(&capa, 0, sizeof(capa));
	pop3_resp_capa_line("TOP", &capa);
	pop3_resp_capa_line("SASL  login XOAUTH2 PLAINX OAUTHBEARER ", &capa);
	assert_int_equal(capa.mechs, SASL_MECH_LOGIN | SASL_MECH_XOAUTH2 | SASL_MECH_OAUTHBEARER);
	assert_false(capa.sasl_plain);
	assert_false(capa.xclient);
	pop3_resp_capa_line("SASL PLAIN", &capa);
	assert_true(capa.sasl_plain);
	pop3_resp_capa_line("XCLIENTS", &capa);
	assert_false(capa.xclient);
	pop3_resp_capa_line("xclient ADDR PORT", &capa);
	assert_true(capa.xclient);
	pop3_resp_capa_line("SASL", &capa); /* no SP: not a SASL line */
	assert_true(pop3_resp_greeting_xclient("[XCLIENT] Dovecot ready."));
	assert_false(pop3_resp_greeting_xclient("Dovecot ready. [XCLIENT]"));
}

static void
mechanism_names_and_bits_round_trip(void **state)
{
	(void)state;
	for (unsigned i = 0; i < SASL_MECH_COUNT; i++) {
		const char *n = sasl_mech_name(1u << i);
		assert_non_null(n);
		assert_int_equal(sasl_mech_bit(n, strlen(n)), 1u << i);
	}
	assert_null(sasl_mech_name(0));
	assert_null(sasl_mech_name(3));
	assert_int_equal(sasl_mech_bit("plain", 5), SASL_MECH_PLAIN);
	assert_int_equal(sasl_mech_bit("PLAINX", 6), 0);
	assert_int_equal(sasl_mech_bit("PLAINX", 5), SASL_MECH_PLAIN);
	assert_int_equal(sasl_mech_bit("", 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(classify_table_names_every_kind_of_line),
	    cmocka_unit_test(rfc3206_codes_are_told_apart),
	    cmocka_unit_test(capa_lines_add_mechanisms_and_xclient),
	    cmocka_unit_test(mechanism_names_and_bits_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
