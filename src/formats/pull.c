/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Live coalesce in the engine (issue 13): pull a hidden parent's own data
 * down into its only child, then drop the parent from the child's header.
 * See image_pull_backing() / image_skip_backing() in format.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "formats/format.h"
#include "fullio.h"
#include "log.h"

/* Bytes handled per step: bounds the buffer and the extent lists. */
#define PULL_PIECE (1u << 20)

struct pull {
	struct image *img;
	struct image *b;		/* img->backing */
	struct extent_list own;		/* what img holds in the piece */
	struct extent_list from;	/* what b holds in a hole of img */
	struct extent_list to;		/* where img wants the bytes */
	char *buf;			/* PULL_PIECE bytes, aligned */
	uint64_t copied;
};

/* Write buf to [off, off + len) of img through map_write. */
static int pull_write(struct pull *p, uint64_t off, uint64_t len,
		      const char *buf)
{
	uint64_t pos = 0;
	int r;

	extent_list_clear(&p->to);
	r = image_map_write(p->img, off, len, &p->to);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p->to.n; i++) {
		const struct extent *e = &p->to.v[i];

		if (e->kind != EXTENT_DATA || e->fd != p->img->fd)
			return -EIO;	/* map_write gives img's own data */
		r = image_pwrite(p->img, buf + pos, e->length, e->host_offset);
		if (r < 0)
			return r;
		pos += e->length;
	}
	if (pos != len)
		return -EIO;
	p->copied += len;
	return 0;
}

/* Windows of the data copied that are skipped when they read as zeros. */
#define PULL_ZERO_WINDOW (64u << 10)

/*
 * Data the backing holds at [off, off + len), in buf.  With nothing below
 * the backing, img's hole will read zeros after the switch too: windows of
 * zeros are not written (a sparse raw base is not copied in full).
 */
static int pull_data(struct pull *p, uint64_t off, uint64_t len,
		     const char *buf)
{
	uint64_t pos = 0, n;
	int r;

	if (p->b->backing)
		return pull_write(p, off, len, buf);
	while (pos < len) {
		/* windows aligned on guest offsets, like clusters */
		n = min_u64(len - pos, PULL_ZERO_WINDOW -
			    (off + pos) % PULL_ZERO_WINDOW);
		if (!bytes_all_zero(buf + pos, n)) {
			r = pull_write(p, off + pos, n, buf + pos);
			if (r < 0)
				return r;
		}
		pos += n;
	}
	return 0;
}

/*
 * [off, off + len) is a hole of img inside the backing's size: copy what
 * the backing holds itself there.  buf is the piece's buffer at 'off'.
 */
static int pull_hole(struct pull *p, uint64_t off, uint64_t len, char *buf)
{
	uint64_t pos = 0;
	int r;

	extent_list_clear(&p->from);
	r = image_map_read_own(p->b, off, len, buf, &p->from);
	for (size_t i = 0; r == 0 && i < p->from.n; i++) {
		const struct extent *e = &p->from.v[i];

		switch (e->kind) {
		case EXTENT_DATA:
			r = e->fd == p->b->fd ?
				image_pread(p->b, buf + pos, e->length,
					    e->host_offset) : -EIO;
			if (r == 0)
				r = pull_data(p, off + pos, e->length,
					      buf + pos);
			break;
		case EXTENT_FILLED:	/* the bytes are in buf already */
			r = pull_data(p, off + pos, e->length, buf + pos);
			break;
		case EXTENT_ZERO:
			/*
			 * A hole of the backing stays a hole: img keeps
			 * reading through to what lies below.  Allocated
			 * zeros hide what lies below: write them, unless
			 * nothing does (then img's hole reads zeros too).
			 */
			if (e->hole || !p->b->backing)
				break;
			memset(buf + pos, 0, e->length);
			r = pull_write(p, off + pos, e->length, buf + pos);
			break;
		}
		pos += e->length;
	}
	if (r == 0 && pos != len)
		r = -EIO;
	return r;
}

/* One piece of at most PULL_PIECE bytes, within the backing's size. */
static int pull_piece(struct pull *p, uint64_t off, uint64_t len)
{
	uint64_t pos = 0;
	int r;

	extent_list_clear(&p->own);
	/*
	 * buf receives img's own compressed clusters here, which are then
	 * not written anywhere: the holes are what matters.
	 */
	r = image_map_read_own(p->img, off, len, p->buf, &p->own);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p->own.n; i++) {
		const struct extent *e = &p->own.v[i];

		if (e->kind == EXTENT_ZERO && e->hole) {
			r = pull_hole(p, off + pos, e->length, p->buf + pos);
			if (r < 0)
				return r;
		}
		pos += e->length;
	}
	return pos == len ? 0 : -EIO;
}

int image_pull_backing(struct image *img, uint64_t offset, uint64_t length,
		       uint64_t *copied)
{
	struct pull p = { .img = img, .b = img->backing };
	uint64_t end;
	int r = 0;

	if (img->readonly || !img->fmt->map_write)
		return -EROFS;
	if (offset > img->virtual_size || length > img->virtual_size - offset ||
	    !p.b)
		return -EINVAL;
	/* Beyond the backing's size (img was grown) it holds nothing. */
	end = offset + length;
	if (end > p.b->virtual_size)
		end = p.b->virtual_size;
	if (offset >= end)
		return 0;
	p.buf = aligned_malloc(4096, PULL_PIECE);
	if (!p.buf)
		return -ENOMEM;
	for (uint64_t off = offset; r == 0 && off < end;) {
		uint64_t n = min_u64(end - off, PULL_PIECE);

		r = pull_piece(&p, off, n);
		off += n;
	}
	if (r < 0)
		log_error("'%s': cannot copy the data of its backing file '%s': %s",
			  img->path, p.b->path, strerror(-r));
	if (copied)
		*copied += p.copied;
	extent_list_release(&p.own);
	extent_list_release(&p.from);
	extent_list_release(&p.to);
	free(p.buf);
	return r;
}

int image_skip_backing(struct image *img)
{
	int r;

	if (img->readonly)
		return -EROFS;
	if (!img->fmt->set_backing)
		return -ENOTSUP;
	if (!img->backing)
		return -EINVAL;
	r = img->fmt->set_backing(img, img->backing->backing);
	if (r < 0)
		log_error("'%s': cannot make '%s' its backing file: %s",
			  img->path, img->backing->backing ?
			  img->backing->backing->path : "(none)",
			  strerror(-r));
	return r;
}
