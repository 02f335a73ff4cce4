/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Volume.* : volumes are records in meta/ pointing at image files.
 *
 * Crash safety: new image files are made durable before any record points
 * at them; records are published with staged writes committed by renames
 * in an order where every prefix is a consistent SR (see each handler).
 * Unreferenced images and files are collected under the exclusive lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "active.h"
#include "cbt.h"
#include "ctl-client.h"
#include "ctl-proto.h"
#include "fault.h"
#include "formats/format.h"
#include "qemu-img.h"
#include "json-io.h"
#include "log.h"
#include "vp.h"

#define SUSPEND_TIMEOUT_MS 30000
/* images/.np-<key>.qcow2: the datapath's reset-on-boot overlay */
#define OVERLAY_PREFIX ".np-"

int vp_open_sr(struct call *c, enum sr_lock_mode mode, struct sr *ret)
{
	const char *handle;
	int r = arg_string(c, "sr", &handle);

	if (r < 0)
		return r;
	r = sr_open(handle, vp_plugin(c)->type, mode, ret);
	if (r == -ENOENT)
		return call_fail(c, r, "Sr_not_attached",
				 "the SR '%.200s' is not attached on this host",
				 handle);
	if (r == -EMEDIUMTYPE)
		return call_fail(c, r, "SR_does_not_exist",
				 "'%.200s' is not an SR of type %s", handle,
				 vp_plugin(c)->type);
	if (r == -ETIMEDOUT)
		return call_fail(c, r, "Busy",
				 "the SR is busy: another operation held its "
				 "lock for %d s", SR_LOCK_TIMEOUT_MS / 1000);
	if (r < 0)
		return call_fail(c, r, "SR_corrupt",
				 "the SR at %.200s cannot be opened: %s",
				 handle, strerror(-r));
	return 0;
}

int vp_open_image(struct sr *sr, const char *id, enum sr_fmt fmt,
		  bool readonly, struct image **ret)
{
	struct image_open_options o = { .readonly = readonly,
					.no_direct = true };
	char path[PATH_MAX], dir[PATH_MAX + 8];

	snprintf(dir, sizeof(dir), "%s/images", sr->path);
	qimg_path(sr, id, fmt, path, sizeof(path));
	o.confine_dir = dir;
	o.format = sr_fmt_qemu(fmt);
	return image_open(path, &o, ret);
}

int vp_arg_key(struct call *c, const char **ret)
{
	int r = arg_string(c, "key", ret);

	if (r < 0)
		return r;
	if (!volume_key_is_valid(*ret))
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "'%.64s%s' is not a volume key of this SR "
				 "(keys are lower-case UUIDs)", *ret,
				 strlen(*ret) > 64 ? "..." : "");
	return 0;
}

/*
 * A Volume.resize killed between growing the image and writing the new
 * size left "resizing-to" in the record: the image's own size is the
 * truth.  Settle the record from it (written back when 'persist', i.e.
 * under the exclusive lock; else only in memory, for what we report).
 */
int vp_settle_resize(struct sr *sr, json_object *vol, bool persist)
{
	json_object *img = NULL, *recs[2];
	enum sr_fmt fmt;
	uint64_t real;
	size_t n = 0;
	int r;

	if (!json_object_object_get_ex(vol, "resizing-to", NULL))
		return 0;
	if (sr_fmt_parse(rec_str(vol, "image-format"), &fmt) < 0)
		return -EUCLEAN;
	r = qimg_virtual_size(sr, rec_str(vol, "image"), fmt, &real);
	if (r < 0)
		return r;
	json_add_int64(vol, "virtual_size", (int64_t)real);
	json_object_object_del(vol, "resizing-to");
	if (!persist)
		return 0;
	if (sr_image_load(sr, rec_str(vol, "image"), &img) == 0) {
		json_add_int64(img, "virtual_size", (int64_t)real);
		recs[n++] = img;
	}
	recs[n++] = vol;
	r = publish_records(sr, recs, n);
	json_object_put(img);
	log_info("volume %s: an interrupted resize was settled at %" PRIu64
		 " bytes", rec_str(vol, "key"), real);
	return r;
}

