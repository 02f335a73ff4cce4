/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The image-format engine interface of the datapath (ngdp-server).
 *
 * A format (raw, qcow2, vhd) is a *mapper and metadata manager*: it turns a
 * guest byte range into a list of extents on host files, keeps its metadata
 * (L1/L2/refcounts, BAT/bitmaps) in memory and writes it back on flush.
 * Data I/O itself is not done here: the server submits the DATA extents
 * asynchronously (libaio / io_uring, O_DIRECT).  Metadata I/O inside a format
 * is synchronous (pread/pwrite), and rare: at open, at allocation when a
 * copy-on-write fill is needed, and at flush.
 *
 * Threading: one image chain is used by one thread at a time.
 * Errors: every int-returning function returns 0 or -errno.
 */
#ifndef FORMATS_FORMAT_H
#define FORMATS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum extent_kind {
	EXTENT_DATA,	/* bytes live in host file 'fd' at 'host_offset' */
	EXTENT_ZERO,	/* reads as zeros, no I/O needed */
	EXTENT_FILLED,	/* the format already put the bytes in the caller's
			 * buffer (e.g. a decompressed qcow2 cluster) */
};

/* Extents cover the guest range in order, without gaps. */
struct extent {
	enum extent_kind kind;
	int fd;			/* EXTENT_DATA: the host file */
	uint64_t host_offset;	/* EXTENT_DATA: byte offset in fd */
	uint64_t length;	/* guest bytes covered */
	/*
	 * For block status (NBD base:allocation): true when the range is not
	 * allocated anywhere in the chain (a hole that reads as zero).
	 * EXTENT_ZERO with hole=false is an allocated "zero" cluster.
	 */
	bool hole;
};

struct extent_list {
	struct extent *v;
	size_t n, cap;
};

/* Append an extent, merging with the previous one when contiguous. */
int extent_list_push(struct extent_list *l, const struct extent *e);
void extent_list_clear(struct extent_list *l);	/* n = 0, keeps memory */
void extent_list_release(struct extent_list *l);

struct image;
struct dirty_bitmap;

struct image_format {
	const char *name;	/* "raw", "qcow2", "vpc" (qemu's name for VHD) */

	/* Required.  Does this header (first bytes of the file) belong to us? */
	bool (*probe)(const uint8_t *head, size_t len);

	/*
	 * Required.  Parse and validate the headers of img->fd and fill
	 * img->virtual_size and img->priv.  If the image names a backing
	 * file, set *ret_backing to its path exactly as written in the image
	 * (malloc'ed; the caller resolves and confines it) and, when the
	 * image says so, *ret_backing_format ("qcow2", "raw", "vpc"...).
	 * Must reject anything it does not fully understand with -ENOTSUP
	 * (unknown incompatible features, encryption, external data files)
	 * and corrupt or hostile headers with -EINVAL, never crash.
	 */
	int (*open)(struct image *img, char **ret_backing,
		    char **ret_backing_format);

	/*
	 * Required.  Map a guest read of [offset, offset+length) into extents.
	 * Unallocated ranges are resolved through img->backing (call
	 * image_map_backing_read(), which clips to its size) or reported as
	 * EXTENT_ZERO with hole=true.  The range is within virtual_size, and
	 * map_write, zero and discard run only on a writable image: the
	 * dispatch functions below check both.
	 * 'buf' is where the caller will place the bytes: a format that must
	 * produce bytes itself (compression) writes them at
	 * buf + (extent guest offset - offset) and emits EXTENT_FILLED.
	 * buf may be NULL (block status): then emit EXTENT_FILLED without
	 * filling anything.
	 */
	int (*map_read)(struct image *img, uint64_t offset, uint64_t length,
			void *buf, struct extent_list *out);

	/*
	 * Required unless read-only.  Map a guest write.  Allocates clusters /
	 * blocks as needed (in memory, persisted by flush()), performs any
	 * copy-on-write fill of the parts of a new cluster outside the range
	 * (synchronously), and returns EXTENT_DATA extents where the caller
	 * must write the data.  After it returns, map_read() of the range
	 * maps to the same host locations.
	 */
	int (*map_write)(struct image *img, uint64_t offset, uint64_t length,
			 struct extent_list *out);

