/* SPDX-License-Identifier: LGPL-2.1-only */
/* SR.* : one SR is one local filesystem (ext4 or XFS) on a block device. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "device.h"
#include "json-io.h"
#include "log.h"
#include "vp.h"

static void mount_dir(const char *uuid, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", host_paths()->mount_root, uuid);
}

/* device-config keys we understand; anything else is refused so that a
 * typo ("image_format") is not silently ignored */
static const char *const known_keys[] = { "device", "force", "image-format",
					  "preallocation", "sr_uuid", NULL };

static int check_config(struct call *c, json_object *config,
			enum sr_fmt *fmt, bool *force)
{
	const char *v;
	size_t i;

	json_object_object_foreach(config, k, val) {
		(void)val;
		for (i = 0; known_keys[i] && strcmp(known_keys[i], k); i++)
			;
		if (!known_keys[i])
			return call_fail(c, -EINVAL, "Invalid_argument",
					 "unknown device-config key '%.64s' "
					 "(known: device, force, image-format, "
					 "preallocation)", k);
	}
	*fmt = FMT_QCOW2;
	if (json_get_string(config, "image-format", &v) == 0 &&
	    sr_fmt_parse(v, fmt) < 0)
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "image-format must be qcow2, vhd or raw, not "
				 "'%.64s'", v);
	*force = false;
	if (json_get_string(config, "force", &v) == 0) {
		if (strcmp(v, "true") && strcmp(v, "false"))
			return call_fail(c, -EINVAL, "Invalid_argument",
					 "force must be true or false");
		*force = !strcmp(v, "true");
	}
	if (json_get_string(config, "preallocation", &v) == 0) {
		bool ok = !strcmp(v, "off") || !strcmp(v, "falloc") ||
			  !strcmp(v, "full") ||
			  (!strcmp(v, "metadata") && *fmt == FMT_QCOW2);

		if (!ok || *fmt == FMT_VHD)
			return call_fail(c, -EINVAL, "Invalid_argument",
					 "preallocation '%.64s' is not valid "
					 "for %s images", v,
					 sr_fmt_name(*fmt));
	}
	return 0;
}

static int arg_device(struct call *c, json_object *config, char *dev,
		      size_t len)
{
	char msg[512];
	const char *v;
	int r;

	if (json_get_string(config, "device", &v) < 0)
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "device-config needs 'device', the block "
				 "device to use (e.g. device=/dev/sdb)");
	if (device_path_from_config(v, dev, len) < 0)
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "device '%.200s' is not an absolute path",
				 v);
	r = device_check_block(dev, msg, sizeof(msg));
	if (r < 0)
		return call_fail(c, r, "Invalid_argument", "%s", msg);
	return 0;
}

static void describe_content(const struct device_content *dc, char *out,
			     size_t len)
{
	if (dc->ambivalent)
		snprintf(out, len, "several conflicting signatures");
	else if (dc->type[0] && !strcmp(dc->label, "ext4-ng"))
		snprintf(out, len, "the ext4-ng SR %s", dc->uuid);
	else if (dc->type[0] && !strcmp(dc->label, "xfs-ng"))
		snprintf(out, len, "the xfs-ng SR %s", dc->uuid);
	else if (dc->type[0])
		snprintf(out, len, "a %s filesystem%s%s", dc->type,
			 dc->label[0] ? " labelled " : "", dc->label);
	else if (dc->pttype[0])
		snprintf(out, len, "a %s partition table", dc->pttype);
	else
		snprintf(out, len, "nothing we recognise");
}

