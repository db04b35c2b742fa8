/*
 * test_sieve.c: the pre-auth ManageSieve parser (lib/sieve.c).  Every input
 * is also fed one byte at a time, cut at every point and in random chunks,
 * and must give the same transcript: the parser is resumable at any byte.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

#include "sieve.h"

#define RESULTS_MAX 16
#define LOG_MAX     65536

/* A pretend session: feeds bytes, keeps what was not used, expects a SASL
 * response after AUTHENTICATE without an initial response. */
struct drive {
	struct sieve_parser p;
	struct sieve_cmd cmd[RESULTS_MAX]; /* SIEVE_CMD, SIEVE_BAD, SIEVE_FATAL in order */
	enum sieve_rc rc[RESULTS_MAX];
	size_t n;
	size_t off; /* bytes consumed so far */
	bool fatal;
	char log[LOG_MAX]; /* the transcript compared across splits */
	size_t log_len;
	size_t pend_len;
	uint8_t pend[256 * 1024];                      /* fed, not yet used, as c->in keeps it */
	char ir_now[SIEVE_SASL_MAX + 1];               /* cmd.ir of the call under way */
	char ir_kept[RESULTS_MAX][SIEVE_SASL_MAX + 1]; /* cmd[k].ir */
};

static void
tr_printf(struct drive *d, const char *fmt, ...)
{
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(d->log + d->log_len, sizeof(d->log) - d->log_len, fmt, ap);
	va_end(ap);
	assert_true(w >= 0 && (size_t)w < sizeof(d->log) - d->log_len);
	d->log_len += (size_t)w;
}

static void
tr_hex(struct drive *d, const char *key, const char *s, size_t n)
{
	tr_printf(d, " %s=", key);
	for (size_t i = 0; i < n && i < 64; i++)
		tr_printf(d, "%02x", (unsigned char)s[i]);
	tr_printf(d, "/%zu", n);
}

static void
check_cmd_invariants(const struct sieve_cmd *c)
{
	assert_true(strnlen(c->name, sizeof(c->name)) < sizeof(c->name));
	assert_true(strnlen(c->mech, sizeof(c->mech)) < sizeof(c->mech));
	assert_true(c->tag_len <= SIEVE_TAG_MAX);
	assert_int_equal(c->tag[c->tag_len], '\0');
	assert_true(c->ir_len <= SIEVE_SASL_MAX);
	assert_int_equal(c->ir[c->ir_len], '\0');
}

static struct drive *
drive_new(void)
{
	struct drive *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	sieve_parser_init(&d->p);
	return d;
}

static void
drive_feed(struct drive *d, const uint8_t *in, size_t len)
{
	size_t off = 0;
	bool more = false;

	assert_true(len <= sizeof(d->pend) - d->pend_len);
	memcpy(d->pend + d->pend_len, in, len);
	d->pend_len += len;
	while (off < d->pend_len && !d->fatal && !more) {
		struct sieve_cmd cmd;
		size_t used = (size_t)-1;
		enum sieve_rc rc;

		sieve_cmd_init(&cmd, d->ir_now);
		rc = sieve_parse(&d->p, d->pend + off, d->pend_len - off, &used, &cmd);
		assert_true(used <= d->pend_len - off);
		off += used;
		d->off += used;
		if (rc == SIEVE_MORE) {
			/* all used, or a SASL text kept whole, short of the input minimum */
			assert_true(off == d->pend_len || d->pend_len - off < SIEVE_INPUT_MIN);
			more = true;
			continue;
		}
		assert_true(used > 0 || rc == SIEVE_FATAL);
		check_cmd_invariants(&cmd);
		assert_true(d->n < RESULTS_MAX);
		d->rc[d->n] = rc;
		memcpy(d->ir_kept[d->n], cmd.ir, sizeof(d->ir_kept[d->n]));
		d->cmd[d->n] = cmd;
		d->cmd[d->n].ir = d->ir_kept[d->n];
		d->n++;
		if (rc == SIEVE_CMD) {
			assert_null(cmd.error);
			/* a command ends at a line end */
			assert_int_equal(d->pend[off - 1], '\n');
			tr_printf(d, "CMD@%zu v=%d name=%s mech=%s", d->off, cmd.verb, cmd.name,
			          cmd.mech);
			tr_hex(d, "tag", cmd.tag, cmd.tag_len);
			tr_hex(d, "ir", cmd.ir, cmd.ir_len);
			tr_printf(d, " has_tag=%d has_ir=%d cancelled=%d|", cmd.has_tag, cmd.has_ir,
			          cmd.cancelled);
			/* the session writes a challenge and expects a response */
			if (cmd.verb == SIEVE_V_AUTHENTICATE && !cmd.has_ir)
				sieve_parser_expect_sasl(&d->p);
		} else {
			assert_non_null(cmd.error);
			assert_int_equal(cmd.ir_len, 0);
			assert_int_equal(cmd.ir[0], '\0');
			tr_printf(d, "%s@%zu name=%s error=%s|", rc == SIEVE_BAD ? "BAD" : "FATAL",
			          d->off, cmd.name, cmd.error);
			d->fatal = rc == SIEVE_FATAL;
		}
	}
	memmove(d->pend, d->pend + off, d->pend_len - off);
	d->pend_len -= off;
}

