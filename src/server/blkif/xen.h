/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The blkif ring of a Xen frontend (blkif/xen.c, --blkif-xen PATH): the
 * backend directory PATH in xenstore, e.g.
 * /local/domain/0/backend/qdisk/<domid>/<devid>; its frontend and
 * frontend-id keys name the guest's side.
 */
#ifndef SERVER_BLKIF_XEN_H
#define SERVER_BLKIF_XEN_H

struct server;
struct blkif_xen;
struct xb_expect;

/* Publish the backend's keys, watch the frontend, register with srv's
 * event loop; *ret is freed by blkif_xen_close(), before server_release().
 * grant_cache: persistent grants kept mapped (0: the default, 2048). */
int blkif_xen_open(struct server *srv, const char *be_path,
		   unsigned int grant_cache, struct blkif_xen **ret);
/* Discovery: watch /local/domain/0/backend/qdisk/<e->domid> and serve
 * the device marked with e's volume (xb_claim_check), each time it is
 * plugged; *ret as for blkif_xen_open(). */
int blkif_xen_watch(struct server *srv, const struct xb_expect *e,
		    unsigned int grant_cache, struct blkif_xen **ret);
/* Release the ring and close the device (backend state 6): the server
 * stops in order.  NULL: no-op. */
void blkif_xen_close(struct blkif_xen *x);
/* A ring that cannot be connected writes its reason to path (atomically;
 * the datapath plugin's fallback mark); path must outlive x. */
void blkif_xen_set_fail_mark(struct blkif_xen *x, const char *path);

#endif
