/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Receiving file descriptors passed with SCM_RIGHTS (fdpass.c), shared by
 * the import socket and the blkif shared-memory socket.
 */
#ifndef SERVER_FDPASS_H
#define SERVER_FDPASS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The most fds one message may bring; extra ones are received and closed. */
#define FDPASS_MAX 8

/*
 * One recvmsg (non-blocking, fds close-on-exec) into buf: returns the
 * bytes read (0: end of file), or -errno (-EAGAIN: nothing yet).  The fds
 * that came, up to max (<= FDPASS_MAX), are in fds[0..*nfds) and belong
 * to the caller, also on errors; *truncated says that more were sent than
 * could be taken (they were closed).
 */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds,
		    unsigned int max, unsigned int *nfds, bool *truncated);

/* Close fds[0..n). */
void fdpass_close(int *fds, unsigned int n);

#endif
