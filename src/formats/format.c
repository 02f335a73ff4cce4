/* SPDX-License-Identifier: LGPL-2.1-only */
/* Format layer core: extent lists, chain open/close, dispatch, sync I/O. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "formats/format.h"
#include "log.h"

/*
 * The VHD engine lives in vhd.c, written separately.  libformats.a is a
 * static archive and a weak reference never pulls a member out of an
 * archive, so mk/formats.mk defines HAVE_FORMAT_VHD when vhd.c exists and
 * we then take a strong reference; otherwise the symbol is weak and NULL.
 */
#ifndef HAVE_FORMAT_VHD
#pragma weak format_vhd
#endif

#define DEFAULT_MAX_DEPTH 64
#define PROBE_LEN 512

/* ------------------------------------------------------------ extents */

static bool extent_mergeable(const struct extent *a, const struct extent *b)
{
	if (a->kind != b->kind || a->hole != b->hole)
		return false;
	if (a->kind != EXTENT_DATA)
		return true;
	return a->fd == b->fd && a->host_offset + a->length == b->host_offset;
}

int extent_list_push(struct extent_list *l, const struct extent *e)
{
	if (e->length == 0)
		return 0;
	if (l->n > 0 && extent_mergeable(&l->v[l->n - 1], e)) {
		l->v[l->n - 1].length += e->length;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct extent *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *e;
	return 0;
}

void extent_list_clear(struct extent_list *l)
{
	l->n = 0;
}

void extent_list_release(struct extent_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* ------------------------------------------------------------ sync I/O */

static bool io_aligned(const struct image *img, const void *buf, size_t len,
		       uint64_t offset)
{
	uint64_t a = img->dio_align;

	if (!img->direct)
		return true;
	return ((uintptr_t)buf % a) == 0 && len % a == 0 && offset % a == 0;
}

/* Full-length pread; returns the bytes read (short only at EOF) or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done,
				  (off_t)(offset + done));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(offset + done));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

int image_pread(struct image *img, void *buf, size_t len, uint64_t offset)
{
	uint64_t a = img->dio_align, start, end;
	ssize_t r;
	void *bounce;

	if (len == 0)
		return 0;
	if (offset > UINT64_MAX - len)
		return -EINVAL;
	if (io_aligned(img, buf, len, offset)) {
		r = pread_full(img->fd, buf, len, offset);
		if (r < 0)
			return (int)r;
		return (size_t)r == len ? 0 : -EINVAL;
	}
	/* Unaligned for O_DIRECT: read the covering aligned range. */
	start = offset / a * a;
	end = (offset + len + a - 1) / a * a;
	if (end - start > SIZE_MAX / 2)
		return -EINVAL;
	if (posix_memalign(&bounce, a, end - start))
		return -ENOMEM;
	r = pread_full(img->fd, bounce, end - start, start);
	if (r >= 0 && (uint64_t)r < offset + len - start)
		r = -EINVAL;	/* the range reaches beyond EOF */
	if (r >= 0)
		memcpy(buf, (char *)bounce + (offset - start), len);
	free(bounce);
	return r < 0 ? (int)r : 0;
}

int image_pwrite(struct image *img, const void *buf, size_t len,
		 uint64_t offset)
{
	if (img->readonly)
		return -EROFS;
	if (len == 0)
		return 0;
	/*
	 * An unaligned write goes through the page cache: a read-modify-write
	 * bounce here could race with the server's in-flight data writes to
	 * the same block.  Linux keeps buffered and direct I/O coherent
	 * (direct I/O flushes and invalidates the cached range).
	 */
	if (io_aligned(img, buf, len, offset))
		return pwrite_full(img->fd, buf, len, offset);
	return pwrite_full(img->buffered_fd, buf, len, offset);
}

int image_datasync(struct image *img)
{
	/* fdatasync works on the inode: it covers writes through both fds. */
	if (fdatasync(img->fd) < 0)
		return -errno;
	return 0;
}

/* The image of the chain that owns host file descriptor fd. */
static struct image *image_by_fd(struct image *img, int fd)
{
	for (; img; img = img->backing)
		if (img->fd == fd)
			return img;
	return NULL;
}

int image_read(struct image *img, uint64_t offset, uint64_t length, void *buf)
{
	struct extent_list l = { 0 };
	uint64_t pos = 0, valid;
	size_t i;
	int r;

	if (offset >= img->virtual_size) {
		memset(buf, 0, length);
		return 0;
	}
	valid = img->virtual_size - offset;
	if (valid > length)
		valid = length;
	if (valid < length)
		memset((char *)buf + valid, 0, length - valid);
	r = image_map_read(img, offset, valid, buf, &l);
	for (i = 0; r == 0 && i < l.n; i++) {
		const struct extent *e = &l.v[i];
		char *p = (char *)buf + pos;

		if (e->kind == EXTENT_ZERO) {
			memset(p, 0, e->length);
		} else if (e->kind == EXTENT_DATA) {
			struct image *owner = image_by_fd(img, e->fd);

			r = owner ? image_pread(owner, p, e->length,
						e->host_offset) : -EBADF;
		}
		pos += e->length;
	}
	if (r == 0 && pos != valid)
		r = -EIO;
	extent_list_release(&l);
	return r;
}

int image_map_backing_read(struct image *img, uint64_t offset,
			   uint64_t length, void *buf, struct extent_list *out)
{
	struct image *b = img->backing;
	struct extent zero = { .kind = EXTENT_ZERO, .fd = -1, .hole = true };
	uint64_t in = 0;
	int r;

	if (b && offset < b->virtual_size) {
		in = b->virtual_size - offset;
		if (in > length)
			in = length;
		if (!buf && b->fmt->block_status)
			r = b->fmt->block_status(b, offset, in, out);
		else
			r = b->fmt->map_read(b, offset, in, buf, out);
		if (r < 0)
			return r;
	}
	zero.length = length - in;
	return extent_list_push(out, &zero);
}

/* ------------------------------------------------------------ dispatch */

int image_map_read(struct image *img, uint64_t offset, uint64_t length,
		   void *buf, struct extent_list *out)
{
	return img->fmt->map_read(img, offset, length, buf, out);
}

int image_block_status(struct image *img, uint64_t offset, uint64_t length,
		       struct extent_list *out)
{
	if (img->fmt->block_status)
		return img->fmt->block_status(img, offset, length, out);
	return img->fmt->map_read(img, offset, length, NULL, out);
}

int image_map_write(struct image *img, uint64_t offset, uint64_t length,
		    struct extent_list *out)
{
	if (img->readonly || !img->fmt->map_write)
		return -EROFS;
	return img->fmt->map_write(img, offset, length, out);
}

int image_flush(struct image *img)
{
	if (img->readonly)
		return 0;
	if (!img->fmt->flush)
		return image_datasync(img);
	return img->fmt->flush(img);
}

/* ------------------------------------------------------------ open */

/* NULL when vhd.c is not linked in. */
static const struct image_format *vhd_format(void)
{
	return &format_vhd;
}

static const struct image_format *format_by_name(const char *name)
{
	if (!strcmp(name, "raw"))
		return &format_raw;
	if (!strcmp(name, "qcow2"))
		return &format_qcow2;
	if (!strcmp(name, "vpc") || !strcmp(name, "vhd"))
		return vhd_format();
	return NULL;
}

static const struct image_format *format_probe(const uint8_t *head, size_t len)
{
	const struct image_format *vhd = vhd_format();

	if (format_qcow2.probe(head, len))
		return &format_qcow2;
	if (vhd && vhd->probe && vhd->probe(head, len))
		return vhd;
	return &format_raw;
}

/* The logical block size of the device under a filesystem, or 0. */
static unsigned int dev_logical_block_size(dev_t dev)
{
	static const char *const rel[] = { "queue", "../queue" };
	unsigned int v = 0;
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		FILE *f;

		snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/%s/logical_block_size",
			 major(dev), minor(dev), rel[i]);
		f = fopen(p, "re");
		if (!f)
			continue;
		if (fscanf(f, "%u", &v) != 1)
			v = 0;
		fclose(f);
		if (v)
			break;
	}
	return v;
}

