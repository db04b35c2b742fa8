/* unit.h: what every cmocka test file includes. */
#ifndef POSTERN_UNIT_H
#define POSTERN_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

/* A whole text file of the source tree, NUL-terminated; the caller frees
 * it.  Fails the test when the file cannot be read. */
static inline char *
unit_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long n;

	if (f == NULL)
		fail_msg("%s: cannot open it", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

#endif
