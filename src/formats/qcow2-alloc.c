/* SPDX-License-Identifier: LGPL-2.1-only */
/* QCOW2 writes: refcounts, cluster allocation, COW, zero/discard, flush. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "fullio.h"
#include "log.h"
#include "qcow2.h"

/* The file grows in steps this large so data writes never extend it. */
#define GROW_STEP (64ull << 20)

/* ------------------------------------------------------------ refcounts */

static uint64_t rc_get(const struct qcow2 *q, uint64_t idx)
{
	uint64_t bi = idx / q->rb_entries, i = idx % q->rb_entries;
	const uint8_t *b;
	unsigned int bits = q->refcount_bits;

	if (bi >= q->rt_entries || !q->rb[bi])
		return 0;
	b = q->rb[bi];
	switch (bits) {
	case 1: case 2: case 4:
		return (b[i * bits / 8] >> (i * bits % 8)) & ((1u << bits) - 1);
	case 8:
		return b[i];
	case 16:
		return load_be16(b + 2 * i);
	case 32:
		return load_be32(b + 4 * i);
	default:
		return load_be64(b + 8 * i);
	}
}

static void rc_put(struct qcow2 *q, uint64_t idx, uint64_t v)
{
	uint64_t bi = idx / q->rb_entries, i = idx % q->rb_entries;
	uint8_t *b = q->rb[bi];
	unsigned int bits = q->refcount_bits, sh;

	switch (bits) {
	case 1: case 2: case 4:
		sh = i * bits % 8;
		b[i * bits / 8] = (uint8_t)((b[i * bits / 8] &
					     ~(((1u << bits) - 1) << sh)) |
					    (v << sh));
		break;
	case 8:
		b[i] = (uint8_t)v;
		break;
	case 16:
		store_be16(b + 2 * i, (uint16_t)v);
		break;
	case 32:
		store_be32(b + 4 * i, (uint32_t)v);
		break;
	default:
		store_be64(b + 8 * i, v);
		break;
	}
	q->rb_dirty[bi] = true;
}

static int rc_update(struct image *img, struct qcow2 *q, uint64_t off,
		     int delta);

static int ensure_file(struct image *img, struct qcow2 *q, uint64_t end)
{
	uint64_t size;

	if (end <= q->file_alloc_end)
		return 0;
	size = round_up(end, GROW_STEP);
	if (ftruncate(img->fd, (off_t)size) < 0) {
		int r = -errno;

		log_error("qcow2: '%s': cannot grow the file: %m", img->path);
		return r;
	}
	q->file_alloc_end = size;
	q->file_size = size;
	return 0;
}

/* Take the next unreferenced host cluster (refcount not yet set). */
static int take_clusters(struct image *img, struct qcow2 *q, uint64_t n,
			 uint64_t *ret)
{
	uint64_t off;

	for (;;) {
		uint64_t i;

		off = q->next_free;
		for (i = 0; i < n; i++)
			if (rc_get(q, (off >> q->h.cluster_bits) + i) ||
			    qcow2_meta_find(q, off + i * q->cluster_size,
					    q->cluster_size))
				break;
		q->next_free = off + (i < n ? i + 1 : n) * q->cluster_size;
		if (i == n)
			break;
	}
	q->allocated = true;
	*ret = off;
	return ensure_file(img, q, q->next_free);
}

