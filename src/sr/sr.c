/* SPDX-License-Identifier: LGPL-2.1-only */
/* SR layout, records and the per-SR lock (see include/sr/sr.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "json-io.h"
#include "lock.h"
#include "log.h"
#include "sr.h"

int sr_fmt_parse(const char *s, enum sr_fmt *ret)
{
	if (!strcmp(s, "qcow2"))
		*ret = FMT_QCOW2;
	else if (!strcmp(s, "vhd") || !strcmp(s, "vpc"))
		*ret = FMT_VHD;
	else if (!strcmp(s, "raw"))
		*ret = FMT_RAW;
	else
		return -EINVAL;
	return 0;
}

const char *sr_fmt_name(enum sr_fmt f)
{
	return f == FMT_QCOW2 ? "qcow2" : f == FMT_VHD ? "vhd" : "raw";
}

const char *sr_fmt_qemu(enum sr_fmt f)
{
	return f == FMT_QCOW2 ? "qcow2" : f == FMT_VHD ? "vpc" : "raw";
}

uint64_t sr_fmt_max_size(enum sr_fmt f)
{
	/* VHD: 32-bit sector BAT entries and CHS geometry cap it at 2040 GiB.
	 * qcow2/raw: we stop at 64 TiB, far above any VM disk we serve and
	 * within what qemu-img and ext4 (16 TiB files) / XFS handle; ext4's
	 * own limit is reported by the filesystem when it applies. */
	if (f == FMT_VHD)
		return 2040ULL << 30;
	return 64ULL << 40;
}

bool sr_handle_is_plausible(const char *handle)
{
	const char *root = host_paths()->mount_root;
	size_t n = strlen(root);

	return strncmp(handle, root, n) == 0 && handle[n] == '/' &&
	       uuid_is_valid(handle + n + 1);
}

const char *rec_str(json_object *rec, const char *key)
{
	const char *s;

	return json_get_string(rec, key, &s) == 0 ? s : "";
}

int64_t rec_int(json_object *rec, const char *key)
{
	int64_t v;

	return json_get_int64(rec, key, &v) == 0 ? v : 0;
}

bool rec_bool(json_object *rec, const char *key)
{
	bool v;

	return json_get_bool(rec, key, &v) == 0 ? v : false;
}

static int load_record(int dirfd, const char *name, json_object **ret)
{
	CLEANUP_FREE char *buf = NULL;
	size_t len;
	int r;

	r = read_file_at(dirfd, name, RECORD_READ_MAX, &buf, &len);
	if (r < 0)
		return r;
	r = json_parse_exact(buf, len, ret);
	if (r < 0) {
		log_error("metadata file '%s' is corrupt", name);
		return -EUCLEAN;
	}
	if (!json_object_is_type(*ret, json_type_object)) {
		json_object_put(*ret);
		log_error("metadata file '%s' is not an object", name);
		return -EUCLEAN;
	}
	return 0;
}

int sr_open(const char *handle, const char *type, enum sr_lock_mode mode,
	    struct sr *ret)
{
	struct sr sr = { .dirfd = -1, .metafd = -1, .imagesfd = -1,
			 .lockfd = -1 };
	char lockpath[PATH_MAX + 16];
	const char *s;
	int r;

