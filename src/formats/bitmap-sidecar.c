/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Persistent bitmaps: the dispatch (image_bitmap_*) and the sidecar file
 * that raw and VHD images keep them in.
 *
 * The sidecar of image file "NAME" is "NAME.cbt" in the same directory
 * (opened relative to img->dirfd, O_NOFOLLOW, a regular file).  It holds
 * one bitmap, named CBT_BITMAP_NAME.  Layout, little-endian:
 *
 *    0  magic "XSNGCBT\0"
 *    8  u32 version (1)
 *   12  u32 flags: bit 0 in use (the writer did not close it cleanly)
 *   16  u64 granularity (bytes per bit, a power of two, >= 512)
 *   24  u64 virtual size (bytes of disk the bits cover)
 *   32  u64 data length = ceil(bits / 8)
 *   40  u32 CRC-32 (zlib) of the header with this field zero, then the data
 *   44  u32 reserved, 0
 *   48  the bits, LSB first: bit i is bit (i % 8) of byte i / 8
 *
 * It is replaced atomically (temp file, fsync, rename, fsync of the
 * directory): a crash leaves the old or the new file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "bytes.h"
#include "fault.h"
#include "fileio.h"
#include "formats/bitmap.h"
#include "formats/format.h"
#include "log.h"

#define SC_MAGIC	"XSNGCBT"
#define SC_VERSION	1u
#define SC_HDR		48u
#define SC_IN_USE	1u
#define SC_SUFFIX	".cbt"

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t load_le64(const uint8_t *p)
{
	return load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}

static void store_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void store_le64(uint8_t *p, uint64_t v)
{
	store_le32(p, (uint32_t)v);
	store_le32(p + 4, (uint32_t)(v >> 32));
}

static int sidecar_name(const struct image *img, char *buf, size_t len)
{
	const char *s = strrchr(img->path, '/');
	int n = snprintf(buf, len, "%s" SC_SUFFIX, s ? s + 1 : img->path);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static uint32_t sc_crc(const uint8_t *hdr, const uint8_t *data, uint64_t n)
{
	uint8_t h[SC_HDR];
	uLong c;

	memcpy(h, hdr, SC_HDR);
	memset(h + 40, 0, 4);
	c = crc32(0L, h, SC_HDR);
	while (n) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;

		c = crc32(c, data, k);
		data += k;
		n -= k;
	}
	return (uint32_t)c;
}

/* Read the sidecar (at most the largest valid one), -ENOENT if none. */
static int read_sidecar(struct image *img, const char *fname, uint8_t **ret,
			size_t *ret_len)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	fd = openat(img->dirfd, fname,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("'%s': the bitmap file '%s' is not a regular file",
			  img->path, fname);
		close(fd);
		return -EINVAL;
	}
	r = read_all(fd, SC_HDR + BITMAP_MAX_BITS / 8, &buf, &len);
	close(fd);
	if (r == -EFBIG)
		r = -EINVAL;
	if (r < 0)
		return r;
	*ret = (uint8_t *)buf;
	*ret_len = len;
	return 0;
}

static int parse_sidecar(struct image *img, const char *fname,
			 const uint8_t *b, size_t len,
			 struct dirty_bitmap *bm, bool *in_use)
{
	uint64_t gran, vsize, dlen;
	uint32_t flags;
	int r;

	if (len < SC_HDR || memcmp(b, SC_MAGIC, 8)) {
		log_error("'%s': '%s' is not a bitmap file", img->path, fname);
		return -EINVAL;
	}
	if (load_le32(b + 8) != SC_VERSION) {
		log_error("'%s': bitmap file '%s' has unknown version %u",
			  img->path, fname, load_le32(b + 8));
		return -EINVAL;
	}
	flags = load_le32(b + 12);
	gran = load_le64(b + 16);
	vsize = load_le64(b + 24);
	dlen = load_le64(b + 32);
	if ((flags & ~SC_IN_USE) || load_le32(b + 44) ||
	    dlen != len - SC_HDR) {
		log_error("'%s': bitmap file '%s' has a bad header",
			  img->path, fname);
		return -EINVAL;
	}
	if (sc_crc(b, b + SC_HDR, dlen) != load_le32(b + 40)) {
		log_error("'%s': bitmap file '%s' fails its checksum",
			  img->path, fname);
		return -EINVAL;
	}
	r = dirty_bitmap_init(bm, gran, vsize);
	if (r == 0 && dirty_bitmap_bytes(bm) != dlen)
		r = -EINVAL;
	if (r == 0)
		r = dirty_bitmap_import_lsb(bm, b + SC_HDR, 0, dlen);
	/* a disk resized since: cover the image as it is now */
	if (r == 0 && vsize != img->virtual_size)
		r = dirty_bitmap_resize(bm, img->virtual_size);
	if (r < 0) {
		dirty_bitmap_free(bm);
		log_error("'%s': bitmap file '%s' has a bad geometry",
			  img->path, fname);
		return r == -ENOMEM ? r : -EINVAL;
	}
	if (in_use)
		*in_use = flags & SC_IN_USE;
	return 0;
}