int vp_sr_create(struct call *c, json_object **ret)
{
	const struct volume_plugin *p = vp_plugin(c);
	const char *uuid, *name, *description;
	char dev[PATH_MAX], dir[PATH_MAX], src[PATH_MAX], msg[512], what[256];
	struct device_content dc;
	json_object *config, *out;
	enum sr_fmt fmt;
	bool force = false;
	int r;

	if ((r = arg_string(c, "uuid", &uuid)) < 0 ||
	    (r = arg_text(c, "name", TEXT_MAX, &name)) < 0 ||
	    (r = arg_text(c, "description", TEXT_MAX, &description)) < 0 ||
	    (r = arg_map(c, "configuration", &config)) < 0)
		return r;
	if (!uuid_is_valid(uuid))
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "the SR uuid '%.64s' is not a UUID", uuid);
	if ((r = check_config(c, config, &fmt, &force)) < 0 ||
	    (r = arg_device(c, config, dev, sizeof(dev))) < 0)
		return r;
	r = device_check_unused(dev);
	if (r < 0) {
		if (mount_point_of_device(dev, dir, sizeof(dir)) == 1)
			return call_fail(c, r, "Device_in_use",
					 "%s is mounted at %s", dev, dir);
		return call_fail(c, r, "Device_in_use",
				 "%s is in use by another program or device "
				 "(%s)", dev, strerror(-r));
	}
	r = device_probe(dev, &dc);
	if (r < 0)
		return call_fail(c, r, "Storage_error",
				 "cannot read %s: %s", dev, strerror(-r));
	if ((dc.type[0] || dc.pttype[0] || dc.ambivalent) && !force) {
		describe_content(&dc, what, sizeof(what));
		return call_fail(c, -EEXIST, "Device_not_empty",
				 "%s already holds %s; to erase it and create "
				 "the SR anyway, add device-config:force=true",
				 dev, what);
	}
	mount_dir(uuid, dir, sizeof(dir));
	if (mount_source_of(dir, src, sizeof(src)) == 1)
		return call_fail(c, -EEXIST, "SR_exists",
				 "an SR with uuid %s is already attached "
				 "(%s on %s)", uuid, src, dir);
	log_info("creating %s SR %s on %s", p->type, uuid, dev);
	r = fs_mkfs(p->fs, dev, uuid, msg, sizeof(msg));
	if (r < 0)
		return call_fail(c, r, "Storage_error",
				 "mkfs.%s on %s failed: %s", fs_name(p->fs),
				 dev, msg);
	r = mkdir_p(dir, 0755);
	if (r < 0)
		return call_fail(c, r, "Storage_error",
				 "cannot create the mount point %s: %s", dir,
				 strerror(-r));
	r = fs_mount(p->fs, dev, dir, false, msg, sizeof(msg));
	if (r < 0) {
		rmdir(dir);
		return call_fail(c, r, "Storage_error",
				 "cannot mount the new filesystem: %s", msg);
	}
	r = sr_format(dir, uuid, p->type, name, description, fmt);
	if (r == 0) {
		const char *v;

		/* keep the format choices with the SR, not only in xapi */
		if (json_get_string(config, "preallocation", &v) == 0) {
			struct sr sr;

			if (sr_open(dir, p->type, SR_LOCK_EXCLUSIVE, &sr) == 0) {
				json_add_string(sr.info, "preallocation", v);
				r = sr_save_info(&sr);
				sr_close(&sr);
			}
		}
	}
	if (fs_umount(dir, msg, sizeof(msg)) < 0 && r == 0)
		r = -EBUSY;
	rmdir(dir);
	if (r < 0)
		return call_fail(c, r, "Storage_error",
				 "cannot initialise the SR on %s: %s", dev,
				 strerror(-r));
	/* a copy we may edit: the caller's object stays as given */
	out = json_new_object();
	json_object_object_foreach(config, k, v) {
		json_add(out, k, json_object_get(v));
	}
	json_add_string(out, "device", dev);
	json_add_string(out, "sr_uuid", uuid);
	*ret = out;
	return 0;
}

/* Same block device?  (Paths differ: /dev/loop0 vs /dev/disk/by-uuid/...) */
static bool same_device(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       S_ISBLK(sa.st_mode) && sa.st_rdev == sb.st_rdev;
}

