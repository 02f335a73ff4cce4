/* SPDX-License-Identifier: LGPL-2.1-only */
/* Listening sockets (listen.c): a Unix socket path or a TCP address. */
#ifndef SERVER_LISTEN_H
#define SERVER_LISTEN_H

/* A stale socket file nobody listens on is replaced; mode 0600. */
int listen_unix(const char *path, int *ret_fd);
/* addr: ADDR:PORT */
int listen_tcp(const char *addr, int *ret_fd);

#endif