int vp_open_volume(struct call *c, enum sr_lock_mode mode, struct sr *sr,
		   const char **key, json_object **vol)
{
	struct sr_why why;
	int r;

	if ((r = vp_arg_key(c, key)) < 0 || (r = vp_open_sr(c, mode, sr)) < 0)
		return r;
	r = sr_volume_load_why(sr, *key, vol, &why);
	if (r < 0)
		r = call_fail(c, r, why.code, "%s", why.text);
	if (r == 0) {
		r = vp_settle_resize(sr, *vol, mode == SR_LOCK_EXCLUSIVE);
		if (r < 0) {
			r = vp_fail_errno(c, r, "cannot settle an interrupted "
					  "resize of the volume");
			json_object_put(*vol);
		}
	}
	if (r < 0)
		sr_close(sr);
	return r;
}

int publish_records(struct sr *sr, json_object *const *recs, size_t n)
{
	struct staged_file f[4];
	size_t i;
	int r = 0;

	if (n > 4)
		return -EINVAL;
	for (i = 0; i < n && r == 0; i++) {
		bool is_vol = json_object_object_get_ex(recs[i], "key", NULL);

		r = is_vol ? sr_stage_volume(sr, recs[i], &f[i]) :
			     sr_stage_image(sr, recs[i], &f[i]);
	}
	if (r < 0) {
		sr_abort(sr, f, i - 1);
		return r;
	}
	return sr_commit(sr, f, n);
}

int vp_fail_errno(struct call *c, int err, const char *what)
{
	if (err == -ENOSPC || err == -EDQUOT)
		return call_fail(c, err, "No_space",
				 "%s: the SR is out of space", what);
	if (err == -EFBIG)
		return call_fail(c, err, "Invalid_argument",
				 "%s: the filesystem cannot hold a file that "
				 "large", what);
	if (err == -E2BIG)
		return call_fail(c, err, "Invalid_argument",
				 "%s: the record would be larger than %d KiB "
				 "(too many or too long keys, names or "
				 "descriptions)", what, RECORD_WRITE_MAX / 1024);
	return call_fail(c, err, "Storage_error", "%s: %s", what,
			 strerror(-err));
}

json_object *vp_volume_to_xapi(struct sr *sr, json_object *vol)
{
	json_object *out = json_new_object(), *uris = json_new_array(), *keys;
	char uri[PATH_MAX + 64], rel[80];

	json_add_string(out, "key", rec_str(vol, "key"));
	json_add_string(out, "uuid", rec_str(vol, "key"));
	json_add_string(out, "name", rec_str(vol, "name"));
	json_add_string(out, "description", rec_str(vol, "description"));
	json_add_bool(out, "read_write", rec_bool(vol, "read_write"));
	json_add_bool(out, "sharable", rec_bool(vol, "sharable"));
	json_add_int64(out, "virtual_size", rec_int(vol, "virtual_size"));
	sr_volume_image(vol, rel, sizeof(rel));
	/* a data_destroy'ed volume's image is hidden, being freed */
	json_add_int64(out, "physical_utilisation", vol_data_destroyed(vol) ?
		       0 : sr_file_allocated(sr, rel));
	json_add_bool(out, "cbt_enabled", cbt_enabled(vol));
	json_add_string(out, "volume_type", vol_data_destroyed(vol) ?
			"CBT_Metadata" : "Data");
	/* ngdp://<SR mount>/<key>: stable for the life of the volume (xapi
	 * re-reads it before every datapath call), whatever the chain */
	snprintf(uri, sizeof(uri), DATAPATH_SCHEME "://%s/%s", sr->path,
		 rec_str(vol, "key"));
	json_object_array_add(uris, json_new_string(uri));
	json_add(out, "uri", uris);
	if (json_object_object_get_ex(vol, "keys", &keys) && keys)
		json_add(out, "keys", json_object_get(keys));
	else
		json_add(out, "keys", json_new_object());
	return out;
}

static json_object *new_volume_record(const char *key, const char *name,
				      const char *description,
				      const char *image, enum sr_fmt fmt,
				      uint64_t size, bool rw, bool sharable)
{
	json_object *v = json_new_object();

	json_add_string(v, "key", key);
	json_add_string(v, "name", name);
	json_add_string(v, "description", description);
	json_add_string(v, "image", image);
	json_add_string(v, "image-format", sr_fmt_name(fmt));
	json_add_int64(v, "virtual_size", (int64_t)size);
	json_add_bool(v, "read_write", rw);
	json_add_bool(v, "sharable", sharable);
	json_add_int64(v, "created", (int64_t)time(NULL));
	json_add(v, "keys", json_new_object());
	return v;
}

