/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Scatter-gather vectors (struct iovec): the pieces of a byte stream that
 * lives in several buffers, such as a blkif request's segments in the
 * frontend's granted pages.  Positions and lengths are in bytes of the
 * stream.  Libc only, no allocation.
 */
#ifndef UTIL_IOVEC_H
#define UTIL_IOVEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* Bytes the vector covers. */
size_t iov_bytes(const struct iovec *iov, int niov);

/*
 * The bytes [pos, pos + len) of the stream src, as at most cap pieces in
 * out.  Returns how many, or -1 when the range is not inside src or needs
 * more than cap pieces (out is then undefined).  len 0 gives 0.
 */
int iov_slice(const struct iovec *src, int nsrc, size_t pos, size_t len,
	      struct iovec *out, int cap);

/*
 * Drop the first n bytes of the vector in place: *iov and *niov move past
 * the pieces consumed, the first one left starts later.  n must not exceed
 * the vector's bytes.
 */
void iov_advance(struct iovec **iov, int *niov, size_t n);

/* Set the bytes [pos, pos + len) of the stream to c (clipped to it). */
void iov_memset(const struct iovec *iov, int niov, size_t pos, int c,
		size_t len);

/* Copy len bytes of buf into the stream from pos on (clipped to it). */
void iov_from_buf(const struct iovec *iov, int niov, size_t pos,
		  const void *buf, size_t len);

/* Is every piece's address and length a multiple of align (a power of
 * two)?  What O_DIRECT asks of a vector's buffers. */
bool iov_aligned(const struct iovec *iov, int niov, size_t align);

/*
 * Append [base, base + len) to the vector out[0..*n), merging it into the
 * last piece when it continues it.  Returns false when a new piece would
 * need more than cap.
 */
bool iov_push(struct iovec *out, int *n, int cap, void *base, size_t len);

#endif
