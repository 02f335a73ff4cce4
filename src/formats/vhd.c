/* SPDX-License-Identifier: LGPL-2.1-only */
/* VHD engine ("vpc"): dynamic and differencing images, read and write. */

/*
 * Layout (all big-endian): footer copy at 0, dynamic header at
 * footer.data_offset, BAT (u32 sector numbers, 0xffffffff = unused), data
 * blocks (sector bitmap padded to 512 bytes, then block_size bytes of
 * data), footer at the end of the file.
 *
 * In memory: the whole BAT, and the bitmap of every block touched so far
 * (a block whose bitmap is all ones shares one static "full" marker).
 *
 * New blocks are appended with their data 4096-aligned in the file (the
 * bitmap sits just before it, after padding) so that O_DIRECT data I/O
 * works on 4096-byte-sector devices.  The file is grown in big steps
 * (fallocate) so that data writes never extend it; the footer is written
 * at the new end of file by flush().  Until then the end of the file may
 * hold no footer: open() falls back on the copy at offset 0.
 *
 * flush() order (crash safety): fdatasync data; write dirty bitmaps;
 * fdatasync; write dirty BAT sectors and the footer; fdatasync.  A BAT entry
 * thus never points at a block whose bitmap is not on disk, and a bitmap bit
 * is never set on disk before the data it covers.
 *
 * Fixed images (type 2) are served as raw data followed by the footer when
 * the format is forced to "vpc" (they have no footer copy at offset 0, so
 * probing sees them as raw, which is equally correct for their data).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "fault.h"
#include "formats/format.h"
#include "formats/vhd.h"
#include "fullio.h"
#include "log.h"

/* Grow the file by up to this many blocks / bytes at a time. */
#define VHD_GROW_BLOCKS		8
#define VHD_GROW_MAX_BYTES	(64ull << 20)
/* Data of new blocks starts on this boundary in the file. */
#define VHD_DATA_ALIGN		4096

/* Marker for a bitmap with every bit set: no memory, no lookups. */
static uint8_t bitmap_full_marker;
#define BITMAP_FULL (&bitmap_full_marker)

struct vhd {
	struct vhd_footer footer;
	uint32_t type;
	uint64_t size;

	/* Dynamic / differencing only. */
	uint32_t block_size;
	unsigned int block_shift;
	uint32_t spb;			/* sectors per block */
	uint32_t bitmap_size;		/* bytes, multiple of 512 */
	uint32_t nblocks;		/* BAT entries in use */
	uint64_t table_offset;
	uint8_t *bat_raw;		/* big-endian, whole sectors */
	uint32_t bat_sectors;
	uint8_t *bat_dirty;		/* one bit per BAT sector */
	bool any_bat_dirty;
	uint8_t **bitmaps;		/* per block: NULL, BITMAP_FULL or buffer */
	uint8_t *bm_dirty;		/* one bit per block */
	uint32_t *dirty_list;		/* blocks with a dirty bitmap */
	uint32_t ndirty, dirty_cap;
	uint32_t nallocated;

	uint64_t alloc_end;		/* next block goes at or after this */
	uint64_t file_size;		/* current size of the file */
	/*
	 * [zero_start, file_size - 512) is known to read as zeros.  Readers
	 * that ignore the bitmaps of dynamic images (qemu) see the raw data
	 * of clear sectors, so a new block must not expose stale bytes
	 * (an old footer, blocks written before a crash but never flushed).
	 */
	uint64_t zero_start;
	bool footer_dirty;		/* footer must be (re)written at EOF */
	bool copy_dirty;		/* footer copy at 0 must be rewritten */

	/* Metadata ranges (struct vhd_meta): no block may overlap them. */
	struct vhd_range meta[11];
	unsigned int n_meta;

	/* Differencing: the parent's uuid is checked on first use. */
	uint8_t parent_uuid[16];
	int parent_check;		/* 0 not yet, 1 ok, -errno failed */
};

static uint32_t bat_get(const struct vhd *v, uint32_t blk)
{
	return load_be32(v->bat_raw + (size_t)blk * 4);
}

static void bat_set(struct vhd *v, uint32_t blk, uint32_t sector)
{
	uint32_t s = (uint32_t)((uint64_t)blk * 4 / VHD_SECTOR);

	store_be32(v->bat_raw + (size_t)blk * 4, sector);
	v->bat_dirty[s >> 3] |= (uint8_t)(1u << (s & 7));
	v->any_bat_dirty = true;
}

