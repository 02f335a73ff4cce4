/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Persistent bitmaps: the dispatch (image_bitmap_*) and the sidecar file
 * that raw and VHD images keep them in.
 *
 * Bitmap BM of image file "NAME" is the sidecar file "NAME.BM.cbt" in the
 * same directory (opened relative to img->dirfd, O_NOFOLLOW, a regular
 * file); one file per bitmap.  Sidecar bitmap names are of
 * [A-Za-z0-9._-] only, at most CBT_BITMAP_NAME_MAX bytes.  The list of
 * an image's bitmaps is the directory's files "NAME.*.cbt" whose middle
 * part is such a name.  Layout, little-endian:
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
#include <dirent.h>
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

static const char *image_base(const struct image *img)
{
	const char *s = strrchr(img->path, '/');

	return s ? s + 1 : img->path;
}

static bool sidecar_name_ok(const char *name, size_t n)
{
	if (n == 0 || n > CBT_BITMAP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* The file name of bitmap 'name' of img; -ENOENT for a name a sidecar
 * cannot hold (no such bitmap). */
static int sidecar_name(const struct image *img, const char *name,
			char *buf, size_t len)
{
	int n;

	if (!sidecar_name_ok(name, strlen(name)))
		return -ENOENT;
	n = snprintf(buf, len, "%s.%s" SC_SUFFIX, image_base(img), name);
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

	r = sidecar_name(img, name, fname, sizeof(fname));
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

	r = sidecar_name(img, name, fname, sizeof(fname));
	if (r == -ENOENT) {
		log_error("'%s': a %s image keeps only bitmaps named with "
			  "A-Z a-z 0-9 . _ - (at most %d bytes), not '%s'",
			  img->path, img->fmt->name, CBT_BITMAP_NAME_MAX, name);
		return -EINVAL;
	}
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

	r = sidecar_name(img, name, fname, sizeof(fname));
	if (r < 0)
		return r;
	if (fstatat(img->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return unlink_durable_at(img->dirfd, fname);
}

static int names_add(char ***v, size_t *n, const char *name, size_t len)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strndup(name, len);
	if (!nv[*n])
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

int sidecar_bitmap_list(struct image *img, char ***ret)
{
	const char *base = image_base(img);
	size_t blen = strlen(base), slen = strlen(SC_SUFFIX), n = 0;
	struct dirent *de;
	char **v = calloc(1, sizeof(*v));
	DIR *dir;
	int fd, r = 0;

	if (!v)
		return -ENOMEM;
	fd = openat(img->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		free(v);
		return r;
	}
	while (r == 0) {
		size_t len;

		errno = 0;
		de = readdir(dir);
		if (!de) {
			r = -errno;
			break;
		}
		len = strlen(de->d_name);
		if (len <= blen + 1 + slen || strncmp(de->d_name, base, blen) ||
		    de->d_name[blen] != '.' ||
		    strcmp(de->d_name + len - slen, SC_SUFFIX) ||
		    !sidecar_name_ok(de->d_name + blen + 1,
				     len - blen - 1 - slen))
			continue;
		r = names_add(&v, &n, de->d_name + blen + 1,
			      len - blen - 1 - slen);
	}
	closedir(dir);
	if (r < 0) {
		image_bitmap_names_free(v);
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

int image_bitmap_adopt(struct image *dst, struct image *src)
{
	size_t plen = strlen(CBT_BITMAP_PREFIX);
	char **names = NULL;
	int r;

	if (dst->readonly)
		return -EROFS;
	r = image_bitmap_list(src, &names);
	if (r == -ENOTSUP)
		return 0;
	for (size_t i = 0; r == 0 && names[i]; i++) {
		struct dirty_bitmap bm;
		bool in_use = false;

		if (strncmp(names[i], CBT_BITMAP_PREFIX, plen))
			continue;
		r = image_bitmap_load(src, names[i], &bm, &in_use);
		if (r < 0) {
			log_error("'%s': cannot read bitmap '%s' to move it "
				  "into '%s': %s", src->path, names[i],
				  dst->path, strerror(-r));
			break;
		}
		if (bm.virtual_size != dst->virtual_size)
			r = dirty_bitmap_resize(&bm, dst->virtual_size);
		if (r == 0)
			r = image_bitmap_store(dst, names[i], &bm, in_use);
		if (r < 0)
			log_error("'%s': cannot move bitmap '%s' into '%s': %s",
				  src->path, names[i], dst->path, strerror(-r));
		dirty_bitmap_free(&bm);
	}
	image_bitmap_names_free(names);
	return r;
}
