/* SPDX-License-Identifier: LGPL-2.1-only */
/* In-memory dirty bitmaps (see bitmap.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bitmap.h"

static bool granularity_ok(uint64_t g)
{
	return g >= BITMAP_MIN_GRANULARITY && g <= BITMAP_MAX_GRANULARITY &&
	       !(g & (g - 1));
}

static int geometry(uint64_t granularity, uint64_t virtual_size,
		    uint64_t *ret_nbits)
{
	uint64_t nbits;

	if (!granularity_ok(granularity))
		return -EINVAL;
	nbits = virtual_size / granularity + !!(virtual_size % granularity);
	if (nbits > BITMAP_MAX_BITS)
		return -EFBIG;
	*ret_nbits = nbits;
	return 0;
}

int dirty_bitmap_init(struct dirty_bitmap *bm, uint64_t granularity,
		      uint64_t virtual_size)
{
	uint64_t nbits;
	int r = geometry(granularity, virtual_size, &nbits);

	memset(bm, 0, sizeof(*bm));
	if (r < 0)
		return r;
	bm->granularity = granularity;
	bm->virtual_size = virtual_size;
	bm->nbits = nbits;
	/* at least one word: calloc(0) may return NULL */
	bm->words = calloc((size_t)(nbits + 63) / 64 + 1, sizeof(uint64_t));
	return bm->words ? 0 : -ENOMEM;
}

void dirty_bitmap_free(struct dirty_bitmap *bm)
{
	free(bm->words);
	memset(bm, 0, sizeof(*bm));
}

int dirty_bitmap_set_range(struct dirty_bitmap *bm, uint64_t offset,
			   uint64_t length)
{
	uint64_t b0, b1;

	if (offset > bm->virtual_size || length > bm->virtual_size - offset)
		return -EINVAL;
	if (length == 0)
		return 0;
	b0 = offset / bm->granularity;
	b1 = (offset + length - 1) / bm->granularity;	/* inclusive */
	while (b0 <= b1) {
		uint64_t w = b0 / 64, s = b0 % 64;
		uint64_t n = b1 - b0 + 1 < 64 - s ? b1 - b0 + 1 : 64 - s;
		uint64_t mask = n == 64 ? ~0ull : ((1ull << n) - 1) << s;

		bm->words[w] |= mask;
		b0 += n;
	}
	return 0;
}

bool dirty_bitmap_test(const struct dirty_bitmap *bm, uint64_t block)
{
	if (block >= bm->nbits)
		return false;
	return (bm->words[block / 64] >> (block % 64)) & 1;
}

uint64_t dirty_bitmap_count(const struct dirty_bitmap *bm)
{
	uint64_t i, n = 0;

	for (i = 0; i < dirty_bitmap_words(bm); i++)
		n += (uint64_t)__builtin_popcountll(bm->words[i]);
	return n;
}

void dirty_bitmap_clear_all(struct dirty_bitmap *bm)
{
	memset(bm->words, 0, dirty_bitmap_words(bm) * sizeof(uint64_t));
}

int dirty_bitmap_union(struct dirty_bitmap *a, const struct dirty_bitmap *b)
{
	uint64_t i;

	if (a->granularity != b->granularity ||
	    a->virtual_size != b->virtual_size)
		return -EINVAL;
	for (i = 0; i < dirty_bitmap_words(a); i++)
		a->words[i] |= b->words[i];
	return 0;
}

int dirty_bitmap_resize(struct dirty_bitmap *bm, uint64_t virtual_size)
{
	uint64_t nbits, old_words = dirty_bitmap_words(bm), nw;
	uint64_t *w;
	int r = geometry(bm->granularity, virtual_size, &nbits);

	if (r < 0)
		return r;
	nw = (nbits + 63) / 64;
	w = realloc(bm->words, (size_t)(nw + 1) * sizeof(uint64_t));
	if (!w)
		return -ENOMEM;
	if (nw + 1 > old_words)
		memset(w + old_words, 0,
		       (size_t)(nw + 1 - old_words) * sizeof(uint64_t));
	bm->words = w;
	/* shrinking: clear the bits past the new end */
	if (nbits < bm->nbits) {
		if (nbits % 64)
			w[nbits / 64] &= (1ull << (nbits % 64)) - 1;
		else
			w[nbits / 64] = 0;
	}
	bm->nbits = nbits;
	bm->virtual_size = virtual_size;
	return 0;
}

static uint8_t byte_at(const struct dirty_bitmap *bm, uint64_t i)
{
	return (uint8_t)(bm->words[i / 8] >> (8 * (i % 8)));
}

void dirty_bitmap_export_msb(const struct dirty_bitmap *bm, uint8_t *out)
{
	uint64_t i;

	for (i = 0; i < dirty_bitmap_bytes(bm); i++) {
		uint8_t b = byte_at(bm, i), r = 0;
		int k;

		for (k = 0; k < 8; k++)
			if (b & (1u << k))
				r |= (uint8_t)(0x80u >> k);
		out[i] = r;
	}
}

void dirty_bitmap_export_lsb(const struct dirty_bitmap *bm, uint8_t *out,
			     uint64_t first_byte, uint64_t n)
{
	uint64_t i, total = dirty_bitmap_bytes(bm);

	for (i = 0; i < n; i++)
		out[i] = first_byte + i < total ? byte_at(bm, first_byte + i) : 0;
}

int dirty_bitmap_import_lsb(struct dirty_bitmap *bm, const uint8_t *in,
			    uint64_t first_byte, uint64_t n)
{
	uint64_t i, total = dirty_bitmap_bytes(bm);

	for (i = 0; i < n; i++) {
		uint64_t bi = first_byte + i;
		uint8_t v = in[i];

		if (bi >= total) {
			if (v)
				return -EINVAL;
			continue;
		}
		if (bi == total - 1 && bm->nbits % 8 &&
		    (v >> (bm->nbits % 8)))
			return -EINVAL;	/* bits past the end */
		bm->words[bi / 8] |= (uint64_t)v << (8 * (bi % 8));
	}
	return 0;
}

bool bitmap_name_ok(const char *name)
{
	size_t i, n = name ? strlen(name) : 0;

	if (n == 0 || n > 1023)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	return true;
}

bool cbt_bitmap_name_ok(const char *name)
{
	size_t plen = strlen(CBT_BITMAP_PREFIX);

	if (!name || strncmp(name, CBT_BITMAP_PREFIX, plen) ||
	    strlen(name) != plen + 16)
		return false;
	for (size_t i = plen; i < plen + 16; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return true;
}
