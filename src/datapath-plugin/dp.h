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
 *   <run>/<S>/<key>/rw.sock ro.sock ctl.sock   the server's sockets, where
 *                                <S> is the SR's uuid, or as much of its
 *                                start as is unique among this host's SRs
 *                                (<run>/<S>/sr names the whole uuid): a
 *                                socket path has only 107 bytes
 *   <run>/<S>/<key>/d-<domain>.sock  per-domain link handed to xapi by attach
 *   <run>/<S>/<key>/d-<domain>.nbd   the domain's /dev/nbdN index
 *   <run>/<S>/<key>/d-<domain>.ring  attach offered the domain the blkif
 *                                ring ("qdisk", ring.c): activate starts
 *                                the server with --blkif-xen-domain and
 *                                connects no /dev/nbdN; the activation
 *                                record's "ring" {domain, mode} names the
 *                                one domain whose ring the server serves
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
	char run_dir[PATH_MAX];		/* <run>/<SR uuid prefix>/<key> */
};

/* Parse and check "uri" (and "domain" when want_domain). */
int dp_arg_target(struct call *c, bool want_domain, struct dp_target *ret);
/* sr_volume_load(), failing the call with the reason worded for xapi. */
int dp_load_volume(struct call *c, struct sr *sr, const char *key,
		   json_object **ret);
/* Open the SR named by t's URI (lock mode), check that it holds the
 * volume and bind t->run_dir; on success the caller sr_close()s. */
int dp_open_target(struct call *c, struct dp_target *t,
		   enum sr_lock_mode mode, struct sr *sr);
/* Set t->run_dir for the SR that holds t's volume (dp_arg_target cannot:
 * it needs the SR's uuid). */
int dp_bind_run_dir(struct call *c, struct dp_target *t, struct sr *sr);

/* Server process management (server-spawn.c). */
/* <run dir>/import.sock: where the server takes passed NBD sockets. */
void dp_import_socket(const struct dp_target *t, char *out, size_t len);
/* ring: NULL, or the domain whose qdisk ring the server serves
 * (--blkif-xen-domain) and its activation's mode. */
struct dp_ring {
	const char *domain;
	bool readonly;
};
int dp_server_start(struct call *c, struct sr *sr, const struct dp_target *t,
		    const char *image_path, const char *format, bool readonly,
		    const struct dp_ring *ring, json_object **ret_rec);
/* The ngdp-server next to this program; 0 or -ENOENT. */
int dp_server_program(char *out, size_t len);
int dp_server_stop(struct call *c, json_object *rec);
/* The server's status from its control socket: 0 with *ret (the caller
 * puts it), or -errno with *ret NULL. */
int dp_server_status(json_object *rec, int timeout_ms, json_object **ret);
/* The ring's domain is deactivated while the server stays for others:
 * close its ring (control op blkif_release) and wait until it is. */
int dp_server_release_ring(struct call *c, json_object *rec,
			   const char *domain);
/* The image the server must open (the volume's leaf, or its overlay) and
 * its format as recorded ("raw", "qcow2", "vpc"). */
int dp_volume_image(struct call *c, struct sr *sr, const char *key,
		    char *out, size_t len, char *fmt, size_t fmt_len,
		    bool *nonpersistent);
void dp_overlay_path(struct sr *sr, const char *key, char *out, size_t len);

/*
 * Kernel NBD client (nbd-kernel.c).  Each domain's activation of a volume
 * has its own /dev/nbdN: claimed by attach (<run>/nbd/<N> names the
 * claimant's <run dir>/d-<domain>.nbd, which holds N), connected by
 * activate, disconnected by deactivate, released by detach.  Failures fill
 * 'why' with words for the administrator.
 */
int nbd_kernel_prepare(char *why, size_t len);	/* modprobe nbd if needed */
int nbd_kernel_reserve(const struct dp_target *t, int *ret_index, char *why,
		       size_t len);
int nbd_kernel_connect(int index, const char *socket_path,
		       const char *export_name, unsigned int connections,
		       char *why, size_t len);
int nbd_kernel_disconnect(int index);
bool nbd_kernel_connected(int index);	/* the kernel has a configuration */
void nbd_kernel_release(const struct dp_target *t);
int nbd_kernel_index(const struct dp_target *t);	/* -1: none claimed */

/*
 * The blkif ring's attach decision (ring.c).  What the host offers,
 * probed in order (each only when the ones before held):
 */
struct dp_ring_host {
	char conf[PATH_MAX];		/* the config file read */
	bool enabled;			/* its "blkif-ring = on" */
	bool gntdev, evtchn;		/* /dev/xen/gntdev, /dev/xen/evtchn */
	bool xenstore;			/* /local/domain/<domid> exists */
	bool server_blkif;		/* ngdp-server --blkif-xen-domain */
	bool qemu_dp;			/* /run/qemu-datapath/<domid> */
	bool served_without_ring;	/* (attach) a live server of the
					 * volume without this domain's ring */
	char failed[256];		/* (attach) the volume's failure mark
					 * (dp_ring_fail_mark_path): why its
					 * ring failed here; "" for none */
	char failed_mark[PATH_MAX];	/* that mark's path */
};
/* The "blkif-ring = on|off" setting of a config text (absent: off);
 * -EINVAL for a line that is not "key = value" or another value. */
int dp_conf_blkif_ring(const char *text, bool *on);
/* domain as a guest's domid: decimal, 1 to 32751; else -EINVAL. */
int dp_domid_of(const char *domain, unsigned int *domid);
void dp_ring_probe(const char *domain, struct dp_ring_host *h);
/* <run>/<S>/<key>.ring-failed: written by a server whose ring for the
 * volume could not be connected (--blkif-fail-mark); while it is there,
 * attach does not offer the volume the ring.  Beside the volume's run
 * directory, which deactivate and detach clean: it outlives them, until
 * the host reboots or an administrator removes it. */
void dp_ring_fail_mark_path(const struct dp_target *t, char *out, size_t len);
/* The reason in a failure mark's text (its first line, without the
 * time stamp); "" if it has none. */
void dp_ring_fail_reason(const char *text, char *out, size_t len);
/* true: offer the ring (*domid set); false: today's answer, why says why
 * (docs/blkif-handoff.md section 4.2). */
bool dp_ring_decide(const char *domain, const struct dp_ring_host *h,
		    unsigned int *domid, char *why, size_t len);

int dp_query(struct call *c, json_object **ret);
int dp_open(struct call *c, json_object **ret);
int dp_close(struct call *c, json_object **ret);
int dp_attach(struct call *c, json_object **ret);
int dp_activate(struct call *c, json_object **ret);
int dp_activate_readonly(struct call *c, json_object **ret);
int dp_import_activate(struct call *c, json_object **ret);
int dp_deactivate(struct call *c, json_object **ret);
/* Data.* (data.c): storage migration's mirror operations. */
int data_mirror(struct call *c, json_object **ret);
int data_stat(struct call *c, json_object **ret);
int data_cancel(struct call *c, json_object **ret);
int data_destroy(struct call *c, json_object **ret);
int data_ls(struct call *c, json_object **ret);
int dp_detach(struct call *c, json_object **ret);

#endif
