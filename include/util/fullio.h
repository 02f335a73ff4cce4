/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Whole-length positioned I/O and aligned buffers (libc only).
 *
 * pread(2)/pwrite(2) may transfer less than asked (signals, some
 * filesystems, the end of a file): these loop until the whole length is
 * done, retrying EINTR.  Every function returns 0 or -errno unless said
 * otherwise.
 */
#ifndef UTIL_FULLIO_H
#define UTIL_FULLIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Read up to len bytes at offset: returns the number of bytes read, fewer
 * than len only when the end of the file came first, or -errno.
 */
ssize_t pread_upto(int fd, void *buf, size_t len, uint64_t offset);

/* Read exactly len bytes at offset; -ENODATA when the file ends first. */
int pread_full(int fd, void *buf, size_t len, uint64_t offset);

/* Write exactly len bytes at offset; -EIO if pwrite makes no progress. */
int pwrite_full(int fd, const void *buf, size_t len, uint64_t offset);

/*
 * A buffer aligned to 'align' (a power of two, at least sizeof(void *)),
 * e.g. for O_DIRECT.  Its size is len rounded up to a multiple of align
 * (at least align bytes), so whole-buffer direct I/O stays aligned.
 * aligned_zalloc also zeroes it.  NULL with errno set (ENOMEM, EINVAL) on
 * failure; release with free().
 */
void *aligned_malloc(size_t align, size_t len);
void *aligned_zalloc(size_t align, size_t len);

#endif