static json_object *new_image_record(const char *id, enum sr_fmt fmt,
				     const char *parent, uint64_t size)
{
	json_object *i = json_new_object();

	json_add_string(i, "id", id);
	json_add_string(i, "format", sr_fmt_name(fmt));
	if (parent)
		json_add_string(i, "parent", parent);
	json_add_int64(i, "virtual_size", (int64_t)size);
	return i;
}

/* Stage records in order and commit them with one directory fsync. */
int vp_publish(struct call *c, struct sr *sr, json_object *const *recs,
	       size_t n)
{
	int r = publish_records(sr, recs, n);

	return r < 0 ? vp_fail_errno(c, r, "cannot write the volume metadata")
		     : 0;
}

/* A size in bytes: a minimum (rounded up to whole sectors); 0 is a valid
 * Volume.create size (xapi-storage-script's own self-test makes one). */
static int arg_size(struct call *c, const char *key, enum sr_fmt fmt,
		    uint64_t *ret)
{
	int64_t size;
	int r = arg_int64(c, key, &size);

	if (r < 0)
		return r;
	if (size < 0)
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "the size must be a number of bytes (0 or "
				 "more), not %" PRId64, size);
	/* images are made of 512-byte sectors: round up (no overflow:
	 * size <= INT64_MAX) */
	if ((((uint64_t)size + 511) & ~(uint64_t)511) > sr_fmt_max_size(fmt))
		return call_fail(c, -EFBIG, "Invalid_argument",
				 "%" PRId64 " bytes is larger than the %" PRIu64
				 " GiB a %s volume can hold%s", size,
				 sr_fmt_max_size(fmt) >> 30,
				 sr_fmt_name(fmt),
				 fmt == FMT_VHD ? " (use an SR with "
				 "image-format=qcow2 for larger disks)" : "");
	*ret = ((uint64_t)size + 511) & ~(uint64_t)511;
	return 0;
}

int vp_volume_create(struct call *c, json_object **ret)
{
	const char *name, *description, *prealloc;
	char key[UUID_STR_LEN], id[UUID_STR_LEN], msg[512];
	json_object *recs[2];
	enum sr_fmt fmt;
	struct sr sr;
	uint64_t size;
	bool sharable;
	int r;

	if ((r = arg_text(c, "name", TEXT_MAX, &name)) < 0 ||
	    (r = arg_text(c, "description", TEXT_MAX, &description)) < 0 ||
	    (r = arg_bool(c, "sharable", &sharable)) < 0)
		return r;
	r = vp_open_sr(c, SR_LOCK_EXCLUSIVE, &sr);
	if (r < 0)
		return r;
	fmt = sr_default_format(&sr);
	r = arg_size(c, "size", fmt, &size);
	if (r < 0)
		goto out;
	if (uuid_generate(key) < 0 || uuid_generate(id) < 0) {
		r = call_fail(c, -EIO, "Storage_error", "no random numbers");
		goto out;
	}
	prealloc = rec_str(sr.info, "preallocation");
	r = qimg_create(&sr, fmt, id, size, prealloc[0] ? prealloc : NULL,
			msg, sizeof(msg));
	if (r < 0) {
		r = r == -ENOSPC ? vp_fail_errno(c, r, "cannot create the image")
				 : call_fail(c, r, "Storage_error",
					     "cannot create the image: %s", msg);
		goto out;
	}
	if (fmt == FMT_VHD)	/* VHD rounds to its own geometry rules */
		(void)qimg_virtual_size(&sr, id, fmt, &size);
	/* image record first: a crash before the volume record leaves an
	 * unreferenced image, which garbage collection removes */
	recs[0] = new_image_record(id, fmt, NULL, size);
	recs[1] = new_volume_record(key, name, description, id, fmt, size,
				    true, sharable);
	r = vp_publish(c, &sr, recs, 2);
	if (r < 0)
		(void)sr_collect_garbage(&sr, true);
	else
		*ret = vp_volume_to_xapi(&sr, recs[1]);
	log_info("created volume %s (%s, %" PRIu64 " bytes)%s", key,
		 sr_fmt_name(fmt), size, r < 0 ? ": failed" : "");
	json_object_put(recs[0]);
	json_object_put(recs[1]);
out:
	sr_close(&sr);
	return r;
}

