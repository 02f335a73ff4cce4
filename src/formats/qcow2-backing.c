/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * QCOW2: point an image at another backing file (image_skip_backing).
 *
 * The backing file name, and its format in the backing-format header
 * extension (0xE2792ACA), live in the header cluster (cluster 0) with the
 * fixed header fields and the other extensions, which are kept byte for
 * byte.  The new header area is built in memory from the header cluster as
 * it is on disk, then written so that a crash leaves the old or the new
 * header:
 *
 *  1. the bytes from 512 on (extensions that moved, the new name), when
 *     none of the bytes that change there is read by the old header: the
 *     new name goes where the old header has nothing (after its
 *     extensions and its name, or back right after the extensions when
 *     the old name is elsewhere), so that with the backing format kept
 *     (same padded length) only dead bytes change past sector 0; fdatasync;
 *  2. sector 0 (the fixed fields: backing_file_offset/size, and the first
 *     extensions) in one 512-byte write: a sector write is all or nothing;
 *     fdatasync.
 *
 * When the layout of the extensions must move past sector 0 (dropping the
 * backing format extension of a header whose extensions end beyond 512
 * bytes), there is no such order: the whole area, at most 4 KiB, is written
 * at once.  That is one page of the page cache and one aligned 4 KiB I/O,
 * which devices with 4 KiB physical sectors (4Kn, 512e: today's disks and
 * SSDs) write atomically; only a 512-byte-native device could tear it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "fault.h"
#include "fullio.h"
#include "log.h"
#include "qcow2.h"

#define SECTOR 512u
#define ONE_WRITE_MAX 4096u

static uint64_t pad8(uint64_t n)
{
	return (n + 7) & ~7ull;
}

/* End of the extensions the header 'h' declares in buf (after END). */
static uint64_t ext_end(const uint8_t *buf, size_t len,
			const struct qcow2_header *h)
{
	uint64_t off = h->header_length, end = (uint64_t)1 << h->cluster_bits;

	if (h->backing_file_offset && h->backing_file_offset < end)
		end = h->backing_file_offset;
	if (end > len)
		end = len;
	while (off + 8 <= end) {
		uint32_t type = load_be32(buf + off);
		uint64_t elen = load_be32(buf + off + 4);

		off += 8;
		if (type == QCOW2_EXT_END)
			break;
		off += pad8(elen);
	}
	return off;
}

/*
 * Build in nb (a copy of the len bytes of old) the extensions of 'old'
 * without the backing format, preceded by a new one when fmt is set, and
 * the END marker.  Returns the end of the extensions, or 0 when they do
 * not fit in the header cluster.
 */
static uint64_t build_exts(const uint8_t *old, size_t len,
			   const struct qcow2_header *h, const char *fmt,
			   uint8_t *nb)
{
	uint64_t roff = h->header_length, w = h->header_length;
	uint64_t end = min_u64((uint64_t)1 << h->cluster_bits, len);
	uint64_t rend = ext_end(old, len, h);

	if (fmt) {
		size_t fl = strlen(fmt);

		if (w + 8 + pad8(fl) > end)
			return 0;
		store_be32(nb + w, QCOW2_EXT_BACKING_FMT);
		store_be32(nb + w + 4, (uint32_t)fl);
		memset(nb + w + 8, 0, pad8(fl));
		memcpy(nb + w + 8, fmt, fl);
		w += 8 + pad8(fl);
	}
	while (roff + 8 <= rend) {
		uint32_t type = load_be32(old + roff);
		uint64_t n = 8 + pad8(load_be32(old + roff + 4));

		if (type == QCOW2_EXT_END)
			break;
		if (roff + n > rend)
			return 0;	/* the parser refused this already */
		if (type != QCOW2_EXT_BACKING_FMT) {
			if (w + n > end)
				return 0;
			memcpy(nb + w, old + roff, n);
			w += n;
		}
		roff += n;
	}
	if (w + 8 > end)
		return 0;
	memset(nb + w, 0, 8);
	return w + 8;
}

/* Does the old header read byte i (fixed fields, extensions, name)? */
static bool old_live(const struct qcow2_header *h, uint64_t old_ext_end,
		     uint64_t i)
{
	if (i < old_ext_end)
		return true;
	return h->backing_file_offset && i >= h->backing_file_offset &&
	       i < h->backing_file_offset + h->backing_file_size;
}

/* Do only dead bytes of the old header change from sector 1 on? */
static bool tail_safe(const uint8_t *old, const uint8_t *nb, uint64_t end,
		      const struct qcow2_header *h, uint64_t old_ext_end)
{
	for (uint64_t i = SECTOR; i < end; i++)
		if (old[i] != nb[i] && old_live(h, old_ext_end, i))
			return false;
	return true;
}

struct rebacking {
	uint8_t *nb;		/* the new header cluster */
	uint64_t end;		/* end of what the new header reads */
	bool tail_safe;		/* the two-step order applies */
};