int sidecar_bitmap_load(struct image *img, const char *name,
			struct dirty_bitmap *bm, bool *in_use)
{
	char fname[256];
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if (strcmp(name, CBT_BITMAP_NAME))
		return -ENOENT;
	r = sidecar_name(img, fname, sizeof(fname));
	if (r == 0)
		r = read_sidecar(img, fname, &buf, &len);
	if (r == 0)
		r = parse_sidecar(img, fname, buf, len, bm, in_use);
	free(buf);
	return r;
}

int sidecar_bitmap_store(struct image *img, const char *name,
			 const struct dirty_bitmap *bm, bool in_use)
{
	uint64_t dlen = dirty_bitmap_bytes(bm);
	char fname[256];
	uint8_t *buf;
	int r;

	if (strcmp(name, CBT_BITMAP_NAME)) {
		log_error("'%s': a %s image keeps only the bitmap '%s'",
			  img->path, img->fmt->name, CBT_BITMAP_NAME);
		return -ENOTSUP;
	}
	r = sidecar_name(img, fname, sizeof(fname));
	if (r < 0)
		return r;
	buf = calloc(1, SC_HDR + dlen);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, SC_MAGIC, 8);
	store_le32(buf + 8, SC_VERSION);
	store_le32(buf + 12, in_use ? SC_IN_USE : 0);
	store_le64(buf + 16, bm->granularity);
	store_le64(buf + 24, bm->virtual_size);
	store_le64(buf + 32, dlen);
	dirty_bitmap_export_lsb(bm, buf + SC_HDR, 0, dlen);
	store_le32(buf + 40, sc_crc(buf, buf + SC_HDR, dlen));
	fault_point("bitmap-sidecar-store");
	r = write_file_atomic_at(img->dirfd, fname, buf, SC_HDR + dlen);
	free(buf);
	if (r < 0)
		log_error("'%s': cannot write the bitmap file '%s': %s",
			  img->path, fname, strerror(-r));
	return r;
}

int sidecar_bitmap_remove(struct image *img, const char *name)
{
	char fname[256];
	struct stat st;
	int r;

	if (strcmp(name, CBT_BITMAP_NAME))
		return -ENOENT;
	r = sidecar_name(img, fname, sizeof(fname));
	if (r < 0)
		return r;
	if (fstatat(img->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return unlink_durable_at(img->dirfd, fname);
}

int sidecar_bitmap_list(struct image *img, char ***ret)
{
	char fname[256], **v;
	struct stat st;
	int r = sidecar_name(img, fname, sizeof(fname));

	if (r < 0)
		return r;
	v = calloc(2, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (fstatat(img->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		v[0] = strdup(CBT_BITMAP_NAME);
		if (!v[0]) {
			free(v);
			return -ENOMEM;
		}
	} else if (errno != ENOENT) {
		r = -errno;
		free(v);
		return r;
	}
	*ret = v;
	return 0;
}

/* ------------------------------------------------------------ dispatch */

int image_bitmap_load(struct image *img, const char *name,
		      struct dirty_bitmap *bm, bool *in_use)
{
	if (!bitmap_name_ok(name))
		return -EINVAL;
	if (!img->fmt->bitmap_load)
		return -ENOTSUP;
	return img->fmt->bitmap_load(img, name, bm, in_use);
}

int image_bitmap_store(struct image *img, const char *name,
		       const struct dirty_bitmap *bm, bool in_use)
{
	if (img->readonly)
		return -EROFS;
	if (!bitmap_name_ok(name) || bm->virtual_size != img->virtual_size)
		return -EINVAL;
	if (!img->fmt->bitmap_store)
		return -ENOTSUP;
	return img->fmt->bitmap_store(img, name, bm, in_use);
}

int image_bitmap_remove(struct image *img, const char *name)
{
	if (img->readonly)
		return -EROFS;
	if (!bitmap_name_ok(name))
		return -EINVAL;
	if (!img->fmt->bitmap_remove)
		return -ENOTSUP;
	return img->fmt->bitmap_remove(img, name);
}

int image_bitmap_list(struct image *img, char ***ret)
{
	if (!img->fmt->bitmap_list)
		return -ENOTSUP;
	return img->fmt->bitmap_list(img, ret);
}

void image_bitmap_names_free(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}
