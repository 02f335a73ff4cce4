/* SPDX-License-Identifier: LGPL-2.1-only */
/* QCOW2 engine: open (all L1/L2 in memory), read mapping, decompression. */
#include <errno.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "bytes.h"
#include "fullio.h"
#include "log.h"
#include "qcow2.h"

static bool qcow2_probe(const uint8_t *head, size_t len)
{
	return len >= 4 && head[0] == 'Q' && head[1] == 'F' &&
	       head[2] == 'I' && head[3] == 0xfb;
}

static int file_size_of(int fd, uint64_t *ret)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, ret) < 0 ? -errno : 0;
	*ret = (uint64_t)st.st_size;
	return 0;
}

/* Read the header cluster (or the whole file when smaller) and parse it. */
static int read_header(struct image *img, struct qcow2 *q, uint8_t **ret_buf,
		       size_t *ret_len)
{
	uint8_t small[QCOW2_V3_HEADER_LEN + 8];
	uint64_t cs;
	size_t len;
	uint8_t *buf;
	int r;

	if (q->file_size < QCOW2_V2_HEADER_LEN) {
		log_error("qcow2: '%s' is too small", img->path);
		return -EINVAL;
	}
	len = q->file_size < sizeof(small) ? (size_t)q->file_size : sizeof(small);
	r = image_pread(img, small, len, 0);
	if (r < 0)
		return r;
	q->h.cluster_bits = load_be32(small + 20);
	if (q->h.cluster_bits < 9 || q->h.cluster_bits > 21) {
		log_error("qcow2: bad cluster_bits %u", q->h.cluster_bits);
		return -EINVAL;
	}
	cs = (uint64_t)1 << q->h.cluster_bits;
	len = q->file_size < cs ? (size_t)q->file_size : (size_t)cs;
	buf = aligned_zalloc(4096, len);
	if (!buf)
		return -ENOMEM;
	r = image_pread(img, buf, len, 0);
	if (r == 0)
		r = qcow2_header_parse(buf, len, q->file_size, img->readonly,
				       &q->h);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

static void setup_geometry(struct qcow2 *q)
{
	q->g.cluster_bits = q->h.cluster_bits;
	q->g.version = q->h.version;
	q->g.extended_l2 = q->h.incompatible_features & QCOW2_INCOMPAT_EXTL2;
	q->cluster_size = (uint64_t)1 << q->h.cluster_bits;
	q->l2_bits = q->h.cluster_bits - (q->g.extended_l2 ? 4 : 3);
	q->l2_entries = (uint64_t)1 << q->l2_bits;
	q->sc_bits = q->g.extended_l2 ? q->h.cluster_bits - 5 : q->h.cluster_bits;
	q->page = q->cluster_size < 4096 ? (size_t)q->cluster_size : 4096;
	q->l2_pages = (size_t)(q->cluster_size / q->page);
	q->l2_words = (q->l2_pages + 63) / 64;
}

/* ------------------------------------------------------------ metadata map */

/* Record metadata at [off, off+len), widened to whole clusters. */
static int meta_add(struct qcow2 *q, uint64_t off, uint64_t len,
		    const char *what)
{
	uint64_t cs = q->cluster_size;

	if (len == 0)
		return 0;
	if (q->n_meta == q->cap_meta) {
		size_t cap = q->cap_meta ? q->cap_meta * 2 : 64;
		struct qcow2_range *v = realloc(q->meta, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		q->meta = v;
		q->cap_meta = cap;
	}
	q->meta[q->n_meta].start = round_down(off, cs);
	q->meta[q->n_meta].end = round_up(off + len, cs);
	q->meta[q->n_meta].what = what;
	q->n_meta++;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct qcow2_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort the map; two metadata structures sharing a cluster is corruption. */
static int meta_finish(struct image *img, struct qcow2 *q)
{
	size_t i;

	qsort(q->meta, q->n_meta, sizeof(*q->meta), cmp_range);
	for (i = 1; i < q->n_meta; i++) {
		const struct qcow2_range *a = &q->meta[i - 1], *b = &q->meta[i];

		if (b->start < a->end) {
			log_error("qcow2: '%s': corrupt image: the %s at 0x%" PRIx64 " overlaps the %s at 0x%" PRIx64 " (run 'qemu-img check')",
				  img->path, b->what, b->start, a->what,
				  a->start);
			return -EINVAL;
		}
	}
	return 0;
}

const struct qcow2_range *qcow2_meta_find(const struct qcow2 *q,
					  uint64_t off, uint64_t len)
{
	size_t lo = 0, hi = q->n_meta;
	uint64_t end = off + len < off ? UINT64_MAX : off + len;

	if (len == 0)
		return NULL;
	/* The first range that ends after off. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (q->meta[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < q->n_meta && q->meta[lo].start < end ? &q->meta[lo] : NULL;
}

/*
 * Read the refcount table (read-only opens too: its blocks are metadata).
 * Entries past what the file and disk can need must be zero: each one is
 * a cluster of memory once the blocks are loaded.
 */
static int read_rt(struct image *img, struct qcow2 *q)
{
	uint64_t cs = q->cluster_size, bytes, i;
	int r;

	bytes = (uint64_t)q->h.refcount_table_clusters * cs;
	q->rt_entries = bytes / 8;
	q->rt_limit = qcow2_rt_limit(&q->h, q->file_size);
	q->rt = aligned_zalloc(4096, bytes);
	if (!q->rt)
		return -ENOMEM;
	r = image_pread(img, q->rt, bytes, q->h.refcount_table_offset);
	if (r < 0)
		return r;
	r = meta_add(q, q->h.refcount_table_offset, bytes, "refcount table");
	for (i = 0; r == 0 && i < q->rt_entries; i++) {
		uint64_t e = be64toh(q->rt[i]);

		if (!e)
			continue;
		if ((e & QCOW2_RT_RESERVED) || e % cs || q->file_size < cs ||
		    e > q->file_size - cs || i >= q->rt_limit) {
			log_error("qcow2: '%s': bad refcount table entry %" PRIu64 ": 0x%" PRIx64 "%s",
				  img->path, i, e,
				  i >= q->rt_limit ? " (beyond what the file can need)" : "");
			return -EINVAL;
		}
		r = meta_add(q, e, cs, "refcount block");
	}
	return r;
}

/* Snapshot table entries: only where their L1 tables are (metadata). */
static int read_snapshots(struct image *img, struct qcow2 *q)
{
	uint64_t pos = q->h.snapshots_offset, end;
	uint32_t i;
	int r;

	if (!q->h.nb_snapshots)
		return 0;
	end = pos + QCOW2_MAX_SNAP_TABLE;
	for (i = 0; i < q->h.nb_snapshots; i++) {
		uint8_t e[40];
		uint64_t l1_off, len;
		uint32_t l1_size, extra;
		uint16_t id_len, name_len;

		if (pos + sizeof(e) > end || pos + sizeof(e) > q->file_size) {
			log_error("qcow2: '%s': snapshot table too large or beyond the file",
				  img->path);
			return -EINVAL;
		}
		r = image_pread(img, e, sizeof(e), pos);
		if (r < 0)
			return r;
		l1_off = load_be64(e);
		l1_size = load_be32(e + 8);
		id_len = load_be16(e + 12);
		name_len = load_be16(e + 14);
		extra = load_be32(e + 36);
		if ((uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES ||
		    (l1_size && (l1_off % q->cluster_size || l1_off == 0 ||
				 l1_off > q->file_size ||
				 (uint64_t)l1_size * 8 > q->file_size - l1_off))) {
			log_error("qcow2: '%s': snapshot %u: bad L1 table", img->path,
				  i);
			return -EINVAL;
		}
		r = meta_add(q, l1_off, (uint64_t)l1_size * 8, "snapshot L1 table");
		if (r < 0)
			return r;
		len = sizeof(e) + (uint64_t)extra + id_len + name_len;
		/* the last entry may end the file without its padding */
		if (pos + len > end || pos + len > q->file_size) {
			log_error("qcow2: '%s': snapshot table too large or beyond the file",
				  img->path);
			return -EINVAL;
		}
		pos += (len + 7) & ~7ull;
	}
	if (pos > end) {
		log_error("qcow2: '%s': snapshot table too large or beyond the file",
			  img->path);
		return -EINVAL;
	}
	return meta_add(q, q->h.snapshots_offset, pos - q->h.snapshots_offset,
			"snapshot table");
}

/* Validate one L2 entry against the file; 0 or -EINVAL. */
static int check_entry(struct qcow2 *q, uint64_t entry, uint64_t bitmap,
		       const char **why)
{
	struct qcow2_entry e;
	const struct qcow2_range *m;

	*why = "invalid";
	if (qcow2_entry_decode(&q->g, entry, bitmap, &e) < 0)
		return -EINVAL;
	if (e.type == QCOW2_UNALLOCATED || e.type == QCOW2_ZERO_PLAIN)
		return 0;
	*why = "beyond the end of the file";
	if (e.host >= q->file_size)
		return -EINVAL;
	/* A data cluster that is metadata: a guest read would expose the
	 * metadata, a guest write would corrupt it. */
	m = e.type == QCOW2_COMPRESSED ?
		    qcow2_meta_find(q, e.cfree_off, e.cfree_len) :
		    qcow2_meta_find(q, e.host, q->cluster_size);
	if (m) {
		*why = m->what;
		return -EINVAL;
	}
	return 0;
}

static int load_l2(struct image *img, struct qcow2 *q, uint64_t l1i,
		   uint64_t l2_off)
{
	uint64_t i, n = q->l2_entries;
	uint64_t *t = aligned_zalloc(4096, q->cluster_size);
	int r;

	if (!t)
		return -ENOMEM;
	q->l2[l1i] = t;
	r = image_pread(img, t, q->cluster_size, l2_off);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		uint64_t bitmap, entry = qcow2_l2_get(q, l1i, i, &bitmap);
		const char *why;

		if (check_entry(q, entry, bitmap, &why) < 0) {
			log_error("qcow2: '%s': corrupt image: L2 entry 0x%" PRIx64 " (table 0x%" PRIx64 " index %" PRIu64 ") points at %s%s",
				  img->path, entry, l2_off, i,
				  strncmp(why, "beyond", 6) && strcmp(why, "invalid") ? "the " : "",
				  why);
			return -EINVAL;
		}
	}
	return 0;
}

/* Entries of the L1 table that can map a part of the disk. */
static uint64_t l1_needed(const struct qcow2 *q)
{
	unsigned int shift = q->h.cluster_bits + q->l2_bits;

	return (q->h.size + ((uint64_t)1 << shift) - 1) >> shift;
}

/*
 * Read the L1 table and record it and its L2 tables as metadata.  L1
 * entries past the virtual size (qemu leaves them after a shrink or a VM
 * state save) map nothing: they are neither loaded nor allowed to cost
 * memory.
 */
static int read_l1(struct image *img, struct qcow2 *q)
{
	uint64_t l1_bytes = (uint64_t)q->h.l1_size * 8, i, need = l1_needed(q);
	int r;

	q->l1 = aligned_zalloc(4096, l1_bytes ? l1_bytes : 8);
	q->l2 = calloc(q->h.l1_size ? q->h.l1_size : 1, sizeof(*q->l2));
	q->l2_dirty = calloc((size_t)(q->h.l1_size ? q->h.l1_size : 1) * q->l2_words,
			     sizeof(uint64_t));
	q->l1_dirty = calloc((l1_bytes / 4096 + 64) / 64, sizeof(uint64_t));
	if (!q->l1 || !q->l2 || !q->l2_dirty || !q->l1_dirty)
		return -ENOMEM;
	r = image_pread(img, q->l1, l1_bytes, q->h.l1_table_offset);
	if (r == 0)
		r = meta_add(q, q->h.l1_table_offset, l1_bytes, "L1 table");
	for (i = 0; r == 0 && i < q->h.l1_size && i < need; i++) {
		uint64_t e = be64toh(q->l1[i]), off = e & QCOW2_OFFSET_MASK;

		if (!off)
			continue;
		if ((e & QCOW2_L1_RESERVED) || off % q->cluster_size ||
		    q->file_size < q->cluster_size ||
		    off > q->file_size - q->cluster_size) {
			log_error("qcow2: '%s': bad L1 entry %" PRIu64 ": 0x%" PRIx64,
				  img->path, i, e);
			return -EINVAL;
		}
		r = meta_add(q, off, q->cluster_size, "L2 table");
	}
	return r;
}

static int load_tables(struct image *img, struct qcow2 *q)
{
	uint64_t loaded = 0, i, need = l1_needed(q);
	int r;

	for (i = 0; i < q->h.l1_size && i < need; i++) {
		uint64_t off = be64toh(q->l1[i]) & QCOW2_OFFSET_MASK;

		if (!off)
			continue;
		/* Distinct tables all lie in the file: bound memory by it. */
		loaded += q->cluster_size;
		if (loaded > q->file_size) {
			log_error("qcow2: '%s': more L2 tables than the file holds",
				  img->path);
			return -EINVAL;
		}
		r = load_l2(img, q, i, off);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Map every metadata structure, refuse overlaps between them, then load
 * the L2 tables, whose data entries may not point into the map.
 */
static int load_metadata(struct image *img, struct qcow2 *q)
{
	int r = meta_add(q, 0, q->cluster_size, "header");

	if (r == 0)
		r = read_rt(img, q);
	if (r == 0)
		r = read_snapshots(img, q);
	if (r == 0)
		r = read_l1(img, q);
	if (r == 0)
		r = meta_finish(img, q);
	if (r == 0)
		r = load_tables(img, q);
	return r;
}

static void qcow2_free_priv(struct qcow2 *q, struct image *img)
{
	uint64_t i;

	if (!q)
		return;
	qcow2_release_alloc(img, q);
	if (q->l2)
		for (i = 0; i < q->h.l1_size; i++)
			free(q->l2[i]);
	free(q->l2);
	free(q->l1);
	free(q->l2_dirty);
	free(q->l1_dirty);
	free(q->meta);
	if (q->zs_ready)
		inflateEnd(&q->zs);
	free(q->cbuf);
	free(q->dbuf);
	free(q->cow_buf);
	free(q->zero_buf);
	extent_list_release(&q->tmp);
	free(q);
}

static int qcow2_open(struct image *img, char **ret_backing,
		      char **ret_backing_format)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	uint8_t *hbuf = NULL;
	size_t hlen = 0;
	char *backing = NULL;
	int r;

	if (!q)
		return -ENOMEM;
	r = file_size_of(img->fd, &q->file_size);
	if (r == 0)
		r = read_header(img, q, &hbuf, &hlen);
	if (r < 0)
		goto out_free;
	setup_geometry(q);
	r = qcow2_header_backing(hbuf, hlen, &q->h, &backing);
	if (r < 0)
		goto out_free;
	r = load_metadata(img, q);
	if (r < 0)
		goto out_free;
	q->cbuf = aligned_zalloc(4096, 2 * q->cluster_size);
	q->dbuf = aligned_zalloc(4096, q->cluster_size);
	q->cow_buf = aligned_zalloc(4096, q->cluster_size);
	q->zero_buf = aligned_zalloc(4096, q->cluster_size);
	if (!q->cbuf || !q->dbuf || !q->cow_buf || !q->zero_buf) {
		r = -ENOMEM;
		goto out_free;
	}
	if (!img->readonly) {
		r = qcow2_refcounts_load(img, q);
		if (r < 0)
			goto out_free;
	}
	if (backing && q->h.backing_format[0]) {
		*ret_backing_format = strdup(q->h.backing_format);
		if (!*ret_backing_format) {
			r = -ENOMEM;
			goto out_free;
		}
	}
	free(hbuf);
	img->virtual_size = q->h.size;
	img->priv = q;
	*ret_backing = backing;
	return 0;

out_free:
	free(backing);
	free(hbuf);
	qcow2_free_priv(q, img);
	return r;
}

static void qcow2_close(struct image *img)
{
	qcow2_free_priv(img->priv, img);
	img->priv = NULL;
}

/* ------------------------------------------------------------ reading */

static int decompress(struct image *img, struct qcow2 *q,
		      const struct qcow2_entry *e)
{
	uint64_t clen = e->csize;
	int r;

	if (q->dbuf_host == e->host)
		return 0;
	if (e->host >= q->file_size)
		return -EINVAL;
	if (clen > q->file_size - e->host)
		clen = q->file_size - e->host;	/* last cluster may end early */
	if (clen > 2 * q->cluster_size)
		return -EINVAL;
	r = image_pread(img, q->cbuf, clen, e->host);
	if (r < 0)
		return r;
	if (!q->zs_ready) {
		memset(&q->zs, 0, sizeof(q->zs));
		if (inflateInit2(&q->zs, -15) != Z_OK)
			return -ENOMEM;
		q->zs_ready = true;
	} else if (inflateReset(&q->zs) != Z_OK) {
		return -EIO;
	}
	q->zs.next_in = q->cbuf;
	q->zs.avail_in = (uInt)clen;
	q->zs.next_out = q->dbuf;
	q->zs.avail_out = (uInt)q->cluster_size;
	r = inflate(&q->zs, Z_FINISH);
	if ((r != Z_STREAM_END && r != Z_BUF_ERROR) || q->zs.avail_out) {
		log_error("qcow2: '%s': corrupt compressed cluster at 0x%" PRIx64,
			  img->path, e->host);
		q->dbuf_host = 0;
		return -EIO;
	}
	q->dbuf_host = e->host;
	return 0;
}

struct rmap {
	struct image *img;
	struct qcow2 *q;
	uint64_t start;
	uint8_t *buf;
	struct extent_list *out;
	uint64_t bk_off, bk_len;	/* pending run through the backing */
};

static int rmap_flush_backing(struct rmap *m)
{
	uint64_t off = m->bk_off, len = m->bk_len;

	if (!len)
		return 0;
	m->bk_len = 0;
	return image_map_backing_read(m->img, off, len,
				      m->buf ? m->buf + (off - m->start) : NULL,
				      m->out);
}

static int rmap_backing(struct rmap *m, uint64_t off, uint64_t len)
{
	int r;

	if (m->bk_len && m->bk_off + m->bk_len == off) {
		m->bk_len += len;
		return 0;
	}
	r = rmap_flush_backing(m);
	m->bk_off = off;
	m->bk_len = len;
	return r;
}

static int rmap_push(struct rmap *m, enum extent_kind kind, uint64_t host,
		     uint64_t len, bool hole)
{
	struct extent e = {
		.kind = kind,
		.fd = kind == EXTENT_DATA ? m->img->fd : -1,
		.host_offset = kind == EXTENT_DATA ? host : 0,
		.length = len,
		.hole = hole,
	};
	int r = rmap_flush_backing(m);

	if (r < 0)
		return r;
	/* A read-only image's last cluster may end before the cluster does. */
	if (kind == EXTENT_DATA && host + len > m->q->file_size) {
		uint64_t in = host < m->q->file_size ? m->q->file_size - host : 0;

		e.length = in;
		r = extent_list_push(m->out, &e);
		if (r < 0)
			return r;
		e.kind = EXTENT_ZERO;
		e.fd = -1;
		e.host_offset = 0;
		e.length = len - in;
	}
	return extent_list_push(m->out, &e);
}

static int rmap_compressed(struct rmap *m, const struct qcow2_entry *e,
			   uint64_t off, uint64_t inoff, uint64_t n)
{
	int r;

	if (m->buf) {
		r = decompress(m->img, m->q, e);
		if (r < 0)
			return r;
		memcpy(m->buf + (off - m->start), m->q->dbuf + inoff, n);
	}
	return rmap_push(m, EXTENT_FILLED, 0, n, false);
}

/* Extended L2: walk the subclusters of one cluster. */
static int rmap_subclusters(struct rmap *m, const struct qcow2_entry *e,
			    uint64_t off, uint64_t inoff, uint64_t n)
{
	uint64_t scs = (uint64_t)1 << m->q->sc_bits;
	int r = 0;

	while (n && r == 0) {
		unsigned int sc = (unsigned int)(inoff >> m->q->sc_bits);
		uint64_t piece = scs - (inoff & (scs - 1));

		if (piece > n)
			piece = n;
		switch (qcow2_subcluster_type(e, sc)) {
		case QCOW2_NORMAL:
			r = rmap_push(m, EXTENT_DATA, e->host + inoff, piece,
				      false);
			break;
		case QCOW2_UNALLOCATED:
			r = rmap_backing(m, off, piece);
			break;
		default:
			r = rmap_push(m, EXTENT_ZERO, 0, piece, false);
			break;
		}
		off += piece;
		inoff += piece;
		n -= piece;
	}
	return r;
}

static int rmap_cluster(struct rmap *m, uint64_t l1i, uint64_t off,
			uint64_t n)
{
	struct qcow2 *q = m->q;
	uint64_t inoff = off & (q->cluster_size - 1), bitmap, entry;
	uint64_t l2i = (off >> q->h.cluster_bits) & (q->l2_entries - 1);
	struct qcow2_entry e;

	entry = qcow2_l2_get(q, l1i, l2i, &bitmap);
	if (qcow2_entry_decode(&q->g, entry, bitmap, &e) < 0)
		return -EIO;	/* validated at open / written by us */
	if (e.type == QCOW2_COMPRESSED)
		return rmap_compressed(m, &e, off, inoff, n);
	if (q->g.extended_l2)
		return rmap_subclusters(m, &e, off, inoff, n);
	switch (e.type) {
	case QCOW2_NORMAL:
		return rmap_push(m, EXTENT_DATA, e.host + inoff, n, false);
	case QCOW2_UNALLOCATED:
		return rmap_backing(m, off, n);
	default:
		return rmap_push(m, EXTENT_ZERO, 0, n, false);
	}
}

static int qcow2_map_read(struct image *img, uint64_t offset, uint64_t length,
			  void *buf, struct extent_list *out)
{
	struct qcow2 *q = img->priv;
	struct rmap m = {
		.img = img, .q = q, .start = offset, .buf = buf, .out = out,
	};
	unsigned int l1_shift = q->h.cluster_bits + q->l2_bits;
	uint64_t cover = (uint64_t)1 << l1_shift;
	int r = 0;

	while (length && r == 0) {
		uint64_t l1i = offset >> l1_shift, n;

		if (l1i >= q->h.l1_size || !q->l2[l1i]) {
			n = cover - (offset & (cover - 1));
			if (n > length)
				n = length;
			r = rmap_backing(&m, offset, n);
		} else {
			n = q->cluster_size - (offset & (q->cluster_size - 1));
			if (n > length)
				n = length;
			r = rmap_cluster(&m, l1i, offset, n);
		}
		offset += n;
		length -= n;
	}
	if (r == 0)
		r = rmap_flush_backing(&m);
	return r;
}

const struct image_format format_qcow2 = {
	.name = "qcow2",
	.probe = qcow2_probe,
	.open = qcow2_open,
	.map_read = qcow2_map_read,
	.map_write = qcow2_map_write,
	.zero = qcow2_zero,
	.discard = qcow2_discard,
	.flush = qcow2_flush,
	.close = qcow2_close,
	.set_backing = qcow2_set_backing,
	.bitmap_load = qcow2_bitmap_load,
	.bitmap_store = qcow2_bitmap_store,
	.bitmap_remove = qcow2_bitmap_remove,
	.bitmap_list = qcow2_bitmap_list,
};