static struct drive *
run_split(const void *in, size_t len, size_t cut)
{
	struct drive *d = drive_new();

	drive_feed(d, in, cut);
	drive_feed(d, (const uint8_t *)in + cut, len - cut);
	return d;
}

static struct drive *
run_bytes(const void *in, size_t len)
{
	struct drive *d = drive_new();

	for (size_t i = 0; i < len; i++)
		drive_feed(d, (const uint8_t *)in + i, 1);
	return d;
}

static struct drive *
run_random(const void *in, size_t len, unsigned seed)
{
	struct drive *d = drive_new();

	srand(seed);
	for (size_t i = 0; i < len;) {
		size_t k = 1 + (size_t)rand() % 17;

		if (k > len - i)
			k = len - i;
		drive_feed(d, (const uint8_t *)in + i, k);
		i += k;
	}
	return d;
}

/* Feed whole, byte by byte, cut at every point and in random chunks; the
 * transcripts must agree.  Returns the whole-input run to inspect. */
static struct drive *
run(const void *in, size_t len)
{
	struct drive *whole = run_split(in, len, len);
	struct drive *d = run_bytes(in, len);
	size_t step = len > 3000 ? len / 1500 : 1;

	if (strcmp(d->log, whole->log) != 0)
		fail_msg("bytes: %s\n  whole: %s", d->log, whole->log);
	free(d);
	for (size_t cut = 0; cut <= len; cut += step) {
		d = run_split(in, len, cut);
		if (strcmp(d->log, whole->log) != 0)
			fail_msg("cut %zu: %s\n  whole: %s", cut, d->log, whole->log);
		free(d);
	}
	for (unsigned seed = 1; seed <= 8; seed++) {
		d = run_random(in, len, seed);
		if (strcmp(d->log, whole->log) != 0)
			fail_msg("seed %u: %s\n  whole: %s", seed, d->log, whole->log);
		free(d);
	}
	return whole;
}

#define IN(s) s, sizeof(s) - 1

struct row {
	const char *in;
	size_t len;
	enum sieve_rc rc;  /* the first result */
	const char *error; /* its reason; NULL for SIEVE_CMD */
	enum sieve_verb verb;
};

static void
check_rows(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct drive *d = run(rows[i].in, rows[i].len);

		if (d->n == 0)
			fail_msg("row %zu: no result", i);
		if (d->rc[0] != rows[i].rc)
			fail_msg("row %zu: rc %d, want %d (%s)", i, d->rc[0], rows[i].rc, d->log);
		if (rows[i].error == NULL)
			assert_null(d->cmd[0].error);
		else if (d->cmd[0].error == NULL || strcmp(d->cmd[0].error, rows[i].error) != 0)
			fail_msg("row %zu: error \"%s\", want \"%s\"", i,
			         d->cmd[0].error ? d->cmd[0].error : "(null)", rows[i].error);
		if (rows[i].rc == SIEVE_CMD)
			assert_int_equal(d->cmd[0].verb, rows[i].verb);
		free(d);
	}
}