int vp_sr_attach(struct call *c, json_object **ret)
{
	const struct volume_plugin *p = vp_plugin(c);
	char dev[PATH_MAX], dir[PATH_MAX], src[PATH_MAX], msg[512];
	const char *uuid, *v;
	struct device_content dc;
	json_object *config;
	struct sr sr;
	int r;

	if ((r = arg_map(c, "configuration", &config)) < 0)
		return r;
	if (json_get_string(config, "sr_uuid", &uuid) < 0 ||
	    !uuid_is_valid(uuid))
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "device-config needs 'sr_uuid' (SR.create "
				 "returns it)");
	/* by filesystem uuid first: device names change across reboots */
	if (device_find_by_uuid(uuid, dev, sizeof(dev)) < 0) {
		if (json_get_string(config, "device", &v) < 0 ||
		    device_path_from_config(v, dev, sizeof(dev)) < 0)
			return call_fail(c, -ENODEV, "SR_not_found",
					 "no device holds the SR %s", uuid);
	}
	r = device_check_block(dev, msg, sizeof(msg));
	if (r < 0)
		return call_fail(c, r, "SR_not_found", "SR %s: %s", uuid, msg);
	mount_dir(uuid, dir, sizeof(dir));
	if (mount_source_of(dir, src, sizeof(src)) == 1) {
		if (!same_device(src, dev))
			return call_fail(c, -EBUSY, "Device_in_use",
					 "%s is already a mount point for %s",
					 dir, src);
		goto check;	/* attached already: attach is idempotent */
	}
	r = device_probe(dev, &dc);
	if (r < 0 || strcmp(dc.type, fs_name(p->fs)) || strcmp(dc.uuid, uuid))
		return call_fail(c, -EMEDIUMTYPE, "SR_not_found",
				 "%s does not hold the %s SR %s (found %s %s)",
				 dev, p->type, uuid,
				 dc.type[0] ? dc.type : "no filesystem",
				 dc.uuid);
	r = mkdir_p(dir, 0755);
	if (r < 0)
		return call_fail(c, r, "Storage_error",
				 "cannot create the mount point %s: %s", dir,
				 strerror(-r));
	r = fs_mount(p->fs, dev, dir, false, msg, sizeof(msg));
	if (r < 0) {
		rmdir(dir);
		return call_fail(c, r, "Storage_error",
				 "cannot mount %s on %s: %s", dev, dir, msg);
	}
check:
	r = sr_open(dir, p->type, SR_LOCK_EXCLUSIVE, &sr);
	if (r < 0) {
		(void)fs_umount(dir, msg, sizeof(msg));
		rmdir(dir);
		return call_fail(c, r, "SR_not_found",
				 "%s holds a filesystem with uuid %s but not a "
				 "%s SR (%s)", dev, uuid, p->type,
				 strerror(-r));
	}
	/* finish what crashed calls left: unreferenced images, temp files */
	if (sr_collect_garbage(&sr, true) < 0)
		log_warn("SR %s: garbage collection failed", uuid);
	else
		vp_coalesce_kick(&sr);
	sr_close(&sr);
	log_info("attached SR %s (%s) at %s", uuid, dev, dir);
	*ret = json_new_string(dir);
	return 0;
}

static int refuse_if_any_active(struct call *c, struct sr *sr,
				const char *what)
{
	char key[UUID_STR_LEN];
	int n = sr_count_active(sr, key, sizeof(key));

	if (n > 0)
		return call_fail(c, -EBUSY, "SR_in_use",
				 "cannot %s SR %s: %d volume%s active (e.g. "
				 "%s); deactivate %s first", what, sr->uuid, n,
				 n == 1 ? " is" : "s are", key,
				 n == 1 ? "it" : "them");
	return n < 0 ? call_fail(c, n, "Storage_error",
				 "cannot list active volumes: %s",
				 strerror(-n)) : 0;
}

