/*
 * fuzz_check.h: the fuzzers' one assertion: CHECK(x) reports the failed
 * condition with its place and aborts, which libFuzzer records as a crash
 * (assert() would vanish under NDEBUG).
 */
#ifndef POSTERN_FUZZ_CHECK_H
#define POSTERN_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);      \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
