/* SPDX-License-Identifier: LGPL-2.1-only */
/* Whole-file reads and crash-safe (atomic) writes relative to a directory fd. */
#ifndef FILEIO_H
#define FILEIO_H

#include <stddef.h>
#include <sys/types.h>

int write_all(int fd, const void *buf, size_t len);
/* Read all of fd (at most max bytes, -EFBIG beyond); *ret is NUL-terminated. */
int read_all(int fd, size_t max, char **ret, size_t *ret_len);
int read_file_at(int dirfd, const char *name, size_t max, char **ret,
		 size_t *ret_len);

/*
 * Atomic replace: write ".tmp-<name>-XXXXXX", fsync, rename over name,
 * fsync the directory.  A crash leaves either the old or the new content.
 */
int write_file_atomic_at(int dirfd, const char *name, const void *buf,
			 size_t len);
/* The same for a path ("name" alone: the current directory). */
int write_file_atomic(const char *path, const void *buf, size_t len);

/*
 * Two-phase form, to publish several files with one directory fsync:
 * stage writes and fsyncs a temp file; commit renames the staged files in
 * the order given, then fsyncs the directory once.  Renames in one
 * directory reach the journal in order, so a crash leaves a prefix.
 */
struct staged_file {
	char tmp[300];
	char name[256];
};
int stage_file_at(int dirfd, const char *name, const void *buf, size_t len,
		  struct staged_file *ret);
int commit_staged_at(int dirfd, struct staged_file *files, size_t n);
void abort_staged_at(int dirfd, struct staged_file *files, size_t n);

int fsync_dir_at(int dirfd, const char *path);	/* path may be "." */
int unlink_durable_at(int dirfd, const char *name);	/* unlink + fsync dir */
int mkdir_p(const char *path, mode_t mode);
/* Remove files named ".tmp-*" left by crashed writers (call under lock). */
int remove_stale_temps_at(int dirfd);

#endif
