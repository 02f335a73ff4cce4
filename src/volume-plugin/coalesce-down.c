/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Coalesce down: merge a hidden parent H into its only child C.  C then
 * names H's parent B (or nothing) as its backing file, its record follows,
 * and the garbage collector deletes H.  The job (coalesce.c) chooses this
 * way when H holds less than C, when H cannot take C in (a VHD parent
 * smaller than its grown child), and always when C's volume V is served:
 * then only V's datapath server may write C.
 *
 * Offline (V not served):
 *   1. chunk by chunk, each under the shared SR lock and only after
 *      checking that V is still not served, still points at C, and that C
 *      did not change since our last chunk: copy H's own data where C holds
 *      nothing (image_pull_backing), flush, fsync.  Datapath.activate takes
 *      the exclusive lock, so it waits one chunk at most, and the next
 *      check stops us.  C overlays H, so what we copy is what the chain
 *      read there already: a kill at any point loses nothing.
 *   2. under the exclusive lock, with the same checks and the pair still a
 *      candidate: rewrite C's header to name B (image_skip_backing,
 *      durable), then C's record (staged, fsynced, renamed), then collect
 *      H.
 * Live (V served read-write on this host, not through a reset-on-boot
 * overlay): ngdp-server does step 1 between guest requests and switches
 * its chain itself (control op "coalesce").  The job polls the server's
 * status; once the server reports the switch, it does the record part of
 * step 2 under the exclusive lock.
 *
 * A crash between the header switch and the record leaves C naming B
 * while its record still names H.  The next job sees that in C's header
 * (offline) or in the server's status (live) and writes only the record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coalesce.h"
#include "ctl-client.h"
#include "ctl-proto.h"
#include "active.h"
#include "fault.h"
#include "formats/bitmap.h"
#include "formats/format.h"
#include "json-io.h"
#include "log.h"
#include "qemu-img.h"
#include "vp.h"

#define DOWN_CHUNK (8 * 1024 * 1024)	/* the longest Datapath.activate waits */
#define OWN_STEP (1ULL << 30)		/* mapping stride when counting */
#define LIVE_POLL_MS 200
#define LIVE_CALL_MS 10000

