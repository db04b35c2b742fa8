/* test_dialog.c: lib/dialog.c, where a relayed conversation stands. */
#include "unit.h"

#include "dialog.h"

/* Feed one side s in chunks of at most step bytes (0: all at once). */
static void
feed(struct dialog *d, char side, const char *s, size_t step)
{
	size_t n = strlen(s);

	for (size_t at = 0; at < n;) {
		size_t k = step == 0 || n - at < step ? n - at : step;
		if (side == 'C')
			dialog_client(d, (const uint8_t *)s + at, k);
		else
			(void)dialog_server(d, (const uint8_t *)s + at, k);
		at += k;
	}
}

/* A script: "C..." client bytes, "S..." server bytes, "=1"/"=0" at rest or
 * not, "=o" opaque. */
static void
play(enum proto_kind proto, const char *const *steps, size_t n, size_t step)
{
	struct dialog d;

	dialog_init(&d, proto);
	assert_true(dialog_at_rest(&d));
	for (size_t i = 0; i < n; i++) {
		const char *s = steps[i];
		if (s[0] == '=') {
			if (s[1] == 'o') {
				assert_true(dialog_opaque(&d));
			} else if (dialog_at_rest(&d) != (s[1] == '1')) {
				fail_msg("step %zu (chunks of %zu): at rest should be %c", i, step,
				         s[1]);
			}
			continue;
		}
		feed(&d, s[0], s + 1, step);
	}
}

/* Every script is played whole, then one byte at a time, then in odd
 * chunks: where the reads split the bytes must not matter. */
static void
play_all_ways(enum proto_kind proto, const char *const *steps, size_t n)
{
	static const size_t steps_of[] = {0, 1, 2, 3, 7};

	for (size_t i = 0; i < sizeof(steps_of) / sizeof(steps_of[0]); i++)
		play(proto, steps, n, steps_of[i]);
}

#define PLAY(proto, ...)                                                                           \
	do {                                                                                       \
		static const char *const s_[] = {__VA_ARGS__};                                     \
		play_all_ways(proto, s_, sizeof(s_) / sizeof(s_[0]));                              \
	} while (0)

static void
imap_line_end_inside_a_literal_is_not_a_boundary(void **state)
{
	(void)state;
	PLAY(PROTO_IMAP, "Ca FETCH 1 BODY[]\r\n", "=0", "S* 1 FETCH (BODY[] {12}\r\n", "=0",
	     "Shello\r\n", "=0",                 /* 8 of the 12 bytes, ending in a line end */
	     "Sx\r\n\r", "=0", "S\n)\r\n", "=0", /* the literal is over; the response is not */
	     "Sa OK done\r\n", "=1");
}

static void
imap_literal8_and_nested_literals(void **state)
{
	(void)state;
	PLAY(PROTO_IMAP, "Ca FETCH 1 (BINARY[1] BODY[2])\r\n",
	     "S* 1 FETCH (BINARY[1] ~{3}\r\n\n\n\n BODY[2] {0}\r\n)\r\n", "=0", "Sa OK\r\n", "=1");
}

static void
imap_client_literals_sync_and_nonsync(void **state)
{
	(void)state;
	PLAY(PROTO_IMAP, "Ca APPEND INBOX {5}\r\n", "=0", "S+ go on\r\n", "=0", "Cab\r\nc", "=0",
	     "C\r\n", "=0", "Sa OK APPEND done\r\n", "=1", "Cb APPEND INBOX {3+}\r\n", "=0",
	     "C\r\n\r", "=0", "C\r\n", "=0", "Sb OK\r\n", "=1");
}

static void
imap_a_refused_synchronizing_literal_never_comes(void **state)
{
	(void)state;
	/* APPEND too big: NO instead of "+"; the client sends no literal */
	PLAY(PROTO_IMAP, "Ca APPEND INBOX {500}\r\n", "=0", "Sa NO [TOOBIG] too big\r\n", "=1",
	     "Cb NOOP\r\n", "=0", "Sb OK\r\n", "=1");
	/* an earlier command's answer meanwhile changes nothing */
	PLAY(PROTO_IMAP, "Cx NOOP\r\nb APPEND INBOX {5}\r\n", "Sx OK\r\n", "=0", "S+ go\r\n", "=0",
	     "Chello\r\n", "=0", "Sb OK\r\n", "=1");
	/* a non-synchronizing literal comes whatever the answer */
	PLAY(PROTO_IMAP, "Ca APPEND INBOX {3+}\r\n", "Sa NO no\r\n", "=0", "Cxyz\r\n", "=1",
	     "Cb NOOP\r\n", "=0", "Sb OK\r\n", "=1");
}

static void
imap_pipelined_commands_wait_for_every_answer(void **state)
{
	(void)state;
	PLAY(PROTO_IMAP, "Ca NOOP\r\nb NOOP\r\nc NOOP\r\n", "=0", "S* 3 EXISTS\r\n", "=0",
	     "Sa OK\r\nb OK\r\n", "=0", "Sc OK\r\n", "=1", "S* 4 EXISTS\r\n", "=1");
}

