/* test_utf8.c: the RFC 3629 §4 validator on Markus Kuhn's decoder test cases. */
#include <string.h>

#include "unit.h"

#include "utf8.h"

static const struct {
	const char *in;
	size_t len; /* of in; 0: strlen */
	size_t seq; /* utf8_seq_len() of its first byte */
	bool valid;
} rows[] = {
    /* valid: 1, 2, 3 and 4 bytes, and each boundary (Kuhn 2.1, 2.2, 2.3) */
    {"a", 0, 1, true},
    {"\x7f", 0, 1, true},
    {"\xc2\x80", 0, 2, true},
    {"\xc3\xa9t\xc3\xa9", 0, 2, true},
    {"\xdf\xbf", 0, 2, true},
    {"\xe0\xa0\x80", 0, 3, true},
    {"\xe2\x82\xac", 0, 3, true},
    {"\xed\x9f\xbf", 0, 3, true}, /* U+D7FF, the last before the surrogates */
    {"\xee\x80\x80", 0, 3, true}, /* U+E000 */
    {"\xef\xbf\xbd", 0, 3, true}, /* U+FFFD */
    {"\xef\xbf\xbf", 0, 3, true}, /* U+FFFF: a noncharacter, still well-formed */
    {"\xf0\x90\x80\x80", 0, 4, true},
    {"\xf0\x9f\x98\x80", 0, 4, true},
    {"\xf4\x8f\xbf\xbf", 0, 4, true}, /* U+10FFFF */
    /* overlongs (Kuhn 4.1, 4.2) */
    {"\xc0\xaf", 0, 0, false},
    {"\xc1\xbf", 0, 0, false},
    {"\xe0\x80\xaf", 0, 0, false},
    {"\xe0\x80\xafx", 0, 0, false},
    {"\xe0\x9f\xbf", 0, 0, false},
    {"\xf0\x80\x80\xaf", 0, 0, false},
    {"\xf0\x8f\xbf\xbf", 0, 0, false},
    {"\xc0\x80", 0, 0, false}, /* overlong NUL */
    /* surrogates (Kuhn 5.1, 5.2) */
    {"\xed\xa0\x80", 0, 0, false},
    {"\xed\xbf\xbf", 0, 0, false},
    {"\xed\xa0\x80\xed\xb0\x80", 0, 0, false},
    /* above U+10FFFF, and lead bytes that never occur (Kuhn 3.5) */
    {"\xf4\x90\x80\x80", 0, 0, false},
    {"\xf5\x80\x80\x80", 0, 0, false},
    {"\xf8\x88\x80\x80\x80", 0, 0, false},
    {"\xfc\x84\x80\x80\x80\x80", 0, 0, false},
    {"\xfe", 0, 0, false},
    {"\xff", 0, 0, false},
    /* stray continuation bytes (Kuhn 3.1) */
    {"\x80", 0, 0, false},
    {"\xbf", 0, 0, false},
    {"a\x80", 0, 1, false},
    {"\xc3\xa9\xa9", 0, 2, false},
    /* a lead byte followed by a non-continuation (Kuhn 3.2) */
    {"\xc3 ", 0, 0, false},
    {"\xe2\x82 ", 0, 0, false},
    /* cut short (Kuhn 3.3, 3.4) */
    {"\xc3", 0, 0, false},
    {"\xe2\x82", 0, 0, false},
    {"\xf0\x9f\x98", 0, 0, false},
    {"\xf4", 0, 0, false},
    /* a NUL is one valid byte */
    {"a\0b", 3, 1, true},
};

static void
each_sequence_is_judged_by_the_rfc_3629_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const uint8_t *s = (const uint8_t *)rows[i].in;
		size_t len = rows[i].len ? rows[i].len : strlen(rows[i].in);

		if (utf8_seq_len(s, len) != rows[i].seq || utf8_valid(s, len) != rows[i].valid)
			fail_msg("row %zu: seq %zu valid %d", i, utf8_seq_len(s, len),
			         utf8_valid(s, len));
	}
}

static void
a_valid_sequence_cut_anywhere_is_not_complete(void **state)
{
	static const char *whole[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};

	(void)state;
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		size_t n = strlen(whole[i]);

		assert_int_equal(utf8_seq_len((const uint8_t *)whole[i], n), n);
		for (size_t cut = 0; cut < n; cut++)
			assert_int_equal(utf8_seq_len((const uint8_t *)whole[i], cut), 0);
	}
}

static void
every_lead_byte_is_classified(void **state)
{
	uint8_t s[4] = {0, 0x80, 0x80, 0x80};
	size_t good = 0;

	(void)state;
	for (unsigned b = 0; b < 256; b++) {
		s[0] = (uint8_t)b;
		s[1] = b == 0xe0 ? 0xa0 : b == 0xf0 ? 0x90 : 0x80;
		if (utf8_seq_len(s, sizeof(s)) != 0)
			good++;
		else
			assert_true((b >= 0x80 && b <= 0xc1) || b >= 0xf5);
	}
	assert_int_equal(good, 0x80 + (0xf4 - 0xc2 + 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(each_sequence_is_judged_by_the_rfc_3629_table),
	    cmocka_unit_test(a_valid_sequence_cut_anywhere_is_not_complete),
	    cmocka_unit_test(every_lead_byte_is_classified),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
