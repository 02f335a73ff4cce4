/* SPDX-License-Identifier: LGPL-2.1-only */
/* QCOW2 engine internals shared by qcow2*.c and the unit tests. */
#ifndef FORMATS_QCOW2_H
#define FORMATS_QCOW2_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "formats/format.h"

#define QCOW2_MAGIC		0x514649fbu	/* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN	72u
#define QCOW2_V3_HEADER_LEN	104u
#define QCOW2_MAX_L1_BYTES	(32u << 20)	/* as qemu: 32 MiB */
#define QCOW2_MAX_SIZE		(1ull << 61)
#define QCOW2_MAX_BACKING_NAME	1023u
#define QCOW2_MAX_RT_BYTES	(8u << 20)	/* as qemu: 8 MiB */
#define QCOW2_MAX_SNAPSHOTS	65536u		/* as qemu */
#define QCOW2_MAX_SNAP_TABLE	(64u << 20)	/* as qemu: 64 MiB */

/* Header extension types. */
#define QCOW2_EXT_END		0x00000000u
#define QCOW2_EXT_BACKING_FMT	0xe2792acau
#define QCOW2_EXT_FEATURES	0x6803f857u
#define QCOW2_EXT_CRYPTO	0x0537be77u
#define QCOW2_EXT_DATA_FILE	0x44415441u
#define QCOW2_EXT_BITMAPS	0x23852875u

/* Autoclear feature bits. */
#define QCOW2_AUTOCLEAR_BITMAPS	(1ull << 0)