static void
every_verb_parses_case_insensitively_in_any_split(void **state)
{
	static const struct row rows[] = {
	    {IN("CAPABILITY\r\n"), SIEVE_CMD, NULL, SIEVE_V_CAPABILITY},
	    {IN("capability\r\n"), SIEVE_CMD, NULL, SIEVE_V_CAPABILITY},
	    {IN("CaPaBiLiTy\n"), SIEVE_CMD, NULL, SIEVE_V_CAPABILITY},
	    {IN("NOOP\r\n"), SIEVE_CMD, NULL, SIEVE_V_NOOP},
	    {IN("noop \"t1\"\r\n"), SIEVE_CMD, NULL, SIEVE_V_NOOP},
	    {IN("Logout\r\n"), SIEVE_CMD, NULL, SIEVE_V_LOGOUT},
	    {IN("starttls\r\n"), SIEVE_CMD, NULL, SIEVE_V_STARTTLS},
	    {IN("AUTHENTICATE \"PLAIN\"\r\n"), SIEVE_CMD, NULL, SIEVE_V_AUTHENTICATE},
	    {IN("authenticate \"plain\" \"AGEAYg==\"\r\n"), SIEVE_CMD, NULL, SIEVE_V_AUTHENTICATE},
	    {IN("AUTHENTICATE {5+}\r\nPLAIN {8+}\r\nAGEAYg==\r\n"), SIEVE_CMD, NULL,
	     SIEVE_V_AUTHENTICATE},
	    {IN("UNAUTHENTICATE\r\n"), SIEVE_CMD, NULL, SIEVE_V_UNAUTHENTICATE},
	    {IN("PUTSCRIPT \"s\" {5+}\r\nkeep;\r\n"), SIEVE_CMD, NULL, SIEVE_V_OTHER},
	    {IN("listscripts\r\n"), SIEVE_CMD, NULL, SIEVE_V_OTHER},
	    {IN("SETACTIVE \"\"\r\n"), SIEVE_CMD, NULL, SIEVE_V_OTHER},
	    {IN("GETSCRIPT \"a\\\"b\"\r\n"), SIEVE_CMD, NULL, SIEVE_V_OTHER},
	    {IN("DeleteScript {1+}\r\nx\r\n"), SIEVE_CMD, NULL, SIEVE_V_OTHER},
	    {IN("RENAMESCRIPT \"a\" \"b\"\r\n"), SIEVE_CMD, NULL, SIEVE_V_OTHER},
	    {IN("CHECKSCRIPT {0+}\r\n\r\n"), SIEVE_CMD, NULL, SIEVE_V_OTHER},
	    {IN("HAVESPACE \"s\" 4294967295\r\n"), SIEVE_CMD, NULL, SIEVE_V_OTHER},
	};

	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
malformed_commands_are_bad_with_a_reason(void **state)
{
	static const struct row rows[] = {
	    {IN("\r\n"), SIEVE_BAD, "empty command line", 0},
	    {IN("FROB\r\n"), SIEVE_BAD, "unknown command", 0},
	    {IN("FROB \"x\"\r\n"), SIEVE_BAD, "unknown command", 0},
	    {IN("LOGIN \"a\" \"b\"\r\n"), SIEVE_BAD, "unknown command", 0},
	    {IN("1NOOP\r\n"), SIEVE_BAD, "invalid command", 0},
	    {IN(" NOOP\r\n"), SIEVE_BAD, "invalid command", 0},
	    {IN("CAPABILITY \"x\"\r\n"), SIEVE_BAD, "unexpected arguments", 0},
	    {IN("LOGOUT \r\n"), SIEVE_BAD, "unexpected arguments", 0},
	    {IN("NOOP \"a\" \"b\"\r\n"), SIEVE_BAD, "too many arguments", 0},
	    {IN("NOOP \r\n"), SIEVE_BAD, "missing arguments", 0},
	    {IN("NOOP atom\r\n"), SIEVE_BAD, "invalid arguments", 0},
	    {IN("NOOP 12\r\n"), SIEVE_BAD, "expected a string", 0},
	    {IN("NOOP \"a\"\"b\"\r\n"), SIEVE_BAD, "invalid arguments", 0},
	    {IN("NOOP \"a\\n\"\r\n"), SIEVE_BAD, "invalid escape in quoted string", 0},
	    {IN("NOOP \"abc\r\n"), SIEVE_BAD, "unterminated quoted string", 0},
	    {IN("NOOP {3+}x\r\n"), SIEVE_BAD, "invalid literal", 0},
	    {IN("NOOP {+}\r\n"), SIEVE_BAD, "invalid literal", 0},
	    {IN("NOOP \"a\0b\"\r\n"), SIEVE_BAD, "NUL in command", 0},
	    {IN("NOOP \"a\rb\"\r\n"), SIEVE_BAD, "CR not followed by LF", 0},
	    {IN("NOOP {3+}\r\na\nb\r\n"), SIEVE_BAD, "invalid tag", 0},
	    {IN("AUTHENTICATE\r\n"), SIEVE_BAD, "missing arguments", 0},
	    {IN("AUTHENTICATE PLAIN\r\n"), SIEVE_BAD, "invalid arguments", 0},
	    {IN("AUTHENTICATE \"\"\r\n"), SIEVE_BAD, "invalid mechanism", 0},
	    {IN("AUTHENTICATE \"PL AIN\"\r\n"), SIEVE_BAD, "invalid mechanism", 0},
	    {IN("AUTHENTICATE \"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\"\r\n"), SIEVE_BAD,
	     "mechanism name too long", 0},
	    {IN("AUTHENTICATE {33+}\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\r\n"), SIEVE_BAD,
	     "mechanism name too long", 0},
	    {IN("AUTHENTICATE \"PLAIN\" \"x\" \"y\"\r\n"), SIEVE_BAD, "too many arguments", 0},
	    {IN("PUTSCRIPT \"s\"\r\n"), SIEVE_BAD, "missing arguments", 0},
	    {IN("HAVESPACE \"s\" \"1\"\r\n"), SIEVE_BAD, "expected a number", 0},
	    {IN("HAVESPACE \"s\" 4294967296\r\n"), SIEVE_BAD, "number too large", 0},
	    {IN("HAVESPACE \"s\" 12a\r\n"), SIEVE_BAD, "invalid number", 0},
	    {IN("LISTSCRIPTS \"x\"\r\n"), SIEVE_BAD, "unexpected arguments", 0},
	};

	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
fatal_errors_end_the_session(void **state)
{
	static const struct row rows[] = {
	    {IN("NOOP {3}\r\nabc\r\n"), SIEVE_FATAL, "Synchronizing literals are not allowed", 0},
	    {IN("PUTSCRIPT \"a\" {5}\r\n"), SIEVE_FATAL, "Synchronizing literals are not allowed",
	     0},
	    {IN("FROB {5}\r\n"), SIEVE_FATAL, "Synchronizing literals are not allowed", 0},
	    {IN("AUTHENTICATE \"PLAIN\" {1}\r\n"), SIEVE_FATAL,
	     "Synchronizing literals are not allowed", 0},
	    {IN("PUTSCRIPT \"a\" {65537+}\r\n"), SIEVE_FATAL, "literal too large", 0},
	    {IN("FROB {99999999999999999999999+}\r\n"), SIEVE_FATAL, "literal too large", 0},
	    {IN("AUTHENTICATE \"PLAIN\" {12289+}\r\n"), SIEVE_FATAL, "SASL response too long", 0},
	};

	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
noop_keeps_its_tag_quoted_or_literal(void **state)
{
	struct drive *d = run(IN("NOOP \"a\\\\b\\\"c\"\r\nNOOP {4+}\r\n\"x\\y\r\nNOOP \"\"\r\n"
	                         "NOOP\r\n"));

	(void)state;
	assert_int_equal(d->n, 4);
	assert_int_equal(d->rc[0], SIEVE_CMD);
	assert_true(d->cmd[0].has_tag);
	assert_int_equal(d->cmd[0].tag_len, 5);
	assert_string_equal(d->cmd[0].tag, "a\\b\"c");
	assert_string_equal(d->cmd[1].tag, "\"x\\y");
	assert_true(d->cmd[2].has_tag);
	assert_int_equal(d->cmd[2].tag_len, 0);
	assert_false(d->cmd[3].has_tag);
	free(d);
}

static void
tag_is_bounded_and_the_next_command_still_parses(void **state)
{
	static char in[2 * SIEVE_TAG_MAX + 64];
	struct drive *d;
	size_t o;

	(void)state;
	o = (size_t)snprintf(in, sizeof(in), "NOOP \"");
	memset(in + o, 'x', SIEVE_TAG_MAX);
	o += SIEVE_TAG_MAX;
	o += (size_t)snprintf(in + o, sizeof(in) - o, "\"\r\nNOOP {%d+}\r\n", SIEVE_TAG_MAX + 1);
	memset(in + o, 'y', SIEVE_TAG_MAX + 1);
	o += SIEVE_TAG_MAX + 1;
	o += (size_t)snprintf(in + o, sizeof(in) - o, "\r\nLOGOUT\r\n");
	d = run(in, o);
	assert_int_equal(d->n, 3);
	assert_int_equal(d->rc[0], SIEVE_CMD);
	assert_int_equal(d->cmd[0].tag_len, SIEVE_TAG_MAX);
	assert_int_equal(d->rc[1], SIEVE_BAD);
	assert_string_equal(d->cmd[1].error, "tag too long");
	assert_int_equal(d->rc[2], SIEVE_CMD);
	assert_int_equal(d->cmd[2].verb, SIEVE_V_LOGOUT);
	free(d);
}

static void
quoted_string_over_1024_octets_is_bad(void **state)
{
	static char in[2100];
	struct drive *d;
	size_t o;

	(void)state;
	for (size_t n = 1024; n <= 1025; n++) {
		o = (size_t)snprintf(in, sizeof(in), "GETSCRIPT \"");
		memset(in + o, 'q', n);
		o += n;
		o += (size_t)snprintf(in + o, sizeof(in) - o, "\"\r\nNOOP\r\n");
		d = run(in, o);
		assert_int_equal(d->n, 2);
		assert_int_equal(d->rc[0], n == 1024 ? SIEVE_CMD : SIEVE_BAD);
		if (n > 1024)
			assert_string_equal(d->cmd[0].error, "quoted string too long");
		assert_int_equal(d->cmd[1].verb, SIEVE_V_NOOP);
		free(d);
	}
}

static void
bad_line_skips_its_literals_and_the_next_command_parses(void **state)
{
	/* the literal holds what looks like a command and a literal of its own */
	struct drive *d = run(IN("FROB \"a\" {12+}\r\nNOOP {3+}\r\n\r\nNOOP \"b\"\r\n"
	                         "NOOP x {2+}\r\nzz\r\nCAPABILITY\r\n"));

	(void)state;
	assert_int_equal(d->n, 4);
	assert_int_equal(d->rc[0], SIEVE_BAD);
	assert_string_equal(d->cmd[0].error, "unknown command");
	assert_string_equal(d->cmd[0].name, "FROB");
	assert_int_equal(d->rc[1], SIEVE_CMD);
	assert_string_equal(d->cmd[1].tag, "b");
	assert_int_equal(d->rc[2], SIEVE_BAD);
	assert_int_equal(d->rc[3], SIEVE_CMD);
	assert_int_equal(d->cmd[3].verb, SIEVE_V_CAPABILITY);
	free(d);
}

static void
literal_at_its_limit_is_read_through_and_over_it_is_fatal(void **state)
{
	static char in[SIEVE_LITERAL_MAX + 64];
	struct drive *d;
	size_t o;

	(void)state;
	o = (size_t)snprintf(in, sizeof(in), "PUTSCRIPT \"s\" {%d+}\r\n", SIEVE_LITERAL_MAX);
	memset(in + o, '\n', SIEVE_LITERAL_MAX);
	o += SIEVE_LITERAL_MAX;
	o += (size_t)snprintf(in + o, sizeof(in) - o, "\r\nNOOP\r\n");
	d = run(in, o);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], SIEVE_CMD);
	assert_int_equal(d->cmd[0].verb, SIEVE_V_OTHER);
	assert_string_equal(d->cmd[0].name, "PUTSCRIPT");
	assert_int_equal(d->cmd[1].verb, SIEVE_V_NOOP);
	free(d);
}

static void
overlong_line_is_fatal_and_literal_bytes_do_not_count(void **state)
{
	static char in[SIEVE_LINE_MAX + 64];
	struct drive *d;
	size_t o;

	(void)state;
	/* exactly SIEVE_LINE_MAX bytes with its CRLF: fine */
	o = (size_t)snprintf(in, sizeof(in), "FROB ");
	memset(in + o, 'x', SIEVE_LINE_MAX - o - 2);
	o = SIEVE_LINE_MAX - 2;
	memcpy(in + o, "\r\n", 2);
	o += 2;
	d = run(in, o);
	assert_int_equal(d->n, 1);
	assert_int_equal(d->rc[0], SIEVE_BAD);
	free(d);
	in[o - 2] = 'x';
	in[o - 1] = '\r';
	in[o] = '\n';
	d = run(in, o + 1);
	assert_int_equal(d->n, 1);
	assert_int_equal(d->rc[0], SIEVE_FATAL);
	assert_string_equal(d->cmd[0].error, "line too long");
	free(d);
}

static void
authenticate_reads_the_initial_response_quoted_or_literal(void **state)
{
	static char big[SIEVE_SASL_MAX + 64];
	struct drive *d = run(IN("AUTHENTICATE \"plain\" \"AGFsaWNlAHNlY3JldA==\"\r\n"
	                         "Authenticate \"PLAIN\" {20+}\r\nAGFsaWNlAHNlY3JldA==\r\n"
	                         "AUTHENTICATE \"PLAIN\" \"\"\r\n"
	                         "AUTHENTICATE \"EXTERNAL\" {0+}\r\n\r\n"));
	size_t o;

	(void)state;
	assert_int_equal(d->n, 4);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(d->rc[i], SIEVE_CMD);
		assert_int_equal(d->cmd[i].verb, SIEVE_V_AUTHENTICATE);
		assert_string_equal(d->cmd[i].mech, "PLAIN");
		assert_true(d->cmd[i].has_ir);
		assert_int_equal(d->cmd[i].ir_len, 20);
		assert_string_equal(d->cmd[i].ir, "AGFsaWNlAHNlY3JldA==");
	}
	/* an empty string is an empty response */
	assert_true(d->cmd[2].has_ir);
	assert_int_equal(d->cmd[2].ir_len, 0);
	assert_string_equal(d->cmd[3].mech, "EXTERNAL");
	assert_true(d->cmd[3].has_ir);
	assert_int_equal(d->cmd[3].ir_len, 0);
	free(d);

	/* a text of SIEVE_SASL_MAX, quoted and as a literal */
	for (int lit = 0; lit < 2; lit++) {
		o = (size_t)snprintf(big, sizeof(big),
		                     lit ? "AUTHENTICATE \"PLAIN\" {%d+}\r\n"
		                         : "AUTHENTICATE \"PLAIN\" \"",
		                     SIEVE_SASL_MAX);
		memset(big + o, 'A', SIEVE_SASL_MAX);
		o += SIEVE_SASL_MAX;
		o += (size_t)snprintf(big + o, sizeof(big) - o, lit ? "\r\n" : "\"\r\n");
		d = run(big, o);
		assert_int_equal(d->n, 1);
		assert_int_equal(d->rc[0], SIEVE_CMD);
		assert_int_equal(d->cmd[0].ir_len, SIEVE_SASL_MAX);
		free(d);
		/* one more is fatal */
		o = (size_t)snprintf(big, sizeof(big), "AUTHENTICATE \"PLAIN\" \"");
		memset(big + o, 'A', SIEVE_SASL_MAX + 1);
		o += SIEVE_SASL_MAX + 1;
		o += (size_t)snprintf(big + o, sizeof(big) - o, "\"\r\n");
		d = run(big, o);
		assert_int_equal(d->rc[0], SIEVE_FATAL);
		assert_string_equal(d->cmd[0].error, "SASL response too long");
		free(d);
	}
}