int vp_volume_stat(struct call *c, json_object **ret)
{
	json_object *vol;
	const char *key;
	struct sr sr;
	int r;

	r = vp_open_volume(c, SR_LOCK_SHARED, &sr, &key, &vol);
	if (r < 0)
		return r;
	*ret = vp_volume_to_xapi(&sr, vol);
	json_object_put(vol);
	sr_close(&sr);
	return 0;
}

static int refuse_if_active(struct call *c, struct sr *sr, const char *key,
			    const char *what)
{
	json_object *rec;
	int r = sr_volume_active(sr, key, &rec);

	if (r <= 0)
		return r;
	r = call_fail(c, -EBUSY, "Volume_in_use",
		      "cannot %s volume %s: it is active (datapath server pid "
		      "%" PRId64 " on host %s); deactivate it first", what, key,
		      rec_int(rec, "pid"), rec_str(rec, "host"));
	json_object_put(rec);
	return r;
}

int vp_volume_destroy(struct call *c, json_object **ret)
{
	json_object *vol;
	const char *key;
	char name[64];
	struct sr sr;
	int r;

	(void)ret;
	r = vp_open_volume(c, SR_LOCK_EXCLUSIVE, &sr, &key, &vol);
	if (r < 0)
		return r;
	json_object_put(vol);
	r = refuse_if_active(c, &sr, key, "destroy");
	if (r < 0)
		goto out;
	/* a reset-on-boot overlay left by an epoch that never closed */
	snprintf(name, sizeof(name), OVERLAY_PREFIX "%s.qcow2", key);
	(void)unlinkat(sr.imagesfd, name, 0);
	snprintf(name, sizeof(name), "v-%s.json", key);
	r = unlink_durable_at(sr.metafd, name);
	if (r < 0) {
		r = vp_fail_errno(c, r, "cannot remove the volume record");
		goto out;
	}
	/* images still needed by other volumes stay, hidden, until their
	 * last dependant goes; the rest is freed now, with what crashed
	 * calls left behind (files without records, temp files) */
	r = sr_collect_garbage(&sr, true);
	if (r < 0)
		log_warn("volume %s destroyed; freeing its images failed: %s "
			 "(retried by the next destroy or attach)", key,
			 strerror(-r));
	else
		vp_coalesce_kick(&sr);	/* a backup's snapshot went */
	r = 0;
	log_info("destroyed volume %s", key);
out:
	sr_close(&sr);
	return r;
}

/*
 * While the volume is served, its server must not write to the old top
 * after we turned it into a snapshot: suspend (drain + flush) first, and
 * resume on the new top afterwards.
 */
int vp_suspend_server(struct call *c, json_object *active)
{
	json_object *req = json_new_object(), *reply = NULL;
	int r;

	json_add_string(req, CTL_KEY_OP, CTL_OP_SUSPEND);
	json_add_int64(req, CTL_KEY_TIMEOUT_MS, SUSPEND_TIMEOUT_MS);
	r = control_call(rec_str(active, "control"), req, SUSPEND_TIMEOUT_MS,
			 &reply);
	json_object_put(req);
	if (r < 0)
		r = call_fail(c, r, "Datapath_error",
			      "cannot pause the datapath server (pid %" PRId64
			      ") to take the snapshot: %s",
			      rec_int(active, "pid"),
			      reply ? rec_str(reply, CTL_KEY_ERROR) : strerror(-r));
	json_object_put(reply);
	return r;
}

int vp_resume_server(struct call *c, json_object *active,
			 const char *image_path)
{
	json_object *req = json_new_object(), *reply = NULL;
	int r;

	json_add_string(req, CTL_KEY_OP, CTL_OP_RESUME);
	if (image_path)
		json_add_string(req, CTL_KEY_IMAGE, image_path);
	r = control_call(rec_str(active, "control"), req, SUSPEND_TIMEOUT_MS,
			 &reply);
	json_object_put(req);
	if (r < 0)
		r = call_fail(c, r, "Datapath_error",
			      "the datapath server (pid %" PRId64 ") did not "
			      "resume on %s: %s; the VM's disk is paused",
			      rec_int(active, "pid"),
			      image_path ? image_path : "its image",
			      reply ? rec_str(reply, CTL_KEY_ERROR) : strerror(-r));
	json_object_put(reply);
	return r;
}

