/* fuzz_sieve_resp.c: libFuzzer harness for lib/sieve_resp.c.  PLACEHOLDER. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sieve_resp.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct sieve_resp r;

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	(void)sieve_resp_parse(line, &r);
	free(line);
	return 0;
}