	/*
	 * Optional.  Make the range read as zeros.  'may_unmap' allows
	 * deallocation (NBD TRIM / WRITE_ZEROES without NO_HOLE).  A format
	 * that cannot do better may return -ENOTSUP and the server writes
	 * zeros through map_write().
	 */
	int (*zero)(struct image *img, uint64_t offset, uint64_t length,
		    bool may_unmap);

	/* Optional.  Discard (NBD TRIM): may do nothing, must not corrupt. */
	int (*discard)(struct image *img, uint64_t offset, uint64_t length);

	/*
	 * Required unless read-only.  Make every completed data write and all
	 * metadata durable, in crash-safe order (see each format's comment).
	 * Called by the server only when no data write is in flight.
	 */
	int (*flush)(struct image *img);

	/* Required.  Free img->priv.  Writes nothing (flush first). */
	void (*close)(struct image *img);

	/*
	 * Optional (added after the first version; leave NULL if unneeded).
	 * Block status only: like map_read(buf = NULL) but may be more
	 * precise (raw: SEEK_DATA/SEEK_HOLE holes are reported hole=true).
	 * Used by image_block_status() and for backing files.
	 */
	int (*block_status)(struct image *img, uint64_t offset,
			    uint64_t length, struct extent_list *out);

	/*
	 * Optional (image_skip_backing()).  Rewrite img's header so that its
	 * backing file is new_backing (img->backing->backing, already open),
	 * or none when NULL.  Crash-ordered (a crash leaves the old or the
	 * new header) and durable when it returns; the in-memory state may
	 * be stale afterwards (the caller closes img).
	 */
	int (*set_backing)(struct image *img, const struct image *new_backing);

	/*
	 * Optional: persistent dirty bitmaps (bitmap.h image_bitmap_*; the
	 * dispatch there checks names, sizes and read-only images first).
	 * NULL: the format keeps none (-ENOTSUP).
	 */
	int (*bitmap_load)(struct image *img, const char *name,
			   struct dirty_bitmap *bm, bool *in_use);
	int (*bitmap_store)(struct image *img, const char *name,
			    const struct dirty_bitmap *bm, bool in_use);
	int (*bitmap_remove)(struct image *img, const char *name);
	int (*bitmap_list)(struct image *img, char ***ret);
};

struct image {
	const struct image_format *fmt;
	char *path;			/* as opened (resolved) */
	int fd;				/* O_DIRECT when possible */
	int buffered_fd;		/* same file without O_DIRECT, for
					 * unaligned metadata I/O */
	int dirfd;			/* O_PATH: the directory holding the
					 * image (sidecar files) */
	bool readonly;
	bool direct;			/* fd has O_DIRECT */
	unsigned int dio_align;		/* offset/length alignment fd needs */
	uint64_t virtual_size;
	struct image *backing;		/* next in chain, or NULL */
	unsigned int depth;		/* 0 for the top image */
	bool own_only;			/* image_map_read_own() is mapping */
	void *priv;			/* format private state */
};

struct image_open_options {
	bool readonly;			/* open the top read-only too */
	bool no_direct;			/* do not try O_DIRECT */
	/*
	 * Every image of the chain is opened relative to the directory of
	 * the top image (openat on one directory fd), with O_NOFOLLOW, and
	 * must be a regular file; a backing name written in an image must
	 * be a plain file name in that directory (no '/', no "..").
	 * confine_dir, when set, must be that very directory (the SR's
	 * images directory), else the open is refused.
	 * A chain longer than max_depth (default 64) or with a loop is
	 * refused.
	 */
	const char *confine_dir;
	unsigned int max_depth;
	/*
	 * The format of the top image ("raw", "qcow2", "vpc"): required.
	 * Backing images take theirs from their child's header (the qcow2
	 * backing format extension; VHD parents are VHD), never from their
	 * content; a qcow2 backing file without a format is refused.
	 */
	const char *format;
	/*
	 * Tools only (ngdp-imgio): with format NULL, guess the top image's
	 * format from its first bytes.  Never for a guest-writable image: a
	 * guest can write any header into a raw disk.
	 */
	bool probe_top;
};

/* Open a whole chain.  On error *ret is untouched and a message is logged. */
int image_open(const char *path, const struct image_open_options *opt,
	       struct image **ret);
void image_close(struct image *img);	/* closes the whole chain */