static int push_free(struct qcow2 *q, uint64_t off, uint64_t len)
{
	if (q->n_frees == q->cap_frees) {
		size_t cap = q->cap_frees ? 2 * q->cap_frees : 64;
		struct qcow2_free *v = realloc(q->frees, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		q->frees = v;
		q->cap_frees = cap;
	}
	q->frees[q->n_frees].offset = off;
	q->frees[q->n_frees].length = len;
	q->n_frees++;
	return 0;
}

/* Replace the refcount table by a bigger one covering block 'bi'. */
static int grow_rt(struct image *img, struct qcow2 *q, uint64_t bi)
{
	uint64_t cs = q->cluster_size, n = q->rt_entries * 2, clusters, off, i;
	uint64_t *nt;
	uint8_t **nrb;
	bool *nrd;
	int r;

	if (n < bi + 1)
		n = bi + 1;
	/* The table must also cover itself and its blocks: n*2 is ample. */
	clusters = div_round_up(n * 8, cs);
	if (clusters > UINT32_MAX)
		return -EFBIG;
	n = clusters * cs / 8;
	nt = aligned_zalloc(4096, clusters * cs);
	nrb = calloc(n, sizeof(*nrb));
	nrd = calloc(n, sizeof(*nrd));
	if (!nt || !nrb || !nrd) {
		free(nt);
		free(nrb);
		free(nrd);
		return -ENOMEM;
	}
	memcpy(nt, q->rt, q->rt_entries * 8);
	memcpy(nrb, q->rb, q->rt_entries * sizeof(*nrb));
	memcpy(nrd, q->rb_dirty, q->rt_entries * sizeof(*nrd));
	/* The old table stays referenced by the header until flush. */
	r = push_free(q, q->h.refcount_table_offset,
		      (uint64_t)q->h.refcount_table_clusters * cs);
	if (r < 0) {
		free(nt);
		free(nrb);
		free(nrd);
		return r;
	}
	free(q->rt);
	free(q->rb);
	free(q->rb_dirty);
	q->rt = nt;
	q->rb = nrb;
	q->rb_dirty = nrd;
	q->rt_entries = n;
	r = take_clusters(img, q, clusters, &off);
	if (r < 0)
		return r;
	q->h.refcount_table_offset = off;
	q->h.refcount_table_clusters = (uint32_t)clusters;
	q->rt_moved = true;
	q->rt_dirty = true;
	for (i = 0; i < clusters && r == 0; i++)
		r = rc_update(img, q, off + i * cs, 1);
	return r;
}

static int ensure_block(struct image *img, struct qcow2 *q, uint64_t bi)
{
	uint64_t off;
	int r;

	if (bi >= q->rt_entries) {
		r = grow_rt(img, q, bi);
		if (r < 0)
			return r;
	}
	if (q->rb[bi])
		return 0;
	q->rb[bi] = aligned_zalloc(4096, q->cluster_size);
	if (!q->rb[bi])
		return -ENOMEM;
	q->rb_dirty[bi] = true;
	r = take_clusters(img, q, 1, &off);
	if (r < 0)
		return r;
	q->rt[bi] = htobe64(off);
	q->rt_dirty = true;
	return rc_update(img, q, off, 1);
}

static int rc_update(struct image *img, struct qcow2 *q, uint64_t off,
		     int delta)
{
	uint64_t idx = off >> q->h.cluster_bits, v, max;
	int r;

	r = ensure_block(img, q, idx / q->rb_entries);
	if (r < 0)
		return r;
	v = rc_get(q, idx);
	max = q->refcount_bits == 64 ? UINT64_MAX :
	      (1ull << q->refcount_bits) - 1;
	if (delta > 0 && v == max)
		return -ERANGE;
	if (delta < 0 && v == 0) {
		log_warn("qcow2: '%s': refcount of cluster 0x%" PRIx64 " already 0",
			 img->path, off);
		return 0;
	}
	rc_put(q, idx, delta > 0 ? v + 1 : v - 1);
	return 0;
}

static int alloc_cluster(struct image *img, struct qcow2 *q, uint64_t *ret)
{
	int r = take_clusters(img, q, 1, ret);

	return r < 0 ? r : rc_update(img, q, *ret, 1);
}

int qcow2_alloc_clusters(struct image *img, struct qcow2 *q, uint64_t n,
			 uint64_t *ret)
{
	int r = take_clusters(img, q, n, ret);

	for (uint64_t i = 0; r == 0 && i < n; i++)
		r = rc_update(img, q, *ret + i * q->cluster_size, 1);
	return r;
}

int qcow2_free_later(struct qcow2 *q, uint64_t off, uint64_t len)
{
	return push_free(q, off, len);
}

/* The refcount table is already read and checked (qcow2.c read_rt). */
int qcow2_refcounts_load(struct image *img, struct qcow2 *q)
{
	uint64_t cs = q->cluster_size, i, loaded = 0, top = 0;
	int r;

	q->refcount_bits = 1u << q->h.refcount_order;
	q->rb_entries = cs * 8 / q->refcount_bits;
	q->rb = calloc(q->rt_entries, sizeof(*q->rb));
	q->rb_dirty = calloc(q->rt_entries, sizeof(*q->rb_dirty));
	if (!q->rt || !q->rb || !q->rb_dirty)
		return -ENOMEM;
	for (i = 0; i < q->rt_entries; i++) {
		uint64_t e = be64toh(q->rt[i]);

		if (!e)
			continue;
		loaded += cs;
		if (loaded > q->file_size) {
			log_error("qcow2: '%s': more refcount blocks than the file holds",
				  img->path);
			return -EINVAL;
		}
		q->rb[i] = aligned_zalloc(4096, cs);
		if (!q->rb[i])
			return -ENOMEM;
		r = image_pread(img, q->rb[i], cs, e);
		if (r < 0)
			return r;
	}
	/* Allocate after the file and after every referenced cluster. */
	for (i = 0; i < q->rt_entries; i++) {
		uint64_t j;

		if (!q->rb[i])
			continue;
		for (j = 0; j < q->rb_entries; j++)
			if (rc_get(q, i * q->rb_entries + j))
				top = i * q->rb_entries + j + 1;
	}
	q->next_free = round_up(q->file_size, cs);
	if (top * cs > q->next_free)
		q->next_free = top * cs;
	q->file_alloc_end = q->file_size;
	if (q->h.autoclear_features & ~QCOW2_AUTOCLEAR_BITMAPS) {
		/*
		 * Features we do not maintain: clear their bits, as the spec
		 * asks.  The bitmaps bit stays: persistent bitmaps are ours
		 * (qcow2-bitmap.c); whoever writes the image keeps them.
		 */
		uint8_t v[8];

		store_be64(v, q->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS);
		r = image_pwrite(img, v, 8, 88);
		if (r == 0)
			r = image_datasync(img);
		if (r < 0)
			return r;
		q->h.autoclear_features &= QCOW2_AUTOCLEAR_BITMAPS;
	}
	return qcow2_bitmaps_open_rw(img, q);
}

void qcow2_release_alloc(struct image *img, struct qcow2 *q)
{
	uint64_t i;
	bool dirty = q->any_dirty || q->rt_dirty || q->rt_moved || q->n_frees;

	for (i = 0; q->rb_dirty && i < q->rt_entries; i++)
		dirty |= q->rb_dirty[i];
	/* Clean close: give back the preallocated tail of the file. */
	if (!img->readonly && q->allocated && !dirty &&
	    q->file_alloc_end > q->next_free)
		if (ftruncate(img->fd, (off_t)q->next_free) < 0)
			log_warn("qcow2: '%s': cannot trim the file: %m",
				 img->path);
	for (i = 0; q->rb && i < q->rt_entries; i++)
		free(q->rb[i]);
	free(q->rb);
	free(q->rb_dirty);
	free(q->rt);
	free(q->frees);
	q->rb = NULL;
	q->rt = NULL;
	q->rb_dirty = NULL;
	q->frees = NULL;
}

/* ------------------------------------------------------------ L1 / L2 */

static void l2_set(struct qcow2 *q, uint64_t l1i, uint64_t l2i,
		   uint64_t entry, uint64_t bitmap)
{
	uint64_t *t = q->l2[l1i], byte, page;

	if (q->g.extended_l2) {
		t[2 * l2i] = htobe64(entry);
		t[2 * l2i + 1] = htobe64(bitmap);
		byte = l2i * 16;
	} else {
		t[l2i] = htobe64(entry);
		byte = l2i * 8;
	}
	page = byte / q->page;
	q->l2_dirty[l1i * q->l2_words + page / 64] |= 1ull << (page % 64);
	q->any_dirty = true;
}

static void l1_set(struct qcow2 *q, uint64_t l1i, uint64_t entry)
{
	uint64_t page = l1i * 8 / 4096;

	q->l1[l1i] = htobe64(entry);
	q->l1_dirty[page / 64] |= 1ull << (page % 64);
	q->any_dirty = true;
}

/* Make L2 table l1i exist and be ours alone (COPIED). */
static int l2_writable(struct image *img, struct qcow2 *q, uint64_t l1i)
{
	uint64_t l1e = be64toh(q->l1[l1i]), off, p;
	int r;

	if (q->l2[l1i] && (l1e & QCOW2_OFLAG_COPIED))
		return 0;
	if (!q->l2[l1i]) {
		q->l2[l1i] = aligned_zalloc(4096, q->cluster_size);
		if (!q->l2[l1i])
			return -ENOMEM;
		/* A fresh cluster reads as zeros: an empty table. */
		r = alloc_cluster(img, q, &off);
		if (r < 0)
			return r;
		l1_set(q, l1i, off | QCOW2_OFLAG_COPIED);
		return 0;
	}
	/* Shared with a snapshot: copy the table (a full rewrite). */
	r = alloc_cluster(img, q, &off);
	if (r == 0)
		r = push_free(q, l1e & QCOW2_OFFSET_MASK, q->cluster_size);
	if (r < 0)
		return r;
	l1_set(q, l1i, off | QCOW2_OFLAG_COPIED);
	for (p = 0; p < q->l2_pages; p++)
		q->l2_dirty[l1i * q->l2_words + p / 64] |= 1ull << (p % 64);
	return 0;
}

/* ------------------------------------------------------------ COW */

/*
 * Copy the current guest content of [guest, guest+len) to host.  When the
 * destination is a fresh cluster (reads as zeros), zeros are not written.
 * Must run before the L2 entry changes: it reads the current mapping.
 */
static int cow_copy(struct image *img, struct qcow2 *q, uint64_t guest,
		    uint64_t len, uint64_t host, bool fresh)
{
	int r;

	if (len == 0)
		return 0;
	r = image_read(img, guest, len, q->cow_buf);
	if (r < 0)
		return r;
	if (fresh && bytes_all_zero(q->cow_buf, len))
		return 0;
	return image_pwrite(img, q->cow_buf, len, host);
}

static int zero_fill(struct image *img, struct qcow2 *q, uint64_t len,
		     uint64_t host)
{
	return len ? image_pwrite(img, q->zero_buf, len, host) : 0;
}

static int free_entry(struct qcow2 *q, const struct qcow2_entry *e)
{
	if (e->type == QCOW2_COMPRESSED)
		return push_free(q, e->cfree_off, e->cfree_len);
	if (e->host)
		return push_free(q, e->host, q->cluster_size);
	return 0;
}

struct wctx {
	uint64_t l1i, l2i;
	uint64_t base;		/* guest offset of the cluster */
	uint64_t inoff, n;	/* the written part of the cluster */
	struct qcow2_entry e;
};

/* Replace the cluster by a new one holding its current content. */
static int write_new_cluster(struct image *img, struct qcow2 *q,
			     struct wctx *w, uint64_t *ret_host)
{
	const struct qcow2_entry *e = &w->e;
	uint64_t h, tail = w->inoff + w->n;
	bool zero_src = e->type == QCOW2_ZERO_PLAIN ||
			e->type == QCOW2_ZERO_ALLOC ||
			(e->type == QCOW2_UNALLOCATED && !img->backing &&
			 !e->alloc_bits);
	int r;

	r = alloc_cluster(img, q, &h);
	if (r == 0 && !zero_src)
		r = cow_copy(img, q, w->base, w->inoff, h, true);
	if (r == 0 && !zero_src)
		r = cow_copy(img, q, w->base + tail, q->cluster_size - tail,
			     h + tail, true);
	if (r == 0 && e->type != QCOW2_UNALLOCATED)
		r = free_entry(q, e);
	if (r < 0)
		return r;
	l2_set(q, w->l1i, w->l2i, h | QCOW2_OFLAG_COPIED,
	       q->g.extended_l2 ? 0xffffffffull : 0);
	*ret_host = h;
	return 0;
}

static int write_plain(struct image *img, struct qcow2 *q, struct wctx *w,
		       uint64_t *ret_host)
{
	const struct qcow2_entry *e = &w->e;
	uint64_t tail = w->inoff + w->n;
	int r;

	if (e->type == QCOW2_NORMAL && e->copied) {
		*ret_host = e->host;
		return 0;
	}
	if (e->type == QCOW2_ZERO_ALLOC && e->copied) {
		/* Reuse the preallocated cluster; its old bytes are stale. */
		r = zero_fill(img, q, w->inoff, e->host);
		if (r == 0)
			r = zero_fill(img, q, q->cluster_size - tail,
				      e->host + tail);
		if (r < 0)
			return r;
		l2_set(q, w->l1i, w->l2i, e->host | QCOW2_OFLAG_COPIED, 0);
		*ret_host = e->host;
		return 0;
	}
	return write_new_cluster(img, q, w, ret_host);
}

static int write_extended(struct image *img, struct qcow2 *q, struct wctx *w,
			  uint64_t *ret_host)
{
	const struct qcow2_entry *e = &w->e;
	uint64_t scs = (uint64_t)1 << q->sc_bits, h, tail = w->inoff + w->n;
	unsigned int s0 = (unsigned int)(w->inoff >> q->sc_bits);
	unsigned int s1 = (unsigned int)((tail - 1) >> q->sc_bits);
	uint64_t head_start = (uint64_t)s0 << q->sc_bits;
	uint64_t tail_end = ((uint64_t)s1 + 1) << q->sc_bits;
	uint32_t mask = (uint32_t)((s1 == 31 ? 0xffffffffull : ((1ull << (s1 + 1)) - 1)) &
				   ~((1ull << s0) - 1));
	uint32_t alloc = e->alloc_bits, zero = e->zero_bits;
	bool fresh = e->type == QCOW2_UNALLOCATED;
	int r = 0;

	(void)scs;
	if (e->type == QCOW2_COMPRESSED || (e->type == QCOW2_NORMAL && !e->copied))
		return write_new_cluster(img, q, w, ret_host);
	if (fresh) {
		r = alloc_cluster(img, q, &h);
		if (r < 0)
			return r;
	} else {
		h = e->host;
	}
	/* Partial edge subclusters not yet allocated need their old bytes. */
	if (w->inoff > head_start && !(alloc & (1u << s0))) {
		if (zero & (1u << s0))
			r = fresh ? 0 : zero_fill(img, q, w->inoff - head_start,
						  h + head_start);
		else
			r = cow_copy(img, q, w->base + head_start,
				     w->inoff - head_start, h + head_start, fresh);
	}
	if (r == 0 && tail < tail_end && !(alloc & (1u << s1))) {
		if (zero & (1u << s1))
			r = fresh ? 0 : zero_fill(img, q, tail_end - tail, h + tail);
		else
			r = cow_copy(img, q, w->base + tail, tail_end - tail,
				     h + tail, fresh);
	}
	if (r < 0)
		return r;
	alloc |= mask;
	zero &= ~mask;
	if (fresh || alloc != e->alloc_bits || zero != e->zero_bits)
		l2_set(q, w->l1i, w->l2i, h | QCOW2_OFLAG_COPIED,
		       ((uint64_t)zero << 32) | alloc);
	*ret_host = h;
	return 0;
}

static int load_entry(struct qcow2 *q, struct wctx *w, uint64_t off)
{
	uint64_t bitmap, entry;

	w->l1i = off >> (q->h.cluster_bits + q->l2_bits);
	w->l2i = (off >> q->h.cluster_bits) & (q->l2_entries - 1);
	w->inoff = off & (q->cluster_size - 1);
	w->base = off - w->inoff;
	if (w->l1i >= q->h.l1_size)
		return -EINVAL;
	if (!q->l2[w->l1i]) {
		memset(&w->e, 0, sizeof(w->e));
		return 0;
	}
	entry = qcow2_l2_get(q, w->l1i, w->l2i, &bitmap);
	return qcow2_entry_decode(&q->g, entry, bitmap, &w->e) < 0 ? -EIO : 0;
}

int qcow2_map_write(struct image *img, uint64_t offset, uint64_t length,
		    struct extent_list *out)
{
	struct qcow2 *q = img->priv;
	int r = 0;

	while (length && r == 0) {
		struct wctx w;
		struct extent x = { .kind = EXTENT_DATA, .fd = img->fd };
		uint64_t h;

		r = load_entry(q, &w, offset);
		if (r < 0)
			break;
		w.n = q->cluster_size - w.inoff;
		if (w.n > length)
			w.n = length;
		/* COW reads use the current mapping: do them before l2_writable
		 * would change nothing visible, so order does not matter here. */
		r = l2_writable(img, q, w.l1i);
		if (r < 0)
			break;
		r = q->g.extended_l2 ? write_extended(img, q, &w, &h) :
				       write_plain(img, q, &w, &h);
		if (r < 0)
			break;
		x.host_offset = h + w.inoff;
		x.length = w.n;
		r = extent_list_push(out, &x);
		offset += w.n;
		length -= w.n;
	}
	return r;
}

/* ------------------------------------------------------------ zero/discard */

/* Make a small range read as zero by writing zeros (if it does not yet). */
static int zero_by_write(struct image *img, struct qcow2 *q, uint64_t off,
			 uint64_t len)
{
	size_t i;
	int r;

	if (len == 0)
		return 0;
	extent_list_clear(&q->tmp);
	r = image_map_read(img, off, len, NULL, &q->tmp);
	if (r < 0)
		return r;
	for (i = 0; i < q->tmp.n && q->tmp.v[i].kind == EXTENT_ZERO; i++)
		;
	if (i == q->tmp.n)
		return 0;
	extent_list_clear(&q->tmp);
	r = qcow2_map_write(img, off, len, &q->tmp);
	/* map_write merges contiguous clusters into one extent, which may be
	 * longer than zero_buf (one cluster): write it piece by piece */
	for (i = 0; r == 0 && i < q->tmp.n; i++) {
		uint64_t done = 0, n = q->tmp.v[i].length;

		while (r == 0 && done < n) {
			uint64_t k = n - done > q->cluster_size ?
					     q->cluster_size : n - done;

			r = image_pwrite(img, q->zero_buf, (size_t)k,
					 q->tmp.v[i].host_offset + done);
			done += k;
		}
	}
	return r;
}

static uint32_t sc_mask(const struct qcow2 *q, uint64_t inoff, uint64_t n)
{
	unsigned int s0 = (unsigned int)(inoff >> q->sc_bits);
	unsigned int s1 = (unsigned int)((inoff + n - 1) >> q->sc_bits);

	return (uint32_t)((s1 == 31 ? 0xffffffffull : ((1ull << (s1 + 1)) - 1)) &
			  ~((1ull << s0) - 1));
}

/* Zero whole granules (clusters, or subclusters) of one cluster. */
static int zero_cluster(struct image *img, struct qcow2 *q, struct wctx *w,
			bool whole, bool may_unmap)
{
	const struct qcow2_entry *e = &w->e;
	uint32_t m;
	int r;

	if (!q->l2[w->l1i] && !img->backing)
		return 0;	/* reads as zero already */
	if (q->g.extended_l2) {
		if (whole && (may_unmap || e->type == QCOW2_COMPRESSED ||
			      (e->type == QCOW2_NORMAL && !e->copied))) {
			r = l2_writable(img, q, w->l1i);
			if (r == 0)
				r = free_entry(q, e);
			if (r == 0)
				l2_set(q, w->l1i, w->l2i, 0,
				       0xffffffffull << 32);
			return r;
		}
		if (e->type == QCOW2_COMPRESSED ||
		    (e->type == QCOW2_NORMAL && !e->copied))
			return zero_by_write(img, q, w->base + w->inoff, w->n);
		m = sc_mask(q, w->inoff, w->n);
		r = l2_writable(img, q, w->l1i);
		if (r == 0)
			l2_set(q, w->l1i, w->l2i,
			       e->host ? e->host | QCOW2_OFLAG_COPIED : 0,
			       ((uint64_t)(e->zero_bits | m) << 32) |
			       (e->alloc_bits & ~m));
		return r;
	}
	if (e->type == QCOW2_ZERO_PLAIN ||
	    (e->type == QCOW2_UNALLOCATED && !img->backing))
		return 0;
	if (e->type == QCOW2_ZERO_ALLOC && e->copied && !may_unmap)
		return 0;
	r = l2_writable(img, q, w->l1i);
	if (r < 0)
		return r;
	if (q->h.version >= 3 && e->type == QCOW2_NORMAL && e->copied &&
	    !may_unmap) {
		l2_set(q, w->l1i, w->l2i,
		       e->host | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO, 0);
		return 0;
	}
	r = free_entry(q, e);
	if (r == 0)
		l2_set(q, w->l1i, w->l2i,
		       q->h.version >= 3 ? QCOW2_OFLAG_ZERO : 0, 0);
	return r;
}

int qcow2_zero(struct image *img, uint64_t offset, uint64_t length,
	       bool may_unmap)
{
	struct qcow2 *q = img->priv;
	uint64_t g = (uint64_t)1 << q->sc_bits, end = offset + length, a0, a1;
	int r;

	if (q->h.version < 3 && img->backing)
		return -ENOTSUP;	/* v2 cannot hide backing data */
	a0 = round_up(offset, g);
	a1 = end == img->virtual_size ? end : round_down(end, g);
	if (a0 >= a1)
		return zero_by_write(img, q, offset, length);
	r = zero_by_write(img, q, offset, a0 - offset);
	if (r == 0 && a1 < end)
		r = zero_by_write(img, q, a1, end - a1);
	while (r == 0 && a0 < a1) {
		struct wctx w;

		r = load_entry(q, &w, a0);
		if (r < 0)
			break;
		w.n = q->cluster_size - w.inoff;
		if (w.n > a1 - a0)
			w.n = a1 - a0;
		r = zero_cluster(img, q, &w,
				 w.inoff == 0 && (w.n == q->cluster_size ||
						  a0 + w.n == img->virtual_size),
				 may_unmap);
		a0 += w.n;
	}
	return r;
}

/* Like qemu: only whole clusters are discarded, partial ones ignored. */
int qcow2_discard(struct image *img, uint64_t offset, uint64_t length)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, end = offset + length, a0, a1;
	int r = 0;

	/* v2 cannot say "zero": unmapping would expose backing data. */
	if (q->h.version < 3 && img->backing)
		return 0;
	a0 = round_up(offset, cs);
	a1 = end == img->virtual_size ? end : round_down(end, cs);
	for (; r == 0 && a0 < a1; a0 += cs) {
		struct wctx w;
		uint64_t ne, nb = 0;

		r = load_entry(q, &w, a0);
		if (r < 0)
			break;
		if (!q->l2[w.l1i] && !img->backing)
			continue;
		if (q->g.extended_l2) {
			ne = 0;
			nb = 0xffffffffull << 32;
		} else {
			ne = q->h.version >= 3 ? QCOW2_OFLAG_ZERO : 0;
			if (w.e.type == QCOW2_ZERO_PLAIN ||
			    (w.e.type == QCOW2_UNALLOCATED && !img->backing))
				continue;
		}
		r = l2_writable(img, q, w.l1i);
		if (r == 0)
			r = free_entry(q, &w.e);
		if (r == 0)
			l2_set(q, w.l1i, w.l2i, ne, nb);
	}
	return r;
}