static void
imap_idle_is_at_rest_once_sent(void **state)
{
	(void)state;
	PLAY(PROTO_IMAP, "Ca IDLE\r\n", "=1", "S+ idling\r\n", "=1", "S* 2 EXISTS\r\n", "=1",
	     "CDONE\r\n", "=0", "Sa OK IDLE terminated\r\n", "=1", "Cb NOOP\r\n", "=0", "Sb OK\r\n",
	     "=1");
	/* a refused IDLE ends it: the next line is a command, not DONE */
	PLAY(PROTO_IMAP, "Ca IDLE\r\n", "Sa NO not now\r\n", "=1", "Cb NOOP\r\n", "=0", "Sb OK\r\n",
	     "=1");
}

static void
imap_compress_ok_turns_opaque_no_does_not(void **state)
{
	struct dialog d;
	static const char ok[] = "a OK DEFLATE active\r\n\x78\x9c\x0a";

	(void)state;
	PLAY(PROTO_IMAP, "Ca COMPRESS DEFLATE\r\n", "=0", "Sa NO [COMPRESSIONACTIVE]\r\n", "=1");
	PLAY(PROTO_IMAP, "Cx NOOP\r\n", "Ca COMPRESS DEFLATE\r\n", "Sx OK\r\n", "=0",
	     "Sa OK DEFLATE active\r\n", "=o", "=0");
	/* the compressed bytes after the OK are not read */
	dialog_init(&d, PROTO_IMAP);
	feed(&d, 'C', "a compress deflate\r\n", 0);
	assert_int_equal(dialog_server(&d, (const uint8_t *)ok, sizeof(ok) - 1),
	                 strlen("a OK DEFLATE active\r\n"));
	assert_true(dialog_opaque(&d));
	assert_false(dialog_at_rest(&d));
}

static void
imap_text_that_looks_like_a_literal_start_is_harmless(void **state)
{
	(void)state;
	/* "{" not at the line end, and a quoted "{5}": not literals */
	PLAY(PROTO_IMAP, "Ca SELECT \"{5}\"\r\n", "=0", "S* OK [x] {5} text\r\n",
	     "Sa OK \"{5}\"\r\n", "=1", "Cb LIST \"\" {a}\r\n", "Sb OK\r\n", "=1");
}

static void
pop3_multiline_answers_end_at_the_dot_line(void **state)
{
	(void)state;
	PLAY(PROTO_POP3, "CRETR 1\r\n", "=0", "S+OK 20 octets\r\nline\r\n", "=0",
	     "S..dot-stuffed\r\n.\r", "=0", "S\n", "=1", "CLIST 1\r\n", "S+OK 1 20\r\n", "=1",
	     "CLIST\r\n", "S+OK\r\n1 20\r\n", "=0", "S.\r\n", "=1", "CRETR 9\r\n",
	     "S-ERR no such message\r\n", "=1", "CUIDL\r\n", "S+OK\r\n.\r\n", "=1", "CNOOP\r\n",
	     "=0", "S+OK\r\n", "=1");
}

static void
pop3_pipelined_commands_keep_their_kinds(void **state)
{
	(void)state;
	PLAY(PROTO_POP3, "CSTAT\r\nTOP 1 0\r\nNOOP\r\n", "=0", "S+OK 1 20\r\n", "=0",
	     "S+OK\r\nSubject: x\r\n\r\n", "=0", "S.\r\n", "=0", "S+OK\r\n", "=1");
}

static void
imap_empty_lines_and_untagged_bad(void **state)
{
	(void)state;
	PLAY(PROTO_IMAP, "C\r\n", "=1", "C\n", "=1", "C!!!\r\n", "=0",
	     "S* BAD Error in IMAP command\r\n", "=1", "S* BAD again\r\n", "=1", "Ca NOOP\r\n",
	     "=0", "Sa OK\r\n", "=1");
}

static void
rest_needs_both_sides_between_messages(void **state)
{
	(void)state;
	PLAY(PROTO_IMAP, "Ca NOO", "=0", "CP\r\n", "=0", "Sa OK\r\n", "=1", "S* 1 EXI", "=0",
	     "SSTS\r\n", "=1");
}

static void
huge_literal_counts_are_skipped_not_stored(void **state)
{
	struct dialog d;
	static uint8_t body[65536];

	(void)state;
	memset(body, '\n', sizeof(body));
	dialog_init(&d, PROTO_IMAP);
	feed(&d, 'C', "a FETCH 1 BODY[]\r\n", 0);
	feed(&d, 'S', "* 1 FETCH (BODY[] {9999999999999999999}\r\n", 0);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(dialog_server(&d, body, sizeof(body)), sizeof(body));
		assert_false(dialog_at_rest(&d));
	}
	/* 20 digits: not an announcement we believe, so a plain line */
	dialog_init(&d, PROTO_IMAP);
	feed(&d, 'S', "* OK {99999999999999999999}\r\n", 0);
	assert_true(dialog_at_rest(&d));
}

