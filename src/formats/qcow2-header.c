/* SPDX-License-Identifier: LGPL-2.1-only */
/* QCOW2 header parsing/validation and L2 entry decoding (pure logic). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "log.h"
#include "qcow2.h"

/* Is [off, off+len) inside the file and clear of the header cluster? */
static bool table_ok(uint64_t off, uint64_t len, uint64_t cluster_size,
		     uint64_t file_size)
{
	if (off % cluster_size || off < cluster_size)
		return false;
	return off <= file_size && len <= file_size - off;
}

/* Name an unknown incompatible bit from the feature-name table, if any. */
static void log_unknown_features(const uint8_t *buf, size_t len,
				 uint64_t unknown, uint64_t tbl, uint32_t tlen)
{
	uint32_t i;

	for (i = 0; tbl && i + 48 <= tlen && tbl + i + 48 <= len; i += 48) {
		const uint8_t *f = buf + tbl + i;
		char name[47];

		if (f[0] != 0 || f[1] >= 64 || !(unknown & (1ull << f[1])))
			continue;
		memcpy(name, f + 2, 46);
		name[46] = '\0';
		log_error("qcow2: unsupported incompatible feature bit %u '%s'",
			  f[1], name);
		unknown &= ~(1ull << f[1]);
	}
	if (unknown)
		log_error("qcow2: unsupported incompatible features 0x%" PRIx64,
			  unknown);
}

static int parse_extensions(const uint8_t *buf, size_t len,
			    struct qcow2_header *h, uint64_t *ret_ftbl,
			    uint32_t *ret_ftlen)
{
	uint64_t off = h->header_length;
	uint64_t end = (uint64_t)1 << h->cluster_bits;

	if (h->backing_file_offset && h->backing_file_offset < end)
		end = h->backing_file_offset;
	if (end > len)
		end = len;
	while (off + 8 <= end) {
		uint32_t type = load_be32(buf + off);
		uint32_t elen = load_be32(buf + off + 4);

		off += 8;
		if (type == QCOW2_EXT_END)
			break;
		if (elen > end - off) {
			log_error("qcow2: header extension 0x%x overruns the header",
				  type);
			return -EINVAL;
		}
		switch (type) {
		case QCOW2_EXT_BACKING_FMT:
			if (elen >= sizeof(h->backing_format)) {
				log_error("qcow2: backing format name too long");
				return -EINVAL;
			}
			memcpy(h->backing_format, buf + off, elen);
			h->backing_format[elen] = '\0';
			if (strlen(h->backing_format) != elen) {
				log_error("qcow2: bad backing format name");
				return -EINVAL;
			}
			break;
		case QCOW2_EXT_FEATURES:
			*ret_ftbl = off;
			*ret_ftlen = elen;
			break;
		case QCOW2_EXT_CRYPTO:
			log_error("qcow2: encrypted images are not supported");
			return -ENOTSUP;
		case QCOW2_EXT_DATA_FILE:
			log_error("qcow2: external data files are not supported");
			return -ENOTSUP;
		case QCOW2_EXT_BITMAPS:
			if (elen != 24 || h->bitmaps_ext ||
			    load_be32(buf + off + 4)) {
				log_error("qcow2: bad bitmaps extension");
				return -EINVAL;
			}
			h->bitmaps_ext = true;
			h->nb_bitmaps = load_be32(buf + off);
			h->bitmap_dir_size = load_be64(buf + off + 8);
			h->bitmap_dir_offset = load_be64(buf + off + 16);
			break;
		default:
			break;	/* unknown ones: not needed */
		}
		off += ((uint64_t)elen + 7) & ~7ull;
	}
	h->ext_end = off;
	return 0;
}