static void
sasl_response_after_a_challenge_quoted_literal_or_cancelled(void **state)
{
	struct drive *d = run(IN("AUTHENTICATE \"PLAIN\"\r\n\"AGEAYg==\"\r\n"
	                         "AUTHENTICATE \"LOGIN\"\r\n{4+}\r\nYQ==\r\n"
	                         "AUTHENTICATE \"LOGIN\"\r\n\"*\"\r\n"
	                         "AUTHENTICATE \"LOGIN\"\r\n{1+}\r\n*\r\n"
	                         "AUTHENTICATE \"LOGIN\"\r\n\"\"\r\n"
	                         "AUTHENTICATE \"LOGIN\"\r\nNOOP\r\nNOOP\r\n"));

	(void)state;
	assert_int_equal(d->n, 13);
	assert_int_equal(d->cmd[1].verb, SIEVE_V_SASL);
	assert_string_equal(d->cmd[1].ir, "AGEAYg==");
	assert_false(d->cmd[1].cancelled);
	assert_int_equal(d->cmd[3].verb, SIEVE_V_SASL);
	assert_string_equal(d->cmd[3].ir, "YQ==");
	for (size_t i = 5; i <= 7; i += 2) {
		assert_int_equal(d->cmd[i].verb, SIEVE_V_SASL);
		assert_true(d->cmd[i].cancelled);
		assert_false(d->cmd[i].has_ir);
		assert_int_equal(d->cmd[i].ir_len, 0);
	}
	assert_int_equal(d->cmd[9].verb, SIEVE_V_SASL);
	assert_true(d->cmd[9].has_ir);
	assert_int_equal(d->cmd[9].ir_len, 0);
	/* a command word is no response: bad, and the exchange is over */
	assert_int_equal(d->rc[11], SIEVE_BAD);
	assert_int_equal(d->rc[12], SIEVE_CMD);
	assert_int_equal(d->cmd[12].verb, SIEVE_V_NOOP);
	free(d);
}

