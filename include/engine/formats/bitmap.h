/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Dirty bitmaps (changed block tracking, issue 14): one bit per block of
 * 'granularity' bytes of a disk of 'virtual_size' bytes; bit i covers guest
 * bytes [i * granularity, (i + 1) * granularity), the last block may be
 * short.  In memory the bits are 64-bit words, bit i in word i / 64 at
 * position i % 64.
 *
 * Persistent bitmaps of an open image (image_bitmap_*) are stored in the
 * image itself for qcow2 (a qcow2 persistent dirty bitmap, as qemu's
 * docs/interop/qcow2.txt "Bitmaps extension": qemu-img info/bitmap and
 * qemu-nbd -B see them; ours are stored with the "auto" flag, so qemu
 * tracks its own writes in them) and in a sidecar file
 * "<image file name>.<bitmap name>.cbt" per bitmap next to raw and VHD
 * images (names of [A-Za-z0-9._-] only, at most CBT_BITMAP_NAME_MAX bytes;
 * see bitmap-sidecar.c for its layout).
 *
 * Nothing here tracks guest writes: the writer of an image keeps its
 * bitmap current (the datapath server: set_range on each write, store
 * with in_use while serving, store without at a clean close).  A
 * read-write open of a qcow2 image flags every auto bitmap in use
 * (inconsistent) except ours (CBT_BITMAP_NAME and every name starting with
 * CBT_BITMAP_PREFIX), since our engine does not update them.
 */
#ifndef FORMATS_BITMAP_H
#define FORMATS_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Our changed block tracking: one bitmap per epoch (the writes to a volume
 * between two of its snapshots), named CBT_BITMAP_PREFIX + 16 hex digits.
 * The volume's record names the epoch its datapath server tracks into
 * ("cbt_bitmap") and the epochs since CBT was enabled ("cbt_history").
 * An image may hold several (a merge moves the merged image's bitmaps into
 * the surviving one: image_bitmap_adopt).  CBT_BITMAP_NAME is the name the
 * storage tests use.
 */
#define CBT_BITMAP_PREFIX	"xsng-cbt-"
#define CBT_BITMAP_NAME		"xsng-cbt"
#define CBT_BITMAP_NAME_MAX	64
#define CBT_GRANULARITY		(64u << 10)

#define BITMAP_MIN_GRANULARITY	512u
#define BITMAP_MAX_GRANULARITY	(1ull << 31)	/* as qemu */
/* At most this many bits (512 MiB of bitmap, as qemu's limit on a stored
 * bitmap's data); larger disk/granularity ratios are refused. */
#define BITMAP_MAX_BITS		(1ull << 32)

struct dirty_bitmap {
	uint64_t granularity;	/* bytes per bit, a power of two >= 512 */
	uint64_t virtual_size;	/* bytes of disk covered */
	uint64_t nbits;		/* ceil(virtual_size / granularity) */
	uint64_t *words;	/* ceil(nbits / 64) words, bits past nbits 0 */
};

/* All bits clear.  -EINVAL for a bad granularity or too many bits. */
int dirty_bitmap_init(struct dirty_bitmap *bm, uint64_t granularity,
		      uint64_t virtual_size);
void dirty_bitmap_free(struct dirty_bitmap *bm);

static inline uint64_t dirty_bitmap_words(const struct dirty_bitmap *bm)
{
	return (bm->nbits + 63) / 64;
}

/* Set the bits of every block [offset, offset+length) touches; the range
 * must lie within virtual_size (-EINVAL).  Length 0 sets nothing. */
int dirty_bitmap_set_range(struct dirty_bitmap *bm, uint64_t offset,
			   uint64_t length);
/* Bit 'block' (false beyond nbits). */
bool dirty_bitmap_test(const struct dirty_bitmap *bm, uint64_t block);
uint64_t dirty_bitmap_count(const struct dirty_bitmap *bm);
void dirty_bitmap_clear_all(struct dirty_bitmap *bm);
/* a |= b; -EINVAL unless both have the same granularity and size. */
int dirty_bitmap_union(struct dirty_bitmap *a, const struct dirty_bitmap *b);
/* New virtual size: bits kept where blocks remain, new blocks clear. */
int dirty_bitmap_resize(struct dirty_bitmap *bm, uint64_t virtual_size);

/* Bytes of the byte-string forms: ceil(nbits / 8). */
static inline uint64_t dirty_bitmap_bytes(const struct dirty_bitmap *bm)
{
	return (bm->nbits + 7) / 8;
}

/*
 * MSB-first byte string (xapi's list_changed_blocks): bit i is bit
 * (7 - i % 8) of byte i / 8.  'out' holds dirty_bitmap_bytes() bytes.
 */
void dirty_bitmap_export_msb(const struct dirty_bitmap *bm, uint8_t *out);
/*
 * LSB-first byte string (qcow2's and our sidecar's on-disk form): bit i is
 * bit (i % 8) of byte i / 8.  Import rejects set bits past nbits (-EINVAL).
 */
void dirty_bitmap_export_lsb(const struct dirty_bitmap *bm, uint8_t *out,
			     uint64_t first_byte, uint64_t n);
int dirty_bitmap_import_lsb(struct dirty_bitmap *bm, const uint8_t *in,
			    uint64_t first_byte, uint64_t n);

/* ------------------------------------------- persistent, per image */

struct image;

/*
 * Load bitmap 'name' of img into bm (initialised here; free it with
 * dirty_bitmap_free).  *in_use (optional): the bitmap was being updated
 * when last stored (its owner did not close it cleanly: its content may
 * miss writes).  -ENOENT when img has no such bitmap, -ENOTSUP when its
 * format keeps none, -EINVAL when what is stored is corrupt.
 */
int image_bitmap_load(struct image *img, const char *name,
		      struct dirty_bitmap *bm, bool *in_use);
/*
 * Create or replace bitmap 'name' (bm->virtual_size must be the image's).
 * Durable when it returns; a crash leaves the old or the new bitmap.
 * -EROFS on a read-only image.
 */
int image_bitmap_store(struct image *img, const char *name,
		       const struct dirty_bitmap *bm, bool in_use);
/* Durable; -ENOENT when there was none. */
int image_bitmap_remove(struct image *img, const char *name);
/* The names, malloc'ed (*ret NULL-terminated array of malloc'ed strings:
 * free with image_bitmap_names_free). */
int image_bitmap_list(struct image *img, char ***ret);
void image_bitmap_names_free(char **names);

/*
 * Copy every bitmap of src whose name starts with CBT_BITMAP_PREFIX into
 * dst (created or replaced, with its in-use flag; resized to dst's virtual
 * size where they differ), before src's data is merged into dst and src
 * deleted.  Durable when it returns.  0 when src has none or keeps none.
 */
int image_bitmap_adopt(struct image *dst, struct image *src);

/* Is 'name' one of our epoch bitmaps (CBT_BITMAP_PREFIX + 16 hex)? */
bool cbt_bitmap_name_ok(const char *name);

/* Is 'name' acceptable as a bitmap name (1..1023 bytes, printable)? */
bool bitmap_name_ok(const char *name);

#endif