int co_own_bytes(struct sr *sr, const char *id, enum sr_fmt fmt,
		 uint64_t *ret)
{
	struct extent_list el = { 0 };
	struct image *img = NULL;
	uint64_t off, n;
	size_t i;
	int r;

	*ret = 0;
	r = vp_open_image(sr, id, fmt, true, &img);
	for (off = 0; r == 0 && off < img->virtual_size; off += n) {
		n = img->virtual_size - off < OWN_STEP ?
			    img->virtual_size - off : OWN_STEP;
		extent_list_clear(&el);
		/* without a backing file, block status also sees a raw
		 * file's holes */
		r = img->backing ? image_map_read_own(img, off, n, NULL, &el) :
				   image_block_status(img, off, n, &el);
		for (i = 0; r == 0 && i < el.n; i++)
			if (!el.v[i].hole)
				*ret += el.v[i].length;
	}
	if (img)
		image_close(img);
	extent_list_release(&el);
	return r;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/*
 * Does a backing file named 'backing' (a path, or NULL for none) mean C
 * still reads H (0), or that C already skips H and names B (1)?  Anything
 * else: -EUCLEAN.
 */
static int switched(const struct candidate *cd, const char *backing)
{
	char hname[80], gname[80];

	sr_image_filename(cd->parent, cd->pfmt, hname, sizeof(hname));
	if (backing && !strcmp(base_name(backing), hname))
		return 0;
	if (!cd->grand[0] && !backing)
		return 1;
	if (cd->grand[0] && backing) {
		sr_image_filename(cd->grand, cd->gfmt, gname, sizeof(gname));
		if (!strcmp(base_name(backing), gname))
			return 1;
	}
	log_error("volume %s: image %s names %s as its backing file, neither "
		  "%s nor its parent", cd->vol, cd->child,
		  backing ? backing : "nothing", hname);
	return -EUCLEAN;
}

int co_child_switched(struct sr *sr, const struct candidate *cd)
{
	struct image *c = NULL;
	int r = vp_open_image(sr, cd->child, cd->cfmt, true, &c);

	if (r < 0)
		return r;
	r = switched(cd, c->backing ? c->backing->path : NULL);
	image_close(c);
	return r;
}

/* Step 2's record: C's parent becomes B.  Then H is garbage. */
static int commit_record(struct sr *sr, const struct candidate *cd)
{
	json_object *img = NULL;
	int r = sr_image_load(sr, cd->child, &img);

	if (r < 0)
		return r;
	if (cd->grand[0])
		json_add_string(img, "parent", cd->grand);
	else
		json_object_object_del(img, "parent");
	fault_point("coalesce-down-before-record");
	r = publish_records(sr, &img, 1);
	json_object_put(img);
	if (r < 0)
		return r;
	fault_point("coalesce-down-after-record");
	if (sr_collect_garbage(sr, false) < 0)
		log_warn("SR %s: freeing image %s failed (retried by the next "
			 "collection)", sr->uuid, cd->parent);
	return 1;
}

/*
 * Under a lock: is the pair still ours to write?  V not served, still on
 * C (a leaf C), and C as we left it (only we write a shared C).  With
 * 'whole', the pair must also still be a candidate (only the exclusive
 * lock keeps that true).
 */
static int still_ours(struct sr *sr, const struct candidate *cd,
		      const struct snap_of_child *last, bool whole)
{
	struct snap_of_child now;
	struct candidate again;
	json_object *vol = NULL;
	int r;

	if (!cd->shared) {
		r = co_volume_idle(sr, cd->vol);
		if (r <= 0)
			return r;
		if (sr_volume_load(sr, cd->vol, &vol) < 0)
			return 0;
		r = !strcmp(rec_str(vol, "image"), cd->child);
		json_object_put(vol);
		if (!r)
			return 0;
	}
	if (co_stat_child(sr, cd, &now) < 0 || !co_same_child(last, &now))
		return 0;
	if (!whole)
		return 1;
	r = co_find_candidate(sr, NULL, cd->child, &again, NULL);
	if (r <= 0)
		return r;
	return again.shared == cd->shared && !again.live &&
	       (cd->shared || !strcmp(again.vol, cd->vol)) &&
	       !strcmp(again.parent, cd->parent) &&
	       !strcmp(again.grand, cd->grand);
}

static int sync_image(struct image *c)
{
	if (fsync(c->fd) < 0 ||
	    (c->buffered_fd >= 0 && fsync(c->buffered_fd) < 0))
		return -errno;
	return 0;
}

/*
 * Servers that read C (its volumes' chains run through it) still hold H
 * open, and H's space comes back only when they let go: pause each one
 * briefly and resume it on its own top, which reopens its chain from the
 * headers, without H.  Best effort: a server left as it is keeps reading
 * the right data (H's file stays open), and lets go at its next reopen.
 */
static void refresh_readers(struct sr *sr, const struct candidate *cd)
{
	json_object *vols = NULL, *imgs = NULL;
	size_t i;

	if (sr_scan(sr, &vols, &imgs) < 0)
		return;
	for (i = 0; i < json_object_array_length(vols); i++) {
		json_object *v = json_object_array_get_idx(vols, i), *img;
		json_object *active = NULL, *req, *st = NULL;
		const char *id = rec_str(v, "image"), *key = rec_str(v, "key");
		unsigned int depth = 0;
		char top[PATH_MAX];

		while (id[0] && strcmp(id, cd->child) && depth++ < 64 &&
		       json_object_object_get_ex(imgs, id, &img))
			id = rec_str(img, "parent");
		if (strcmp(id, cd->child) ||
		    sr_volume_active(sr, key, &active) != 1)
			continue;
		if (strcmp(rec_str(active, "host"), host_paths()->host_uuid) ||
		    !rec_str(active, "control")[0]) {
			json_object_put(active);
			continue;
		}
		req = json_new_object();
		json_add_string(req, CTL_KEY_OP, CTL_OP_SUSPEND);
		json_add_int64(req, CTL_KEY_TIMEOUT_MS, LIVE_CALL_MS);
		if (control_call(rec_str(active, "control"), req, LIVE_CALL_MS,
				 &st) == 0) {
			snprintf(top, sizeof(top), "%s",
				 rec_str(st, CTL_ST_IMAGE));
			json_object_put(st);
			st = NULL;
			json_object_put(req);
			req = json_new_object();
			json_add_string(req, CTL_KEY_OP, CTL_OP_RESUME);
			json_add_string(req, CTL_KEY_IMAGE, top);
			if (control_call(rec_str(active, "control"), req,
					 LIVE_CALL_MS, &st) < 0)
				log_warn("volume %s: its datapath server did not "
					 "reopen its chain (%s); it resumes by "
					 "itself and frees image %s later", key,
					 rec_str(st, CTL_KEY_ERROR), cd->parent);
			else
				log_info("volume %s: its datapath server "
					 "reopened its chain without image %s",
					 key, cd->parent);
		}
		json_object_put(st);
		json_object_put(req);
		json_object_put(active);
	}
	json_object_put(vols);
	json_object_put(imgs);
}

int co_down_offline(const char *handle, const char *type,
		    const struct candidate *cd,
		    const struct snap_of_child *snap, uint64_t *copied)
{
	struct snap_of_child last = *snap;
	struct image *c = NULL;
	uint64_t off, end, n;
	struct sr sr;
	int r, done;

	r = sr_open(handle, type, SR_LOCK_SHARED, &sr);
	if (r < 0)
		return r;
	r = still_ours(&sr, cd, &last, false);
	if (r == 1) {
		r = vp_open_image(&sr, cd->child, cd->cfmt, false, &c);
		/* opening read-write may write C (an open-time repair) */
		if (r == 0 && co_stat_child(&sr, cd, &last) < 0) {
			image_close(c);
			c = NULL;
			r = -EIO;
		}
	}
	sr_close(&sr);
	if (!c)
		return r;	/* 0: no longer ours */
	done = switched(cd, c->backing ? c->backing->path : NULL);
	if (done < 0) {
		image_close(c);
		return done;
	}
	end = done ? 0 : c->backing->virtual_size;
	if (end > c->virtual_size)
		end = c->virtual_size;
	for (off = 0; off < end; off += n) {
		n = end - off < DOWN_CHUNK ? end - off : DOWN_CHUNK;
		r = sr_open(handle, type, SR_LOCK_SHARED, &sr);
		if (r < 0)
			break;
		r = still_ours(&sr, cd, &last, false);
		if (r == 1)
			r = image_pull_backing(c, off, n, copied);
		if (r >= 0)
			r = image_flush(c);
		if (r >= 0)
			r = sync_image(c);
		if (r >= 0)
			r = co_stat_child(&sr, cd, &last) < 0 ? -EIO : 1;
		sr_close(&sr);
		if (r <= 0)
			break;
		if (off == 0)
			fault_point("coalesce-down-mid-copy");
	}
	if (off < end) {
		image_close(c);
		return r;
	}
	r = sr_open(handle, type, SR_LOCK_EXCLUSIVE, &sr);
	if (r < 0) {
		image_close(c);
		return r;
	}
	r = still_ours(&sr, cd, &last, true);
	if (r == 1 && !done) {
		fault_point("coalesce-down-before-switch");
		/* H's epoch bitmaps (CBT) live on in C */
		r = image_bitmap_adopt(c, c->backing);
		if (r == 0)
			r = image_skip_backing(c);
		if (r == 0)
			r = 1;
	}
	image_close(c);
	if (r == 1)
		r = commit_record(&sr, cd);
	if (r == 1 && cd->shared)
		refresh_readers(&sr, cd);
	sr_close(&sr);
	return r;
}

/* ------------------------------------------------------------------ live */

static int server_call(const struct candidate *cd, json_object *req,
		       json_object **reply)
{
	int r = control_call(cd->control, req, LIVE_CALL_MS, reply);

	json_object_put(req);
	return r;
}

static json_object *op(const char *name)
{
	json_object *req = json_new_object();

	json_add_string(req, CTL_KEY_OP, name);
	return req;
}

/* The server's chain: 1 switched, 0 still on H, -errno. */
static int server_switched(const struct candidate *cd, json_object **status)
{
	json_object *st = NULL, *b;
	int r = server_call(cd, op(CTL_OP_STATUS), &st);

	if (r < 0) {
		json_object_put(st);
		return r;
	}
	b = json_object_object_get(st, CTL_ST_BACKING);
	r = switched(cd, json_object_is_type(b, json_type_string) ?
			     json_object_get_string(b) : NULL);
	if (status)
		*status = st;
	else
		json_object_put(st);
	return r;
}

int co_down_live(const char *handle, const char *type,
		 const struct candidate *cd, uint64_t *copied)
{
	json_object *req = op(CTL_OP_COALESCE), *st = NULL, *co;
	char hpath[PATH_MAX];
	struct candidate again;
	struct sr sr;
	int r;

	r = sr_open(handle, type, SR_LOCK_NONE, &sr);
	if (r < 0) {
		json_object_put(req);
		return r;
	}
	qimg_path(&sr, cd->parent, cd->pfmt, hpath, sizeof(hpath));
	sr_close(&sr);
	json_add_string(req, CTL_KEY_PARENT, hpath);
	r = server_call(cd, req, &st);
	json_object_put(st);
	st = NULL;
	if (r == -EREMOTEIO && server_switched(cd, NULL) == 1)
		r = 0;		/* switched by an earlier job's request */
	if (r < 0)
		return r == -EREMOTEIO ? -EPROTO : r;
	/* the server copies between guest requests; watch it */
	for (;;) {
		const char *state;

		r = server_switched(cd, &st);
		if (r == -EUCLEAN)
			return r;
		if (r < 0) {
			log_info("volume %s: its datapath server went away "
				 "during the merge of image %s (%s); retried "
				 "later", cd->vol, cd->parent, strerror(-r));
			return 0;
		}
		co = json_object_object_get(st, CTL_ST_COALESCE);
		state = rec_str(co, CTL_CO_STATE);
		*copied = (uint64_t)rec_int(co, CTL_CO_COPIED);
		if (r == 0 && strcmp(state, CTL_CO_RUNNING) &&
		    strcmp(state, CTL_CO_FAILED)) {
			/* a restarted server forgot the request */
			json_object_put(st);
			return 0;
		}
		if (r == 1 || !strcmp(state, CTL_CO_FAILED)) {
			if (r != 1)
				log_error("volume %s: the datapath server could "
					  "not merge image %s: %s", cd->vol,
					  cd->parent, rec_str(co, CTL_CO_ERROR));
			json_object_put(st);
			if (r != 1)
				return -EIO;
			break;
		}
		json_object_put(st);
		st = NULL;
		usleep(LIVE_POLL_MS * 1000);
	}
	fault_point("coalesce-live-switched");
	r = sr_open(handle, type, SR_LOCK_EXCLUSIVE, &sr);
	if (r < 0)
		return r;
	r = co_find_candidate(&sr, NULL, cd->child, &again, NULL);
	if (r == 1 && (strcmp(again.vol, cd->vol) ||
		       strcmp(again.parent, cd->parent) ||
		       strcmp(again.grand, cd->grand)))
		r = 0;
	/* the server may have gone meanwhile: the header is what counts */
	if (r == 1 && again.live)
		r = server_switched(&again, NULL);
	else if (r == 1)
		r = co_child_switched(&sr, cd);
	if (r == 1)
		r = commit_record(&sr, cd);
	sr_close(&sr);
	return r;
}
