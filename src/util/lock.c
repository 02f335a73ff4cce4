/* SPDX-License-Identifier: LGPL-2.1-only */
/* flock()-based locks with a timeout; the kernel drops them when we die. */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"

int lock_file(const char *path, bool exclusive, int timeout_ms)
{
	struct timespec start, now, nap = { 0, 1000 * 1000 };
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -errno;
	clock_gettime(CLOCK_MONOTONIC, &start);
	/* Poll with LOCK_NB: no signals to juggle, bounded wait. */
	for (;;) {
		long waited;

		if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int r = -errno;

			close(fd);
			return r;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * 1000 +
			 (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= timeout_ms) {
			close(fd);
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
		/* back off up to 20 ms between tries */
		if (nap.tv_nsec < 20 * 1000 * 1000)
			nap.tv_nsec *= 2;
	}
}

void unlock_file(int fd)
{
	if (fd >= 0)
		close(fd);
}