/* ------------------------------------------------------------ flush */

static int write_refblocks(struct image *img, struct qcow2 *q)
{
	uint64_t i;
	int r;

	for (i = 0; i < q->rt_entries; i++) {
		if (!q->rb_dirty[i])
			continue;
		r = image_pwrite(img, q->rb[i], q->cluster_size,
				 be64toh(q->rt[i]));
		if (r < 0)
			return r;
		q->rb_dirty[i] = false;
	}
	return 0;
}

static int write_rt(struct image *img, struct qcow2 *q)
{
	uint8_t hdr[12];
	int r;

	if (!q->rt_dirty && !q->rt_moved)
		return 0;
	r = image_pwrite(img, q->rt, q->rt_entries * 8,
			 q->h.refcount_table_offset);
	if (r < 0)
		return r;
	q->rt_dirty = false;
	if (!q->rt_moved)
		return 0;
	r = image_datasync(img);
	if (r < 0)
		return r;
	store_be64(hdr, q->h.refcount_table_offset);
	store_be32(hdr + 8, q->h.refcount_table_clusters);
	r = image_pwrite(img, hdr, sizeof(hdr), 48);
	if (r == 0)
		r = image_datasync(img);
	if (r == 0)
		q->rt_moved = false;
	return r;
}

static int write_l2s(struct image *img, struct qcow2 *q)
{
	uint64_t i, p;
	int r;

	for (i = 0; i < q->h.l1_size; i++) {
		uint64_t *d = q->l2_dirty + i * q->l2_words;
		uint64_t base = be64toh(q->l1[i]) & QCOW2_OFFSET_MASK;

		for (p = 0; p < q->l2_pages; p++) {
			if (!(d[p / 64] & (1ull << (p % 64))))
				continue;
			r = image_pwrite(img, (uint8_t *)q->l2[i] + p * q->page,
					 q->page, base + p * q->page);
			if (r < 0)
				return r;
			d[p / 64] &= ~(1ull << (p % 64));
		}
	}
	return 0;
}