static uint64_t block_data_offset(const struct vhd *v, uint32_t blk)
{
	return (uint64_t)bat_get(v, blk) * VHD_SECTOR + v->bitmap_size;
}

static bool vhd_probe(const uint8_t *head, size_t len)
{
	return len >= 8 && !memcmp(head, VHD_COOKIE, 8);
}

static void vhd_free(struct vhd *v)
{
	if (!v)
		return;
	if (v->bitmaps) {
		for (uint32_t i = 0; i < v->nblocks; i++)
			if (v->bitmaps[i] != BITMAP_FULL)
				free(v->bitmaps[i]);
		free(v->bitmaps);
	}
	free(v->bat_raw);
	free(v->bat_dirty);
	free(v->bm_dirty);
	free(v->dirty_list);
	free(v);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The metadata [off, off + len) overlaps (footer at EOF included), or NULL. */
static const char *meta_overlap(const struct vhd *v, uint64_t off, uint64_t len)
{
	for (unsigned int i = 0; i < v->n_meta; i++)
		if (off < v->meta[i].off + v->meta[i].len &&
		    v->meta[i].off < off + len)
			return v->meta[i].what;
	if (off + len > v->file_size - VHD_FOOTER_SIZE)
		return "footer";
	return NULL;
}

/*
 * Every allocated block must lie inside the file, clear of the metadata
 * (headers, BAT, parent locators, footer), and not overlap another block.
 * Also computes alloc_end, past all of them.
 */
static int check_bat(struct vhd *v, uint64_t meta_end, const char *path)
{
	uint32_t *sorted;
	uint32_t n = 0;
	uint64_t stride = (uint64_t)v->bitmap_size + v->block_size;
	int r = 0;

	sorted = malloc((size_t)(v->nblocks ? v->nblocks : 1) * 4);
	if (!sorted)
		return -ENOMEM;
	for (uint32_t i = 0; i < v->nblocks; i++) {
		uint32_t e = bat_get(v, i);
		uint64_t off, need;
		const char *what;

		if (e == VHD_BAT_UNUSED)
			continue;
		off = (uint64_t)e * VHD_SECTOR;
		/* The last block may be partial: only its mapped part must exist. */
		need = v->bitmap_size +
		       min_u64(v->block_size, v->size - ((uint64_t)i << v->block_shift));
		if (off + need > v->file_size) {
			log_error("vhd '%s': BAT entry %u points outside the file",
				  path, i);
			r = -EINVAL;
			goto out;
		}
		what = meta_overlap(v, off, need);
		if (what) {
			log_error("vhd '%s': corrupt image: block %u (BAT entry) overlaps the %s",
				  path, i, what);
			r = -EINVAL;
			goto out;
		}
		sorted[n++] = e;
	}
	qsort(sorted, n, 4, cmp_u32);
	v->alloc_end = meta_end;
	for (unsigned int i = 0; i < v->n_meta; i++)
		if (v->meta[i].off + v->meta[i].len > v->alloc_end)
			v->alloc_end = v->meta[i].off + v->meta[i].len;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = (uint64_t)sorted[i] * VHD_SECTOR;

		if (i + 1 < n &&
		    off + stride > (uint64_t)sorted[i + 1] * VHD_SECTOR) {
			log_error("vhd '%s': overlapping blocks in the BAT", path);
			r = -EINVAL;
			goto out;
		}
		if (off + stride > v->alloc_end)
			v->alloc_end = off + stride;
	}
	v->nallocated = n;
out:
	free(sorted);
	return r;
}

