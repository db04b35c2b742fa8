/*
 * hash.h: the two non-cryptographic hashes postern uses, FNV-1a and the
 * splitmix64 finaliser, in one place.  Unkeyed on purpose (see each user):
 * never a defence against keys a client chooses freely.  Pure, inline.
 */
#ifndef POSTERN_HASH_H
#define POSTERN_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV64_OFFSET 0xcbf29ce484222325ULL
#define HASH_FNV64_PRIME  0x100000001b3ULL

/* FNV-1a of len bytes at p, continuing from h (HASH_FNV64_OFFSET to start).
 * Its last bytes mix poorly: finish with hash_mix64() where that matters. */
static inline uint64_t
hash_fnv1a(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= HASH_FNV64_PRIME;
	}
	return h;
}

/* splitmix64's finaliser (Stafford's Mix13): every input bit flips about
 * half the output bits.  A bijection; hash_mix64(0) is 0. */
static inline uint64_t
hash_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The next number of the splitmix64 generator whose state is *s (any
 * seed; advanced here).  Fast and well spread, not unpredictable. */
static inline uint64_t
hash_splitmix64(uint64_t *s)
{
	return hash_mix64(*s += 0x9e3779b97f4a7c15ULL);
}

#endif