/* Persistent bitmaps (qcow2-bitmap.c), limits as qemu's. */
#define QCOW2_MAX_BITMAPS	65535u
#define QCOW2_MAX_BITMAP_DIR	(64u << 20)

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY		(1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT		(1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE	(1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION	(1ull << 3)
#define QCOW2_INCOMPAT_EXTL2		(1ull << 4)
#define QCOW2_INCOMPAT_KNOWN		0x1full

/* Table entry bits. */
#define QCOW2_OFLAG_COPIED	(1ull << 63)
#define QCOW2_OFLAG_COMPRESSED	(1ull << 62)
#define QCOW2_OFLAG_ZERO	(1ull << 0)
#define QCOW2_OFFSET_MASK	0x00fffffffffffe00ull	/* bits 9..55 */
#define QCOW2_L1_RESERVED	0x7f000000000001ffull
#define QCOW2_L2_RESERVED	0x3f000000000001feull
#define QCOW2_RT_RESERVED	0x00000000000001ffull

struct qcow2_header {
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible_features;
	uint64_t compatible_features;
	uint64_t autoclear_features;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;
	/* From the header extensions. */
	char backing_format[32];	/* "" when absent */
	uint64_t ext_end;		/* where they end (after END, if any) */
	bool bitmaps_ext;		/* the bitmaps extension is present */
	uint32_t nb_bitmaps;
	uint64_t bitmap_dir_size, bitmap_dir_offset;
};

/*
 * Parse and validate a header from the first bytes of the file ('len'
 * bytes, at least the header cluster or the whole file when smaller).
 * Checks every field against file_size.  Returns 0, -EINVAL (corrupt or
 * hostile), -ENOTSUP (a feature we do not implement) or -EUCLEAN (dirty
 * image opened read-write, or the corrupt bit).  Logs why.
 */
int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size,
		       bool readonly, struct qcow2_header *h);

/*
 * How many refcount table entries an image of this virtual size in a file
 * of this size can use: enough to cover twice the file and the disk (room
 * for the growth qemu and we leave), at least one entry.  Entries beyond
 * must be zero, and the table itself may not be larger than one cluster or
 * this many entries rounded up to clusters, whichever is more.
 */
uint64_t qcow2_rt_limit(const struct qcow2_header *h, uint64_t file_size);

/* The backing file name (malloc'ed in *ret, NULL if none). */
int qcow2_header_backing(const uint8_t *buf, size_t len,
			 const struct qcow2_header *h, char **ret);

/* What one L2 entry (or one subcluster, with extended L2) means. */
enum qcow2_ctype {
	QCOW2_UNALLOCATED,	/* read through the backing chain */
	QCOW2_ZERO_PLAIN,	/* reads as zeros, no host cluster */
	QCOW2_ZERO_ALLOC,	/* reads as zeros, host cluster kept */
	QCOW2_NORMAL,		/* data at host */
	QCOW2_COMPRESSED,	/* deflate data at host, csize bytes */
};

struct qcow2_geom {
	unsigned int cluster_bits;
	unsigned int version;
	bool extended_l2;
};

struct qcow2_entry {
	enum qcow2_ctype type;	/* of the whole cluster (no subclusters) */
	uint64_t host;		/* cluster offset, or compressed byte offset */
	uint64_t csize;		/* compressed: bytes from host */
	uint64_t cfree_off;	/* compressed: the 512-aligned range that */
	uint64_t cfree_len;	/* holds the data (refcounted range) */
	bool copied;
	uint32_t alloc_bits;	/* extended L2: subcluster bitmaps */
	uint32_t zero_bits;
};

/*
 * Decode an L2 entry (host-endian 'entry'; 'bitmap' is the second word of
 * an extended entry, else 0).  Returns -EINVAL for reserved bits,
 * misaligned offsets or inconsistent bitmaps.
 */
int qcow2_entry_decode(const struct qcow2_geom *g, uint64_t entry,
		       uint64_t bitmap, struct qcow2_entry *ret);

/* Type of subcluster 'sc' of a decoded extended entry. */
enum qcow2_ctype qcow2_subcluster_type(const struct qcow2_entry *e,
				       unsigned int sc);

/* ----------------------------------------------------------- runtime */

/*
 * Host ranges holding metadata (header cluster, L1 table, L2 tables,
 * refcount table and blocks, snapshot table and snapshot L1 tables), whole
 * clusters, sorted and disjoint once the image is open.  Data clusters may
 * never overlap them.
 */
struct qcow2_range {
	uint64_t start, end;
	const char *what;
};

struct qcow2_free {
	uint64_t offset;	/* byte range whose clusters lose one ref */
	uint64_t length;
};

struct qcow2 {
	struct qcow2_header h;
	struct qcow2_geom g;
	uint64_t cluster_size;
	unsigned int l2_bits;		/* log2 of entries per L2 table */
	uint64_t l2_entries;
	unsigned int sc_bits;		/* log2 of subcluster size */
	uint64_t file_size;		/* clamp for reads (RO) */

	/* Tables as on disk (big-endian), 4 KiB-aligned buffers. */
	uint64_t *l1;
	uint64_t **l2;			/* [l1_size], NULL = no table */
	size_t page;			/* dirty-tracking unit (bytes) */
	size_t l2_pages;		/* pages per L2 table */
	size_t l2_words;		/* bitmap words per L2 table */
	uint64_t *l2_dirty;		/* [l1_size * l2_words] */
	uint64_t *l1_dirty;		/* bitmap of L1 pages */
	bool any_dirty;

	/* Refcounts (read-write only). */
	uint64_t *rt;			/* refcount table (big-endian) */
	uint64_t rt_entries;
	uint8_t **rb;			/* [rt_entries] refcount blocks */
	bool *rb_dirty;
	uint64_t rb_entries;		/* refcounts per block */
	unsigned int refcount_bits;
	bool rt_dirty;
	bool rt_moved;			/* header must point at a new rt */
	uint64_t old_rt_offset, old_rt_clusters;

	uint64_t next_free;		/* next host cluster to allocate */
	uint64_t file_alloc_end;	/* what the file was ftruncate'd to */
	bool allocated;
	struct qcow2_free *frees;
	size_t n_frees, cap_frees;

	/* Compressed clusters. */
	z_stream zs;
	bool zs_ready;
	uint8_t *cbuf;			/* compressed input, 2 clusters */
	uint8_t *dbuf;			/* one decompressed cluster */
	uint64_t dbuf_host;		/* host offset cached in dbuf, or 0 */

	struct qcow2_range *meta;	/* see struct qcow2_range */
	size_t n_meta, cap_meta;
	uint64_t rt_limit;		/* qcow2_rt_limit() */

	uint8_t *cow_buf;		/* one cluster, aligned */
	uint8_t *zero_buf;		/* one cluster of zeros, aligned */
	struct extent_list tmp;		/* scratch for internal mapping */
};

static inline uint64_t qcow2_l2_get(const struct qcow2 *q, uint64_t l1i,
				    uint64_t l2i, uint64_t *bitmap)
{
	const uint64_t *t = q->l2[l1i];

	if (q->g.extended_l2) {
		*bitmap = be64toh(t[2 * l2i + 1]);
		return be64toh(t[2 * l2i]);
	}
	*bitmap = 0;
	return be64toh(t[l2i]);
}

/* The metadata range [off, off+len) overlaps, or NULL. */
const struct qcow2_range *qcow2_meta_find(const struct qcow2 *q,
					  uint64_t off, uint64_t len);

/* qcow2-alloc.c */
int qcow2_refcounts_load(struct image *img, struct qcow2 *q);
int qcow2_map_write(struct image *img, uint64_t offset, uint64_t length,
		    struct extent_list *out);
int qcow2_zero(struct image *img, uint64_t offset, uint64_t length,
	       bool may_unmap);
int qcow2_discard(struct image *img, uint64_t offset, uint64_t length);
int qcow2_flush(struct image *img);
/* image_skip_backing (qcow2-backing.c). */
int qcow2_set_backing(struct image *img, const struct image *new_backing);
void qcow2_release_alloc(struct image *img, struct qcow2 *q);
/* n contiguous new clusters, counted (in memory until flush). */
int qcow2_alloc_clusters(struct image *img, struct qcow2 *q, uint64_t n,
			 uint64_t *ret);
/* The clusters of [off, off+len) lose a reference at the next flush. */
int qcow2_free_later(struct qcow2 *q, uint64_t off, uint64_t len);

/* qcow2-bitmap.c: the format ops (bitmap.h). */
struct dirty_bitmap;
int qcow2_bitmap_load(struct image *img, const char *name,
		      struct dirty_bitmap *bm, bool *in_use);
int qcow2_bitmap_store(struct image *img, const char *name,
		       const struct dirty_bitmap *bm, bool in_use);
int qcow2_bitmap_remove(struct image *img, const char *name);
int qcow2_bitmap_list(struct image *img, char ***ret);
/*
 * A read-write open: our writes do not update the image's other
 * bitmaps, so every auto bitmap but CBT_BITMAP_NAME (kept by the
 * datapath server) is flagged in use (inconsistent), as qemu flags the
 * bitmaps it tracks while it has an image open.
 */
int qcow2_bitmaps_open_rw(struct image *img, struct qcow2 *q);

#endif
