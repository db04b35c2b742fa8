/* test_prom.c: the Prometheus text format (lib/prom.c): escaping, sample
 * lines, the bucket search and cumulated histograms. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

#include "prom.h"

/* What the writer fn(f) produced, as a NUL-terminated string (free it). */
static char *
capture(void (*fn)(FILE *f))
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fn(f);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void
label_values_escape_backslash_quote_and_newline(void **state)
{
	static const struct {
		const char *in, *out;
	} rows[] = {
	    {"plain", "plain"},
	    {"a\\b", "a\\\\b"},
	    {"say \"hi\"", "say \\\"hi\\\""},
	    {"two\nlines", "two\\nlines"},
	    {"", ""},
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_string_equal(prom_escape(out, sizeof(out), rows[i].in), rows[i].out);
}

static void
an_escape_that_does_not_fit_is_cut_whole(void **state)
{
	char out[4];

	(void)state;
	/* "ab\"" needs 4 bytes + NUL: the escape pair is not split. */
	assert_string_equal(prom_escape(out, sizeof(out), "ab\"c"), "ab");
	assert_string_equal(prom_escape(out, 1, "abc"), "");
}

static void
write_samples(FILE *f)
{
	struct prom_label l[] = {{"proto", "imap"}, {"backend", "mx\"1"}};

	prom_header(f, "postern_x_total", "counter", "Help with a \\ and\na newline.");
	prom_sample_u64(f, "postern_x_total", l, 2, 18446744073709551615ULL);
	prom_sample(f, "postern_up", NULL, 0, 1);
	prom_sample(f, "postern_ratio", NULL, 0, 0.25);
	prom_sample(f, "postern_inf", NULL, 0, INFINITY);
}

static void
samples_have_labels_in_braces_and_exact_counters(void **state)
{
	char *text = capture(write_samples);

	(void)state;
	assert_string_equal(text, "# HELP postern_x_total Help with a \\\\ and\\na newline.\n"
	                          "# TYPE postern_x_total counter\n"
	                          "postern_x_total{proto=\"imap\",backend=\"mx\\\"1\"} "
	                          "18446744073709551615\n"
	                          "postern_up 1\n"
	                          "postern_ratio 0.25\n"
	                          "postern_inf +Inf\n");
	free(text);
}

static const double bounds[] = {0.01, 0.1, 1, 10};

static void
a_value_on_a_bound_falls_in_that_bound_s_bucket(void **state)
{
	static const struct {
		double v;
		size_t bucket;
	} rows[] = {
	    {0, 0},    {0.01, 0}, {0.010001, 1}, {0.1, 1}, {0.5, 2}, {1, 2},
	    {9.99, 3}, {10, 3},   {10.5, 4},     {1e9, 4}, {-1, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(prom_bucket(bounds, 4, rows[i].v), rows[i].bucket);
	assert_int_equal(prom_bucket(bounds, 4, NAN), 4);
	assert_int_equal(prom_bucket(bounds, 0, 5), 0);
}

static void
write_histogram(FILE *f)
{
	const uint64_t counts[5] = {1, 0, 3, 2, 4};
	struct prom_label l[] = {{"proto", "pop3"}};

	prom_histogram(f, "postern_d_seconds", l, 1, bounds, 4, counts, 12.5);
}

static void
histogram_buckets_are_cumulated_and_count_equals_the_inf_bucket(void **state)
{
	char *text = capture(write_histogram);

	(void)state;
	assert_string_equal(text, "postern_d_seconds_bucket{proto=\"pop3\",le=\"0.01\"} 1\n"
	                          "postern_d_seconds_bucket{proto=\"pop3\",le=\"0.1\"} 1\n"
	                          "postern_d_seconds_bucket{proto=\"pop3\",le=\"1\"} 4\n"
	                          "postern_d_seconds_bucket{proto=\"pop3\",le=\"10\"} 6\n"
	                          "postern_d_seconds_bucket{proto=\"pop3\",le=\"+Inf\"} 10\n"
	                          "postern_d_seconds_sum{proto=\"pop3\"} 12.5\n"
	                          "postern_d_seconds_count{proto=\"pop3\"} 10\n");
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(label_values_escape_backslash_quote_and_newline),
	    cmocka_unit_test(an_escape_that_does_not_fit_is_cut_whole),
	    cmocka_unit_test(samples_have_labels_in_braces_and_exact_counters),
	    cmocka_unit_test(a_value_on_a_bound_falls_in_that_bound_s_bucket),
	    cmocka_unit_test(histogram_buckets_are_cumulated_and_count_equals_the_inf_bucket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
