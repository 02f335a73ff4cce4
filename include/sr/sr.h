/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The on-disk model of an SR, shared by the volume and datapath plugins.
 *
 * <mount>/                       the SR handle xapi passes around
 *   .sr/sr.json                  uuid, type, name, description, image-format
 *   .sr/lock                     flock: shared for readers, exclusive for changes
 *   .sr/active/<key>.json        activation records (datapath plugin)
 *   meta/v-<key>.json            one volume: name, keys, image id, ...
 *   meta/i-<id>.json             one image file: format, parent image id
 *   images/<id>.<ext>            the image files (qcow2, vhd, raw)
 *
 * Volumes point at images; images point at their parent (backing file).
 * A writable volume owns a leaf image alone.  Read-only volumes (snapshots)
 * point at immutable images, which may be shared.  An image no volume and
 * no child image references is garbage and is deleted; one that only
 * children reference is "hidden" (kept until they go).
 */
#ifndef SR_H
#define SR_H

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "fileio.h"
#include "host.h"
#include "names.h"

#define SR_LOCK_TIMEOUT_MS (120 * 1000)
/*
 * A record is refused when written past RECORD_WRITE_MAX and read up to
 * RECORD_READ_MAX: whatever we accept to write can always be read back (a
 * record that cannot be read stops garbage collection, see below).
 */
#define RECORD_WRITE_MAX (512 * 1024)
#define RECORD_READ_MAX (1024 * 1024)


enum sr_fmt { FMT_QCOW2, FMT_VHD, FMT_RAW };
int sr_fmt_parse(const char *s, enum sr_fmt *ret);
const char *sr_fmt_name(enum sr_fmt f);	/* "qcow2", "vhd", "raw" */
const char *sr_fmt_qemu(enum sr_fmt f);	/* "qcow2", "vpc", "raw" */
uint64_t sr_fmt_max_size(enum sr_fmt f);

enum sr_lock_mode { SR_LOCK_NONE, SR_LOCK_SHARED, SR_LOCK_EXCLUSIVE };

struct sr {
	char path[PATH_MAX];	/* mount point: the SR handle */
	char uuid[UUID_STR_LEN];
	char type[32];		/* "ext4-ng", "xfs-ng" */
	int dirfd, metafd, imagesfd, lockfd;
	json_object *info;	/* .sr/sr.json, owned */
	char problem[512];	/* why the last sr_scan() failed, in words */
};

/*
 * Open an attached SR from its handle (the mount path), check it is one of
 * ours and of 'type' (NULL: any), and take the lock.  -ENOENT when the
 * handle does not name an attached SR.
 */
int sr_open(const char *handle, const char *type, enum sr_lock_mode mode,
	    struct sr *ret);
void sr_close(struct sr *sr);
int sr_save_info(struct sr *sr);
/* Create the layout in an empty mounted filesystem. */
int sr_format(const char *path, const char *uuid, const char *type,
	      const char *name, const char *description,
	      enum sr_fmt fmt);
bool sr_handle_is_plausible(const char *handle);
enum sr_fmt sr_default_format(struct sr *sr);

/* Records.  *ret is a new json_object the caller owns. */
int sr_volume_load(struct sr *sr, const char *key, json_object **ret);
int sr_image_load(struct sr *sr, const char *id, json_object **ret);
int sr_stage_volume(struct sr *sr, json_object *vol, struct staged_file *f);
int sr_stage_image(struct sr *sr, json_object *img, struct staged_file *f);
int sr_commit(struct sr *sr, struct staged_file *f, size_t n);
void sr_abort(struct sr *sr, struct staged_file *f, size_t n);

/* "images/<id>.<ext>" relative to the SR root, and the image's file name. */
void sr_image_filename(const char *id, enum sr_fmt fmt, char *out,
		       size_t len);
int sr_image_fmt(json_object *img, enum sr_fmt *ret);
const char *rec_str(json_object *rec, const char *key);	/* "" if absent */
int64_t rec_int(json_object *rec, const char *key);
bool rec_bool(json_object *rec, const char *key);

/*
 * Everything in meta/: volumes (array) and images (object id -> record).
 * All or nothing: a record that cannot be read or makes no sense fails the
 * scan with -EUCLEAN and sr->problem saying which and why, because a
 * caller acting on a partial view (xapi forgetting a VDI, GC deleting its
 * images) would lose data.
 */
int sr_scan(struct sr *sr, json_object **ret_volumes, json_object **ret_images);

/*
 * Delete images nothing references any more (a parent goes once its last
 * child has gone), and with 'sweep' also image files that have no record
 * and temporary files, both left by crashed calls.  Call with the
 * exclusive lock.  Deletes only what a complete scan proved unreferenced:
 * when the scan fails, nothing is deleted and the reason is kept in
 * .sr/gc-blocked (SR.stat and Plugin.diagnostics show it) until a later
 * run succeeds.
 */
int sr_collect_garbage(struct sr *sr, bool sweep);
/* The reason garbage collection is stopped, or "" (from .sr/gc-blocked). */
void sr_gc_blocked_reason(struct sr *sr, char *out, size_t len);

/* "images/<id>.<ext>": the top image of a volume record, relative to the
 * SR root. */
void sr_volume_image(const json_object *vol, char *out, size_t len);
/* False once Volume.data_destroy dropped its data (the record stays for
 * its changed-block metadata): its image is no longer the volume's. */
static inline bool sr_volume_has_data(json_object *vol)
{
	return !rec_bool(vol, "data_destroyed");
}

/* Why an SR operation failed, as xapi's error name and a sentence an
 * administrator understands; the plugin's edge reports it. */
struct sr_why {
	const char *code;		/* "Volume_does_not_exist", "SR_corrupt" */
	char text[512];
};
/* sr_volume_load(), with the failure explained in *why. */
int sr_volume_load_why(struct sr *sr, const char *key, json_object **ret,
		       struct sr_why *why);

/* Allocated bytes of a file under the SR root (st_blocks * 512). */
int64_t sr_file_allocated(struct sr *sr, const char *relpath);

/*
 * Activation records (written by the datapath plugin).  sr_volume_active()
 * returns 1 and the record when the volume is served by a live datapath
 * server, 0 when not (stale records are ignored), -errno on error.
 */
int sr_volume_active(struct sr *sr, const char *key, json_object **ret);
int sr_count_active(struct sr *sr, char *first_key, size_t len);

#endif
