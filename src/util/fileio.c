/* SPDX-License-Identifier: LGPL-2.1-only */
/* Whole-file I/O and atomic replacement (write temp, fsync, rename, fsync dir). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"

#define TEMP_PREFIX ".tmp-"

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb;

			if (cap >= max) {
				free(buf);
				return -EFBIG;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = buf;
	if (ret_len)
		*ret_len = len;
	return 0;
}

int read_file_at(int dirfd, const char *name, size_t max, char **ret,
		 size_t *ret_len)
{
	CLEANUP_CLOSE int fd = openat(dirfd, name,
				      O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	return read_all(fd, max, ret, ret_len);
}

int fsync_dir_at(int dirfd, const char *path)
{
	CLEANUP_CLOSE int fd = openat(dirfd, path,
				      O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

int stage_file_at(int dirfd, const char *name, const void *buf, size_t len,
		  struct staged_file *ret)
{
	CLEANUP_CLOSE int fd = -1;
	uint64_t rnd;
	int r;

	if (strlen(name) >= sizeof(ret->name))
		return -ENAMETOOLONG;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	snprintf(ret->tmp, sizeof(ret->tmp), TEMP_PREFIX "%s-%016llx", name,
		 (unsigned long long)rnd);
	fd = openat(dirfd, ret->tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	r = write_all(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0) {
		int cfd = TAKE_FD(fd);

		if (close(cfd) < 0)
			r = -errno;
	}
	if (r < 0)
		(void)unlinkat(dirfd, ret->tmp, 0);
	return r;
}

int commit_staged_at(int dirfd, struct staged_file *files, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (renameat(dirfd, files[i].tmp, dirfd, files[i].name) < 0) {
			int r = -errno;

			abort_staged_at(dirfd, files + i, n - i);
			return r;
		}
	}
	return fsync_dir_at(dirfd, ".");
}

void abort_staged_at(int dirfd, struct staged_file *files, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		(void)unlinkat(dirfd, files[i].tmp, 0);
}

int write_file_atomic_at(int dirfd, const char *name, const void *buf,
			 size_t len)
{
	struct staged_file f;
	int r;

	r = stage_file_at(dirfd, name, buf, len, &f);
	if (r < 0)
		return r;
	return commit_staged_at(dirfd, &f, 1);
}

int write_file_atomic(const char *path, const void *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd, r;

	if (!slash)
		return write_file_atomic_at(AT_FDCWD, path, buf, len);
	if (!slash[1])
		return -EISDIR;
	if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path) >=
	    (int)sizeof(dir))
		return -ENAMETOOLONG;
	fd = open(slash == path ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write_file_atomic_at(fd, slash + 1, buf, len);
	close(fd);
	return r;
}

int unlink_durable_at(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return fsync_dir_at(dirfd, ".");
}

int mkdir_p(const char *path, mode_t mode)
{
	CLEANUP_FREE char *copy = strdup(path);
	char *p;

	if (!copy)
		return -ENOMEM;
	for (p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(copy, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int remove_stale_temps_at(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CLEANUP_CLOSEDIR DIR *d = NULL;
	struct dirent *de;
	int removed = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			removed++;
	}
	return removed;
}
