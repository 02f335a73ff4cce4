/* SPDX-License-Identifier: LGPL-2.1-only */
/* Base64 (RFC 4648, with padding): xapi's list_changed_blocks bitmap. */
#ifndef UTIL_BASE64_H
#define UTIL_BASE64_H

#include <stddef.h>

/* Characters base64_encode writes for n bytes, without the final NUL. */
static inline size_t base64_length(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Encode n bytes into out (base64_length(n) + 1 bytes, NUL-terminated). */
void base64_encode(const void *in, size_t n, char *out);

#endif