int vp_sr_detach(struct call *c, json_object **ret)
{
	char src[PATH_MAX], msg[512];
	const char *handle;
	struct sr sr;
	int r;

	(void)ret;
	if ((r = arg_string(c, "sr", &handle)) < 0)
		return r;
	if (!sr_handle_is_plausible(handle) ||
	    mount_source_of(handle, src, sizeof(src)) != 1)
		return 0;	/* not attached: nothing to do */
	r = vp_open_sr(c, SR_LOCK_EXCLUSIVE, &sr);
	if (r < 0)
		return r;
	r = refuse_if_any_active(c, &sr, "detach");
	if (r == 0)
		vp_coalesce_stop(handle);
	/* the lock file lives on the filesystem: close before unmounting */
	sr_close(&sr);
	if (r < 0)
		return r;
	r = fs_umount(handle, msg, sizeof(msg));
	if (r < 0)
		return call_fail(c, r, "SR_in_use", "cannot unmount %s: %s",
				 handle, msg);
	rmdir(handle);
	log_info("detached SR at %s", handle);
	return 0;
}

int vp_sr_destroy(struct call *c, json_object **ret)
{
	char src[PATH_MAX], msg[512];
	const char *handle;
	struct sr sr;
	int r;

	(void)ret;
	if ((r = arg_string(c, "sr", &handle)) < 0)
		return r;
	r = vp_open_sr(c, SR_LOCK_EXCLUSIVE, &sr);
	if (r < 0)
		return r;
	r = refuse_if_any_active(c, &sr, "destroy");
	if (r == 0 && mount_source_of(handle, src, sizeof(src)) != 1)
		r = call_fail(c, -ENOENT, "Sr_not_attached",
			      "%s is not a mount point", handle);
	if (r == 0)
		vp_coalesce_stop(handle);
	sr_close(&sr);
	if (r < 0)
		return r;
	r = fs_umount(handle, msg, sizeof(msg));
	if (r < 0)
		return call_fail(c, r, "SR_in_use", "cannot unmount %s: %s",
				 handle, msg);
	rmdir(handle);
	/* erase the filesystem signature: the device no longer probes as an
	 * SR and can be reused without force=true */
	r = device_wipe(src);
	if (r < 0)
		return call_fail(c, r, "Storage_error",
				 "SR unmounted but wiping %s failed: %s", src,
				 strerror(-r));
	log_info("destroyed SR on %s", src);
	return 0;
}

static json_object *stat_of(int dirfd, json_object *info, const char *handle,
			    const char *uuid, bool probing,
			    const char *gc_blocked)
{
	json_object *out = json_new_object(), *health = json_new_array();
	struct statvfs sv;

	json_add_string(out, "sr", handle);
	json_add_string(out, "name", rec_str(info, "name"));
	json_add_string(out, "uuid", uuid);
	json_add_string(out, "description", rec_str(info, "description"));
	if (fstatvfs(dirfd, &sv) == 0) {
		json_add_int64(out, "free_space",
			       (int64_t)(sv.f_bavail * sv.f_frsize));
		json_add_int64(out, "total_space",
			       (int64_t)(sv.f_blocks * sv.f_frsize));
	} else {
		json_add_int64(out, "free_space", 0);
		json_add_int64(out, "total_space", 0);
	}
	json_add(out, "datasources", json_new_array());
	json_add_bool(out, "clustered", false);
	/* real checks: the filesystem answers and still takes writes */
	if (fstatvfs(dirfd, &sv) < 0) {
		json_object_array_add(health, json_new_string("Unreachable"));
		json_object_array_add(health, json_new_string(
			"the SR filesystem does not answer"));
	} else if ((sv.f_flag & ST_RDONLY) && !probing) {
		json_object_array_add(health, json_new_string("Unavailable"));
		json_object_array_add(health, json_new_string(
			"the SR filesystem is read-only (remounted after an "
			"I/O error?): check the kernel log and the device"));
	} else if (!probing &&
		   faccessat(dirfd, "meta", W_OK, AT_EACCESS) < 0) {
		json_object_array_add(health, json_new_string("Unavailable"));
		json_object_array_add(health, json_new_string(
			"the SR metadata directory is not writable"));
	} else if (gc_blocked && gc_blocked[0]) {
		json_object_array_add(health, json_new_string("Unavailable"));
		json_object_array_add(health, json_new_string(gc_blocked));
	} else {
		json_object_array_add(health, json_new_string("Healthy"));
		json_object_array_add(health, json_new_string(""));
	}
	json_add(out, "health", health);
	return out;
}