static int write_l1(struct image *img, struct qcow2 *q)
{
	uint64_t bytes = (uint64_t)q->h.l1_size * 8, p;
	int r;

	for (p = 0; p * 4096 < bytes; p++) {
		uint64_t len = bytes - p * 4096;

		if (!(q->l1_dirty[p / 64] & (1ull << (p % 64))))
			continue;
		if (len > 4096)
			len = 4096;
		r = image_pwrite(img, (uint8_t *)q->l1 + p * 4096, len,
				 q->h.l1_table_offset + p * 4096);
		if (r < 0)
			return r;
		q->l1_dirty[p / 64] &= ~(1ull << (p % 64));
	}
	return 0;
}

/*
 * Give the space of clusters nothing references any more back to the
 * filesystem.  Called once the tables that dropped them are durable, so the
 * punched data is never read again; a crash before the refcounts reach the
 * disk only leaks zeroed clusters.  Best effort: a filesystem that cannot
 * punch holes keeps the space, and the image stays correct.
 */
static void punch_clusters(struct image *img, uint64_t off, uint64_t len)
{
	if (len && fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			     (off_t)off, (off_t)len) < 0 && errno != EOPNOTSUPP)
		log_warn("qcow2: '%s': cannot free %" PRIu64 " bytes at %" PRIu64
			 ": %m", img->path, len, off);
}

