/*
 * imap.c: the pre-authentication IMAP command parser, a resumable byte state
 * machine over RFC 9051 §9 grammar (tag, command word, astrings, literals).
 * This half drives it: lines and their caps, literal bytes, SASL texts and
 * what one call hands back; imap_grammar.c reads a command line's bytes.
 * It owns no memory and never does I/O: every byte is looked at once and all
 * state lives in struct imap_parser, so a command may arrive in any pieces.
 */
#include <stdio.h>
#include <string.h>

#include "chars.h"
#include "imap.h"
#include "imap_impl.h"
#include "sasl.h"

/* Wipe that the compiler may not drop: the buffers held passwords. */
static void
wipe(void *b, size_t n)
{
	explicit_bzero(b, n);
}

static void
reset_line(struct imap_parser *p)
{
	wipe(&p->cmd, sizeof(p->cmd));
	p->state = p->expect_sasl ? S_SASL : S_TAG;
	p->sub = 0;
	p->line_len = 0;
	p->lit_left = 0;
	p->lit_skip = false;
	p->nargs = 0;
	p->depth = 0;
	p->arg_len = 0;
	p->error = NULL;
	p->cr = false;
	p->lit = (struct lit_scan){0};
	p->seen = 0;
}

void
imap_parser_init(struct imap_parser *p, const struct imap_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->lim.line_max = IMAP_LINE_MAX;
	p->lim.literal_max = IMAP_SECRET_MAX;
	p->lim.sasl_line_max = IMAP_SASL_MAX;
	p->lim.id_line_max = IMAP_ID_LINE_MAX;
	if (lim != NULL && lim->line_max != 0)
		p->lim.line_max = lim->line_max;
	if (lim != NULL && lim->literal_max != 0)
		p->lim.literal_max = lim->literal_max;
	/* the caller's cmd.ir holds IMAP_SASL_MAX: the limit can only be lowered */
	if (lim != NULL && lim->sasl_line_max != 0 && lim->sasl_line_max < IMAP_SASL_MAX)
		p->lim.sasl_line_max = lim->sasl_line_max;
	if (lim != NULL && lim->id_line_max != 0)
		p->lim.id_line_max = lim->id_line_max;
	if (p->lim.id_line_max < p->lim.line_max)
		p->lim.id_line_max = p->lim.line_max;
	reset_line(p);
}

void
imap_parser_expect_sasl(struct imap_parser *p)
{
	p->expect_sasl = true;
	/* Called between commands; mid-line it takes effect at the next line. */
	if (p->state == S_TAG && p->line_len == 0)
		p->state = S_SASL;
}

static int
sasl_put(struct imap_parser *p, uint8_t c)
{
	if (p->arg_len >= p->lim.sasl_line_max)
		return imap_fatal(p, "SASL response too long");
	return imap_ir_put(p, c);
}

/*
 * One byte of a SASL response line (RFC 9051 §6.2.2).  The line is kept as
 * sent (a lone CR, NUL and all): the session's base64 decoder judges it.
 */
static int
sasl_byte(struct imap_parser *p, uint8_t c)
{
	int r;

	if (p->cr) {
		p->cr = false;
		if (c != '\n' && (r = sasl_put(p, '\r')) != R_GO)
			return r;
	}
	if (c == '\r') {
		p->cr = true;
		return R_GO;
	}
	if (c != '\n')
		return sasl_put(p, c);
	p->cmd.verb = IMAP_V_SASL;
	if (p->arg_len == 1 && p->cmd.ir[0] == '*') {
		p->cmd.ir[0] = '\0';
		p->cmd.cancelled = true;
	} else {
		p->cmd.ir[p->arg_len] = '\0';
		p->cmd.ir_len = p->arg_len;
		p->cmd.has_ir = true;
	}
	p->expect_sasl = false;
	return IMAP_CMD;
}

/*
 * The cap on the current command line (literals excluded), known once the
 * command word is: AUTHENTICATE may carry an initial response of up to
 * sasl_line_max on top of the usual line (RFC 4959 §3 sets no length; a
 * bearer token needs ~12 KiB of base64), ID may take id_line_max (RFC 2971
 * §3.3).  A bad line of either is skipped to its end within the same cap.
 */
static size_t
line_cap(const struct imap_parser *p)
{
	if (p->cmd.verb == IMAP_V_AUTHENTICATE)
		return p->lim.line_max + p->lim.sasl_line_max;
	if (p->cmd.verb == IMAP_V_ID)
		return p->lim.id_line_max;
	return p->lim.line_max;
}

/* Copy literal bytes into the argument they belong to. */
static void
lit_bytes(struct imap_parser *p, const uint8_t *b, size_t n)
{
	char *dest;

	if (!p->lit_skip && (dest = imap_arg_dest(p)) != NULL)
		memcpy(dest + p->arg_len, b, n); /* fits: checked at "{n}" */
	if (!p->lit_skip)
		p->arg_len += n;
}