/* Is the volume's server running on its reset-on-boot overlay? */
bool vp_serves_overlay(struct sr *sr, const char *key, json_object *active)
{
	char overlay[PATH_MAX];

	snprintf(overlay, sizeof(overlay), "%s/images/" OVERLAY_PREFIX
		 "%s.qcow2", sr->path, key);
	return !strcmp(rec_str(active, "image"), overlay);
}

/*
 * Give a writable volume a new leaf on top of its current image, which
 * becomes immutable.  Returns the new leaf id and format.
 */
static int new_leaf(struct call *c, struct sr *sr, json_object *vol,
		    char id[UUID_STR_LEN], enum sr_fmt *fmt)
{
	enum sr_fmt parent_fmt;
	char msg[512];
	int r;

	if (sr_fmt_parse(rec_str(vol, "image-format"), &parent_fmt) < 0)
		return call_fail(c, -EUCLEAN, "SR_corrupt",
				 "volume %s has an unknown image format",
				 rec_str(vol, "key"));
	if (uuid_generate(id) < 0)
		return call_fail(c, -EIO, "Storage_error", "no random numbers");
	/* the record's size is the image's (vp_open_volume settled any
	 * interrupted resize) */
	r = qimg_create_overlay(sr, id, rec_str(vol, "image"), parent_fmt,
				(uint64_t)rec_int(vol, "virtual_size"), fmt,
				msg, sizeof(msg));
	if (r == -ENOSPC)
		return vp_fail_errno(c, r, "cannot create the overlay image");
	if (r < 0)
		return call_fail(c, r, "Storage_error",
				 "cannot create the overlay image: %s", msg);
	return 0;
}

static void point_volume_at(json_object *vol, const char *id,
			    enum sr_fmt fmt)
{
	json_add_string(vol, "image", id);
	json_add_string(vol, "image-format", sr_fmt_name(fmt));
}

/*
 * Resume a suspended server on the image the volume's record names now, as
 * read back from the SR: the new leaf when the commit went through, the
 * old image when it did not.  Never the image we planned: after a failed
 * commit the VM must not write into what may have become a snapshot.  A
 * failure here does not undo a committed snapshot; the server resumes by
 * itself from the record when its suspend times out.
 */
