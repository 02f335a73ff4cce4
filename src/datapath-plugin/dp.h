/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The ngdp datapath plugin: xapi's Datapath.* calls for volumes whose URI
 * is ngdp://<SR mount>/<volume key>.  One ngdp-server process serves one
 * active volume; each domain that activates it gets its own socket name
 * (a symlink to the server's read-write or read-only socket), so read-only
 * and read-write users coexist on one process.
 *
 * State:
 *   <SR>/.sr/active/<key>.json   activation record: host, pid, starttime,
 *                                sockets, and the domains using it (mode)
 *   <run>/<key>/rw.sock ro.sock ctl.sock   the server's sockets
 *   <run>/<key>/d-<domain>.sock  per-domain link handed to xapi by attach
 *   <SR>/images/.np-<key>.qcow2  reset-on-boot overlay (Datapath.open with
 *                                persistent=false), discarded by close
 */
#ifndef DATAPATH_DP_H
#define DATAPATH_DP_H

#include <limits.h>

#include "call.h"
#include "sr.h"

struct dp_target {
	char uri[PATH_MAX + 64];
	char sr_path[PATH_MAX];
	char key[UUID_STR_LEN];
	char domain[130];
	char run_dir[PATH_MAX];		/* <run>/<key> */
};

/* Parse and check "uri" (and "domain" when want_domain). */
int dp_arg_target(struct call *c, bool want_domain, struct dp_target *ret);

/* Server process management (server.c). */
int dp_server_start(struct call *c, struct sr *sr, const struct dp_target *t,
		    const char *image_path, bool readonly, json_object **ret_rec);
int dp_server_stop(struct call *c, json_object *rec);
/* The image the server must open: the volume's leaf, or its overlay. */
int dp_volume_image(struct call *c, struct sr *sr, const char *key,
		    char *out, size_t len, bool *nonpersistent);
void dp_overlay_path(struct sr *sr, const char *key, char *out, size_t len);

/* Kernel NBD client (nbd-kernel.c). */
bool nbd_kernel_available(char *why, size_t len);
int nbd_kernel_reserve(const struct dp_target *t, int *ret_index);
int nbd_kernel_connect(const struct dp_target *t, int index,
		       const char *socket_path, const char *export_name,
		       unsigned int connections);
int nbd_kernel_disconnect(int index);
bool nbd_kernel_connected(int index);	/* the kernel has sockets for it */
void nbd_kernel_release(const struct dp_target *t);
int nbd_kernel_index(const struct dp_target *t);

int dp_query(struct call *c, json_object **ret);
int dp_open(struct call *c, json_object **ret);
int dp_close(struct call *c, json_object **ret);
int dp_attach(struct call *c, json_object **ret);
int dp_activate(struct call *c, json_object **ret);
int dp_activate_readonly(struct call *c, json_object **ret);
int dp_deactivate(struct call *c, json_object **ret);
int dp_detach(struct call *c, json_object **ret);

#endif
