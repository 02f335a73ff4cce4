/* SPDX-License-Identifier: LGPL-2.1-only */
/* Whole-length pread/pwrite and aligned allocation (include/util/fullio.h). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fullio.h"

ssize_t pread_upto(int fd, void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;

	if (len > SSIZE_MAX || offset > (uint64_t)INT64_MAX - len)
		return -EINVAL;
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

int pread_full(int fd, void *buf, size_t len, uint64_t offset)
{
	ssize_t r = pread_upto(fd, buf, len, offset);

	if (r < 0)
		return (int)r;
	return (size_t)r == len ? 0 : -ENODATA;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;

	if (len > SSIZE_MAX || offset > (uint64_t)INT64_MAX - len)
		return -EINVAL;
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

void *aligned_malloc(size_t align, size_t len)
{
	void *p;
	int r;

	if (align < sizeof(void *) || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	if (len > SIZE_MAX - (align - 1)) {
		errno = ENOMEM;
		return NULL;
	}
	len = len ? (len + align - 1) & ~(align - 1) : align;
	r = posix_memalign(&p, align, len);
	if (r) {
		errno = r;
		return NULL;
	}
	return p;
}

void *aligned_zalloc(size_t align, size_t len)
{
	void *p = aligned_malloc(align, len);

	if (p)
		memset(p, 0, len ? (len + align - 1) & ~(align - 1) : align);
	return p;
}
