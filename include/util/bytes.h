/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Byte-level helpers shared by the engine and the tools: big-endian loads
 * and stores at any alignment (on-disk structures of QCOW2 and VHD), and
 * integer rounding.  Header only, libc only.
 */
#ifndef UTIL_BYTES_H
#define UTIL_BYTES_H

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---- big-endian loads and stores; p need not be aligned ---- */

static inline uint16_t load_be16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return be16toh(v);
}

static inline uint32_t load_be32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static inline uint64_t load_be64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

static inline void store_be16(void *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void store_be32(void *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void store_be64(void *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, sizeof(v));
}

/* ---- rounding; 'a' and 'd' must not be 0 ---- */

/* Does v have exactly one bit set?  (0 is not a power of two.) */
/* Are the len bytes at p all zero? */
static inline bool bytes_all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	return len == 0 || (b[0] == 0 && memcmp(b, b + 1, len - 1) == 0);
}

static inline bool is_power_of_2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* v rounded down to a multiple of a (any a > 0). */
static inline uint64_t round_down(uint64_t v, uint64_t a)
{
	return v / a * a;
}

/*
 * v rounded up to a multiple of a (any a > 0).  Wraps when the result does
 * not fit in 64 bits: callers round sizes they have already bounded.
 */
static inline uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* v / d rounded up, without overflow for any v (d > 0). */
static inline uint64_t div_round_up(uint64_t v, uint64_t d)
{
	return v / d + (v % d != 0);
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

#endif
