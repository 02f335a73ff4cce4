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

#include "bytes.h"
#include "formats/format.h"
#include "fullio.h"
#include "log.h"

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
		r = pread_upto(img->fd, buf, len, offset);
		if (r < 0)
			return (int)r;
		return (size_t)r == len ? 0 : -EINVAL;
	}
	/* Unaligned for O_DIRECT: read the covering aligned range. */
	start = round_down(offset, a);
	end = round_up(offset + len, a);
	if (end - start > SIZE_MAX / 2)
		return -EINVAL;
	bounce = aligned_malloc(a, end - start);
	if (!bounce)
		return -ENOMEM;
	r = pread_upto(img->fd, bounce, end - start, start);
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

	if (b && !img->own_only && offset < b->virtual_size) {
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

/*
 * Every dispatch entry point checks its arguments before the format sees
 * them, as nbdkit's backend does: [offset, offset + length) must lie in
 * the virtual size (computed without overflow), and nothing that changes
 * the image runs on a read-only one.  The formats may rely on both.
 */
static bool range_ok(const struct image *img, uint64_t offset,
		     uint64_t length)
{
	return offset <= img->virtual_size &&
	       length <= img->virtual_size - offset;
}

int image_map_read(struct image *img, uint64_t offset, uint64_t length,
		   void *buf, struct extent_list *out)
{
	if (!range_ok(img, offset, length))
		return -EINVAL;
	return img->fmt->map_read(img, offset, length, buf, out);
}

int image_map_read_own(struct image *img, uint64_t offset, uint64_t length,
		       void *buf, struct extent_list *out)
{
	int r;

	if (!range_ok(img, offset, length))
		return -EINVAL;
	img->own_only = true;
	r = img->fmt->map_read(img, offset, length, buf, out);
	img->own_only = false;
	return r;
}

int image_block_status(struct image *img, uint64_t offset, uint64_t length,
		       struct extent_list *out)
{
	if (!range_ok(img, offset, length))
		return -EINVAL;
	if (img->fmt->block_status)
		return img->fmt->block_status(img, offset, length, out);
	return img->fmt->map_read(img, offset, length, NULL, out);
}

int image_map_write(struct image *img, uint64_t offset, uint64_t length,
		    struct extent_list *out)
{
	if (img->readonly || !img->fmt->map_write)
		return -EROFS;
	if (!range_ok(img, offset, length))
		return -EINVAL;
	return img->fmt->map_write(img, offset, length, out);
}

int image_zero(struct image *img, uint64_t offset, uint64_t length,
	       bool may_unmap)
{
	if (img->readonly)
		return -EROFS;
	if (!range_ok(img, offset, length))
		return -EINVAL;
	if (!img->fmt->zero)
		return -ENOTSUP;
	return img->fmt->zero(img, offset, length, may_unmap);
}

int image_discard(struct image *img, uint64_t offset, uint64_t length)
{
	if (img->readonly)
		return -EROFS;
	if (!range_ok(img, offset, length))
		return -EINVAL;
	if (!img->fmt->discard)
		return -ENOTSUP;
	return img->fmt->discard(img, offset, length);
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

static const struct image_format *format_by_name(const char *name)
{
	if (!strcmp(name, "raw"))
		return &format_raw;
	if (!strcmp(name, "qcow2"))
		return &format_qcow2;
	if (!strcmp(name, "vpc") || !strcmp(name, "vhd"))
		return &format_vhd;
	return NULL;
}

static const struct image_format *format_probe(const uint8_t *head, size_t len)
{
	if (format_qcow2.probe(head, len))
		return &format_qcow2;
	if (format_vhd.probe(head, len))
		return &format_vhd;
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
	return is_power_of_2(v) && v <= 65536;
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
	if (img->dirfd >= 0)
		close(img->dirfd);
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

/*
 * Open 'name' in directory 'dirfd' without following a symlink, as a
 * regular file, and a second descriptor on the same inode with O_DIRECT.
 */
static int open_fds(struct image *img, int dirfd, const char *name,
		    bool no_direct, struct stat *ret_st)
{
	int flags = (img->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
		    O_NOFOLLOW | O_NOCTTY;
	struct stat st, st2;
	int r;

	img->buffered_fd = openat(dirfd, name, flags | O_NONBLOCK);
	if (img->buffered_fd < 0) {
		r = -errno;
		if (errno == ELOOP)
			log_error("cannot open '%s': it is a symbolic link, refused",
				  img->path);
		else
			log_error("cannot open '%s': %m", img->path);
		return r;
	}
	if (fstat(img->buffered_fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		log_error("cannot open '%s': not a regular file, refused",
			  img->path);
		return -EINVAL;
	}
	/* O_NONBLOCK only kept a FIFO from blocking the open */
	if (fcntl(img->buffered_fd, F_SETFL, 0) < 0)
		return -errno;
	if (!no_direct) {
		img->fd = openat(dirfd, name, flags | O_DIRECT);
		if (img->fd >= 0) {
			img->direct = true;
			/* the name may have been swapped in between */
			if (fstat(img->fd, &st2) < 0)
				return -errno;
			if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
				log_error("cannot open '%s': the file changed while being opened",
					  img->path);
				return -EBUSY;
			}
		} else if (errno == EINVAL) {
			log_warn("'%s': the filesystem refuses O_DIRECT, using buffered I/O",
				 img->path);
		} else {
			r = -errno;
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
	*ret_st = st;
	return 0;
}

static int probe_format(struct image *img, const struct image_format **ret)
{
	uint8_t head[PROBE_LEN] = { 0 };
	ssize_t r = pread_upto(img->buffered_fd, head, sizeof(head), 0);

	if (r < 0) {
		log_error("cannot read '%s': %s", img->path, strerror((int)-r));
		return (int)r;
	}
	*ret = format_probe(head, (size_t)r);
	return 0;
}

/*
 * A backing file name as written in an image must be a plain file name:
 * the chain lives in one directory (the SR's images), and nothing else is
 * reachable from a name an image's owner could have written.
 */
static bool plain_name(const char *name)
{
	return name[0] && !strchr(name, '/') && strcmp(name, ".") &&
	       strcmp(name, "..");
}

/* Identity of every image of the chain, for loop detection. */
struct ident {
	dev_t dev;
	ino_t ino;
};

static int open_one(int dirfd, const char *dir, const char *name,
		    bool readonly, bool no_direct,
		    const struct image_format *fmt, bool probe,
		    unsigned int depth, char **ret_backing,
		    char **ret_backing_fmt, struct ident *ret_id,
		    struct image **ret)
{
	struct image *img = calloc(1, sizeof(*img));
	struct stat st = { 0 };
	int r;

	if (!img)
		return -ENOMEM;
	img->fd = img->buffered_fd = -1;
	img->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (img->dirfd < 0) {
		free(img);
		return -errno;
	}
	img->readonly = readonly;
	img->depth = depth;
	if (asprintf(&img->path, "%s/%s", strcmp(dir, "/") ? dir : "",
		     name) < 0) {
		img->path = NULL;
		r = -ENOMEM;
		goto out_free;
	}
	r = open_fds(img, dirfd, name, no_direct, &st);
	if (r < 0)
		goto out_free;
	if (!fmt && probe) {
		r = probe_format(img, &fmt);
		if (r < 0)
			goto out_free;
	}
	if (!fmt) {
		log_error("'%s': no image format given, refused", img->path);
		r = -EINVAL;
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
	ret_id->dev = st.st_dev;
	ret_id->ino = st.st_ino;
	*ret = img;
	return 0;

out_free:
	image_free_one(img);
	return r;
}

/* Open the directory of 'path' (following links: it is the caller's) and
 * split off the file name, which must be a plain name. */
static int open_dir_of(const char *path, int *ret_fd, char **ret_dir,
		       char **ret_name)
{
	const char *slash = strrchr(path, '/');
	char *dir, *real;
	int fd;

	if (slash)
		dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
	else
		dir = strdup(".");
	if (!dir)
		return -ENOMEM;
	*ret_name = strdup(slash ? slash + 1 : path);
	if (!*ret_name) {
		free(dir);
		return -ENOMEM;
	}
	if (!plain_name(*ret_name)) {
		log_error("cannot open '%s': not a file name", path);
		free(dir);
		free(*ret_name);
		return -EINVAL;
	}
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		log_error("cannot open the directory of '%s': %m", path);
		free(dir);
		free(*ret_name);
		return r;
	}
	/* canonical, for messages and the server's status */
	real = realpath(dir, NULL);
	if (real) {
		free(dir);
		dir = real;
	}
	*ret_fd = fd;
	*ret_dir = dir;
	return 0;
}

/* Is directory fd the directory 'confine'? */
static int check_confined(int dirfd, const char *dir, const char *confine)
{
	struct stat a, b;

	if (fstat(dirfd, &a) < 0)
		return -errno;
	if (stat(confine, &b) < 0) {
		int r = -errno;

		log_error("bad confinement directory '%s': %m", confine);
		return r;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		log_error("'%s' is not the directory '%s', refused", dir,
			  confine);
		return -EPERM;
	}
	return 0;
}

int image_open(const char *path, const struct image_open_options *opt,
	       struct image **ret)
{
	static const struct image_open_options defaults;
	const struct image_format *fmt = NULL;
	struct image *top = NULL, *last;
	struct ident *ids = NULL;
	char *dir = NULL, *name = NULL, *bpath = NULL, *bfmt = NULL;
	unsigned int max_depth;
	int dirfd = -1, r;

	if (!opt)
		opt = &defaults;
	max_depth = opt->max_depth ? opt->max_depth : DEFAULT_MAX_DEPTH;
	if (opt->format) {
		fmt = format_by_name(opt->format);
		if (!fmt) {
			log_error("unknown image format '%s'", opt->format);
			return -EINVAL;
		}
	} else if (!opt->probe_top) {
		log_error("cannot open '%s': no image format given", path);
		return -EINVAL;
	}
	ids = calloc((size_t)max_depth + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	r = open_dir_of(path, &dirfd, &dir, &name);
	if (r < 0) {
		free(ids);
		return r;
	}
	if (opt->confine_dir)
		r = check_confined(dirfd, dir, opt->confine_dir);
	if (r == 0)
		r = open_one(dirfd, dir, name, opt->readonly, opt->no_direct,
			     fmt, opt->probe_top, 0, &bpath, &bfmt, &ids[0],
			     &top);
	last = top;
	while (r == 0 && bpath) {
		struct image *b = NULL;
		char *next_path = NULL, *next_fmt = NULL;
		unsigned int i, depth = last->depth + 1;

		if (!bfmt || !bfmt[0]) {
			log_error("'%s' names a backing file but not its format; refusing to guess (set it with 'qemu-img rebase -u -F FMT')",
				  last->path);
			r = -EINVAL;
			break;
		}
		fmt = format_by_name(bfmt);
		if (!fmt) {
			log_error("'%s': unsupported backing format '%s'",
				  last->path, bfmt);
			r = -ENOTSUP;
			break;
		}
		if (depth > max_depth) {
			log_error("'%s': backing chain deeper than %u, refused",
				  path, max_depth);
			r = -ELOOP;
			break;
		}
		if (!plain_name(bpath)) {
			log_error("'%s': backing file '%s' is not a file name in '%s', refused",
				  last->path, bpath, dir);
			r = -EPERM;
			break;
		}
		r = open_one(dirfd, dir, bpath, true, opt->no_direct, fmt,
			     false, depth, &next_path, &next_fmt, &ids[depth],
			     &b);
		if (r < 0)
			break;
		last->backing = b;
		last = b;
		for (i = 0; i < depth; i++)
			if (ids[i].dev == ids[depth].dev &&
			    ids[i].ino == ids[depth].ino)
				break;
		if (i < depth) {
			log_error("'%s': backing chain loops through '%s'",
				  path, b->path);
			free(next_path);
			free(next_fmt);
			r = -ELOOP;
			break;
		}
		free(bpath);
		free(bfmt);
		bpath = next_path;
		bfmt = next_fmt;
	}
	free(bpath);
	free(bfmt);
	free(name);
	free(dir);
	free(ids);
	if (dirfd >= 0)
		close(dirfd);
	if (r < 0) {
		image_close(top);
		return r;
	}
	*ret = top;
	return 0;
}
