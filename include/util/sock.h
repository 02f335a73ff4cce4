/* SPDX-License-Identifier: LGPL-2.1-only */
/* Socket options shared by the server and the datapath plugin. */
#ifndef UTIL_SOCK_H
#define UTIL_SOCK_H

/*
 * Give a stream socket a send buffer of `bytes`, so that a whole large
 * message (a 1 MiB NBD payload) goes out in one call instead of in pieces
 * that each wait for the peer.  SO_SNDBUFFORCE passes net.core.wmem_max
 * for root; otherwise the kernel caps SO_SNDBUF there.  Returns 0 or
 * -errno; failing only costs speed.
 */
int sock_grow_sndbuf(int fd, int bytes);

#endif