static void
sasl_text_waits_whole_in_the_callers_buffer(void **state)
{
	static const char in[] = "AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n";
	struct sieve_parser p;
	struct sieve_cmd cmd;
	char ir[SIEVE_SASL_MAX + 1];
	size_t used;

	(void)state;
	sieve_parser_init(&p);
	sieve_cmd_init(&cmd, ir);
	/* up to the opening quote is used; the text waits */
	assert_int_equal(sieve_parse(&p, (const uint8_t *)in, 30, &used, &cmd), SIEVE_MORE);
	assert_int_equal(used, 21);
	assert_int_equal(sieve_parse(&p, (const uint8_t *)in + 21, 9, &used, &cmd), SIEVE_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(sieve_parse(&p, (const uint8_t *)in + 21, sizeof(in) - 22, &used, &cmd),
	                 SIEVE_CMD);
	assert_int_equal(used, sizeof(in) - 22);
	assert_string_equal(cmd.ir, "AGEAYg==");
	sieve_cmd_wipe(&cmd);
	assert_int_equal(cmd.ir_len, 0);
	for (size_t i = 0; i < 9; i++)
		assert_int_equal(ir[i], '\0');
	sieve_parser_wipe(&p);
}

static void
bad_line_leaves_no_sasl_text_in_the_callers_buffer(void **state)
{
	static const char in[] = "AUTHENTICATE \"PLAIN\" \"AGEAYg==\" x\r\n";
	struct sieve_parser p;
	struct sieve_cmd cmd;
	char ir[SIEVE_SASL_MAX + 1];
	size_t used;

	(void)state;
	memset(ir, 0, sizeof(ir));
	sieve_parser_init(&p);
	sieve_cmd_init(&cmd, ir);
	assert_int_equal(sieve_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &cmd),
	                 SIEVE_BAD);
	assert_string_equal(cmd.error, "too many arguments");
	for (size_t i = 0; i < 16; i++)
		assert_int_equal(ir[i], '\0');
}

