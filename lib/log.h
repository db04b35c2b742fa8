/*
 * log.h: one key=value line per event on stderr, written with a single
 * write(2) so lines of concurrent workers never interleave.  Event names are
 * noun.verb; network-supplied values go through log_quote().
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stddef.h>

#include "config.h"

#define LOG_VALUE_MAX  160 /* network-supplied values are cut here */
#define LOG_QUOTED_MAX (LOG_VALUE_MAX * 4 + 8)

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

/*
 * Log event at lvl; fmt (printf) continues the line with " key=value" pairs.
 * Prefixes "ts=... level=... event=...".  Lines are cut at 2 KiB.
 */
void log_kv(enum log_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Quote src[0..len) for a log value: surrounded by '"', '"' and '\\'
 * escaped, control and 8-bit bytes as \xNN, cut at LOG_VALUE_MAX source
 * bytes (then "..." inside the quotes).  Returns dst (NUL-terminated);
 * dstlen >= LOG_QUOTED_MAX always fits.
 */
const char *log_quote(char *dst, size_t dstlen, const char *src, size_t len);

#endif