static void resume_on_record(struct sr *sr, const char *key,
			     json_object *active, const char *served_rel)
{
	struct call quiet = { 0 };	/* errors here are logged, not returned */
	json_object *vol = NULL;
	char path[PATH_MAX], rel[80];

	if (sr_volume_load(sr, key, &vol) < 0) {
		log_error("volume %s: cannot re-read its record to resume its "
			  "datapath server (pid %" PRId64 "); it resumes from "
			  "the record when its suspend times out", key,
			  rec_int(active, "pid"));
		return;
	}
	sr_volume_image(vol, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", sr->path, rel);
	/* unchanged: a plain resume, which also ends a suspend whose flush
	 * failed, without reopening the chain */
	if (vp_resume_server(&quiet, active, strcmp(rel, served_rel) ? path :
			  NULL) < 0)
		log_error("volume %s: %s", key, quiet.err_msg);
	json_object_put(vol);
}

/*
 * An inactive volume whose activation record is still there was served by
 * a server that died (kill, crash, host reset): a qcow2 leaf may hold
 * clusters it allocated but never referenced.  Repair them before the
 * image becomes an immutable snapshot, where nothing could reclaim them.
 */
static int repair_if_unclean(struct call *c, struct sr *sr, const char *key,
			     json_object *vol)
{
	json_object *stale = NULL;
	enum sr_fmt fmt;
	char msg[512];
	int r;

	if (active_load(sr, key, &stale) < 0)
		return 0;	/* no record: the last server stopped cleanly */
	json_object_put(stale);
	if (sr_fmt_parse(rec_str(vol, "image-format"), &fmt) < 0)
		return 0;
	r = qimg_repair_leaks(sr, rec_str(vol, "image"), fmt, msg,
			      sizeof(msg));
	if (r == -EUCLEAN)
		return call_fail(c, r, "SR_corrupt", "volume %s: its image is "
				 "damaged (%s); not taking a snapshot of it",
				 key, msg);
	if (r < 0)
		log_warn("volume %s: %s (the snapshot keeps the leaked "
			 "clusters)", key, msg);
	else
		log_info("volume %s: checked its image after an unclean stop",
			 key);
	return 0;
}

/* Snapshot (read_only_copy) or clone (writable copy) of a volume. */
static int copy_volume(struct call *c, json_object **ret, bool clone)
{
	json_object *vol = NULL, *copy = NULL, *active = NULL, *recs[4];
	char newkey[UUID_STR_LEN], leaf[UUID_STR_LEN], leaf2[UUID_STR_LEN];
	char served[80];	/* the image the server is on: the leaf */
	enum sr_fmt leaf_fmt, leaf2_fmt, fmt;
	bool suspended = false;
	const char *key;
	size_t n = 0;
	struct sr sr;
	int r;

	r = vp_open_volume(c, SR_LOCK_EXCLUSIVE, &sr, &key, &vol);
	if (r < 0)
		return r;
	sr_volume_image(vol, served, sizeof(served));
	if (vol_data_destroyed(vol)) {
		r = call_fail(c, -EINVAL, "Invalid_argument", "volume %s holds "
			      "no data any more (data_destroy): it cannot be "
			      "%s", key, clone ? "cloned" : "snapshotted");
		goto out;
	}
	if (uuid_generate(newkey) < 0) {
		r = call_fail(c, -EIO, "Storage_error", "no random numbers");
		goto out;
	}
	if (sr_fmt_parse(rec_str(vol, "image-format"), &fmt) < 0)
		fmt = FMT_QCOW2;
	copy = new_volume_record(newkey, rec_str(vol, "name"),
				 rec_str(vol, "description"),
				 rec_str(vol, "image"), fmt,
				 (uint64_t)rec_int(vol, "virtual_size"),
				 clone, false);
	if (!clone)	/* a clone starts without CBT */
		cbt_copy_to_snapshot(vol, copy);

	if (!rec_bool(vol, "read_write")) {
		/* the source's image is immutable already */
		if (clone) {
			r = new_leaf(c, &sr, vol, leaf, &leaf_fmt);
			if (r < 0)
				goto out;
			recs[n++] = new_image_record(leaf, leaf_fmt,
						     rec_str(vol, "image"),
						     (uint64_t)rec_int(vol,
						     "virtual_size"));
			point_volume_at(copy, leaf, leaf_fmt);
		}
		/* a snapshot of a snapshot shares its image: no file work */
		recs[n++] = json_object_get(copy);
		r = vp_publish(c, &sr, recs, n);
		goto published;
	}

	r = sr_volume_active(&sr, key, &active);
	if (r < 0)
		goto out;
	if (r == 1 && strcmp(rec_str(active, "host"), host_paths()->host_uuid)) {
		r = call_fail(c, -EBUSY, "Activated_on_another_host",
			      "volume %s is active on host %s", key,
			      rec_str(active, "host"));
		snprintf(c->err_param, sizeof(c->err_param), "%s",
			 rec_str(active, "host"));
		goto out;
	}
	/* A reset-on-boot (non-persistent) server writes to its throwaway
	 * overlay, never to the volume's leaf: nothing to pause there. */
	if (r == 1 && !vp_serves_overlay(&sr, key, active)) {
		/* whatever the suspend answers (a flush error on a full SR, a
		 * time-out), the server gets a resume afterwards */
		suspended = true;
		r = vp_suspend_server(c, active);
		if (r < 0)
			goto out;
	} else if (r == 0) {
		r = repair_if_unclean(c, &sr, key, vol);
		if (r < 0)
			goto out;
	}
	/* The current image becomes immutable: the volume moves to a new
	 * leaf on top of it; a snapshot keeps the old image, a clone gets a
	 * leaf of its own on it. */
	r = new_leaf(c, &sr, vol, leaf, &leaf_fmt);
	if (r < 0)
		goto out;
	recs[n++] = new_image_record(leaf, leaf_fmt, rec_str(vol, "image"),
				     (uint64_t)rec_int(vol, "virtual_size"));
	if (cbt_enabled(vol)) {
		/* the old leaf's epoch is sealed: the volume tracks into a
		 * new one on its new leaf, created by its server when one
		 * writes the leaf (at the resume), else here */
		char epoch[CBT_BITMAP_NAME_MAX];

		r = cbt_new_epoch(epoch);
		if (r == 0 && !suspended)
			r = cbt_create_empty(&sr, leaf, leaf_fmt, epoch);
		if (r < 0) {
			r = call_fail(c, r, "Storage_error", "cannot create "
				      "the changed-block bitmap of the new "
				      "leaf: %s", strerror(-r));
			(void)sr_collect_garbage(&sr, true);
			goto out_recs;
		}
		cbt_start_epoch(vol, epoch);
	}
	if (clone) {
		r = new_leaf(c, &sr, vol, leaf2, &leaf2_fmt);
		if (r < 0) {
			(void)sr_collect_garbage(&sr, true);
			goto out_recs;
		}
		recs[n++] = new_image_record(leaf2, leaf2_fmt,
					     rec_str(vol, "image"),
					     (uint64_t)rec_int(vol,
					     "virtual_size"));
		point_volume_at(copy, leaf2, leaf2_fmt);
	}
	/* Order: new images, then the source volume moves to its new leaf,
	 * then the copy appears.  A crash after any rename leaves every
	 * existing volume intact; the old image is then only hidden. */
	point_volume_at(vol, leaf, leaf_fmt);
	recs[n++] = json_object_get(vol);
	recs[n++] = json_object_get(copy);
	r = vp_publish(c, &sr, recs, n);
	if (r < 0) {
		/* not durable, so not reported: the copy must not stay behind
		 * as a volume xapi never learns of.  The source may already
		 * be on its new leaf; that is consistent (its old image is
		 * then just hidden), and the resume below follows the record. */
		char name[64];

		snprintf(name, sizeof(name), "v-%s.json", newkey);
		(void)unlink_durable_at(sr.metafd, name);
		(void)sr_collect_garbage(&sr, true);
	}
published:
	if (r == 0)
		fault_point("snapshot-after-commit");
	if (r == 0) {
		*ret = vp_volume_to_xapi(&sr, copy);
		log_info("%s of %s is %s", clone ? "clone" : "snapshot", key,
			 newkey);
	}
out_recs:
	while (n > 0)
		json_object_put(recs[--n]);
out:
	if (suspended)
		resume_on_record(&sr, key, active, served);
	json_object_put(active);
	json_object_put(copy);
	json_object_put(vol);
	sr_close(&sr);
	return r;
}

int vp_volume_snapshot(struct call *c, json_object **ret)
{
	return copy_volume(c, ret, false);
}

int vp_volume_clone(struct call *c, json_object **ret)
{
	return copy_volume(c, ret, true);
}

int vp_volume_resize(struct call *c, json_object **ret)
{
	json_object *vol = NULL, *img = NULL, *recs[2];
	enum sr_fmt fmt;
	const char *key;
	uint64_t size, cur;
	char msg[512];
	struct sr sr;
	int r;

	(void)ret;
	r = vp_open_volume(c, SR_LOCK_EXCLUSIVE, &sr, &key, &vol);
	if (r < 0)
		return r;
	if (sr_fmt_parse(rec_str(vol, "image-format"), &fmt) < 0)
		fmt = FMT_QCOW2;
	r = arg_size(c, "new_size", fmt, &size);
	if (r < 0)
		goto out;
	cur = (uint64_t)rec_int(vol, "virtual_size");
	if (!rec_bool(vol, "read_write")) {
		r = call_fail(c, -EROFS, "Invalid_argument",
			      "volume %s is a read-only snapshot and cannot be "
			      "resized", key);
		goto out;
	}
	if (size < cur) {
		r = call_fail(c, -EINVAL, "VDI_invalid_size",
			      "shrinking volume %s from %" PRIu64 " to %" PRIu64
			      " bytes is not supported: data past the new end "
			      "would be lost", key, cur, size);
		goto out;
	}
	if (size == cur)
		goto out;
	if (fmt == FMT_VHD) {
		r = call_fail(c, -ENOTSUP, "Unimplemented",
			      "VHD volumes cannot be resized; qcow2 volumes "
			      "can (SR device-config image-format=qcow2)");
		goto out;
	}
	r = refuse_if_active(c, &sr, key, "resize");
	if (r < 0)
		goto out;
	/* intent first: a kill after the image grew must not leave the
	 * record at the old size for ever (vp_settle_resize finishes it) */
	json_add_int64(vol, "resizing-to", (int64_t)size);
	r = vp_publish(c, &sr, &vol, 1);
	if (r < 0)
		goto out;
	r = qimg_resize(&sr, rec_str(vol, "image"), fmt, size, msg,
			sizeof(msg));
	fault_point("resize-after-image");
	if (r < 0) {
		r = r == -ENOSPC ? vp_fail_errno(c, r, "cannot resize") :
			call_fail(c, r, "Storage_error", "cannot resize volume "
				  "%s: %s", key, msg);
		/* the image may or may not have grown: ask it */
		(void)vp_settle_resize(&sr, vol, true);
		goto out;
	}
	json_object_object_del(vol, "resizing-to");
	json_add_int64(vol, "virtual_size", (int64_t)size);
	recs[0] = vol;
	if (sr_image_load(&sr, rec_str(vol, "image"), &img) == 0) {
		json_add_int64(img, "virtual_size", (int64_t)size);
		recs[0] = img;
		recs[1] = vol;
		r = vp_publish(c, &sr, recs, 2);
	} else {
		r = vp_publish(c, &sr, recs, 1);
	}
	log_info("resized volume %s to %" PRIu64 " bytes", key, size);
out:
	json_object_put(img);
	json_object_put(vol);
	sr_close(&sr);
	return r;
}

/* Load, let 'edit' change the record, write it back. */
static int update_volume(struct call *c,
			 int (*edit)(struct call *c, json_object *vol))
{
	json_object *vol;
	const char *key;
	struct sr sr;
	int r;

	r = vp_open_volume(c, SR_LOCK_EXCLUSIVE, &sr, &key, &vol);
	if (r < 0)
		return r;
	r = edit(c, vol);
	if (r == 0)
		r = vp_publish(c, &sr, &vol, 1);
	json_object_put(vol);
	sr_close(&sr);
	return r;
}

static int edit_name(struct call *c, json_object *vol)
{
	const char *v;
	int r = arg_text(c, "new_name", TEXT_MAX, &v);

	if (r == 0)
		json_add_string(vol, "name", v);
	return r;
}

static int edit_description(struct call *c, json_object *vol)
{
	const char *v;
	int r = arg_text(c, "new_description", TEXT_MAX, &v);

	if (r == 0)
		json_add_string(vol, "description", v);
	return r;
}

static json_object *keys_of(json_object *vol)
{
	json_object *keys;

	if (!json_object_object_get_ex(vol, "keys", &keys) || !keys ||
	    !json_object_is_type(keys, json_type_object)) {
		keys = json_new_object();
		json_add(vol, "keys", keys);
	}
	return keys;
}

static int arg_key_name(struct call *c, const char **ret)
{
	const char *why;
	int r = arg_string(c, "k", ret);

	if (r < 0)
		return r;
	why = key_name_check(*ret, strlen(*ret));
	if (why)
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "the key name %s (at most %d bytes of UTF-8 "
				 "text)", why, KEY_NAME_MAX);
	return 0;
}

