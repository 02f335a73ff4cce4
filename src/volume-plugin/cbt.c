/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Changed block tracking (VDI_CONFIG_CBT): Volume.enable_cbt, disable_cbt,
 * list_changed_blocks and data_destroy, and what a snapshot does for it.
 *
 * The writes to a volume are tracked per epoch: from one snapshot to the
 * next.  An epoch's bitmap (1 bit per 64 KiB) is a persistent bitmap named
 * "xsng-cbt-<16 hex>" in the image that was the volume's leaf during the
 * epoch: a qcow2 persistent dirty bitmap (qemu-img info lists it), a
 * sidecar file for raw and VHD.  The datapath server tracks into the epoch
 * its volume record names ("cbt_bitmap"), flags it in use while it serves
 * and clears the flag at a clean stop or suspend: a bitmap found in use
 * lost writes to a crash, and every answer that needs it is an error.
 *
 * Records: a volume with CBT has "cbt_enabled" and "cbt_history", the
 * epochs since CBT was enabled, oldest first, up to its own point in time;
 * a writable volume also has "cbt_bitmap", the last of them, still open.
 * A snapshot copies the history and the volume starts a new epoch on its
 * new leaf.  So the blocks changed between a and b are the union of the
 * epochs in b's history after a's (a's history must be a prefix of b's).
 * Merges move the bitmaps into the surviving image (image_bitmap_adopt),
 * so they stay in the chains of the volumes that came later.
 *
 * data_destroy keeps the record (xapi's cbt_metadata VDI) with
 * "data_destroyed": its image no longer counts as used, so garbage
 * collection and the coalesce job free or merge it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "active.h"
#include "base64.h"
#include "cbt-history.h"
#include "cbt.h"
#include "formats/bitmap.h"
#include "formats/format.h"
#include "json-io.h"
#include "log.h"
#include "qemu-img.h"
#include "vp.h"

#define MAX_CHAIN 64

bool cbt_enabled(json_object *vol)
{
	return rec_bool(vol, "cbt_enabled");
}

bool vol_data_destroyed(json_object *vol)
{
	return rec_bool(vol, "data_destroyed");
}

int cbt_new_epoch(char name[CBT_BITMAP_NAME_MAX])
{
	uint64_t v;

	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		return -EIO;
	snprintf(name, CBT_BITMAP_NAME_MAX, CBT_BITMAP_PREFIX "%016" PRIx64,
		 v);
	return 0;
}

void cbt_copy_to_snapshot(json_object *vol, json_object *snap)
{
	if (!cbt_enabled(vol))
		return;
	json_add_bool(snap, "cbt_enabled", true);
	json_add(snap, "cbt_history", cbt_history_copy(vol));
}

void cbt_start_epoch(json_object *vol, const char *name)
{
	json_object *nh = cbt_history_copy(vol);

	json_object_array_add(nh, json_new_string(name));
	json_add(vol, "cbt_history", nh);
	json_add_string(vol, "cbt_bitmap", name);
	json_add_bool(vol, "cbt_enabled", true);
}

static void cbt_clear(json_object *vol)
{
	json_object_object_del(vol, "cbt_history");
	json_object_object_del(vol, "cbt_bitmap");
	json_add_bool(vol, "cbt_enabled", false);
}

int cbt_create_empty(struct sr *sr, const char *id, enum sr_fmt fmt,
		     const char *name)
{
	struct dirty_bitmap bm;
	struct image *img = NULL;
	int r;

	r = vp_open_image(sr, id, fmt, false, &img);
	if (r < 0)
		return r;
	r = dirty_bitmap_init(&bm, CBT_GRANULARITY, img->virtual_size);
	if (r == 0) {
		r = image_bitmap_store(img, name, &bm, false);
		dirty_bitmap_free(&bm);
	}
	image_close(img);
	return r;
}

/*
 * The volume's server, when one on this host writes to its leaf (not to a
 * reset-on-boot overlay): 1 with *active set, 0 when none does.
 */
static int leaf_server(struct call *c, struct sr *sr, const char *key,
		       json_object **active)
{
	int r = sr_volume_active(sr, key, active);

	if (r <= 0)
		return r;
	if (strcmp(rec_str(*active, "host"), host_paths()->host_uuid))
		return call_fail(c, -EBUSY, "Activated_on_another_host",
				 "volume %s is active on host %s", key,
				 rec_str(*active, "host"));
	if (rec_bool(*active, "readonly") ||
	    vp_serves_overlay(sr, key, *active)) {
		json_object_put(*active);
		*active = NULL;
		return 0;
	}
	return 1;
}

/* Resume a suspended server on vol's image, as its record names it now
 * (the server reads the record again: CBT starts or stops); a failure is
 * reported on c only when nothing failed before (err). */
static int resume_on_volume(struct call *c, struct sr *sr,
			    json_object *active, json_object *vol, int err)
{
	char rel[80], path[PATH_MAX];

	sr_volume_image(vol, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", sr->path, rel);
	return vp_resume_server(err < 0 ? &(struct call){ 0 } : c, active,
				path);
}

/*
 * Write vol's record; when a server writes to its leaf, between a suspend
 * and a resume that makes it read the record again (and start or stop
 * tracking).
 */
static int publish_around_server(struct call *c, struct sr *sr,
				 json_object *vol, json_object *active)
{
	int r, r2;

	if (!active)
		return vp_publish(c, sr, &vol, 1);
	r = vp_suspend_server(c, active);
	if (r == 0)
		r = vp_publish(c, sr, &vol, 1);
	r2 = resume_on_volume(c, sr, active, vol, r);
	return r < 0 ? r : r2;
}

/* --------------------------------------------------------- enable/disable */

int vp_volume_enable_cbt(struct call *c, json_object **ret)
{
	json_object *vol = NULL, *active = NULL;
	char name[CBT_BITMAP_NAME_MAX];
	const char *key;
	enum sr_fmt fmt;
	struct sr sr;
	int r;

	(void)ret;
	r = vp_open_volume(c, SR_LOCK_EXCLUSIVE, &sr, &key, &vol);
	if (r < 0)
		return r;
	if (vol_data_destroyed(vol)) {
		r = call_fail(c, -EINVAL, "Invalid_argument",
			      "volume %s holds no data any more (data_destroy)"
			      "; CBT cannot be enabled on it", key);
		goto out;
	}
	if (cbt_enabled(vol)) {
		r = 0;	/* again: the epochs go on */
		goto out;
	}
	if (!rec_bool(vol, "read_write")) {
		/* a snapshot's content is fixed: nothing to track, and no
		 * epochs before it, so it cannot be the older end of a
		 * list_changed_blocks either */
		json_add_bool(vol, "cbt_enabled", true);
		json_add(vol, "cbt_history", json_new_array());
		r = vp_publish(c, &sr, &vol, 1);
		goto out;
	}
	r = cbt_new_epoch(name);
	if (r < 0) {
		r = call_fail(c, r, "Storage_error", "no random numbers");
		goto out;
	}
	r = leaf_server(c, &sr, key, &active);
	if (r < 0)
		goto out;
	if (r == 0) {
		/* nobody writes the leaf: its epoch starts empty, here */
		if (sr_fmt_parse(rec_str(vol, "image-format"), &fmt) < 0)
			fmt = FMT_QCOW2;
		r = cbt_create_empty(&sr, rec_str(vol, "image"), fmt, name);
		if (r < 0) {
			r = call_fail(c, r, "Storage_error", "volume %s: cannot "
				      "create its changed-block bitmap: %s",
				      key, strerror(-r));
			goto out;
		}
	}
	cbt_start_epoch(vol, name);
	r = publish_around_server(c, &sr, vol, active);
	if (r == 0)
		log_info("volume %s: CBT enabled (epoch %s)", key, name);
out:
	json_object_put(active);
	json_object_put(vol);
	sr_close(&sr);
	return r;
}

/* Every epoch some volume record of the SR still names. */
static int referenced_epochs(struct sr *sr, json_object **ret)
{
	json_object *vols = NULL, *imgs = NULL, *set = json_new_object();
	size_t i, j;
	int r;

	r = sr_scan(sr, &vols, &imgs);
	if (r < 0) {
		json_object_put(set);
		return r;
	}
	for (i = 0; i < json_object_array_length(vols); i++) {
		json_object *v = json_object_array_get_idx(vols, i);

		for (j = 0; j < cbt_history_len(v); j++)
			json_add_bool(set, cbt_history_at(v, j), true);
	}
	json_object_put(vols);
	json_object_put(imgs);
	*ret = set;
	return 0;
}

/*
 * Remove the epoch bitmaps no record names any more from the images of
 * the chain from image 'top' down (all but 'skip_top', which a server
 * owns).  Best effort: a bitmap left behind costs space, not correctness.
 */
static void prune_chain(struct sr *sr, const char *top, bool skip_top)
{
	json_object *used = NULL, *img = NULL;
	char id[UUID_STR_LEN];
	int depth;

	if (referenced_epochs(sr, &used) < 0)
		return;
	snprintf(id, sizeof(id), "%s", top);
	for (depth = 0; id[0] && depth < MAX_CHAIN; depth++) {
		struct image *im = NULL;
		char **names = NULL;
		enum sr_fmt fmt;
		size_t i;

		if (sr_image_load(sr, id, &img) < 0 ||
		    sr_image_fmt(img, &fmt) < 0)
			break;
		if (!(depth == 0 && skip_top) &&
		    vp_open_image(sr, id, fmt, false, &im) == 0) {
			if (image_bitmap_list(im, &names) == 0) {
				for (i = 0; names[i]; i++) {
					if (!cbt_bitmap_name_ok(names[i]) ||
					    json_object_object_get_ex(
						    used, names[i], NULL))
						continue;
					if (image_bitmap_remove(im,
								names[i]) == 0)
						log_info("image %s: removed "
							 "bitmap %s", id,
							 names[i]);
				}
				image_bitmap_names_free(names);
			}
			image_close(im);
		}
		snprintf(id, sizeof(id), "%s", rec_str(img, "parent"));
		json_object_put(img);
		img = NULL;
	}
	json_object_put(img);
	json_object_put(used);
}

int vp_volume_disable_cbt(struct call *c, json_object **ret)
{
	json_object *vol = NULL, *active = NULL;
	const char *key;
	struct sr sr;
	int r;

	(void)ret;
	r = vp_open_volume(c, SR_LOCK_EXCLUSIVE, &sr, &key, &vol);
	if (r < 0)
		return r;
	if (!cbt_enabled(vol) && !cbt_history_len(vol)) {
		r = 0;
		goto out;
	}
	r = leaf_server(c, &sr, key, &active);
	if (r < 0)
		goto out;
	cbt_clear(vol);
	r = publish_around_server(c, &sr, vol, active);
	if (r == 0) {
		if (!vol_data_destroyed(vol))
			prune_chain(&sr, rec_str(vol, "image"), active != NULL);
		log_info("volume %s: CBT disabled", key);
	}
out:
	json_object_put(active);
	json_object_put(vol);
	sr_close(&sr);
	return r;
}

/* ----------------------------------------------------------- data_destroy */

int vp_volume_data_destroy(struct call *c, json_object **ret)
{
	json_object *vol = NULL, *active = NULL;
	const char *key;
	struct sr sr;
	int r;

	(void)ret;
	r = vp_open_volume(c, SR_LOCK_EXCLUSIVE, &sr, &key, &vol);
	if (r < 0)
		return r;
	if (vol_data_destroyed(vol)) {
		r = 0;
		goto out;
	}
	if (!cbt_enabled(vol) || rec_bool(vol, "read_write")) {
		r = call_fail(c, -EINVAL, "Invalid_argument",
			      "volume %s: data_destroy needs a snapshot with "
			      "CBT enabled (its changed-block metadata is what "
			      "stays)", key);
		goto out;
	}
	r = sr_volume_active(&sr, key, &active);
	if (r != 0) {
		r = r < 0 ? r : call_fail(c, -EBUSY, "Volume_in_use",
					  "cannot destroy the data of volume "
					  "%s: it is active (pid %" PRId64
					  "); deactivate it first", key,
					  rec_int(active, "pid"));
		goto out;
	}
	json_add_bool(vol, "data_destroyed", true);
	r = vp_publish(c, &sr, &vol, 1);
	if (r < 0)
		goto out;
	log_info("volume %s: data destroyed, its CBT metadata kept", key);
	/* its image is hidden now: freed, or merged with the bitmaps */
	r = sr_collect_garbage(&sr, false);
	if (r < 0)
		log_warn("volume %s: freeing its image failed: %s (retried "
			 "later)", key, strerror(-r));
	vp_coalesce_kick(&sr);
	r = 0;
out:
	json_object_put(active);
	json_object_put(vol);
	sr_close(&sr);
	return r;
}

/* ------------------------------------------------- list_changed_blocks */

struct lcb {
	struct sr *sr;
	json_object *need;	/* epoch name -> false, true once found */
	struct dirty_bitmap out;
	char bad[200];		/* the first reason to refuse */
};

/* Add the bitmaps 'need' lists from one image to the result. */
static int collect_image(struct lcb *l, const char *id, enum sr_fmt fmt)
{
	struct image *im = NULL;
	char **names = NULL;
	size_t i;
	int r;

	r = vp_open_image(l->sr, id, fmt, true, &im);
	if (r < 0)
		return r;
	r = image_bitmap_list(im, &names);
	if (r == -ENOTSUP)
		r = 0;
	for (i = 0; r == 0 && names && names[i]; i++) {
		struct dirty_bitmap bm;
		json_object *seen;
		bool in_use = false;

		if (!json_object_object_get_ex(l->need, names[i], &seen))
			continue;
		r = image_bitmap_load(im, names[i], &bm, &in_use);
		if (r < 0) {
			snprintf(l->bad, sizeof(l->bad), "its bitmap %s in "
				 "image %s cannot be read (%s)", names[i], id,
				 strerror(-r));
			r = 0;
			continue;
		}
		if (in_use && !l->bad[0])
			snprintf(l->bad, sizeof(l->bad), "the datapath server "
				 "did not stop cleanly while it tracked the "
				 "epoch %s (image %s), so writes of that time "
				 "may be missing", names[i], id);
		if (bm.granularity != l->out.granularity) {
			snprintf(l->bad, sizeof(l->bad), "bitmap %s has "
				 "granularity %" PRIu64, names[i],
				 bm.granularity);
			dirty_bitmap_free(&bm);
			continue;
		}
		if (bm.virtual_size != l->out.virtual_size)
			r = dirty_bitmap_resize(&bm, l->out.virtual_size);
		if (r == 0)
			r = dirty_bitmap_union(&l->out, &bm);
		dirty_bitmap_free(&bm);
		json_object_object_add(l->need, names[i],
				       json_object_new_boolean(1));
	}
	image_bitmap_names_free(names);
	image_close(im);
	return r;
}

/* Collect from every image of the chains of the volumes that know one of
 * the epochs needed (normally the later volume's chain has them all). */
static int collect(struct lcb *l, json_object *vols, json_object *imgs)
{
	json_object *done = json_new_object();
	size_t i, j;
	int r = 0;

	for (i = 0; r == 0 && i < json_object_array_length(vols); i++) {
		json_object *v = json_object_array_get_idx(vols, i), *img;
		const char *id = rec_str(v, "image");
		bool relevant = false;
		int depth;

		if (vol_data_destroyed(v))
			continue;
		for (j = 0; j < cbt_history_len(v) && !relevant; j++)
			relevant = json_object_object_get_ex(
				l->need, cbt_history_at(v, j), NULL);
		for (depth = 0; relevant && r == 0 && id[0] &&
		     depth < MAX_CHAIN; depth++) {
			enum sr_fmt fmt;

			if (!json_object_object_get_ex(imgs, id, &img) ||
			    sr_image_fmt(img, &fmt) < 0)
				break;
			if (!json_object_object_get_ex(done, id, NULL)) {
				json_add_bool(done, id, true);
				r = collect_image(l, id, fmt);
			}
			id = rec_str(img, "parent");
		}
	}
	json_object_put(done);
	return r;
}

/*
 * Suspend the servers that track one of the needed epochs: a suspended
 * server has stored its bitmap, current and not in use, and tracks again
 * once resumed (resume_servers).  'paused' gets their activation records.
 */
static int suspend_servers(struct call *c, struct lcb *l, json_object *vols,
			   json_object *paused)
{
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < json_object_array_length(vols); i++) {
		json_object *v = json_object_array_get_idx(vols, i);
		json_object *active = NULL;
		const char *cur = rec_str(v, "cbt_bitmap");

		if (!cur[0] || !json_object_object_get_ex(l->need, cur, NULL))
			continue;
		r = leaf_server(c, l->sr, rec_str(v, "key"), &active);
		if (r <= 0)
			continue;
		r = vp_suspend_server(c, active);
		/* resumed whatever the suspend said */
		json_object_object_add(active, "volume", json_object_get(v));
		json_object_array_add(paused, active);
	}
	return r;
}

static int resume_servers(struct call *c, struct lcb *l, json_object *paused,
			  int err)
{
	size_t i;
	int r = 0;

	for (i = 0; i < json_object_array_length(paused); i++) {
		json_object *active = json_object_array_get_idx(paused, i), *v;

		json_object_object_get_ex(active, "volume", &v);
		if (resume_on_volume(c, l->sr, active, v,
				     err < 0 ? err : r) < 0 && r == 0)
			r = -EIO;
	}
	return r;
}

int vp_volume_list_changed_blocks(struct call *c, json_object **ret)
{
	json_object *va = NULL, *vb = NULL, *vols = NULL, *imgs = NULL;
	json_object *older, *newer;
	const char *key, *key2;
	int64_t offset, length;
	uint64_t first, nblocks, b, size_old;
	struct lcb l = { 0 };
	struct sr sr;
	uint8_t *bytes = NULL;
	char *text = NULL;
	int r;

	r = vp_open_volume(c, SR_LOCK_EXCLUSIVE, &sr, &key, &va);
	if (r < 0)
		return r;
	l.sr = &sr;
	if ((r = arg_string(c, "key2", &key2)) < 0 ||
	    (r = arg_int64(c, "offset", &offset)) < 0 ||
	    (r = arg_int64(c, "length", &length)) < 0)
		goto out;
	if (!volume_key_is_valid(key2)) {
		r = call_fail(c, -EINVAL, "Invalid_argument", "'%.64s' is not "
			      "a volume key of this SR", key2);
		goto out;
	}
	r = sr_volume_load(&sr, key2, &vb);
	if (r < 0) {
		r = call_fail(c, r, "Volume_does_not_exist", "volume %s does "
			      "not exist in this SR", key2);
		snprintf(c->err_param, sizeof(c->err_param), "%s", key2);
		goto out;
	}
	if (!cbt_enabled(va) || !cbt_enabled(vb)) {
		r = call_fail(c, -EINVAL, "Storage_error", "CBT is not enabled "
			      "on volume %s", cbt_enabled(va) ? key2 : key);
		goto out;
	}
	/* the older one's epochs are a prefix of the newer one's */
	if (cbt_epochs_between(va, vb, &l.need, &newer) < 0) {
		r = call_fail(c, -EINVAL, "Storage_error", "volumes %s and %s "
			      "have no common changed-block history (one is "
			      "not a snapshot of the other's line, or CBT was "
			      "disabled between them); take a full backup",
			      key, key2);
		goto out;
	}
	older = newer == va ? vb : va;

	r = dirty_bitmap_init(&l.out, CBT_GRANULARITY,
			      (uint64_t)rec_int(newer, "virtual_size"));
	if (r < 0) {
		r = call_fail(c, r, "Storage_error", "bad volume size");
		goto out;
	}
	r = sr_scan(&sr, &vols, &imgs);
	if (r == 0) {
		json_object *paused = json_new_array();
		int r2;

		r = suspend_servers(c, &l, vols, paused);
		if (r == 0)
			r = collect(&l, vols, imgs);
		r2 = resume_servers(c, &l, paused, r);
		json_object_put(paused);
		if (r == 0)
			r = r2;
	}
	if (r < 0) {
		if (!c->err_msg[0])
			r = call_fail(c, r, "Storage_error", "cannot read the "
				      "changed-block bitmaps: %s",
				      strerror(-r));
		goto out;
	}
	{
		json_object_object_foreach(l.need, name, found) {
			if (!json_object_get_boolean(found) && !l.bad[0])
				snprintf(l.bad, sizeof(l.bad), "the bitmap of "
					 "epoch %s is missing", name);
		}
	}
	if (l.bad[0]) {
		r = call_fail(c, -EUCLEAN, "Storage_error", "changed blocks "
			      "between %s and %s are not known: %s; take a "
			      "full backup", key, key2, l.bad);
		goto out;
	}
	/* blocks beyond the older volume's end were not part of it */
	size_old = (uint64_t)rec_int(older, "virtual_size");
	if (size_old < l.out.virtual_size)
		(void)dirty_bitmap_set_range(&l.out, size_old,
					     l.out.virtual_size - size_old);

	if (offset < 0 || offset % CBT_GRANULARITY ||
	    (uint64_t)offset > l.out.virtual_size) {
		r = call_fail(c, -EINVAL, "Invalid_argument", "offset %" PRId64
			      " is not a multiple of %u within the volume",
			      offset, CBT_GRANULARITY);
		goto out;
	}
	first = (uint64_t)offset / CBT_GRANULARITY;
	nblocks = l.out.nbits - first;
	if (length >= 0 && (uint64_t)length / CBT_GRANULARITY +
	    ((uint64_t)length % CBT_GRANULARITY != 0) < nblocks)
		nblocks = (uint64_t)length / CBT_GRANULARITY +
			  ((uint64_t)length % CBT_GRANULARITY != 0);
	bytes = calloc(nblocks / 8 + 1, 1);
	text = bytes ? malloc(base64_length(nblocks / 8 + 1) + 1) : NULL;
	if (!text) {
		r = call_fail(c, -ENOMEM, "Storage_error", "out of memory");
		goto out;
	}
	for (b = 0; b < nblocks; b++)
		if (dirty_bitmap_test(&l.out, first + b))
			bytes[b / 8] |= (uint8_t)(0x80 >> (b % 8));
	base64_encode(bytes, (nblocks + 7) / 8, text);
	*ret = json_new_object();
	json_add_int64(*ret, "granularity", CBT_GRANULARITY);
	json_add_string(*ret, "bitmap", text);
	r = 0;
out:
	dirty_bitmap_free(&l.out);
	json_object_put(l.need);
	json_object_put(vols);
	json_object_put(imgs);
	json_object_put(va);
	json_object_put(vb);
	free(bytes);
	free(text);
	sr_close(&sr);
	return r;
}
