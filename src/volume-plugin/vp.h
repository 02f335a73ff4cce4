/* SPDX-License-Identifier: LGPL-2.1-only */
/* Shared pieces of the volume plugin's handlers. */
#ifndef VOLUME_VP_H
#define VOLUME_VP_H

#include "call.h"
#include "sr.h"
#include "volume-plugin.h"

#define DATAPATH_SCHEME "ngdp"

static inline const struct volume_plugin *vp_plugin(struct call *c)
{
	return c->plugin;
}

/* Open the SR named by the "sr" parameter; fails with Sr_not_attached. */
int vp_open_sr(struct call *c, enum sr_lock_mode mode, struct sr *ret);
/* Read and check the "key" parameter; fails with Invalid_argument. */
int vp_arg_key(struct call *c, const char **ret);
/* "key" and "sr" parameters: open the SR and load the volume (on failure
 * nothing stays open). */
int vp_open_volume(struct call *c, enum sr_lock_mode mode, struct sr *sr,
		   const char **key, json_object **vol);
/* Stage records (at most 4) in order; commit with one directory fsync. */
int publish_records(struct sr *sr, json_object *const *recs, size_t n);
/* The same, failing the call in the administrator's words. */
int vp_publish(struct call *c, struct sr *sr, json_object *const *recs,
	       size_t n);
/* Finish the record of a resize that was interrupted (see volume-methods.c). */
int vp_settle_resize(struct sr *sr, json_object *vol, bool persist);
/* Word a metadata/image error (ENOSPC, EIO...) for the administrator. */
int vp_fail_errno(struct call *c, int err, const char *what);
/* The xapi "volume" record for one of our volume records. */
json_object *vp_volume_to_xapi(struct sr *sr, json_object *vol);

/*
 * A volume served read-write on this host: pause its server (drain and
 * flush) and resume it, on image_path (an absolute path, NULL: the same,
 * without reopening; the server re-reads the volume record either way).
 * vp_serves_overlay: the server writes to the reset-on-boot overlay, not
 * to the volume's leaf.
 */
int vp_suspend_server(struct call *c, json_object *active);
int vp_resume_server(struct call *c, json_object *active,
		     const char *image_path);
bool vp_serves_overlay(struct sr *sr, const char *key, json_object *active);

/* Open image id of the SR and its chain with the format engine (buffered,
 * confined to the SR's images folder). */
struct image;
int vp_open_image(struct sr *sr, const char *id, enum sr_fmt fmt,
		  bool readonly, struct image **ret);

/* Offline coalesce (coalesce.c): start the SR's background job when there
 * is work (call with the SR lock held), stop it before an unmount, one
 * line for Plugin.diagnostics, and the job itself (the plugin binary run
 * with "--coalesce-job <SR>"). */
void vp_coalesce_kick(struct sr *sr);
void vp_coalesce_stop(const char *handle);
void vp_coalesce_describe(struct sr *sr, char *out, size_t len);
bool vp_coalesce_is_job(int argc, char **argv);
int vp_coalesce_job(const struct volume_plugin *p, int argc, char **argv);

/* Handlers (sr-methods.c, volume-methods.c, plugin.c). */
int vp_sr_probe(struct call *c, json_object **ret);
int vp_sr_create(struct call *c, json_object **ret);
int vp_sr_attach(struct call *c, json_object **ret);
int vp_sr_detach(struct call *c, json_object **ret);
int vp_sr_destroy(struct call *c, json_object **ret);
int vp_sr_stat(struct call *c, json_object **ret);
int vp_sr_set_name(struct call *c, json_object **ret);
int vp_sr_set_description(struct call *c, json_object **ret);
int vp_sr_ls(struct call *c, json_object **ret);
int vp_volume_create(struct call *c, json_object **ret);
int vp_volume_destroy(struct call *c, json_object **ret);
int vp_volume_snapshot(struct call *c, json_object **ret);
int vp_volume_clone(struct call *c, json_object **ret);
int vp_volume_resize(struct call *c, json_object **ret);
int vp_volume_stat(struct call *c, json_object **ret);
int vp_volume_set_name(struct call *c, json_object **ret);
int vp_volume_set_description(struct call *c, json_object **ret);
int vp_volume_set(struct call *c, json_object **ret);
int vp_volume_unset(struct call *c, json_object **ret);
int vp_volume_enable_cbt(struct call *c, json_object **ret);
int vp_volume_disable_cbt(struct call *c, json_object **ret);
int vp_volume_data_destroy(struct call *c, json_object **ret);
int vp_volume_list_changed_blocks(struct call *c, json_object **ret);
int vp_plugin_query(struct call *c, json_object **ret);
int vp_plugin_diagnostics(struct call *c, json_object **ret);
int vp_plugin_ls(struct call *c, json_object **ret);

#endif