static int apply_frees(struct image *img, struct qcow2 *q)
{
	uint64_t cs = q->cluster_size, run = 0, run_len = 0;
	size_t i;
	int r = 0;

	for (i = 0; i < q->n_frees && r == 0; i++) {
		uint64_t c = q->frees[i].offset / cs * cs;
		uint64_t end = q->frees[i].offset + q->frees[i].length;

		for (; c < end && r == 0; c += cs) {
			r = rc_update(img, q, c, -1);
			if (r < 0 || rc_get(q, c >> q->h.cluster_bits))
				continue;
			/* unreferenced now: punch, in runs */
			if (run + run_len != c) {
				punch_clusters(img, run, run_len);
				run = c;
				run_len = 0;
			}
			run_len += cs;
		}
	}
	punch_clusters(img, run, run_len);
	q->n_frees = 0;
	return r;
}

/*
 * Crash-safe order: data, then refcounts (a cluster is counted before
 * anything points at it), then L2 tables, then L1.  Clusters dropped from
 * the tables lose their reference only after the tables are durable, so a
 * crash can leak clusters but never leave a reference uncounted.
 */
int qcow2_flush(struct image *img)
{
	struct qcow2 *q = img->priv;
	int r;

	r = image_datasync(img);
	if (r == 0)
		r = write_refblocks(img, q);
	if (r == 0)
		r = write_rt(img, q);
	if (r == 0 && q->any_dirty) {
		r = image_datasync(img);
		if (r == 0)
			r = write_l2s(img, q);
		if (r == 0)
			r = image_datasync(img);
		if (r == 0)
			r = write_l1(img, q);
		if (r == 0)
			r = image_datasync(img);
		if (r == 0)
			q->any_dirty = false;
	}
	if (r == 0 && q->n_frees) {
		r = apply_frees(img, q);
		if (r == 0)
			r = write_refblocks(img, q);
		if (r == 0)
			r = write_rt(img, q);
		if (r == 0)
			r = image_datasync(img);
	}
	if (r < 0)
		log_error("qcow2: '%s': flush failed: %s", img->path,
			  strerror(-r));
	return r;
}