/* Enough for xapi's keys (vdi-type, snapshot_*, tags, sm-config...). */
#define MAX_KEYS 256

static int edit_set(struct call *c, json_object *vol)
{
	json_object *keys = keys_of(vol);
	const char *k, *v;
	int r;

	if ((r = arg_key_name(c, &k)) < 0 ||
	    (r = arg_text(c, "v", TEXT_MAX, &v)) < 0)
		return r;
	if (!json_object_object_get_ex(keys, k, NULL) &&
	    json_object_object_length(keys) >= MAX_KEYS)
		return call_fail(c, -E2BIG, "Invalid_argument",
				 "volume already has %d keys", MAX_KEYS);
	json_add_string(keys, k, v);
	return 0;
}

static int edit_unset(struct call *c, json_object *vol)
{
	const char *k;
	int r = arg_key_name(c, &k);

	if (r == 0)
		json_object_object_del(keys_of(vol), k);
	return r;
}

int vp_volume_set_name(struct call *c, json_object **ret)
{
	(void)ret;
	return update_volume(c, edit_name);
}

int vp_volume_set_description(struct call *c, json_object **ret)
{
	(void)ret;
	return update_volume(c, edit_description);
}

int vp_volume_set(struct call *c, json_object **ret)
{
	(void)ret;
	return update_volume(c, edit_set);
}

int vp_volume_unset(struct call *c, json_object **ret)
{
	(void)ret;
	return update_volume(c, edit_unset);
}