/*
 * Dispatch: callers go through these, not through img->fmt.  Each checks
 * its range before the format sees it: [offset, offset+length) must lie
 * within img->virtual_size (length 0 at offset virtual_size is fine), else
 * -EINVAL; nothing is clipped.  Those that change the image return -EROFS
 * on a read-only image (checked first).
 */
int image_map_read(struct image *img, uint64_t offset, uint64_t length,
		   void *buf, struct extent_list *out);
int image_map_write(struct image *img, uint64_t offset, uint64_t length,
		    struct extent_list *out);
/*
 * map_read of what img holds itself: ranges it leaves to its backing file
 * are EXTENT_ZERO hole=true, as if it had none (coalescing copies an
 * image's own data into its parent).  The backing file stays attached, so
 * formats that check it on first use (a VHD its parent's uuid) still do.
 */
int image_map_read_own(struct image *img, uint64_t offset, uint64_t length,
		       void *buf, struct extent_list *out);
/*
 * Coalescing a hidden parent down into its child ("pull", issue 13):
 *
 * image_pull_backing copies into img what img->backing holds itself (its
 * own data, not what lies deeper) in [offset, offset+length), wherever img
 * holds nothing itself.  Ranges img holds itself are never touched, so a
 * newer guest write always wins.  Allocated zeros of the backing are
 * written as zeros only when something lies below the backing.  After a
 * pull of the whole disk, img reads the same with img->backing->backing
 * as its backing file.  Synchronous; img writable with a backing file.
 * *copied (optional) grows by the bytes written into img.  Not durable
 * until image_flush().
 *
 * image_skip_backing rewrites img's header so its backing file becomes
 * img->backing->backing (or none, when that is NULL): the caller pulled
 * all of img->backing first and flushed.  Crash-ordered and durable when
 * it returns: a crash leaves either the old or the new header.  The
 * in-memory chain is stale afterwards: close img and open it again.
 * -ENOTSUP for formats without backing files (raw).
 */
int image_pull_backing(struct image *img, uint64_t offset, uint64_t length,
		       uint64_t *copied);
int image_skip_backing(struct image *img);

/* fmt->zero; -ENOTSUP when the format has none (write zeros instead). */
int image_zero(struct image *img, uint64_t offset, uint64_t length,
	       bool may_unmap);
/* fmt->discard; -ENOTSUP when the format has none (a hint: ignore it). */
int image_discard(struct image *img, uint64_t offset, uint64_t length);
/* Does nothing (returns 0) on a read-only image. */
int image_flush(struct image *img);

/* Block status of [offset, offset+length): fmt->block_status or map_read. */
int image_block_status(struct image *img, uint64_t offset, uint64_t length,
		       struct extent_list *out);

/*
 * For formats: map [offset, offset+length) of img through img->backing,
 * clipped to the backing's virtual size; the rest (or everything, without
 * a backing file) is EXTENT_ZERO hole=true.  'buf' as in map_read.
 */
int image_map_backing_read(struct image *img, uint64_t offset,
			   uint64_t length, void *buf, struct extent_list *out);

/*
 * Synchronous read of guest bytes through the whole chain (map_read, then
 * pread of the DATA extents).  Beyond virtual_size reads zeros.  Used for
 * copy-on-write fills and by tools; not for the fast path.
 */
int image_read(struct image *img, uint64_t offset, uint64_t length,
	       void *buf);

/*
 * Synchronous helpers for formats' metadata I/O: full-length pread/pwrite
 * that handle O_DIRECT alignment (through buffered_fd when unaligned).
 * Return 0 or -errno (-EIO on a short read past EOF is reported as -EINVAL:
 * a header that points beyond the file is corrupt).
 */
int image_pread(struct image *img, void *buf, size_t len, uint64_t offset);
int image_pwrite(struct image *img, const void *buf, size_t len,
		 uint64_t offset);
int image_datasync(struct image *img);

extern const struct image_format format_raw;
extern const struct image_format format_qcow2;
extern const struct image_format format_vhd;

/* The sidecar bitmap file ("<image>.cbt") of raw and VHD images. */
int sidecar_bitmap_load(struct image *img, const char *name,
			struct dirty_bitmap *bm, bool *in_use);
int sidecar_bitmap_store(struct image *img, const char *name,
			 const struct dirty_bitmap *bm, bool in_use);
int sidecar_bitmap_remove(struct image *img, const char *name);
int sidecar_bitmap_list(struct image *img, char ***ret);

#endif