static void
sieve_response_lines_end_at_ok_no_or_bye(void **state)
{
	(void)state;
	PLAY(PROTO_SIEVE, "CLISTSCRIPTS\r\n", "=0", "S\"a\" ACTIVE\r\n", "=0", "S\"b\"\r\n", "=0",
	     "SOK \"Listscripts completed.\"\r\n", "=1", "CGETSCRIPT \"x\"\r\n", "=0",
	     "SNo (NONEXISTENT) \"There is no script\"\r\n", "=1", "Cnoop\r\n", "=0",
	     "Sok (TAG \"t\") \"Done\"\r\n", "=1", "CLOGOUT\r\n", "=0", "SBYE\r\n", "=1",
	     /* an unasked BYE (or OK) counts nothing down below zero */
	     "SBYE \"Server shutting down\"\r\n", "=1", "CNOOP\r\n", "=0", "SOK\r\n", "=1");
}

static void
sieve_literals_are_skipped_by_length_on_both_sides(void **state)
{
	(void)state;
	/* a script holding what looks like a command, a response and a literal */
	PLAY(PROTO_SIEVE, "CPUTSCRIPT \"s\" {22+}\r\n", "=0", "CNOOP\r\nOK\r\n{3}\r\n", "=0",
	     "Ckeep;\r\n", "=0", "C\r\n", "=0", "SOK\r\n", "=1", "CGETSCRIPT \"s\"\r\n", "=0",
	     "S{12}\r\nOK\r\nBYE\r\nx\r\n", "=0", "S\r\n", "=0", "SOK\r\n", "=1",
	     /* a client "{n}" is counted the same way */
	     "CCHECKSCRIPT {4}\r\nOK\r\n", "=0", "C\r\n", "=0", "SNO \"bad\"\r\n", "=1");
}

static void
sieve_pipelined_commands_wait_for_every_answer(void **state)
{
	(void)state;
	PLAY(PROTO_SIEVE, "CNOOP\r\nCAPABILITY\r\nHAVESPACE \"s\" 10\r\n", "=0", "SOK\r\n", "=0",
	     "S\"IMPLEMENTATION\" \"Dovecot\"\r\n\"VERSION\" \"1.0\"\r\nOK\r\n", "=0",
	     "SNO (QUOTA/MAXSIZE) \"Quota exceeded\"\r\n", "=1", "C\r\n", "=1", "CNOO", "=0",
	     "CP\r\n", "=0", "SO", "=0", "SK\r\n", "=1");
}

static void
sieve_sasl_responses_are_not_commands(void **state)
{
	(void)state;
	PLAY(PROTO_SIEVE, "CAUTHENTICATE \"LOGIN\"\r\n", "=0", "S\"VXNlcm5hbWU6\"\r\n", "=0",
	     "C\"YWxpY2U=\"\r\n", "=0", "S{12}\r\nUGFzc3dvcmQ6\r\n", "=0", "C{4+}\r\ncGFz\r\n",
	     "=0", "SOK (SASL \"eA==\")\r\n", "=1", "CNOOP\r\n", "=0", "SOK\r\n", "=1",
	     /* cancelled: "*", then NO */
	     "CAUTHENTICATE \"PLAIN\"\r\n", "S\"\"\r\n", "C\"*\"\r\n", "=0",
	     "SNO \"Authentication cancelled\"\r\n", "=1",
	     /* pipelined before AUTHENTICATE: the NOOP's OK does not end it */
	     "CNOOP\r\nAUTHENTICATE \"PLAIN\"\r\n", "SOK\r\n", "=0", "S\"\"\r\n",
	     "C\"AGEAYg==\"\r\n", "=0", "SOK\r\n", "=1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(imap_line_end_inside_a_literal_is_not_a_boundary),
	    cmocka_unit_test(imap_literal8_and_nested_literals),
	    cmocka_unit_test(imap_client_literals_sync_and_nonsync),
	    cmocka_unit_test(imap_a_refused_synchronizing_literal_never_comes),
	    cmocka_unit_test(imap_pipelined_commands_wait_for_every_answer),
	    cmocka_unit_test(imap_idle_is_at_rest_once_sent),
	    cmocka_unit_test(imap_compress_ok_turns_opaque_no_does_not),
	    cmocka_unit_test(imap_text_that_looks_like_a_literal_start_is_harmless),
	    cmocka_unit_test(pop3_multiline_answers_end_at_the_dot_line),
	    cmocka_unit_test(pop3_pipelined_commands_keep_their_kinds),
	    cmocka_unit_test(imap_empty_lines_and_untagged_bad),
	    cmocka_unit_test(rest_needs_both_sides_between_messages),
	    cmocka_unit_test(huge_literal_counts_are_skipped_not_stored),
	    cmocka_unit_test(sieve_response_lines_end_at_ok_no_or_bye),
	    cmocka_unit_test(sieve_literals_are_skipped_by_length_on_both_sides),
	    cmocka_unit_test(sieve_pipelined_commands_wait_for_every_answer),
	    cmocka_unit_test(sieve_sasl_responses_are_not_commands),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