static int vhd_open(struct image *img, char **ret_backing,
		    char **ret_backing_format)
{
	struct vhd_meta m;
	struct vhd *v;
	uint64_t bat_len;
	char *fmt = NULL;
	int r;

	r = vhd_meta_read(img->buffered_fd, &m);
	if (r < 0) {
		log_error("vhd '%s': invalid or unsupported headers", img->path);
		return r;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		r = -ENOMEM;
		goto out;
	}
	v->footer = m.footer;
	v->type = m.footer.type;
	v->size = m.footer.current_size;
	v->file_size = m.file_size;
	v->zero_start = m.file_size - VHD_FOOTER_SIZE;
	if (v->type == VHD_TYPE_FIXED)
		goto done;

	v->block_size = m.header.block_size;
	v->block_shift = (unsigned int)__builtin_ctz(v->block_size);
	v->spb = v->block_size / VHD_SECTOR;
	v->bitmap_size = (uint32_t)round_up(div_round_up(v->spb, 8), VHD_SECTOR);
	v->nblocks = (uint32_t)((v->size + v->block_size - 1) >> v->block_shift);
	v->table_offset = m.header.table_offset;
	memcpy(v->parent_uuid, m.header.parent_uuid, 16);
	bat_len = round_up((uint64_t)v->nblocks * 4, VHD_SECTOR);
	v->bat_sectors = (uint32_t)(bat_len / VHD_SECTOR);
	v->bat_raw = malloc(bat_len);
	v->bat_dirty = calloc((v->bat_sectors + 7) / 8, 1);
	v->bm_dirty = calloc((v->nblocks + 7) / 8, 1);
	v->bitmaps = calloc(v->nblocks, sizeof(*v->bitmaps));
	if (!v->bat_raw || !v->bat_dirty || !v->bm_dirty || !v->bitmaps) {
		r = -ENOMEM;
		goto out;
	}
	r = image_pread(img, v->bat_raw, bat_len, v->table_offset);
	if (r < 0)
		goto out;
	memcpy(v->meta, m.meta, sizeof(v->meta));
	v->n_meta = m.n_meta;
	r = check_bat(v, m.meta_end, img->path);
	if (r < 0)
		goto out;

	if (v->type == VHD_TYPE_DIFF) {
		fmt = strdup("vpc");
		if (!fmt) {
			r = -ENOMEM;
			goto out;
		}
	}
done:
	if (!img->readonly) {
		/* Repair what a crash while growing the file left behind. */
		v->footer_dirty = m.footer_from_copy;
		v->copy_dirty = m.copy_bad && v->type != VHD_TYPE_FIXED;
	}
	img->virtual_size = v->size;
	img->priv = v;
	if (v->type == VHD_TYPE_DIFF) {
		*ret_backing = m.parent;
		m.parent = NULL;
		*ret_backing_format = fmt;
	}
	v = NULL;
	r = 0;
out:
	vhd_free(v);
	vhd_meta_release(&m);
	return r;
}

static void vhd_close(struct image *img)
{
	vhd_free(img->priv);
	img->priv = NULL;
}

/* Differencing: is img->backing the image our header names? */
static int check_parent(struct image *img)
{
	struct vhd *v = img->priv;
	const struct vhd *p;

	if (v->type != VHD_TYPE_DIFF || v->parent_check == 1)
		return 0;
	if (v->parent_check < 0)
		return v->parent_check;
	v->parent_check = -EINVAL;
	if (!img->backing) {
		log_error("vhd '%s': differencing image opened without its parent",
			  img->path);
		return v->parent_check;
	}
	if (img->backing->fmt != &format_vhd || !img->backing->priv) {
		log_error("vhd '%s': parent '%s' is not a VHD", img->path,
			  img->backing->path);
		return v->parent_check;
	}
	p = img->backing->priv;
	if (memcmp(v->parent_uuid, p->footer.uuid, 16)) {
		log_error("vhd '%s': parent '%s' has another uuid than recorded",
			  img->path, img->backing->path);
		return v->parent_check;
	}
	v->parent_check = 1;
	return 0;
}

/* Bitmap of allocated block 'blk', loaded on first use. */
static int get_bitmap(struct image *img, uint32_t blk, uint8_t **ret)
{
	struct vhd *v = img->priv;
	uint8_t *bm;
	uint32_t full_bytes = v->spb / 8;
	bool full = true;
	int r;

	if (v->bitmaps[blk]) {
		*ret = v->bitmaps[blk];
		return 0;
	}
	bm = malloc(v->bitmap_size);
	if (!bm)
		return -ENOMEM;
	r = image_pread(img, bm, v->bitmap_size,
			(uint64_t)bat_get(v, blk) * VHD_SECTOR);
	if (r < 0) {
		free(bm);
		return r;
	}
	for (uint32_t i = 0; i < full_bytes && full; i++)
		full = bm[i] == 0xff;
	for (uint32_t i = full_bytes * 8; i < v->spb && full; i++)
		full = vhd_bit_test(bm, i);
	if (full) {
		free(bm);
		bm = BITMAP_FULL;
	}
	v->bitmaps[blk] = bm;
	*ret = bm;
	return 0;
}

static int push(struct extent_list *out, enum extent_kind kind, int fd,
		uint64_t host, uint64_t len, bool hole)
{
	struct extent e = {
		.kind = kind,
		.fd = fd,
		.host_offset = host,
		.length = len,
		.hole = hole,
	};

	return extent_list_push(out, &e);
}

