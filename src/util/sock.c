/* SPDX-License-Identifier: LGPL-2.1-only */
#include <errno.h>
#include <sys/socket.h>

#include "sock.h"

int sock_grow_sndbuf(int fd, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes,
		       sizeof(bytes)) == 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) == 0)
		return 0;
	return -errno;
}