/* Build the new header cluster for backing 'name' of format 'fmt'. */
static int build_header(const uint8_t *old, size_t len,
			const struct qcow2_header *h, const char *name,
			const char *fmt, struct rebacking *ret)
{
	uint64_t cs = (uint64_t)1 << h->cluster_bits;
	uint64_t lim = min_u64(cs, len), xend, oend = ext_end(old, len, h);
	uint64_t cand[2], nlen = name ? strlen(name) : 0;
	uint8_t *nb = aligned_malloc(4096, len);
	int found = -1;

	if (!nb)
		return -ENOMEM;
	memcpy(nb, old, len);
	xend = build_exts(old, len, h, name ? fmt : NULL, nb);
	if (!xend) {
		free(nb);
		return -ENOSPC;
	}
	if (!name) {
		store_be64(nb + 8, 0);
		store_be32(nb + 16, 0);
		ret->nb = nb;
		ret->end = xend;
		ret->tail_safe = tail_safe(old, nb, lim, h, oend);
		return 0;
	}
	/* right after the extensions, or after all the old header reads */
	cand[0] = xend;
	cand[1] = max_u64(xend, max_u64(oend, h->backing_file_offset +
						 h->backing_file_size));
	for (int i = 0; i < 2; i++) {
		if (nlen > QCOW2_MAX_BACKING_NAME || cand[i] + nlen > lim)
			continue;
		memcpy(nb, old, len);
		build_exts(old, len, h, fmt, nb);
		memcpy(nb + cand[i], name, nlen);
		store_be64(nb + 8, cand[i]);
		store_be32(nb + 16, (uint32_t)nlen);
		if (found < 0)
			found = i;
		if (tail_safe(old, nb, lim, h, oend)) {
			found = i;
			ret->tail_safe = true;
			break;
		}
	}
	if (found < 0) {
		free(nb);
		return -ENOSPC;
	}
	if (!ret->tail_safe) {
		/* rebuild the first fitting candidate */
		memcpy(nb, old, len);
		build_exts(old, len, h, fmt, nb);
		memcpy(nb + cand[found], name, nlen);
		store_be64(nb + 8, cand[found]);
		store_be32(nb + 16, (uint32_t)nlen);
	}
	ret->nb = nb;
	ret->end = cand[found] + nlen;
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* The new header must parse as the same image with the new backing. */
static int check_new(const struct rebacking *rb, size_t len,
		     uint64_t file_size, const struct qcow2_header *old,
		     const char *name, const char *fmt)
{
	struct qcow2_header h;
	char *got = NULL;
	int r = qcow2_header_parse(rb->nb, len, file_size, false, &h);

	if (r == 0)
		r = qcow2_header_backing(rb->nb, len, &h, &got);
	if (r < 0)
		return -EIO;
	if (h.size != old->size || h.l1_table_offset != old->l1_table_offset ||
	    (name ? !got || strcmp(got, name) || strcmp(h.backing_format, fmt) :
		    got != NULL))
		r = -EIO;
	free(got);
	return r;
}

int qcow2_set_backing(struct image *img, const struct image *nbk)
{
	const char *name = nbk ? base_name(nbk->path) : NULL;
	const char *fmt = nbk ? nbk->fmt->name : NULL;
	struct rebacking rb = { 0 };
	struct qcow2_header h;
	struct stat st;
	uint8_t *old = NULL;
	uint64_t cs;
	size_t len;
	int r;

	if (fstat(img->fd, &st) < 0)
		return -errno;
	cs = ((struct qcow2 *)img->priv)->cluster_size;
	if ((uint64_t)st.st_size < cs)
		return -EINVAL;
	len = (size_t)cs;
	old = aligned_malloc(4096, len);
	if (!old)
		return -ENOMEM;
	/* the header as it is on disk now, checked again */
	r = image_pread(img, old, len, 0);
	if (r == 0)
		r = qcow2_header_parse(old, len, (uint64_t)st.st_size, false, &h);
	if (r == 0)
		r = build_header(old, len, &h, name, fmt, &rb);
	if (r == -ENOSPC)
		log_error("qcow2: '%s': the backing file name '%s' does not fit in the header cluster",
			  img->path, name ? name : "");
	if (r == 0)
		r = check_new(&rb, len, (uint64_t)st.st_size, &h, name, fmt);
	if (r == 0 && rb.tail_safe) {
		uint64_t wend = min_u64(round_up(rb.end, SECTOR), len);

		if (wend > SECTOR)
			r = image_pwrite(img, rb.nb + SECTOR, wend - SECTOR,
					 SECTOR);
		if (r == 0)
			r = image_datasync(img);
		if (r == 0)
			fault_point("qcow2-set-backing-mid");
		if (r == 0)
			r = image_pwrite(img, rb.nb, SECTOR, 0);
	} else if (r == 0) {
		uint64_t wend = min_u64(round_up(rb.end, SECTOR), len);

		if (wend > ONE_WRITE_MAX) {
			log_error("qcow2: '%s': header extensions too large to rewrite safely",
				  img->path);
			r = -ENOSPC;
		} else {
			r = image_pwrite(img, rb.nb, wend, 0);
		}
	}
	if (r == 0)
		r = image_datasync(img);
	free(old);
	free(rb.nb);
	return r;
}