static void
set_out_error(struct imap_parser *p, struct imap_cmd *out)
{
	char *ir = out->ir;

	memset(out, 0, sizeof(*out));
	out->ir = ir;
	memcpy(out->tag, p->cmd.tag, sizeof(out->tag));
	if (out->tag[0] == '\0')
		out->tag[0] = '*';
	memcpy(out->name, p->cmd.name, sizeof(out->name));
	out->error = p->error;
}

/*
 * At the first byte of a SASL text (an AUTHENTICATE initial response, or a
 * response line): is its line end in b[0..n), or the line over its limit
 * there (the byte loop will say so before the end of b)?  Only then is the
 * text read, straight into the caller's cmd.ir during this one call; else
 * the caller keeps the bytes and brings more.  seen spares a line coming a
 * byte at a time from being scanned again from its start.
 */
static bool
sasl_line_whole(struct imap_parser *p, const uint8_t *b, size_t n)
{
	size_t cap = p->lim.sasl_line_max + 2; /* the text, CR, LF */
	size_t upto = n < cap ? n : cap;
	size_t from = p->seen < upto ? p->seen : 0;

	if (n > cap || memchr(b + from, '\n', upto - from) != NULL) {
		p->seen = 0;
		return true;
	}
	p->seen = n;
	return false;
}

static bool
at_sasl_text(const struct imap_parser *p)
{
	return (p->state == S_IR || p->state == S_SASL) && p->arg_len == 0 && !p->cr;
}

static enum imap_rc
parse(struct imap_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
      struct imap_cmd *cmd_out)
{
	size_t i = 0;
	int r = R_GO;

	if (p->state == S_FATAL) {
		*used_out = 0;
		set_out_error(p, cmd_out);
		return IMAP_FATAL;
	}
	while (i < len && r == R_GO) {
		if (p->state == S_LIT) {
			size_t n = len - i < p->lit_left ? len - i : p->lit_left;

			/* Literal bytes are data and do not count as line bytes. */
			lit_bytes(p, buf + i, n);
			i += n;
			p->lit_left -= n;
			if (p->lit_left == 0)
				imap_lit_done(p);
			continue;
		}
		if (at_sasl_text(p)) {
			if (p->cmd.ir == NULL) {
				r = imap_fatal(p, "no room for a SASL response");
				break;
			}
			if (!sasl_line_whole(p, buf + i, len - i))
				break; /* *used_out = i: the text stays with the caller */
		}
		if (p->state == S_SASL) {
			r = sasl_byte(p, buf[i++]);
			continue;
		}
		if (++p->line_len > line_cap(p)) {
			r = imap_fatal(p, "line too long");
			i++;
			break;
		}
		r = imap_line_byte(p, buf[i++]);
	}
	*used_out = i;
	switch (r) {
	case R_GO:
		return IMAP_MORE;
	case IMAP_CONTINUE:
		return IMAP_CONTINUE;
	case IMAP_CMD:
		*cmd_out = p->cmd;
		cmd_out->error = NULL;
		reset_line(p);
		return IMAP_CMD;
	case IMAP_BAD:
		set_out_error(p, cmd_out);
		reset_line(p);
		return IMAP_BAD;
	default:
		set_out_error(p, cmd_out);
		wipe(&p->cmd.user, sizeof(p->cmd.user));
		wipe(&p->cmd.secret, sizeof(p->cmd.secret));
		return IMAP_FATAL;
	}
}

enum imap_rc
imap_parse(struct imap_parser *p, const uint8_t *buf, size_t len, size_t *used_out,
           struct imap_cmd *cmd_out)
{
	enum imap_rc rc;

	p->cmd.ir = cmd_out->ir; /* lent for this call only */
	p->ir_written = 0;
	rc = parse(p, buf, len, used_out, cmd_out);
	/* A text read and not handed over (a bad line, a line skipped on
	 * through a literal) leaves nothing behind in the caller's buffer. */
	if (rc != IMAP_CMD && p->ir_written > 0)
		wipe(cmd_out->ir, p->ir_written);
	p->cmd.ir = NULL;
	return rc;
}

void
imap_cmd_init(struct imap_cmd *cmd, char *ir_buf)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->ir = ir_buf;
	if (ir_buf != NULL)
		ir_buf[0] = '\0';
}

void
imap_cmd_wipe(struct imap_cmd *cmd)
{
	wipe(cmd->user, sizeof(cmd->user));
	wipe(cmd->secret, sizeof(cmd->secret));
	if (cmd->ir != NULL)
		wipe(cmd->ir, cmd->ir_len + 1); /* the parser wiped any other text */
	cmd->user_len = 0;
	cmd->secret_len = 0;
	cmd->ir_len = 0;
}

void
imap_parser_wipe(struct imap_parser *p)
{
	imap_cmd_wipe(&p->cmd);
	p->arg_len = 0;
}