static void
fatal_parser_stays_fatal(void **state)
{
	static const char in[] = "NOOP {1}\r\n";
	struct sieve_parser p;
	struct sieve_cmd cmd;
	size_t used;

	(void)state;
	sieve_parser_init(&p);
	sieve_cmd_init(&cmd, NULL);
	assert_int_equal(sieve_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &cmd),
	                 SIEVE_FATAL);
	assert_int_equal(sieve_parse(&p, (const uint8_t *)"NOOP\r\n", 6, &used, &cmd), SIEVE_FATAL);
	assert_int_equal(used, 0);
	assert_non_null(cmd.error);
}

static void
sasl_text_without_an_ir_buffer_is_fatal(void **state)
{
	struct sieve_parser p;
	struct sieve_cmd cmd;
	size_t used;

	(void)state;
	sieve_parser_init(&p);
	sieve_cmd_init(&cmd, NULL);
	assert_int_equal(
	    sieve_parse(&p, (const uint8_t *)"AUTHENTICATE \"X\" \"a\"\r\n", 22, &used, &cmd),
	    SIEVE_FATAL);
	assert_string_equal(cmd.error, "no room for a SASL response");
}

static void
quote_picks_quoted_when_safe_else_a_literal(void **state)
{
	char out[2048];
	static char long_s[1025];

	(void)state;
	assert_int_equal(sieve_quote(out, sizeof(out), "abc", 3, true), 5);
	assert_memory_equal(out, "\"abc\"", 5);
	assert_int_equal(sieve_quote(out, sizeof(out), "a\"b\\", 4, true), 8);
	assert_memory_equal(out, "\"a\\\"b\\\\\"", 8);
	assert_int_equal(sieve_quote(out, sizeof(out), "", 0, true), 2);
	assert_memory_equal(out, "\"\"", 2);
	assert_int_equal(sieve_quote(out, sizeof(out), "a\r\nb", 4, true), 10);
	assert_memory_equal(out, "{4+}\r\na\r\nb", 10);
	assert_int_equal(sieve_quote(out, sizeof(out), "a\0b", 3, false), 8);
	assert_memory_equal(out, "{3}\r\na\0b", 8);
	assert_int_equal(sieve_quote(out, sizeof(out), "\xc3\xa9", 2, true), 8);
	memset(long_s, 'x', sizeof(long_s));
	assert_int_equal(sieve_quote(out, sizeof(out), long_s, 1024, true), 1026);
	assert_int_equal(out[0], '"');
	assert_int_equal(sieve_quote(out, sizeof(out), long_s, 1025, true), 1025 + 9);
	assert_memory_equal(out, "{1025+}\r\n", 9);
	/* too small: 0, for either form */
	assert_int_equal(sieve_quote(out, 4, "abc", 3, true), 0);
	assert_int_equal(sieve_quote(out, 5, "abc", 3, true), 5);
	assert_int_equal(sieve_quote(out, 7, "a\nb", 3, true), 0);
	assert_int_equal(sieve_quote(out, 9, "a\nb", 3, true), 9);
}

