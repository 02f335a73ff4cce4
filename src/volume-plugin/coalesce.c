/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Coalesce: give back the space of snapshots that backups destroy.
 *
 * A backup cycle (snapshot S of V, V moves to a new leaf L over the old
 * image I, then Volume.destroy(S)) leaves I hidden with the single child L.
 * A candidate is such a pair: a hidden image H (no volume points at it)
 * whose only child C is the image of exactly one volume V, and that no
 * image has as its parent (a leaf), or any other image (a "shared" C:
 * immutable, read by snapshots or by its own children).  The job copies
 * the smaller side: H down into C (coalesce-down.c; always when C is
 * shared, and when V is served, then by V's datapath server), or, here,
 * "C into H":
 *
 *   1. under the exclusive SR lock: V is not active (no live activation
 *      record, no reset-on-boot overlay), capture C's inode times and size;
 *      grow H first when V was resized since;
 *   2. without the lock: copy every range C itself holds into H (data as
 *      data, zero clusters as zeros), flush and fsync H.  C overlays every
 *      range written into H and nothing else reads H, so the chain reads
 *      the same at every instant, and a kill leaves H with extra data that
 *      C hides;
 *   3. under the exclusive lock again: V still points at C, is still not
 *      active, C did not change since step 1 and the pair is still a
 *      candidate; then V's record is rewritten atomically to point at H
 *      (staged, fsynced, renamed, directory fsynced) and the garbage
 *      collector deletes C, now unreferenced.  Otherwise the commit is
 *      abandoned (H's extra data is harmless) and the next trigger retries.
 *
 * The job runs detached from the call that started it (Volume.destroy,
 * SR.attach, SR.stat): the plugin binary re-executed with
 * "--coalesce-job <SR>", its stdio on /dev/null, in its own session.  One
 * job per SR: .sr/coalesce.lock is held (flock) by the running job.  It
 * reports in .sr/coalesce.json, which Plugin.diagnostics shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "active.h"
#include "cleanup.h"
#include "fault.h"
#include "formats/bitmap.h"
#include "formats/format.h"
#include "fullio.h"
#include "json-io.h"
#include "log.h"
#include "proc.h"
#include "coalesce.h"
#include "qemu-img.h"
#include "vp.h"

#define JOB_ARG "--coalesce-job"
#define JOB_LOCK "coalesce.lock"	/* in .sr/ */
#define JOB_STATUS "coalesce.json"	/* in .sr/ */
#define CHUNK (1024 * 1024)
#define OVERLAY_PREFIX ".np-"

int co_volume_idle(struct sr *sr, const char *key)
{
	char name[80];
	int r = sr_volume_active(sr, key, NULL);

	if (r != 0)
		return r < 0 ? r : 0;
	snprintf(name, sizeof(name), OVERLAY_PREFIX "%s.qcow2", key);
	return faccessat(sr->imagesfd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0;
}

/*
 * How V is used: 0 not at all, 1 served read-write here (live; 'control'
 * gets its server's socket; the server itself checks that C's backing is
 * H), -1 otherwise (another host, read-only, a reset-on-boot overlay that
 * reads C: left alone).
 */
static int volume_use(struct sr *sr, const char *key, char *control,
		      size_t len)
{
	char name[80];
	json_object *rec = NULL;
	int r, use = -1;

	/* the server's top is then the overlay, over C */
	snprintf(name, sizeof(name), OVERLAY_PREFIX "%s.qcow2", key);
	if (faccessat(sr->imagesfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -1;
	r = sr_volume_active(sr, key, &rec);
	if (r <= 0)
		return r < 0 ? -1 : 0;
	/* (its "image" is the top it started on: snapshots moved it since) */
	if (!strcmp(rec_str(rec, "host"), host_paths()->host_uuid) &&
	    !rec_bool(rec, "readonly") && rec_str(rec, "control")[0]) {
		snprintf(control, len, "%s", rec_str(rec, "control"));
		use = 1;
	}
	json_object_put(rec);
	return use;
}

/*
 * The first candidate (see the top of the file), skipping the children
 * listed in 'skip' and, when 'only_child' is set, any other.  Returns 1
 * and fills *ret, 0 when there is none, -errno when the SR cannot be read.
 * 'garbage' (optional) is set when an image nothing references is left
 * (a job killed after its commit): the job's collection frees it.
 */
int co_find_candidate(struct sr *sr, json_object *skip,
		      const char *only_child, struct candidate *ret,
		      bool *garbage)
{
	json_object *vols = NULL, *imgs = NULL, *vrefs, *children, *owner;
	int r, found = 0;
	size_t i;

	r = sr_scan(sr, &vols, &imgs);
	if (r < 0)
		return r;
	vrefs = json_new_object();
	children = json_new_object();
	owner = json_new_object();
	for (i = 0; i < json_object_array_length(vols); i++) {
		json_object *v = json_object_array_get_idx(vols, i);

		if (!sr_volume_has_data(v))
			continue;
		json_count(vrefs, rec_str(v, "image"));
		json_add_string(owner, rec_str(v, "image"), rec_str(v, "key"));
	}
	{
		json_object_object_foreach(imgs, id, img) {
			(void)id;
			json_count(children, rec_str(img, "parent"));
		}
	}
	{
		json_object_object_foreach(imgs, id, img) {
			const char *h = rec_str(img, "parent"), *vk, *g;
			json_object *himg, *gimg, *vrec = NULL;
			int use;

			if (garbage && json_counted(vrefs, id) == 0 &&
			    json_counted(children, id) == 0)
				*garbage = true;
			if (found || !h[0] || json_counted(vrefs, h) != 0 ||
			    json_counted(children, h) != 1 ||
			    !json_object_object_get_ex(imgs, h, &himg))
				continue;
			if (only_child && strcmp(only_child, id))
				continue;
			if (skip && json_object_object_get_ex(skip, id, NULL))
				continue;
			if (sr_image_fmt(img, &ret->cfmt) < 0 ||
			    sr_image_fmt(himg, &ret->pfmt) < 0)
				continue;
			g = rec_str(himg, "parent");
			if (g[0] && (!json_object_object_get_ex(imgs, g, &gimg) ||
				     sr_image_fmt(gimg, &ret->gfmt) < 0))
				continue;
			vk = "";
			if (json_object_object_get_ex(owner, id, NULL))
				vk = json_object_get_string(
					json_object_object_get(owner, id));
			/* C immutable: a snapshot's image, or a parent itself */
			ret->shared = !vk[0] || json_counted(vrefs, id) != 1 ||
				      json_counted(children, id) != 0;
			use = 0;
			if (!ret->shared) {
				use = volume_use(sr, vk, ret->control,
						 sizeof(ret->control));
				if (use < 0)
					continue;
				/* a resize in progress settles from C's size */
				if (sr_volume_load(sr, vk, &vrec) == 0 &&
				    json_object_object_get_ex(vrec,
							      "resizing-to",
							      NULL)) {
					json_object_put(vrec);
					continue;
				}
				json_object_put(vrec);
			}
			ret->live = use == 1;
			if (!ret->live)
				ret->control[0] = '\0';
			snprintf(ret->vol, sizeof(ret->vol), "%s",
				 vk[0] ? vk : "(none)");
			snprintf(ret->child, sizeof(ret->child), "%s", id);
			snprintf(ret->parent, sizeof(ret->parent), "%s", h);
			snprintf(ret->grand, sizeof(ret->grand), "%s", g);
			found = 1;
		}
	}
	json_object_put(owner);
	json_object_put(children);
	json_object_put(vrefs);
	json_object_put(vols);
	json_object_put(imgs);
	return found;
}

/* ---------------------------------------------------------------- status */

static int srdir(struct sr *sr)
{
	return openat(sr->dirfd, ".sr", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* .sr/coalesce.json: what the job does, and how its last run ended. */
static void status_write(struct sr *sr, const char *state,
			 const struct candidate *cd, const char *result)
{
	CLEANUP_CLOSE int fd = srdir(sr);
	json_object *st = json_new_object();
	const char *text;

	json_add_string(st, "state", state);
	json_add_int64(st, "pid", getpid());
	json_add_int64(st, "starttime", process_starttime(getpid()));
	json_add_int64(st, "time", (int64_t)time(NULL));
	if (cd) {
		bool down = cd->plan != CO_INTO_PARENT;

		json_add_string(st, "volume", cd->vol);
		json_add_string(st, "image", down ? cd->parent : cd->child);
		json_add_string(st, "into", down ? cd->child : cd->parent);
		json_add_string(st, "how", cd->plan == CO_DOWN_LIVE ?
				"live, in the volume's datapath server" :
				"offline");
	}
	if (result)
		json_add_string(st, "result", result);
	text = json_to_text(st);
	if (fd >= 0)
		(void)write_file_atomic_at(fd, JOB_STATUS, text, strlen(text));
	json_object_put(st);
}

void vp_coalesce_describe(struct sr *sr, char *out, size_t len)
{
	CLEANUP_FREE char *buf = NULL;
	json_object *st = NULL;
	const char *state;
	bool alive;
	pid_t pid;

	snprintf(out, len, "coalesce: no job has run");
	if (read_file_at(sr->dirfd, ".sr/" JOB_STATUS, 64 * 1024, &buf,
			 NULL) < 0)
		return;
	if (json_parse_exact(buf, strlen(buf), &st) < 0 ||
	    !json_object_is_type(st, json_type_object)) {
		json_object_put(st);
		snprintf(out, len, "coalesce: status unreadable");
		return;
	}
	state = rec_str(st, "state");
	pid = (pid_t)rec_int(st, "pid");
	alive = pid > 0 && process_starttime(pid) == rec_int(st, "starttime");
	if (!strcmp(state, "running") && alive)
		snprintf(out, len, "coalesce: running (pid %d) on volume %s, "
			 "merging image %s into %s (%s)%s%s", (int)pid,
			 rec_str(st, "volume"), rec_str(st, "image"),
			 rec_str(st, "into"), rec_str(st, "how"),
			 rec_str(st, "result")[0] ?
			 "; last result: " : "", rec_str(st, "result"));
	else if (!strcmp(state, "running"))
		snprintf(out, len, "coalesce: interrupted (pid %d died) on "
			 "volume %s; the next SR.stat, SR.attach or "
			 "Volume.destroy restarts it", (int)pid,
			 rec_str(st, "volume"));
	else
		snprintf(out, len, "coalesce: idle; last result: %s",
			 rec_str(st, "result"));
	json_object_put(st);
}

/* ---------------------------------------------------------------- kick */

void vp_coalesce_kick(struct sr *sr)
{
	const char *args[4] = { NULL, JOB_ARG, sr->path, NULL };
	struct proc_detached opt = { .ready_fd = -1, .pass_xsng = true };
	struct candidate cd = { .vol = "" };
	char exe[PATH_MAX];
	ssize_t n;
	bool garbage = false;
	pid_t pid;
	int r;

	if (co_find_candidate(sr, NULL, NULL, &cd, &garbage) != 1 && !garbage)
		return;
	if (!cd.vol[0])
		snprintf(cd.vol, sizeof(cd.vol), "(none: garbage only)");
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	args[0] = exe;
	r = proc_spawn_detached(args, &opt, &pid);
	if (r < 0)
		log_warn("SR %s: cannot start the coalesce job: %s", sr->uuid,
			 strerror(-r));
	else
		log_info("SR %s: coalesce job started (pid %d) for volume %s",
			 sr->uuid, (int)pid, cd.vol);
}

/* ---------------------------------------------------------------- copy */

static void image_file(struct sr *sr, const char *id, enum sr_fmt f,
		       char *out, size_t len)
{
	qimg_path(sr, id, f, out, len);
}

/* Write buf to [off, off+len) of h through map_write. */
static int write_into(struct image *h, struct extent_list *el, uint64_t off,
		      uint64_t len, const char *buf)
{
	uint64_t pos = 0;
	size_t i;
	int r;

	extent_list_clear(el);
	r = image_map_write(h, off, len, el);
	if (r < 0)
		return r;
	for (i = 0; i < el->n; i++) {
		const struct extent *e = &el->v[i];

		if (e->kind != EXTENT_DATA || e->fd != h->fd)
			return -EIO;
		r = image_pwrite(h, buf + pos, e->length, e->host_offset);
		if (r < 0)
			return r;
		pos += e->length;
	}
	return pos == len ? 0 : -EIO;
}

static int zero_into(struct image *h, struct extent_list *el, uint64_t off,
		     uint64_t len, char *zeros)
{
	int r = image_zero(h, off, len, false);

	if (r != -ENOTSUP)
		return r;
	memset(zeros, 0, len);
	return write_into(h, el, off, len, zeros);
}

/*
 * Copy every range C holds itself into H.  C's chain is opened read-only
 * and mapped on its own (image_map_read_own), so unallocated ranges show up as
 * holes; H is opened read-write on its own chain.
 */
static int copy_child(struct sr *sr, const struct candidate *cd,
		      uint64_t *copied)
{
	struct image_open_options co = { .readonly = true, .no_direct = true };
	struct image_open_options ho = { .no_direct = true };
	struct image *c = NULL, *h = NULL, *below;
	struct extent_list cel = { 0 }, hel = { 0 };
	char cpath[PATH_MAX], hpath[PATH_MAX], dir[PATH_MAX + 8];
	char *buf = NULL, *zeros = NULL;
	uint64_t off;
	int r;

	snprintf(dir, sizeof(dir), "%s/images", sr->path);
	image_file(sr, cd->child, cd->cfmt, cpath, sizeof(cpath));
	image_file(sr, cd->parent, cd->pfmt, hpath, sizeof(hpath));
	co.confine_dir = ho.confine_dir = dir;
	co.format = sr_fmt_qemu(cd->cfmt);
	ho.format = sr_fmt_qemu(cd->pfmt);
	*copied = 0;
	r = image_open(cpath, &co, &c);
	if (r < 0)
		return r;
	below = c->backing;
	if (!below || strcmp(strrchr(below->path, '/') ?
			     strrchr(below->path, '/') + 1 : below->path,
			     strrchr(hpath, '/') + 1)) {
		log_error("image %s does not name %s as its backing file",
			  cd->child, cd->parent);
		image_close(c);
		return -EUCLEAN;
	}
	r = image_open(hpath, &ho, &h);
	if (r < 0)
		goto out;
	if (h->virtual_size < c->virtual_size) {
		r = -ERANGE;
		goto out;
	}
	buf = aligned_malloc(4096, CHUNK);
	zeros = aligned_malloc(4096, CHUNK);
	if (!buf || !zeros) {
		r = -ENOMEM;
		goto out;
	}
	for (off = 0; off < c->virtual_size && r == 0; off += CHUNK) {
		uint64_t n = c->virtual_size - off < CHUNK ?
				     c->virtual_size - off : CHUNK, pos = 0;
		size_t i;

		extent_list_clear(&cel);
		/* C alone: what it does not hold is a hole */
		r = image_map_read_own(c, off, n, buf, &cel);
		for (i = 0; r == 0 && i < cel.n; i++) {
			const struct extent *e = &cel.v[i];

			if (e->kind == EXTENT_DATA) {
				r = e->fd == c->fd ? image_pread(c, buf + pos,
						e->length, e->host_offset) :
						     -EIO;
				if (r == 0)
					r = write_into(h, &hel, off + pos,
						       e->length, buf + pos);
				*copied += e->length;
			} else if (e->kind == EXTENT_FILLED) {
				r = write_into(h, &hel, off + pos, e->length,
					       buf + pos);
				*copied += e->length;
			} else if (!e->hole) {
				r = zero_into(h, &hel, off + pos, e->length,
					      zeros);
			}
			pos += e->length;
		}
		if (r == 0 && off == 0)
			fault_point("coalesce-mid-copy");
	}
	/* C's epoch bitmaps (CBT) live on in H */
	if (r == 0)
		r = image_bitmap_adopt(h, c);
	if (r == 0)
		r = image_flush(h);
	if (r == 0 && (fsync(h->fd) < 0 ||
		       (h->buffered_fd >= 0 && fsync(h->buffered_fd) < 0)))
		r = -errno;
out:
	image_close(c);
	image_close(h);
	extent_list_release(&cel);
	extent_list_release(&hel);
	free(buf);
	free(zeros);
	return r;
}

/* ---------------------------------------------------------------- job */

int co_stat_child(struct sr *sr, const struct candidate *cd,
		      struct snap_of_child *s)
{
	char name[80];
	struct stat st;

	sr_image_filename(cd->child, cd->cfmt, name, sizeof(name));
	if (fstatat(sr->imagesfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	s->mtime = st.st_mtim;
	s->ctime = st.st_ctim;
	s->size = st.st_size;
	s->ino = st.st_ino;
	return 0;
}

bool co_same_child(const struct snap_of_child *a,
		       const struct snap_of_child *b)
{
	return a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec &&
	       a->size == b->size && a->ino == b->ino;
}

/*
 * Which way copies less: C into H copies what C holds itself, H down into
 * C what H holds.  A live volume can only be merged down, by its server;
 * a VHD parent smaller than its grown child cannot take it in.
 */
static int choose_plan(struct sr *sr, struct candidate *cd, uint64_t csize,
		       uint64_t hsize)
{
	uint64_t cown, hown;
	int r;

	if (cd->live) {
		cd->plan = CO_DOWN_LIVE;
		return 0;
	}
	if (cd->shared) {
		/* C is read by others, and never written: only filled */
		cd->plan = CO_DOWN_OFFLINE;
		return 0;
	}
	r = co_child_switched(sr, cd);
	if (r < 0)
		return r;
	if (r == 1 || (hsize < csize && cd->pfmt == FMT_VHD)) {
		/* switched already: only the record is left to write */
		cd->plan = CO_DOWN_OFFLINE;
		return 0;
	}
	r = co_own_bytes(sr, cd->child, cd->cfmt, &cown);
	if (r == 0)
		r = co_own_bytes(sr, cd->parent, cd->pfmt, &hown);
	if (r < 0)
		return r;
	cd->plan = hown < cown ? CO_DOWN_OFFLINE : CO_INTO_PARENT;
	log_info("volume %s: image %s holds %" PRIu64 " bytes, its parent %s "
		 "%" PRIu64 ": merging %s", cd->vol, cd->child, cown,
		 cd->parent, hown, cd->plan == CO_INTO_PARENT ?
		 "the image into its parent" : "the parent into the image");
	return 0;
}

/*
 * Step 1, under the exclusive lock: pick a candidate and its plan; for C
 * into H, grow H to C's size if needed.  Capture C's state.  1: one is
 * ready; 0: none left.
 */
static int prepare(struct sr *sr, json_object *skip, struct candidate *cd,
		   struct snap_of_child *snap, uint64_t *size)
{
	uint64_t csize, hsize;
	char msg[512];
	int r;

	/* what a job killed after its commit left: the merged child */
	if (sr_collect_garbage(sr, false) < 0)
		log_warn("SR %s: garbage collection failed", sr->uuid);
	for (;;) {
		r = co_find_candidate(sr, skip, NULL, cd, NULL);
		if (r <= 0)
			return r;
		r = qimg_virtual_size(sr, cd->child, cd->cfmt, &csize);
		if (r == 0)
			r = qimg_virtual_size(sr, cd->parent, cd->pfmt, &hsize);
		if (r == 0)
			r = choose_plan(sr, cd, csize, hsize);
		if (r == 0 && cd->plan == CO_INTO_PARENT && hsize < csize) {
			r = qimg_resize(sr, cd->parent, cd->pfmt, csize, msg,
					sizeof(msg));
			if (r < 0)
				log_error("volume %s: cannot grow image %s to "
					  "%" PRIu64 " bytes: %s", cd->vol,
					  cd->parent, csize, msg);
		}
		if (r == 0)
			r = co_stat_child(sr, cd, snap);
		if (r == 0) {
			*size = csize;
			return 1;
		}
		json_add_bool(skip, cd->child, true);
	}
}

/* Step 3, under the exclusive lock.  1: committed; 0: abandoned. */
static int commit(struct sr *sr, const struct candidate *cd,
		  const struct snap_of_child *snap, uint64_t size)
{
	json_object *vol = NULL, *himg = NULL, *recs[2];
	struct candidate now;
	struct snap_of_child s2;
	int r;

	r = co_find_candidate(sr, NULL, cd->child, &now, NULL);
	if (r <= 0 || strcmp(now.vol, cd->vol) || now.live ||
	    strcmp(now.parent, cd->parent)) {
		log_info("volume %s: image %s changed role (snapshot, "
			 "activation); coalesce abandoned, retried later",
			 cd->vol, cd->child);
		return r < 0 ? r : 0;
	}
	if (co_stat_child(sr, cd, &s2) < 0 || !co_same_child(snap, &s2)) {
		log_info("volume %s: image %s was written during the copy; "
			 "coalesce abandoned, retried later", cd->vol,
			 cd->child);
		return 0;
	}
	r = sr_volume_load(sr, cd->vol, &vol);
	if (r == 0)
		r = sr_image_load(sr, cd->parent, &himg);
	if (r < 0)
		goto out;
	json_add_int64(himg, "virtual_size", (int64_t)size);
	json_add_string(vol, "image", cd->parent);
	json_add_string(vol, "image-format", sr_fmt_name(cd->pfmt));
	recs[0] = himg;
	recs[1] = vol;
	fault_point("coalesce-before-commit");
	r = publish_records(sr, recs, 2);
	if (r == 0) {
		fault_point("coalesce-after-commit");
		r = 1;
	}
out:
	json_object_put(vol);
	json_object_put(himg);
	return r;
}

/* C into H: steps 2 and 3.  1: merged; 0: abandoned; -errno. */
static int merge_into_parent(const char *handle, const char *type,
			     const struct candidate *cd,
			     const struct snap_of_child *snap, uint64_t size,
			     uint64_t *copied)
{
	struct sr sr;
	int r;

	r = sr_open(handle, type, SR_LOCK_NONE, &sr);
	if (r < 0)
		return r;
	r = copy_child(&sr, cd, copied);
	sr_close(&sr);
	if (r < 0)
		return r;
	fault_point("coalesce-after-copy");
	r = sr_open(handle, type, SR_LOCK_EXCLUSIVE, &sr);
	if (r < 0)
		return r;
	r = commit(&sr, cd, snap, size);
	if (r == 1 && sr_collect_garbage(&sr, false) < 0)
		log_warn("SR %s: freeing image %s failed (retried by the next "
			 "collection)", sr.uuid, cd->child);
	sr_close(&sr);
	return r;
}

/* One round: every candidate once.  Returns how many were merged. */
static int run_round(const char *handle, const char *type, json_object *skip,
		     char *result, size_t rlen)
{
	struct snap_of_child snap;
	struct candidate cd;
	uint64_t size, copied;
	const char *from, *into;
	int merged = 0, r;
	struct sr sr;

	for (;;) {
		r = sr_open(handle, type, SR_LOCK_EXCLUSIVE, &sr);
		if (r < 0)
			break;
		r = prepare(&sr, skip, &cd, &snap, &size);
		if (r == 1)
			status_write(&sr, "running", &cd, result);
		sr_close(&sr);
		if (r <= 0)
			break;
		from = cd.plan == CO_INTO_PARENT ? cd.child : cd.parent;
		into = cd.plan == CO_INTO_PARENT ? cd.parent : cd.child;
		log_info("volume %s: coalescing image %s into %s (%s)", cd.vol,
			 from, into, cd.plan == CO_DOWN_LIVE ? "live" :
			 "offline");
		copied = 0;
		if (cd.plan == CO_INTO_PARENT)
			r = merge_into_parent(handle, type, &cd, &snap, size,
					      &copied);
		else if (cd.plan == CO_DOWN_OFFLINE)
			r = co_down_offline(handle, type, &cd, &snap, &copied);
		else
			r = co_down_live(handle, type, &cd, &copied);
		if (r == 1) {
			merged++;
			log_info("volume %s: image %s merged into %s (%" PRIu64
				 " bytes copied)", cd.vol, from, into, copied);
			snprintf(result, rlen, "volume %s: image %s merged "
				 "into %s", cd.vol, from, into);
			continue;
		}
		if (r < 0)
			log_error("volume %s: merging image %s into %s failed: "
				  "%s", cd.vol, from, into, strerror(-r));
		snprintf(result, rlen, "volume %s: merge of image %s into %s "
			 "%s (%s)", cd.vol, from, into, r < 0 ? "failed" :
			 "abandoned", r < 0 ? strerror(-r) :
			 "changed meanwhile");
		json_add_bool(skip, cd.child, true);
	}
	if (r < 0)
		snprintf(result, rlen, "stopped: %s", strerror(-r));
	return merged;
}

static int take_job_lock(const char *handle)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/.sr/" JOB_LOCK, handle);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -EBUSY;
	}
	return fd;
}

int vp_coalesce_job(const struct volume_plugin *p, int argc, char **argv)
{
	char ident[96], result[512] = "nothing to coalesce";
	const char *handle;
	struct candidate cd;
	int lockfd, round, r;
	struct sr sr;

	snprintf(ident, sizeof(ident), "%s/coalesce", p->type);
	log_init(ident, false);
	if (argc != 3 || !sr_handle_is_plausible(argv[2]))
		return 2;
	handle = argv[2];
	for (round = 0; round < 4; round++) {
		json_object *skip = json_new_object();

		lockfd = take_job_lock(handle);
		if (lockfd < 0) {
			json_object_put(skip);
			return 0;	/* another job runs */
		}
		if (sr_open(handle, p->type, SR_LOCK_NONE, &sr) == 0) {
			status_write(&sr, "running", NULL, result);
			sr_close(&sr);
		}
		fault_point("coalesce-job-start");
		(void)run_round(handle, p->type, skip, result, sizeof(result));
		json_object_put(skip);
		if (sr_open(handle, p->type, SR_LOCK_SHARED, &sr) == 0) {
			status_write(&sr, "idle", NULL, result);
			sr_close(&sr);
		}
		close(lockfd);
		/* a trigger that found the lock held while we were finishing
		 * gave up: look once more now that it is free */
		if (sr_open(handle, p->type, SR_LOCK_SHARED, &sr) < 0)
			break;
		r = co_find_candidate(&sr, NULL, NULL, &cd, NULL);
		sr_close(&sr);
		if (r != 1)
			break;
	}
	return 0;
}

/*
 * Before unmounting: end the SR's job (it is safe to kill at any point) so
 * that it holds no file of the SR open.
 */
void vp_coalesce_stop(const char *handle)
{
	char path[PATH_MAX + 32];
	CLEANUP_FREE char *buf = NULL;
	json_object *st = NULL;
	int i, fd;

	for (i = 0; i < 200; i++) {
		fd = take_job_lock(handle);
		if (fd >= 0 || fd != -EBUSY) {
			if (fd >= 0)
				close(fd);
			return;
		}
		snprintf(path, sizeof(path), "%s/.sr/" JOB_STATUS, handle);
		free(buf);
		buf = NULL;
		if (read_file_at(AT_FDCWD, path, 64 * 1024, &buf, NULL) == 0 &&
		    json_parse_exact(buf, strlen(buf), &st) == 0) {
			pid_t pid = (pid_t)rec_int(st, "pid");

			if (pid > 0 && process_starttime(pid) ==
			    rec_int(st, "starttime") && kill(pid, SIGKILL) == 0)
				log_info("stopped the coalesce job (pid %d) to "
					 "detach the SR", (int)pid);
			json_object_put(st);
			st = NULL;
		}
		usleep(50 * 1000);
	}
	log_warn("the coalesce job of %s did not stop within 10 s", handle);
}

bool vp_coalesce_is_job(int argc, char **argv)
{
	return argc >= 2 && !strcmp(argv[1], JOB_ARG);
}
