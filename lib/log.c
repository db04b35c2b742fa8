/*
 * log.c: key=value event lines on stderr.  Each line is formatted in a
 * local buffer and written with one write(2), so workers never interleave.
 * A thread that batches (a worker: log_batch_begin()) keeps whole lines in
 * a thread-local buffer and writes them together at log_flush(), which its
 * loop calls once an iteration, before it waits: one write(2) for the
 * several lines a login or a burst of closes makes, instead of one each.
 * The buffer is at most PIPE_BUF bytes, so a batch is still one atomic
 * write into a pipe (journald, a container's log driver).  Errors are
 * written at once, the batch before them.
 * Never given a password: callers pass "***" for secrets.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int log_level = LOG_INFO;

/* A batching thread's lines not yet written (PIPE_BUF: one atomic write). */
static _Thread_local struct {
	bool on;
	size_t len;
	char buf[PIPE_BUF];
} batch;

static void
write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere to say so */
		}
		p += w;
		n -= (size_t)w;
	}
}

void
log_batch_begin(void)
{
	batch.on = true;
}

void
log_flush(void)
{
	if (batch.len > 0)
		write_all(batch.buf, batch.len);
	batch.len = 0;
}

void
log_batch_end(void)
{
	log_flush();
	batch.on = false;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_set_level(enum log_level lvl)
{
	atomic_store(&log_level, (int)lvl);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

void
log_kv(enum log_level lvl, const char *event, const char *fmt, ...)
{
	char line[2048];
	_Static_assert(sizeof(line) <= PIPE_BUF, "a line must fit a batch");
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;
	int r;

	if ((int)lvl < atomic_load(&log_level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	r = snprintf(line, sizeof(line),
	             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s", tm.tm_year + 1900,
	             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             ts.tv_nsec / 1000000L, level_names[lvl], event);
	n = r < 0 ? 0 : (size_t)r;
	if (n < sizeof(line) - 1 && fmt != NULL && fmt[0] != '\0') {
		line[n++] = ' ';
		va_start(ap, fmt);
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* cut, but keep the newline */
	line[n++] = '\n';
	if (!batch.on || lvl >= LOG_ERR) {
		log_flush(); /* what came before first */
		write_all(line, n);
		return;
	}
	if (batch.len + n > sizeof(batch.buf))
		log_flush();
	memcpy(batch.buf + batch.len, line, n); /* n <= sizeof(line) <= PIPE_BUF */
	batch.len += n;
}

const char *
log_quote(char *dst, size_t dstlen, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, cut = len > LOG_VALUE_MAX ? LOG_VALUE_MAX : len;

	if (dstlen < 3) {
		if (dstlen > 0)
			dst[0] = '\0';
		return dst;
	}
	dst[o++] = '"';
	for (size_t i = 0; i < cut && src != NULL; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (o + 8 >= dstlen)
			break;
		if (ch == '"' || ch == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		} else {
			dst[o++] = (char)ch;
		}
	}
	if (cut < len && o + 5 < dstlen) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}
