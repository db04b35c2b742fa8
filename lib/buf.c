/*
 * buf.c: fixed-capacity byte buffers.  Memory comes on first use and goes
 * back whenever the buffer drains, so thousands of idle sessions cost no
 * buffer memory.  No I/O here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t cap, bool wipe)
{
	memset(b, 0, sizeof(*b));
	b->cap = cap;
	b->wipe = wipe;
}

static void
buf_release(struct buf *b)
{
	if (b->data == NULL)
		return;
	if (b->wipe)
		OPENSSL_cleanse(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->off = 0;
	b->len = 0;
}

void
buf_deinit(struct buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	buf_release(b);
}

uint8_t *
buf_tail(struct buf *b, size_t *space_out)
{
	if (b->data == NULL) {
		b->data = malloc(b->cap);
		if (b->data == NULL) {
			*space_out = 0;
			return NULL;
		}
		b->off = 0;
		b->len = 0;
	}
	if (b->off + b->len == b->cap && b->off > 0) {
		/* Compact only when the tail is exhausted: keeps copies rare. */
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	*space_out = b->cap - b->off - b->len;
	return b->data + b->off + b->len;
}

void
buf_produce(struct buf *b, size_t n)
{
	b->len += n;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_release(b);
		return;
	}
	b->off += n;
	b->len -= n;
}

void
buf_consume_keep(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = 0;
		b->len = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

void
buf_cut(struct buf *b, size_t at, size_t n)
{
	if (at >= b->len || n == 0)
		return;
	if (n > b->len - at)
		n = b->len - at;
	memmove(b->data + b->off + at, b->data + b->off + at + n, b->len - at - n);
	b->len -= n;
}

void
buf_stop_wiping(struct buf *b)
{
	if (b->data != NULL && b->wipe) {
		OPENSSL_cleanse(b->data, b->off);
		OPENSSL_cleanse(b->data + b->off + b->len, b->cap - b->off - b->len);
	}
	b->wipe = false;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	size_t space;
	uint8_t *t;

	if (n > buf_space(b))
		return -1;
	if (n == 0)
		return 0;
	t = buf_tail(b, &space);
	if (t == NULL)
		return -1;
	if (space < n) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		t = b->data + b->len;
	}
	memcpy(t, p, n);
	b->len += n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	return buf_append(b, tmp, (size_t)n);
}

void
buf_reset(struct buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	buf_release(b);
}
