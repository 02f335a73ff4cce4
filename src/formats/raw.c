/* SPDX-License-Identifier: LGPL-2.1-only */
/* The raw format: guest offset == host offset, holes via SEEK_HOLE. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/format.h"
#include "log.h"

static bool raw_probe(const uint8_t *head, size_t len)
{
	(void)head;
	(void)len;
	return true;	/* the fallback: anything is raw */
}

static int raw_open(struct image *img, char **ret_backing,
		    char **ret_backing_format)
{
	struct stat st;
	uint64_t size;

	(void)ret_backing;
	(void)ret_backing_format;
	if (fstat(img->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(img->fd, BLKGETSIZE64, &size) < 0)
			return -errno;
	} else {
		size = (uint64_t)st.st_size;
	}
	img->virtual_size = size;
	return 0;
}

static int raw_map(struct image *img, uint64_t offset, uint64_t length,
		   struct extent_list *out)
{
	struct extent e = {
		.kind = EXTENT_DATA,
		.fd = img->fd,
		.host_offset = offset,
		.length = length,
	};

	return extent_list_push(out, &e);
}

static int raw_map_read(struct image *img, uint64_t offset, uint64_t length,
			void *buf, struct extent_list *out)
{
	(void)buf;
	return raw_map(img, offset, length, out);
}

static int raw_map_write(struct image *img, uint64_t offset, uint64_t length,
			 struct extent_list *out)
{
	return raw_map(img, offset, length, out);
}

/* SEEK_DATA/SEEK_HOLE walk; a filesystem without support is all data. */
static int raw_block_status(struct image *img, uint64_t offset,
			    uint64_t length, struct extent_list *out)
{
	uint64_t end = offset + length, pos = offset;
	int r = 0;

	while (pos < end && r == 0) {
		struct extent e = { .fd = img->fd, .host_offset = pos };
		off_t data = lseek(img->buffered_fd, (off_t)pos, SEEK_DATA);
		off_t hole;

		if (data < 0 && errno == ENXIO)
			data = (off_t)end;	/* only a hole up to EOF */
		if (data < 0)
			return raw_map(img, pos, end - pos, out);
		if ((uint64_t)data > pos) {
			e.kind = EXTENT_ZERO;
			e.hole = true;
			e.length = ((uint64_t)data < end ? (uint64_t)data : end) - pos;
			r = extent_list_push(out, &e);
			pos += e.length;
			continue;
		}
		hole = lseek(img->buffered_fd, (off_t)pos, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole <= pos)
			hole = (off_t)end;
		e.kind = EXTENT_DATA;
		e.length = ((uint64_t)hole < end ? (uint64_t)hole : end) - pos;
		r = extent_list_push(out, &e);
		pos += e.length;
	}
	return r;
}

static int raw_zero(struct image *img, uint64_t offset, uint64_t length,
		    bool may_unmap)
{
	int mode = may_unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
			       FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

	if (fallocate(img->fd, mode, (off_t)offset, (off_t)length) == 0)
		return 0;
	if (errno == EOPNOTSUPP || errno == ENOSYS)
		return -ENOTSUP;
	return -errno;
}

static int raw_discard(struct image *img, uint64_t offset, uint64_t length)
{
	/* TRIM content is unspecified afterwards: punching is allowed. */
	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)offset, (off_t)length) == 0)
		return 0;
	if (errno == EOPNOTSUPP || errno == ENOSYS)
		return 0;
	return -errno;
}

static int raw_flush(struct image *img)
{
	return image_datasync(img);
}

static void raw_close(struct image *img)
{
	(void)img;
}

const struct image_format format_raw = {
	.name = "raw",
	.probe = raw_probe,
	.open = raw_open,
	.map_read = raw_map_read,
	.map_write = raw_map_write,
	.zero = raw_zero,
	.discard = raw_discard,
	.flush = raw_flush,
	.close = raw_close,
	.block_status = raw_block_status,
	.bitmap_load = sidecar_bitmap_load,
	.bitmap_store = sidecar_bitmap_store,
	.bitmap_remove = sidecar_bitmap_remove,
	.bitmap_list = sidecar_bitmap_list,
};