static bool pow2_sane(unsigned int v)
{
	return v >= 1 && v <= 65536 && (v & (v - 1)) == 0;
}

static unsigned int find_dio_align(int fd, const struct stat *st)
{
	unsigned int v = 0;

#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		v = stx.stx_dio_offset_align;
		/* Memory alignment matters too: use the larger of both. */
		if (stx.stx_dio_mem_align > v)
			v = stx.stx_dio_mem_align;
	}
#endif
	if (!v && S_ISBLK(st->st_mode)) {
		int ssz;

		if (ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
			v = (unsigned int)ssz;
	}
	if (!v)
		v = dev_logical_block_size(st->st_dev);
	if (!pow2_sane(v))
		v = 4096;
	/* Keep buffers at least 512-aligned: cheap, and safe everywhere. */
	return v < 512 ? 512 : v;
}

static void image_free_one(struct image *img)
{
	if (img->priv && img->fmt && img->fmt->close)
		img->fmt->close(img);
	if (img->fd >= 0)
		close(img->fd);
	if (img->buffered_fd >= 0)
		close(img->buffered_fd);
	free(img->path);
	free(img);
}

void image_close(struct image *img)
{
	while (img) {
		struct image *next = img->backing;

		image_free_one(img);
		img = next;
	}
}

static int open_fds(struct image *img, bool no_direct)
{
	int flags = (img->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat st;

	img->buffered_fd = open(img->path, flags);
	if (img->buffered_fd < 0) {
		int r = -errno;

		log_error("cannot open '%s': %m", img->path);
		return r;
	}
	if (fstat(img->buffered_fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_error("cannot open '%s': not a regular file or block device",
			  img->path);
		return -EINVAL;
	}
	if (!no_direct) {
		img->fd = open(img->path, flags | O_DIRECT);
		if (img->fd >= 0) {
			img->direct = true;
		} else if (errno == EINVAL) {
			log_warn("'%s': the filesystem refuses O_DIRECT, using buffered I/O",
				 img->path);
		} else {
			int r = -errno;

			log_error("cannot open '%s': %m", img->path);
			return r;
		}
	}
	if (img->fd < 0) {
		img->fd = dup(img->buffered_fd);
		if (img->fd < 0)
			return -errno;
	}
	img->dio_align = img->direct ? find_dio_align(img->fd, &st) : 512;
	return 0;
}

static int probe_format(struct image *img, const struct image_format **ret)
{
	uint8_t head[PROBE_LEN] = { 0 };
	ssize_t r = pread_full(img->buffered_fd, head, sizeof(head), 0);

	if (r < 0) {
		log_error("cannot read '%s': %s", img->path, strerror((int)-r));
		return (int)r;
	}
	*ret = format_probe(head, (size_t)r);
	return 0;
}

/* Is realpath 'p' inside directory 'dir' (both canonical)? */
static bool path_inside(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return true;
	return strncmp(p, dir, n) == 0 && p[n] == '/';
}

/* Resolve a backing path written in image 'child' into a canonical path. */
static int resolve_backing(const struct image *child, const char *name,
			   const char *confine, char **ret)
{
	char *dir, *joined, *real;
	int r = 0;

	if (name[0] == '\0') {
		log_error("'%s': empty backing file name", child->path);
		return -EINVAL;
	}
	if (name[0] == '/') {
		joined = strdup(name);
	} else {
		dir = strdup(child->path);
		if (!dir)
			return -ENOMEM;
		*strrchr(dir, '/') = '\0';	/* child->path is canonical */
		if (asprintf(&joined, "%s/%s", dir[0] ? dir : "", name) < 0)
			joined = NULL;
		free(dir);
	}
	if (!joined)
		return -ENOMEM;
	real = realpath(joined, NULL);
	if (!real) {
		r = -errno;
		log_error("'%s': cannot resolve backing file '%s': %m",
			  child->path, name);
		free(joined);
		return r;
	}
	free(joined);
	if (!path_inside(real, confine)) {
		log_error("'%s': backing file '%s' is outside '%s', refused",
			  child->path, real, confine);
		free(real);
		return -EPERM;
	}
	*ret = real;
	return 0;
}

static int open_one(const char *real_path, bool readonly, bool no_direct,
		    const struct image_format *forced, unsigned int depth,
		    char **ret_backing, char **ret_backing_fmt,
		    struct image **ret)
{
	struct image *img = calloc(1, sizeof(*img));
	const struct image_format *fmt = forced;
	int r;

	if (!img)
		return -ENOMEM;
	img->fd = img->buffered_fd = -1;
	img->readonly = readonly;
	img->depth = depth;
	img->path = strdup(real_path);
	if (!img->path) {
		r = -ENOMEM;
		goto out_free;
	}
	r = open_fds(img, no_direct);
	if (r < 0)
		goto out_free;
	if (!fmt) {
		r = probe_format(img, &fmt);
		if (r < 0)
			goto out_free;
	}
	img->fmt = fmt;
	if (!readonly && !fmt->map_write) {
		log_error("'%s': format %s is read-only here", img->path,
			  fmt->name);
		r = -EROFS;
		goto out_free;
	}
	r = fmt->open(img, ret_backing, ret_backing_fmt);
	if (r < 0) {
		log_error("cannot open '%s' as %s: %s", img->path, fmt->name,
			  strerror(-r));
		goto out_free;
	}
	*ret = img;
	return 0;

out_free:
	image_free_one(img);
	return r;
}

static bool chain_has(const struct image *top, const char *path)
{
	for (; top; top = top->backing)
		if (!strcmp(top->path, path))
			return true;
	return false;
}

int image_open(const char *path, const struct image_open_options *opt,
	       struct image **ret)
{
	static const struct image_open_options defaults;
	const struct image_format *fmt = NULL;
	struct image *top = NULL, *last;
	char *real, *confine = NULL, *bpath = NULL, *bfmt = NULL;
	unsigned int max_depth;
	int r;

	if (!opt)
		opt = &defaults;
	max_depth = opt->max_depth ? opt->max_depth : DEFAULT_MAX_DEPTH;
	if (opt->format) {
		fmt = format_by_name(opt->format);
		if (!fmt) {
			log_error("unknown image format '%s'", opt->format);
			return -EINVAL;
		}
	}
	real = realpath(path, NULL);
	if (!real) {
		r = -errno;
		log_error("cannot open '%s': %m", path);
		return r;
	}
	if (opt->confine_dir) {
		confine = realpath(opt->confine_dir, NULL);
		if (!confine) {
			r = -errno;
			log_error("bad confinement directory '%s': %m",
				  opt->confine_dir);
			free(real);
			return r;
		}
	} else {
		confine = strdup(real);
		if (!confine) {
			free(real);
			return -ENOMEM;
		}
		*strrchr(confine, '/') = '\0';
		if (!confine[0])
			strcpy(confine, "/");
	}

	r = open_one(real, opt->readonly, opt->no_direct, fmt, 0, &bpath,
		     &bfmt, &top);
	free(real);
	last = top;
	while (r == 0 && bpath) {
		struct image *b = NULL;
		char *next_path = NULL, *next_fmt = NULL;

		fmt = NULL;
		if (bfmt && bfmt[0]) {
			fmt = format_by_name(bfmt);
			if (!fmt) {
				log_error("'%s': unsupported backing format '%s'",
					  last->path, bfmt);
				r = -ENOTSUP;
				break;
			}
		}
		if (last->depth + 1 > max_depth) {
			log_error("'%s': backing chain deeper than %u, refused",
				  path, max_depth);
			r = -ELOOP;
			break;
		}
		r = resolve_backing(last, bpath, confine, &real);
		if (r < 0)
			break;
		if (chain_has(top, real)) {
			log_error("'%s': backing chain loops through '%s'",
				  path, real);
			free(real);
			r = -ELOOP;
			break;
		}
		r = open_one(real, true, opt->no_direct, fmt, last->depth + 1,
			     &next_path, &next_fmt, &b);
		free(real);
		if (r < 0)
			break;
		last->backing = b;
		last = b;
		free(bpath);
		free(bfmt);
		bpath = next_path;
		bfmt = next_fmt;
	}
	free(bpath);
	free(bfmt);
	free(confine);
	if (r < 0) {
		image_close(top);
		return r;
	}
	*ret = top;
	return 0;
}