static json_object *stat_record(struct sr *sr)
{
	char why[1024];

	sr_gc_blocked_reason(sr, why, sizeof(why));
	return stat_of(sr->dirfd, sr->info, sr->path, sr->uuid, false, why);
}

int vp_sr_stat(struct call *c, json_object **ret)
{
	struct sr sr;
	int r = vp_open_sr(c, SR_LOCK_SHARED, &sr);

	if (r < 0)
		return r;
	*ret = stat_record(&sr);
	vp_coalesce_kick(&sr);
	sr_close(&sr);
	return 0;
}

static int update_info(struct call *c, const char *param, const char *field)
{
	const char *v;
	struct sr sr;
	int r;

	if ((r = arg_text(c, param, TEXT_MAX, &v)) < 0 ||
	    (r = vp_open_sr(c, SR_LOCK_EXCLUSIVE, &sr)) < 0)
		return r;
	json_add_string(sr.info, field, v);
	r = sr_save_info(&sr);
	if (r < 0)
		r = vp_fail_errno(c, r, "cannot save the SR metadata");
	sr_close(&sr);
	return r;
}

int vp_sr_set_name(struct call *c, json_object **ret)
{
	(void)ret;
	return update_info(c, "new_name", "name");
}

int vp_sr_set_description(struct call *c, json_object **ret)
{
	(void)ret;
	return update_info(c, "new_description", "description");
}

int vp_sr_ls(struct call *c, json_object **ret)
{
	json_object *vols, *out, *hidden;
	struct sr sr;
	size_t i, n;
	int r;

	r = vp_open_sr(c, SR_LOCK_SHARED, &sr);
	if (r < 0)
		return r;
	r = sr_scan(&sr, &vols, NULL);
	if (r < 0) {
		/* a partial list would make xapi forget the missing VDIs */
		r = r == -EUCLEAN ?
			call_fail(c, r, "SR_corrupt", "cannot list SR %s: %s; "
				  "repair that file (or move it out of meta/) "
				  "and scan again", sr.uuid, sr.problem) :
			vp_fail_errno(c, r, "cannot list the SR");
		sr_close(&sr);
		return r;
	}
	/* xapi's temporary reset-on-boot clones are not VDIs of their own */
	hidden = json_new_object();
	n = json_object_array_length(vols);
	for (i = 0; i < n; i++) {
		json_object *keys, *cob;

		if (json_object_object_get_ex(json_object_array_get_idx(vols, i),
					      "keys", &keys) && keys &&
		    json_object_object_get_ex(keys, "clone-on-boot", &cob) &&
		    json_object_is_type(cob, json_type_string))
			json_add_bool(hidden, json_object_get_string(cob),
				      true);
	}
	out = json_new_array();
	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(vols, i);

		if (json_object_object_get_ex(hidden, rec_str(v, "key"), NULL))
			continue;
		/* report an interrupted resize at the image's real size */
		(void)vp_settle_resize(&sr, v, false);
		json_object_array_add(out, vp_volume_to_xapi(&sr, v));
	}
	json_object_put(hidden);
	json_object_put(vols);
	sr_close(&sr);
	*ret = out;
	return 0;
}

