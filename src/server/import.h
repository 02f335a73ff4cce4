/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The import socket (Datapath.import_activate): a client connects, passes
 * one connected stream socket with SCM_RIGHTS (and a few bytes of text,
 * xapi's datapath name), and the server serves NBD on the passed socket.
 */
#ifndef SERVER_IMPORT_H
#define SERVER_IMPORT_H

struct server;
struct import;

/* Listen on path and register with srv's event loop; *ret is freed by
 * import_close(), before server_release(). */
int import_listen(struct server *srv, const char *path, struct import **ret);
/* Close the listener and the connections still waiting to pass their fd;
 * NULL is a no-op. */
void import_close(struct import *imp);

#endif
