/* SPDX-License-Identifier: LGPL-2.1-only */
/* Scope-bound cleanup for locals (gcc/clang cleanup attribute). */
#ifndef CLEANUP_H
#define CLEANUP_H

#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>
#include <stdio.h>

static inline void cleanup_free(void *p) { free(*(void **)p); }
static inline void cleanup_close(int *fd) { if (*fd >= 0) close(*fd); }
static inline void cleanup_closedir(DIR **d) { if (*d) closedir(*d); }
static inline void cleanup_fclose(FILE **f) { if (*f) fclose(*f); }

#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))
#define CLEANUP_CLOSEDIR __attribute__((cleanup(cleanup_closedir)))
#define CLEANUP_FCLOSE __attribute__((cleanup(cleanup_fclose)))

/* Hand a value out of a CLEANUP_ variable: returns it and disarms the cleanup. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })

#endif
