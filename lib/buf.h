/*
 * buf.h: fixed-capacity byte buffers, no I/O.  Memory is allocated on first
 * use and released whenever the buffer drains, so an idle connection holds
 * no buffer memory.  A buffer never grows past its capacity: a full buffer
 * makes its producer stop reading.
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	uint8_t *data; /* owned; NULL while empty */
	size_t cap;    /* fixed at buf_init() */
	size_t off;    /* first unread byte */
	size_t len;    /* unread bytes */
	bool wipe;     /* may hold credentials: cleanse before the memory is released */
};

/* An empty buffer of capacity cap; wipe: cleanse memory before releasing it. */
void buf_init(struct buf *b, size_t cap, bool wipe);
/* Free the memory (wiping it first: it may have held credentials). */
void buf_deinit(struct buf *b);

static inline size_t
buf_len(const struct buf *b)
{
	return b->len;
}
static inline const uint8_t *
buf_head(const struct buf *b)
{
	return b->data + b->off;
}
/* Room at the tail after compaction. */
static inline size_t
buf_space(const struct buf *b)
{
	return b->cap - b->len;
}

/* Make the free space contiguous at the tail and return it (allocating on
 * first use); NULL on allocation failure.  *space_out gets its size. */
uint8_t *buf_tail(struct buf *b, size_t *space_out);
/* n bytes were written at the tail. */
void buf_produce(struct buf *b, size_t n);
/* Drop n bytes from the head; releases the memory when empty. */
void buf_consume(struct buf *b, size_t n);
/* Drop n bytes from the head, keeping the memory when empty for the next
 * producer (a busy relay); buf_consume(b, 0) gives it back once idle. */
void buf_consume_keep(struct buf *b, size_t n);
/* The buffer no longer carries credentials: wipe whatever its memory held
 * besides the unread bytes, and stop wiping on release. */
void buf_stop_wiping(struct buf *b);
/* A stream's last bytes: t[0..*len) keeps the last cap (at most 255)
 * bytes of what it held followed by p[0..n). */
static inline void
buf_keep_last(char *t, uint8_t *len, size_t cap, const void *p, size_t n)
{
	const uint8_t *q = p;

	if (n >= cap) {
		memcpy(t, q + n - cap, cap);
		*len = (uint8_t)cap;
		return;
	}
	if (*len + n > cap) {
		size_t drop = *len + n - cap;
		memmove(t, t + drop, *len - drop);
		*len = (uint8_t)(*len - drop);
	}
	memcpy(t + *len, q, n);
	*len = (uint8_t)(*len + n);
}

/* Remove n unread bytes starting at offset at from the head (an edit in
 * place: what follows moves up). */
void buf_cut(struct buf *b, size_t at, size_t n);

/* Append; returns 0, or -1 (nothing written) when it does not fit. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop everything (wiping it). */
void buf_reset(struct buf *b);

#endif
