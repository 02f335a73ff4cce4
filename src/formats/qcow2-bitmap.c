/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * QCOW2 persistent dirty bitmaps (qemu's docs/interop/qcow2.txt, "Bitmaps
 * extension"): the header extension 0x23852875 names the bitmap directory
 * (nb_bitmaps entries, each: bitmap table offset and size, flags in_use
 * and auto, type 1, granularity_bits, name); a bitmap table has one
 * entry per cluster of bitmap data (0: all zeros; bit 0 alone: all ones;
 * else the host cluster).  The data is LSB first: bit i of the bitmap is
 * bit i % 8 of byte i / 8.  Autoclear bit 0 says the extension is valid.
 *
 * Store and remove never change what the header points at in place:
 *
 *  1. new data clusters, the new bitmap table, the new directory are
 *     allocated and written (nothing references them yet);
 *  2. flush: their refcounts (and every pending table) become durable,
 *     so a crash from here on only leaks them;
 *  3. the header is rewritten to point at the new directory, in one
 *     write of the sectors that change (a single 512-byte sector when the
 *     extension lies in sector 0, as in qemu's and our images; at most
 *     4 KiB otherwise, as qcow2-backing.c);
 *  4. the old directory, and the old table and data of the bitmap that
 *     was replaced or removed, lose their references (flush).
 *
 * A crash leaves the old or the new directory, never a dangling one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "fault.h"
#include "formats/bitmap.h"
#include "fullio.h"
#include "log.h"
#include "qcow2.h"

#define BME_IN_USE		(1u << 0)
#define BME_AUTO		(1u << 1)
#define BME_EXTRA_COMPAT	(1u << 2)
#define BME_FLAGS_KNOWN		0x7u
#define BME_TYPE_DIRTY		1u
#define BME_TABLE_RESERVED	0xff000000000001feull
#define BME_ALL_ONES		1ull
#define BME_MAX_EXTRA		(16u << 10)	/* ours; qemu writes none */
#define BME_MAX_TABLE		0x8000000u	/* as qemu */
#define HDR_ONE_WRITE_MAX	4096u

struct bm_entry {
	uint64_t table_offset;
	uint32_t table_size;
	uint32_t flags;
	uint8_t type, gran_bits;
	uint16_t name_size;
	uint32_t extra_size;
	const char *name;	/* in the directory buffer, not NUL-ended */
	uint64_t pos, len;	/* the entry's bytes in the directory */
};

struct bm_dir {
	uint8_t *buf;
	uint64_t size;
	uint32_t n;
	struct bm_entry *e;
};

static void dir_free(struct bm_dir *d)
{
	free(d->buf);
	free(d->e);
	memset(d, 0, sizeof(*d));
}

static bool exts_valid(const struct qcow2 *q)
{
	return q->h.bitmaps_ext &&
	       (q->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS);
}

static uint64_t pad8(uint64_t n)
{
	return (n + 7) & ~7ull;
}

static int file_size(struct image *img, uint64_t *ret)
{
	struct stat st;

	if (fstat(img->fd, &st) < 0)
		return -errno;
	*ret = (uint64_t)st.st_size;
	return 0;
}

/* Bytes of bitmap data and table entries for granularity 'gb' bits. */
static void table_geometry(const struct image *img, const struct qcow2 *q,
			   unsigned int gb, uint64_t *ret_bytes,
			   uint64_t *ret_entries)
{
	uint64_t g = 1ull << gb, size = q->h.size;	/* set before img's */
	uint64_t bits = size / g + !!(size % g);

	(void)img;

	*ret_bytes = (bits + 7) / 8;
	*ret_entries = div_round_up(*ret_bytes, q->cluster_size);
}

/* A dirty bitmap whose table parse_entry() checked. */
static bool entry_known(const struct bm_entry *e)
{
	return e->type == BME_TYPE_DIRTY && e->gran_bits >= 9 &&
	       e->gran_bits <= 31 && !(e->flags & ~BME_FLAGS_KNOWN);
}

static bool entry_usable(const struct bm_entry *e)
{
	return entry_known(e) &&
	       (!e->extra_size || (e->flags & BME_EXTRA_COMPAT));
}

static int parse_entry(struct image *img, struct qcow2 *q, struct bm_dir *d,
		       uint64_t pos, uint64_t fsize, struct bm_entry *e)
{
	const uint8_t *p = d->buf + pos;
	uint64_t bytes, entries;

	if (d->size - pos < 24)
		return -EINVAL;
	e->table_offset = load_be64(p);
	e->table_size = load_be32(p + 8);
	e->flags = load_be32(p + 12);
	e->type = p[16];
	e->gran_bits = p[17];
	e->name_size = load_be16(p + 18);
	e->extra_size = load_be32(p + 20);
	e->pos = pos;
	e->len = pad8(24ull + e->extra_size + e->name_size);
	if (e->extra_size > BME_MAX_EXTRA || e->name_size == 0 ||
	    e->name_size > 1023 || e->len > d->size - pos) {
		log_error("qcow2: '%s': bad bitmap directory entry", img->path);
		return -EINVAL;
	}
	e->name = (const char *)p + 24 + e->extra_size;
	if (memchr(e->name, 0, e->name_size)) {
		log_error("qcow2: '%s': bad bitmap name", img->path);
		return -EINVAL;
	}
	if (!entry_known(e))
		return 0;	/* not ours to read; kept as it is */
	table_geometry(img, q, e->gran_bits, &bytes, &entries);
	if (e->table_size != entries ||
	    !(e->table_offset % q->cluster_size == 0 &&
	      e->table_offset >= q->cluster_size &&
	      e->table_offset <= fsize &&
	      (uint64_t)e->table_size * 8 <= fsize - e->table_offset)) {
		log_error("qcow2: '%s': bitmap '%.*s': bad bitmap table",
			  img->path, (int)e->name_size, e->name);
		return -EINVAL;
	}
	return 0;
}

/* Read and check the directory (empty when the extension is absent). */
static int dir_read(struct image *img, struct qcow2 *q, struct bm_dir *d)
{
	uint64_t pos = 0, fsize;
	uint32_t i, j;
	int r;

	memset(d, 0, sizeof(*d));
	if (!exts_valid(q))
		return 0;
	r = file_size(img, &fsize);
	if (r < 0)
		return r;
	d->size = q->h.bitmap_dir_size;
	d->buf = malloc(d->size);
	d->e = calloc(q->h.nb_bitmaps, sizeof(*d->e));
	if (!d->buf || !d->e) {
		dir_free(d);
		return -ENOMEM;
	}
	r = image_pread(img, d->buf, d->size, q->h.bitmap_dir_offset);
	for (i = 0; r == 0 && i < q->h.nb_bitmaps; i++) {
		r = parse_entry(img, q, d, pos, fsize, &d->e[i]);
		pos += d->e[i].len;
		for (j = 0; r == 0 && j < i; j++)
			if (d->e[j].name_size == d->e[i].name_size &&
			    !memcmp(d->e[j].name, d->e[i].name,
				    d->e[i].name_size))
				r = -EINVAL;
	}
	if (r == 0 && pos != d->size)
		r = -EINVAL;
	if (r < 0) {
		log_error("qcow2: '%s': bad bitmap directory", img->path);
		dir_free(d);
		return r;
	}
	d->n = q->h.nb_bitmaps;
	return 0;
}

static int dir_find(const struct bm_dir *d, const char *name)
{
	size_t n = strlen(name);

	for (uint32_t i = 0; i < d->n; i++)
		if (d->e[i].name_size == n && !memcmp(d->e[i].name, name, n))
			return (int)i;
	return -1;
}


/* The bitmap table of e (host-endian), checked; malloc'ed. */
static int table_read(struct image *img, struct qcow2 *q,
		      const struct bm_entry *e, uint64_t **ret)
{
	uint64_t *t, fsize;
	int r;

	if (e->table_size > BME_MAX_TABLE)
		return -EINVAL;
	r = file_size(img, &fsize);
	if (r < 0)
		return r;
	t = malloc((size_t)e->table_size * 8 + 8);
	if (!t)
		return -ENOMEM;
	r = image_pread(img, t, (size_t)e->table_size * 8, e->table_offset);
	for (uint32_t i = 0; r == 0 && i < e->table_size; i++) {
		uint64_t v = be64toh(t[i]), off = v & QCOW2_OFFSET_MASK;

		t[i] = v;
		if ((v & BME_TABLE_RESERVED) || (off && (v & BME_ALL_ONES)) ||
		    off % q->cluster_size ||
		    (off && (off < q->cluster_size || off > fsize ||
			     q->cluster_size > fsize - off)))
			r = -EINVAL;
	}
	if (r < 0) {
		log_error("qcow2: '%s': corrupt bitmap table", img->path);
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

int qcow2_bitmap_load(struct image *img, const char *name,
		      struct dirty_bitmap *bm, bool *in_use)
{
	struct qcow2 *q = img->priv;
	struct bm_dir d;
	const struct bm_entry *e;
	uint64_t *t = NULL, bytes, entries, cs = q->cluster_size;
	uint8_t *cbuf = NULL;
	int i, r = dir_read(img, q, &d);

	if (r < 0)
		return r;
	i = dir_find(&d, name);
	if (i < 0) {
		dir_free(&d);
		return -ENOENT;
	}
	e = &d.e[i];
	if (!entry_usable(e)) {
		log_error("qcow2: '%s': bitmap '%s' is of a kind we cannot read",
			  img->path, name);
		dir_free(&d);
		return -ENOTSUP;
	}
	table_geometry(img, q, e->gran_bits, &bytes, &entries);
	r = table_read(img, q, e, &t);
	if (r == 0)
		r = dirty_bitmap_init(bm, 1ull << e->gran_bits,
				      img->virtual_size);
	if (r == 0) {
		cbuf = aligned_malloc(4096, cs);
		if (!cbuf) {
			dirty_bitmap_free(bm);
			r = -ENOMEM;
		}
	}
	for (uint64_t k = 0; r == 0 && k < entries; k++) {
		uint64_t first = k * cs, n = min_u64(cs, bytes - first);

		if (!(t[k] & QCOW2_OFFSET_MASK) && !(t[k] & BME_ALL_ONES))
			continue;
		if (t[k] & BME_ALL_ONES)
			memset(cbuf, 0xff, cs);
		else
			r = image_pread(img, cbuf, cs, t[k] & QCOW2_OFFSET_MASK);
		/* bits past the end of the disk are not ours: dropped */
		if (r == 0 && first + n == bytes && bm->nbits % 8)
			cbuf[n - 1] &= (uint8_t)((1u << (bm->nbits % 8)) - 1);
		if (r == 0)
			r = dirty_bitmap_import_lsb(bm, cbuf, first, n);
		if (r < 0)
			dirty_bitmap_free(bm);
	}
	if (r == 0 && in_use)
		*in_use = e->flags & BME_IN_USE;
	free(cbuf);
	free(t);
	dir_free(&d);
	return r;
}

/* One of our bitmaps (the datapath server keeps them current). */
static bool entry_ours(const struct bm_entry *e)
{
	size_t plen = strlen(CBT_BITMAP_PREFIX);

	return (e->name_size == strlen(CBT_BITMAP_NAME) &&
		!memcmp(e->name, CBT_BITMAP_NAME, e->name_size)) ||
	       (e->name_size > plen &&
		!memcmp(e->name, CBT_BITMAP_PREFIX, plen));
}

int qcow2_bitmaps_open_rw(struct image *img, struct qcow2 *q)
{
	struct bm_dir d;
	bool changed = false;
	int r = dir_read(img, q, &d);

	for (uint32_t i = 0; r == 0 && i < d.n; i++) {
		struct bm_entry *e = &d.e[i];
		uint8_t v[4];

		if (!entry_known(e) || !(e->flags & BME_AUTO) ||
		    (e->flags & BME_IN_USE) || entry_ours(e))
			continue;
		/* one aligned 4-byte field: each flag flips alone */
		store_be32(v, e->flags | BME_IN_USE);
		r = image_pwrite(img, v, 4, q->h.bitmap_dir_offset + e->pos + 12);
		changed = true;
	}
	if (r == 0 && changed)
		r = image_datasync(img);
	dir_free(&d);
	return r;
}

int qcow2_bitmap_list(struct image *img, char ***ret)
{
	struct qcow2 *q = img->priv;
	struct bm_dir d;
	char **v;
	int r = dir_read(img, q, &d);

	if (r < 0)
		return r;
	v = calloc((size_t)d.n + 1, sizeof(*v));
	for (uint32_t i = 0; v && i < d.n; i++) {
		v[i] = strndup(d.e[i].name, d.e[i].name_size);
		if (!v[i]) {
			image_bitmap_names_free(v);
			v = NULL;
		}
	}
	dir_free(&d);
	if (!v)
		return -ENOMEM;
	*ret = v;
	return 0;
}

/* ------------------------------------------------------------ header */

/* End of the extensions in the header cluster buf (after END). */
static int ext_walk(const uint8_t *buf, uint64_t len,
		    const struct qcow2_header *h, uint64_t *ret_end,
		    uint64_t *ret_bm)
{
	uint64_t off = h->header_length;

	*ret_bm = 0;
	while (off + 8 <= len) {
		uint32_t type = load_be32(buf + off);
		uint64_t n = 8 + pad8(load_be32(buf + off + 4));

		if (type == QCOW2_EXT_END) {
			*ret_end = off + 8;
			return 0;
		}
		if (n > len - off)
			return -EINVAL;
		if (type == QCOW2_EXT_BITMAPS)
			*ret_bm = off;
		off += n;
	}
	return -EINVAL;
}

/*
 * Rewrite the header so that the bitmaps extension says (n, size, off),
 * or is gone when n == 0 (and the autoclear bit with it).
 */
static int header_set_bitmaps(struct image *img, struct qcow2 *q,
			      uint32_t n, uint64_t size, uint64_t off)
{
	uint64_t cs = q->cluster_size, fsize = 0, end = 0, bmpos = 0, lim, nend;
	uint64_t last = 0;
	uint64_t name_off, name_len, w;
	struct qcow2_header h, nh;
	uint8_t *old = NULL, *nb = NULL;
	int r;

	r = file_size(img, &fsize);
	if (r < 0)
		return r;
	lim = min_u64(cs, fsize);
	old = aligned_zalloc(4096, cs);
	nb = aligned_zalloc(4096, cs);
	if (!old || !nb) {
		r = -ENOMEM;
		goto out;
	}
	r = image_pread(img, old, lim, 0);
	if (r == 0)
		r = qcow2_header_parse(old, lim, fsize, false, &h);
	if (r == 0)
		r = ext_walk(old, h.backing_file_offset ?
				     min_u64(h.backing_file_offset, lim) : lim,
			     &h, &end, &bmpos);
	if (r < 0) {
		r = -EIO;
		goto out;
	}
	name_off = h.backing_file_offset;
	name_len = h.backing_file_size;
	memcpy(nb, old, lim);
	if (bmpos) {
		/* drop the old extension (the others move up) */
		memmove(nb + bmpos, old + bmpos + 32, end - bmpos - 32);
		nend = end - 32;
	} else {
		nend = end;
	}
	/* nend: just past END; insert before END, at the old place if any */
	if (n) {
		uint64_t at = bmpos ? bmpos : nend - 8;

		memmove(nb + at + 32, nb + at, nend - at);
		store_be32(nb + at, QCOW2_EXT_BITMAPS);
		store_be32(nb + at + 4, 24);
		store_be32(nb + at + 8, n);
		store_be32(nb + at + 12, 0);
		store_be64(nb + at + 16, size);
		store_be64(nb + at + 24, off);
		nend += 32;
	}
	if (nend > lim) {
		r = -ENOSPC;
		goto out;
	}
	/* the backing file name may not be overrun by the extensions */
	if (name_off && name_off < nend) {
		if (nend + name_len > lim) {
			r = -ENOSPC;
			goto out;
		}
		memcpy(nb + nend, old + name_off, name_len);
		store_be64(nb + 8, nend);
		name_off = nend;
	}
	store_be64(nb + 88, n ? h.autoclear_features | QCOW2_AUTOCLEAR_BITMAPS :
				h.autoclear_features & ~QCOW2_AUTOCLEAR_BITMAPS);
	r = qcow2_header_parse(nb, lim, fsize, false, &nh);
	if (r < 0 || nh.size != h.size || nh.l1_table_offset != h.l1_table_offset ||
	    nh.backing_file_size != h.backing_file_size ||
	    (name_len && memcmp(nb + nh.backing_file_offset,
				old + h.backing_file_offset, name_len)) ||
	    nh.bitmaps_ext != (n != 0) || nh.nb_bitmaps != n) {
		log_error("qcow2: '%s': internal error building the header",
			  img->path);
		r = -EIO;
		goto out;
	}
	for (uint64_t i = 0; i < lim; i++)
		if (nb[i] != old[i])
			last = i + 1;
	w = round_up(last, 512);
	if (w > HDR_ONE_WRITE_MAX) {
		log_error("qcow2: '%s': header extensions too large to rewrite safely",
			  img->path);
		r = -ENOSPC;
		goto out;
	}
	r = image_pwrite(img, nb, w, 0);
	if (r == 0)
		r = image_datasync(img);
	if (r == 0) {
		q->h.bitmaps_ext = n != 0;
		q->h.nb_bitmaps = n;
		q->h.bitmap_dir_size = size;
		q->h.bitmap_dir_offset = off;
		q->h.autoclear_features = nh.autoclear_features;
	}
out:
	if (r == -ENOSPC)
		log_error("qcow2: '%s': the bitmaps extension does not fit in the header cluster",
			  img->path);
	free(old);
	free(nb);
	return r;
}

/* ------------------------------------------------------------ changes */

/* Free the table and data clusters of entry e (at the next flush). */
static int free_bitmap(struct image *img, struct qcow2 *q,
		       const struct bm_entry *e)
{
	uint64_t *t = NULL;
	int r;

	if (!entry_known(e))
		return 0;	/* unknown layout: leak rather than guess */
	r = table_read(img, q, e, &t);
	if (r == -EINVAL)
		return 0;	/* corrupt: leak its clusters, keep going */
	for (uint32_t i = 0; r == 0 && i < e->table_size; i++)
		if (t[i] & QCOW2_OFFSET_MASK)
			r = qcow2_free_later(q, t[i] & QCOW2_OFFSET_MASK,
					     q->cluster_size);
	if (r == 0)
		r = qcow2_free_later(q, e->table_offset,
				     (uint64_t)e->table_size * 8);
	free(t);
	return r;
}

/* Publish a new directory: 'nd' (size bytes, n entries, none if 0). */
static int dir_commit(struct image *img, struct qcow2 *q,
		      const uint8_t *nd, uint64_t size, uint32_t n)
{
	uint64_t cs = q->cluster_size, off = 0, clusters = div_round_up(size, cs);
	uint8_t *buf = NULL;
	int r = 0;

	if (n) {
		buf = aligned_zalloc(4096, clusters * cs);
		if (!buf)
			return -ENOMEM;
		memcpy(buf, nd, size);
		r = qcow2_alloc_clusters(img, q, clusters, &off);
		if (r == 0)
			r = image_pwrite(img, buf, clusters * cs, off);
		free(buf);
	}
	if (r == 0) {
		fault_point("qcow2-bitmap-before-flush");
		r = qcow2_flush(img);
	}
	if (r == 0) {
		fault_point("qcow2-bitmap-before-header");
		r = header_set_bitmaps(img, q, n, n ? size : 0, off);
	}
	if (r == 0)
		fault_point("qcow2-bitmap-after-header");
	return r;
}

static int old_free(struct image *img, struct qcow2 *q, const struct bm_dir *d,
		    uint64_t old_dir_off, int drop)
{
	int r = 0;

	if (d->n)
		r = qcow2_free_later(q, old_dir_off, d->size);
	if (r == 0 && drop >= 0)
		r = free_bitmap(img, q, &d->e[drop]);
	if (r == 0)
		r = qcow2_flush(img);
	return r;
}

/* Write the data clusters and table of bm; *ret_table its offset. */
static int write_bitmap(struct image *img, struct qcow2 *q,
			const struct dirty_bitmap *bm, uint64_t *ret_table,
			uint32_t *ret_size)
{
	uint64_t cs = q->cluster_size, bytes = dirty_bitmap_bytes(bm);
	uint64_t entries = div_round_up(bytes, cs), tcl, toff;
	uint64_t *t;
	uint8_t *cbuf;
	int r = 0;

	if (entries > BME_MAX_TABLE || entries == 0)
		return entries ? -EFBIG : -EINVAL;
	tcl = div_round_up(entries * 8, cs);
	t = aligned_zalloc(4096, tcl * cs);
	cbuf = aligned_malloc(4096, cs);
	if (!t || !cbuf) {
		free(t);
		free(cbuf);
		return -ENOMEM;
	}
	for (uint64_t k = 0; r == 0 && k < entries; k++) {
		uint64_t off, n = min_u64(cs, bytes - k * cs);
		uint64_t i;

		memset(cbuf, 0, cs);
		dirty_bitmap_export_lsb(bm, cbuf, k * cs, n);
		for (i = 0; i < n && !cbuf[i]; i++)
			;
		if (i == n)
			continue;	/* all zeros: no cluster */
		r = qcow2_alloc_clusters(img, q, 1, &off);
		if (r == 0)
			r = image_pwrite(img, cbuf, cs, off);
		t[k] = htobe64(off);
	}
	if (r == 0)
		r = qcow2_alloc_clusters(img, q, tcl, &toff);
	if (r == 0)
		r = image_pwrite(img, t, tcl * cs, toff);
	free(t);
	free(cbuf);
	if (r == 0) {
		*ret_table = toff;
		*ret_size = (uint32_t)entries;
	}
	return r;
}

/*
 * The directory d without entry 'drop' (or -1), with 'room' zero bytes
 * more at the end: *ret (malloc'ed), its entries in *ret_n.
 */
static int dir_without(const struct bm_dir *d, int drop, uint64_t room,
		       uint8_t **ret, uint64_t *ret_pos, uint32_t *ret_n)
{
	uint64_t pos = 0;
	uint32_t n = 0;
	uint8_t *nd = calloc(1, d->size + room + 1);

	if (!nd)
		return -ENOMEM;
	for (uint32_t i = 0; i < d->n; i++) {
		if ((int)i == drop)
			continue;
		memcpy(nd + pos, d->buf + d->e[i].pos, d->e[i].len);
		pos += d->e[i].len;
		n++;
	}
	*ret = nd;
	*ret_pos = pos;
	*ret_n = n;
	return 0;
}

int qcow2_bitmap_store(struct image *img, const char *name,
		       const struct dirty_bitmap *bm, bool in_use)
{
	struct qcow2 *q = img->priv;
	size_t nlen = strlen(name);
	uint64_t table = 0, size = 0, pos = 0, old_dir = q->h.bitmap_dir_offset;
	uint32_t tsize = 0, n = 0;
	unsigned int gb = (unsigned int)__builtin_ctzll(bm->granularity);
	struct bm_dir d;
	uint8_t *nd = NULL;
	int drop, r;

	if (q->h.version < 3) {
		log_error("qcow2: '%s': persistent bitmaps need a version 3 image",
			  img->path);
		return -ENOTSUP;
	}
	if (gb > 31)
		return -EINVAL;
	r = dir_read(img, q, &d);
	if (r < 0)
		return r;
	drop = dir_find(&d, name);
	if (d.n - (drop >= 0) + 1 > QCOW2_MAX_BITMAPS) {
		dir_free(&d);
		return -ENOSPC;
	}
	r = write_bitmap(img, q, bm, &table, &tsize);
	if (r == 0) {
		size = d.size - (drop >= 0 ? d.e[drop].len : 0) +
		       pad8(24 + nlen);
		if (size > QCOW2_MAX_BITMAP_DIR)
			r = -ENOSPC;
	}
	if (r == 0)
		r = dir_without(&d, drop, pad8(24 + nlen), &nd, &pos, &n);
	if (r == 0) {
		store_be64(nd + pos, table);
		store_be32(nd + pos + 8, tsize);
		store_be32(nd + pos + 12, BME_AUTO | (in_use ? BME_IN_USE : 0));
		nd[pos + 16] = BME_TYPE_DIRTY;
		nd[pos + 17] = (uint8_t)gb;
		store_be16(nd + pos + 18, (uint16_t)nlen);
		store_be32(nd + pos + 20, 0);
		memcpy(nd + pos + 24, name, nlen);
		n++;
		r = dir_commit(img, q, nd, size, n);
	}
	if (r == 0)
		r = old_free(img, q, &d, old_dir, drop);
	if (r < 0)
		log_error("qcow2: '%s': cannot store bitmap '%s': %s",
			  img->path, name, strerror(-r));
	free(nd);
	dir_free(&d);
	return r;
}

int qcow2_bitmap_remove(struct image *img, const char *name)
{
	struct qcow2 *q = img->priv;
	uint64_t size = 0, old_dir = q->h.bitmap_dir_offset;
	uint32_t n = 0;
	struct bm_dir d;
	uint8_t *nd = NULL;
	int drop, r = dir_read(img, q, &d);

	if (r < 0)
		return r;
	drop = dir_find(&d, name);
	if (drop < 0) {
		dir_free(&d);
		return -ENOENT;
	}
	r = dir_without(&d, drop, 0, &nd, &size, &n);
	if (r == 0)
		r = dir_commit(img, q, nd, size, n);
	if (r == 0)
		r = old_free(img, q, &d, old_dir, drop);
	if (r < 0)
		log_error("qcow2: '%s': cannot remove bitmap '%s': %s",
			  img->path, name, strerror(-r));
	free(nd);
	dir_free(&d);
	return r;
}
