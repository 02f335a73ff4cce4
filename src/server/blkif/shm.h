/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The blkif ring over shared memory (blkif/shm.c, --blkif-shm PATH): the
 * test transport of include/proto/blkif-shm.h.  One frontend at a time.
 */
#ifndef SERVER_BLKIF_SHM_H
#define SERVER_BLKIF_SHM_H

struct server;
struct blkif_shm;

/* Listen on path and register with srv's event loop; *ret is freed by
 * blkif_shm_close(), before server_release(). */
int blkif_shm_listen(struct server *srv, const char *path,
		     struct blkif_shm **ret);
/* Detach the ring, close the listener (unlinks it); NULL is a no-op. */
void blkif_shm_close(struct blkif_shm *shm);

#endif
