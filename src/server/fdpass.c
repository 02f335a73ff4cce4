/* SPDX-License-Identifier: LGPL-2.1-only */
/* Receiving file descriptors passed with SCM_RIGHTS. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"

ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds,
		    unsigned int max, unsigned int *nfds, bool *truncated)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*nfds = 0;
	*truncated = false;
	if (max > FDPASS_MAX)
		max = FDPASS_MAX;
	n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		size_t k, cnt;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int),
			       sizeof(int));
			if (*nfds < max) {
				fds[(*nfds)++] = fd;
			} else {
				close(fd);
				*truncated = true;
			}
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		*truncated = true;
	return n;
}

void fdpass_close(int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		close(fds[i]);
}