/* A range that is not in this image: the parent's, or a zero hole. */
static int map_absent(struct image *img, uint64_t off, uint64_t len,
		      void *buf, struct extent_list *out)
{
	struct vhd *v = img->priv;

	if (v->type == VHD_TYPE_DIFF)
		return image_map_backing_read(img, off, len, buf, out);
	return push(out, EXTENT_ZERO, -1, 0, len, true);
}

static int vhd_map_read(struct image *img, uint64_t offset, uint64_t length,
			void *buf, struct extent_list *out)
{
	struct vhd *v = img->priv;
	uint64_t done = 0;
	int r;

	if (v->type == VHD_TYPE_FIXED)
		return push(out, EXTENT_DATA, img->fd, offset, length, false);
	r = check_parent(img);
	if (r < 0)
		return r;
	while (done < length) {
		uint64_t off = offset + done;
		uint64_t blk = off >> v->block_shift;
		uint64_t in_blk = off & (v->block_size - 1);
		uint64_t n = min_u64(length - done, v->block_size - in_blk);
		void *b = buf ? (char *)buf + done : NULL;
		uint8_t *bm;

		if (blk >= v->nblocks)
			return -EINVAL;	/* beyond virtual_size: caller bug */
		if (bat_get(v, (uint32_t)blk) == VHD_BAT_UNUSED) {
			r = map_absent(img, off, n, b, out);
			if (r < 0)
				return r;
			done += n;
			continue;
		}
		r = get_bitmap(img, (uint32_t)blk, &bm);
		if (r < 0)
			return r;
		if (bm == BITMAP_FULL) {
			r = push(out, EXTENT_DATA, img->fd,
				 block_data_offset(v, (uint32_t)blk) + in_blk,
				 n, false);
			if (r < 0)
				return r;
			done += n;
			continue;
		}
		/* Runs of equal bits, clipped to [in_blk, in_blk + n). */
		for (uint64_t p = in_blk; p < in_blk + n;) {
			uint32_t s = (uint32_t)(p / VHD_SECTOR);
			uint32_t last = (uint32_t)((in_blk + n - 1) / VHD_SECTOR);
			uint32_t run = vhd_bit_run(bm, s, last - s + 1);
			uint64_t end = min_u64((uint64_t)(s + run) * VHD_SECTOR,
					       in_blk + n);
			uint64_t goff = ((uint64_t)blk << v->block_shift) + p;

			if (vhd_bit_test(bm, s))
				r = push(out, EXTENT_DATA, img->fd,
					 block_data_offset(v, (uint32_t)blk) + p,
					 end - p, false);
			else
				r = map_absent(img, goff, end - p,
					       buf ? (char *)buf + (goff - offset) : NULL,
					       out);
			if (r < 0)
				return r;
			p = end;
		}
		done += n;
	}
	return 0;
}

static int mark_bitmap_dirty(struct vhd *v, uint32_t blk)
{
	if (v->bm_dirty[blk >> 3] & (1u << (blk & 7)))
		return 0;
	if (v->ndirty == v->dirty_cap) {
		uint32_t cap = v->dirty_cap ? v->dirty_cap * 2 : 64;
		uint32_t *l = realloc(v->dirty_list, (size_t)cap * 4);

		if (!l)
			return -ENOMEM;
		v->dirty_list = l;
		v->dirty_cap = cap;
	}
	v->dirty_list[v->ndirty++] = blk;
	v->bm_dirty[blk >> 3] |= (uint8_t)(1u << (blk & 7));
	return 0;
}