/* The sr_stat of an SR that is attached, or mounted read-only for a moment
 * in a private directory (probe must not attach anything). */
static json_object *probe_sr_stat(const struct volume_plugin *p,
				  const char *dev, const char *uuid)
{
	char dir[PATH_MAX], src[PATH_MAX], handle[PATH_MAX], msg[512];
	CLEANUP_FREE char *buf = NULL;
	json_object *st = NULL, *info = NULL;
	int fd;

	mount_dir(uuid, handle, sizeof(handle));
	if (mount_source_of(handle, src, sizeof(src)) == 1) {
		struct sr sr;

		if (sr_open(handle, p->type, SR_LOCK_SHARED, &sr) == 0) {
			st = stat_record(&sr);
			sr_close(&sr);
		}
		return st;
	}
	if (mount_point_of_device(dev, src, sizeof(src)) == 1)
		return NULL;	/* mounted elsewhere: leave it alone */
	snprintf(dir, sizeof(dir), "%s/probe-%s", host_paths()->run_dir, uuid);
	if (mkdir_p(dir, 0700) < 0)
		return NULL;
	if (fs_mount(p->fs, dev, dir, true, msg, sizeof(msg)) < 0) {
		rmdir(dir);
		return NULL;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && read_file_at(fd, ".sr/sr.json", RECORD_READ_MAX, &buf, NULL) == 0 &&
	    json_parse_exact(buf, strlen(buf), &info) == 0 &&
	    json_object_is_type(info, json_type_object) &&
	    !strcmp(rec_str(info, "type"), p->type))
		st = stat_of(fd, info, handle, uuid, true, NULL);
	json_object_put(info);
	if (fd >= 0)
		close(fd);
	(void)fs_umount(dir, msg, sizeof(msg));
	rmdir(dir);
	return st;
}

int vp_sr_probe(struct call *c, json_object **ret)
{
	const struct volume_plugin *p = vp_plugin(c);
	json_object *config, *out, *res, *cfg, *extra, *st;
	struct device_content dc;
	char dev[PATH_MAX], what[256];
	int r;

	if ((r = arg_map(c, "configuration", &config)) < 0 ||
	    (r = arg_device(c, config, dev, sizeof(dev))) < 0)
		return r;
	r = device_probe(dev, &dc);
	if (r < 0)
		return call_fail(c, r, "Storage_error", "cannot read %s: %s",
				 dev, strerror(-r));
	out = json_new_array();
	res = json_new_object();
	cfg = json_new_object();
	extra = json_new_object();
	json_add_string(cfg, "device", dev);
	describe_content(&dc, what, sizeof(what));
	json_add_string(extra, "content", dc.type[0] ? dc.type :
			dc.pttype[0] ? dc.pttype : "");
	json_add_string(extra, "summary", what);
	if (!dc.ambivalent && !strcmp(dc.type, fs_name(p->fs)) &&
	    !strcmp(dc.label, fs_label(p->fs)) && uuid_is_valid(dc.uuid) &&
	    (st = probe_sr_stat(p, dev, dc.uuid))) {
		/* one of our SRs: attachable as it is */
		json_add_string(cfg, "sr_uuid", dc.uuid);
		json_add(res, "sr", st);
		json_add_bool(res, "complete", true);
	} else if (!dc.type[0] && !dc.pttype[0] && !dc.ambivalent) {
		/* empty: SR.create can use it with this configuration */
		json_add_bool(res, "complete", true);
	} else {
		/* holds something else: SR.create would need force=true */
		json_add_bool(res, "complete", false);
		json_add_string(extra, "note", "SR.create refuses this device "
				"unless device-config:force=true is given");
	}
	json_add(res, "configuration", cfg);
	json_add(res, "extra_info", extra);
	json_object_array_add(out, res);
	*ret = out;
	return 0;
}