	if (strlen(handle) >= sizeof(sr.path) || !sr_handle_is_plausible(handle))
		return -ENOENT;
	snprintf(sr.path, sizeof(sr.path), "%s", handle);
	sr.dirfd = open(handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (sr.dirfd < 0)
		return -ENOENT;
	/* lock before reading sr.json: a reader must see the last complete
	 * update, and a writer must not lose a concurrent one */
	if (mode != SR_LOCK_NONE) {
		snprintf(lockpath, sizeof(lockpath), "%s/.sr/lock", handle);
		sr.lockfd = lock_file(lockpath, mode == SR_LOCK_EXCLUSIVE,
				      SR_LOCK_TIMEOUT_MS);
		if (sr.lockfd < 0) {
			/* no .sr/: an empty mount point, not attached */
			r = sr.lockfd;
			goto fail;
		}
	}
	r = load_record(sr.dirfd, ".sr/sr.json", &sr.info);
	if (r < 0)
		goto fail;	/* -ENOENT: the SR is not attached */
	if (json_get_string(sr.info, "uuid", &s) < 0 || !uuid_is_valid(s) ||
	    strcmp(s, handle + strlen(handle) - 36)) {
		log_error("%s/.sr/sr.json does not match its mount point", handle);
		r = -EUCLEAN;
		goto fail;
	}
	snprintf(sr.uuid, sizeof(sr.uuid), "%s", s);
	snprintf(sr.type, sizeof(sr.type), "%s", rec_str(sr.info, "type"));
	if (type && strcmp(sr.type, type)) {
		log_error("SR %s is of type '%s', not '%s'", sr.uuid, sr.type,
			  type);
		r = -EMEDIUMTYPE;
		goto fail;
	}
	sr.metafd = openat(sr.dirfd, "meta", O_RDONLY | O_DIRECTORY |
			   O_CLOEXEC | O_NOFOLLOW);
	sr.imagesfd = openat(sr.dirfd, "images", O_RDONLY | O_DIRECTORY |
			     O_CLOEXEC | O_NOFOLLOW);
	if (sr.metafd < 0 || sr.imagesfd < 0) {
		log_error("SR %s lacks its meta/ or images/ directory", sr.uuid);
		r = -EUCLEAN;
		goto fail;
	}
	*ret = sr;
	return 0;
fail:
	sr_close(&sr);
	return r;
}

void sr_close(struct sr *sr)
{
	if (sr->info)
		json_object_put(sr->info);
	sr->info = NULL;
	if (sr->metafd >= 0)
		close(sr->metafd);
	if (sr->imagesfd >= 0)
		close(sr->imagesfd);
	if (sr->dirfd >= 0)
		close(sr->dirfd);
	unlock_file(sr->lockfd);
	sr->metafd = sr->imagesfd = sr->dirfd = sr->lockfd = -1;
}

int sr_save_info(struct sr *sr)
{
	const char *text = json_to_text(sr->info);
	CLEANUP_CLOSE int fd = openat(sr->dirfd, ".sr", O_RDONLY | O_DIRECTORY |
				      O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (strlen(text) > RECORD_WRITE_MAX)
		return -E2BIG;
	return write_file_atomic_at(fd, "sr.json", text, strlen(text));
}

enum sr_fmt sr_default_format(struct sr *sr)
{
	enum sr_fmt f;

	if (sr_fmt_parse(rec_str(sr->info, "image-format"), &f) < 0)
		f = FMT_QCOW2;
	return f;
}

int sr_format(const char *path, const char *uuid, const char *type,
	      const char *name, const char *description, enum sr_fmt fmt)
{
	static const char *const dirs[] = { ".sr", ".sr/active", "meta",
					    "images" };
	CLEANUP_CLOSE int dirfd = -1, srfd = -1;
	json_object *info;
	size_t i;
	int r;

	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (mkdirat(dirfd, dirs[i], 0700) < 0 && errno != EEXIST)
			return -errno;
	srfd = openat(dirfd, ".sr", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srfd < 0)
		return -errno;
	info = json_new_object();
	json_add_string(info, "uuid", uuid);
	json_add_string(info, "type", type);
	json_add_string(info, "name", name);
	json_add_string(info, "description", description);
	json_add_string(info, "image-format", sr_fmt_name(fmt));
	json_add_int64(info, "layout-version", 1);
	r = write_file_atomic_at(srfd, "sr.json", json_to_text(info),
				 strlen(json_to_text(info)));
	json_object_put(info);
	if (r == 0)
		r = fsync_dir_at(dirfd, ".");
	return r;
}

int sr_volume_load(struct sr *sr, const char *key, json_object **ret)
{
	char name[64];

	if (!volume_key_is_valid(key))
		return -ENOENT;
	snprintf(name, sizeof(name), "v-%s.json", key);
	return load_record(sr->metafd, name, ret);
}

int sr_image_load(struct sr *sr, const char *id, json_object **ret)
{
	char name[64];

	if (!volume_key_is_valid(id))
		return -EUCLEAN;
	snprintf(name, sizeof(name), "i-%s.json", id);
	return load_record(sr->metafd, name, ret);
}

static int stage_record(struct sr *sr, const char *prefix, json_object *rec,
			struct staged_file *f)
{
	const char *id = rec_str(rec, prefix[0] == 'v' ? "key" : "id");
	const char *text = json_to_text(rec);
	char name[64];

	if (!volume_key_is_valid(id))
		return -EINVAL;
	if (strlen(text) > RECORD_WRITE_MAX)
		return -E2BIG;
	snprintf(name, sizeof(name), "%s-%s.json", prefix, id);
	return stage_file_at(sr->metafd, name, text, strlen(text), f);
}

int sr_stage_volume(struct sr *sr, json_object *vol, struct staged_file *f)
{
	return stage_record(sr, "v", vol, f);
}

int sr_stage_image(struct sr *sr, json_object *img, struct staged_file *f)
{
	return stage_record(sr, "i", img, f);
}

int sr_commit(struct sr *sr, struct staged_file *f, size_t n)
{
	return commit_staged_at(sr->metafd, f, n);
}

void sr_abort(struct sr *sr, struct staged_file *f, size_t n)
{
	abort_staged_at(sr->metafd, f, n);
}

void sr_image_filename(const char *id, enum sr_fmt fmt, char *out,
		       size_t len)
{
	snprintf(out, len, "%s.%s", id, sr_fmt_name(fmt));
}

int sr_image_fmt(json_object *img, enum sr_fmt *ret)
{
	return sr_fmt_parse(rec_str(img, "format"), ret);
}

/* A record's content is what its file name says it is, with valid links. */
static const char *record_problem(json_object *rec, bool is_vol,
				  const char *id)
{
	enum sr_fmt f;
	const char *v;

	if (strcmp(rec_str(rec, is_vol ? "key" : "id"), id))
		return "its key does not match its file name";
	if (is_vol) {
		v = rec_str(rec, "image");
		if (!volume_key_is_valid(v))
			return "it names no valid image";
		return NULL;
	}
	if (sr_image_fmt(rec, &f) < 0)
		return "it has an unknown image format";
	v = rec_str(rec, "parent");
	if (v[0] && !volume_key_is_valid(v))
		return "its parent is not a valid image id";
	return NULL;
}

int sr_scan(struct sr *sr, json_object **ret_volumes, json_object **ret_images)
{
	int fd = openat(sr->metafd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CLEANUP_CLOSEDIR DIR *d = NULL;
	json_object *vols = NULL, *imgs = NULL;
	struct dirent *de;
	int r = 0;

	sr->problem[0] = '\0';
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	vols = json_new_array();
	imgs = json_new_object();
	while ((de = readdir(d))) {
		const char *n = de->d_name, *why = NULL;
		size_t len = strlen(n);
		char id[UUID_STR_LEN];
		json_object *rec = NULL;
		bool is_vol = n[0] == 'v', is_img = n[0] == 'i';

		/* ours are v-<uuid>.json and i-<uuid>.json; temp files are
		 * hidden (.tmp-...) and collected by the sweep */
		if (n[0] == '.' || (!is_vol && !is_img) || n[1] != '-')
			continue;
		if (len != 2 + 36 + 5 || strcmp(n + len - 5, ".json")) {
			why = "it is not a record name this plugin writes";
		} else {
			snprintf(id, sizeof(id), "%.36s", n + 2);
			r = load_record(sr->metafd, n, &rec);
			if (r == -ENOENT)	/* deleted meanwhile (no lock) */
				continue;
			if (r < 0)
				why = r == -EFBIG ? "it is larger than the reader "
					"accepts" : r == -EUCLEAN ? "it is not "
					"a complete JSON record (truncated or "
					"corrupt)" : strerror(-r);
			else
				why = record_problem(rec, is_vol, id);
		}
		if (why) {
			snprintf(sr->problem, sizeof(sr->problem),
				 "metadata file meta/%.60s cannot be used: %s",
				 n, why);
			log_error("SR %s: %s", sr->uuid, sr->problem);
			json_object_put(rec);
			r = -EUCLEAN;
			break;
		}
		if (is_vol)
			json_object_array_add(vols, rec);
		else
			json_add(imgs, id, rec);
	}
	if (r < 0) {
		json_object_put(vols);
		json_object_put(imgs);
		return r;
	}
	if (ret_volumes)
		*ret_volumes = vols;
	else
		json_object_put(vols);
	if (ret_images)
		*ret_images = imgs;
	else
		json_object_put(imgs);
	return 0;
}

#define GC_BLOCKED ".sr/gc-blocked"

void sr_gc_blocked_reason(struct sr *sr, char *out, size_t len)
{
	CLEANUP_FREE char *buf = NULL;

	out[0] = '\0';
	if (read_file_at(sr->dirfd, GC_BLOCKED, 4096, &buf, NULL) == 0)
		snprintf(out, len, "%s", buf);
}

static void gc_blocked_set(struct sr *sr, const char *why)
{
	CLEANUP_CLOSE int fd = openat(sr->dirfd, ".sr", O_RDONLY | O_DIRECTORY |
				      O_CLOEXEC);

	if (fd < 0)
		return;
	if (why)
		(void)write_file_atomic_at(fd, "gc-blocked", why, strlen(why));
	else if (faccessat(fd, "gc-blocked", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		(void)unlink_durable_at(fd, "gc-blocked");
}

/* "<image file>.<bitmap>.cbt": a raw or VHD image's bitmaps (CBT) */
static void remove_sidecars(struct sr *sr, const char *file)
{
	int fd = openat(sr->imagesfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	size_t n = strlen(file), len;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		len = strlen(de->d_name);
		if (len > n + 5 && !strncmp(de->d_name, file, n) &&
		    de->d_name[n] == '.' &&
		    !strcmp(de->d_name + len - 4, ".cbt") &&
		    unlinkat(sr->imagesfd, de->d_name, 0) < 0)
			log_warn("cannot remove %s: %m", de->d_name);
	}
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
}

static int delete_image(struct sr *sr, json_object *img)
{
	const char *id = rec_str(img, "id");
	enum sr_fmt fmt;
	char name[80];
	int r;

	/* record first: a crash then leaves an unreferenced file, which the
	 * sweep removes, never a record pointing at a missing file */
	snprintf(name, sizeof(name), "i-%s.json", id);
	r = unlink_durable_at(sr->metafd, name);
	if (r < 0)
		return r;
	if (sr_image_fmt(img, &fmt) == 0) {
		sr_image_filename(id, fmt, name, sizeof(name));
		if (unlinkat(sr->imagesfd, name, 0) < 0 && errno != ENOENT)
			log_warn("cannot remove image %s: %m", name);
		remove_sidecars(sr, name);
	}
	log_info("deleted image %s", id);
	return 0;
}

int sr_collect_garbage(struct sr *sr, bool sweep)
{
	json_object *vols = NULL, *imgs = NULL, *refs;
	bool changed = true;
	size_t i;
	int r;

	r = sr_scan(sr, &vols, &imgs);
	if (r < 0) {
		/* never act on a partial view: an unread record may be what
		 * keeps an image alive */
		if (r == -EUCLEAN) {
			char why[700];

			snprintf(why, sizeof(why), "%s; garbage collection is "
				 "stopped until it is repaired or moved out of "
				 "meta/", sr->problem);
			gc_blocked_set(sr, why);
		}
		return r;
	}
	gc_blocked_set(sr, NULL);
	refs = json_new_object();
	for (i = 0; i < json_object_array_length(vols); i++)
		if (sr_volume_has_data(json_object_array_get_idx(vols, i)))
			json_count(refs, rec_str(json_object_array_get_idx(
					vols, i), "image"));
	{
		json_object_object_foreach(imgs, k, img) {
			(void)k;
			json_count(refs, rec_str(img, "parent"));
		}
	}
	/* delete unreferenced images until a fixed point: a parent becomes
	 * unreferenced when its last child goes */
	while (changed && r == 0) {
		changed = false;
		json_object_object_foreach(imgs, k, img) {
			json_object *pv;
			const char *parent;

			if (!img || json_counted(refs, k) > 0)
				continue;
			parent = rec_str(img, "parent");
			if (parent[0] &&
			    json_object_object_get_ex(refs, parent, &pv))
				json_object_set_int64(
					pv, json_object_get_int64(pv) - 1);
			r = delete_image(sr, img);
			if (r < 0)
				break;
			json_object_object_del(imgs, k);
			changed = true;
			break;	/* the iterator is invalid after a delete */
		}
	}
	if (r == 0 && sweep) {
		/* image files without a record: left by a crash mid-create */
		int fd = openat(sr->imagesfd, ".", O_RDONLY | O_DIRECTORY |
				O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		while (d && (de = readdir(d))) {
			char idbuf[UUID_STR_LEN];
			const char *dot = strchr(de->d_name, '.');

			/* ".<id>.vhd.XXXXXX": the VHD writer's temp file */
			if (de->d_name[0] == '.' && strlen(de->d_name) > 37 &&
			    de->d_name[37] == '.') {
				snprintf(idbuf, sizeof(idbuf), "%.36s",
					 de->d_name + 1);
				if (uuid_is_valid(idbuf))
					(void)unlinkat(sr->imagesfd, de->d_name,
						       0);
				continue;
			}
			if (de->d_name[0] == '.' || !dot ||
			    dot - de->d_name != 36)
				continue;
			snprintf(idbuf, sizeof(idbuf), "%.36s", de->d_name);
			if (json_object_object_get_ex(imgs, idbuf, NULL))
				continue;
			log_info("removing orphan image file %s", de->d_name);
			(void)unlinkat(sr->imagesfd, de->d_name, 0);
		}
		if (d)
			closedir(d);
		else if (fd >= 0)
			close(fd);
		remove_stale_temps_at(sr->imagesfd);
		remove_stale_temps_at(sr->metafd);
	}
	json_object_put(refs);
	json_object_put(vols);
	json_object_put(imgs);
	return r;
}

int64_t sr_file_allocated(struct sr *sr, const char *relpath)
{
	struct stat st;

	if (fstatat(sr->dirfd, relpath, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return (int64_t)st.st_blocks * 512;
}

int sr_volume_load_why(struct sr *sr, const char *key, json_object **ret,
		       struct sr_why *why)
{
	int r = sr_volume_load(sr, key, ret);

	if (r == -ENOENT) {
		why->code = "Volume_does_not_exist";
		snprintf(why->text, sizeof(why->text),
			 "there is no volume %s in SR %s", key, sr->uuid);
	} else if (r < 0) {
		why->code = "SR_corrupt";
		snprintf(why->text, sizeof(why->text),
			 "the metadata of volume %s cannot be read: %s", key,
			 strerror(-r));
	}
	return r;
}

void sr_volume_image(const json_object *vol, char *out, size_t len)
{
	enum sr_fmt fmt;

	if (sr_fmt_parse(rec_str((json_object *)vol, "image-format"),
			    &fmt) < 0)
		fmt = FMT_QCOW2;
	snprintf(out, len, "images/");
	sr_image_filename(rec_str((json_object *)vol, "image"), fmt,
			  out + strlen(out), len - strlen(out));
}