static int check_features(const uint8_t *buf, size_t len,
			  struct qcow2_header *h, bool readonly,
			  uint64_t ftbl, uint32_t ftlen)
{
	uint64_t inc = h->incompatible_features;

	if (inc & ~QCOW2_INCOMPAT_KNOWN) {
		log_unknown_features(buf, len, inc & ~QCOW2_INCOMPAT_KNOWN,
				     ftbl, ftlen);
		return -ENOTSUP;
	}
	if (inc & QCOW2_INCOMPAT_DATA_FILE) {
		log_error("qcow2: external data files are not supported");
		return -ENOTSUP;
	}
	if (inc & QCOW2_INCOMPAT_CORRUPT) {
		log_error("qcow2: the image is marked corrupt; run 'qemu-img check -r all'");
		return -EUCLEAN;
	}
	if ((inc & QCOW2_INCOMPAT_DIRTY) && !readonly) {
		log_error("qcow2: the image is dirty (lazy refcounts not rebuilt); run 'qemu-img check -r all' first");
		return -EUCLEAN;
	}
	if (!(inc & QCOW2_INCOMPAT_COMPRESSION) && h->compression_type) {
		log_error("qcow2: compression type set without its feature bit");
		return -EINVAL;
	}
	if (h->compression_type == 1) {
		log_error("qcow2: zstd compression is not supported (zlib only)");
		return -ENOTSUP;
	}
	if (h->compression_type > 1) {
		log_error("qcow2: unknown compression type %u",
			  h->compression_type);
		return -ENOTSUP;
	}
	if (h->crypt_method) {
		log_error("qcow2: encrypted images are not supported");
		return -ENOTSUP;
	}
	return 0;
}

static void read_fields(const uint8_t *buf, struct qcow2_header *h)
{
	memset(h, 0, sizeof(*h));
	h->version = load_be32(buf + 4);
	h->backing_file_offset = load_be64(buf + 8);
	h->backing_file_size = load_be32(buf + 16);
	h->cluster_bits = load_be32(buf + 20);
	h->size = load_be64(buf + 24);
	h->crypt_method = load_be32(buf + 32);
	h->l1_size = load_be32(buf + 36);
	h->l1_table_offset = load_be64(buf + 40);
	h->refcount_table_offset = load_be64(buf + 48);
	h->refcount_table_clusters = load_be32(buf + 56);
	h->nb_snapshots = load_be32(buf + 60);
	h->snapshots_offset = load_be64(buf + 64);
	h->refcount_order = 4;
	h->header_length = QCOW2_V2_HEADER_LEN;
}

static int read_v3_fields(const uint8_t *buf, size_t len,
			  struct qcow2_header *h)
{
	if (len < QCOW2_V3_HEADER_LEN)
		return -EINVAL;
	h->incompatible_features = load_be64(buf + 72);
	h->compatible_features = load_be64(buf + 80);
	h->autoclear_features = load_be64(buf + 88);
	h->refcount_order = load_be32(buf + 96);
	h->header_length = load_be32(buf + 100);
	if (h->header_length < QCOW2_V3_HEADER_LEN ||
	    h->header_length > len || h->header_length % 8) {
		log_error("qcow2: bad header length %u", h->header_length);
		return -EINVAL;
	}
	if (h->header_length > 104)
		h->compression_type = buf[104];
	return 0;
}

uint64_t qcow2_rt_limit(const struct qcow2_header *h, uint64_t file_size)
{
	unsigned int cb = h->cluster_bits;
	uint64_t cs = (uint64_t)1 << cb;
	uint64_t rb_entries = (cs * 8) >> h->refcount_order;
	/* cluster counts: no overflow for sizes below 2^63 */
	uint64_t clusters = 2 * ((file_size >> cb) + 1 + (h->size >> cb) + 1);

	return div_round_up(clusters, rb_entries) + 1;
}

