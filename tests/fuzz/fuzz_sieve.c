/* fuzz_sieve.c: libFuzzer harness for lib/sieve.c.  PLACEHOLDER. */
#include <stdint.h>
#include <stddef.h>

#include "sieve.h"

static char ir[SIEVE_SASL_MAX + 1];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sieve_parser p;
	struct sieve_cmd cmd;
	size_t used = 0;

	sieve_parser_init(&p);
	sieve_cmd_init(&cmd, ir);
	(void)sieve_parse(&p, data, size, &used, &cmd);
	return 0;
}