/* Make [off, off + len) of the file read as zeros. */
static int zero_range(struct image *img, uint64_t off, uint64_t len)
{
	void *z;
	int r = 0;

	if (!len)
		return 0;
	if (fallocate(img->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
		return -errno;
	/* No ZERO_RANGE here: write zeros, 1 MiB at a time. */
	z = calloc(1, len < (1u << 20) ? len : (1u << 20));
	if (!z)
		return -ENOMEM;
	for (uint64_t done = 0; !r && done < len;) {
		size_t n = (size_t)min_u64(len - done, 1u << 20);

		r = image_pwrite(img, z, n, off + done);
		done += n;
	}
	free(z);
	return r;
}

/* Make sure [alloc_end, end) plus a footer fits in the file. */
static int grow_file(struct image *img, uint64_t end)
{
	struct vhd *v = img->priv;
	uint64_t stride = (uint64_t)v->bitmap_size + v->block_size +
			  VHD_DATA_ALIGN;
	uint64_t left = v->nblocks - v->nallocated;
	uint64_t extra = min_u64(VHD_GROW_BLOCKS - 1, VHD_GROW_MAX_BYTES / stride);
	uint64_t new_size;
	int r;

	if (end + VHD_FOOTER_SIZE <= v->file_size)
		return 0;
	/* Room for a few more blocks, never more than the disk can use. */
	new_size = end + VHD_FOOTER_SIZE +
		   (left > 1 ? min_u64(left - 1, extra) : 0) * stride;
	if (fallocate(img->fd, 0, (off_t)v->file_size,
		      (off_t)(new_size - v->file_size)) < 0) {
		if (errno != EOPNOTSUPP && errno != ENOSYS)
			return -errno;
		if (ftruncate(img->fd, (off_t)new_size) < 0)
			return -errno;
	}
	/* The old footer slot is now inside the data area. */
	r = zero_range(img, v->file_size - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE);
	if (r < 0)
		return r;
	if (v->zero_start > v->file_size - VHD_FOOTER_SIZE)
		v->zero_start = v->file_size - VHD_FOOTER_SIZE;
	v->file_size = new_size;
	v->footer_dirty = true;
	return 0;
}

static int alloc_block(struct image *img, uint32_t blk)
{
	struct vhd *v = img->priv;
	uint64_t data, bm_off, end;
	uint8_t *bm;
	int r;

	data = round_up(v->alloc_end + v->bitmap_size, VHD_DATA_ALIGN);
	bm_off = data - v->bitmap_size;
	end = data + v->block_size;
	if (bm_off / VHD_SECTOR >= VHD_BAT_UNUSED)
		return -EFBIG;	/* BAT entries are 32-bit sector numbers */
	/* alloc_end is past all metadata: this only guards the invariant. */
	for (unsigned int i = 0; i < v->n_meta; i++) {
		if (bm_off < v->meta[i].off + v->meta[i].len &&
		    v->meta[i].off < end) {
			log_error("vhd '%s': refusing to allocate block %u over the %s",
				  img->path, blk, v->meta[i].what);
			return -EIO;
		}
	}
	bm = calloc(1, v->bitmap_size);
	if (!bm)
		return -ENOMEM;
	r = grow_file(img, end);
	if (!r && bm_off < v->zero_start)
		r = zero_range(img, bm_off, min_u64(end, v->zero_start) - bm_off);
	if (!r)
		r = mark_bitmap_dirty(v, blk);
	if (r < 0) {
		free(bm);
		return r;
	}
	v->bitmaps[blk] = bm;
	bat_set(v, blk, (uint32_t)(bm_off / VHD_SECTOR));
	v->alloc_end = end;
	if (v->zero_start < end)
		v->zero_start = end;
	v->nallocated++;
	return 0;
}

/*
 * A write covers only part of sector 's' whose bit is clear: put the
 * sector's current content (parent's or zeros) in place first, so that
 * setting the bit does not expose stale bytes around the write.
 */
static int cow_fill_sector(struct image *img, uint32_t blk, uint32_t s)
{
	struct vhd *v = img->priv;
	uint64_t goff = ((uint64_t)blk << v->block_shift) + (uint64_t)s * VHD_SECTOR;
	uint8_t *sec;
	int r = 0;

	sec = aligned_zalloc(VHD_DATA_ALIGN, VHD_SECTOR);
	if (!sec)
		return -ENOMEM;
	if (v->type == VHD_TYPE_DIFF && img->backing)
		r = image_read(img->backing, goff, VHD_SECTOR, sec);
	if (!r)
		r = image_pwrite(img, sec, VHD_SECTOR,
				 block_data_offset(v, blk) + (uint64_t)s * VHD_SECTOR);
	free(sec);
	return r;
}

static int vhd_map_write(struct image *img, uint64_t offset, uint64_t length,
			 struct extent_list *out)
{
	struct vhd *v = img->priv;
	uint64_t done = 0;
	int r;

	if (img->readonly)
		return -EROFS;
	if (v->type == VHD_TYPE_FIXED)
		return push(out, EXTENT_DATA, img->fd, offset, length, false);
	r = check_parent(img);
	if (r < 0)
		return r;
	while (done < length) {
		uint64_t off = offset + done;
		uint64_t blk64 = off >> v->block_shift;
		uint64_t in_blk = off & (v->block_size - 1);
		uint64_t n = min_u64(length - done, v->block_size - in_blk);
		uint32_t blk = (uint32_t)blk64, first, last;
		bool changed = false;
		uint8_t *bm;

		if (blk64 >= v->nblocks)
			return -EINVAL;
		if (bat_get(v, blk) == VHD_BAT_UNUSED) {
			r = alloc_block(img, blk);
			if (r < 0)
				return r;
		}
		r = get_bitmap(img, blk, &bm);
		if (r < 0)
			return r;
		if (bm != BITMAP_FULL) {
			first = (uint32_t)(in_blk / VHD_SECTOR);
			last = (uint32_t)((in_blk + n - 1) / VHD_SECTOR);
			if (in_blk % VHD_SECTOR && !vhd_bit_test(bm, first)) {
				r = cow_fill_sector(img, blk, first);
				if (r < 0)
					return r;
				vhd_bit_set(bm, first);
				changed = true;
			}
			if ((in_blk + n) % VHD_SECTOR && !vhd_bit_test(bm, last)) {
				r = cow_fill_sector(img, blk, last);
				if (r < 0)
					return r;
				vhd_bit_set(bm, last);
				changed = true;
			}
			for (uint32_t s = first; s <= last; s++) {
				if (!vhd_bit_test(bm, s)) {
					vhd_bit_set(bm, s);
					changed = true;
				}
			}
			if (changed) {
				r = mark_bitmap_dirty(v, blk);
				if (r < 0)
					return r;
			}
		}
		r = push(out, EXTENT_DATA, img->fd,
			 block_data_offset(v, blk) + in_blk, n, false);
		if (r < 0)
			return r;
		done += n;
	}
	return 0;
}

/*
 * Clearing bitmap bits is not a safe "zero": a differencing image would
 * expose the parent, and qemu ignores the bitmaps of dynamic images (it
 * would read the old data).  So zeroing maps the range for writing (bits
 * set, blocks allocated) and zeroes the data with FALLOC_FL_ZERO_RANGE:
 * no data transfer, and every reader sees zeros.  Unallocated blocks of a
 * dynamic image already read as zeros everywhere and stay unallocated.
 */
static int vhd_zero(struct image *img, uint64_t offset, uint64_t length,
		    bool may_unmap)
{
	struct vhd *v = img->priv;
	struct extent_list l = { 0 };
	uint64_t done = 0;
	int r = 0;

	(void)may_unmap;
	if (img->readonly)
		return -EROFS;
	if (v->type == VHD_TYPE_FIXED)
		return zero_range(img, offset, length);
	while (!r && done < length) {
		uint64_t off = offset + done;
		uint64_t blk = off >> v->block_shift;
		uint64_t n = min_u64(length - done,
				     v->block_size - (off & (v->block_size - 1)));

		done += n;
		if (blk >= v->nblocks) {
			r = -EINVAL;
			break;
		}
		if (v->type == VHD_TYPE_DYNAMIC &&
		    bat_get(v, (uint32_t)blk) == VHD_BAT_UNUSED)
			continue;
		extent_list_clear(&l);
		r = vhd_map_write(img, off, n, &l);
		for (size_t i = 0; !r && i < l.n; i++)
			r = zero_range(img, l.v[i].host_offset, l.v[i].length);
	}
	extent_list_release(&l);
	return r;
}

/* Discard may leave the data as it is: do nothing, never corrupt. */
static int vhd_discard(struct image *img, uint64_t offset, uint64_t length)
{
	(void)img;
	(void)offset;
	(void)length;
	return 0;
}

static bool bitmap_is_full(const struct vhd *v, const uint8_t *bm)
{
	return vhd_bit_test(bm, 0) && vhd_bit_run(bm, 0, v->spb) == v->spb;
}

static int write_bitmaps(struct image *img)
{
	struct vhd *v = img->priv;

	for (uint32_t i = 0; i < v->ndirty; i++) {
		uint32_t blk = v->dirty_list[i];
		uint8_t *bm = v->bitmaps[blk];
		int r;

		if (bm == BITMAP_FULL || !bm)
			continue;	/* cannot happen: dirty ones are buffers */
		r = image_pwrite(img, bm, v->bitmap_size,
				 (uint64_t)bat_get(v, blk) * VHD_SECTOR);
		if (r < 0)
			return r;
	}
	return 0;
}

static void clear_bitmap_dirt(struct vhd *v)
{
	for (uint32_t i = 0; i < v->ndirty; i++) {
		uint32_t blk = v->dirty_list[i];

		v->bm_dirty[blk >> 3] &= (uint8_t)~(1u << (blk & 7));
		if (v->bitmaps[blk] != BITMAP_FULL &&
		    bitmap_is_full(v, v->bitmaps[blk])) {
			free(v->bitmaps[blk]);
			v->bitmaps[blk] = BITMAP_FULL;
		}
	}
	v->ndirty = 0;
}

static int write_bat(struct image *img)
{
	struct vhd *v = img->priv;

	for (uint32_t s = 0; s < v->bat_sectors;) {
		uint32_t e = s;
		int r;

		if (!(v->bat_dirty[s >> 3] & (1u << (s & 7)))) {
			s++;
			continue;
		}
		while (e < v->bat_sectors &&
		       (v->bat_dirty[e >> 3] & (1u << (e & 7))))
			e++;
		r = image_pwrite(img, v->bat_raw + (size_t)s * VHD_SECTOR,
				 (size_t)(e - s) * VHD_SECTOR,
				 v->table_offset + (uint64_t)s * VHD_SECTOR);
		if (r < 0)
			return r;
		s = e;
	}
	return 0;
}

static int vhd_flush(struct image *img)
{
	struct vhd *v = img->priv;
	uint8_t *foot;
	int r;

	if (img->readonly)
		return 0;
	r = image_datasync(img);
	if (r < 0 || v->type == VHD_TYPE_FIXED)
		return r;
	if (!v->ndirty && !v->any_bat_dirty && !v->footer_dirty &&
	    !v->copy_dirty)
		return 0;
	if (v->ndirty) {
		r = write_bitmaps(img);
		if (!r)
			r = image_datasync(img);
		if (r < 0)
			return r;
		clear_bitmap_dirt(v);
	}
	r = write_bat(img);
	if (r < 0)
		return r;
	foot = aligned_malloc(VHD_DATA_ALIGN, VHD_FOOTER_SIZE);
	if (!foot)
		return -ENOMEM;
	vhd_footer_build(&v->footer, foot);
	if (v->footer_dirty)
		r = image_pwrite(img, foot, VHD_FOOTER_SIZE,
				 v->file_size - VHD_FOOTER_SIZE);
	if (!r && v->copy_dirty)
		r = image_pwrite(img, foot, VHD_FOOTER_SIZE, 0);
	free(foot);
	if (!r)
		r = image_datasync(img);
	if (r < 0)
		return r;
	memset(v->bat_dirty, 0, (v->bat_sectors + 7) / 8);
	v->any_bat_dirty = false;
	v->footer_dirty = false;
	v->copy_dirty = false;
	return 0;
}

/* ------------------------------------------------- image_skip_backing */

/*
 * A differencing image gets a new parent B (the parent's parent) or none
 * (it becomes a dynamic image).  The caller pulled everything the old
 * parent held into img and flushed, so the old and the new chain read the
 * same; each prefix of the writes below must open as one or the other.
 *
 * Readers take the footer at the end of the file, or the copy at offset 0
 * when the end holds none (a crash while the file grew: vhd_meta_read,
 * blktap); qemu takes the copy.  A valid end footer and copy that disagree
 * are refused.  Sector writes are atomic; the 1 KiB dynamic header is
 * two sectors and could tear, so it is never rewritten in place.
 *
 * New parent: the parent uuid, timestamp, name and locators must change
 * together (an old uuid with a new locator opens the wrong parent).  A new
 * dynamic header, the new locators' data and an empty (zero) sector are
 * appended at the end of the file; fdatasync.  The old end footer is no
 * longer at the end: readers use the copy, still the old image.  Then the
 * copy at offset 0 pointing at the new header (now the new image);
 * fdatasync; then the same footer at the new end; fdatasync.
 *
 * No parent: only the footer changes (type differencing -> dynamic).  The
 * end footer is zeroed first (readers use the old copy), then the copy is
 * written, then the end footer, each followed by fdatasync.  The parent
 * fields of the dynamic header stay as they were: a dynamic image's
 * readers ignore them, and clearing them would mean rewriting the header
 * in place (it could tear) or moving it past the data blocks, where
 * qemu's block allocator, which only looks at the BAT, would write over it.
 */

/* Write the 512-byte footer f (or zeros when f is NULL) at 'off'; sync. */
static int put_footer(struct image *img, const struct vhd_footer *f,
		      uint64_t off)
{
	uint8_t *buf = aligned_zalloc(VHD_DATA_ALIGN, VHD_FOOTER_SIZE);
	int r;

	if (!buf)
		return -ENOMEM;
	if (f)
		vhd_footer_build(f, buf);
	r = image_pwrite(img, buf, VHD_FOOTER_SIZE, off);
	if (r == 0)
		r = image_datasync(img);
	free(buf);
	return r;
}

/* Append a dynamic header naming 'parent', with its locators. */
static int append_header(struct image *img, const struct vhd_meta *m,
			 const struct image *parent, uint64_t *ret_hdr,
			 uint64_t *ret_end)
{
	const struct vhd *pv = parent->priv;
	struct vhd_dyn_header h = m->header;
	struct vhd_parent_ref ref;
	const char *slash = strrchr(img->path, '/');
	char *dir;
	uint64_t hdr = round_up(m->file_size, VHD_SECTOR), off, len;
	uint8_t *buf;
	int r;

	if (parent->fmt != &format_vhd || !pv)
		return -EINVAL;
	dir = slash ? strndup(img->path, (size_t)(slash - img->path)) :
		      strdup(".");
	if (!dir)
		return -ENOMEM;
	r = vhd_parent_ref_build(dir, parent->path, &pv->footer, &h, &ref);
	free(dir);
	if (r < 0)
		return r;
	memset(h.loc, 0, sizeof(h.loc));
	off = hdr + VHD_DYN_HEADER_SIZE;
	for (int i = 0; i < VHD_PARENT_LOCS; i++) {
		h.loc[i].code = ref.locs[i].code;
		h.loc[i].data_len = (uint32_t)ref.locs[i].len;
		/* bytes, as vhd_create_differencing (and blktap) write */
		h.loc[i].data_space = (uint32_t)round_up(ref.locs[i].len,
							 VHD_SECTOR);
		h.loc[i].data_offset = off;
		off += h.loc[i].data_space;
	}
	/* and an empty sector where the end footer goes last */
	len = off + VHD_FOOTER_SIZE - hdr;
	buf = aligned_zalloc(VHD_DATA_ALIGN, len);
	if (!buf) {
		vhd_parent_ref_release(&ref);
		return -ENOMEM;
	}
	vhd_dyn_header_build(&h, buf);
	for (int i = 0; i < VHD_PARENT_LOCS; i++)
		memcpy(buf + (h.loc[i].data_offset - hdr), ref.locs[i].data,
		       ref.locs[i].len);
	vhd_parent_ref_release(&ref);
	r = image_pwrite(img, buf, len, hdr);
	if (r == 0)
		r = image_datasync(img);
	free(buf);
	*ret_hdr = hdr;
	*ret_end = hdr + len;
	return r;
}

static int vhd_set_backing(struct image *img, const struct image *parent)
{
	struct vhd *v = img->priv;
	struct vhd_meta m;
	struct vhd_footer f;
	uint64_t hdr = 0, end = 0;
	int r;

	if (v->type != VHD_TYPE_DIFF)
		return -EINVAL;
	/* the headers as they are on disk now (the caller flushed) */
	r = vhd_meta_read(img->buffered_fd, &m);
	if (r < 0)
		return r;
	f = m.footer;
	if (parent) {
		r = append_header(img, &m, parent, &hdr, &end);
		f.data_offset = hdr;
	} else {
		end = m.file_size;
		f.type = VHD_TYPE_DYNAMIC;
		r = put_footer(img, NULL, end - VHD_FOOTER_SIZE);
	}
	if (r == 0)
		fault_point("vhd-set-backing-mid");
	if (r == 0)
		r = put_footer(img, &f, 0);
	if (r == 0)
		fault_point("vhd-set-backing-copy");
	if (r == 0)
		r = put_footer(img, &f, end - VHD_FOOTER_SIZE);
	vhd_meta_release(&m);
	return r;
}

const struct image_format format_vhd = {
	.name = "vpc",
	.probe = vhd_probe,
	.open = vhd_open,
	.map_read = vhd_map_read,
	.map_write = vhd_map_write,
	.zero = vhd_zero,
	.discard = vhd_discard,
	.flush = vhd_flush,
	.close = vhd_close,
	.set_backing = vhd_set_backing,
	.bitmap_load = sidecar_bitmap_load,
	.bitmap_store = sidecar_bitmap_store,
	.bitmap_remove = sidecar_bitmap_remove,
	.bitmap_list = sidecar_bitmap_list,
};