static int check_geometry(const struct qcow2_header *h, uint64_t file_size)
{
	uint64_t cs = (uint64_t)1 << h->cluster_bits;
	bool ext = h->incompatible_features & QCOW2_INCOMPAT_EXTL2;
	unsigned int l2_bits = h->cluster_bits - (ext ? 4 : 3);
	uint64_t cover = (uint64_t)1 << (h->cluster_bits + l2_bits);
	uint64_t need_l1;

	if (ext && h->cluster_bits < 14) {
		log_error("qcow2: extended L2 needs clusters >= 16 KiB");
		return -EINVAL;
	}
	if (h->size > QCOW2_MAX_SIZE) {
		log_error("qcow2: virtual size %" PRIu64 " too large", h->size);
		return -EINVAL;
	}
	need_l1 = div_round_up(h->size, cover);
	if (h->l1_size < need_l1 ||
	    (uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		log_error("qcow2: L1 size %u inconsistent with virtual size %" PRIu64,
			  h->l1_size, h->size);
		return -EINVAL;
	}
	if (h->l1_size &&
	    !table_ok(h->l1_table_offset, (uint64_t)h->l1_size * 8, cs,
		      file_size)) {
		log_error("qcow2: L1 table at 0x%" PRIx64 " is outside the file or misaligned",
			  h->l1_table_offset);
		return -EINVAL;
	}
	if (h->refcount_table_clusters == 0 ||
	    !table_ok(h->refcount_table_offset,
		      (uint64_t)h->refcount_table_clusters << h->cluster_bits,
		      cs, file_size)) {
		log_error("qcow2: refcount table at 0x%" PRIx64 " is outside the file or misaligned",
			  h->refcount_table_offset);
		return -EINVAL;
	}
	{
		uint64_t lim = qcow2_rt_limit(h, file_size) * 8, rt_bytes;

		lim = round_up(lim, cs);
		if (lim > QCOW2_MAX_RT_BYTES)
			lim = QCOW2_MAX_RT_BYTES < cs ? cs : QCOW2_MAX_RT_BYTES;
		rt_bytes = (uint64_t)h->refcount_table_clusters << h->cluster_bits;
		if (rt_bytes > lim) {
			log_error("qcow2: refcount table of %" PRIu64 " bytes is larger than a %" PRIu64 "-byte disk in a %" PRIu64 "-byte file can need (%" PRIu64 ")",
				  rt_bytes, h->size, file_size, lim);
			return -EINVAL;
		}
	}
	/* without the autoclear bit the extension is stale: ignored */
	if (h->bitmaps_ext && (h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) &&
	    (h->nb_bitmaps == 0 || h->nb_bitmaps > QCOW2_MAX_BITMAPS ||
	     h->bitmap_dir_size < 24 ||
	     h->bitmap_dir_size > QCOW2_MAX_BITMAP_DIR ||
	     !table_ok(h->bitmap_dir_offset, h->bitmap_dir_size, cs,
		       file_size))) {
		log_error("qcow2: bad bitmap directory (%u bitmaps, %" PRIu64 " bytes at 0x%" PRIx64 ")",
			  h->nb_bitmaps, h->bitmap_dir_size,
			  h->bitmap_dir_offset);
		return -EINVAL;
	}
	if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
		log_error("qcow2: %u snapshots, more than the %u allowed",
			  h->nb_snapshots, QCOW2_MAX_SNAPSHOTS);
		return -EINVAL;
	}
	if (h->nb_snapshots && (h->snapshots_offset % cs ||
				h->snapshots_offset >= file_size)) {
		log_error("qcow2: bad snapshot table offset");
		return -EINVAL;
	}
	if (h->backing_file_offset) {
		if (h->backing_file_size == 0 ||
		    h->backing_file_size > QCOW2_MAX_BACKING_NAME ||
		    h->backing_file_offset < h->header_length ||
		    h->backing_file_offset > cs - h->backing_file_size ||
		    h->backing_file_offset + h->backing_file_size > file_size) {
			log_error("qcow2: bad backing file name location");
			return -EINVAL;
		}
	}
	return 0;
}

int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size,
		       bool readonly, struct qcow2_header *h)
{
	uint64_t ftbl = 0;
	uint32_t ftlen = 0;
	int r;

	if (len < QCOW2_V2_HEADER_LEN || load_be32(buf) != QCOW2_MAGIC) {
		log_error("qcow2: bad magic or truncated header");
		return -EINVAL;
	}
	read_fields(buf, h);
	if (h->version != 2 && h->version != 3) {
		log_error("qcow2: unsupported version %u", h->version);
		return -ENOTSUP;
	}
	if (h->cluster_bits < 9 || h->cluster_bits > 21) {
		log_error("qcow2: bad cluster_bits %u", h->cluster_bits);
		return -EINVAL;
	}
	if (h->version == 3) {
		r = read_v3_fields(buf, len, h);
		if (r < 0)
			return r;
	}
	if (h->header_length > ((uint64_t)1 << h->cluster_bits) ||
	    h->header_length > len) {
		log_error("qcow2: header larger than its cluster");
		return -EINVAL;
	}
	if (h->refcount_order > 6) {
		log_error("qcow2: bad refcount order %u", h->refcount_order);
		return -EINVAL;
	}
	r = parse_extensions(buf, len, h, &ftbl, &ftlen);
	if (r < 0)
		return r;
	r = check_features(buf, len, h, readonly, ftbl, ftlen);
	if (r < 0)
		return r;
	return check_geometry(h, file_size);
}

