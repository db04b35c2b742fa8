/*
 * utf8.h: UTF-8 validation by RFC 3629 §4, one sequence at a
 * time, so a writer can keep the valid ones and escape every other byte.
 * Pure: no allocation, no state between calls.
 */
#ifndef POSTERN_UTF8_H
#define POSTERN_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The length (1..4) of the well-formed UTF-8 sequence at s[0..len), or 0
 * when s[0] starts none: an overlong form, a surrogate (U+D800..DFFF), a
 * code point above U+10FFFF, a byte C0, C1 or F5..FF, a stray continuation
 * byte or a sequence cut short.  0 for len == 0.
 */
size_t utf8_seq_len(const uint8_t *s, size_t len);

/* Is all of s[0..len) well-formed UTF-8? */
bool utf8_valid(const uint8_t *s, size_t len);

#endif
