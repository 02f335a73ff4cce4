/* SPDX-License-Identifier: LGPL-2.1-only */
/* Per-SR lock: flock() on a lock file, released by the kernel on exit. */
#ifndef LOCK_H
#define LOCK_H

#include <stdbool.h>

/*
 * Open (creating if needed) 'path' and take a shared or exclusive flock,
 * waiting at most timeout_ms.  Returns the fd (>= 0) or -errno
 * (-ETIMEDOUT when the wait ran out).
 */
int lock_file(const char *path, bool exclusive, int timeout_ms);
void unlock_file(int fd);

#endif