int qcow2_header_backing(const uint8_t *buf, size_t len,
			 const struct qcow2_header *h, char **ret)
{
	char *name;

	*ret = NULL;
	if (!h->backing_file_offset)
		return 0;
	if (h->backing_file_offset + h->backing_file_size > len)
		return -EINVAL;
	name = strndup((const char *)buf + h->backing_file_offset,
		       h->backing_file_size);
	if (!name)
		return -ENOMEM;
	if (strlen(name) != h->backing_file_size) {
		log_error("qcow2: backing file name contains a NUL byte");
		free(name);
		return -EINVAL;
	}
	*ret = name;
	return 0;
}

/* --------------------------------------------------------------- L2 */

static int decode_compressed(const struct qcow2_geom *g, uint64_t entry,
			     uint64_t bitmap, struct qcow2_entry *e)
{
	unsigned int shift = 70 - g->cluster_bits;	/* 62 - (cb - 8) */
	uint64_t nb = ((entry >> shift) & ((1ull << (g->cluster_bits - 8)) - 1)) + 1;

	if ((entry & QCOW2_OFLAG_COPIED) || bitmap)
		return -EINVAL;
	e->type = QCOW2_COMPRESSED;
	e->host = entry & ((1ull << shift) - 1);
	e->cfree_off = e->host & ~511ull;
	e->cfree_len = nb * 512;
	e->csize = nb * 512 - (e->host & 511);
	if (e->host == 0)
		return -EINVAL;
	return 0;
}

int qcow2_entry_decode(const struct qcow2_geom *g, uint64_t entry,
		       uint64_t bitmap, struct qcow2_entry *e)
{
	uint64_t cmask = ((uint64_t)1 << g->cluster_bits) - 1;

	memset(e, 0, sizeof(*e));
	if (entry & QCOW2_OFLAG_COMPRESSED)
		return decode_compressed(g, entry, bitmap, e);
	if (entry & QCOW2_L2_RESERVED)
		return -EINVAL;
	e->host = entry & QCOW2_OFFSET_MASK;
	e->copied = entry & QCOW2_OFLAG_COPIED;
	if (e->host & cmask)
		return -EINVAL;
	if (g->extended_l2) {
		e->alloc_bits = (uint32_t)bitmap;
		e->zero_bits = (uint32_t)(bitmap >> 32);
		/* bit 0 is reserved with extended L2 entries */
		if ((entry & QCOW2_OFLAG_ZERO) || (e->alloc_bits & e->zero_bits))
			return -EINVAL;
		if (!e->host && (e->alloc_bits || e->copied))
			return -EINVAL;
		e->type = e->host ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
		return 0;
	}
	if (entry & QCOW2_OFLAG_ZERO) {
		if (g->version < 3)
			return -EINVAL;
		e->type = e->host ? QCOW2_ZERO_ALLOC : QCOW2_ZERO_PLAIN;
		if (!e->host && e->copied)
			return -EINVAL;
		return 0;
	}
	if (!e->host)
		return e->copied ? -EINVAL : 0;	/* QCOW2_UNALLOCATED */
	e->type = QCOW2_NORMAL;
	return 0;
}

enum qcow2_ctype qcow2_subcluster_type(const struct qcow2_entry *e,
				       unsigned int sc)
{
	if (e->type == QCOW2_COMPRESSED)
		return QCOW2_COMPRESSED;
	if (e->alloc_bits & (1u << sc))
		return QCOW2_NORMAL;
	if (e->zero_bits & (1u << sc))
		return QCOW2_ZERO_PLAIN;
	return QCOW2_UNALLOCATED;
}