static void
quoted_then_parsed_as_a_noop_tag_gives_the_same_bytes(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} cases[] = {
	    {IN("")},
	    {IN("tag")},
	    {IN("a\"b")},
	    {IN("\\\\\"")},
	    {IN("x\r\ny")},
	    {IN("\x01\x7f")},
	    {IN("\xc3\xa9t\xc3\xa9")},
	    {IN("{3+}")},
	    {IN(" ")},
	};
	char in[600];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t o = 5, n;
		struct drive *d;

		memcpy(in, "NOOP ", 5);
		n = sieve_quote(in + o, sizeof(in) - o, cases[i].s, cases[i].len, true);
		assert_true(n > 0);
		o += n;
		memcpy(in + o, "\r\n", 2);
		d = run(in, o + 2);
		assert_int_equal(d->n, 1);
		if (memchr(cases[i].s, '\r', cases[i].len) != NULL) {
			/* a tag may not hold CR or LF: quoted as a literal, refused */
			assert_int_equal(d->rc[0], SIEVE_BAD);
			free(d);
			continue;
		}
		assert_int_equal(d->rc[0], SIEVE_CMD);
		assert_int_equal(d->cmd[0].tag_len, cases[i].len);
		assert_memory_equal(d->cmd[0].tag, cases[i].s, cases[i].len);
		free(d);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_verb_parses_case_insensitively_in_any_split),
	    cmocka_unit_test(malformed_commands_are_bad_with_a_reason),
	    cmocka_unit_test(fatal_errors_end_the_session),
	    cmocka_unit_test(noop_keeps_its_tag_quoted_or_literal),
	    cmocka_unit_test(tag_is_bounded_and_the_next_command_still_parses),
	    cmocka_unit_test(quoted_string_over_1024_octets_is_bad),
	    cmocka_unit_test(bad_line_skips_its_literals_and_the_next_command_parses),
	    cmocka_unit_test(literal_at_its_limit_is_read_through_and_over_it_is_fatal),
	    cmocka_unit_test(overlong_line_is_fatal_and_literal_bytes_do_not_count),
	    cmocka_unit_test(authenticate_reads_the_initial_response_quoted_or_literal),
	    cmocka_unit_test(sasl_response_after_a_challenge_quoted_literal_or_cancelled),
	    cmocka_unit_test(sasl_text_waits_whole_in_the_callers_buffer),
	    cmocka_unit_test(bad_line_leaves_no_sasl_text_in_the_callers_buffer),
	    cmocka_unit_test(fatal_parser_stays_fatal),
	    cmocka_unit_test(sasl_text_without_an_ir_buffer_is_fatal),
	    cmocka_unit_test(quote_picks_quoted_when_safe_else_a_literal),
	    cmocka_unit_test(quoted_then_parsed_as_a_noop_tag_gives_the_same_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
