/*
 * sieve.c: the pre-authentication ManageSieve command parser (sieve.h).
 * PLACEHOLDER: being written.
 */
#include <string.h>

#include "sieve.h"

void
sieve_cmd_init(struct sieve_cmd *cmd, char *ir_buf)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->ir = ir_buf;
}

void
sieve_parser_init(struct sieve_parser *p)
{
	memset(p, 0, sizeof(*p));
}

void
sieve_parser_expect_sasl(struct sieve_parser *p)
{
	p->expect_sasl = true;
}

enum sieve_rc
sieve_parse(struct sieve_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
            struct sieve_cmd *cmd_out)
{
	(void)p;
	(void)buf;
	*used_out = len;
	cmd_out->error = "not yet";
	return SIEVE_FATAL;
}

void
sieve_cmd_wipe(struct sieve_cmd *cmd)
{
	(void)cmd;
}

void
sieve_parser_wipe(struct sieve_parser *p)
{
	(void)p;
}

size_t
sieve_quote(char *out, size_t outlen, const char *s, size_t len, bool nonsync)
{
	(void)out;
	(void)outlen;
	(void)s;
	(void)len;
	(void)nonsync;
	return 0;
}
